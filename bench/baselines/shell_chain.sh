#!/bin/bash
# Baseline for `bridge + N guests + ping + destroy`: pontoon's chain (gateway namespace, bridge
# namespace with NAT behind it, N guests with fixed addresses on the bridge) built by hand with
# iproute2, sysctl and iptables, then one ping from the first guest to the last, then the bridge
# and its guests removed. The gateway is made on first use and kept, as pontoon's is.
# Addresses are 172.29.x so that it can run beside pontoon's 172.18 plan.
#
# Usage: shell_chain.sh N ID     one bridge (number ID) with N guests (1-253)
#        shell_chain.sh teardown remove the gateway
# Needs root, iproute2, iptables and ping; run it in a network namespace of its own
# (bench/compare.sh does).
set -euo pipefail

gw=sc-gw
if [ "${1:-}" = teardown ]; then
	ip netns del "$gw" 2>/dev/null || true
	ip link del sc-host 2>/dev/null || true
	exit 0
fi
n=${1:?usage: shell_chain.sh N ID}
id=${2:?usage: shell_chain.sh N ID}
br=sc-br$id

if [ ! -e "/run/netns/$gw" ]; then
	ip netns add "$gw"
	ip link add sc-host type veth peer name uplink netns "$gw"
	ip addr add 172.29.255.1/30 dev sc-host
	ip link set sc-host up
	ip -n "$gw" link set lo up
	ip -n "$gw" addr add 172.29.255.2/30 dev uplink
	ip -n "$gw" link set uplink up
	ip -n "$gw" route add default via 172.29.255.1
	ip netns exec "$gw" sysctl -q -w net.ipv4.ip_forward=1
fi

# The bridge namespace, linked to the gateway by a /30 of its own.
base=$((id * 4))
ip netns add "$br"
ip link add "sc-up$id" netns "$gw" type veth peer name eth0 netns "$br"
ip -n "$gw" addr add "172.29.192.$((base + 1))/30" dev "sc-up$id"
ip -n "$gw" link set "sc-up$id" up
ip -n "$br" link set lo up
ip -n "$br" addr add "172.29.192.$((base + 2))/30" dev eth0
ip -n "$br" link set eth0 up
ip -n "$br" route add default via "172.29.192.$((base + 1))"
ip -n "$br" link add br0 type bridge
ip -n "$br" addr add 172.29.0.254/24 dev br0
ip -n "$br" link set br0 up
ip netns exec "$br" sysctl -q -w net.ipv4.ip_forward=1
ip netns exec "$br" iptables -t nat -A POSTROUTING -s 172.29.0.0/24 -o eth0 -j MASQUERADE

# The guests: a namespace each, a veth into the bridge, a fixed address and a default route.
for ((i = 1; i <= n; i++)); do
	g=sc-$id-g$i
	ip netns add "$g"
	ip link add "port$i" netns "$br" type veth peer name eth0 netns "$g"
	ip -n "$br" link set "port$i" master br0
	ip -n "$br" link set "port$i" up
	ip -n "$g" link set lo up
	ip -n "$g" addr add "172.29.0.$i/24" dev eth0
	ip -n "$g" link set eth0 up
	ip -n "$g" route add default via 172.29.0.254
done

ip netns exec "sc-$id-g1" ping -q -c 1 -W 1 "172.29.0.$n" >/dev/null

for ((i = 1; i <= n; i++)); do
	ip netns del "sc-$id-g$i"
done
ip -n "$gw" link del "sc-up$id"
ip netns del "$br"
