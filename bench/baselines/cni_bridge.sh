#!/bin/bash
# Baseline for `guest attach + detach`: what a container engine does for one container with
# the reference CNI bridge plugin (Debian package containernetworking-plugins): create a
# network namespace, the plugin's ADD (bridge with a gateway address, host-local addresses,
# masquerade), its DEL, remove the namespace.
#
# Usage: cni_bridge.sh ID   (root; needs /usr/lib/cni/bridge and host-local; run it in a
# network namespace of its own, as bench/compare.sh does)
set -euo pipefail

id=${1:?usage: cni_bridge.sh ID}
ns=cniguest$id
tmp=$(mktemp -d "${TMPDIR:-/tmp}/cni-bridge.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
cat >"$tmp/net.json" <<JSON
{"cniVersion": "1.0.0", "name": "bench", "type": "bridge", "bridge": "cnibr0",
 "isGateway": true, "ipMasq": true,
 "ipam": {"type": "host-local", "subnet": "10.250.0.0/24", "dataDir": "$tmp/ipam"}}
JSON
export CNI_PATH=/usr/lib/cni CNI_IFNAME=eth0 CNI_NETNS=/run/netns/$ns CNI_CONTAINERID=guest$id
ip netns add "$ns"
CNI_COMMAND=ADD /usr/lib/cni/bridge <"$tmp/net.json" >/dev/null
CNI_COMMAND=DEL /usr/lib/cni/bridge <"$tmp/net.json" >/dev/null
ip netns del "$ns"
