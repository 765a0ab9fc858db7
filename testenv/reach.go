package testenv

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/pontoon-dev/pontoon/netsetup/ns"
	"github.com/pontoon-dev/pontoon/netsetup/probe"
)

// Ports the Env's own servers listen on inside guests, started on first use. Services under
// test should use other ports.
const (
	// EchoPort is where the TCP and UDP echo servers of Probe listen (probe.Port).
	EchoPort = probe.Port
	// SinkPort is where the UDP receivers of Delivers and MustMatch listen.
	SinkPort = probe.Port + 1
)

// Reach is the outcome of probing from one guest to another: one error per protocol, nil when
// the round trip got through.
type Reach struct {
	From, To       string
	TCP, UDP, ICMP error
}

// All reports whether TCP, UDP and ICMP all got through.
func (r Reach) All() bool { return r.TCP == nil && r.UDP == nil && r.ICMP == nil }

// None reports whether TCP, UDP and ICMP were all lost.
func (r Reach) None() bool { return r.TCP != nil && r.UDP != nil && r.ICMP != nil }

// Err returns nil when every protocol got through, else an error naming each failure.
func (r Reach) Err() error {
	if r.All() {
		return nil
	}
	return errors.New(r.String())
}

// String says what got through, e.g. "n1 -> n2: tcp ok, udp ok, icmp lost (...)".
func (r Reach) String() string {
	parts := make([]string, 0, 3)
	for _, p := range []struct {
		name string
		err  error
	}{{"tcp", r.TCP}, {"udp", r.UDP}, {"icmp", r.ICMP}} {
		if p.err == nil {
			parts = append(parts, p.name+" ok")
		} else {
			parts = append(parts, p.name+" lost ("+p.err.Error()+")")
		}
	}
	return r.From + " -> " + r.To + ": " + strings.Join(parts, ", ")
}

// Probe sends a TCP, a UDP and an ICMP round trip from guest a to guest b (names, addresses or
// hostnames; b named by its IPv6 address is probed over IPv6, else over IPv4) at once, each bounded by the reach timeout, against echo servers the Env starts
// in b on EchoPort. A round trip needs both directions: a one-way block loses it either way
// (see Delivers for one-way checks).
func (e *Env) Probe(a, b string) Reach {
	return e.probe(a, b, e.cfg.reachTimeout)
}

func (e *Env) probe(a, b string, timeout time.Duration) Reach {
	r := Reach{From: a, To: b}
	from, to, err := e.pair(a, b)
	dst := to.dest(b)
	if err == nil {
		err = e.echoServer(to, dst)
	}
	if err != nil {
		r.TCP, r.UDP, r.ICMP = err, err, err
		return r
	}
	var wg sync.WaitGroup
	wg.Add(3)
	go func() { defer wg.Done(); r.TCP = probe.TCP(from.netns, dst, EchoPort, timeout) }()
	go func() { defer wg.Done(); r.UDP = probe.UDP(from.netns, dst, EchoPort, timeout) }()
	go func() { defer wg.Done(); r.ICMP = probe.Ping(from.netns, dst, timeout) }()
	wg.Wait()
	return r
}

// Reachable returns nil when TCP, UDP and ICMP round trips from a to b all get through (see
// Probe), else an error saying which were lost.
func (e *Env) Reachable(a, b string) error { return e.Probe(a, b).Err() }

// CanConnect opens a TCP connection from guest a to port on guest b (a service under test)
// within the reach timeout and closes it again. It returns nil on success.
func (e *Env) CanConnect(a, b string, port int) error {
	from, to, err := e.pair(a, b)
	if err != nil {
		return err
	}
	dst := to.dest(b)
	addr := netip.AddrPortFrom(dst, uint16(port)).String()
	var c net.Conn
	err = ns.Do(from.netns, func() (err error) {
		c, err = net.DialTimeout(network("tcp", dst), addr, e.cfg.reachTimeout)
		return err
	})
	if err != nil {
		return fmt.Errorf("testenv: connect from %s to %s (%s): %w", from.name, to.name, addr, err)
	}
	return c.Close()
}

// Delivers sends one UDP datagram from guest a to a receiver the Env starts in guest b on
// SinkPort and returns nil when it arrives within the reach timeout. Unlike Probe it checks
// one direction only, so it tells a one-way block (Block) apart from a cut in both directions.
func (e *Env) Delivers(a, b string) error { return e.delivers(a, b, e.cfg.reachTimeout) }

func (e *Env) delivers(a, b string, timeout time.Duration) error {
	from, to, err := e.pair(a, b)
	if err != nil {
		return err
	}
	dst := to.dest(b)
	s, err := e.sink(to, dst)
	if err != nil {
		return err
	}
	var tok [8]byte
	rand.Read(tok[:])
	token := "pontoon-sink " + hex.EncodeToString(tok[:])
	got := s.expect(token)
	defer s.forget(token)
	addr := netip.AddrPortFrom(dst, SinkPort).String()
	var c net.Conn
	if err := ns.Do(from.netns, func() (err error) {
		c, err = net.Dial(network("udp", dst), addr)
		return err
	}); err != nil {
		return fmt.Errorf("testenv: udp from %s to %s: %w", from.name, addr, err)
	}
	defer c.Close()
	if _, err := c.Write([]byte(token)); err != nil {
		return fmt.Errorf("testenv: udp from %s to %s: send: %w", from.name, addr, err)
	}
	select {
	case <-got:
		return nil
	case <-time.After(timeout):
		return fmt.Errorf("testenv: udp from %s to %s (%s): not delivered within %s", from.name, to.name, addr, timeout)
	}
}

// MustReach fails the test unless TCP, UDP and ICMP round trips from a to b all get through.
func (e *Env) MustReach(a, b string) {
	e.t.Helper()
	if err := e.Reachable(a, b); err != nil {
		e.t.Fatalf("expected %s to reach %s: %v", a, b, err)
	}
}

// MustNotReach fails the test unless TCP, UDP and ICMP round trips from a to b are all lost
// (each waits the unreach timeout).
func (e *Env) MustNotReach(a, b string) {
	e.t.Helper()
	// Unknown names would make every probe fail, which must not pass as "not reached".
	if _, _, err := e.pair(a, b); err != nil {
		e.t.Fatal(err)
	}
	if r := e.probe(a, b, e.cfg.unreachTimeout); !r.None() {
		e.t.Fatalf("expected %s not to reach %s, but %v", a, b, r)
	}
}

// MustMatch checks every ordered pair of distinct guests at once with Delivers, to each
// address of dst (IPv4, and IPv6 where it has one), and fails the test, listing every
// mismatch, unless packets from src arrive at dst exactly when delivered(src, dst) is true. Pass a partition's rule to check that it is in effect:
//
//	p := env.Isolate("n1")
//	env.MustMatch(func(src, dst string) bool { return !p.Blocks(src, dst) })
func (e *Env) MustMatch(delivered func(src, dst string) bool) {
	e.t.Helper()
	guests := e.Guests()
	// Receivers first, so that a failure to start one is not mistaken for a lost datagram.
	dests := func(g *Guest) []string {
		if g.ip6.IsValid() {
			return []string{g.name, g.ip6.String()}
		}
		return []string{g.name}
	}
	for _, g := range guests {
		for _, d := range dests(g) {
			if _, err := e.sink(g, g.dest(d)); err != nil {
				e.t.Fatal(err)
			}
		}
	}
	var mu sync.Mutex
	var bad []string
	var wg sync.WaitGroup
	for _, a := range guests {
		for _, b := range guests {
			if a == b {
				continue
			}
			want := delivered(a.name, b.name)
			timeout := e.cfg.reachTimeout
			if !want {
				timeout = e.cfg.unreachTimeout
			}
			for _, d := range dests(b) {
				wg.Add(1)
				go func() {
					defer wg.Done()
					err := e.delivers(a.name, d, timeout)
					if got := err == nil; got != want {
						mu.Lock()
						defer mu.Unlock()
						to := b.name
						if d != b.name {
							to += " (" + d + ")"
						}
						if want {
							bad = append(bad, fmt.Sprintf("%s -> %s: expected delivery: %v", a.name, to, err))
						} else {
							bad = append(bad, fmt.Sprintf("%s -> %s: expected loss, but the datagram arrived", a.name, to))
						}
					}
				}()
			}
		}
	}
	wg.Wait()
	slices.Sort(bad)
	if len(bad) > 0 {
		e.t.Fatalf("connectivity differs from what was expected:\n\t%s", strings.Join(bad, "\n\t"))
	}
}

func (e *Env) pair(a, b string) (*Guest, *Guest, error) {
	from, err := e.find(a)
	if err != nil {
		return nil, nil, err
	}
	to, err := e.find(b)
	if err != nil {
		return nil, nil, err
	}
	return from, to, nil
}

// echoServer starts the echo servers in g on its address at once.
func (e *Env) echoServer(g *Guest, at netip.Addr) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.servers == nil {
		return errors.New("testenv: the environment has been cleaned up")
	}
	key := g.name + " " + at.String()
	if _, ok := e.servers[key]; ok {
		return nil
	}
	s, err := probe.Serve(g.netns, at, EchoPort)
	if err != nil {
		return fmt.Errorf("testenv: start echo server in guest %s: %w", g.name, err)
	}
	e.servers[key] = s
	return nil
}

// dest is the address of g that ref names: its IPv6 address when ref is that, else its IPv4
// address.
func (g *Guest) dest(ref string) netip.Addr {
	if g == nil {
		return netip.Addr{}
	}
	if g.ip6.IsValid() && g.ip6.String() == ref {
		return g.ip6
	}
	return g.ip
}

// network is proto ("tcp", "udp") in the family of a.
func network(proto string, a netip.Addr) string {
	if a.Is4() {
		return proto + "4"
	}
	return proto + "6"
}

// sink is a UDP receiver that records the tokens it was told to expect.
type sink struct {
	conn net.PacketConn
	mu   sync.Mutex
	want map[string]chan struct{}
	done chan struct{}
}

func (e *Env) sink(g *Guest, at netip.Addr) (*sink, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.sinks == nil {
		return nil, errors.New("testenv: the environment has been cleaned up")
	}
	key := g.name + " " + at.String()
	if s, ok := e.sinks[key]; ok {
		return s, nil
	}
	s := &sink{want: map[string]chan struct{}{}, done: make(chan struct{})}
	ap := netip.AddrPortFrom(at, SinkPort).String()
	if err := ns.Do(g.netns, func() (err error) {
		s.conn, err = net.ListenPacket(network("udp", at), ap)
		return err
	}); err != nil {
		return nil, fmt.Errorf("testenv: start udp receiver in guest %s: %w", g.name, err)
	}
	go s.serve()
	e.sinks[key] = s
	return s, nil
}

func (s *sink) serve() {
	defer close(s.done)
	buf := make([]byte, 256)
	for {
		n, _, err := s.conn.ReadFrom(buf)
		if err != nil {
			return
		}
		s.mu.Lock()
		if ch, ok := s.want[string(buf[:n])]; ok {
			close(ch)
			delete(s.want, string(buf[:n]))
		}
		s.mu.Unlock()
	}
}

func (s *sink) expect(token string) <-chan struct{} {
	ch := make(chan struct{})
	s.mu.Lock()
	s.want[token] = ch
	s.mu.Unlock()
	return ch
}

func (s *sink) forget(token string) {
	s.mu.Lock()
	delete(s.want, token)
	s.mu.Unlock()
}

// Close stops the receiver.
func (s *sink) Close() {
	s.conn.Close()
	<-s.done
}
