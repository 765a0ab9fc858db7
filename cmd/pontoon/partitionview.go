package main

import (
	"fmt"
	"io"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/pontoon-dev/pontoon/partition"
	"github.com/urfave/cli/v2"
)

// How `partition status` shows a partition: a reachability matrix, one character per ordered
// pair of guests, so that 50 guests fit a terminal and a one-way block stands out against its
// open other way; and (--dot) a Graphviz graph of the groups of guests that are blocked alike,
// with the blocked edges between them.

var dotFlag = &cli.BoolFlag{Name: "dot", Usage: "write a Graphviz graph of the groups and the blocked edges (render it with dot -Tsvg)"}

// checkFlag makes status a test a script can use: the output is the same, the exit status
// says whether the kernel holds what was applied.
var checkFlag = &cli.BoolFlag{Name: "check", Usage: "exit with status 3 unless the kernel is seen to hold what was last applied (it differs, or cannot be read) and DNS faults have a name server to make them; the output is the same"}

// statusUnchecked is the exit status of `partition status --check` when what was applied is
// not what the kernel holds.
const statusUnchecked = exitCode(3)

// maxMatrix is the most guests the matrix is drawn for; wider would not fit a terminal.
const maxMatrix = 120

// Cells of the matrix.
const (
	cellOpen    = '.'
	cellBlocked = '#' // blocked both ways
	cellOneWay  = '>' // blocked from the row's guest to the column's, open the other way
	cellImpair  = '~' // open, with a pair impairment
	cellSelf    = '-'
)

// view is a record laid out for drawing: the guests in the partition's order, and who is
// blocked from whom.
type view struct {
	names   []string
	index   map[string]int
	blocked map[[2]int]bool
	impair  map[[2]int]bool
}

// newView orders the guests by the partition's own order (the halves, the ring), then the
// rest as the bridge lists them, so that blocked regions come out as blocks.
func newView(rec *partition.Record, guests []partition.Guest) view {
	v := view{index: map[string]int{}, blocked: map[[2]int]bool{}, impair: map[[2]int]bool{}}
	add := func(name string) {
		if _, ok := v.index[name]; !ok && name != "" {
			v.index[name] = len(v.names)
			v.names = append(v.names, name)
		}
	}
	known := map[string]bool{}
	for _, g := range guests {
		known[g.Name] = true
	}
	for _, n := range rec.Order {
		if known[n] {
			add(n)
		}
	}
	for _, g := range guests {
		add(g.Name)
	}
	// Pairs of guests that left the bridge still show.
	for _, b := range rec.Blocked {
		add(b.Src)
		add(b.Dst)
	}
	for _, b := range rec.Blocked {
		v.blocked[[2]int{v.index[b.Src], v.index[b.Dst]}] = true
	}
	for _, im := range rec.Impairments {
		if im.Src != "" {
			if i, ok := v.index[im.Src]; ok {
				if j, ok := v.index[im.Dst]; ok {
					v.impair[[2]int{i, j}] = true
				}
			}
		}
	}
	return v
}

func (v view) cell(i, j int) byte {
	switch {
	case i == j:
		return cellSelf
	case v.blocked[[2]int{i, j}] && v.blocked[[2]int{j, i}]:
		return cellBlocked
	case v.blocked[[2]int{i, j}]:
		return cellOneWay
	case v.impair[[2]int{i, j}]:
		return cellImpair
	}
	return cellOpen
}

// writeMatrix draws the reachability matrix: row i, column j says what becomes of packets
// from guest i to guest j. Columns are numbered like the rows, the digits of each number
// stacked above its column.
func writeMatrix(w io.Writer, v view) {
	n := len(v.names)
	if n == 0 {
		return
	}
	if n > maxMatrix {
		fmt.Fprintf(w, "(%d guests: too many for a matrix; `pontoon partition status --dot` draws the groups)\n", n)
		return
	}
	digits := len(strconv.Itoa(n))
	nameWidth := 0
	for _, name := range v.names {
		nameWidth = max(nameWidth, min(len(name), 16))
	}
	var b strings.Builder
	fmt.Fprintf(&b, "reachability, row sends to column: %c open  %c blocked  %c blocked this way only  %c impaired pair\n",
		cellOpen, cellBlocked, cellOneWay, cellImpair)
	pad := strings.Repeat(" ", digits+1+nameWidth+2)
	for d := 0; d < digits; d++ {
		b.WriteString(pad)
		for j := 1; j <= n; j++ {
			s := fmt.Sprintf("%*d", digits, j)
			b.WriteByte(s[d])
		}
		b.WriteByte('\n')
	}
	for i, name := range v.names {
		if len(name) > 16 {
			name = name[:15] + "…"
		}
		fmt.Fprintf(&b, "%*d %-*s  ", digits, i+1, nameWidth, name)
		for j := range v.names {
			b.WriteByte(v.cell(i, j))
		}
		b.WriteByte('\n')
	}
	io.WriteString(w, b.String())
}

// groups splits the guests into groups blocked alike: the same destinations blocked and the
// same sources blocked from them. Between two groups every pair is blocked or none is, and
// inside one nothing is, so the groups and the edges between them are the whole partition.
func (v view) groups() [][]int {
	sig := func(i int) string {
		var b strings.Builder
		for j := range v.names {
			if v.blocked[[2]int{i, j}] {
				fmt.Fprintf(&b, "t%d,", j)
			}
			if v.blocked[[2]int{j, i}] {
				fmt.Fprintf(&b, "f%d,", j)
			}
		}
		return b.String()
	}
	var out [][]int
	bySig := map[string]int{}
	for i := range v.names {
		s := sig(i)
		k, ok := bySig[s]
		if !ok {
			k = len(out)
			bySig[s] = k
			out = append(out, nil)
		}
		out[k] = append(out[k], i)
	}
	return out
}

// writeDot writes the partition as a Graphviz digraph: a node per group of guests blocked
// alike, a red edge per blocked group pair (both arrowheads when blocked both ways, dashed
// when one way only), and a blue dotted edge per pair impairment.
func writeDot(w io.Writer, rec *partition.Record, v view) {
	var b strings.Builder
	title := rec.Description
	if title == "" {
		title = rec.Kind
	}
	fmt.Fprintf(&b, "digraph partition {\n\tlabel=%q;\n\tlabelloc=t;\n\tnode [shape=box, style=rounded];\n",
		fmt.Sprintf("%s (mode %s)", title, rec.Mode))
	groups := v.groups()
	groupOf := map[int]int{}
	for k, g := range groups {
		for _, i := range g {
			groupOf[i] = k
		}
		members := make([]string, 0, len(g))
		for n, i := range g {
			if n == 12 {
				members = append(members, fmt.Sprintf("… +%d more", len(g)-12))
				break
			}
			members = append(members, v.names[i])
		}
		label := fmt.Sprintf("group %d (%d guest%s)\n%s", k+1, len(g), plural(len(g)), wrapNames(members, 4))
		fmt.Fprintf(&b, "\tg%d [label=%q];\n", k+1, label)
	}
	blockedGroups := func(x, y int) bool { return v.blocked[[2]int{groups[x][0], groups[y][0]}] }
	for x := range groups {
		for y := range groups {
			switch {
			case x == y || !blockedGroups(x, y):
			case blockedGroups(y, x):
				if x < y {
					fmt.Fprintf(&b, "\tg%d -> g%d [color=red, dir=both, label=\"blocked\"];\n", x+1, y+1)
				}
			default:
				fmt.Fprintf(&b, "\tg%d -> g%d [color=red, style=dashed, label=\"blocked one way\"];\n", x+1, y+1)
			}
		}
	}
	for _, im := range rec.Impairments {
		if im.Src == "" {
			continue
		}
		i, ok1 := v.index[im.Src]
		j, ok2 := v.index[im.Dst]
		if ok1 && ok2 {
			fmt.Fprintf(&b, "\tg%d -> g%d [color=blue, style=dotted, label=%q];\n", groupOf[i]+1, groupOf[j]+1, im.String())
		}
	}
	b.WriteString("}\n")
	io.WriteString(w, b.String())
}

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}

func wrapNames(names []string, per int) string {
	var lines []string
	for chunk := range slices.Chunk(names, per) {
		lines = append(lines, strings.Join(chunk, " "))
	}
	return strings.Join(lines, "\n")
}

// printEnds says what comes into force at each pending --for's deadline.
func printEnds(w io.Writer, rec *partition.Record) {
	for _, end := range rec.Ends() {
		fmt.Fprintf(w, "restores at %s: %s\n", end.At.Local().Format(time.TimeOnly), describeEnd(end))
	}
}

// printStatus writes a partition record for people: the state, the matrix, then every
// blocked pair and impairment with what the kernel counted for it.
func printStatus(w io.Writer, rec *partition.Record, guests []partition.Guest) {
	if rec.Kernel != nil && rec.Kernel.Unread {
		fmt.Fprintf(w, "WARNING: what the kernel holds could not be read: %s\n", rec.Kernel.Detail)
		fmt.Fprintln(w, "(below: what was last applied, which the kernel may not hold)")
	} else if rec.Kernel != nil && !rec.Kernel.InEffect {
		fmt.Fprintf(w, "WARNING: the kernel does not hold what was last applied: %s\n", rec.Kernel.Detail)
		fmt.Fprint(w, "(below: the blocked pairs the kernel enforces now; `pontoon partition heal` or a new partition sets a known state")
		if len(rec.Pending) > 0 {
			// A --for killed before its commit leaves its record ahead of the kernel: its
			// restorer still puts the earlier state back at the deadline, and heal ends it.
			fmt.Fprintf(w, "; heal also ends the %d pending --for change%s below", len(rec.Pending), plural(len(rec.Pending)))
		}
		fmt.Fprintln(w, ")")
	}
	if len(rec.Blocked) == 0 && len(rec.Impairments) == 0 {
		fmt.Fprintln(w, "fullmesh: every guest reaches every other one, no impairments")
		printEnds(w, rec)
		return
	}
	fmt.Fprintf(w, "%s (mode %s", rec.Description, rec.Mode)
	if rec.Cut {
		fmt.Fprint(w, ", cut")
	}
	fmt.Fprintf(w, ", applied %s)\n", rec.AppliedAt.Local().Format(time.TimeOnly))
	printEnds(w, rec)
	var counters partition.Counters
	if rec.Counters != nil {
		counters = *rec.Counters
		if counters.Detail != "" {
			fmt.Fprintf(w, "counters incomplete: %s\n", counters.Detail)
		}
	}
	if len(rec.Blocked) > 0 {
		writeMatrix(w, newView(rec, guests))
		fmt.Fprintf(w, "%d blocked pair(s):\n", len(rec.Blocked))
		fmt.Fprintln(w, "BLOCKED\tFROM\tTO\tSINCE\tSTOPPED")
		stopped := counters.PairFinder()
		for _, b := range rec.Blocked {
			since := "-"
			if !b.Since.IsZero() {
				since = b.Since.Local().Format(time.TimeOnly)
			}
			fmt.Fprintf(w, "\t%s (%s)\t%s (%s)\t%s\t%s\n", b.Src, addrs(b.SrcIP, b.SrcIP6), b.Dst, addrs(b.DstIP, b.DstIP6), since,
				describeStopped(stopped(b.Src, b.Dst)))
		}
		if !counters.Unattributed.Zero() {
			fmt.Fprintf(w, "\tfrom no guest\t\t\t%s dropped\n", describeCount(counters.Unattributed))
		}
	}
	if len(rec.Impairments) > 0 {
		fmt.Fprintln(w, "IMPAIRED\tWHERE\tWHAT\tSINCE\tCOUNTED")
		for _, im := range rec.Impairments {
			fmt.Fprintf(w, "\t%s\t%s\t%s\t%s\n", im.Target(), im.String(), im.Since.Local().Format(time.TimeOnly),
				describeImpairmentCounters(counters.Impairment(im.Target())))
		}
	}
}

// addrs is a guest's IPv4 address, and its IPv6 one when it has one: a pair is blocked on
// both families.
func addrs(ip, ip6 netip.Addr) string {
	if ip6.IsValid() {
		return ip.String() + ", " + ip6.String()
	}
	return ip.String()
}

func describeStopped(p partition.PairCounters) string {
	var parts []string
	if !p.Dropped.Zero() {
		parts = append(parts, describeCount(p.Dropped)+" dropped")
	}
	if !p.Rejected.Zero() {
		parts = append(parts, describeCount(p.Rejected)+" rejected")
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, ", ")
}

func describeImpairmentCounters(c partition.ImpairmentCounters) string {
	var parts []string
	if !c.Lost.Zero() {
		parts = append(parts, describeCount(c.Lost)+" lost")
	}
	if !c.Shaped.Zero() {
		s := describeCount(c.Shaped) + " shaped"
		if c.QueueDrops > 0 {
			s += fmt.Sprintf(" (%d dropped by the queue)", c.QueueDrops)
		}
		parts = append(parts, s)
	}
	if !c.Delayed.Zero() {
		parts = append(parts, describeCount(c.Delayed)+" through netem")
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, ", ")
}

// describeCount renders a count for people: "12 pkt / 1.2 kB".
func describeCount(c partition.Count) string {
	return fmt.Sprintf("%d pkt / %s", c.Packets, humanBytes(c.Bytes))
}

func humanBytes(n uint64) string {
	if n < 1000 {
		return fmt.Sprintf("%d B", n)
	}
	units := []string{"kB", "MB", "GB", "TB", "PB"}
	f := float64(n) / 1000
	u := 0
	for f >= 1000 && u < len(units)-1 {
		f /= 1000
		u++
	}
	return fmt.Sprintf("%.1f %s", f, units[u])
}

// describeEnd says what the end of a pending --for puts in force.
func describeEnd(end partition.TimedEnd) string {
	if len(end.Changed) == 0 {
		return "nothing yet (a later --for holds what it set)"
	}
	parts := make([]string, len(end.Changed))
	for i, part := range end.Changed {
		parts[i] = partition.DescribePart(part, end.State)
	}
	return strings.Join(parts, ", ")
}
