package testenv_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/pontoon-dev/pontoon/internal/testkit"
	"github.com/pontoon-dev/pontoon/netsetup"
	"github.com/pontoon-dev/pontoon/partition"
	"github.com/pontoon-dev/pontoon/testenv"
)

const svcPort = 7000

// nameServer serves, on TCP and UDP port svcPort of every address of g, its name and the
// address the peer came from: "n2 172.18.2.4". A TCP connection then answers each line with
// the same, so a test can tell which member holds a long-lived connection.
func nameServer(t *testing.T, g *testenv.Guest) {
	t.Helper()
	var ln net.Listener
	var pc net.PacketConn
	err := g.Do(func() (err error) {
		if ln, err = net.Listen("tcp", fmt.Sprintf(":%d", svcPort)); err != nil {
			return err
		}
		pc, err = net.ListenPacket("udp", fmt.Sprintf(":%d", svcPort))
		return err
	})
	if err != nil {
		t.Fatalf("listen in %s: %v", g, err)
	}
	t.Cleanup(func() { ln.Close(); pc.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				from := c.RemoteAddr().(*net.TCPAddr).AddrPort().Addr().Unmap()
				r := bufio.NewReader(c)
				for {
					if _, err := fmt.Fprintf(c, "%s %s\n", g.Name(), from); err != nil {
						return
					}
					if _, err := r.ReadString('\n'); err != nil {
						return
					}
				}
			}()
		}
	}()
	go func() {
		buf := make([]byte, 100)
		for {
			_, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			a := from.(*net.UDPAddr).AddrPort().Addr().Unmap()
			_, _ = pc.WriteTo([]byte(fmt.Sprintf("%s %s\n", g.Name(), a)), from)
		}
	}()
}

// ask connects from g to addr over TCP and returns the answering member and the source the
// member saw; the connection is closed.
func ask(g *testenv.Guest, addr string, timeout time.Duration) (member, seen string, err error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	c, err := g.DialContext(ctx, "tcp", addr)
	if err != nil {
		return "", "", err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(timeout))
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return "", "", err
	}
	f := strings.Fields(line)
	return f[0], f[1], nil
}

// askUDP sends one datagram from g to addr on an unconnected socket and returns the answering
// member and the address the answer came from.
func askUDP(g *testenv.Guest, addr string, timeout time.Duration) (member string, from netip.Addr, err error) {
	var pc net.PacketConn
	if err := g.Do(func() (err error) { pc, err = net.ListenPacket("udp", ":0"); return err }); err != nil {
		return "", from, err
	}
	defer pc.Close()
	to, err := net.ResolveUDPAddr("udp", addr)
	if err != nil {
		return "", from, err
	}
	if _, err := pc.WriteTo([]byte("?"), to); err != nil {
		return "", from, err
	}
	_ = pc.SetDeadline(time.Now().Add(timeout))
	buf := make([]byte, 100)
	n, src, err := pc.ReadFrom(buf)
	if err != nil {
		return "", from, err
	}
	return strings.Fields(string(buf[:n]))[0], src.(*net.UDPAddr).AddrPort().Addr().Unmap(), nil
}

// kvEnv is a client c and three members n1-n3 serving their names.
func kvEnv(t *testing.T, opts ...testenv.Option) (*testenv.Env, *testenv.Guest) {
	env := testenv.New(t, opts...)
	for i, n := range []string{"n1", "n2", "n3"} {
		nameServer(t, env.Guest(n, fmt.Sprintf("172.18.0.%d", i+1)))
	}
	return env, env.Guest("c", "172.18.0.10")
}

// spread makes n connections from c to addr and counts the answering members; failures are
// counted by kind ("timeout", "refused", or the error).
func spread(t *testing.T, c *testenv.Guest, addr string, n int, timeout time.Duration) map[string]int {
	t.Helper()
	got := map[string]int{}
	for range n {
		m, _, err := ask(c, addr, timeout)
		switch {
		case err == nil:
			got[m]++
		case errors.Is(err, syscall.ECONNREFUSED):
			got["refused"]++
		case errors.Is(err, context.DeadlineExceeded) || errors.Is(err, syscall.ETIMEDOUT) || isTimeout(err):
			got["timeout"]++
		default:
			got[err.Error()]++
		}
	}
	return got
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

func TestServiceSpreadsAndSticks(t *testing.T) {
	t.Parallel()
	env, c := kvEnv(t)
	svc := env.AddService("kv", []string{"n1", "n2", "n3"})
	for _, addr := range []string{svc.Addr(svcPort), svc.Addr6(svcPort)} {
		// Round-robin: 30 new connections, 10 each, in member order.
		if got := spread(t, c, addr, 30, 5*time.Second); got["n1"] != 10 || got["n2"] != 10 || got["n3"] != 10 {
			t.Errorf("%s: connections per member %v, want 10 each", addr, got)
		}
	}
	// Random: every member still gets a share (each misses all of 60 draws with
	// probability (2/3)^60, about 3e-11).
	random := env.AddService("random", []string{"n1", "n2", "n3"}, testenv.WithRandom(), testenv.WithServicePorts("7000"))
	if got := spread(t, c, random.Addr(svcPort), 60, 5*time.Second); got["n1"] == 0 || got["n2"] == 0 || got["n3"] == 0 || got["n1"]+got["n2"]+got["n3"] != 60 {
		t.Errorf("random: connections per member %v, want a share each", got)
	}
	// The member sees the client's own alias, which names the client; the client's
	// connection is to the service address (a reply from anywhere else would not reach it).
	_, seen, err := ask(c, svc.Addr(svcPort), 5*time.Second)
	if err != nil || seen != svc.ClientAlias(c).String() {
		t.Errorf("member saw the client as %q (%v), want %s", seen, err, svc.ClientAlias(c))
	}
	// UDP: the answer comes from the service address, and every member gets a share.
	udp := map[string]int{}
	for _, addr := range []string{svc.Addr(svcPort), svc.Addr6(svcPort)} {
		want := netip.MustParseAddrPort(addr).Addr()
		for range 6 {
			m, from, err := askUDP(c, addr, 5*time.Second)
			if err != nil {
				t.Fatalf("udp to %s: %v", addr, err)
			}
			if from != want {
				t.Errorf("udp answer from %s, want the service address %s", from, want)
			}
			udp[m]++
		}
	}
	if len(udp) != 3 {
		t.Errorf("udp answers per member %v, want all three", udp)
	}
	// A long-lived connection stays on its member while new ones go round.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := c.DialContext(ctx, "tcp", svc.Addr(svcPort))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	r := bufio.NewReader(conn)
	first, _ := r.ReadString('\n')
	spread(t, c, svc.Addr(svcPort), 7, 5*time.Second)
	for range 3 {
		fmt.Fprintln(conn, "again")
		if again, err := r.ReadString('\n'); err != nil || again != first {
			t.Fatalf("long-lived connection answered %q (%v), first %q", again, err, first)
		}
	}
	// The bridge's own processes (a bridge child) reach it too.
	bc, err := env.DialContext(ctx, "tcp", svc.Addr(svcPort))
	if err != nil {
		t.Fatalf("dial the service from the bridge namespace: %v", err)
	}
	if line, err := bufio.NewReader(bc).ReadString('\n'); err != nil || !strings.HasPrefix(line, "n") {
		t.Errorf("from the bridge namespace: %q (%v)", line, err)
	}
	bc.Close()
	// A service of every port serves ping too.
	if out, err := c.Run(ctx, "ping", "-c", "1", "-W", "5", svc.IP().String()); err != nil {
		t.Errorf("ping %s: %v\n%s", svc.IP(), err, out)
	}
	// Guests' /etc/hosts names the service with both its addresses, and the bridge's name
	// server answers for the name (busybox's nslookup asks it, bypassing /etc/hosts).
	out, err := c.Run(ctx, "getent", "ahosts", "kv")
	if err != nil || !strings.Contains(out, svc.IP().String()) || !strings.Contains(out, svc.IP6().String()) {
		t.Errorf("getent ahosts kv in a guest: %q (%v), want %s and %s", out, err, svc.IP(), svc.IP6())
	}
	if out, err := c.Run(ctx, "cat", "/etc/hosts"); err != nil || !strings.Contains(out, svc.IP().String()+"\tkv\n") || !strings.Contains(out, svc.IP6().String()+"\tkv\n") {
		t.Errorf("/etc/hosts of a guest: %q (%v), want kv at %s and %s", out, err, svc.IP(), svc.IP6())
	}
	if out, err := c.Run(ctx, "busybox", "nslookup", "kv"); err != nil || !strings.Contains(out, svc.IP().String()) {
		t.Errorf("nslookup kv in a guest: %q (%v), want %s from the bridge's name server", out, err, svc.IP())
	}
	if st := env.Services(); len(st) != 2 || st[0].Flows[0].Connections == 0 || st[0].Flows[2].Connections == 0 || st[1].Flows[1].Connections == 0 {
		t.Errorf("service counters %+v", st)
	}
}

func TestServiceUnderPartition(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		mode partition.Mode
		cut  bool
	}{{"drop", partition.ModeDrop, false}, {"reject", partition.ModeReject, false}, {"cut", partition.ModeDrop, true}} {
		mode := tc.mode
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			opts := []testenv.Option{testenv.WithMode(mode)}
			if tc.cut {
				opts = append(opts, testenv.WithCut())
			}
			env, c := kvEnv(t, opts...)
			naive := env.AddService("naive", []string{"n1", "n2", "n3"})
			smart := env.AddService("smart", []string{"n1", "n2", "n3"}, testenv.WithSkipUnreachable())
			// Connections open before the partition, one on each member, stay on it: the
			// one on n3 is then judged as a direct one (reject: reset; drop: no answer).
			var open []*bufio.Reader
			var conns []net.Conn
			for range 3 {
				conn, err := c.DialContext(context.Background(), "tcp", naive.Addr(svcPort))
				if err != nil {
					t.Fatal(err)
				}
				defer conn.Close()
				conns, open = append(conns, conn), append(open, bufio.NewReader(conn))
				if _, err := open[len(open)-1].ReadString('\n'); err != nil {
					t.Fatal(err)
				}
			}
			env.Isolate("n3")
			for i, conn := range conns {
				_ = conn.SetDeadline(time.Now().Add(time.Second))
				fmt.Fprintln(conn, "again")
				line, err := open[i].ReadString('\n')
				switch {
				case i < 2 && err != nil:
					t.Errorf("open connection %d to n%d after isolating n3: %v", i, i+1, err)
				case i == 2 && (mode == partition.ModeReject || tc.cut) && !errors.Is(err, syscall.ECONNRESET):
					t.Errorf("open connection to n3 in %s mode: %q, %v; want a reset", tc.name, line, err)
				case i == 2 && mode == partition.ModeDrop && !tc.cut && !isTimeout(err):
					t.Errorf("open connection to n3 in drop mode: %q, %v; want no answer", line, err)
				}
			}
			fail := "timeout"
			if mode == partition.ModeReject {
				fail = "refused"
			}
			for _, addr := range []string{naive.Addr(svcPort), naive.Addr6(svcPort)} {
				got := spread(t, c, addr, 9, 1500*time.Millisecond) // a SYN is sent again after 1s
				if got["n1"] != 3 || got["n2"] != 3 || got[fail] != 3 || len(got) != 3 {
					t.Errorf("naive %s with n3 isolated: %v, want 3 each of n1, n2 and %s", addr, got, fail)
				}
			}
			for _, addr := range []string{smart.Addr(svcPort), smart.Addr6(svcPort)} {
				if got := spread(t, c, addr, 10, 5*time.Second); got["n1"] != 5 || got["n2"] != 5 || len(got) != 2 {
					t.Errorf("skip_unreachable %s with n3 isolated: %v, want 5 each of n1 and n2", addr, got)
				}
			}
			// UDP likewise: a new flow to skip_unreachable never meets n3.
			for i := range 6 {
				if m, _, err := askUDP(c, smart.Addr6(svcPort), 5*time.Second); err != nil || m == "n3" {
					t.Errorf("udp %d to skip_unreachable with n3 isolated: %q, %v", i, m, err)
				}
			}
			st := env.Services()
			var stopped uint64
			for _, p := range st[0].Stopped {
				stopped += p.Total().Packets
			}
			if stopped == 0 {
				t.Errorf("no stopped packets counted for the naive service: %+v", st[0])
			}
			env.Heal()
			for _, s := range []*testenv.Service{naive, smart} {
				if got := spread(t, c, s.Addr(svcPort), 9, 5*time.Second); got["n1"] != 3 || got["n2"] != 3 || got["n3"] != 3 {
					t.Errorf("%s after heal: %v, want 3 each", s.Name(), got)
				}
			}
		})
	}
}

func TestServiceMemberLeaves(t *testing.T) {
	t.Parallel()
	env, c := kvEnv(t, testenv.WithIPv4Only())
	svc := env.AddService("kv", []string{"n1", "n2", "n3"}, testenv.WithServicePorts("7000", "7000/udp"))
	if svc.IP6().IsValid() {
		t.Errorf("IPv4-only chain gave the service %s", svc.IP6())
	}
	if err := netsetup.DelGuest(env.Sandbox().Env, env.Bridge().Name, "n2"); err != nil {
		t.Fatal(err)
	}
	if m := env.Service("kv").Members(); len(m) != 2 || m[0] != "n1" || m[1] != "n3" {
		t.Errorf("members after n2 left: %v", m)
	}
	if got := spread(t, c, svc.Addr(svcPort), 6, 5*time.Second); got["n1"] != 3 || got["n3"] != 3 {
		t.Errorf("after n2 left: %v, want 3 each of n1 and n3", got)
	}
	// A port the service does not serve is refused, as by a host without a listener.
	if _, _, err := ask(c, svc.Addr(7001), 5*time.Second); !errors.Is(err, syscall.ECONNREFUSED) {
		t.Errorf("unserved port: %v, want connection refused", err)
	}
}

func TestServiceBadInputChangesNothing(t *testing.T) {
	t.Parallel()
	env, _ := kvEnv(t)
	env.AddService("kv", []string{"n1", "n2"}, testenv.WithServiceIP("172.18.1.9"))
	before := snapshot(t, env)
	for _, tc := range []struct {
		name string
		opt  netsetup.ServiceOptions
		want string
	}{
		{"a", netsetup.ServiceOptions{Members: []string{"n1", "n9"}}, `members: bridge "testenv" has no guest "n9"; its guests are n1, n2, n3`},
		{"1.2.3.4", netsetup.ServiceOptions{Members: []string{"n1"}}, `name: "1.2.3.4" is an IP address`},
		{"a", netsetup.ServiceOptions{Members: []string{"n1"}, IP: "172.18.1.9"}, `ip 172.18.1.9 is already the address of service "kv"`},
		{"a", netsetup.ServiceOptions{Members: []string{"n1"}, IP: "172.18.0.9"}, "outside the service range"},
		{"a", netsetup.ServiceOptions{Members: []string{"n1"}, Ports: []string{"70x0"}}, `ports: port "70x0" is not a port`},
		{"a", netsetup.ServiceOptions{Members: []string{"n1"}, Ports: []string{"7000/sctp"}}, `ports: port "7000/sctp"`},
		{"a", netsetup.ServiceOptions{}, "members: none given"},
		{"a", netsetup.ServiceOptions{Members: []string{"n1"}, Mode: "fastest"}, `mode "fastest" is unknown`},
		{"kv", netsetup.ServiceOptions{Members: []string{"n1"}}, `already has a service "kv"`},
		{"n1", netsetup.ServiceOptions{Members: []string{"n2"}}, `"n1" is already a name of guest "n1"`},
	} {
		_, err := partition.AddService(env.Sandbox().Env, env.Bridge().Name, tc.name, tc.opt)
		if err == nil || !strings.Contains(err.Error(), tc.want) || !errors.Is(err, netsetup.ErrInvalid) {
			t.Errorf("add %s %+v: %v, want an invalid-input error containing %q", tc.name, tc.opt, err, tc.want)
		}
	}
	if err := partition.RemoveService(env.Sandbox().Env, env.Bridge().Name, "nope"); err == nil || !errors.Is(err, netsetup.ErrNoService) {
		t.Errorf("remove an unknown service: %v", err)
	}
	if after := snapshot(t, env); after != before {
		t.Errorf("bad input changed something:\nbefore:\n%s\nafter:\n%s", before, after)
	}
}

var snapMu sync.Mutex

// snapshot is the bridge's record and the bridge namespace's nftables rules.
func snapshot(t *testing.T, env *testenv.Env) string {
	t.Helper()
	snapMu.Lock()
	defer snapMu.Unlock()
	b := env.Bridge()
	out, err := exec.Command("nsenter", "--net="+env.BridgeNetns(), "nft", "list", "ruleset").CombinedOutput()
	if err != nil {
		t.Fatalf("nft list ruleset: %v: %s", err, out)
	}
	return fmt.Sprintf("%+v\n%s", b.Services, testkit.StableRuleset(string(out)))
}
