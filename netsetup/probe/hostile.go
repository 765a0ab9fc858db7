package probe

import (
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/pontoon-dev/pontoon/netsetup/ns"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// What a guest that is root in its namespace can send: datagrams with any source address,
// and Ethernet frames of any kind to any MAC. Tests use these to check that the bridge and
// the partitions judge a guest by its port, not by what its packets claim.

// Recorder keeps the payload and source address of every UDP datagram to one port of a
// namespace.
type Recorder struct {
	pc   net.PacketConn
	done chan struct{}
	mu   sync.Mutex
	got  map[string]netip.Addr
}

// Record listens on every address of the namespace at nsPath, on UDP port port, until Close.
func Record(nsPath string, port int) (*Recorder, error) {
	return record(nsPath, "udp4", fmt.Sprintf("0.0.0.0:%d", port))
}

func record(nsPath, network, addr string) (*Recorder, error) {
	r := &Recorder{got: map[string]netip.Addr{}, done: make(chan struct{})}
	err := ns.Do(nsPath, func() (err error) {
		r.pc, err = net.ListenPacket(network, addr)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("listen on %s %s in %s: %w", network, addr, nsPath, err)
	}
	go func() {
		defer close(r.done)
		buf := make([]byte, 512)
		for {
			n, from, err := r.pc.ReadFrom(buf)
			if err != nil {
				return
			}
			r.mu.Lock()
			r.got[string(buf[:n])] = from.(*net.UDPAddr).AddrPort().Addr().Unmap()
			r.mu.Unlock()
		}
	}()
	return r, nil
}

// Close stops recording.
func (r *Recorder) Close() { r.pc.Close(); <-r.done }

// Source returns the source address of the datagram that carried payload, if one arrived.
func (r *Recorder) Source(payload string) (netip.Addr, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	a, ok := r.got[payload]
	return a, ok
}

// WaitFor polls until payload has arrived or timeout has passed.
func (r *Recorder) WaitFor(payload string, timeout time.Duration) bool {
	for deadline := time.Now().Add(timeout); time.Now().Before(deadline); time.Sleep(2 * time.Millisecond) {
		if _, ok := r.Source(payload); ok {
			return true
		}
	}
	return false
}

// IPv4UDP is an IPv4 packet carrying a UDP datagram to port, with its header checksum; the
// UDP checksum is left out, as IPv4 allows.
func IPv4UDP(src, dst netip.Addr, port int, payload string) []byte {
	pkt := make([]byte, 28+len(payload))
	pkt[0], pkt[8], pkt[9] = 0x45, 64, unix.IPPROTO_UDP
	binary.BigEndian.PutUint16(pkt[2:], uint16(len(pkt)))
	s, d := src.As4(), dst.As4()
	copy(pkt[12:], s[:])
	copy(pkt[16:], d[:])
	var sum uint32
	for i := 0; i < 20; i += 2 {
		sum += uint32(binary.BigEndian.Uint16(pkt[i:]))
	}
	for sum > 0xffff {
		sum = sum&0xffff + sum>>16
	}
	binary.BigEndian.PutUint16(pkt[10:], ^uint16(sum))
	binary.BigEndian.PutUint16(pkt[20:], uint16(port)) // source port: any will do
	binary.BigEndian.PutUint16(pkt[22:], uint16(port))
	binary.BigEndian.PutUint16(pkt[24:], uint16(8+len(payload)))
	copy(pkt[28:], payload)
	return pkt
}

// SendRawUDP sends from inside nsPath a UDP datagram whose IPv4 header it writes itself, as a
// root process with CAP_NET_RAW can: the kernel sends the source address as given.
func SendRawUDP(nsPath string, src, dst netip.Addr, port int, payload string) error {
	return ns.Do(nsPath, func() error {
		fd, err := unix.Socket(unix.AF_INET, unix.SOCK_RAW, unix.IPPROTO_RAW) // implies IP_HDRINCL
		if err != nil {
			return fmt.Errorf("raw socket: %w", err)
		}
		defer unix.Close(fd)
		if err := unix.Sendto(fd, IPv4UDP(src, dst, port, payload), 0, &unix.SockaddrInet4{Addr: dst.As4()}); err != nil {
			return fmt.Errorf("send from %s to %s: %w", src, dst, err)
		}
		return nil
	})
}

// SendUDP sends a datagram from inside nsPath, from one of its addresses to port of another.
func SendUDP(nsPath string, from, to netip.Addr, port int, payload string) error {
	return ns.Do(nsPath, func() error {
		c, err := net.DialUDP("udp4", &net.UDPAddr{IP: from.AsSlice()}, &net.UDPAddr{IP: to.AsSlice(), Port: port})
		if err != nil {
			return err
		}
		defer c.Close()
		_, err = c.Write([]byte(payload))
		return err
	})
}

// Ethertypes of the frames tests send.
const (
	EtherIPv4 = 0x0800
	EtherARP  = 0x0806
)

// Frame is an Ethernet frame.
func Frame(dst, src net.HardwareAddr, ethertype uint16, body []byte) []byte {
	f := append(append(append([]byte{}, dst...), src...), byte(ethertype>>8), byte(ethertype))
	return append(f, body...)
}

// GARP is the body of a gratuitous ARP request: "ip is at mac".
func GARP(mac net.HardwareAddr, ip netip.Addr) []byte { return ARPRequest(mac, ip, ip) }

// ARPRequest is the body of an ARP request from sender (at mac) for target.
func ARPRequest(mac net.HardwareAddr, sender, target netip.Addr) []byte {
	s, t := sender.As4(), target.As4()
	body := []byte{0, 1, 8, 0, 6, 4, 0, 1} // Ethernet, IPv4, lengths 6 and 4, request
	body = append(append(body, mac...), s[:]...)
	return append(append(body, make([]byte, 6)...), t[:]...)
}

// Broadcast is the Ethernet broadcast address.
var Broadcast = net.HardwareAddr{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}

// SendFrames sends Ethernet frames from eth0 inside nsPath through one packet socket, in
// order, as a root process with CAP_NET_RAW can.
func SendFrames(nsPath string, frames ...[]byte) error {
	return ns.Do(nsPath, func() error {
		l, err := netlink.LinkByName("eth0")
		if err != nil {
			return err
		}
		fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW, 0)
		if err != nil {
			return fmt.Errorf("packet socket: %w", err)
		}
		defer unix.Close(fd)
		for _, f := range frames {
			to := &unix.SockaddrLinklayer{Ifindex: l.Attrs().Index, Halen: 6}
			copy(to.Addr[:], f[:6])
			// A veth has no queue: when the peer's backlog is full the frame is dropped and
			// the send says ENOBUFS. A flood on a slow machine (an emulated VM) meets that; the
			// frame is sent again once the backlog drains, as a sender that wants it through would.
			err := unix.Sendto(fd, f, 0, to)
			for wait := time.Millisecond; err == unix.ENOBUFS && wait < time.Second; wait *= 2 {
				time.Sleep(wait)
				err = unix.Sendto(fd, f, 0, to)
			}
			if err != nil {
				return fmt.Errorf("send frame: %w", err)
			}
		}
		return nil
	})
}
