package netsetup_test

import (
	"net"
	"net/netip"
	"sync"
	"testing"

	"github.com/pontoon-dev/pontoon/netsetup"
	"github.com/pontoon-dev/pontoon/netsetup/probe"
	"github.com/pontoon-dev/pontoon/netsetup/sandbox"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// Documentation addresses for the sandbox's host-upstream link over IPv6; the sandbox's host
// forwards IPv6 in these tests, as a host must for guests to go beyond it.
var (
	upstream6 = netip.MustParseAddr("2001:db8:99::1")
	wan6      = netip.MustParseAddr("2001:db8:99::2")
)

// upstreamIPv6 gives the sandbox's host-upstream link IPv6 addresses and lets the sandbox's
// host forward IPv6 (its own namespace, made for the test).
func upstreamIPv6(t *testing.T, s *sandbox.Sandbox) {
	t.Helper()
	addAddr6(t, s.Host, "wan", netip.PrefixFrom(wan6, 64))
	addAddr6(t, s.Upstream, "wan", netip.PrefixFrom(upstream6, 64))
	inNetns(t, s.Host, "sysctl", "-qw", "net.ipv6.conf.all.forwarding=1")
}

// TestIPv6Outbound: a guest reaches the host's IPv6 address on the host link and, through the
// host, an upstream; the upstream sees the host's own address (masquerade at the bridge, the
// gateway and the host), as for IPv4.
func TestIPv6Outbound(t *testing.T) {
	t.Parallel()
	s := newChain(t, netsetup.GatewayOptions{})
	upstreamIPv6(t, s)
	plan, err := netsetup.CurrentPlan(s.Env)
	if err != nil {
		t.Fatal(err)
	}
	mustBridge(t, s.Env, "b1", netsetup.BridgeOptions{})
	g := mustGuest(t, s.Env, "b1", "web", "172.18.0.9")
	serve(t, s.Host, plan.HostAddr6().Addr())
	serve(t, s.Upstream, upstream6)
	mustReach(t, g.Netns, plan.HostAddr6().Addr())
	mustReach(t, g.Netns, upstream6)
	rec, err := probe.Record6(s.Upstream, recordPort)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(rec.Close)
	if err := probe.SendUDP6(g.Netns, g.IP6, upstream6, recordPort, "who"); err != nil {
		t.Fatal(err)
	}
	if !rec.WaitFor("who", okTimeout) {
		t.Fatal("the guest's datagram did not reach the upstream")
	}
	if src, _ := rec.Source("who"); src != wan6 {
		t.Errorf("upstream saw the guest's IPv6 datagram from %s, want the host's %s", src, wan6)
	}
}

// TestIPv6PortForward: a bridge's port forward answers on the gateway's IPv6 address too,
// over TCP and UDP, and reaches the guest's IPv6 address.
func TestIPv6PortForward(t *testing.T) {
	t.Parallel()
	s := newChain(t, netsetup.GatewayOptions{})
	plan, err := netsetup.CurrentPlan(s.Env)
	if err != nil {
		t.Fatal(err)
	}
	mustBridge(t, s.Env, "b1", netsetup.BridgeOptions{Ports: mustPorts(t, "8080:web:7000/tcp", "8080:web:7000/udp")})
	web := mustGuest(t, s.Env, "b1", "web", "172.18.0.9")
	srv, err := probe.Serve(web.Netns, web.IP6, 7000)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Close)
	gw6 := plan.GatewayAddr6().Addr()
	if err := probe.UDP(s.Host, gw6, 8080, okTimeout); err != nil {
		t.Errorf("UDP forward on the gateway's IPv6 address: %v", err)
	}
	if err := probe.TCP(s.Host, gw6, 8080, okTimeout); err != nil {
		t.Errorf("TCP forward on the gateway's IPv6 address: %v", err)
	}
}

// TestBridgesAreIsolatedIPv6 is TestBridgesAreIsolated over IPv6: from a guest or the
// namespace of one bridge, nothing of another bridge answers (its uplink's addresses), nor
// the gateway's uplink addresses, its own bridge's included; each target does answer where
// it should, so the failures are the isolation's.
func TestBridgesAreIsolatedIPv6(t *testing.T) {
	t.Parallel()
	s := newChain(t, netsetup.GatewayOptions{})
	plan, err := netsetup.CurrentPlan(s.Env)
	if err != nil {
		t.Fatal(err)
	}
	b1 := mustBridge(t, s.Env, "b1", netsetup.BridgeOptions{})
	b2 := mustBridge(t, s.Env, "b2", netsetup.BridgeOptions{})
	a1 := mustGuest(t, s.Env, "b1", "a", "172.18.0.1")
	a2 := mustGuest(t, s.Env, "b2", "a", "172.18.0.1")
	gw := s.Env.GatewayNetns()
	targets := []struct {
		what, nsPath string
		ip           netip.Addr
		control      string
	}{
		{"b2's uplink, bridge side", b2.Netns(s.Env), plan.UplinkBridge6(b2.Slot).Addr(), a2.Netns},
		{"b2's uplink, gateway side", gw, plan.UplinkGateway6(b2.Slot).Addr(), gw},
		{"b1's uplink, gateway side", gw, plan.UplinkGateway6(b1.Slot).Addr(), gw},
	}
	for _, tg := range targets {
		serve(t, tg.nsPath, tg.ip)
		mustReach(t, tg.control, tg.ip)
	}
	var wg sync.WaitGroup
	for _, from := range []string{a1.Netns, b1.Netns(s.Env)} {
		for _, tg := range targets[:2] {
			wg.Add(1)
			go func() { defer wg.Done(); mustNotReach(t, from, tg.ip) }()
		}
	}
	wg.Add(1)
	go func() { defer wg.Done(); mustNotReach(t, a1.Netns, targets[2].ip) }()
	wg.Wait()
	// The same guests still reach out, so the chain itself works.
	serve(t, s.Host, plan.HostAddr6().Addr())
	mustReach(t, a1.Netns, plan.HostAddr6().Addr())
	mustReach(t, a2.Netns, plan.HostAddr6().Addr())
	// The gateway's side of the host link is not an uplink: it answers a guest on both
	// families alike (the IPv6 rule once covered the host link's /64, and dropped).
	for _, ip := range []netip.Addr{plan.GatewayAddr().Addr(), plan.GatewayAddr6().Addr()} {
		serve(t, gw, ip)
		mustReach(t, a1.Netns, ip)
	}
}

// addAddr6 adds an IPv6 address to a link of nsPath, usable at once (nodad), through netlink:
// not every ip(8) knows nodad.
func addAddr6(t *testing.T, nsPath, dev string, p netip.Prefix) {
	t.Helper()
	h := handleAt(t, nsPath)
	l, err := h.LinkByName(dev)
	if err != nil {
		t.Fatal(err)
	}
	a := &netlink.Addr{IPNet: &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), 128)}, Flags: unix.IFA_F_NODAD}
	if err := h.AddrAdd(l, a); err != nil {
		t.Fatalf("add %s to %s in %s: %v", p, dev, nsPath, err)
	}
}
