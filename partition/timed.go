package partition

import (
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"time"
)

// Timed is a change with a deadline (UpdateUntil, `--for`) that is still pending: at
// Expires, the parts of the state it set go back to what they were before it. The parts are
// the partition (with its mode and cut) and each setting (loss, rate, delay, ...) of each
// guest's or pair's impairment. Any number can be pending at once, each ending on its own
// time:
//   - a change without a deadline takes the parts it sets for good: no pending one restores
//     them any more (`isolate n1 --for 30s`, then `loss 5 n2`, ends the isolation on time and
//     keeps the loss; a new partition, or heal, ends nothing later);
//   - a timed change of a part another timed change holds lies on top of it: when the top one
//     ends the part goes back to the one beneath, and when the one beneath ends first, the
//     top one goes back, at its own deadline, to what the one beneath replaced
//     (`isolate n1 --for 10s`, then `isolate n2 --for 5s`: n2 until 5 s, n1 until 10 s, then
//     fullmesh; in the other order, n2 until 10 s, then fullmesh).
//
// A part is held when the change sets it, whether or not its value changes (Target.Sets),
// so `isolate n1 --for 5s` then `isolate n1 --for 60s` isolates n1 for 60 s.
type Timed struct {
	// Change is the generation of the change, which its restorer names (Restore).
	Change  uint64    `json:"change"`
	Expires time.Time `json:"expires"`
	// Parts are the parts it holds (partitionPart, or an impairment's target and setting,
	// settingPart); Restore holds what those go back to (an impairment setting absent from
	// it meaning none).
	Parts   []string `json:"parts,omitempty"`
	Restore State    `json:"restore"`
	// Restorer names who restores it (Target.Restorer): a restorer whose command died in the
	// middle of the change finds its own by that.
	Restorer string `json:"restorer,omitempty"`
	// What is the change in its asker's words (Target.What), for the event of its end.
	What string `json:"what,omitempty"`
}

func (tc Timed) holds(part string) bool { return slices.Contains(tc.Parts, part) }

func (tc *Timed) drop(part string) {
	tc.Parts = slices.DeleteFunc(slices.Clone(tc.Parts), func(p string) bool { return p == part })
	restore := tc.Restore
	setPart(&restore, part, State{})
	tc.Restore = restore
}

// partitionPart names the partition, with its mode and cut, among the parts of a state (see
// Target.Sets); settingPart names the others, which never take this form.
const partitionPart = "="

// SetsAll, in Target.Sets, says that a change sets the whole state.
const SetsAll = "*"

// SetsPartition, in Target.Sets, says that a change sets the partition with its mode and cut.
const SetsPartition = partitionPart

// SetsSetting, in Target.Sets, says that a change sets one setting (loss, rate, delay,
// jitter, duplicate, corrupt, reorder) of the impairment of target (Impairment.Target).
func SetsSetting(target, setting string) string { return settingPart(target, setting) }

func settingPart(target, setting string) string { return target + "/" + setting }

// splitPart splits a setting's part into its target and setting.
func splitPart(part string) (target, setting string) {
	i := strings.LastIndexByte(part, '/')
	return part[:i], part[i+1:]
}

// settings are an impairment's settings, by the names the CLI gives them: each one's value,
// comparable, and how to copy it.
var settings = []struct {
	name string
	get  func(Impairment) any
	set  func(dst *Impairment, src Impairment)
}{
	{"loss", func(im Impairment) any { return im.Loss }, func(d *Impairment, s Impairment) { d.Loss = s.Loss }},
	{"rate", func(im Impairment) any { return im.Rate }, func(d *Impairment, s Impairment) { d.Rate = s.Rate }},
	{"delay", func(im Impairment) any { return im.Delay }, func(d *Impairment, s Impairment) { d.Delay = s.Delay }},
	{"jitter", func(im Impairment) any { return im.Jitter }, func(d *Impairment, s Impairment) { d.Jitter = s.Jitter }},
	{"duplicate", func(im Impairment) any { return im.Duplicate }, func(d *Impairment, s Impairment) { d.Duplicate = s.Duplicate }},
	{"corrupt", func(im Impairment) any { return im.Corrupt }, func(d *Impairment, s Impairment) { d.Corrupt = s.Corrupt }},
	{"reorder", func(im Impairment) any { return im.Reorder }, func(d *Impairment, s Impairment) { d.Reorder = s.Reorder }},
}

// targetOf is an impairment of the target's guest or pair with no setting.
func targetOf(im Impairment) Impairment { return Impairment{Guest: im.Guest, Src: im.Src, Dst: im.Dst} }

// changedParts lists the parts that differ between before and after.
func changedParts(before, after State) []string {
	var out []string
	if !reflect.DeepEqual(before.Partition, after.Partition) || before.Mode != after.Mode || before.Cut != after.Cut {
		out = append(out, partitionPart)
	}
	seen := map[string]bool{}
	for _, im := range slices.Concat(before.Impairments, after.Impairments) {
		target := im.Target()
		if seen[target] {
			continue
		}
		seen[target] = true
		b, a := settingsOf(before, target), settingsOf(after, target)
		for _, st := range settings {
			if st.get(b) != st.get(a) {
				out = append(out, settingPart(target, st.name))
			}
		}
	}
	return out
}

// setParts are the parts a change from before to after sets: those it changes, and those sets
// declares (Target.Sets) whatever their value.
func setParts(before, after State, sets []string) []string {
	out := changedParts(before, after)
	add := func(part string) {
		if !slices.Contains(out, part) {
			out = append(out, part)
		}
	}
	for _, p := range sets {
		if p != SetsAll {
			add(p)
			continue
		}
		add(partitionPart)
		for _, im := range slices.Concat(before.Impairments, after.Impairments) {
			for _, st := range settings {
				add(settingPart(im.Target(), st.name))
			}
		}
	}
	return out
}

// settingsOf is the impairment of target in s, or one with no setting.
func settingsOf(s State, target string) Impairment {
	if im := impairmentOf(s, target); im != nil {
		return *im
	}
	return Impairment{}
}

// setPart sets part of s to its value in from. An impairment left with no setting goes, and
// one left without a delay loses its jitter and reorder, as `partition impair delay=0` does.
func setPart(s *State, part string, from State) {
	if part == partitionPart {
		s.Partition, s.Mode, s.Cut = from.Partition, from.Mode, from.Cut
		return
	}
	target, name := splitPart(part)
	var im Impairment
	i := slices.IndexFunc(s.Impairments, func(x Impairment) bool { return x.Target() == target })
	s.Impairments = slices.Clone(s.Impairments)
	if i >= 0 {
		im = s.Impairments[i]
		s.Impairments = slices.Delete(s.Impairments, i, i+1)
	} else if src := impairmentOf(from, target); src != nil {
		im = targetOf(*src)
	} else if t, ok := parseTarget(target); ok {
		im = t
	} else {
		return
	}
	src := settingsOf(from, target)
	for _, st := range settings {
		if st.name == name {
			st.set(&im, src)
		}
	}
	if im.Delay == 0 {
		im.Jitter, im.Reorder = 0, 0
	}
	if hasSettings(im) {
		s.Impairments = append(s.Impairments, im)
	}
}

func hasSettings(im Impairment) bool {
	for _, st := range settings {
		if st.get(im) != st.get(Impairment{}) {
			return true
		}
	}
	return false
}

// parseTarget reads an impairment's target as Impairment.Target writes it.
func parseTarget(target string) (Impairment, bool) {
	if g, ok := strings.CutPrefix(target, "guest "); ok {
		return Impairment{Guest: g}, true
	}
	src, dst, ok := strings.Cut(target, "->")
	return Impairment{Src: src, Dst: dst}, ok
}

// pushTimed adds the timed change of generation gen, from before to after, setting the parts
// sets declares, on top of pending; what is the change in its asker's words.
func pushTimed(pending []Timed, before, after State, sets []string, gen uint64, expires time.Time, restorer, what string) []Timed {
	tc := timedOf(gen, expires, setParts(before, after, sets), before)
	tc.Restorer, tc.What = restorer, what
	return append(slices.Clone(pending), tc)
}

// timedOf is the timed change of generation gen that holds parts and restores them as from
// has them.
func timedOf(gen uint64, expires time.Time, parts []string, from State) Timed {
	tc := Timed{Change: gen, Expires: expires, Parts: parts}
	for _, part := range parts {
		setPart(&tc.Restore, part, from)
	}
	return tc
}

// replaceTimed is what is left pending after a change without a deadline from before to
// after, setting the parts sets declares: those are its for good. A timed change left
// holding nothing is over.
func replaceTimed(pending []Timed, before, after State, sets []string) []Timed {
	set := setParts(before, after, sets)
	var out []Timed
	for _, tc := range pending {
		had := len(tc.Parts) > 0
		for _, part := range set {
			if tc.holds(part) {
				tc.drop(part)
			}
		}
		if !had || len(tc.Parts) > 0 {
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
	for _, part := range ending.Parts {
		above := slices.IndexFunc(out[i+1:], func(tc Timed) bool { return tc.holds(part) })
		if above < 0 {
			setPart(&next, part, ending.Restore)
			continue
		}
		upper := &out[i+1+above]
		restore := upper.Restore
		setPart(&restore, part, ending.Restore)
		upper.Restore = restore
	}
	return next, slices.Delete(out, i, i+1), true
}

// ExpireGrace is how long after its deadline a timed change is left to the process that made
// it (or its restorer) before any other ends it (RestoreExpired): its own end then says what
// it restored, not that something else did.
const ExpireGrace = 500 * time.Millisecond

// expiredTimed ends every timed change whose deadline, with ExpireGrace, has passed at now,
// as expireTimed.
func expiredTimed(pending []Timed, cur State, now time.Time) (State, []Timed, bool) {
	any := false
	for _, tc := range pending {
		if !now.Before(tc.Expires.Add(ExpireGrace)) {
			cur, pending, _ = expireTimed(pending, tc.Change, cur)
			any = true
		}
	}
	return cur, pending, any
}

// TimedEnd is what happens when a pending timed change ends, the others ending at their own
// deadlines: the state in force from then, and which of its parts change then (none when a
// later timed change still holds all it set).
type TimedEnd struct {
	At      time.Time
	Change  uint64
	State   State
	Changed []string
}

// Ends lays out, in the order of their deadlines, what each pending timed change's end does
// to the state in force (see Timed), as status shows it.
func (r Record) Ends() []TimedEnd {
	pending := slices.Clone(r.Pending)
	slices.SortStableFunc(pending, func(a, b Timed) int { return a.Expires.Compare(b.Expires) })
	cur, left := r.State(), slices.Clone(r.Pending)
	var out []TimedEnd
	for _, tc := range pending {
		next, rest, _ := expireTimed(left, tc.Change, cur)
		out = append(out, TimedEnd{At: tc.Expires, Change: tc.Change, State: next, Changed: changedParts(cur, next)})
		cur, left = next, rest
	}
	return out
}

// DescribePart says what part (of TimedEnd.Changed) is in s, in CLI words: "partition:
// isolate n1", "guest n2 loss: 5%", "guest n2 loss: none".
func DescribePart(part string, s State) string {
	if part == partitionPart {
		return "partition: " + s.Partition.Description
	}
	target, name := splitPart(part)
	im, one := settingsOf(s, target), Impairment{}
	for _, st := range settings {
		if st.name == name {
			st.set(&one, im)
		}
	}
	if !hasSettings(one) {
		return target + " " + name + ": none"
	}
	// One setting's words without its target: "loss=5%".
	_, value, _ := strings.Cut(strings.TrimSuffix(one.String(), " "+one.Target()), "=")
	return target + " " + name + ": " + value
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

// writeAhead records the state of a change with a deadline (UpdateUntil), or one that changes
// shaping, before the kernel gets it, with its pending timed changes (a deadline's own
// included), and the record it replaces
// (Before); it returns what puts the previous record back if the change fails. Killed
// anywhere after this, the change leaves a record that the next change under the lock settles
// (settleAhead): kept when the kernel got the change, which its restorer then ends on time;
// else replaced by Before, the change's shaping undone. Until then status says which it is.
func (t Target) writeAhead(r *resolved, plan Plan, prev Record, known bool, backend Backend, pending []Timed) (func(), error) {
	ahead := newStatus(r, plan, prev, time.Now())
	ahead.Change, ahead.Backend, ahead.Before = ahead.Generation, backend, &prev
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
