package partition

import (
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"time"
)

// writeAhead records the state of a change with a deadline (UpdateUntil) before the kernel
// gets it, with the deadline and the state to restore then, and returns what puts the
// previous record back if the change fails. Killed anywhere after this, the change leaves a
// record that RestoreExpired (the --for's restorer, or the next command) undoes at the
// deadline, whether or not the kernel got it: restoring re-applies the previous state, and
// its shaping is undone from this record's. Until the final record is written, status
// compares the kernel with this one, and warns that the kernel does not hold what was last
// applied when the commit has not happened.
func (t Target) writeAhead(r *resolved, plan Plan, prev Record, known bool, backend Backend, o applyOpts) (func(), error) {
	ahead := newStatus(r, plan, prev, time.Now())
	ahead.Change, ahead.Backend = ahead.Generation, backend
	// The counter sets the table may hold by now: the new rule set's, and the old ones the
	// commit keeps (as pruneCounters reckons them).
	ahead.CounterSets = plan.RuleSet.counted()
	if prev.Table && prev.Backend == backend {
		for _, name := range prev.CounterSets {
			if !slices.Contains(ahead.CounterSets, name) {
				ahead.CounterSets = append(ahead.CounterSets, name)
			}
		}
	}
	restore := prev.State().For(t.Guests)
	ahead.Expires, ahead.Restore = o.expires, &restore
	if err := writeStatus(t.StateDir, ahead); err != nil {
		return nil, err
	}
	return func() {
		if known {
			_ = writeStatus(t.StateDir, prev)
		} else {
			_ = os.Remove(filepath.Join(t.StateDir, StateFile))
		}
	}, nil
}

// Deadline returns when the state a change with a deadline (UpdateUntil) replaced is to be
// restored, and false when the record holds no such change.
func Deadline(t Target) (time.Time, bool, error) {
	st, _, err := readStatus(t.StateDir)
	if err != nil || st.Restore == nil || st.Expires.IsZero() {
		return time.Time{}, false, err
	}
	return st.Expires, true, nil
}

// carryRestore is what a change made while a --for is pending (UpdateUntil, not yet
// restored) leaves that --for to restore at its deadline. Each part of the state the change
// touched -- the partition with its mode and cut, the impairment of each guest or pair -- is
// the change's now, and stays after the restore; each part it left alone is restored as the
// --for recorded it. So `isolate n1 --for 2s` then `loss 5 n2` ends the isolation on time and
// keeps the loss; `isolate n1 --for 2s` then `random-halves` leaves the halves. keep is false
// when nothing of the --for's is left to restore.
func carryRestore(restore, before, after State) (out State, keep bool) {
	out = restore
	if !reflect.DeepEqual(before.Partition, after.Partition) || before.Mode != after.Mode || before.Cut != after.Cut {
		out.Partition, out.Mode, out.Cut = after.Partition, after.Mode, after.Cut
	}
	targets := map[string]bool{}
	for _, im := range slices.Concat(before.Impairments, after.Impairments) {
		targets[im.Target()] = true
	}
	out.Impairments = slices.Clone(restore.Impairments)
	for target := range targets {
		b, a := impairmentOf(before, target), impairmentOf(after, target)
		if reflect.DeepEqual(b, a) {
			continue
		}
		out.Impairments = slices.DeleteFunc(out.Impairments, func(im Impairment) bool { return im.Target() == target })
		if a != nil {
			out.Impairments = append(out.Impairments, *a)
		}
	}
	return out, !sameState(out, after)
}

func impairmentOf(s State, target string) *Impairment {
	i := slices.IndexFunc(s.Impairments, func(im Impairment) bool { return im.Target() == target })
	if i < 0 {
		return nil
	}
	return &s.Impairments[i]
}

// sameState compares two states, impairments in any order.
func sameState(a, b State) bool {
	if !reflect.DeepEqual(a.Partition, b.Partition) || a.Mode != b.Mode || a.Cut != b.Cut || len(a.Impairments) != len(b.Impairments) {
		return false
	}
	for _, im := range a.Impairments {
		if other := impairmentOf(b, im.Target()); other == nil || !reflect.DeepEqual(*other, im) {
			return false
		}
	}
	return true
}
