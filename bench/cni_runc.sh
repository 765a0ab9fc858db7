#!/bin/bash
# Baseline for a container with bridge networking, the way container engines do it with CNI:
# a network namespace, the reference CNI bridge plugin's ADD into it (the same configuration
# as ../shared/bench/cni_bridge.sh), `runc run` of a bundle that joins that namespace, the
# plugin's DEL and the namespace's removal.
# Usage: cni_runc.sh ID BUNDLE RUNC_ROOT   (root; needs runc and /usr/lib/cni/bridge and
# host-local). The bundle's config.json must name /run/netns/cnictrID as its network
# namespace (bench/cmd/chainbench -bundles -cni-netns writes such a bundle).
set -e
ID=$1; BUNDLE=$2; ROOT=$3
dir=$(mktemp -d /tmp/cni-runc.XXXXXX)
trap 'rm -rf "$dir"' EXIT
cat > "$dir/conf.json" <<JSON
{"cniVersion":"1.0.0","name":"baseline","type":"bridge","bridge":"cnibase0","isGateway":true,"ipMasq":true,
 "ipam":{"type":"host-local","subnet":"10.250.0.0/24","dataDir":"$dir/ipam"}}
JSON
ip netns add cnictr$ID
export CNI_PATH=/usr/lib/cni CNI_IFNAME=eth0 CNI_NETNS=/run/netns/cnictr$ID CNI_CONTAINERID=ctr$ID
CNI_COMMAND=ADD /usr/lib/cni/bridge < "$dir/conf.json" >/dev/null
runc --root "$ROOT" run --bundle "$BUNDLE" cnictr$ID
CNI_COMMAND=DEL /usr/lib/cni/bridge < "$dir/conf.json" >/dev/null
ip netns del cnictr$ID
