package partition

import (
	"github.com/pontoon-dev/pontoon/netsetup/ns"
	"golang.org/x/sys/unix"
)

// socketIn opens an nftables socket in the network namespace at nsPath.
func socketIn(nsPath string) (int, error) {
	return ns.Socket(nsPath, unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, unix.NETLINK_NETFILTER)
}
