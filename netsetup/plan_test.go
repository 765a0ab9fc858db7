package netsetup

import (
	"net/netip"
	"strings"
	"testing"
)

func TestDefaultPlanAddresses(t *testing.T) {
	p := DefaultPlan()
	for _, c := range []struct {
		what string
		got  netip.Prefix
		want string
	}{
		{"subnet", p.Subnet, "172.18.0.0/16"},
		{"host link", p.HostLink(), "172.18.255.0/30"},
		{"host side", p.HostAddr(), "172.18.255.1/30"},
		{"gateway side", p.GatewayAddr(), "172.18.255.2/30"},
		{"uplinks", p.Uplinks(), "172.18.192.0/19"},
		{"guest net", p.GuestNet(), "172.18.0.0/24"},
		{"bridge", p.BridgeAddr(), "172.18.0.254/24"},
		{"guest addr", p.GuestAddr(netip.MustParseAddr("172.18.0.7")), "172.18.0.7/24"},
	} {
		if c.got.String() != c.want {
			t.Errorf("%s: got %s, want %s", c.what, c.got, c.want)
		}
	}
	if p.String() != DefaultSubnet {
		t.Errorf("String() = %q, want %q", p.String(), DefaultSubnet)
	}
}

func TestMovedPlanAddresses(t *testing.T) {
	p, err := ParsePlan("10.77.0.0/16")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		what string
		got  netip.Prefix
		want string
	}{
		{"host side", p.HostAddr(), "10.77.255.1/30"},
		{"gateway side", p.GatewayAddr(), "10.77.255.2/30"},
		{"uplinks", p.Uplinks(), "10.77.192.0/19"},
		{"guest net", p.GuestNet(), "10.77.0.0/24"},
		{"bridge", p.BridgeAddr(), "10.77.0.254/24"},
		{"slot 0 gateway", p.UplinkGateway(0), "10.77.192.1/30"},
		{"slot 0 bridge", p.UplinkBridge(0), "10.77.192.2/30"},
		{"slot 2047 bridge", p.UplinkBridge(2047), "10.77.223.254/30"},
	} {
		if c.got.String() != c.want {
			t.Errorf("%s: got %s, want %s", c.what, c.got, c.want)
		}
	}
}

func TestUplinkSlots(t *testing.T) {
	p := DefaultPlan()
	for _, c := range []struct {
		slot       int
		gw, bridge string
	}{
		{0, "172.18.192.1/30", "172.18.192.2/30"},
		{1, "172.18.192.5/30", "172.18.192.6/30"},
		{63, "172.18.192.253/30", "172.18.192.254/30"},
		{64, "172.18.193.1/30", "172.18.193.2/30"},
		{1000, "172.18.207.161/30", "172.18.207.162/30"},
		{2047, "172.18.223.253/30", "172.18.223.254/30"},
	} {
		gw, br := p.UplinkGateway(c.slot), p.UplinkBridge(c.slot)
		if gw.String() != c.gw || br.String() != c.bridge {
			t.Errorf("slot %d: got %s/%s, want %s/%s", c.slot, gw, br, c.gw, c.bridge)
		}
		// Both ends share one /30, and every /30 lies inside the uplink /19.
		if gw.Masked() != br.Masked() || !p.Uplinks().Contains(gw.Addr()) || !p.Uplinks().Contains(br.Addr()) {
			t.Errorf("slot %d: %s and %s are not one /30 inside %s", c.slot, gw, br, p.Uplinks())
		}
	}
	// No two slots share a /30, and none touches the guest net or the host link.
	seen := map[netip.Prefix]int{}
	for s := 0; s < Slots; s++ {
		n := p.UplinkGateway(s).Masked()
		if o, dup := seen[n]; dup {
			t.Fatalf("slots %d and %d share %s", o, s, n)
		}
		seen[n] = s
		if n.Overlaps(p.GuestNet()) || n.Overlaps(p.HostLink()) {
			t.Fatalf("slot %d uplink %s overlaps the guest net or host link", s, n)
		}
		// The same for IPv6, whose uplinks' prefix leaves the host link out too.
		if !p.Uplinks6().Contains(p.UplinkGateway6(s).Addr()) || !p.Uplinks6().Contains(p.UplinkBridge6(s).Addr()) {
			t.Fatalf("slot %d uplink %s is not inside %s", s, p.UplinkGateway6(s), p.Uplinks6())
		}
	}
	if p.Uplinks6().Contains(p.GatewayAddr6().Addr()) || p.Uplinks6().Overlaps(p.GuestNet6()) {
		t.Errorf("the IPv6 uplinks' prefix %s holds the host link or the guest net", p.Uplinks6())
	}
}

func TestCheckSlot(t *testing.T) {
	for _, s := range []int{0, 1, 2047} {
		if err := CheckSlot(s); err != nil {
			t.Errorf("CheckSlot(%d): %v", s, err)
		}
	}
	for _, s := range []int{-1, 2048, 100000} {
		err := CheckSlot(s)
		if err == nil || !strings.Contains(err.Error(), "0-2047") {
			t.Errorf("CheckSlot(%d) = %v, want an error naming the range 0-2047", s, err)
		}
	}
}

func TestParsePlanErrors(t *testing.T) {
	for _, c := range []struct {
		in   string
		want []string // every piece must appear in the message
	}{
		{"", []string{`""`, "not a CIDR", "/16"}},
		{"10.77.0.0", []string{`"10.77.0.0"`, "not a CIDR", "10.77.0.0/16"}},
		{"banana", []string{`"banana"`, "not a CIDR"}},
		{"10.77.0.0/24", []string{`"10.77.0.0/24"`, "/24", "exactly a /16", "10.77.0.0/16"}},
		{"10.0.0.0/8", []string{"/8", "10.0.0.0/16"}},
		{"10.77.1.0/16", []string{`"10.77.1.0/16"`, "host bits", "10.77.0.0/16"}},
		{"10.77.0.1/16", []string{"host bits", "use 10.77.0.0/16"}},
		{"fd00::/16", []string{`"fd00::/16"`, "not IPv4"}},
		{"::ffff:10.77.0.0/112", []string{"not IPv4"}},
		{"127.0.0.0/16", []string{`"127.0.0.0/16"`, "loopback", "10.77.0.0/16"}},
		{"0.0.0.0/16", []string{"zero"}},
		{"224.1.0.0/16", []string{"multicast"}},
	} {
		_, err := ParsePlan(c.in)
		if err == nil {
			t.Errorf("ParsePlan(%q) succeeded, want an error", c.in)
			continue
		}
		for _, w := range c.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("ParsePlan(%q) = %q, want it to mention %q", c.in, err, w)
			}
		}
	}
	for _, ok := range []string{"172.18.0.0/16", "10.77.0.0/16", "192.168.0.0/16", "100.64.0.0/16"} {
		if p, err := ParsePlan(ok); err != nil || p.String() != ok {
			t.Errorf("ParsePlan(%q) = %v, %v", ok, p, err)
		}
	}
}

func TestParseGuestIP(t *testing.T) {
	p := DefaultPlan()
	for _, ok := range []string{"172.18.0.1", "172.18.0.2", "172.18.0.100", "172.18.0.253"} {
		ip, err := p.ParseGuestIP(ok)
		if err != nil || ip.String() != ok {
			t.Errorf("ParseGuestIP(%q) = %v, %v", ok, ip, err)
		}
	}
	const rng = "172.18.0.1-172.18.0.253"
	for _, c := range []struct {
		in, name string
	}{
		{"172.18.0.0", "172.18.0.0"},     // network address
		{"172.18.0.254", "172.18.0.254"}, // the bridge itself
		{"172.18.0.255", "172.18.0.255"}, // broadcast
		{"172.18.1.1", "172.18.1.1"},     // outside the /24
		{"172.18.255.1", "172.18.255.1"}, // host link
		{"10.0.0.1", "10.0.0.1"},         // outside the plan
		{"", `""`},
		{"abc", `"abc"`},
		{"172.18.0.1/24", `"172.18.0.1/24"`},
		{"::1", `"::1"`},
		{"::ffff:172.18.0.1", `"::ffff:172.18.0.1"`},
		{"172.18.0.01", `"172.18.0.01"`},
	} {
		_, err := p.ParseGuestIP(c.in)
		if err == nil {
			t.Errorf("ParseGuestIP(%q) succeeded, want an error", c.in)
			continue
		}
		if !strings.Contains(err.Error(), c.name) || !strings.Contains(err.Error(), rng) {
			t.Errorf("ParseGuestIP(%q) = %q, want it to name %s and the range %s", c.in, err, c.name, rng)
		}
	}
	moved, _ := ParsePlan("10.77.0.0/16")
	if _, err := moved.ParseGuestIP("172.18.0.1"); err == nil || !strings.Contains(err.Error(), "10.77.0.1-10.77.0.253") {
		t.Errorf("moved plan: ParseGuestIP(172.18.0.1) = %v, want an error naming 10.77.0.1-10.77.0.253", err)
	}
}

func TestPlanOverlaps(t *testing.T) {
	p := DefaultPlan()
	for _, c := range []struct {
		q    string
		hit  bool
		used string
	}{
		{"172.18.0.0/16", true, "172.18.0.0/24"},
		{"172.16.0.0/12", true, "172.18.0.0/24"},
		{"172.18.0.5/32", true, "172.18.0.0/24"},
		{"172.18.200.0/24", true, "172.18.192.0/19"},
		{"172.18.255.0/24", true, "172.18.255.0/30"},
		{"172.18.1.0/24", true, "172.18.1.0/24"},
		{"172.18.2.9/32", true, "172.18.2.0/24"},
		{"172.18.3.0/24", false, ""},
		{"172.18.255.4/30", false, ""},
		{"172.17.0.0/16", false, ""},
		{"10.0.0.0/8", false, ""},
	} {
		used, hit := p.Overlaps(netip.MustParsePrefix(c.q))
		if hit != c.hit || (hit && used.String() != c.used) {
			t.Errorf("Overlaps(%s) = %s, %v; want %s, %v", c.q, used, hit, c.used, c.hit)
		}
	}
}

func TestSuggestSubnet(t *testing.T) {
	// The suggestion must itself be a valid plan that does not collide with the refused one.
	for _, in := range []string{"172.18.0.0/16", "10.77.0.0/16"} {
		p, _ := ParsePlan(in)
		s, err := ParsePlan(suggestSubnet(p))
		if err != nil {
			t.Fatalf("suggestion for %s: %v", in, err)
		}
		if s.Subnet.Overlaps(p.Subnet) {
			t.Errorf("suggestion for %s is %s, which overlaps it", in, s)
		}
	}
}
