package partition

import (
	"net/netip"
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
