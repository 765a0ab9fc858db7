package partition

import (
	"fmt"
	"slices"

	"github.com/google/nftables"
	"github.com/pontoon-dev/pontoon/internal/nftpool"
	"github.com/pontoon-dev/pontoon/internal/nftwire"
)

// A change with a deadline is recorded before the kernel gets it (writeAhead), so that a
// process killed between its commit and its final record leaves a change that its restorer
// still ends. Killed before its commit, the same process leaves a record of a change the
// kernel never got: the next change must not build on it, or the killed change would arrive
// with that one and last until its deadline. The record written ahead keeps the one it
// replaces (Before) for that.

// stopAt is where tests stop a change as a kill would: after its record is written ahead
// ("ahead"), after its shaping ("shaped") and after its commit ("committed"). It does nothing
// outside tests.
var stopAt = func(string) {}

// settleAhead turns a record written ahead of its change's commit into what the kernel holds,
// under the state lock: the record itself when the commit went in, else the record before the
// change, as the change's own failure would have left it (its shaping, which goes in before
// the commit, undone). That is written at once: the caller may change nothing (a restorer that
// finds nothing left to end).
func settleAhead(t Target, ahead Record) (Record, error) {
	in, err := aheadInForce(t.NetnsPath, ahead)
	if err != nil {
		return Record{}, fmt.Errorf("tell whether the change of generation %d, recorded ahead of its commit, is in force: %w", ahead.Change, err)
	}
	if in {
		ahead.Before = nil
		return ahead, nil
	}
	before := *ahead.Before
	if err := applyShaping(t.NetnsPath, ahead.Shaping, before.Shaping); err != nil {
		return Record{}, fmt.Errorf("undo the shaping of the change of generation %d, recorded ahead of a commit it never made: %w", ahead.Change, err)
	}
	if !before.Table {
		// A commit killed between its two steps leaves a table of sets without rules.
		if err := dropTables(t.NetnsPath); err != nil {
			return Record{}, fmt.Errorf("remove the table of the change of generation %d, recorded ahead of a commit it never made: %w", ahead.Change, err)
		}
	}
	// Markers stay unique: a later commit must not reuse the generation of the one that
	// never happened.
	before.Generation = max(before.Generation, ahead.Generation)
	if err := writeStatus(t.StateDir, before); err != nil {
		return Record{}, err
	}
	return before, nil
}

// aheadInForce reports whether the kernel got the change of a record written ahead, by the
// partition table its commit leaves: the change's own (its marker), or, for a change that
// needs none, the absence of the one the record before it had. When neither has a table, the
// change's shaping (which goes in before the commit) tells.
func aheadInForce(nsPath string, ahead Record) (bool, error) {
	before := ahead.Before
	switch {
	case ahead.Table:
		m, err := tableMarker(nsPath, ahead.Backend)
		return m == ahead.Marker, err
	case before.Table:
		m, err := tableMarker(nsPath, before.Backend)
		return m != before.Marker, err
	}
	return shapingIn(nsPath, ahead.Shaping, before.Shaping), nil
}

// shapingIn reports whether the kernel holds the shaping want rather than was: every tree of
// want as addShaping builds it, and none of was's on a device want leaves unshaped.
func shapingIn(nsPath string, want, was []Shaping) bool {
	hs := newHandles(nsPath)
	defer hs.close()
	for _, sh := range want {
		if shapingDrift(hs, sh) != "" {
			return false
		}
	}
	for _, sh := range was {
		if !slices.ContainsFunc(want, func(w Shaping) bool { return keyOf(w) == keyOf(sh) }) && shapingDrift(hs, sh) != "is gone" {
			return false
		}
	}
	return true
}

// tableMarker is the marker of the partition table of family b in force ("" when none); of
// either family's when b is not known.
func tableMarker(nsPath string, b Backend) (string, error) {
	if !b.valid() {
		kt, err := readKernel(nsPath)
		return kt.Marker, err
	}
	var now tableNow
	err := nftpool.WithConn(nsPath, func(w *nftwire.Conn) (err error) { now, err = readTableNow(w, b); return err })
	return now.marker, err
}

// dropTables removes the partition tables the kernel has, of either family, whatever they
// hold (a table of a commit killed halfway may have no rules, or no sets).
func dropTables(nsPath string) error {
	nftpool.MarkRemoved()
	return nftpool.With(nsPath, func(c *nftables.Conn) error {
		tables, err := c.ListTables()
		if err != nil {
			return err
		}
		n := 0
		for _, tb := range tables {
			if tb.Name == TableName && slices.ContainsFunc(backends, func(b Backend) bool { return b.nftFamily() == tb.Family }) {
				c.DelTable(tb)
				n++
			}
		}
		if n == 0 {
			return nil
		}
		return flush(c)
	})
}
