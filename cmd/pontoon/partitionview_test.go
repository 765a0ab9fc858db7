package main

import (
	"fmt"
	"io"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/pontoon-dev/pontoon/eventlog"
	"github.com/pontoon-dev/pontoon/partition"
)

func viewGuests(n int) []partition.Guest {
	var gs []partition.Guest
	for i := 1; i <= n; i++ {
		gs = append(gs, partition.Guest{Name: fmt.Sprintf("n%d", i), IP: netip.AddrFrom4([4]byte{172, 18, 0, byte(i)})})
	}
	return gs
}

// isolateAndBlock is n1 isolated from the 11 others, n3 blocked from n4 one way, and a loss
// between n2 and n5.
func isolateAndBlock() (*partition.Record, []partition.Guest) {
	gs := viewGuests(12)
	rec := &partition.Record{Kind: "custom", Description: "isolate n1 + block n3 -> n4", Mode: partition.ModeDrop}
	for _, g := range gs[1:] {
		rec.Blocked = append(rec.Blocked, partition.BlockedPair{Src: "n1", Dst: g.Name}, partition.BlockedPair{Src: g.Name, Dst: "n1"})
	}
	rec.Blocked = append(rec.Blocked, partition.BlockedPair{Src: "n3", Dst: "n4"})
	rec.Impairments = []partition.Impairment{{Src: "n2", Dst: "n5", Loss: 10}}
	return rec, gs
}

func TestMatrix(t *testing.T) {
	rec, gs := isolateAndBlock()
	var b strings.Builder
	writeMatrix(&b, newView(rec, gs))
	want := `reachability, row sends to column: . open  # blocked  > blocked this way only  ~ impaired pair
                 111
        123456789012
 1 n1   -###########
 2 n2   #-..~.......
 3 n3   #.->........
 4 n4   #..-........
 5 n5   #...-.......
 6 n6   #....-......
 7 n7   #.....-.....
 8 n8   #......-....
 9 n9   #.......-...
10 n10  #........-..
11 n11  #.........-.
12 n12  #..........-
`
	if b.String() != want {
		t.Errorf("matrix:\n%s\nwant:\n%s", b.String(), want)
	}
}

// The partition's own order lays the matrix out: random halves come out as two blocks.
func TestMatrixFollowsThePartitionOrder(t *testing.T) {
	gs := viewGuests(4)
	rec := &partition.Record{Description: "halves", Order: []string{"n1", "n3", "n2", "n4"}}
	for _, p := range [][2]string{{"n1", "n2"}, {"n1", "n4"}, {"n3", "n2"}, {"n3", "n4"}, {"n2", "n1"}, {"n2", "n3"}, {"n4", "n1"}, {"n4", "n3"}} {
		rec.Blocked = append(rec.Blocked, partition.BlockedPair{Src: p[0], Dst: p[1]})
	}
	var b strings.Builder
	writeMatrix(&b, newView(rec, gs))
	want := `reachability, row sends to column: . open  # blocked  > blocked this way only  ~ impaired pair
      1234
1 n1  -.##
2 n3  .-##
3 n2  ##-.
4 n4  ##.-
`
	if b.String() != want {
		t.Errorf("matrix:\n%s\nwant:\n%s", b.String(), want)
	}
}

// 50 guests fit an 80-column terminal; past maxMatrix the matrix gives way to a hint.
func TestMatrixWidth(t *testing.T) {
	gs := viewGuests(50)
	rec := &partition.Record{Blocked: []partition.BlockedPair{{Src: "n1", Dst: "n50"}}}
	var b strings.Builder
	writeMatrix(&b, newView(rec, gs))
	lines := strings.Split(strings.TrimSuffix(b.String(), "\n"), "\n")
	if len(lines) != 1+2+50 {
		t.Fatalf("%d lines for 50 guests, want legend, 2 header lines and 50 rows:\n%s", len(lines), b.String())
	}
	for _, l := range lines[1:] {
		if len([]rune(l)) > 80 {
			t.Errorf("line %q is %d columns wide", l, len(l))
		}
	}
	if !strings.HasSuffix(lines[3], ".>") || !strings.HasPrefix(lines[52], "50 n50  ..") || !strings.HasSuffix(lines[52], ".-") {
		t.Errorf("n1->n50 one way: first row %q, last row %q", lines[3], lines[52])
	}
	var wide strings.Builder
	writeMatrix(&wide, newView(rec, viewGuests(maxMatrix+1)))
	if !strings.Contains(wide.String(), "--dot") || strings.Count(wide.String(), "\n") != 1 {
		t.Errorf("matrix of %d guests: %q", maxMatrix+1, wide.String())
	}
}

func TestDot(t *testing.T) {
	rec, gs := isolateAndBlock()
	var b strings.Builder
	writeDot(&b, rec, newView(rec, gs))
	want := `digraph partition {
	label="isolate n1 + block n3 -> n4 (mode drop)";
	labelloc=t;
	node [shape=box, style=rounded];
	g1 [label="group 1 (1 guest)\nn1"];
	g2 [label="group 2 (9 guests)\nn2 n5 n6 n7\nn8 n9 n10 n11\nn12"];
	g3 [label="group 3 (1 guest)\nn3"];
	g4 [label="group 4 (1 guest)\nn4"];
	g1 -> g2 [color=red, dir=both, label="blocked"];
	g1 -> g3 [color=red, dir=both, label="blocked"];
	g1 -> g4 [color=red, dir=both, label="blocked"];
	g3 -> g4 [color=red, style=dashed, label="blocked one way"];
	g2 -> g2 [color=blue, style=dotted, label="loss=10% n2->n5"];
}
`
	if b.String() != want {
		t.Errorf("dot:\n%s\nwant:\n%s", b.String(), want)
	}
}

func TestStatusText(t *testing.T) {
	rec, gs := isolateAndBlock()
	rec.Counters = &partition.Counters{
		Blocked:     []partition.PairCounters{{Src: "n3", Dst: "n4", Dropped: partition.Count{Packets: 3, Bytes: 1500}, Rejected: partition.Count{Packets: 1, Bytes: 60}}},
		Impairments: []partition.ImpairmentCounters{{Target: "n2->n5", Lost: partition.Count{Packets: 2, Bytes: 200}}},
	}
	// A dual-stack pair shows both of each guest's addresses.
	for i, p := range rec.Blocked {
		if p.Src == "n3" && p.Dst == "n4" {
			rec.Blocked[i].SrcIP, rec.Blocked[i].SrcIP6 = netip.MustParseAddr("172.18.0.4"), netip.MustParseAddr("fd70:6f6e::4")
			rec.Blocked[i].DstIP, rec.Blocked[i].DstIP6 = netip.MustParseAddr("172.18.0.5"), netip.MustParseAddr("fd70:6f6e::5")
		}
	}
	var b strings.Builder
	printStatus(&b, rec, gs)
	for _, want := range []string{
		"isolate n1 + block n3 -> n4 (mode drop",
		" 3 n3   #.->........\n",
		"23 blocked pair(s):",
		"n3 (172.18.0.4, fd70:6f6e::4)\tn4 (172.18.0.5, fd70:6f6e::5)\t-\t3 pkt / 1.5 kB dropped, 1 pkt / 60 B rejected\n",
		"n1 (invalid IP)\tn2 (invalid IP)\t-\tnone\n",
		"\tn2->n5\tloss=10% n2->n5\t",
		"2 pkt / 200 B lost\n",
	} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("status lacks %q:\n%s", want, b.String())
		}
	}
}

// TestStatusTextNotInEffect: the warning's advice says that heal also ends the pending
// --for changes, which a --for killed before its commit leaves with the kernel behind.
func TestStatusTextNotInEffect(t *testing.T) {
	rec, gs := isolateAndBlock()
	rec.Kernel = &partition.KernelCheck{Detail: "the table is not the one last applied"}
	var b strings.Builder
	printStatus(&b, rec, gs)
	if out := b.String(); !strings.Contains(out, "WARNING: the kernel does not hold what was last applied: the table is not the one last applied\n") ||
		!strings.Contains(out, "sets a known state)\n") {
		t.Errorf("status without pending changes:\n%s", out)
	}
	rec.Pending = []partition.Timed{{Change: rec.Generation, Expires: time.Now().Add(time.Minute), Parts: []string{"="}}}
	b.Reset()
	printStatus(&b, rec, gs)
	if out := b.String(); !strings.Contains(out, "sets a known state; heal also ends the 1 pending --for change below)\n") ||
		!strings.Contains(out, "restores at ") {
		t.Errorf("status with a pending --for:\n%s", out)
	}
	// A --for killed before its commit, from fullmesh: the kernel enforces nothing, and the
	// change that would end is still listed.
	rec.Blocked, rec.Impairments = nil, nil
	b.Reset()
	printStatus(&b, rec, gs)
	if out := b.String(); !strings.Contains(out, "fullmesh: every guest reaches every other one") || !strings.Contains(out, "restores at ") {
		t.Errorf("status with a pending --for and nothing in force:\n%s", out)
	}
}

func TestFormatEvent(t *testing.T) {
	at := time.Date(2026, 12, 4, 21, 4, 5, 123e6, time.Local)
	for _, c := range []struct {
		e    eventlog.Event
		want string
	}{
		{eventlog.Event{Time: at, Kind: "apply", Source: "cli", What: "isolate n1 --mode reject", CommitUS: 1534,
			Fields: map[string]string{"generation": "3", "blocked": "4"}},
			"21:04:05.123  apply    cli         1534µs  isolate n1 --mode reject  (blocked=4 generation=3)\n"},
		{eventlog.Event{Time: at, Kind: "heal", Source: "testenv", What: "heal", Error: "heal: boom"},
			"21:04:05.123  heal     testenv          -  heal  FAILED: heal: boom\n"},
	} {
		if got := formatEvent(c.e); got != c.want {
			t.Errorf("formatEvent:\n%q\nwant\n%q", got, c.want)
		}
	}
}

// BenchmarkStatusText253 prints the status of random halves of 253 guests whose every
// blocked pair counted something (32,004 pairs): each pair's counters were once found by a
// scan of all of them, 1.0 s of the command's 1.45 s.
func BenchmarkStatusText253(b *testing.B) {
	gs := viewGuests(253)
	rec := &partition.Record{Kind: "random-halves", Description: "random halves", Mode: partition.ModeDrop}
	counters := &partition.Counters{}
	for i, src := range gs {
		for j, dst := range gs {
			if (i < 126) != (j < 126) {
				rec.Blocked = append(rec.Blocked, partition.BlockedPair{Src: src.Name, Dst: dst.Name, SrcIP: src.IP, DstIP: dst.IP})
				counters.Blocked = append(counters.Blocked, partition.PairCounters{Src: src.Name, Dst: dst.Name, Dropped: partition.Count{Packets: 1, Bytes: 90}})
			}
		}
	}
	rec.Counters = counters
	for b.Loop() {
		printStatus(io.Discard, rec, gs)
	}
}
