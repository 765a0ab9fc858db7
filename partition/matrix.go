package partition

import (
	"fmt"
	"math/bits"
	"strings"
)

// A partition is a relation between guests, up to 253 x 252 blocked pairs on a full bridge.
// Listing the pairs in the kernel made a 185 KB table for random halves of 100 guests, and
// batches that overflowed netlink. The kernel instead holds a class matrix:
//
//   - every guest that is blocked from sending somewhere gets a row class; guests whose
//     blocked destinations are the same share one (random halves: two rows);
//   - every guest that somebody is blocked from reaching gets a column class, shared by the
//     guests that are blocked from the same sources;
//   - the blocked (row, column) class pairs are stored as runs of consecutive column classes,
//     in a set of (row . column range) intervals.
//
// Column classes are numbered in the order the partition's constructor gives (Partition.Order:
// the ring of a majorities ring, the halves of random halves), so that every row is one or
// two runs: the table stays a few kilobytes for every built-in kind at 253 guests.

// bitset is a set of guest indices (at most 256 guests on a bridge).
type bitset [4]uint64

func (b *bitset) set(i int)     { b[i/64] |= 1 << (i % 64) }
func (b bitset) has(i int) bool { return b[i/64]&(1<<(i%64)) != 0 }
func (b bitset) empty() bool    { return b == bitset{} }
func (b bitset) count() (n int) {
	for _, w := range b {
		n += bits.OnesCount64(w)
	}
	return n
}

// maxGuests bounds a bridge's guests: a /24 has 253 guest addresses.
const maxGuests = 256

// classMatrix is the kernel's form of a set of blocked pairs, by guest index.
type classMatrix struct {
	// Row and Col are each guest's row and column class; 0 means none (the guest blocks
	// nothing, or nobody is blocked from reaching it), so it is left out of the maps.
	Row, Col []uint32
	Runs     []ClassRun
}

// newClassMatrix encodes the blocked pairs of n guests. order lists guest indices in the
// order column classes should follow; guests not in it come after, by index.
func newClassMatrix(n int, blocked [][2]int, order []int) (classMatrix, error) {
	if n > maxGuests {
		return classMatrix{}, fmt.Errorf("%d guests: a bridge has at most %d", n, maxGuests)
	}
	rows := make([]bitset, n) // destinations each source is blocked from
	cols := make([]bitset, n) // sources blocked from each destination
	for _, p := range blocked {
		rows[p[0]].set(p[1])
		cols[p[1]].set(p[0])
	}
	m := classMatrix{Row: make([]uint32, n), Col: make([]uint32, n)}

	// Column classes, numbered in the given order.
	seq := make([]int, 0, n)
	seen := make([]bool, n)
	for _, i := range order {
		if i >= 0 && i < n && !seen[i] {
			seen[i] = true
			seq = append(seq, i)
		}
	}
	for i := range n {
		if !seen[i] {
			seq = append(seq, i)
		}
	}
	colClass := map[bitset]uint32{}
	var classMembers []bitset // by column class - 1
	for _, j := range seq {
		if cols[j].empty() {
			continue
		}
		c, ok := colClass[cols[j]]
		if !ok {
			classMembers = append(classMembers, bitset{})
			c = uint32(len(classMembers))
			colClass[cols[j]] = c
		}
		classMembers[c-1].set(j)
		m.Col[j] = c
	}

	// Row classes: a row is the set of column classes it blocks. Guests of one column class
	// are blocked from the same sources, so a row blocks all of a class or none of it.
	rowClass := map[bitset]uint32{}
	for i := range n {
		if rows[i].empty() {
			continue
		}
		var key bitset
		for j := range n {
			if rows[i].has(j) {
				key.set(int(m.Col[j]) - 1)
			}
		}
		r, ok := rowClass[key]
		if !ok {
			r = uint32(len(rowClass) + 1)
			rowClass[key] = r
			m.Runs = append(m.Runs, runsOf(r, key, len(classMembers))...)
		}
		m.Row[i] = r
	}
	return m, nil
}

// runsOf returns the maximal runs of consecutive column classes (1-based) in key.
func runsOf(row uint32, key bitset, classes int) []ClassRun {
	var out []ClassRun
	for c := 0; c < classes; c++ {
		if !key.has(c) {
			continue
		}
		start := c
		for c+1 < classes && key.has(c+1) {
			c++
		}
		out = append(out, ClassRun{Row: row, From: uint32(start + 1), To: uint32(c + 1)})
	}
	return out
}

// blocks reports whether the matrix blocks guest i from reaching guest j.
func (m classMatrix) blocks(i, j int) bool {
	r, c := m.Row[i], m.Col[j]
	if r == 0 || c == 0 {
		return false
	}
	for _, run := range m.Runs {
		if run.Row == r && run.From <= c && c <= run.To {
			return true
		}
	}
	return false
}

// String summarises the matrix for the rule set's text form.
func (m classMatrix) String() string {
	rows, cols := 0, 0
	for i := range m.Row {
		rows = max(rows, int(m.Row[i]))
		cols = max(cols, int(m.Col[i]))
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%d row classes, %d column classes, %d runs", rows, cols, len(m.Runs))
	return b.String()
}
