package names_test

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/pontoon-dev/pontoon/names"
	"github.com/pontoon-dev/pontoon/netsetup"
	"github.com/pontoon-dev/pontoon/netsetup/ns"
	"github.com/pontoon-dev/pontoon/netsetup/sandbox"
	"github.com/pontoon-dev/pontoon/testenv"
)

// upstreamAnswer is what the fake upstream resolver answers for every A query.
var upstreamAnswer = netip.MustParseAddr("192.0.2.77")

// serveUpstream runs a stand-in for the host's resolver in the sandbox's upstream namespace
// (the address the sandbox's resolv.conf names): no query leaves the test's namespaces.
func serveUpstream(t *testing.T, env *testenv.Env) (asked func() []string) {
	t.Helper()
	var mu sync.Mutex
	var names []string
	asked = func() []string {
		mu.Lock()
		defer mu.Unlock()
		return slices.Clone(names)
	}
	h := dns.HandlerFunc(func(w dns.ResponseWriter, q *dns.Msg) {
		mu.Lock()
		names = append(names, q.Question[0].Name)
		mu.Unlock()
		m := new(dns.Msg).SetReply(q)
		if strings.HasPrefix(q.Question[0].Name, "tcp.") && w.RemoteAddr().Network() != "tcp" {
			m.Rcode = dns.RcodeRefused // proves the forward of a TCP query went over TCP
		} else if q.Question[0].Qtype == dns.TypeA && strings.HasPrefix(q.Question[0].Name, "big.example.test.") {
			m.Answer = bigAnswer(q.Question[0].Name)
		} else if q.Question[0].Qtype == dns.TypeA && strings.HasSuffix(q.Question[0].Name, "example.test.") {
			m.Answer = append(m.Answer, &dns.A{Hdr: dns.RR_Header{Name: q.Question[0].Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 60}, A: upstreamAnswer.AsSlice()})
		} else if !strings.HasSuffix(q.Question[0].Name, "example.test.") {
			m.Rcode = dns.RcodeNameError
		}
		_ = w.WriteMsg(m)
	})
	var pc net.PacketConn
	var ln net.Listener
	err := ns.Do(env.Sandbox().Upstream, func() (err error) {
		addr := sandbox.UpstreamAddr.Addr().String() + ":53"
		if pc, err = net.ListenPacket("udp4", addr); err != nil {
			return err
		}
		ln, err = net.Listen("tcp4", addr)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, srv := range []*dns.Server{{PacketConn: pc, Handler: h}, {Listener: ln, Handler: h}} {
		go func() { _ = srv.ActivateAndServe() }()
		t.Cleanup(func() { _ = srv.Shutdown() })
	}
	return asked
}

// bigAnswer is the upstream's answer for big.example.test: more than a UDP answer
// without EDNS may carry.
func bigAnswer(name string) []dns.RR {
	var rrs []dns.RR
	for i := range bigCount {
		rrs = append(rrs, &dns.A{Hdr: dns.RR_Header{Name: name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 60}, A: net.IPv4(198, 51, 100, byte(i+1))})
	}
	return rrs
}

const bigCount = 20

// resolver is Go's own DNS client asking the bridge's name server from inside guest g.
func resolver(env *testenv.Env, g *testenv.Guest) *net.Resolver {
	server := netip.AddrPortFrom(env.BridgeAddr(), names.Port).String()
	return &net.Resolver{PreferGo: true, StrictErrors: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
		return g.DialContext(ctx, network, server)
	}}
}

// lookup resolves a rooted name to IPv4 addresses with Go's resolver from g.
func lookup(t *testing.T, env *testenv.Env, g *testenv.Guest, name string, timeout time.Duration) ([]string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	ips, err := resolver(env, g).LookupNetIP(ctx, "ip4", name+".")
	out := make([]string, len(ips))
	for i, ip := range ips {
		out[i] = ip.String()
	}
	return out, err
}

// getent resolves name with the C library's resolver in a process of guest g, which reads
// the guest's /etc/resolv.conf.
func getent(t *testing.T, g *testenv.Guest, name string) (string, error) {
	t.Helper()
	if _, err := exec.LookPath("getent"); err != nil {
		t.Skip("getent (libc-bin) is not installed")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := g.Run(ctx, "getent", "ahostsv4", name)
	if err != nil {
		return "", err
	}
	f := strings.Fields(out)
	if len(f) == 0 {
		return "", errors.New("getent printed nothing")
	}
	return f[0], nil
}

func mustResolve(t *testing.T, env *testenv.Env, g *testenv.Guest, name, want string) {
	t.Helper()
	if got, err := getent(t, g, name); err != nil || got != want {
		t.Errorf("getent %s in %s: %q, %v; want %s", name, g.Name(), got, err, want)
	}
	if got, err := lookup(t, env, g, name, 5*time.Second); err != nil || !slices.Equal(got, []string{want}) {
		t.Errorf("Go resolver, %s in %s: %v, %v; want %s", name, g.Name(), got, err, want)
	}
}

func mustNotResolve(t *testing.T, env *testenv.Env, g *testenv.Guest, name string) {
	t.Helper()
	if got, err := getent(t, g, name); err == nil {
		t.Errorf("getent %s in %s: %s; want not found", name, g.Name(), got)
	}
	_, err := lookup(t, env, g, name, 5*time.Second)
	var de *net.DNSError
	if !errors.As(err, &de) || !de.IsNotFound {
		t.Errorf("Go resolver, %s in %s: %v; want not found", name, g.Name(), err)
	}
}

// Guests find each other by name, hostname and alias through the bridge's name server,
// names published by the attach alone; a guest that leaves stops resolving; other names are
// forwarded to the host's resolver.
func TestGuestsResolveEachOther(t *testing.T) {
	env := testenv.New(t, testenv.WithDNSNames())
	asked := serveUpstream(t, env)
	n1 := env.Guest("n1", "172.18.0.1")
	n2 := env.Guest("n2", "172.18.0.2", testenv.WithHostname("db-host"), testenv.WithAliases("db", "primary.svc"))
	for _, name := range []string{"n2", "db-host", "db", "primary.svc", "DB"} {
		mustResolve(t, env, n1, name, "172.18.0.2")
	}
	mustResolve(t, env, n2, "n1", "172.18.0.1")
	mustResolve(t, env, n1, "www.example.test", upstreamAnswer.String())
	if !slices.Contains(asked(), "www.example.test.") {
		t.Errorf("the upstream was asked %v; want www.example.test.", asked())
	}
	// Over TCP, local names are answered and other names forwarded over TCP too.
	for name, want := range map[string]string{"db.": "172.18.0.2", "tcp.example.test.": upstreamAnswer.String()} {
		r, err := exchangeOver(t, n1, env, "tcp", name, dns.TypeA)
		if err != nil || len(r.Answer) != 1 || r.Answer[0].(*dns.A).A.String() != want {
			t.Errorf("TCP query for %s: %v, %v; want %s", name, r, err, want)
		}
	}
	// AAAA of a known name: the guest's IPv6 address (the chain is dual-stack).
	r, err := exchangeOver(t, n1, env, "udp", "db.", dns.TypeAAAA)
	if want := n2.IP6(); err != nil || r.Rcode != dns.RcodeSuccess || len(r.Answer) != 1 || r.Answer[0].(*dns.AAAA).AAAA.String() != want.String() {
		t.Errorf("AAAA for db: %v, %v; want %s", r, err, want)
	}

	// A guest that joins later resolves at once, one that leaves stops resolving.
	env.Guest("n3", "172.18.0.3", testenv.WithAliases("cache"))
	mustResolve(t, env, n1, "cache", "172.18.0.3")
	if err := netsetup.DelGuest(env.Sandbox().Env, env.Bridge().Name, "n3"); err != nil {
		t.Fatal(err)
	}
	mustNotResolve(t, env, n1, "cache")
	mustNotResolve(t, env, n1, "n3")
	mustNotResolve(t, env, n1, "nosuchguest")
}

// exchangeOver sends one query from guest g to the name server over network (udp or tcp).
func exchangeOver(t *testing.T, g *testenv.Guest, env *testenv.Env, network, name string, qtype uint16) (*dns.Msg, error) {
	t.Helper()
	return exchangeMsg(t, g, env, network, new(dns.Msg).SetQuestion(name, qtype))
}

// Every kind of DNS fault is seen by real resolvers in the guests, only by the askers and
// for the names it names, and is gone after Heal.
func TestDNSFaults(t *testing.T) {
	env := testenv.New(t, testenv.WithDNSNames())
	serveUpstream(t, env)
	n1 := env.Guest("n1", "172.18.0.1")
	n2 := env.Guest("n2", "172.18.0.2", testenv.WithAliases("db"))
	n3 := env.Guest("n3", "172.18.0.3")

	// nxdomain for one name, asked by anyone.
	env.DNSFault(names.Fault{Kind: names.NXDomain, Names: []string{"db"}})
	mustNotResolve(t, env, n1, "db")
	mustResolve(t, env, n1, "n2", "172.18.0.2")
	env.Heal()
	mustResolve(t, env, n1, "db", "172.18.0.2")

	// servfail for every name, asked by n1 only.
	env.DNSFault(names.Fault{Kind: names.ServFail, From: []string{"n1"}})
	_, err := lookup(t, env, n1, "db", 5*time.Second)
	var de *net.DNSError
	if !errors.As(err, &de) || de.IsNotFound || !strings.Contains(de.Err, "misbehaving") {
		t.Errorf("servfail: Go resolver in n1: %v; want server misbehaving", err)
	}
	if got, err := getent(t, n1, "www.example.test"); err == nil {
		t.Errorf("servfail: getent in n1 resolved a forwarded name: %s", got)
	}
	mustResolve(t, env, n3, "db", "172.18.0.2")
	mustResolve(t, env, n3, "www.example.test", upstreamAnswer.String())
	env.Heal()

	// wrong address for a forwarded name, asked by n1 (named by address).
	env.DNSFault(names.Fault{Kind: names.Wrong, Addr: netip.MustParseAddr("10.9.9.9"), Names: []string{"www.example.test"}, From: []string{"172.18.0.1"}})
	mustResolve(t, env, n1, "www.example.test", "10.9.9.9")
	mustResolve(t, env, n2, "www.example.test", upstreamAnswer.String())
	if fs := env.DNSFaults(); len(fs) != 1 || !slices.Equal(fs[0].From, []string{"n1"}) {
		t.Errorf("DNSFaults = %+v; want one fault asked by n1", fs)
	}
	env.Heal()

	// delay: the answer comes, but not before the delay.
	const delay = 700 * time.Millisecond
	env.DNSFault(names.Fault{Kind: names.Delay, Delay: delay, Names: []string{"n3"}})
	start := time.Now()
	mustResolve(t, env, n1, "n3", "172.18.0.3")
	if took := time.Since(start); took < 2*delay { // getent and Go's resolver, one after the other
		t.Errorf("two delayed lookups took %s; want at least %s", took, 2*delay)
	}
	env.Heal()

	// drop: no answer at all, the resolver times out.
	env.DNSFault(names.Fault{Kind: names.Drop, Names: []string{"db"}})
	_, err = lookup(t, env, n1, "db", 1500*time.Millisecond)
	if !errors.As(err, &de) || !de.IsTimeout {
		t.Errorf("drop: Go resolver in n1: %v; want a timeout", err)
	}
	mustResolve(t, env, n1, "n2", "172.18.0.2")
	env.Heal()
	if fs := env.DNSFaults(); len(fs) != 0 {
		t.Errorf("after Heal: faults %+v", fs)
	}
	mustResolve(t, env, n1, "db", "172.18.0.2")

	// A fault with a deadline ends on its own, whoever set it.
	env.DNSFault(names.Fault{Kind: names.NXDomain, Names: []string{"db"}, Expires: time.Now().Add(300 * time.Millisecond)})
	deadline := time.Now().Add(10 * time.Second)
	for {
		if got, err := lookup(t, env, n1, "db", 5*time.Second); err == nil && slices.Equal(got, []string{"172.18.0.2"}) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("an expired fault is still in force")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Bad faults are refused, naming what is wrong, and change nothing.
func TestBadFaults(t *testing.T) {
	env := testenv.New(t)
	env.Guest("n1", "172.18.0.1")
	for _, c := range []struct {
		f    names.Fault
		want string
	}{
		{names.Fault{Kind: "slow"}, "unknown DNS fault"},
		{names.Fault{Kind: names.Wrong}, "address"},
		{names.Fault{Kind: names.Delay}, "duration"},
		{names.Fault{Kind: names.NXDomain, From: []string{"n9"}}, `from "n9"`},
		{names.Fault{Kind: names.NXDomain, Names: []string{"bad name"}}, `name "bad name"`},
	} {
		if _, err := names.AddFault(env.Sandbox().Env, env.Bridge().Name, c.f, ""); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("AddFault(%+v) = %v; want an error saying %q", c.f, err, c.want)
		}
	}
	if fs := env.DNSFaults(); len(fs) != 0 {
		t.Errorf("bad faults left %+v", fs)
	}
	for _, words := range [][]string{{"wrong", "nope"}, {"delay", "-1s"}, {"nxdomain", "extra"}, {}} {
		if _, err := names.ParseFault(words); err == nil {
			t.Errorf("ParseFault(%q) succeeded", words)
		}
	}
}

// Unprivileged processes in a guest can ping: guests get Docker's ping_group_range. A
// namespace without it refuses the same ping, so the test sees the difference.
func TestUnprivilegedPing(t *testing.T) {
	env := testenv.New(t)
	n1 := env.Guest("n1", "172.18.0.1")
	env.Guest("n2", "172.18.0.2")
	ping := pingWithoutCaps(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	argv := []string{"setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", ping, "-c1", "-W5", "172.18.0.2"}
	if out, err := n1.Run(ctx, argv...); err != nil {
		t.Errorf("unprivileged ping from a guest: %v\n%s", err, out)
	}
	out, err := exec.CommandContext(ctx, "unshare", append([]string{"-n", "sh", "-c", `ip link set lo up && exec "$@"`, "sh"}, append(argv[:len(argv)-1:len(argv)-1], "127.0.0.1")...)...).CombinedOutput()
	if err == nil {
		t.Errorf("unprivileged ping worked in a namespace that is not a guest; the test would not see a missing setting:\n%s", out)
	}
}

// pingWithoutCaps copies ping without its file capabilities, where an unprivileged user can
// run it.
func pingWithoutCaps(t *testing.T) string {
	t.Helper()
	src, err := exec.LookPath("ping")
	if err != nil {
		t.Skip("ping (iputils-ping) is not installed")
	}
	data, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	dir, err := os.MkdirTemp("", "pontoon-ping-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	dst := filepath.Join(dir, "ping")
	if err := os.WriteFile(dst, data, 0o755); err != nil {
		t.Fatal(err)
	}
	return dst
}
