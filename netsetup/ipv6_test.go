package netsetup_test

import (
	"errors"
	"net/netip"
	"strings"
	"testing"

	"github.com/pontoon-dev/pontoon/netsetup"
	"github.com/pontoon-dev/pontoon/netsetup/probe"
	"github.com/vishvananda/netlink"
)

// guestAddrs6 lists the IPv6 addresses on eth0 of nsPath with their flags, as "ADDR/LEN flags".
func guestAddrs6(t *testing.T, nsPath string) map[netip.Addr]int {
	t.Helper()
	h := handleAt(t, nsPath)
	l, err := h.LinkByName("eth0")
	if err != nil {
		t.Fatal(err)
	}
	as, err := h.AddrList(l, netlink.FAMILY_V6)
	if err != nil {
		t.Fatal(err)
	}
	out := map[netip.Addr]int{}
	for _, a := range as {
		ip, _ := netip.AddrFromSlice(a.IP)
		out[ip] = a.Flags
	}
	return out
}

// TestGuestGetsIPv6 attaches guests to a dual-stack chain: each gets the IPv6 address derived
// from its IPv4 one (or the one asked for) and the link-local address of its MAC, none of them
// tentative (no duplicate address detection to wait for), and a static default route via the
// bridge's address; the record holds the address. Addresses taken or outside the plan are
// refused before anything changes.
func TestGuestGetsIPv6(t *testing.T) {
	t.Parallel()
	s := newChain(t, netsetup.GatewayOptions{})
	mustBridge(t, s.Env, "b6", netsetup.BridgeOptions{})
	plan, err := netsetup.CurrentPlan(s.Env)
	if err != nil {
		t.Fatal(err)
	}
	if got := plan.Subnet6.String(); got != netsetup.DefaultSubnet6 {
		t.Fatalf("plan's IPv6 prefix is %q, want %s", got, netsetup.DefaultSubnet6)
	}
	a := mustGuest(t, s.Env, "b6", "a", "172.18.0.42")
	if want := netip.MustParseAddr("fd70:6f6e::42"); a.IP6 != want {
		t.Errorf("guest a's IPv6 address is %s, want %s", a.IP6, want)
	}
	custom, err := netsetup.AddGuest(s.Env, "b6", "c", netsetup.GuestOptions{IP: "172.18.0.7", IP6: "fd70:6f6e::beef"})
	if err != nil {
		t.Fatal(err)
	}
	for _, g := range []*netsetup.Guest{a, custom} {
		addrs := guestAddrs6(t, g.Netns)
		ll := netsetup.LinkLocal6(netsetup.GuestMAC(g.IP))
		for _, want := range []netip.Addr{g.IP6, ll} {
			flags, ok := addrs[want]
			if !ok {
				t.Errorf("guest %s: eth0 lacks %s; it has %v", g.Name, want, addrs)
			} else if flags&0x40 /* IFA_F_TENTATIVE */ != 0 {
				t.Errorf("guest %s: %s is tentative (flags %#x)", g.Name, want, flags)
			}
		}
		if len(addrs) != 2 {
			t.Errorf("guest %s: eth0 has IPv6 addresses %v, want exactly %s and %s", g.Name, addrs, g.IP6, ll)
		}
		route := inNetns(t, g.Netns, "ip", "-6", "route", "show", "default")
		if !strings.Contains(route, "via fd70:6f6e::254 dev eth0") {
			t.Errorf("guest %s: IPv6 default route is %q, want via fd70:6f6e::254", g.Name, route)
		}
	}
	// Port security knows both addresses, the given one by an element of its own, which
	// leaves with the guest.
	brNetns := s.Env.BridgeNetns("b6")
	for _, g := range []*netsetup.Guest{a, custom} {
		if err := probe.Ping(g.Netns, plan.BridgeAddr6().Addr(), okTimeout); err != nil {
			t.Errorf("guest %s cannot reach the bridge over IPv6: %v", g.Name, err)
		}
	}
	if out := inNetns(t, brNetns, "nft", "list", "set", "bridge", netsetup.TableName, "guests6"); !strings.Contains(out, "fd70:6f6e::beef") {
		t.Errorf("guests6 lacks the given address:\n%s", out)
	}
	if err := netsetup.DelGuest(s.Env, "b6", "c"); err != nil {
		t.Fatal(err)
	}
	for _, set := range []string{"guests6", "ndtargets6"} {
		out := inNetns(t, brNetns, "nft", "list", "set", "bridge", netsetup.TableName, set)
		if strings.Contains(out, "beef") {
			t.Errorf("%s still holds the address of a guest that left:\n%s", set, out)
		}
		// The derived address is back for whoever takes 172.18.0.7 next.
		if !strings.Contains(out, "fd70:6f6e::7") && !strings.Contains(out, "fe80::70:acff:fe12:7") {
			t.Errorf("%s lacks the derived address of 172.18.0.7 once its guest left:\n%s", set, out)
		}
	}
	custom, err = netsetup.AddGuest(s.Env, "b6", "c", netsetup.GuestOptions{IP: "172.18.0.7", IP6: "fd70:6f6e::beef"})
	if err != nil {
		t.Fatal(err)
	}
	// Guests reach each other over IPv6 through port security, neighbour discovery included.
	serve(t, custom.Netns, custom.IP6)
	serve(t, a.Netns, a.IP6)
	mustReach(t, a.Netns, custom.IP6)
	mustReach(t, custom.Netns, a.IP6)
	// A guest given its own address may not also send from the one derived from its IPv4
	// address, which it could add to its eth0 as root: each guest has one IPv6 address.
	derived := plan.GuestIP6(custom.IP)
	addAddr6(t, custom.Netns, "eth0", netip.PrefixFrom(derived, 64))
	rec, err := probe.Record6(a.Netns, recordPort)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(rec.Close)
	for src, payload := range map[netip.Addr]string{derived: "from-derived", custom.IP6: "from-own"} {
		if err := probe.SendUDP6(custom.Netns, src, a.IP6, recordPort, payload); err != nil {
			t.Fatal(err)
		}
	}
	if !rec.WaitFor("from-own", okTimeout) {
		t.Fatal("the guest's datagram from its own IPv6 address did not arrive")
	}
	if _, arrived := rec.Source("from-derived"); arrived {
		t.Errorf("a guest given %s sent from its derived %s through port security", custom.IP6, derived)
	}
	if problems, err := netsetup.BridgeProblems(s.Env, "b6"); err != nil || len(problems) > 0 {
		t.Errorf("the bridge check: %v %v", problems, err)
	}
	// As a guest attached by an older pontoon has it: the derived address bound too. The
	// check says so, and gc takes it out.
	mac := netsetup.GuestMAC(custom.IP)
	inNetns(t, brNetns, "nft", "add", "element", "bridge", netsetup.TableName, "guests6", "{ "+mac.String()+" . "+derived.String()+" }")
	if problems, _ := netsetup.BridgeProblems(s.Env, "b6"); len(problems) != 1 || !strings.Contains(problems[0], "still binds 1 derived IPv6 address") {
		t.Errorf("the bridge check with the derived address bound again: %q", problems)
	}
	if _, err := netsetup.GC(s.Env); err != nil {
		t.Fatal(err)
	}
	if problems, err := netsetup.BridgeProblems(s.Env, "b6"); err != nil || len(problems) > 0 {
		t.Errorf("the bridge check after gc: %v %v", problems, err)
	}
	b, err := netsetup.GetBridge(s.Env, "b6")
	if err != nil {
		t.Fatal(err)
	}
	if got := b.Guests[0].IP6; got != a.IP6 {
		t.Errorf("the record holds %s for guest a, want %s", got, a.IP6)
	}
	before := snapshot(t, s)
	for _, c := range []struct{ ip, ip6, want string }{
		{"172.18.0.8", "fd70:6f6e::beef", "already used by guest \"c\""},
		{"172.18.0.8", "fd70:6f6e:1::8", "outside the guest network"},
		{"172.18.0.8", "fd70:6f6e::254", "reserved"},
		{"172.18.0.8", "fd70:6f6e::42", "derived for 172.18.0.42"},
		{"172.18.0.8", "10.0.0.1", "not an IPv6 address"},
	} {
		_, err := netsetup.AddGuest(s.Env, "b6", "bad", netsetup.GuestOptions{IP: c.ip, IP6: c.ip6})
		wantErr(t, "ip6 "+c.ip6, err, c.want)
	}
	unchanged(t, s, before, "refused guests", "")
	var taken *netsetup.TakenError
	_, err = netsetup.AddGuest(s.Env, "b6", "bad", netsetup.GuestOptions{IP: "172.18.0.8", IP6: "fd70:6f6e::beef"})
	if !errors.As(err, &taken) || taken.Field != "ip6" {
		t.Errorf("taken IPv6 address: got %v, want a TakenError for ip6", err)
	}
}

// TestIPv4OnlyGateway keeps today's chain: no IPv6 prefix, no IPv6 addresses on guests, and an
// IPv6 address asked for is refused with the way out.
func TestIPv4OnlyGateway(t *testing.T) {
	t.Parallel()
	s := newChain(t, netsetup.GatewayOptions{IPv4Only: true})
	mustBridge(t, s.Env, "b4", netsetup.BridgeOptions{})
	g := mustGuest(t, s.Env, "b4", "a", "172.18.0.1")
	if g.IP6.IsValid() {
		t.Errorf("guest of an IPv4-only gateway got IPv6 address %s", g.IP6)
	}
	for ip := range guestAddrs6(t, g.Netns) {
		if !ip.IsLinkLocalUnicast() {
			t.Errorf("guest of an IPv4-only gateway has IPv6 address %s", ip)
		}
	}
	_, err := netsetup.AddGuest(s.Env, "b4", "b", netsetup.GuestOptions{IP: "172.18.0.2", IP6: "fd70:6f6e::2"})
	wantErr(t, "ip6 on IPv4 only", err, "IPv4 only", "--ipv4-only")
	if _, err := netsetup.GatewayUp(s.Env, netsetup.GatewayOptions{Plan: netsetup.Plan{Subnet6: netsetup.DefaultPlan6()}}); !errors.Is(err, netsetup.ErrGatewayPlan) {
		t.Errorf("dual-stack gateway up over an IPv4-only one: got %v, want ErrGatewayPlan", err)
	}
	// Asking for no plan at all is asking for the gateway there is.
	if already, err := netsetup.GatewayUp(s.Env, netsetup.GatewayOptions{}); err != nil || !already {
		t.Errorf("gateway up without a plan over an IPv4-only one: already %v, %v; want already up", already, err)
	}
}
