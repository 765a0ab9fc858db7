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
// ("ahead"), after its shaping ("shaped"), between the two steps of its commit ("step1"),
// after its commit ("committed") and, with Cut, while connections close ("cutting"). It does
// nothing outside tests.
var stopAt = func(string) {}

// settleAhead turns a record written ahead of its change's commit into what the kernel holds,
// under the state lock: the record itself when the commit went in, else the record before the
// change, as the change's own failure would have left it (its shaping, which goes in before
// the commit, undone). That is written at once: the caller may change nothing (a restorer that
// finds nothing left to end), or fail.
func settleAhead(t Target, ahead Record) (Record, error) {
	in, err := aheadInForce(t.NetnsPath, ahead)
	if err != nil {
		return Record{}, fmt.Errorf("tell whether the change of generation %d, recorded ahead of its commit, is in force: %w", ahead.Change, err)
	}
	if in {
		// Its command never logged it, nor wrote it as made: the log gets its event once, here.
		before := *ahead.Before
		ahead.Before = nil
		if err := writeStatus(t.StateDir, ahead); err != nil {
			return Record{}, err
		}
		t.logSettled(before, ahead)
		return ahead, nil
	}
	before := *ahead.Before
	// Before's shaping goes back only where its device still is: a guest that left since
	// takes its shaping along, as it does from any change.
	before.Shaping = onDevices(t.NetnsPath, before.Shaping)
	if err := applyShaping(t.NetnsPath, ahead.Shaping, before.Shaping); err != nil {
		return Record{}, fmt.Errorf("undo the shaping of the change of generation %d, recorded ahead of a commit it never made: %w", ahead.Change, err)
	}
	// A commit killed between its two steps leaves a table of sets without rules: where
	// Before has none, or in the family the change was moving to.
	var half []Backend
	switch {
	case !before.Table:
		half = backends
	case ahead.Table && ahead.Backend != before.Backend && ahead.Backend.valid():
		half = []Backend{ahead.Backend}
	}
	if err := dropTables(t.NetnsPath, half); err != nil {
		return Record{}, fmt.Errorf("remove the table of the change of generation %d, recorded ahead of a commit it never made: %w", ahead.Change, err)
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

// dropTables removes the partition tables the kernel has of the families fs, whatever they
// hold (a table of a commit killed halfway may have no rules, or no sets).
func dropTables(nsPath string, fs []Backend) error {
	if len(fs) == 0 {
		return nil
	}
	nftpool.MarkRemoved()
	return nftpool.With(nsPath, func(c *nftables.Conn) error {
		tables, err := c.ListTables()
		if err != nil {
			return err
		}
		n := 0
		for _, tb := range tables {
			if tb.Name == TableName && slices.ContainsFunc(fs, func(b Backend) bool { return b.nftFamily() == tb.Family }) {
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

// onDevices is the shaping of shs whose namespace and device are there.
func onDevices(nsPath string, shs []Shaping) []Shaping {
	hs := newHandles(nsPath)
	defer hs.close()
	var out []Shaping
	for _, sh := range shs {
		if h, err := hs.get(sh.Netns); err == nil {
			if _, err := h.LinkByName(sh.Device); err == nil {
				out = append(out, sh)
			}
		}
	}
	return out
}

// Settle settles the bridge's record if it was written ahead of a change whose process died
// (see settleAhead): that change's restorer does at once, so that a change that never went in
// stops showing as soon as its process is gone.
func Settle(t Target) error {
	if err := t.check(); err != nil {
		return err
	}
	unlock, err := lockState(t.StateDir)
	if err != nil {
		return err
	}
	defer unlock()
	prev, _, err := readStatus(t.StateDir)
	if err != nil || prev.Before == nil {
		return err
	}
	_, err = settleAhead(t, prev)
	return err
}
