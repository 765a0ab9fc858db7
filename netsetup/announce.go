package netsetup

import (
	"encoding/binary"

	"golang.org/x/sys/unix"
)

// announce broadcasts a gratuitous ARP request for a new guest's IPv4 address from its
// eth0, and an unsolicited neighbour advertisement for its IPv6 address, once its queue is
// active and the bridge forwards through its port. A peer that sent
// to the address before the guest was there (a sibling started at the same time, or the
// bridge's own stack) holds an incomplete neighbour entry, which the kernel asks again for
// only a second later (neigh retrans_time_ms); its packets wait in that entry meanwhile.
// Any ARP from the address, or an advertisement with the override flag, completes such
// entries at once and releases their packets, while peers without one create none. It is best effort: without it the
// peers' own retry still finds the guest.
func announce(gH *handle, g *Guest) {
	link, err := gH.linkByName(GuestIfName)
	if err != nil {
		return
	}
	fd, err := gH.Socket(unix.AF_PACKET, unix.SOCK_DGRAM, int(htons(unix.ETH_P_ARP)))
	if err != nil {
		return
	}
	defer unix.Close(fd)
	mac, ip := GuestMAC(g.IP), g.IP.As4()
	// RFC 826 over Ethernet: a request whose sender and target address are both the guest's.
	pkt := make([]byte, 0, 28)
	pkt = binary.BigEndian.AppendUint16(pkt, 1) // hardware: Ethernet
	pkt = binary.BigEndian.AppendUint16(pkt, unix.ETH_P_IP)
	pkt = append(pkt, 6, 4)
	pkt = binary.BigEndian.AppendUint16(pkt, 1) // request
	pkt = append(pkt, mac...)
	pkt = append(pkt, ip[:]...)
	pkt = append(pkt, make([]byte, 6)...)
	pkt = append(pkt, ip[:]...)
	to := &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ARP), Ifindex: link.Attrs().Index, Halen: 6,
		Addr: [8]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}}
	_ = unix.Sendto(fd, pkt, 0, to)
	if g.IP6.IsValid() {
		advertise6(gH, link.Attrs().Index, g)
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

func htons(v uint16) uint16 { return v<<8 | v>>8 }
