#!/bin/bash
# Baselines with podman on its own network (netavark), the comparison users make, with a
# podman of its own: its configuration, image store, state and networks all live under DIR,
# so it neither sees nor changes the system's podman. Containers run with runc and rlimits
# the sandbox allows; the image is a busybox root filesystem imported once (no registry).
#
# Usage (root; needs podman and netavark; run it in network and mount namespaces of its own,
# as bench/compare.sh does):
#   podman.sh setup DIR ROOTFS HOOKS_DIR  configure, import ROOTFS as the image, create the
#                                         network pbnet (not timed)
#   podman.sh trio DIR PROJECT ID   the counterpart of `pontoon run` of 3 children until all
#                                   reach each other: network create, 3 containers with fixed
#                                   IPs running PROJECT/child.sh (PROJECT mounted at /work),
#                                   wait for all, remove them and the network
#   podman.sh run DIR none|net|hook podman run --rm of `true`: no network (--network none), on
#                                   pbnet, or without network and attached by pontoon's hook to
#                                   the bridge ctr
#   podman.sh teardown DIR          remove every container, network and image of DIR's podman
set -euo pipefail

usage() {
	echo "usage: podman.sh setup DIR ROOTFS HOOKS_DIR | trio DIR PROJECT ID | run DIR none|net|hook | teardown DIR" >&2
	exit 2
}
[ $# -ge 2 ] || usage
op=$1
dir=$2
image=localhost/pontoon-bench:1
export CONTAINERS_CONF=$dir/containers.conf CONTAINERS_STORAGE_CONF=$dir/storage.conf
pm() { podman --runtime runc "$@"; }

case $op in
setup)
	[ $# = 4 ] || usage
	mkdir -p "$dir/networks" "$dir/tmp"
	cat >"$dir/containers.conf" <<CONF
[containers]
default_ulimits = ["nofile=1024:1024", "nproc=1024:1024"]
[network]
network_backend = "netavark"
network_config_dir = "$dir/networks"
[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "none"
tmp_dir = "$dir/tmp"
hooks_dir = ["$4"]
CONF
	cat >"$dir/storage.conf" <<CONF
[storage]
driver = "overlay"
graphroot = "$dir/storage"
runroot = "$dir/run"
CONF
	backend=$(pm info --format '{{.Host.NetworkBackend}}')
	if [ "$backend" != netavark ]; then
		echo "podman.sh: podman uses $backend, not netavark (install the Debian package netavark)" >&2
		exit 1
	fi
	tar -C "$3" -c . | pm import -q - "$image" >/dev/null
	pm network create --disable-dns --subnet 10.89.1.0/24 pbnet >/dev/null
	;;
trio)
	[ $# = 4 ] || usage
	project=$3 net=pbtrio$4
	pm network create --disable-dns --subnet 10.89.2.0/24 --gateway 10.89.2.254 "$net" >/dev/null
	for i in 1 2 3; do
		pm run -d --name "$net-n$i" --network "$net" --ip "10.89.2.$i" -v "$project:/work" \
			"$image" sh /work/child.sh "n$i" 10.89.2.1 10.89.2.2 10.89.2.3 >/dev/null
	done
	codes=$(pm wait "$net-n1" "$net-n2" "$net-n3")
	if [ "$(echo "$codes" | tr -d '0\n')" != "" ]; then
		echo "podman.sh: a child failed (exit codes: $(echo "$codes" | tr '\n' ' '))" >&2
		exit 1
	fi
	pm rm "$net-n1" "$net-n2" "$net-n3" >/dev/null
	pm network rm "$net" >/dev/null
	;;
run)
	[ $# = 3 ] || usage
	case $3 in
	none) pm run --rm --network none "$image" true ;;
	net) pm run --rm --network pbnet "$image" true ;;
	hook)
		pm run --rm --network none --annotation pontoon.bridge=ctr --annotation pontoon.guest=pc \
			--annotation pontoon.ip=172.18.0.2 "$image" true
		;;
	*) usage ;;
	esac
	;;
teardown)
	[ -f "$dir/containers.conf" ] || exit 0
	pm rm -a -f >/dev/null 2>&1 || true
	pm network prune -f >/dev/null 2>&1 || true
	pm rmi -a -f >/dev/null 2>&1 || true
	;;
*) usage ;;
esac
