#!/bin/bash
# Times pontoon side by side with what users would do instead, in one run: the baselines in
# bench/baselines (the same work done with iproute2/iptables, the CNI bridge plugin, runc and
# podman with its own network, netavark), then runs the Go benchmarks of netsetup, partition
# and runtime, and prints one table of medians, min-max, ratios (baseline / pontoon) and
# targets, and how pontoon's cost grows with size. Writes the same data as JSON. Machines are
# noisy: compare the ratios, not absolute times.
#
#   bridge + 3 / 10 guests + ping + destroy  vs  shell_chain.sh 3 / 10           (>= 10x)
#     and the same by 6 pontoon commands (bench/cli_chain.sh), and how long the kernel
#     holds its rtnl lock after each chain's destroy has returned, and the floor of those 6
#     commands: 6 starts of the trivial binary and the chain done in one process
#   guest attach + detach                    vs  cni_bridge.sh                   (>= 20x)
#   partition apply / heal, 5 16 64 guests   vs  iptables_per_guest.sh apply/heal N
#                                                (apply, 16 guests: < 2 ms, library)
#   random-halves on a full bridge (253 guests), command line and library
#   container start with pontoon's hook      vs  runc run of the same bundle, no network
#                                                (the hook adds <= 3 ms to the start), and
#     the hook's process alone (chainbench -op hook), without a container start around it,
#     and beside it the floor: the kernel's part of its attach alone, the same requests in a
#     Go process of its own (bench/cmd/floorhook)
#   container with bridge networking         vs  runc run + CNI bridge plugin (cni_runc.sh)
#   pontoon run of 3 children until all      vs  podman network create, 3 containers with
#   reach each other                             fixed IPs, ping, remove (podman.sh trio; >= 10x)
#   podman container: --network none, on netavark, with pontoon's hook (podman.sh run)
#   pontoon run of 3 supervised children until all are reachable (Go benchmark)
#   growth: attach of the 10th/50th/200th guest of a bridge, and beside it the same attach
#   by the kernel's part alone (bench/internal/floor), creation of the 10th/100th bridge,
#   partition apply on 10/50/253 guests (library)
#   command-line start, no kernel work       vs  a trivial static Go binary       (<= 1.5x)
#     (pontoon --help, pontoon bridge list of      (bench/cmd/trivial), and beside
#     no bridge)                                   them the --help of the smallest
#                                                  urfave/cli/v2 program (bench/cmd/clihelp)
#   partition change, 16 guests, end to end  vs  the trivial binary               (<= 3x)
#     (isolate after heal, isolate after another isolate, heal)
#
# pontoon is measured twice: a process per operation (bench/cmd/chainbench or the pontoon
# command line against a sandbox, the cost a command-line user pays; runc and podman with the
# pontoon binary as their hook; pontoon run) and in-process (the library alone: chainbench's
# own loop; for containers the runtime package's Go benchmark, which drives runc from Go with
# the pontoon binary as its hook).
# The start-up rows, the partition changes against the trivial binary (bench/cmd/interleave),
# and the 3-children and podman rows run one of each of their commands in turn, round after
# round, so that a change of load on the machine hits both sides alike. Partition apply is timed from
# a healed state and heal from an applied one, on both sides; that preparation is not timed.
# Container runs and the bridge chains are spaced by an untimed pause in which the kernel
# finishes removing the previous run's namespaces; the chains run side by side too.
#
# Everything runs inside a private network namespace and a private mount namespace (with its
# own /run/netns), so neither the baselines (which add links, iptables rules and sysctls to
# the namespace they run in, and pin namespaces under fixed names) nor pontoon (which works in
# a netsetup/sandbox) nor podman (whose configuration, storage and networks live in the run's
# work directory) touch the host's network, and nothing outlives the run. Needs root.
#
# Environment: RUNS (timed runs per command, default 20), WARMUP (default 3), RUNS_LARGE and
# WARMUP_LARGE (for the 64-guest partitions, whose baseline takes ~1 s a run, and the 253-guest
# ones; default 10, 1), BASELINES (default bench/baselines), BENCH_JSON (where the JSON goes;
# default bench/results/DATE.json; "none" writes none), NO_HYPERFINE=1 (time with a shell loop
# even when hyperfine is installed), NO_PODMAN=1 (skip podman), PONTOON_BIN (the pontoon binary
# to measure; default: built here as the Makefile builds it), PONTOON_BEFORE (another pontoon
# binary, e.g. built from an earlier commit, timed in the same run beside it in the start and
# partition rows, for a before/after table), GO_BENCH=0 (skip the Go
# benchmarks), NETSETUP_BENCHTIME, PARTITION_BENCHTIME, RUNTIME_BENCHTIME (go test -benchtime
# of each package; defaults 20x, 200x, 60x), ONLY (the groups to run, of start chain
# partitions containers podman growth; default all), e.g.
#   ONLY="start partitions" GO_BENCH=0 bash bench/compare.sh
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BASELINES=${BASELINES:-$ROOT/bench/baselines}
RUNS=${RUNS:-20}
WARMUP=${WARMUP:-3}
RUNS_LARGE=${RUNS_LARGE:-10}
WARMUP_LARGE=${WARMUP_LARGE:-1}
GO_BENCH=${GO_BENCH:-1}
NETSETUP_BENCHTIME=${NETSETUP_BENCHTIME:-20x}
PARTITION_BENCHTIME=${PARTITION_BENCHTIME:-200x}
RUNTIME_BENCHTIME=${RUNTIME_BENCHTIME:-60x}
PARTITION_SIZES="5 16 64"
GROW_GUESTS="10 50 200"
GROW_BRIDGES="10 100"
GROW_APPLY="10 50 253"
ONLY=${ONLY:-start chain partitions containers podman growth}
# want GROUP: whether ONLY selects the group.
want() { [[ " $ONLY " == *" $1 "* ]]; }
export PATH=$PATH:/usr/local/go/bin

# --- inside the private network namespace -------------------------------------------------
if [ -n "${PONTOON_BENCH_WORK:-}" ]; then
	work=$PONTOON_BENCH_WORK
	id=$PONTOON_BENCH_ID
	cb=$work/chainbench
	pontoon=$work/pontoon
	before= # PONTOON_BEFORE's copy, when given
	[ -x "$work/before" ] && before=$work/before
	# pontoon keeps its state under /run, tmpfs on a standard system: so does the sandbox
	# here (the mount is private to this run's mount namespace and goes with it).
	mkdir -p "$work/tmpfs" && mount -t tmpfs -o mode=0700 tmpfs "$work/tmpfs"
	sb=$work/tmpfs/sandbox
	results=$work/results # lines "KEY MEDIAN [MIN MAX]", milliseconds
	: >"$results"
	# Stop at Ctrl-C (once the running command has ended) instead of going on with the next
	# one; the outer part cleans up.
	trap 'exit 130' INT TERM
	readlink /proc/self/ns/net /proc/self/ns/mnt >"$work/ns"
	mount -t tmpfs -o mode=0755 pontoon-bench-netns /run/netns
	ip link set lo up

	# bench NAME RUNS WARMUP [-p PREPARE] -n LABEL CMD [-p PREPARE] -n LABEL CMD ..: times the
	# commands (PREPARE before each run, not timed) and records each median (and min, max) as
	# NAME.LABEL.
	bench() {
		local name=$1 runs=$2 warm=$3 csv=$work/$1.csv
		shift 3
		echo "-- $name" >&2
		if [ -n "${HYPERFINE:-}" ]; then
			hyperfine -N --style basic -w "$warm" -r "$runs" --export-csv "$csv" "$@" >&2
			# hyperfine's CSV: command,mean,stddev,median,user,system,min,max
			awk -F, -v n="$name" 'NR>1 { printf "%s.%s %.4f %.4f %.4f\n", n, $1, $4*1000, $7*1000, $8*1000 }' "$csv" >>"$results"
			return
		fi
		echo "$name: timing with a shell loop (no hyperfine)" >&2
		local prep="" label=""
		while [ $# -gt 0 ]; do
			case $1 in
			-p) prep=$2; shift 2 ;;
			-n) label=$2; shift 2 ;;
			*)
				echo "$name.$label $(loop_stats "$runs" "$warm" "$prep" "$1")" >>"$results"
				prep="" label=""
				shift
				;;
			esac
		done
	}
	# loop_stats RUNS WARMUP PREPARE CMD: median, min and max of the timed runs of CMD in
	# milliseconds.
	loop_stats() {
		local i t0 t1
		for ((i = 0; i < $1 + $2; i++)); do
			[ -n "$3" ] && $3 >/dev/null
			t0=$(date +%s%N)
			$4 >/dev/null
			t1=$(date +%s%N)
			[ "$i" -ge "$2" ] && echo $(((t1 - t0) / 1000))
		done | sort -n | awk '{ v[NR]=$1 } END { printf "%.4f %.4f %.4f\n", v[int((NR+1)/2)]/1000, v[1]/1000, v[NR]/1000 }'
	}
	# side_by_side NAME RUNS WARMUP [-p PREPARE] -n LABEL CMD ..: like bench, but one run of each
	# command in turn (bench/cmd/interleave), so that a change of load in the middle of the row
	# (other work on the machine) hits all its commands alike rather than the ones that happen
	# to run then. Records NAME.LABEL.
	side_by_side() {
		local name=$1 runs=$2 warm=$3
		shift 3
		echo "-- $name (side by side, $runs runs)" >&2
		"$work/interleave" -runs "$runs" -warmup "$warm" "$@" | awk -v n="$name" '{ print n "." $0 }' >>"$results"
	}
	# in_process KEY ARGS..: chainbench's own median, min and max of RUNS runs (after WARMUP),
	# in ms. A sandbox of chainbench's own (no -dir) goes under TMPDIR: on the tmpfs, as
	# pontoon's state and pins are on a standard system (on this disk's ext4, creating and
	# renaming the state files took ~1.5 ms of a 3 ms attach).
	in_process() {
		local key=$1
		shift
		TMPDIR=$work/tmpfs "$cb" -n "$RUNS" -warmup "$WARMUP" "$@" |
			sed -n 's/.*median_ms=\([0-9.]*\) min_ms=\([0-9.]*\) max_ms=\([0-9.]*\).*/\1 \2 \3/p' |
			awk -v k="$key" '{ print k, $1, $2, $3 }' >>"$results"
	}
	runc_root=$work/runc
	bundles=$sb/bundles
	have_podman=
	[ -z "${NO_PODMAN:-}" ] && command -v podman >/dev/null && [ -x /usr/lib/podman/netavark ] && have_podman=1
	have_cni=
	[ -x /usr/lib/cni/bridge ] && [ -x /usr/lib/cni/host-local ] && have_cni=1

	cni_netns=
	[ -n "$have_cni" ] && cni_netns=/run/netns/cnictr$id
	"$cb" -setup -dir "$sb" -setup-guests "5,10,16,50,64,253" -bundles -pontoon "$pontoon" -cni-netns "$cni_netns"
	# The pontoon command line acts on the sandbox's chain.
	eval "$("$cb" -print-env -dir "$sb")"

	if want start; then
		echo "== start" >&2
		# bridge list on a state directory of its own, with no bridge: the command, not the
		# decoding of the sandbox's hundreds of guests.
		side_by_side start "$RUNS" "$WARMUP" -n base "$work/trivial" -n cli "$work/clihelp --help" -n proc "$pontoon --help" \
			-n list "$pontoon --state-dir $work/tmpfs/empty-state bridge list" \
			${before:+-n before "$before --help" -n beforelist "$before --state-dir $work/tmpfs/empty-state bridge list"}
	fi

	want chain && echo "== chain" >&2
	# Removing a namespace that holds a Linux bridge costs the kernel an rcu_barrier() with
	# the rtnl lock held (br_multicast_dev_del, some 20 ms here), after the command that
	# released it has returned. Back to back, each chain's teardown lands on whichever of
	# the next chain's steps takes the lock then, on every side alike, and the medians
	# jumped between runs. Each run starts after the previous one's teardown, untimed.
	settle="sleep 0.2"
	want chain && for n in 3 10; do
		cli=()
		[ "$n" = 3 ] && cli=(-p "$settle" -n cli "env PONTOON=$pontoon bash $ROOT/bench/cli_chain.sh $n 1")
		side_by_side "bridge$n" "$RUNS" "$WARMUP" -p "$settle" -n base "bash $BASELINES/shell_chain.sh $n 1" \
			-p "$settle" -n proc "$cb -dir $sb -op bridge$n -n 1 -quiet" "${cli[@]}"
		in_process "bridge$n.lib" -op "bridge$n"
	done
	# What each chain leaves the kernel to do once it has returned: the rtnl lock held while
	# the namespaces it released go (bench/cmd/interleave -rtnl).
	want chain && side_by_side teardown "$RUNS_LARGE" 1 -rtnl 400ms -n base "bash $BASELINES/shell_chain.sh 3 1" \
		-n cli "env PONTOON=$pontoon bash $ROOT/bench/cli_chain.sh 3 1"
	if ! want chain; then
		:
	elif [ -n "$have_cni" ]; then
		bench attach "$RUNS" "$WARMUP" -n base "bash $BASELINES/cni_bridge.sh $id" -n proc "$cb -dir $sb -op attach -n 1 -quiet"
		in_process attach.lib -op attach
	else
		echo "attach: /usr/lib/cni/bridge missing (Debian package containernetworking-plugins); skipped" >&2
	fi

	want partitions && {
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
	# A full bridge: the per-pair baseline would take seconds a run, so pontoon alone.
	bench halves253 "$RUNS_LARGE" "$WARMUP_LARGE" \
		-p "$pontoon partition heal --bridge p253" -n proc "$pontoon partition random-halves 7 --bridge p253"
	in_process "halves253.lib" -dir "$sb" -op halves -guests 253
	# The changes end to end against the trivial binary, side by side; "reapply" is one change
	# after another, as a script of commands makes them (the second replaces what the first
	# applied; isolate starts from a healed bridge).
	side_by_side change16 "$RUNS" "$WARMUP" -n base "$work/trivial" \
		-p "$pontoon partition heal --bridge p16" -n isolate "$pontoon partition isolate g1 --bridge p16" \
		-p "$pontoon partition isolate g1 --bridge p16" -n heal "$pontoon partition heal --bridge p16" \
		-p "$pontoon partition isolate g3 --bridge p16" -n reapply "$pontoon partition isolate g2 --bridge p16" \
		${before:+-p "$before partition heal --bridge p16" -n before_isolate "$before partition isolate g1 --bridge p16"} \
		${before:+-p "$before partition isolate g1 --bridge p16" -n before_heal "$before partition heal --bridge p16"} \
		${before:+-p "$before partition isolate g3 --bridge p16" -n before_reapply "$before partition isolate g2 --bridge p16"}
	$pontoon partition heal --bridge p16 >/dev/null
	}

	want containers && {
	echo "== containers" >&2
	# The cni bundle joins cnictr$id, which cni_runc.sh creates around each run.
	ctr=(-p "sleep 0.1" -n none "runc --root $runc_root run --bundle $bundles/none pb-none-$id"
		-p "sleep 0.1" -n hook "runc --root $runc_root run --bundle $bundles/hook pb-hook-$id")
	[ -n "$have_cni" ] && ctr+=(-p "sleep 0.1" -n cni "bash $BASELINES/cni_runc.sh $id $bundles/cni $runc_root")
	bench ctr "$RUNS" "$WARMUP" "${ctr[@]}"
	in_process ctr.hookproc -dir "$sb" -op hook -pontoon "$pontoon"
	in_process ctr.floorhook -dir "$sb" -op floor-hook -floorhook "$work/floorhook"
	}

	if want podman && [ -n "$have_podman" ]; then
		echo "== podman" >&2
		pd=$work/podman
		podman_sh="bash $BASELINES/podman.sh"
		"$pontoon" hook install --podman --dir "$work/hooks.d" >/dev/null
		$podman_sh setup "$pd" "$bundles/rootfs" "$work/hooks.d"
		# The three children's project: the same child script and root as podman's.
		trio=$work/trio
		mkdir -p "$trio"
		cp "$ROOT/bench/trio/child.sh" "$trio/child.sh"
		{
			printf '[commands.trio]\nsupervise = true\nexit = "all"\nroot = { rootfs = "%s" }\n' "$bundles/rootfs"
			for i in 1 2 3; do
				printf '[commands.trio.children.n%d]\nip = "172.18.0.%d"\n' "$i" "$i"
				printf 'run = ["sh", "/work/child.sh", "n%d", "172.18.0.1", "172.18.0.2", "172.18.0.3"]\n' "$i"
			done
		} >"$trio/pontoon.toml"
		printf '#!/bin/sh\nrm -rf %s/sync && mkdir %s/sync\n' "$trio" "$trio" >"$trio/reset"
		chmod +x "$trio/reset"
		side_by_side trio "$RUNS" "$WARMUP" -p "$trio/reset" -n base "$podman_sh trio $pd $trio $id" \
			-p "$trio/reset" -n proc "$pontoon run --project $trio --runtime-root $runc_root trio"
		side_by_side pctr "$RUNS" "$WARMUP" -p "sleep 0.1" -n none "$podman_sh run $pd none" \
			-p "sleep 0.1" -n net "$podman_sh run $pd net" -p "sleep 0.1" -n hook "$podman_sh run $pd hook"
		$podman_sh teardown "$pd"
	fi

	if want growth; then
		echo "== growth" >&2
		# Each size's attach and floor one after the other, so that a change of load meets both.
		for n in $GROW_GUESTS; do
			in_process "grow.attach$n" -op grow-attach -guests "$n"
			in_process "grow.floor$n" -op grow-floor -guests "$n"
		done
		for n in $GROW_BRIDGES; do in_process "grow.bridges$n" -op grow-bridges -bridges "$n"; done
		for n in $GROW_APPLY; do in_process "grow.apply$n" -dir "$sb" -op apply -guests "$n"; done
	fi

	if [ "$GO_BENCH" != 0 ]; then
		gobench() { # PACKAGE BENCHTIME PATTERN: the package's test binary, run in its directory
			echo "== go test -bench ./$1/" >&2
			echo "-- $1 (-benchtime $2)"
			(cd "$ROOT/$1" && TMPDIR=$work/tmpfs "$work/$1.test" -test.run '^$' -test.bench "$3" -test.benchtime "$2" 2>&1) |
				grep -E '^(Benchmark|--- |FAIL|ok|PASS|panic)|(Error|error|skip)' || true
		}
		{
			gobench netsetup "$NETSETUP_BENCHTIME" .
			gobench partition "$PARTITION_BENCHTIME" .
			PONTOON_HOOK_BIN=$pontoon gobench runtime "$RUNTIME_BENCHTIME" 'ContainerStart|RunReachable'
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
	awk -v runs="$RUNS" -v large="$RUNS_LARGE" -v sizes="$PARTITION_SIZES" -v json="$BENCH_JSON" \
		-v date="$(date -u +%Y-%m-%dT%H:%M:%SZ)" -v host="$(uname -n)" -v kernel="$(uname -r)" \
		-v commit="$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)" \
		-f "$ROOT/bench/summary.awk" "$results"
	[ -n "$BENCH_JSON" ] && echo "JSON: $BENCH_JSON"
	exit 0
fi

# --- outside: tools, build, cleanup --------------------------------------------------------
if [ "$(id -u)" != 0 ]; then
	echo "bench/compare.sh: needs root (builds network namespaces)" >&2
	exit 1
fi
for f in shell_chain.sh cni_bridge.sh iptables_per_guest.sh cni_runc.sh podman.sh; do
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
if [ -z "${NO_PODMAN:-}" ]; then
	command -v podman >/dev/null || install_missing podman || true
	[ -x /usr/lib/podman/netavark ] || install_missing netavark || true
	[ -x /usr/lib/podman/netavark ] || echo "bench/compare.sh: netavark is missing; the podman rows are skipped" >&2
fi
for c in runc iptables-restore; do
	command -v $c >/dev/null || { echo "bench/compare.sh: $c is missing and could not be installed" >&2; exit 1; }
done
HYPERFINE=
[ -z "${NO_HYPERFINE:-}" ] && command -v hyperfine >/dev/null && HYPERFINE=1

BENCH_JSON=${BENCH_JSON-$ROOT/bench/results/$(date -u +%Y-%m-%dT%H%M%SZ).json}
[ "$BENCH_JSON" = none ] && BENCH_JSON=
if [ -n "$BENCH_JSON" ]; then
	mkdir -p "$(dirname "$BENCH_JSON")"
	BENCH_JSON=$(cd "$(dirname "$BENCH_JSON")" && pwd)/$(basename "$BENCH_JSON")
fi
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
	# Static, as pontoon's own binaries are: the dynamic loader would add ~1 ms to each
	# process-per-operation row, none of it pontoon's work.
	CGO_ENABLED=0 go build -trimpath -o "$work/chainbench" ./bench/cmd/chainbench
	go build -o "$work/interleave" ./bench/cmd/interleave
	CGO_ENABLED=0 go build -trimpath -o "$work/trivial" ./bench/cmd/trivial
	CGO_ENABLED=0 go build -trimpath -o "$work/floorhook" ./bench/cmd/floorhook
	CGO_ENABLED=0 go build -trimpath -tags urfave_cli_no_docs -o "$work/clihelp" ./bench/cmd/clihelp
	# The pontoon binary users get (the Makefile's build), unless PONTOON_BIN names one.
	[ -n "${PONTOON_BEFORE:-}" ] && cp "$PONTOON_BEFORE" "$work/before"
	if [ -n "${PONTOON_BIN:-}" ]; then
		cp "$PONTOON_BIN" "$work/pontoon"
	else
		CGO_ENABLED=0 go build -trimpath -tags urfave_cli_no_docs -o "$work/pontoon" ./cmd/pontoon
	fi
	if [ "$GO_BENCH" != 0 ]; then
		# Static, as the Makefile builds pontoon (the runtime benchmark is given the pontoon
		# binary as its hook, but its runc is driven from the test binary).
		for p in netsetup partition runtime; do CGO_ENABLED=0 go test -c -o "$work/$p.test" "./$p/"; done
	fi
	# Every binary timed is a copy, as an installed one is: a file just written by the linker
	# started ~10% slower here than a copy of it (its page cache is laid out differently), which
	# favoured whichever side was copied (PONTOON_BIN, PONTOON_BEFORE) over the side built here.
	for f in "$work/trivial" "$work/clihelp" "$work/pontoon" "$work/before" "$work/chainbench" "$work/floorhook"; do
		if [ -f "$f" ]; then cp "$f" "$f.copy" && mv "$f.copy" "$f"; fi
	done
)
# A private network namespace, and a private mount namespace with an empty /run/netns: the
# baselines pin their namespaces there under fixed names (bl-gw, ipb-1.., cnibase..), and so
# do the partition package's benchmarks; all of it goes when the run ends, however it ends,
# and cannot meet another run's. chainbench's own sandboxes and the Go benchmarks' temporary
# directories go below the work directory.
mkdir -p /run/netns
PONTOON_BENCH_ID=$id TMPDIR=$work HYPERFINE=$HYPERFINE PONTOON_BENCH_WORK=$work RUNS=$RUNS WARMUP=$WARMUP \
	RUNS_LARGE=$RUNS_LARGE WARMUP_LARGE=$WARMUP_LARGE BASELINES=$BASELINES GO_BENCH=$GO_BENCH \
	BENCH_JSON=$BENCH_JSON NO_PODMAN=${NO_PODMAN:-} ONLY=$ONLY \
	NETSETUP_BENCHTIME=$NETSETUP_BENCHTIME PARTITION_BENCHTIME=$PARTITION_BENCHTIME RUNTIME_BENCHTIME=$RUNTIME_BENCHTIME \
	unshare --net --mount --propagation private -- bash "${BASH_SOURCE[0]}"
cleanup
trap - EXIT
[ -n "$left" ] && exit 1
echo "(bench/compare.sh took $(($(date +%s) - start)) s; nothing left behind)"
