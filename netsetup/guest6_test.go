package netsetup

import (
	"net/netip"
	"testing"
)

// TestResolveGuestIP6: a guest gets its own IPv6 address or the one derived from its IPv4
// one, and none from an IPv4-only plan; asked for by text (guestIP6), the address is checked
// against the plan first, and an IPv4-only plan refuses it.
func TestResolveGuestIP6(t *testing.T) {
	v4only := DefaultPlan()
	dual := v4only
	dual.Subnet6 = DefaultPlan6()
	ip := netip.MustParseAddr("172.18.0.7")
	own := netip.MustParseAddr("fd70:6f6e::1:77")
	for _, c := range []struct {
		plan Plan
		own  netip.Addr
		want netip.Addr
	}{
		{dual, netip.Addr{}, dual.GuestIP6(ip)},
		{dual, own, own},
		{v4only, netip.Addr{}, netip.Addr{}},
		{v4only, own, netip.Addr{}},
	} {
		if got := c.plan.ResolveGuestIP6(c.own, ip); got != c.want {
			t.Errorf("plan %s/%s: ResolveGuestIP6(%v, %s) = %v, want %v", c.plan, c.plan.Subnet6, c.own, ip, got, c.want)
		}
		asked := ""
		if c.own.IsValid() {
			asked = c.own.String()
		}
		got, err := guestIP6(c.plan, asked, ip)
		if wantErr := asked != "" && !c.plan.IPv6(); (err != nil) != wantErr || got != c.want {
			t.Errorf("plan %s/%s: guestIP6(%q, %s) = %v, %v; want %v, error %v", c.plan, c.plan.Subnet6, asked, ip, got, err, c.want, wantErr)
		}
	}
	if _, err := guestIP6(dual, "fd70:6f6f::1", ip); err == nil {
		t.Error("guestIP6 took an address outside the guest network")
	}
}
