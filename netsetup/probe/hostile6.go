package probe

import (
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"

	"github.com/pontoon-dev/pontoon/netsetup/ns"
	"golang.org/x/sys/unix"
)

// EtherIPv6 is the ethertype of IPv6.
const EtherIPv6 = 0x86dd

// Record6 is Record for IPv6: it listens on every IPv6 address of the namespace.
func Record6(nsPath string, port int) (*Recorder, error) {
	return record(nsPath, "udp6", fmt.Sprintf("[::]:%d", port))
}

// ipv6Packet is an IPv6 packet of the given next header and hop limit, whose upper-layer
// checksum (at offset sum of body, for UDP and ICMPv6) it computes over the pseudo-header.
func ipv6Packet(src, dst netip.Addr, next byte, hops byte, body []byte, sum int) []byte {
	pkt := make([]byte, 40+len(body))
	pkt[0], pkt[6], pkt[7] = 0x60, next, hops
	binary.BigEndian.PutUint16(pkt[4:], uint16(len(body)))
	s, d := src.As16(), dst.As16()
	copy(pkt[8:], s[:])
	copy(pkt[24:], d[:])
	copy(pkt[40:], body)
	var acc uint32
	add := func(b []byte) {
		for i := 0; i+1 < len(b); i += 2 {
			acc += uint32(binary.BigEndian.Uint16(b[i:]))
		}
		if len(b)%2 == 1 {
			acc += uint32(b[len(b)-1]) << 8
		}
	}
	add(s[:])
	add(d[:])
	acc += uint32(len(body)) + uint32(next)
	add(body)
	for acc > 0xffff {
		acc = acc&0xffff + acc>>16
	}
	binary.BigEndian.PutUint16(pkt[40+sum:], ^uint16(acc))
	return pkt
}

// IPv6UDP is an IPv6 packet carrying a UDP datagram to port, checksummed as IPv6 requires.
func IPv6UDP(src, dst netip.Addr, port int, payload string) []byte {
	udp := make([]byte, 8+len(payload))
	binary.BigEndian.PutUint16(udp[0:], uint16(port))
	binary.BigEndian.PutUint16(udp[2:], uint16(port))
	binary.BigEndian.PutUint16(udp[4:], uint16(len(udp)))
	copy(udp[8:], payload)
	return ipv6Packet(src, dst, unix.IPPROTO_UDP, 64, udp, 6)
}

// NeighborAdvert is a neighbour advertisement from src to dst: "target is at mac" (the
// target link-layer address option; none when mac is nil), with the override flag set so
// that receivers replace what they cached.
func NeighborAdvert(src, dst, target netip.Addr, mac net.HardwareAddr) []byte {
	t := target.As16()
	body := append([]byte{136, 0, 0, 0, 0x20, 0, 0, 0}, t[:]...)
	if mac != nil {
		body = append(append(body, 2, 1), mac...)
	}
	return ipv6Packet(src, dst, unix.IPPROTO_ICMPV6, 255, body, 2)
}

// NeighborSolicit is a neighbour solicitation from src for target, saying that src is at mac
// (the source link-layer address option), which the receiver caches.
func NeighborSolicit(src, dst, target netip.Addr, mac net.HardwareAddr) []byte {
	t := target.As16()
	body := append([]byte{135, 0, 0, 0, 0, 0, 0, 0}, t[:]...)
	body = append(append(body, 1, 1), mac...)
	return ipv6Packet(src, dst, unix.IPPROTO_ICMPV6, 255, body, 2)
}

// RouterAdvert is a router advertisement from src to all nodes offering itself as default
// router for an hour.
func RouterAdvert(src netip.Addr, mac net.HardwareAddr) []byte {
	body := []byte{134, 0, 0, 0, 64, 0, 0x0e, 0x10, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1}
	body = append(body, mac...)
	return ipv6Packet(src, netip.MustParseAddr("ff02::1"), unix.IPPROTO_ICMPV6, 255, body, 2)
}

// SendUDP6 is SendUDP over IPv6.
func SendUDP6(nsPath string, from, to netip.Addr, port int, payload string) error {
	return ns.Do(nsPath, func() error {
		c, err := net.DialUDP("udp6", &net.UDPAddr{IP: from.AsSlice()}, &net.UDPAddr{IP: to.AsSlice(), Port: port})
		if err != nil {
			return err
		}
		defer c.Close()
		_, err = c.Write([]byte(payload))
		return err
	})
}
