package partition

import (
	"reflect"
	"slices"
	"testing"
	"time"
)

// TestRefreshKeepsTheRestore: a guest joining under a --for re-applies the partition to its
// port, and the --for still restores what it replaced at its end. The refresh used to count
// as something else applied meanwhile, so the partition stayed in force for good.
func TestRefreshKeepsTheRestore(t *testing.T) {
	s := newScene(t, 3, false)
	tgt := s.target()
	rec, err := UpdateUntil(tgt, func(State) (State, error) {
		return State{Partition: mustIsolate(t, tgt.Guests, "a")}, nil
	}, time.Hour)
	skipMissing(t, err)
	// What Refresh does when a guest attaches.
	refreshed, err := applyWith(tgt, func(s State) (State, error) { return s, nil }, applyOpts{onlyIfApplied: true, kind: EventRefresh})
	if err != nil {
		t.Fatal(err)
	}
	if refreshed.Generation == rec.Generation || !slices.EqualFunc(refreshed.Pending, rec.Pending, func(a, b Timed) bool { return reflect.DeepEqual(a, b) }) {
		t.Fatalf("refresh recorded generation %d, pending %+v; want a new commit keeping the --for of generation %d, %+v",
			refreshed.Generation, refreshed.Pending, rec.Generation, rec.Pending)
	}
	if err := Restore(tgt, rec.Generation); err != nil {
		t.Fatalf("restore after a refresh: %v", err)
	}
	st, err := Status(tgt)
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Blocked) != 0 {
		t.Errorf("after the --for's restore the kernel still blocks %v", st.Blocked)
	}
}
