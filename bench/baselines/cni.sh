# shellcheck shell=bash
# Sourced by the CNI baselines: the reference bridge plugin's configuration, one network
# namespace, and the plugin's ADD and DEL in it, as a container engine runs them.
# cni_setup NETNS CONTAINERID writes the configuration and exports the CNI variables.
cni_setup() {
	cni_tmp=$(mktemp -d "${TMPDIR:-/tmp}/cni.XXXXXX")
	trap 'rm -rf "$cni_tmp"' EXIT
	cat >"$cni_tmp/net.json" <<JSON
{"cniVersion": "1.0.0", "name": "bench", "type": "bridge", "bridge": "cnibr0",
 "isGateway": true, "ipMasq": true,
 "ipam": {"type": "host-local", "subnet": "10.250.0.0/24", "dataDir": "$cni_tmp/ipam"}}
JSON
	export CNI_PATH=/usr/lib/cni CNI_IFNAME=eth0 CNI_NETNS=/run/netns/$1 CNI_CONTAINERID=$2
}

# cni ADD|DEL runs the plugin in that namespace.
cni() { CNI_COMMAND=$1 /usr/lib/cni/bridge <"$cni_tmp/net.json" >/dev/null; }
