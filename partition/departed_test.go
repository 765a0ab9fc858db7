package partition

import (
	"net/netip"
	"strings"
	"testing"
)

// TestCompareKernelDepartedGuest: a guest that left keeps its classes in the kernel and its
// pairs in the record until the next change; status names it as the record does and reports
// no difference. The old port or address of a guest that is back on a new one must not pass
// for it: its new port is under no class, so the kernel does not hold the partition for it.
func TestCompareKernelDepartedGuest(t *testing.T) {
	a, b := netip.MustParseAddr("172.18.0.1"), netip.MustParseAddr("172.18.0.2")
	kt := kernelTable{Present: []Backend{BackendNetdev}, Marker: "m", Classes: Classes{
		Sources: []PortClass{{Port: "pa", Row: 1}, {Port: "pbOLD", Row: 2}},
		Dests:   []DestClass{{IP: a, Col: 1}, {Port: "pa", Col: 1}, {IP: b, Col: 2}, {Port: "pbOLD", Col: 2}},
		Runs:    []ClassRun{{Row: 1, From: 2, To: 2}, {Row: 2, From: 1, To: 1}},
	}}
	recorded := func() *Record {
		return &Record{Table: true, Marker: "m", Mode: ModeDrop, Blocked: []BlockedPair{
			{Src: "a", Dst: "b", SrcIP: a, DstIP: b}, {Src: "b", Dst: "a", SrcIP: b, DstIP: a}}}
	}
	ga := Guest{Name: "a", IP: a, Port: "pa"}

	st := recorded()
	if k := compareKernel(kt, st, []Guest{ga}); !k.InEffect {
		t.Errorf("b away: %+v; want in effect", k)
	}
	for _, p := range st.Blocked {
		if p.Src != "b" && p.Dst != "b" {
			t.Errorf("b away: pair %s -> %s does not name b", p.Src, p.Dst)
		}
	}

	for _, back := range []Guest{
		{Name: "b", IP: b, Port: "pbNEW"},                                 // a new port
		{Name: "b", IP: netip.MustParseAddr("172.18.0.9"), Port: "pbOLD"}, // a new address
	} {
		if k := compareKernel(kt, recorded(), []Guest{ga, back}); k.InEffect {
			t.Errorf("b back as %+v, not refreshed: %+v; want the kernel reported as not holding the record", back, k)
		}
	}
}

// TestWithDeparted: a refresh compiles for the guests here and the recorded ones away, with
// their old ports and addresses; one whose name, port or address is held here now is not away
// (it is back, or another guest has its address: it left for good).
func TestWithDeparted(t *testing.T) {
	ip := netip.MustParseAddr
	here := []Guest{
		{Name: "a", IP: ip("172.18.0.1"), Port: "pa"},
		{Name: "b", IP: ip("172.18.0.2"), Port: "pbNEW"},
		{Name: "n", IP: ip("172.18.0.9"), IP6: ip("fd00::9"), Port: "pn"},
	}
	recorded := []Guest{
		{Name: "a", IP: ip("172.18.0.1"), Port: "pa"},
		{Name: "b", IP: ip("172.18.0.2"), Port: "pbOLD"},                  // back on a new port
		{Name: "c", IP: ip("172.18.0.3"), Port: "pc"},                     // away
		{Name: "d", IP: ip("172.18.0.9"), Port: "pd"},                     // its address is n's now
		{Name: "e", IP: ip("172.18.0.5"), IP6: ip("fd00::9"), Port: "pe"}, // its IPv6 address is n's
		{Name: "f", IP: ip("172.18.0.6"), Port: "pn"},                     // its port is n's
	}
	recorded = append(recorded, Guest{Name: "z", IP: ip("172.18.0.26"), Port: "pz", NetnsPath: "/proc/77/ns/net"}) // away, named by nothing
	recorded[2].NetnsPath = "/proc/42/ns/net"
	state := State{Partition: Partition{Blocked: []Pair{{"a", "c"}, {"c", "a"}, {"a", "d"}, {"e", "a"}, {"f", "a"}}}}
	var names []string
	for _, g := range withDeparted(here, recorded, state) {
		names = append(names, g.Name+"/"+g.Port)
		if g.away != (g.Name == "c") || g.away && g.NetnsPath != "" {
			t.Errorf("guest %s: away %v, namespace %q; want only c away, with no namespace to shape or cut in", g.Name, g.away, g.NetnsPath)
		}
	}
	if got, want := strings.Join(names, " "), "a/pa b/pbNEW n/pn c/pc"; got != want {
		t.Errorf("guests to compile for: %s, want %s", got, want)
	}
	if len(here) != 3 {
		t.Errorf("the guests here were changed: %v", here)
	}
}

// TestShapingHereLeavesAwayNamespaces: what was shaped inside an away guest's namespace is
// not touched (its recorded /proc path may name another's by now); its port side, and
// everything of guests here, is.
func TestShapingHereLeavesAwayNamespaces(t *testing.T) {
	ip := netip.MustParseAddr
	away := Guest{Name: "a", IP: ip("172.18.0.1"), Port: "g1", away: true}
	here := Guest{Name: "b", IP: ip("172.18.0.2"), Port: "g2", NetnsPath: "/run/netns/b"}
	r, err := resolveState(State{}, []Guest{here, away})
	if err != nil {
		t.Fatal(err)
	}
	recorded := []Shaping{
		{Guest: "a", Device: "g1"},
		{Guest: "a", Netns: "/proc/42/ns/net", Device: GuestIface},
		{Guest: "b", Device: "g2"},
		{Guest: "b", Netns: "/run/netns/b", Device: GuestIface},
	}
	var got []string
	for _, sh := range r.shapingHere(recorded) {
		got = append(got, sh.Guest+"@"+sh.Device)
	}
	if strings.Join(got, " ") != "a@g1 b@g2 b@eth0" {
		t.Errorf("shaping to undo or keep: %v", got)
	}
	if len(recorded) != 4 {
		t.Errorf("the record's shaping was changed: %v", recorded)
	}
}
