package netsetup

import (
	"net"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// announce makes a new guest known to the peers that are already waiting for it, once its
// queue is active and the bridge forwards through its port. A peer that sent to the address
// before the guest was there (a sibling started at the same time, or the bridge's own stack)
// holds an incomplete neighbour entry, which the kernel asks again for only a second later
// (neigh retrans_time_ms); its packets wait in that entry meanwhile.
//
// For IPv4 the guest asks for the bridge's address, which it needs anyway: the request is
// broadcast, and any ARP from the guest's address completes such entries at once and
// releases their packets, while peers without one create none (arp_accept is off). The
// kernel sends the request itself (NTF_USE), so no packet socket is opened: closing one
// waits for an RCU grace period. For IPv6 a solicitation reaches only its target, so the
// guest advertises its address to all nodes instead. It is best effort: without it the
// peers' own retry still finds the guest.
func announce(gH *handle, plan Plan, g *Guest) {
	link, err := gH.linkByName(GuestIfName)
	if err != nil {
		return
	}
	idx := link.Attrs().Index
	// The kernel asks only for an address it has no entry for: the guest may have learned
	// the bridge's from a request of the bridge it received while its own replies were still
	// dropped (its queue not yet active), so that entry goes first.
	bridge := &netlink.Neigh{LinkIndex: idx, Family: unix.AF_INET, IP: net.IP(plan.BridgeAddr().Addr().AsSlice())}
	_ = gH.NeighDel(bridge)
	bridge.Flags = netlink.NTF_USE
	_ = gH.NeighSet(bridge)
	if g.IP6.IsValid() {
		advertise6(gH, idx, g)
	}
}

// advertise6 sends the unsolicited advertisement (RFC 4861 7.2.6) to all nodes: override
// set, solicited not, the guest's MAC as the target link-layer address.
func advertise6(gH *handle, ifindex int, g *Guest) {
	fd, err := gH.Socket(unix.AF_INET6, unix.SOCK_RAW, unix.IPPROTO_ICMPV6)
	if err != nil {
		return
	}
	defer unix.Close(fd)
	// Receivers drop neighbour discovery that a router could have forwarded.
	if unix.SetsockoptInt(fd, unix.IPPROTO_IPV6, unix.IPV6_MULTICAST_HOPS, 255) != nil ||
		unix.SetsockoptInt(fd, unix.IPPROTO_IPV6, unix.IPV6_MULTICAST_IF, ifindex) != nil {
		return
	}
	target := g.IP6.As16()
	msg := []byte{136, 0, 0, 0, 0x20, 0, 0, 0} // type, code, checksum (the kernel's), flags: override
	msg = append(msg, target[:]...)
	msg = append(msg, 2, 1) // option: target link-layer address, 8 bytes
	msg = append(msg, GuestMAC(g.IP)...)
	to := &unix.SockaddrInet6{Addr: [16]byte{0: 0xff, 1: 0x02, 15: 0x01}, ZoneId: uint32(ifindex)}
	_ = unix.Sendto(fd, msg, 0, to)
}
