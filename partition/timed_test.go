package partition

import (
	"fmt"
	"reflect"
	"slices"
	"testing"
	"time"
)

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

// TestTimedChanges: what each of several changes with and without a deadline leaves in force
// as their deadlines pass, in any order.
func TestTimedChanges(t *testing.T) {
	iso := func(g string) Partition {
		return Partition{Kind: "isolate", Description: "isolate " + g, Blocked: []Pair{{g, "x"}, {"x", g}}}
	}
	block := Partition{Kind: "block", Description: "block n2 -> n1", Blocked: []Pair{{"n2", "n1"}}}
	loss := func(g string, pct float64) Impairment { return Impairment{Guest: g, Loss: pct} }
	with := func(p Partition, imps ...Impairment) State { return State{Partition: p, Impairments: imps} }
	none := State{}

	// A step: a change with a deadline (timed, named by gen), one without (plain, gen 0), or
	// the end of the timed change gen (after is unused); want is the state in force after it.
	type step struct {
		gen   uint64
		end   bool
		after State
		sets  []string
		want  State
	}
	timed := func(gen uint64, after State, sets ...string) step {
		return step{gen: gen, after: after, want: after, sets: sets}
	}
	plain := func(after State, sets ...string) step { return step{after: after, want: after, sets: sets} }
	end := func(gen uint64, want State) step { return step{gen: gen, end: true, want: want} }
	for _, tc := range []struct {
		name  string
		steps []step
		// superseded are the gens whose end finds nothing left to restore.
		superseded []uint64
	}{
		{"an impairment after a timed partition: the partition ends, the impairment stays", []step{
			timed(1, with(iso("n1"))), plain(with(iso("n1"), loss("n2", 5))), end(1, with(Partition{}, loss("n2", 5))),
		}, nil},
		{"a partition after a timed impairment: the impairment ends, the partition stays", []step{
			timed(1, with(Partition{}, loss("n1", 10))), plain(with(block, loss("n1", 10))), end(1, with(block)),
		}, nil},
		{"another partition after a timed partition: nothing of the timed one is left", []step{
			timed(1, with(iso("n1"))), plain(with(block)), end(1, with(block)),
		}, []uint64{1}},
		{"heal after anything: nothing is left", []step{
			plain(with(Partition{}, loss("n3", 1))), timed(1, with(iso("n1"), loss("n3", 1), loss("n1", 10))), plain(none), end(1, none),
		}, []uint64{1}},
		{"a timed impairment of one guest, then another guest's: only the first ends", []step{
			plain(with(Partition{}, loss("n1", 1))), timed(1, with(Partition{}, loss("n1", 20))), plain(with(Partition{}, loss("n1", 20), loss("n2", 5))),
			end(1, with(Partition{}, loss("n1", 1), loss("n2", 5))),
		}, nil},
		{"two timed changes of different parts each end on their own time", []step{
			timed(1, with(iso("n1"))), timed(2, with(iso("n1"), loss("n2", 5))),
			end(1, with(Partition{}, loss("n2", 5))), end(2, none),
		}, nil},
		{"the same, ending in the other order", []step{
			timed(1, with(iso("n1"))), timed(2, with(iso("n1"), loss("n2", 5))),
			end(2, with(iso("n1"))), end(1, none),
		}, nil},
		{"a timed partition on a timed partition, the later ending first: the earlier one is back", []step{
			timed(1, with(iso("n1"))), timed(2, with(iso("n2"))), end(2, with(iso("n1"))), end(1, none),
		}, nil},
		{"a timed partition on a timed partition, the earlier ending first: the later one stays, then all ends", []step{
			timed(1, with(iso("n1"))), timed(2, with(iso("n2"))), end(1, with(iso("n2"))), end(2, none),
		}, nil},
		{"three on one part, the middle one ending first", []step{
			plain(with(block)), timed(1, with(iso("n1"))), timed(2, with(iso("n2"))), timed(3, with(iso("n3"))),
			end(2, with(iso("n3"))), end(3, with(iso("n1"))), end(1, with(block)),
		}, nil},
		{"a plain change of the part ends every timed change on it", []step{
			timed(1, with(iso("n1"))), timed(2, with(iso("n2"))), plain(with(block)), end(1, with(block)), end(2, with(block)),
		}, []uint64{1, 2}},
		{"a timed change that changed nothing ends without changing anything", []step{
			plain(with(block)), timed(1, with(block)), end(1, with(block)),
		}, nil},
		{"a timed partition set again for longer: it lasts the longer", []step{
			timed(1, with(iso("n1")), SetsPartition), timed(2, with(iso("n1")), SetsPartition), end(1, with(iso("n1"))), end(2, none),
		}, nil},
		{"a timed partition set again for good: it stays", []step{
			timed(1, with(iso("n1")), SetsPartition), plain(with(iso("n1")), SetsPartition), end(1, with(iso("n1"))),
		}, []uint64{1}},
		{"a timed loss, then a delay of the same guest for good: the loss ends, the delay stays", []step{
			timed(1, with(Partition{}, loss("n1", 5))),
			plain(with(Partition{}, Impairment{Guest: "n1", Loss: 5, Delay: 100 * time.Millisecond}), SetsSetting("guest n1", "delay")),
			end(1, with(Partition{}, Impairment{Guest: "n1", Delay: 100 * time.Millisecond})),
		}, nil},
		{"a timed loss, then a longer timed delay of the same guest: each ends on its own time", []step{
			timed(1, with(Partition{}, loss("n1", 5))),
			timed(2, with(Partition{}, Impairment{Guest: "n1", Loss: 5, Delay: 100 * time.Millisecond}), SetsSetting("guest n1", "delay")),
			end(1, with(Partition{}, Impairment{Guest: "n1", Delay: 100 * time.Millisecond})), end(2, none),
		}, nil},
		{"a timed delay ends, and the jitter set on it later goes with it", []step{
			timed(1, with(Partition{}, Impairment{Guest: "n1", Delay: 100 * time.Millisecond})),
			plain(with(Partition{}, Impairment{Guest: "n1", Delay: 100 * time.Millisecond, Jitter: 10 * time.Millisecond})),
			end(1, none),
		}, nil},
		{"the whole state set again (Apply) ends every timed part", []step{
			timed(1, with(iso("n1"), loss("n2", 5))), plain(with(iso("n1"), loss("n2", 5)), SetsAll), end(1, with(iso("n1"), loss("n2", 5))),
		}, []uint64{1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cur, pending := none, []Timed(nil)
			var superseded []uint64
			for i, st := range tc.steps {
				switch {
				case st.end:
					next, left, ok := expireTimed(pending, st.gen, cur)
					if !ok {
						superseded = append(superseded, st.gen)
					}
					cur, pending = next, left
				case st.gen != 0:
					pending = pushTimed(pending, cur, st.after, st.sets, st.gen, time.Unix(int64(st.gen), 0), "", "")
					cur = st.after
				default:
					pending = replaceTimed(pending, cur, st.after, st.sets)
					cur = st.after
				}
				if !sameState(cur, st.want) {
					t.Fatalf("after step %d: %+v; want %+v", i+1, cur, st.want)
				}
			}
			if len(pending) != 0 {
				t.Errorf("still pending after every end: %+v", pending)
			}
			if !slices.Equal(superseded, tc.superseded) {
				t.Errorf("ends that restored nothing: %v; want %v", superseded, tc.superseded)
			}
		})
	}
}

// TestExpiredTimed ends what is due and nothing else.
func TestExpiredTimed(t *testing.T) {
	iso := Partition{Kind: "isolate", Description: "isolate n1", Blocked: []Pair{{"n1", "n2"}, {"n2", "n1"}}}
	imp := Impairment{Guest: "n2", Loss: 5}
	cur := State{}
	pending := pushTimed(nil, cur, State{Partition: iso}, nil, 1, time.Unix(10, 0), "", "")
	pending = pushTimed(pending, State{Partition: iso}, State{Partition: iso, Impairments: []Impairment{imp}}, nil, 2, time.Unix(20, 0), "", "")
	cur = State{Partition: iso, Impairments: []Impairment{imp}}
	// Left to its own command for ExpireGrace past its deadline.
	if _, _, any := expiredTimed(pending, cur, time.Unix(10, 0).Add(ExpireGrace-time.Millisecond)); any {
		t.Error("something ended within the grace after the first deadline")
	}
	next, left, any := expiredTimed(pending, cur, time.Unix(10, 0).Add(ExpireGrace))
	if !any || len(left) != 1 || left[0].Change != 2 || !sameState(next, State{Impairments: []Impairment{imp}}) {
		t.Errorf("at the first deadline: %+v, pending %+v; want the impairment alone, the second pending", next, left)
	}
	next, left, _ = expiredTimed(pending, cur, time.Unix(30, 0))
	if len(left) != 0 || !sameState(next, State{}) {
		t.Errorf("after both deadlines: %+v, pending %+v; want nothing", next, left)
	}
}

// TestLegacyRecordRestores: a record written before several timed changes could be pending
// held one, as a deadline and the whole state to restore; it is read as the one pending
// change of the parts where that state differs from what is in force.
func TestLegacyRecordRestores(t *testing.T) {
	rec := fullmeshStatus()
	rec.Kind, rec.Description = "isolate", "isolate n1"
	rec.Blocked = []BlockedPair{{Src: "n1", Dst: "n2"}, {Src: "n2", Dst: "n1"}}
	rec.Impairments = []Impairment{{Guest: "n2", Loss: 5}}
	rec.Generation, rec.Change = 7, 6
	f := toFile(rec)
	restore := State{Partition: Partition{Kind: "fullmesh", Description: "fullmesh", Blocked: []Pair{}}, Mode: ModeDrop, Impairments: []Impairment{{Guest: "n2", Loss: 5}}}
	f.Expires, f.Restore = time.Unix(100, 0), &restore
	got := fromFile(f)
	if len(got.Pending) != 1 || got.Pending[0].Change != 6 || !slices.Equal(got.Pending[0].Parts, []string{partitionPart}) {
		t.Fatalf("pending %+v; want the partition of change 6", got.Pending)
	}
	next, _, _ := expireTimed(got.Pending, 6, got.State())
	if len(next.Partition.Blocked) != 0 || len(next.Impairments) != 1 {
		t.Errorf("restored %+v; want no partition and the loss kept", next)
	}
}

// TestEnds: what status says each pending --for's end does, the others ending at their own
// deadlines. It used to say the lower of two stacked --fors puts its value back, although the
// upper one still held the part then.
func TestEnds(t *testing.T) {
	iso := func(g string) Partition {
		return Partition{Kind: "isolate", Description: "isolate " + g, Blocked: []Pair{{g, "x"}, {"x", g}}}
	}
	full := Partition{Kind: "fullmesh", Description: "fullmesh", Blocked: []Pair{}}
	record := func(steps ...State) Record {
		cur := State{Partition: full}
		var pending []Timed
		for i, s := range steps {
			pending = pushTimed(pending, cur, s, []string{SetsPartition}, uint64(i+1), time.Unix(int64(10*(i+1)), 0), "", "")
			cur = s
		}
		rec := fullmeshStatus()
		rec.Kind, rec.Description = cur.Partition.Kind, cur.Partition.Description
		for _, p := range cur.Partition.Blocked {
			rec.Blocked = append(rec.Blocked, BlockedPair{Src: p.Src, Dst: p.Dst})
		}
		rec.Pending = pending
		return rec
	}
	say := func(rec Record) []string {
		var out []string
		for _, e := range rec.Ends() {
			var parts []string
			for _, p := range e.Changed {
				parts = append(parts, DescribePart(p, e.State))
			}
			out = append(out, fmt.Sprintf("%d: %v", e.At.Unix(), parts))
		}
		return out
	}
	// n1 until 10 s under n2 until 20 s: nothing changes at 10, fullmesh at 20.
	if got, want := say(record(State{Partition: iso("n1")}, State{Partition: iso("n2")})), []string{"10: []", "20: [partition: fullmesh]"}; !slices.Equal(got, want) {
		t.Errorf("stacked, lower first: %q; want %q", got, want)
	}
	// n1 until 20 s, n2 on top until 10 s (pending in the order made): n1 at 10, fullmesh at 20.
	rec := record(State{Partition: iso("n1")}, State{Partition: iso("n2")})
	rec.Pending[0].Expires, rec.Pending[1].Expires = time.Unix(20, 0), time.Unix(10, 0)
	if got, want := say(rec), []string{"10: [partition: isolate n1]", "20: [partition: fullmesh]"}; !slices.Equal(got, want) {
		t.Errorf("stacked, upper first: %q; want %q", got, want)
	}
}
