package partition

import (
	"fmt"
	"slices"
	"time"
)

// A change with a deadline is recorded before the kernel gets it (writeAhead), so that a
// process killed between its commit and its final record leaves a change that its restorer
// still ends. Killed before its commit, the same process leaves a record of a change the
// kernel never got. Status says so; the next change must not build on it either, or the
// killed change would arrive with that one (and last until its deadline).

// stopAt is where tests stop a change as a kill would: after its record is written ahead
// ("ahead") and after its commit ("committed"). It does nothing outside tests.
var stopAt = func(string) {}

// settleAhead turns a record written ahead of its change's commit into what the kernel holds:
// the record itself when the commit went in, else the state before that change, with the
// change's timed restore dropped (there is nothing of it to undo), which is recorded at once:
// the caller may change nothing (a restorer that finds nothing left to end). The caller holds
// the state lock.
func settleAhead(t Target, ahead Record) (Record, error) {
	in, err := aheadInForce(t.NetnsPath, ahead)
	if err != nil {
		return Record{}, fmt.Errorf("tell whether the change recorded ahead of its commit (generation %d) is in force: %w", ahead.Change, err)
	}
	r := ahead
	r.Ahead = false
	if in {
		return r, nil
	}
	before, left, _ := expireTimed(ahead.Pending, ahead.Change, ahead.State())
	r.Pending = left
	r.setState(before, time.Now())
	if err := writeStatus(t.StateDir, r); err != nil {
		return Record{}, err
	}
	return r, nil
}

// aheadInForce reports whether the kernel got the change of a record written ahead: its
// table (by the marker its commit wrote), or, for a change that needs no table, no table and
// the change's shaping, which goes in before the commit.
func aheadInForce(nsPath string, ahead Record) (bool, error) {
	kt, err := readKernel(nsPath)
	if err != nil {
		return false, err
	}
	if ahead.Table {
		return len(kt.Present) == 1 && kt.Marker == ahead.Marker, nil
	}
	if len(kt.Present) > 0 {
		return false, nil
	}
	hs := newHandles(nsPath)
	defer hs.close()
	for _, sh := range ahead.Shaping {
		if shapingDrift(hs, sh) != "" {
			return false, nil
		}
	}
	return true, nil
}

// setState puts s in r as the state applied: pairs r blocked already keep their Since, the
// others are blocked since now.
func (r *Record) setState(s State, now time.Time) {
	since := make(map[Pair]time.Time, len(r.Blocked))
	for _, b := range r.Blocked {
		since[Pair{b.Src, b.Dst}] = b.Since
	}
	r.Kind, r.Description, r.Order = s.Partition.Kind, s.Partition.Description, s.Partition.Order
	r.Mode, r.Cut, r.Impairments = s.Mode, s.Cut, s.Impairments
	r.Blocked = make([]BlockedPair, 0, len(s.Partition.Blocked))
	for _, p := range s.Partition.Blocked {
		b := BlockedPair{Src: p.Src, Dst: p.Dst, Since: now}
		if t, ok := since[p]; ok {
			b.Since = t
		}
		r.Blocked = append(r.Blocked, b)
	}
	// Sorted, as newStatus's merge walk needs.
	slices.SortFunc(r.Blocked, func(a, b BlockedPair) int { return comparePairs(Pair{a.Src, a.Dst}, Pair{b.Src, b.Dst}) })
}
