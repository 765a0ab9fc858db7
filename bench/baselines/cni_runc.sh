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
# shellcheck source=bench/baselines/cni.sh
. "$(dirname "${BASH_SOURCE[0]}")/cni.sh"
cni_setup "$ns" "ctr$id"
ip netns add "$ns"
cni ADD
runc --root "$runc_root" run --bundle "$bundle" "$ns"
cni DEL
ip netns del "$ns"
