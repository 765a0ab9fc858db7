package partition

import (
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"time"
)

// Timed is a change with a deadline (UpdateUntil, `--for`) that is still pending: at
// Expires, the parts of the state it changed go back to what they were before it. The parts
// are the partition (with its mode and cut) and the impairment of each guest or pair. Any
// number can be pending at once, each ending on its own time:
//   - a change without a deadline takes the parts it changes for good: no pending one
//     restores them any more (`isolate n1 --for 30s`, then `loss 5 n2`, ends the isolation
//     on time and keeps the loss; a new partition, or heal, ends nothing later);
//   - a timed change on a part another timed change holds lies on top of it: when the top one
//     ends the part goes back to the one beneath, and when the one beneath ends first, the
//     top one goes back, at its own deadline, to what the one beneath replaced
//     (`isolate n1 --for 10s`, then `isolate n2 --for 5s`: n2 until 5 s, n1 until 10 s, then
//     fullmesh; in the other order, n2 until 10 s, then fullmesh).
type Timed struct {
	// Change is the generation of the change, which its restorer names (Restore).
	Change  uint64    `json:"change"`
	Expires time.Time `json:"expires"`
	// Partition tells whether it holds the partition, Targets the impairments it holds (by
	// Impairment.Target); Restore holds what those go back to, an impairment absent from it
	// meaning none.
	Partition bool     `json:"partition,omitempty"`
	Targets   []string `json:"targets,omitempty"`
	Restore   State    `json:"restore"`
}

func (tc Timed) holds(part string) bool {
	if part == partitionPart {
		return tc.Partition
	}
	return slices.Contains(tc.Targets, part)
}

func (tc *Timed) drop(part string) {
	if part == partitionPart {
		tc.Partition = false
		tc.Restore.Partition, tc.Restore.Mode, tc.Restore.Cut = Partition{}, "", false
		return
	}
	tc.Targets = slices.DeleteFunc(slices.Clone(tc.Targets), func(t string) bool { return t == part })
	tc.Restore.Impairments = slices.DeleteFunc(slices.Clone(tc.Restore.Impairments), func(im Impairment) bool { return im.Target() == part })
}

func (tc Timed) parts() []string {
	out := slices.Clone(tc.Targets)
	if tc.Partition {
		out = append(out, partitionPart)
	}
	return out
}

// partitionPart names the partition, with its mode and cut, among the parts of a state; the
// other parts are impairment targets, which never take this form.
const partitionPart = "="

// changedParts lists the parts that differ between before and after.
func changedParts(before, after State) []string {
	var out []string
	if !reflect.DeepEqual(before.Partition, after.Partition) || before.Mode != after.Mode || before.Cut != after.Cut {
		out = append(out, partitionPart)
	}
	for _, im := range slices.Concat(before.Impairments, after.Impairments) {
		target := im.Target()
		if slices.Contains(out, target) {
			continue
		}
		if b, a := impairmentOf(before, target), impairmentOf(after, target); (b == nil) != (a == nil) || (b != nil && !reflect.DeepEqual(*b, *a)) {
			out = append(out, target)
		}
	}
	return out
}

// setPart sets part of s to its value in from.
func setPart(s *State, part string, from State) {
	if part == partitionPart {
		s.Partition, s.Mode, s.Cut = from.Partition, from.Mode, from.Cut
		return
	}
	s.Impairments = slices.DeleteFunc(slices.Clone(s.Impairments), func(im Impairment) bool { return im.Target() == part })
	if im := impairmentOf(from, part); im != nil {
		s.Impairments = append(s.Impairments, *im)
	}
}

// pushTimed adds the timed change of generation gen, from before to after, on top of pending.
func pushTimed(pending []Timed, before, after State, gen uint64, expires time.Time) []Timed {
	return append(slices.Clone(pending), timedOf(gen, expires, changedParts(before, after), before))
}

// timedOf is the timed change of generation gen that holds parts and restores them as from
// has them.
func timedOf(gen uint64, expires time.Time, parts []string, from State) Timed {
	tc := Timed{Change: gen, Expires: expires}
	for _, part := range parts {
		if part == partitionPart {
			tc.Partition = true
		} else {
			tc.Targets = append(tc.Targets, part)
		}
		setPart(&tc.Restore, part, from)
	}
	return tc
}

// replaceTimed is what is left pending after a change without a deadline from before to
// after: the parts it changed are its for good. A timed change left holding nothing is over.
func replaceTimed(pending []Timed, before, after State) []Timed {
	changed := changedParts(before, after)
	var out []Timed
	for _, tc := range pending {
		had := len(tc.parts()) > 0
		for _, part := range changed {
			if tc.holds(part) {
				tc.drop(part)
			}
		}
		if !had || len(tc.parts()) > 0 {
			out = append(out, tc)
		}
	}
	return out
}

// expireTimed ends the timed change of generation gen in cur: each part it holds goes back to
// what it replaced, or, where a later timed change holds that part too, that one goes back
// to it in turn. It reports false when no such change is pending (a change since replaced
// all it held, or it ended already).
func expireTimed(pending []Timed, gen uint64, cur State) (State, []Timed, bool) {
	i := slices.IndexFunc(pending, func(tc Timed) bool { return tc.Change == gen })
	if i < 0 {
		return cur, pending, false
	}
	out := slices.Clone(pending)
	ending := out[i]
	next := cur
	next.Impairments = slices.Clone(cur.Impairments)
	for _, part := range ending.parts() {
		above := slices.IndexFunc(out[i+1:], func(tc Timed) bool { return tc.holds(part) })
		if above < 0 {
			setPart(&next, part, ending.Restore)
			continue
		}
		setPart(&out[i+1+above].Restore, part, ending.Restore)
	}
	return next, slices.Delete(out, i, i+1), true
}

// expiredTimed ends every timed change whose deadline is not after now, as expireTimed.
func expiredTimed(pending []Timed, cur State, now time.Time) (State, []Timed, bool) {
	any := false
	for _, tc := range pending {
		if !now.Before(tc.Expires) {
			cur, pending, _ = expireTimed(pending, tc.Change, cur)
			any = true
		}
	}
	return cur, pending, any
}

// Deadline returns when the timed change of generation gen ends, if it is pending.
func (r Record) Deadline(gen uint64) (time.Time, bool) {
	for _, tc := range r.Pending {
		if tc.Change == gen {
			return tc.Expires, true
		}
	}
	return time.Time{}, false
}

// writeAhead records the state of a change with a deadline (UpdateUntil) before the kernel
// gets it, with its pending timed changes, this one's included, and returns what puts the
// previous record back if the change fails. Killed anywhere after this, the change leaves a
// record that RestoreExpired (the --for's restorer, or the next command) undoes at the
// deadline, whether or not the kernel got it: restoring re-applies the previous state, and
// its shaping is undone from this record's. Until the final record is written, status
// compares the kernel with this one, and warns that the kernel does not hold what was last
// applied when the commit has not happened.
func (t Target) writeAhead(r *resolved, plan Plan, prev Record, known bool, backend Backend, pending []Timed) (func(), error) {
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
	ahead.Pending = pending
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

// Pending returns the bridge's pending timed changes (UpdateUntil), in the order they were
// made.
func Pending(t Target) ([]Timed, error) {
	st, _, err := readStatus(t.StateDir)
	if err != nil {
		return nil, err
	}
	return st.Pending, nil
}

func impairmentOf(s State, target string) *Impairment {
	i := slices.IndexFunc(s.Impairments, func(im Impairment) bool { return im.Target() == target })
	if i < 0 {
		return nil
	}
	return &s.Impairments[i]
}

// legacyTimed is the one timed change a record written before Pending existed holds: its
// Restore was a whole state, which held the parts in which it differs from cur.
func legacyTimed(gen uint64, expires time.Time, restore, cur State) Timed {
	return timedOf(gen, expires, changedParts(cur, restore), restore)
}
