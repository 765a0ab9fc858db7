package partition

import (
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestChangeKilledAroundItsCommit: a --for that isolates a, killed after its record was
// written ahead and before its commit, leaves a record of an isolation the kernel never got.
// The next change (a loss on c) starts from what the kernel holds: the isolation does not
// arrive with it and nothing is left to restore; status finds the kernel holding that
// change's record, and a reaches b. It used to apply the isolation with the loss, for the
// --for's whole hour. Killed after its commit instead, the isolation stays, with its restore.
func TestChangeKilledAroundItsCommit(t *testing.T) {
	for _, tc := range []struct {
		at       string
		isolated bool
	}{{"ahead", false}, {"committed", true}} {
		t.Run("killed "+tc.at, func(t *testing.T) {
			s := newScene(t, 3, false)
			s.startServers(t)
			tgt := s.target()
			if err := Apply(tgt, State{Partition: mustBlock(t, tgt.Guests, "b", "c")}); err != nil {
				skipMissing(t, err)
				t.Fatal(err)
			}
			isolate := mustIsolate(t, tgt.Guests, "a")
			killedAt(t, tc.at, func() {
				_, _ = UpdateUntil(tgt, func(s State) (State, error) { s.Partition = isolate; return s, nil }, time.Hour)
			})
			if st, err := Status(tgt); err != nil {
				t.Fatal(err)
			} else if in := st.Kernel.InEffect; in != tc.isolated || !in && !strings.Contains(st.Kernel.Detail, "recorded ahead of its commit") {
				t.Errorf("status after the kill: in effect %t, %s", in, st.Kernel.Detail)
			}
			rec, err := Update(tgt, func(s State) (State, error) {
				s.Impairments = append(s.Impairments, Impairment{Guest: "c", Loss: 1})
				return s, nil
			})
			if err != nil {
				t.Fatal(err)
			}
			if got := len(rec.Pending); got != map[bool]int{false: 0, true: 1}[tc.isolated] {
				t.Errorf("pending after the next change: %+v", rec.Pending)
			}
			st, err := Status(tgt)
			if err != nil {
				t.Fatal(err)
			}
			if !st.Kernel.InEffect {
				t.Errorf("status after the next change: %s", st.Kernel.Detail)
			}
			var blocked []Pair
			for _, b := range st.Blocked {
				blocked = append(blocked, Pair{b.Src, b.Dst})
			}
			want := []Pair{{"b", "c"}}
			if tc.isolated {
				want = slices.Clone(isolate.Blocked)
			}
			slices.SortFunc(blocked, comparePairs)
			slices.SortFunc(want, comparePairs)
			if !slices.Equal(blocked, want) {
				t.Errorf("the kernel blocks %v; want %v", blocked, want)
			}
			if len(st.Impairments) != 1 {
				t.Errorf("impairments %+v; want the loss on c", st.Impairments)
			}
			got := s.probePairs(t, [][2]string{{"a", "b"}}, "after-"+tc.at, failTimeout)
			if reached := got[[3]string{"a", "b", "tcp"}] == "ok"; reached == tc.isolated {
				t.Errorf("a -> b over TCP: %s; isolated: %t", got[[3]string{"a", "b", "tcp"}], tc.isolated)
			}
		})
	}
}

// killedAt runs change until it reaches the point at (see stopAt) and ends it there, as a kill
// would: nothing after that point runs, and only the state lock is let go.
func killedAt(t *testing.T, at string, change func()) {
	t.Helper()
	stopAt = func(p string) {
		if p == at {
			runtime.Goexit()
		}
	}
	defer func() { stopAt = func(string) {} }()
	done := make(chan struct{})
	go func() {
		defer close(done)
		change()
		t.Errorf("the change did not reach %q", at)
	}()
	<-done
}
