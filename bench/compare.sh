#!/bin/bash
# Times pontoon side by side with the baselines in ../shared/bench (the same work done with
# iproute2/iptables, the CNI bridge plugin and plain runc), in one run, then runs the Go
# benchmarks of netsetup, partition and runtime, and prints one table of medians, ratios
# (baseline / pontoon) and targets. Machines are noisy: compare the ratios, not absolute times.
#
#   bridge + 3 / 10 guests + ping + destroy  vs  shell_chain.sh 3 / 10           (>= 10x)
#   guest attach + detach                    vs  cni_bridge.sh                   (>= 20x)
#   partition apply / heal, 5 16 64 guests   vs  iptables_per_guest.sh apply/heal N
#                                                (apply, 16 guests: < 2 ms, library)
#   container start with pontoon's hook      vs  runc run of the same bundle, no network
#                                                (the hook adds < 5 ms)
#   container with bridge networking         vs  runc run + CNI bridge plugin (cni_runc.sh)
#   pontoon run of 3 supervised children until all are reachable (Go benchmark)
#
# pontoon is measured twice: a process per operation (bench/cmd/chainbench or the pontoon
# command line against a sandbox, the cost a command-line user pays; runc with the pontoon
# binary as its hook) and in-process (the library alone: chainbench's own loop; for
# containers the runtime package's Go benchmark, whose hook is the test binary).
# Partition apply is timed from a healed state and heal from an applied one, on both sides;
# that preparation is not timed. Container runs are spaced by an untimed pause in which the
# kernel finishes removing the previous container's namespace.
#
# Everything runs inside a private network namespace and a private mount namespace (with its
# own /run/netns), so neither the baselines (which add links, iptables rules and sysctls to
# the namespace they run in, and pin namespaces under fixed names) nor pontoon (which works in
# a netsetup/sandbox) touch the host's network, and nothing outlives the run. Needs root.
#
# Environment: RUNS (timed runs per command, default 20), WARMUP (default 3), RUNS_LARGE and
# WARMUP_LARGE (for the 64-guest partitions, whose baseline takes ~1 s a run; default 10, 1),
# BASELINES (default ../shared/bench relative to the repository root), NO_HYPERFINE=1 (time
# with a shell loop even when hyperfine is installed), GO_BENCH=0 (skip the Go benchmarks),
# NETSETUP_BENCHTIME, PARTITION_BENCHTIME, RUNTIME_BENCHTIME (go test -benchtime of each
# package; defaults 20x, 200x, 20x).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BASELINES=${BASELINES:-$ROOT/../shared/bench}
RUNS=${RUNS:-20}
WARMUP=${WARMUP:-3}
RUNS_LARGE=${RUNS_LARGE:-10}
WARMUP_LARGE=${WARMUP_LARGE:-1}
GO_BENCH=${GO_BENCH:-1}
NETSETUP_BENCHTIME=${NETSETUP_BENCHTIME:-20x}
PARTITION_BENCHTIME=${PARTITION_BENCHTIME:-200x}
RUNTIME_BENCHTIME=${RUNTIME_BENCHTIME:-20x}
PARTITION_SIZES="5 16 64"
export PATH=$PATH:/usr/local/go/bin

# --- inside the private network namespace -------------------------------------------------
if [ -n "${PONTOON_BENCH_WORK:-}" ]; then
	work=$PONTOON_BENCH_WORK
	id=$PONTOON_BENCH_ID
	cb=$work/chainbench
	pontoon=$work/pontoon
	# pontoon keeps its state under /run, tmpfs on a standard system: so does the sandbox
	# here (the mount is private to this run's mount namespace and goes with it).
	mkdir -p "$work/tmpfs" && mount -t tmpfs -o mode=0700 tmpfs "$work/tmpfs"
	sb=$work/tmpfs/sandbox
	results=$work/results # lines "KEY MILLISECONDS"
	: >"$results"
	# Stop at Ctrl-C (once the running command has ended) instead of going on with the next
	# one; the outer part cleans up.
	trap 'exit 130' INT TERM
	readlink /proc/self/ns/net /proc/self/ns/mnt >"$work/ns"
	mount -t tmpfs -o mode=0755 pontoon-bench-netns /run/netns
	ip link set lo up

	# bench NAME RUNS WARMUP [-p PREPARE] -n LABEL CMD [-p PREPARE] -n LABEL CMD ..: times the
	# commands (PREPARE before each run, not timed) and records each median as NAME.LABEL.
	bench() {
		local name=$1 runs=$2 warm=$3 csv=$work/$1.csv
		shift 3
		echo "-- $name" >&2
		if [ -n "${HYPERFINE:-}" ]; then
			hyperfine -N --style basic -w "$warm" -r "$runs" --export-csv "$csv" "$@" >&2
			# hyperfine's CSV: command,mean,stddev,median,...
			awk -F, -v n="$name" 'NR>1 { printf "%s.%s %.4f\n", n, $1, $4*1000 }' "$csv" >>"$results"
			return
		fi
		echo "$name: timing with a shell loop (no hyperfine)" >&2
		local prep="" label=""
		while [ $# -gt 0 ]; do
			case $1 in
			-p) prep=$2; shift 2 ;;
			-n) label=$2; shift 2 ;;
			*)
				echo "$name.$label $(loop_median "$runs" "$warm" "$prep" "$1")" >>"$results"
				prep="" label=""
				shift
				;;
			esac
		done
	}
	# loop_median RUNS WARMUP PREPARE CMD: median of the timed runs of CMD in milliseconds.
	loop_median() {
		local i t0 t1
		for ((i = 0; i < $1 + $2; i++)); do
			[ -n "$3" ] && $3 >/dev/null
			t0=$(date +%s%N)
			$4 >/dev/null
			t1=$(date +%s%N)
			[ "$i" -ge "$2" ] && echo $(((t1 - t0) / 1000))
		done | sort -n | awk '{ v[NR]=$1 } END { printf "%.4f\n", v[int((NR+1)/2)]/1000 }'
	}
	# in_process KEY ARGS..: chainbench's own median of RUNS runs (after WARMUP), in ms.
	in_process() {
		local key=$1
		shift
		"$cb" -n "$RUNS" -warmup "$WARMUP" "$@" | sed -n 's/.*median_ms=\([0-9.]*\).*/\1/p' | awk -v k="$key" '{ print k, $1 }' >>"$results"
	}
	have_cni=
	[ -x /usr/lib/cni/bridge ] && [ -x /usr/lib/cni/host-local ] && have_cni=1

	cni_netns=
	[ -n "$have_cni" ] && cni_netns=/run/netns/cnictr$id
	"$cb" -setup -dir "$sb" -setup-guests "${PARTITION_SIZES// /,}" -bundles -pontoon "$pontoon" -cni-netns "$cni_netns"
	# The pontoon command line acts on the sandbox's chain.
	eval "$("$cb" -print-env -dir "$sb")"

	echo "== chain" >&2
	for n in 3 10; do
		bench "bridge$n" "$RUNS" "$WARMUP" -n base "bash $BASELINES/shell_chain.sh $n 1" -n proc "$cb -dir $sb -op bridge$n -n 1 -quiet"
		in_process "bridge$n.lib" -op "bridge$n"
	done
	if [ -n "$have_cni" ]; then
		bench attach "$RUNS" "$WARMUP" -n base "bash $BASELINES/cni_bridge.sh $id" -n proc "$cb -dir $sb -op attach -n 1 -quiet"
		in_process attach.lib -op attach
	else
		echo "attach: /usr/lib/cni/bridge missing (Debian package containernetworking-plugins); skipped" >&2
	fi

	echo "== partitions" >&2
	ipg="bash $BASELINES/iptables_per_guest.sh"
	$ipg setup 64
	for n in $PARTITION_SIZES; do
		runs=$RUNS warm=$WARMUP
		[ "$n" -gt 16 ] && runs=$RUNS_LARGE warm=$WARMUP_LARGE
		bench "apply$n" "$runs" "$warm" \
			-p "$ipg heal $n" -n base "$ipg apply $n" \
			-p "$pontoon partition heal --bridge p$n" -n proc "$pontoon partition isolate g1 --bridge p$n"
		bench "heal$n" "$runs" "$warm" \
			-p "$ipg apply $n" -n base "$ipg heal $n" \
			-p "$pontoon partition isolate g1 --bridge p$n" -n proc "$pontoon partition heal --bridge p$n"
		in_process "apply$n.lib" -dir "$sb" -op apply -guests "$n"
		in_process "heal$n.lib" -dir "$sb" -op heal -guests "$n"
	done
	$ipg teardown 64

	echo "== containers" >&2
	runc_root=$work/runc
	bundles=$sb/bundles
	# The cni bundle joins cnictr$id, which cni_runc.sh creates around each run.
	ctr=(-p "sleep 0.1" -n none "runc --root $runc_root run --bundle $bundles/none pb-none-$id"
		-p "sleep 0.1" -n hook "runc --root $runc_root run --bundle $bundles/hook pb-hook-$id")
	[ -n "$have_cni" ] && ctr+=(-p "sleep 0.1" -n cni "bash $ROOT/bench/cni_runc.sh $id $bundles/cni $runc_root")
	bench ctr "$RUNS" "$WARMUP" "${ctr[@]}"

	if [ "$GO_BENCH" != 0 ]; then
		gobench() { # PACKAGE BENCHTIME PATTERN: the package's test binary, run in its directory
			echo "== go test -bench ./$1/" >&2
			echo "-- $1 (-benchtime $2)"
			(cd "$ROOT/$1" && "$work/$1.test" -test.run '^$' -test.bench "$3" -test.benchtime "$2" 2>&1) |
				grep -E '^(Benchmark|--- |FAIL|ok|PASS|panic)|(Error|error|skip)' || true
		}
		{
			gobench netsetup "$NETSETUP_BENCHTIME" .
			gobench partition "$PARTITION_BENCHTIME" .
			gobench runtime "$RUNTIME_BENCHTIME" 'ContainerStart|RunReachable'
		} >"$work/gobench.txt"
		# The runtime metrics the table shows.
		awk 'BEGIN { key["added-cycle-ms"] = "ctr.goadded"; key["added-start-ms"] = "ctr.gostartadded"
				key["none-start-ms"] = "ctr.gostart"; key["reachable-ms"] = "run3.lib" }
			/^Benchmark(ContainerStart|RunReachable)/ { for (i = 2; i < NF; i++) if ($(i+1) in key) print key[$(i+1)], $i }' \
			"$work/gobench.txt" >>"$results"
	fi

	"$cb" -teardown -dir "$sb"

	# --- the summary ----------------------------------------------------------------------
	echo
	if [ "$GO_BENCH" != 0 ]; then
		echo "Go benchmarks (go test -bench; medians are the p50 / *-ms metrics):"
		cat "$work/gobench.txt"
		echo
	fi
	awk -v runs="$RUNS" -v large="$RUNS_LARGE" -v sizes="$PARTITION_SIZES" '
	{ v[$1] = $2 }
	function has(k) { return (k in v) && v[k] != "" }
	function ms(k) { return has(k) ? fmt(v[k]) : "-" }
	function fmt(x) { return (x < 10 && x > -10) ? sprintf("%.2fms", x) : sprintf("%.1fms", x) }
	function ratio(b, p) { return (has(b) && has(p) && v[p] > 0) ? sprintf("%.1fx", v[b] / v[p]) : "-" }
	function line(op, bl, b, p, rp, l, rl, t, res) {
		printf "%-34s %-32s %10s %12s %8s %12s %8s  %-14s %s\n", op, bl, b, p, rp, l, rl, t, res
	}
	# judge(WHO, OK): "WHO met" / "WHO not met", joined with ", " onto result.
	function judge(who, ok) { result = result (result == "" ? "" : ", ") who (ok ? " met" : " not met") }
	# A row whose target is a minimum speed-up (baseline / pontoon).
	function speedup(op, bl, key, t) {
		result = ""
		if (has(key ".base") && has(key ".proc")) judge("proc", v[key ".base"] / v[key ".proc"] >= t)
		if (has(key ".base") && has(key ".lib")) judge("lib", v[key ".base"] / v[key ".lib"] >= t)
		line(op, bl, ms(key ".base"), ms(key ".proc"), ratio(key ".base", key ".proc"), ms(key ".lib"), ratio(key ".base", key ".lib"), ">= " t "x", result)
	}
	# A row without a target, or with a maximum for the library median (maxlib > 0).
	function plain(op, bl, key, maxlib) {
		result = "-"
		if (maxlib > 0 && has(key ".lib")) { result = ""; judge("lib", v[key ".lib"] < maxlib) }
		line(op, bl, ms(key ".base"), ms(key ".proc"), ratio(key ".base", key ".proc"), ms(key ".lib"), ratio(key ".base", key ".lib"), maxlib > 0 ? "< " maxlib "ms (lib)" : "-", result)
	}
	END {
		line("operation", "baseline", "baseline", "pontoon/proc", "ratio", "pontoon/lib", "ratio", "target", "result")
		speedup("bridge + 3 guests + ping", "shell_chain.sh 3", "bridge3", 10)
		plain("bridge + 10 guests + ping", "shell_chain.sh 10", "bridge10", 0)
		if (has("attach.base")) speedup("guest attach + detach", "cni_bridge.sh", "attach", 20)
		n = split(sizes, sz, " ")
		for (i = 1; i <= n; i++) plain("partition apply, " sz[i] " guests", "iptables_per_guest.sh apply " sz[i], "apply" sz[i], sz[i] == 16 ? 2 : 0)
		for (i = 1; i <= n; i++) plain("partition heal, " sz[i] " guests", "iptables_per_guest.sh heal " sz[i], "heal" sz[i], 0)
		# The hook rows: the pontoon columns are what the hook adds to the same container.
		if (has("ctr.gostartadded")) {
			result = ""
			judge("lib", v["ctr.gostartadded"] < 5)
			line("container start to first output", "runc run, no network", ms("ctr.gostart"), "-", "-", "+" fmt(v["ctr.gostartadded"]), "-", "< 5ms added", result)
		}
		result = ""
		added = has("ctr.hook") && has("ctr.none") ? v["ctr.hook"] - v["ctr.none"] : ""
		if (added != "") judge("proc", added < 5)
		if (has("ctr.goadded")) judge("lib", v["ctr.goadded"] < 5)
		line("container run, start to exit", "runc run, no network", ms("ctr.none"),
			added != "" ? "+" fmt(added) : "-", "-", has("ctr.goadded") ? "+" fmt(v["ctr.goadded"]) : "-", "-", "< 5ms added", result)
		if (has("ctr.cni")) {
			line("container with bridge network", "runc run + CNI bridge plugin", ms("ctr.cni"), ms("ctr.hook"), ratio("ctr.cni", "ctr.hook"), "-", "-", "-", "-")
			if (added != "" && added > 0)
				r = sprintf("%.1fx", (v["ctr.cni"] - v["ctr.none"]) / added)
			else
				r = "-"
			line("  of which networking", "CNI bridge plugin", "+" fmt(v["ctr.cni"] - v["ctr.none"]), added != "" ? "+" fmt(added) : "-", r, "-", "-", "-", "-")
		}
		if (has("run3.lib")) line("pontoon run: 3 children reachable", "-", "-", "-", "-", ms("run3.lib"), "-", "-", "-")
		printf "\nmedians of %d runs (%d for 64 guests); ratio = baseline / pontoon.\n", runs, large
		print "pontoon/proc: a process per operation (chainbench, the pontoon command line, runc with the pontoon binary as hook)."
		print "pontoon/lib: in-process library calls (chainbench); for containers the runtime Go benchmark"
		print "  (runc driven in-process, hook = the test binary, runs alternated and spaced; added = over the same container"
		print "  without network). Container baseline and proc columns: runc run of a busybox true."
	}' "$results"
	exit 0
fi

# --- outside: tools, build, cleanup --------------------------------------------------------
if [ "$(id -u)" != 0 ]; then
	echo "bench/compare.sh: needs root (builds network namespaces)" >&2
	exit 1
fi
for f in shell_chain.sh cni_bridge.sh iptables_per_guest.sh; do
	[ -f "$BASELINES/$f" ] || { echo "bench/compare.sh: baseline $BASELINES/$f not found; set BASELINES" >&2; exit 1; }
done
BASELINES=$(cd "$BASELINES" && pwd)
install_missing() { # PACKAGE: apt-get install, quietly; false when impossible
	command -v apt-get >/dev/null || return 1
	echo "installing $1" >&2
	{ apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$1"; } >/dev/null 2>&1
}
command -v hyperfine >/dev/null || install_missing hyperfine || true
[ -x /usr/lib/cni/bridge ] || install_missing containernetworking-plugins || true
command -v runc >/dev/null || install_missing runc || true
command -v iptables-restore >/dev/null || install_missing iptables || true
dpkg -s busybox-static >/dev/null 2>&1 || install_missing busybox-static || true
for c in runc iptables-restore; do
	command -v $c >/dev/null || { echo "bench/compare.sh: $c is missing and could not be installed" >&2; exit 1; }
done
HYPERFINE=
[ -z "${NO_HYPERFINE:-}" ] && command -v hyperfine >/dev/null && HYPERFINE=1

work=$(mktemp -d /tmp/pontoon-bench.XXXXXX)
id=$$
# left_behind prints whatever outlived the private namespaces: processes still in them (which
# would keep them and everything pinned in them alive), runc containers and their cgroups.
left_behind() {
	[ -s "$work/ns" ] && find /proc/[0-9]*/ns/net /proc/[0-9]*/ns/mnt -printf '%p %l\n' 2>/dev/null |
		awk -v self="$$" 'NR == FNR { ns[$1] = 1; next } ($2 in ns) { split($1, f, "/"); if (f[3] != self) print f[3] }' "$work/ns" - |
		sort -u | while read -r pid; do echo "process $pid: $(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | cut -c1-100)"; done
	[ -d "$work/runc" ] && runc --root "$work/runc" list -q 2>/dev/null | sed 's/^/runc container /'
	for c in pb-none-$id pb-hook-$id cnictr$id; do
		find /sys/fs/cgroup -maxdepth 3 -type d -name "$c" 2>/dev/null | sed 's/^/cgroup /'
	done
	findmnt -rn -o TARGET | grep "^$work/" | sed 's/^/mount /'
}
left=
cleanup() {
	set +e # remove whatever is there, step by step
	left=$(left_behind)
	for c in $([ -d "$work/runc" ] && runc --root "$work/runc" list -q 2>/dev/null); do
		runc --root "$work/runc" delete --force "$c" 2>/dev/null
	done
	findmnt -rn -o TARGET | grep "^$work/" | sort -r | while read -r m; do umount -l "$m"; done
	rm -rf "$work"
	if [ -n "$left" ]; then
		echo "bench/compare.sh: left behind (removed what could be):" >&2
		echo "$left" >&2
	fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM
start=$(date +%s)
(
	cd "$ROOT"
	go build -o "$work/chainbench" ./bench/cmd/chainbench
	go build -o "$work/pontoon" ./cmd/pontoon
	if [ "$GO_BENCH" != 0 ]; then
		for p in netsetup partition runtime; do go test -c -o "$work/$p.test" "./$p/"; done
	fi
)
# A private network namespace, and a private mount namespace with an empty /run/netns: the
# baselines pin their namespaces there under fixed names (bl-gw, ipb-1.., cnibase..), and so
# do the partition package's benchmarks; all of it goes when the run ends, however it ends,
# and cannot meet another run's. chainbench's own sandboxes and the Go benchmarks' temporary
# directories go below the work directory.
mkdir -p /run/netns
PONTOON_BENCH_ID=$id TMPDIR=$work HYPERFINE=$HYPERFINE PONTOON_BENCH_WORK=$work RUNS=$RUNS WARMUP=$WARMUP \
	RUNS_LARGE=$RUNS_LARGE WARMUP_LARGE=$WARMUP_LARGE BASELINES=$BASELINES GO_BENCH=$GO_BENCH \
	NETSETUP_BENCHTIME=$NETSETUP_BENCHTIME PARTITION_BENCHTIME=$PARTITION_BENCHTIME RUNTIME_BENCHTIME=$RUNTIME_BENCHTIME \
	unshare --net --mount --propagation private -- bash "${BASH_SOURCE[0]}"
cleanup
trap - EXIT
[ -n "$left" ] && exit 1
echo "(bench/compare.sh took $(($(date +%s) - start)) s; nothing left behind)"
