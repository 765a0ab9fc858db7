#!/bin/bash
# Baseline for `container with bridge networking`: what a container engine does with CNI: a
# network namespace, the reference CNI bridge plugin's ADD into it (the configuration of
# cni_bridge.sh), `runc run` of a bundle that joins that namespace, the plugin's DEL and the
# namespace's removal.
#
# Usage: cni_runc.sh ID BUNDLE RUNC_ROOT   (root; needs runc, /usr/lib/cni/bridge and
# host-local). The bundle's config.json must name /run/netns/cnictrID as its network
# namespace (bench/cmd/chainbench -bundles -cni-netns writes such a bundle).
set -euo pipefail

id=${1:?usage: cni_runc.sh ID BUNDLE RUNC_ROOT}
bundle=${2:?usage: cni_runc.sh ID BUNDLE RUNC_ROOT}
runc_root=${3:?usage: cni_runc.sh ID BUNDLE RUNC_ROOT}
ns=cnictr$id
tmp=$(mktemp -d "${TMPDIR:-/tmp}/cni-runc.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
cat >"$tmp/net.json" <<JSON
{"cniVersion": "1.0.0", "name": "bench", "type": "bridge", "bridge": "cnibr0",
 "isGateway": true, "ipMasq": true,
 "ipam": {"type": "host-local", "subnet": "10.250.0.0/24", "dataDir": "$tmp/ipam"}}
JSON
export CNI_PATH=/usr/lib/cni CNI_IFNAME=eth0 CNI_NETNS=/run/netns/$ns CNI_CONTAINERID=ctr$id
ip netns add "$ns"
CNI_COMMAND=ADD /usr/lib/cni/bridge <"$tmp/net.json" >/dev/null
runc --root "$runc_root" run --bundle "$bundle" "$ns"
CNI_COMMAND=DEL /usr/lib/cni/bridge <"$tmp/net.json" >/dev/null
ip netns del "$ns"
