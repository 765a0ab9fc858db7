package netsetup_test

import (
	"fmt"
	"net/netip"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pontoon-dev/pontoon/netsetup"
	"github.com/pontoon-dev/pontoon/netsetup/probe"
	"github.com/pontoon-dev/pontoon/netsetup/sandbox"
)

// wanAddr is what the sandbox's upstream must see as the source of every guest packet: the
// host's own address, after NAT at the bridge, the gateway and the host.
var wanAddr = sandbox.HostAddr.Addr().String()

func serveWhoAmI(t testing.TB, s *sandbox.Sandbox, port int) {
	t.Helper()
	serveReply(t, s.Upstream, sandbox.UpstreamAddr.Addr(), port, func(peer netip.Addr) string { return peer.String() })
}

func TestGuestsReachEachOtherAndUpstream(t *testing.T) {
	t.Parallel()
	s := newChain(t, netsetup.GatewayOptions{})
	mustBridge(t, s.Env, "b1", netsetup.BridgeOptions{})
	var guests []*netsetup.Guest
	for _, ip := range []string{"172.18.0.1", "172.18.0.2", "172.18.0.3"} {
		g := mustGuest(t, s.Env, "b1", "g"+ip[len(ip)-1:], ip)
		serve(t, g.Netns, addr(g.IP))
		guests = append(guests, g)
	}
	serve(t, s.Upstream, sandbox.UpstreamAddr.Addr())
	for _, a := range guests {
		for _, b := range guests {
			if a != b {
				mustReach(t, a.Netns, addr(b.IP))
			}
		}
		mustReach(t, a.Netns, sandbox.UpstreamAddr.Addr())
		// The bridge is every guest's gateway.
		if err := probe.Ping(a.Netns, addr("172.18.0.254"), okTimeout); err != nil {
			t.Errorf("guest %s cannot ping its bridge: %v", a.Name, err)
		}
	}
}

func TestUpstreamSeesHostAddress(t *testing.T) {
	t.Parallel()
	s := newChain(t, netsetup.GatewayOptions{})
	mustBridge(t, s.Env, "b1", netsetup.BridgeOptions{})
	g := mustGuest(t, s.Env, "b1", "web", "172.18.0.9")
	serveWhoAmI(t, s, 7000)
	mustAnswer(t, g.Netns, sandbox.UpstreamAddr.Addr(), 7000, wanAddr)
}

// Two bridges give their guests the same addresses at the same time; each guest must talk to
// its own bridge's peer only.
func TestBridgesWithSameGuestIPs(t *testing.T) {
	t.Parallel()
	s := newChain(t, netsetup.GatewayOptions{})
	serveWhoAmI(t, s, 7000)
	clients := map[string]*netsetup.Guest{}
	for _, br := range []string{"red", "blue"} {
		mustBridge(t, s.Env, br, netsetup.BridgeOptions{})
		clients[br] = mustGuest(t, s.Env, br, "client", "172.18.0.1")
		server := mustGuest(t, s.Env, br, "server", "172.18.0.2")
		serveIdentity(t, server.Netns, addr(server.IP), 7000, br+"/server")
		serve(t, server.Netns, addr(server.IP))
	}
	// Run both bridges' traffic at once, several rounds, so that a mix-up (shared conntrack
	// entry, wrong ARP answer) would show as a wrong identity.
	var wg sync.WaitGroup
	for br, c := range clients {
		for range 5 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				mustAnswer(t, c.Netns, addr("172.18.0.2"), 7000, br+"/server")
				mustAnswer(t, c.Netns, sandbox.UpstreamAddr.Addr(), 7000, wanAddr)
			}()
		}
		wg.Add(1)
		go func() { defer wg.Done(); mustReach(t, c.Netns, addr("172.18.0.2")) }()
	}
	wg.Wait()
}

// A guest has no path to any address of another bridge: not its guests, not its uplink
// (bridge side or gateway side).
func TestBridgesAreIsolated(t *testing.T) {
	t.Parallel()
	s := newChain(t, netsetup.GatewayOptions{})
	b1 := mustBridge(t, s.Env, "b1", netsetup.BridgeOptions{})
	b2 := mustBridge(t, s.Env, "b2", netsetup.BridgeOptions{})
	a1 := mustGuest(t, s.Env, "b1", "a", "172.18.0.1")
	a2 := mustGuest(t, s.Env, "b2", "a", "172.18.0.1")
	c2 := mustGuest(t, s.Env, "b2", "c", "172.18.0.3")
	gw := s.Env.GatewayNetns()
	plan := netsetup.DefaultPlan()
	targets := []struct {
		what, nsPath string
		ip           netip.Addr
		control      string // a namespace that does reach the target
	}{
		{"b2's guest", c2.Netns, addr(c2.IP), a2.Netns},
		{"b2's uplink, bridge side", b2.Netns(s.Env), plan.UplinkBridge(b2.Slot).Addr(), a2.Netns},
		{"b2's uplink, gateway side", gw, plan.UplinkGateway(b2.Slot).Addr(), gw},
		{"b1's uplink, gateway side", gw, plan.UplinkGateway(b1.Slot).Addr(), gw},
	}
	for _, tg := range targets {
		serve(t, tg.nsPath, tg.ip)
		// Something answers there, so a failure below is the isolation, not an empty address.
		mustReach(t, tg.control, tg.ip)
	}
	var wg sync.WaitGroup
	for _, from := range []string{a1.Netns, b1.Netns(s.Env)} {
		for _, tg := range targets[:3] {
			wg.Add(1)
			go func() { defer wg.Done(); mustNotReach(t, from, tg.ip) }()
		}
	}
	// Guests do not reach the gateway's uplink addresses at all, their own included.
	wg.Add(1)
	go func() { defer wg.Done(); mustNotReach(t, a1.Netns, targets[3].ip) }()
	wg.Wait()
}

// The whole chain works in a moved plan (--subnet 10.77.0.0/16).
func TestMovedPlanEndToEnd(t *testing.T) {
	t.Parallel()
	plan, err := netsetup.ParsePlan("10.77.0.0/16")
	if err != nil {
		t.Fatal(err)
	}
	s := newChain(t, netsetup.GatewayOptions{Plan: plan})
	// The IPv6 prefix, not given, is the default one.
	if cur, err := netsetup.CurrentPlan(s.Env); err != nil || cur.Subnet != plan.Subnet || cur.Subnet6 != netsetup.DefaultPlan6() {
		t.Fatalf("CurrentPlan = %v %v, %v; want %v %v", cur, cur.Subnet6, err, plan, netsetup.DefaultPlan6())
	}
	b := mustBridge(t, s.Env, "moved", netsetup.BridgeOptions{Ports: mustPorts(t, "8080:web:7000/tcp", "8080:web:7000/udp")})
	web := mustGuest(t, s.Env, "moved", "web", "10.77.0.1")
	peer := mustGuest(t, s.Env, "moved", "peer", "10.77.0.2")
	if _, err := netsetup.AddGuest(s.Env, "moved", "old", netsetup.GuestOptions{IP: "172.18.0.3"}); err == nil {
		t.Error("a default-plan guest address was accepted in the moved plan")
	}
	serve(t, web.Netns, addr(web.IP))
	serveIdentity(t, web.Netns, addr(web.IP), 7000, "web")
	serveWhoAmI(t, s, 7000)
	mustReach(t, peer.Netns, addr(web.IP))
	mustAnswer(t, peer.Netns, sandbox.UpstreamAddr.Addr(), 7000, wanAddr)
	mustAnswer(t, s.Host, addr("10.77.255.2"), 8080, "web")

	for nsPath, want := range map[string]string{
		s.Host:               fmt.Sprintf("[lo 127.0.0.1/8 pontoon0 10.77.255.1/30 wan %s]", sandbox.HostAddr),
		s.Env.GatewayNetns(): "[lo 127.0.0.1/8 s0 10.77.192.1/30 uplink 10.77.255.2/30]",
		b.Netns(s.Env):       "[br0 10.77.0.254/24 g1 g2 lo 127.0.0.1/8 uplink 10.77.192.2/30]",
		web.Netns:            "[eth0 10.77.0.1/24 lo 127.0.0.1/8]",
	} {
		if got := fmt.Sprint(links(t, nsPath)); got != want {
			t.Errorf("links in %s: got %s, want %s", nsPath, got, want)
		}
	}
}

// On an IPv4-only chain partitions hold IPv4 alone, so guests must not reach each other over
// IPv6 (their link-local addresses come up on their own): the bridge drops IPv6 between its
// ports.
func TestNoIPv6BetweenGuests(t *testing.T) {
	t.Parallel()
	s := newChain(t, netsetup.GatewayOptions{IPv4Only: true})
	mustBridge(t, s.Env, "b1", netsetup.BridgeOptions{})
	a := mustGuest(t, s.Env, "b1", "a", "172.18.0.1")
	b := mustGuest(t, s.Env, "b1", "b", "172.18.0.2")
	ll := func(nsPath string) string {
		// Wait out duplicate address detection, after which the address is usable.
		deadline := time.Now().Add(10 * time.Second)
		for {
			out := inNetns(t, nsPath, "ip", "-6", "-o", "addr", "show", "dev", "eth0", "scope", "link")
			if f := strings.Fields(out); len(f) > 3 && !strings.Contains(out, "tentative") {
				return strings.Split(f[3], "/")[0]
			}
			if time.Now().After(deadline) {
				t.Fatalf("no usable link-local address in %s: %q", nsPath, out)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	la, lb := ll(a.Netns), ll(b.Netns)
	// Each guest's IPv6 works locally, so a failure below is the bridge's doing.
	inNetns(t, a.Netns, "ping", "-6", "-c1", "-W1", la+"%eth0")
	if out, err := exec.Command("nsenter", "--net="+a.Netns, "ping", "-6", "-c1", "-W1", lb+"%eth0").CombinedOutput(); err == nil {
		t.Errorf("guest a reached guest b over IPv6:\n%s", out)
	}
}
