package partition

import (
	"net/netip"
	"slices"
	"testing"

	"github.com/pontoon-dev/pontoon/netsetup"
)

// TestCompileServicesGroups checks which members each client's connections may go to: all
// of them by default, the reachable ones with SkipUnreachable, and in reject mode the
// service address itself (refused) in place of an unreachable member.
func TestCompileServicesGroups(t *testing.T) {
	plan := netsetup.DefaultPlan()
	var guests []Guest
	for i, n := range []string{"n1", "n2", "n3", "c"} {
		ip := netip.AddrFrom4([4]byte{172, 18, 0, byte(i + 1)})
		guests = append(guests, Guest{Name: n, IP: ip, Port: "g" + string(rune('1'+i))})
	}
	vip := netip.MustParseAddr("172.18.1.1")
	spec := func(skip bool) *serviceSpec {
		return &serviceSpec{plan: plan, services: []netsetup.Service{{Name: "kv", IP: vip, Members: []string{"n1", "n2", "n3"}, Mode: netsetup.ModeRoundRobin, SkipUnreachable: skip}}}
	}
	iso := []Pair{{"n3", "n1"}, {"n3", "n2"}, {"n3", "c"}, {"n1", "n3"}, {"n2", "n3"}, {"c", "n3"}}
	a := func(last ...byte) []netip.Addr {
		var out []netip.Addr
		for _, l := range last {
			out = append(out, netip.AddrFrom4([4]byte{172, 18, 0, l}))
		}
		return out
	}
	type group struct{ clients, members []netip.Addr }
	pre := func(sr *serviceRules) []group {
		var out []group
		for _, r := range sr.chains[0].rules {
			out = append(out, group{r.clients, r.members})
		}
		return out
	}
	for _, tc := range []struct {
		name string
		sr   *serviceRules
		want []group
	}{
		{"default", compileServices(spec(false), guests, iso, ModeDrop, false, nil), []group{{nil, a(1, 2, 3)}}},
		{"skip", compileServices(spec(true), guests, iso, ModeDrop, false, nil), []group{{a(1, 2, 4), a(1, 2)}, {a(3), a(3)}}},
		{"reject", compileServices(spec(false), guests, iso, ModeReject, false, nil), []group{{a(1, 2, 4), append(a(1, 2), vip)}, {a(3), append([]netip.Addr{vip, vip}, a(3)...)}}},
		{"healed skip", compileServices(spec(true), guests, nil, ModeDrop, false, nil), []group{{a(1, 2, 3, 4), a(1, 2, 3)}}},
	} {
		got := pre(tc.sr)
		if !slices.EqualFunc(got, tc.want, func(x, y group) bool {
			return slices.Equal(x.clients, y.clients) && slices.Equal(x.members, y.members)
		}) {
			t.Errorf("%s: prerouting groups %v, want %v", tc.name, got, tc.want)
		}
	}
	if sr := compileServices(spec(false), guests, iso, ModeDrop, false, nil); len(sr.elements[serviceBlocked]) != len(iso) {
		t.Errorf("blocked pairs with a member: %d, want %d", len(sr.elements[serviceBlocked]), len(iso))
	}
	if sr := compileServices(&serviceSpec{plan: plan}, guests, nil, ModeDrop, false, nil); !sr.empty {
		t.Errorf("no services: %+v, want the table removed", sr)
	}
	if compileServices(nil, guests, nil, ModeDrop, false, nil) != nil {
		t.Error("a target without services must leave the table alone")
	}
}
