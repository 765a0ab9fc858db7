#!/bin/bash
# Times pontoon's chain operations side by side with the baselines in ../shared/bench (the
# same work done with iproute2/iptables and with the CNI bridge plugin), in one run, and prints
# medians and speed-up ratios. Machines are noisy: compare the ratios, not absolute times.
#
#   pontoon bridge + 3 guests + ping + destroy   vs  shell_chain.sh 3   (target >= 10x)
#   pontoon bridge + 10 guests + ping + destroy  vs  shell_chain.sh 10
#   pontoon guest attach + detach                vs  cni_bridge.sh      (target >= 20x)
#
# pontoon is measured twice: a process per operation (bench/cmd/chainbench against a
# sandbox, the cost a command-line user pays) and in-process (the library alone).
#
# Everything runs inside a private network namespace, so neither the baselines (which add
# links, iptables rules and sysctls to the namespace they run in) nor pontoon (which works in
# a netsetup/sandbox) touch the host's network. Needs root.
#
# Environment: RUNS (timed runs per command, default 20), WARMUP (default 3),
# BASELINES (default ../shared/bench relative to the repository root), NO_HYPERFINE=1 (time
# with a shell loop even when hyperfine is installed).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BASELINES=${BASELINES:-$ROOT/../shared/bench}
RUNS=${RUNS:-20}
WARMUP=${WARMUP:-3}
export PATH=$PATH:/usr/local/go/bin

# --- inside the private network namespace -------------------------------------------------
if [ -n "${PONTOON_BENCH_WORK:-}" ]; then
	work=$PONTOON_BENCH_WORK
	cb=$work/chainbench
	sb=$work/sandbox
	ip link set lo up
	# time_pair NAME BASELINE_CMD PONTOON_CMD: medians in seconds, one line "NAME base pontoon".
	time_pair() {
		local name=$1 base=$2 pont=$3 csv=$work/$1.csv
		if [ -n "${HYPERFINE:-}" ]; then
			hyperfine -N --style basic -w "$WARMUP" -r "$RUNS" --export-csv "$csv" \
				-n baseline "$base" -n pontoon "$pont" >&2
			# hyperfine's CSV: command,mean,stddev,median,...
			awk -F, -v n="$name" 'NR>1 { m[$1]=$4 } END { print n, m["baseline"], m["pontoon"] }' "$csv"
		else
			echo "$name: timing with a shell loop (no hyperfine)" >&2
			local b p
			b=$(loop_median "$base")
			p=$(loop_median "$pont")
			echo "$name $b $p"
		fi
	}
	# loop_median CMD: runs CMD WARMUP+RUNS times, prints the median of the timed runs in seconds.
	loop_median() {
		local i t0 t1
		for ((i = 0; i < WARMUP + RUNS; i++)); do
			t0=$(date +%s%N)
			$1 >/dev/null
			t1=$(date +%s%N)
			[ "$i" -ge "$WARMUP" ] && echo $(((t1 - t0) / 1000))
		done | sort -n | awk '{ v[NR]=$1 } END { printf "%.6f\n", v[int((NR+1)/2)]/1e6 }'
	}
	# in_process OP: chainbench's own median, in seconds.
	in_process() {
		"$cb" -op "$1" -n "$RUNS" -warmup "$WARMUP" | sed -n 's/.*median_ms=\([0-9.]*\).*/\1/p' | awk '{ printf "%.6f\n", $1/1000 }'
	}

	"$cb" -setup -dir "$sb"
	results=$work/results
	: >"$results"
	for n in 3 10; do
		line=$(time_pair "bridge$n" "bash $BASELINES/shell_chain.sh $n 1" "$cb -dir $sb -op bridge$n -n 1 -quiet")
		echo "$line $(in_process "bridge$n")" >>"$results"
	done
	if [ -x /usr/lib/cni/bridge ] && [ -x /usr/lib/cni/host-local ]; then
		line=$(time_pair attach "bash $BASELINES/cni_bridge.sh $PONTOON_BENCH_ID" "$cb -dir $sb -op attach -n 1 -quiet")
		echo "$line $(in_process attach)" >>"$results"
	else
		echo "attach: /usr/lib/cni/bridge missing (Debian package containernetworking-plugins); skipped" >&2
	fi
	"$cb" -teardown -dir "$sb"

	echo
	printf '%-26s %-22s %12s %14s %8s %14s %8s %s\n' operation baseline "baseline" "pontoon/proc" ratio "pontoon/lib" ratio target
	while read -r name base proc lib; do
		case $name in
		bridge3) what="bridge + 3 guests"; bl="shell_chain.sh 3"; target=10 ;;
		bridge10) what="bridge + 10 guests"; bl="shell_chain.sh 10"; target=10 ;;
		attach) what="guest attach + detach"; bl="cni_bridge.sh"; target=20 ;;
		esac
		awk -v w="$what" -v bl="$bl" -v b="$base" -v p="$proc" -v l="$lib" -v t="$target" 'BEGIN {
			rp = b / p; rl = b / l
			printf "%-26s %-22s %10.1fms %12.1fms %7.1fx %12.1fms %7.1fx >=%dx (%s)\n", w, bl, b*1000, p*1000, rp, l*1000, rl, t, (rp >= t ? "met" : "not met")
		}'
	done <"$results"
	echo "(medians of $RUNS runs; pontoon/proc = one process per operation, pontoon/lib = in-process library calls; ratio = baseline / pontoon)"
	exit 0
fi

# --- outside: tools, build, cleanup --------------------------------------------------------
if [ "$(id -u)" != 0 ]; then
	echo "bench/compare.sh: needs root (builds network namespaces)" >&2
	exit 1
fi
for f in shell_chain.sh cni_bridge.sh; do
	[ -f "$BASELINES/$f" ] || { echo "bench/compare.sh: baseline $BASELINES/$f not found; set BASELINES" >&2; exit 1; }
done
# shell_chain.sh keeps its gateway in the global namespace name bl-gw: one left by another run
# would be shared with (and removed by) this one.
if ip netns list | grep -qw bl-gw; then
	echo "bench/compare.sh: a namespace bl-gw already exists (another shell_chain.sh run?); remove it with 'ip netns del bl-gw' and retry" >&2
	exit 1
fi
install_missing() { # PACKAGE: apt-get install, quietly; false when impossible
	command -v apt-get >/dev/null || return 1
	echo "installing $1" >&2
	{ apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$1"; } >/dev/null 2>&1
}
command -v hyperfine >/dev/null || install_missing hyperfine || true
[ -x /usr/lib/cni/bridge ] || install_missing containernetworking-plugins || true
HYPERFINE=
[ -z "${NO_HYPERFINE:-}" ] && command -v hyperfine >/dev/null && HYPERFINE=1

work=$(mktemp -d /tmp/pontoon-bench.XXXXXX)
cleanup() {
	set +e # remove whatever is there, step by step
	[ -f "$work/sandbox/sandbox.json" ] && "$work/chainbench" -teardown -dir "$work/sandbox" 2>/dev/null
	# shell_chain.sh leaves bl-gw and bl-host behind: bl-host lived in the private namespace
	# and went with it; the pinned bl-gw must be deleted.
	ip netns del bl-gw 2>/dev/null
	for n in /run/netns/bl-br1 /run/netns/bl-b1-g* /run/netns/cnibase$$; do
		[ -e "$n" ] && ip netns del "$(basename "$n")" 2>/dev/null
	done
	# Anything still pinned below the work directory (a run interrupted mid-way).
	findmnt -rn -o TARGET | grep "^$work/" | sort -r | while read -r m; do umount -l "$m"; done
	rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
(cd "$ROOT" && GOFLAGS=-mod=mod go build -o "$work/chainbench" ./bench/cmd/chainbench)
# chainbench's own sandboxes go below the work directory too, so cleanup finds them.
PONTOON_BENCH_ID=$$ TMPDIR=$work HYPERFINE=$HYPERFINE PONTOON_BENCH_WORK=$work RUNS=$RUNS WARMUP=$WARMUP BASELINES=$BASELINES \
	unshare --net -- bash "${BASH_SOURCE[0]}"
