package names_test

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/pontoon-dev/pontoon/internal/testkit"
	"github.com/pontoon-dev/pontoon/names"
	"github.com/pontoon-dev/pontoon/testenv"
)

// exchangeMsg sends m from guest g to the name server over network (udp or tcp) with
// miekg/dns's client, which checks the answer's ID and question.
func exchangeMsg(t testing.TB, g *testenv.Guest, env *testenv.Env, network string, m *dns.Msg) (*dns.Msg, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	conn, err := g.DialContext(ctx, network, netip.AddrPortFrom(env.BridgeAddr(), names.Port).String())
	if err != nil {
		return nil, err
	}
	co := &dns.Conn{Conn: conn}
	defer co.Close()
	r, _, err := (&dns.Client{Net: network}).ExchangeWithConn(m, co)
	return r, err
}

func addrs(rrs []dns.RR) []string {
	var out []string
	for _, rr := range rrs {
		switch rr := rr.(type) {
		case *dns.A:
			out = append(out, rr.A.String())
		case *dns.AAAA:
			out = append(out, rr.AAAA.String())
		}
	}
	return out
}

// An answer too big for UDP comes truncated (TC, no records) to a client without EDNS,
// whole to one that offers room with EDNS and over TCP, and a real resolver gets all of it
// by asking again over TCP. The OPT record of a query is echoed, with its DO bit, and an
// EDNS version beyond 0 gets BADVERS.
func TestTruncationAndEDNS(t *testing.T) {
	testkit.NeedRoot(t, "creates network namespaces")
	env := testenv.New(t)
	serveUpstream(t, env)
	n1 := env.Guest("n1", "172.18.0.1")
	env.Guest("n2", "172.18.0.2")

	r, err := exchangeMsg(t, n1, env, "udp", new(dns.Msg).SetQuestion("big.example.test.", dns.TypeA))
	if err != nil || !r.Truncated || len(r.Answer) != 0 || len(r.Question) != 1 || r.IsEdns0() != nil {
		t.Errorf("big answer over UDP without EDNS: %v, %v; want TC, the question, no records, no OPT", r, err)
	}
	withEDNS := new(dns.Msg).SetQuestion("big.example.test.", dns.TypeA).SetEdns0(1232, false)
	r, err = exchangeMsg(t, n1, env, "udp", withEDNS)
	if err != nil || r.Truncated || len(r.Answer) != bigCount {
		t.Errorf("big answer over UDP with EDNS 1232: %v, %v; want %d records", r, err, bigCount)
	}
	r, err = exchangeMsg(t, n1, env, "tcp", new(dns.Msg).SetQuestion("big.example.test.", dns.TypeA))
	if err != nil || r.Truncated || len(r.Answer) != bigCount {
		t.Errorf("big answer over TCP: %v, %v; want %d records", r, err, bigCount)
	}
	// glibc asks without EDNS, sees TC and asks again over TCP.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := n1.Run(ctx, "getent", "ahostsv4", "big.example.test")
	got := map[string]bool{}
	for _, line := range strings.Split(out, "\n") {
		if f := strings.Fields(line); len(f) > 0 {
			got[f[0]] = true
		}
	}
	if err != nil || len(got) != bigCount {
		t.Errorf("getent ahostsv4 big.example.test in n1: %d addresses, %v; want %d\n%s", len(got), err, bigCount, out)
	}

	// EDNS: the OPT record comes back, with the DO bit as asked, for local answers and
	// refusals alike; without one in the query, none in the answer.
	for _, do := range []bool{false, true} {
		r, err = exchangeMsg(t, n1, env, "udp", new(dns.Msg).SetQuestion("n2.", dns.TypeA).SetEdns0(4096, do))
		if err != nil || !slices.Equal(addrs(r.Answer), []string{"172.18.0.2"}) || r.IsEdns0() == nil || r.IsEdns0().Do() != do || r.IsEdns0().UDPSize() < 512 {
			t.Errorf("EDNS query for n2 (DO %v): %v, %v; want the address and an OPT record with DO %v", do, r, err, do)
		}
	}
	r, err = exchangeMsg(t, n1, env, "tcp", new(dns.Msg).SetQuestion("n2.", dns.TypeA))
	if err != nil || r.IsEdns0() != nil {
		t.Errorf("query for n2 without EDNS: %v, %v; want no OPT record", r, err)
	}
	q := new(dns.Msg).SetQuestion("n2.", dns.TypeA).SetEdns0(1232, false)
	q.IsEdns0().SetVersion(1)
	r, err = exchangeMsg(t, n1, env, "udp", q)
	if err != nil || r.Rcode != dns.RcodeBadVers || r.IsEdns0() == nil || r.IsEdns0().Version() != 0 {
		t.Errorf("EDNS version 1: %v, %v; want BADVERS with an OPT record of version 0", r, err)
	}
}

// Garbage, cut-off and hostile messages over UDP and TCP get FORMERR or NOTIMP where a
// resolver expects an answer, nothing where answering would be wrong, and never stop the
// server: a good query is answered afterwards on both protocols.
func TestMalformedQueries(t *testing.T) {
	testkit.NeedRoot(t, "creates network namespaces")
	env := testenv.New(t)
	n1 := env.Guest("n1", "172.18.0.1")
	env.Guest("n2", "172.18.0.2")
	server := netip.AddrPortFrom(env.BridgeAddr(), names.Port).String()
	good, err := new(dns.Msg).SetQuestion("n2.", dns.TypeA).Pack()
	if err != nil {
		t.Fatal(err)
	}
	r := rand.New(rand.NewPCG(3, 4))
	var junk [][]byte
	for i := range len(good) {
		junk = append(junk, good[:i])
	}
	for range 300 {
		m := slices.Clone(good)
		for range 1 + r.IntN(4) {
			m[r.IntN(len(m))] = byte(r.Uint32())
		}
		junk = append(junk, m)
		m = make([]byte, r.IntN(600))
		for j := range m {
			m[j] = byte(r.Uint32())
		}
		junk = append(junk, m)
	}
	// A name that points at itself.
	loop := slices.Clone(good[:12])
	loop[5] = 1
	junk = append(junk, append(loop, 0xc0, 12, 0, 1, 0, 1))

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	udp, err := n1.DialContext(ctx, "udp", server)
	if err != nil {
		t.Fatal(err)
	}
	defer udp.Close()
	for _, m := range junk {
		if _, err := udp.Write(m); err != nil {
			t.Fatal(err)
		}
	}
	// Framed junk on one connection, then connections that lie about their lengths or stop
	// half way.
	tcp, err := n1.DialContext(ctx, "tcp", server)
	if err != nil {
		t.Fatal(err)
	}
	defer tcp.Close()
	// Fewer than the queries a connection may carry.
	for sent, i := 0, 0; sent < 100; i++ {
		if m := junk[i]; len(m) >= 12 {
			_, _ = tcp.Write(binary.BigEndian.AppendUint16(nil, uint16(len(m))))
			_, _ = tcp.Write(m)
			sent++
		}
	}
	for _, raw := range [][]byte{{0, 5, 1, 2, 3, 4, 5}, {0xff, 0xff, 1, 2}, {0}, append([]byte{0, byte(len(good))}, good[:10]...)} {
		c, err := n1.DialContext(ctx, "tcp", server)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = c.Write(raw)
		c.Close()
	}

	// What a resolver must be told: FORMERR for a question cut off, FORMERR for two
	// questions, NOTIMP for another opcode; no answer to a response.
	cut := slices.Clone(good[:len(good)-3])
	twoQ := new(dns.Msg).SetQuestion("n2.", dns.TypeA)
	twoQ.Id = binary.BigEndian.Uint16(good)
	twoQ.Question = append(twoQ.Question, dns.Question{Name: "n1.", Qtype: dns.TypeA, Qclass: dns.ClassINET})
	two, err := twoQ.Pack()
	if err != nil {
		t.Fatal(err)
	}
	status := slices.Clone(good)
	status[2] = 2 << 3
	response := slices.Clone(good)
	response[2] |= 0x80
	for _, network := range []string{"udp", "tcp"} {
		for _, c := range []struct {
			name  string
			msg   []byte
			rcode int
		}{{"cut-off question", cut, dns.RcodeFormatError}, {"two questions", two, dns.RcodeFormatError}, {"opcode STATUS", status, dns.RcodeNotImplemented}} {
			// UDP may lose a datagram, here while the server drains the flood above: a
			// resolver asks again, and so does this.
			a, err := rawExchange(ctx, n1, network, server, c.msg, time.Second)
			for try := 1; err != nil && network == "udp" && try < 3; try++ {
				a, err = rawExchange(ctx, n1, network, server, c.msg, time.Second)
			}
			var m dns.Msg
			if err != nil || m.Unpack(a) != nil || !m.Response || m.Id != binary.BigEndian.Uint16(good) || m.Rcode != c.rcode {
				t.Errorf("%s over %s: answer %v (%v); want %s", c.name, network, &m, err, dns.RcodeToString[c.rcode])
			}
		}
	}
	if a, err := rawExchange(ctx, n1, "udp", server, response, 300*time.Millisecond); err == nil {
		t.Errorf("a response sent to the server was answered: %x", a)
	}

	for _, network := range []string{"udp", "tcp"} {
		r, err := exchangeMsg(t, n1, env, network, new(dns.Msg).SetQuestion("n2.", dns.TypeA))
		if err != nil || !slices.Equal(addrs(r.Answer), []string{"172.18.0.2"}) {
			t.Errorf("good query over %s after the junk: %v, %v", network, r, err)
		}
	}
	// The connection that carried the junk framed right still answers.
	if _, err := tcp.Write(append(binary.BigEndian.AppendUint16(nil, uint16(len(good))), good...)); err != nil {
		t.Fatal(err)
	}
	_ = tcp.SetReadDeadline(time.Now().Add(5 * time.Second))
	for {
		a, err := readFramed(tcp)
		if err != nil {
			t.Fatalf("the connection that carried the junk: %v", err)
		}
		var m dns.Msg
		if m.Unpack(a) == nil && m.Rcode == dns.RcodeSuccess && slices.Equal(addrs(m.Answer), []string{"172.18.0.2"}) {
			break // the answers to the junk came first
		}
	}
}

// rawExchange sends msg as it is from guest g and returns the first answer.
func rawExchange(ctx context.Context, g *testenv.Guest, network, server string, msg []byte, wait time.Duration) ([]byte, error) {
	c, err := g.DialContext(ctx, network, server)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(wait))
	if network == "udp" {
		if _, err := c.Write(msg); err != nil {
			return nil, err
		}
		buf := make([]byte, 65535)
		n, err := c.Read(buf)
		return buf[:n], err
	}
	if _, err := c.Write(append(binary.BigEndian.AppendUint16(nil, uint16(len(msg))), msg...)); err != nil {
		return nil, err
	}
	return readFramed(c)
}

func readFramed(c net.Conn) ([]byte, error) {
	var n [2]byte
	if _, err := io.ReadFull(c, n[:]); err != nil {
		return nil, err
	}
	buf := make([]byte, binary.BigEndian.Uint16(n[:]))
	_, err := io.ReadFull(c, buf)
	return buf, err
}

// Many queries at once, over UDP and TCP, are all answered while others are held back by a
// delay; Close ends the held ones and every goroutine and socket of the server.
func TestConcurrentQueriesAndClose(t *testing.T) {
	testkit.NeedRoot(t, "creates network namespaces")
	env := testenv.New(t)
	n1 := env.Guest("n1", "172.18.0.1")
	env.Guest("n2", "172.18.0.2")
	env.Guest("n3", "172.18.0.3")
	// A server of this test's own, so that what is open before it and after it can be counted.
	env.NameServer().Close()
	fds, goroutines := openFiles(t), runtime.NumGoroutine()
	s, err := names.Listen(env.Sandbox().Env, env.Bridge().Name)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		closed := make(chan struct{})
		go func() { s.Close(); close(closed) }()
		select {
		case <-closed:
		case <-time.After(10 * time.Second):
			t.Error("Close hangs")
		}
	})

	env.DNSFault(names.Fault{Kind: names.Delay, Delay: time.Hour, Names: []string{"n3"}})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	server := s.Addr().String()
	slow, _ := new(dns.Msg).SetQuestion("n3.", dns.TypeA).Pack()
	held := make(chan error, 1)
	go func() { _, err := rawExchange(ctx, n1, "tcp", server, slow, time.Minute); held <- err }()
	heldUDP, err := n1.DialContext(ctx, "udp", server)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := heldUDP.Write(slow); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 100)
	for i := range 100 {
		network := []string{"udp", "tcp"}[i%4/3] // one in four over TCP
		wg.Add(1)
		go func() {
			defer wg.Done()
			r, err := exchangeMsg(t, n1, env, network, new(dns.Msg).SetQuestion("n2.", dns.TypeA))
			if err == nil && !slices.Equal(addrs(r.Answer), []string{"172.18.0.2"}) {
				err = fmt.Errorf("answer %v", r)
			}
			if err != nil {
				errs <- fmt.Errorf("query %d over %s: %w", i, network, err)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}

	closed := make(chan struct{})
	go func() { s.Close(); close(closed) }()
	select {
	case <-closed:
	case <-time.After(4 * time.Second):
		t.Fatal("Close did not return while queries were held back by a delay")
	}
	if err := <-held; err == nil {
		t.Error("a query held back by a delay was answered")
	}
	heldUDP.Close()
	deadline := time.Now().Add(5 * time.Second)
	for openFiles(t) > fds || runtime.NumGoroutine() > goroutines {
		if time.Now().After(deadline) {
			t.Fatalf("after Close: %d open files (before the server: %d), %d goroutines (before: %d)", openFiles(t), fds, runtime.NumGoroutine(), goroutines)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func openFiles(t *testing.T) int {
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}

// A name that no upstream answers for gets SERVFAIL, over both protocols.
func TestForwardWithoutUpstream(t *testing.T) {
	testkit.NeedRoot(t, "creates network namespaces")
	env := testenv.New(t) // no resolver runs where the sandbox's resolv.conf points
	n1 := env.Guest("n1", "172.18.0.1")
	for _, network := range []string{"udp", "tcp"} {
		r, err := exchangeMsg(t, n1, env, network, new(dns.Msg).SetQuestion("www.example.test.", dns.TypeA))
		if err != nil || r.Rcode != dns.RcodeServerFailure {
			t.Errorf("forwarded query over %s without an upstream: %v, %v; want SERVFAIL", network, r, err)
		}
	}
}

// BenchmarkQueryUDP is one guest asking the bridge's name server for another guest's
// address over UDP, one query after the other: the server's latency per query.
func BenchmarkQueryUDP(b *testing.B) {
	testkit.NeedRoot(b, "creates network namespaces")
	env := testenv.New(b)
	n1 := env.Guest("n1", "172.18.0.1")
	env.Guest("n2", "172.18.0.2")
	c, err := n1.DialContext(context.Background(), "udp", netip.AddrPortFrom(env.BridgeAddr(), names.Port).String())
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	q, _ := new(dns.Msg).SetQuestion("n2.", dns.TypeA).Pack()
	buf := make([]byte, 1500)
	b.ResetTimer()
	for range b.N {
		if _, err := c.Write(q); err != nil {
			b.Fatal(err)
		}
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		n, err := c.Read(buf)
		if err != nil || n < 12 || buf[3]&0xf != 0 {
			b.Fatalf("answer %x, %v", buf[:n], err)
		}
	}
}
