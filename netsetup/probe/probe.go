// Package probe checks reachability between network namespaces with real TCP, UDP and ICMP
// traffic. Sockets are opened inside the namespace they belong to and keep it afterwards, so
// the servers run on ordinary goroutines once started.
package probe

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"sync"
	"time"

	"github.com/pontoon-dev/pontoon/netsetup/ns"
	"golang.org/x/net/icmp"
	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"
)

// network names the Go network of proto ("tcp", "udp") in addr's family, so that an IPv4
// probe never goes out as IPv6 or the other way round.
func network(proto string, addr netip.Addr) string {
	if addr.Is4() {
		return proto + "4"
	}
	return proto + "6"
}

// Port is where echo servers listen unless told otherwise.
const Port = 7357

// Server is a TCP and UDP echo server inside one namespace.
type Server struct {
	tcp  net.Listener
	udp  net.PacketConn
	wg   sync.WaitGroup
	once sync.Once
}

// Serve starts TCP and UDP echo servers on addr:port (IPv4 or IPv6) inside the namespace at
// nsPath.
func Serve(nsPath string, addr netip.Addr, port int) (*Server, error) {
	s := &Server{}
	ap := netip.AddrPortFrom(addr, uint16(port)).String()
	err := ns.Do(nsPath, func() (err error) {
		if s.tcp, err = net.Listen(network("tcp", addr), ap); err != nil {
			return err
		}
		s.udp, err = net.ListenPacket(network("udp", addr), ap)
		return err
	})
	if err != nil {
		s.Close()
		return nil, fmt.Errorf("probe: serve on %s in %s: %w", ap, nsPath, err)
	}
	s.wg.Add(2)
	go s.serveTCP()
	go s.serveUDP()
	return s, nil
}

func (s *Server) serveTCP() {
	defer s.wg.Done()
	for {
		c, err := s.tcp.Accept()
		if err != nil {
			return
		}
		go func() {
			defer c.Close()
			io.Copy(c, c)
		}()
	}
}

func (s *Server) serveUDP() {
	defer s.wg.Done()
	buf := make([]byte, 2048)
	for {
		n, from, err := s.udp.ReadFrom(buf)
		if err != nil {
			return
		}
		s.udp.WriteTo(buf[:n], from)
	}
}

// Close stops the servers.
func (s *Server) Close() {
	s.once.Do(func() {
		if s.tcp != nil {
			s.tcp.Close()
		}
		if s.udp != nil {
			s.udp.Close()
		}
		s.wg.Wait()
	})
}

var payload = []byte("pontoon-probe")

// TCP connects from the namespace at nsPath to addr:port and checks an echo round trip.
func TCP(nsPath string, addr netip.Addr, port int, timeout time.Duration) error {
	var c net.Conn
	ap := netip.AddrPortFrom(addr, uint16(port)).String()
	err := ns.Do(nsPath, func() (err error) {
		d := net.Dialer{Timeout: timeout}
		c, err = d.Dial(network("tcp", addr), ap)
		return err
	})
	if err != nil {
		return fmt.Errorf("tcp %s: %w", ap, err)
	}
	defer c.Close()
	return echo(c, timeout)
}

// UDP sends a datagram from the namespace at nsPath to addr:port and waits for its echo.
func UDP(nsPath string, addr netip.Addr, port int, timeout time.Duration) error {
	var c net.Conn
	ap := netip.AddrPortFrom(addr, uint16(port)).String()
	err := ns.Do(nsPath, func() (err error) {
		c, err = net.Dial(network("udp", addr), ap)
		return err
	})
	if err != nil {
		return fmt.Errorf("udp %s: %w", ap, err)
	}
	defer c.Close()
	return echo(c, timeout)
}

func echo(c net.Conn, timeout time.Duration) error {
	c.SetDeadline(time.Now().Add(timeout))
	if _, err := c.Write(payload); err != nil {
		return fmt.Errorf("%s %s: write: %w", c.LocalAddr().Network(), c.RemoteAddr(), err)
	}
	buf := make([]byte, len(payload))
	if _, err := io.ReadFull(c, buf); err != nil {
		return fmt.Errorf("%s %s: no echo: %w", c.LocalAddr().Network(), c.RemoteAddr(), err)
	}
	if !bytes.Equal(buf, payload) {
		return fmt.Errorf("%s %s: wrong echo %q", c.LocalAddr().Network(), c.RemoteAddr(), buf)
	}
	return nil
}

// Ping sends one ICMP (or ICMPv6) echo request from the namespace at nsPath and waits for the
// reply.
func Ping(nsPath string, addr netip.Addr, timeout time.Duration) error {
	listen, from0, proto := "ip4:icmp", "0.0.0.0", 1
	var echoReq, echoReply, unreach icmp.Type = ipv4.ICMPTypeEcho, ipv4.ICMPTypeEchoReply, ipv4.ICMPTypeDestinationUnreachable
	if !addr.Is4() {
		listen, from0, proto = "ip6:ipv6-icmp", "::", 58
		echoReq, echoReply, unreach = ipv6.ICMPTypeEchoRequest, ipv6.ICMPTypeEchoReply, ipv6.ICMPTypeDestinationUnreachable
	}
	var c *icmp.PacketConn
	err := ns.Do(nsPath, func() (err error) {
		c, err = icmp.ListenPacket(listen, from0)
		return err
	})
	if err != nil {
		return fmt.Errorf("icmp %s: %w", addr, err)
	}
	defer c.Close()
	id := os.Getpid() & 0xffff
	seq := int(time.Now().UnixNano() & 0x7fff)
	msg := icmp.Message{Type: echoReq, Body: &icmp.Echo{ID: id, Seq: seq, Data: payload}}
	// The kernel computes the ICMPv6 checksum of a raw socket's message itself.
	b, _ := msg.Marshal(nil)
	dst := &net.IPAddr{IP: addr.AsSlice()}
	if _, err := c.WriteTo(b, dst); err != nil {
		return fmt.Errorf("icmp %s: send: %w", addr, err)
	}
	deadline := time.Now().Add(timeout)
	c.SetReadDeadline(deadline)
	buf := make([]byte, 1500)
	for {
		n, from, err := c.ReadFrom(buf)
		if err != nil {
			return fmt.Errorf("icmp %s: no reply: %w", addr, err)
		}
		m, err := icmp.ParseMessage(proto, buf[:n])
		if err != nil {
			continue
		}
		if e, ok := m.Body.(*icmp.Echo); ok && m.Type == echoReply && e.Seq == seq && from.String() == addr.String() {
			return nil
		}
		if m.Type == unreach && from != nil {
			return fmt.Errorf("icmp %s: destination unreachable (from %s)", addr, from)
		}
	}
}

// All runs TCP, UDP and ICMP probes and returns every failure.
func All(nsPath string, addr netip.Addr, port int, timeout time.Duration) error {
	var wg sync.WaitGroup
	errs := make([]error, 3)
	for i, f := range []func() error{
		func() error { return TCP(nsPath, addr, port, timeout) },
		func() error { return UDP(nsPath, addr, port, timeout) },
		func() error { return Ping(nsPath, addr, timeout) },
	} {
		wg.Add(1)
		go func() { defer wg.Done(); errs[i] = f() }()
	}
	wg.Wait()
	return errors.Join(errs...)
}
