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
# shellcheck source=bench/baselines/cni.sh
. "$(dirname "${BASH_SOURCE[0]}")/cni.sh"
cni_setup "$ns" "guest$id"
ip netns add "$ns"
cni ADD
cni DEL
ip netns del "$ns"
