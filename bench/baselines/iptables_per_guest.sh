#!/bin/bash
# Baseline for `partition apply / heal`: a partition applied inside the guests, the way
# per-guest tools (vagga's, and most test harnesses) do it: one iptables-restore per guest
# network namespace replacing that guest's filter table, one guest after another.
# apply isolates guest 1 (it drops every other guest, every other guest drops it); heal
# restores full connectivity.
#
# Usage (root; needs iproute2 and iptables; run it in a network namespace of its own):
#   iptables_per_guest.sh setup N     create guest namespaces ipg-1..ipg-N (not timed)
#   iptables_per_guest.sh apply N     isolate guest 1 of guests 1..N
#   iptables_per_guest.sh heal N      back to full connectivity
#   iptables_per_guest.sh teardown N  remove the namespaces
set -euo pipefail

op=${1:?usage: iptables_per_guest.sh setup|apply|heal|teardown N}
n=${2:?usage: iptables_per_guest.sh setup|apply|heal|teardown N}

# table GUEST: the filter table of guest GUEST for $op, in iptables-restore's format.
table() {
	local j
	printf '*filter\n:INPUT ACCEPT [0:0]\n:FORWARD DROP [0:0]\n:OUTPUT ACCEPT [0:0]\n'
	if [ "$op" = apply ]; then
		if [ "$1" = 1 ]; then
			for ((j = 2; j <= n; j++)); do
				echo "-A INPUT -s 172.29.0.$j/32 -j DROP"
			done
		else
			echo "-A INPUT -s 172.29.0.1/32 -j DROP"
		fi
	fi
	echo COMMIT
}

case $op in
setup)
	for ((i = 1; i <= n; i++)); do ip netns add "ipg-$i"; done
	;;
teardown)
	for ((i = 1; i <= n; i++)); do ip netns del "ipg-$i" 2>/dev/null || true; done
	;;
apply | heal)
	for ((i = 1; i <= n; i++)); do
		table "$i" | ip netns exec "ipg-$i" iptables-restore
	done
	;;
*)
	echo "usage: iptables_per_guest.sh setup|apply|heal|teardown N" >&2
	exit 2
	;;
esac
