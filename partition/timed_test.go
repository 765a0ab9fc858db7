package partition

import (
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
		want  State
	}
	timed := func(gen uint64, after State) step { return step{gen: gen, after: after, want: after} }
	plain := func(after State) step { return step{after: after, want: after} }
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
					pending = pushTimed(pending, cur, st.after, st.gen, time.Unix(int64(st.gen), 0))
					cur = st.after
				default:
					pending = replaceTimed(pending, cur, st.after)
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
	pending := pushTimed(nil, cur, State{Partition: iso}, 1, time.Unix(10, 0))
	pending = pushTimed(pending, State{Partition: iso}, State{Partition: iso, Impairments: []Impairment{imp}}, 2, time.Unix(20, 0))
	cur = State{Partition: iso, Impairments: []Impairment{imp}}
	if _, _, any := expiredTimed(pending, cur, time.Unix(9, 0)); any {
		t.Error("something ended before any deadline")
	}
	next, left, any := expiredTimed(pending, cur, time.Unix(10, 0))
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
	if len(got.Pending) != 1 || got.Pending[0].Change != 6 || !got.Pending[0].Partition || len(got.Pending[0].Targets) != 0 {
		t.Fatalf("pending %+v; want the partition of change 6", got.Pending)
	}
	next, _, _ := expireTimed(got.Pending, 6, got.State())
	if len(next.Partition.Blocked) != 0 || len(next.Impairments) != 1 {
		t.Errorf("restored %+v; want no partition and the loss kept", next)
	}
}
