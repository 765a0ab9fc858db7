package partition

import (
	"errors"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pontoon-dev/pontoon/eventlog"
	"github.com/pontoon-dev/pontoon/netsetup/ns"
)

// TestChangeKilledAroundItsCommit: a --for that isolates a, killed after its record was
// written ahead, leaves a record the kernel may not hold. The next change (a loss on c) starts
// from what the kernel holds: killed before the commit, the isolation does not arrive with it
// and nothing is left to restore, and status finds the kernel holding that change's record
// and a reaching b (it used to apply the isolation with the loss, for the --for's whole hour).
// Killed after its commit, the isolation stays, with its restore, also when the other family
// holds a partition table too (a backend switch killed before it removed the old table).
func TestChangeKilledAroundItsCommit(t *testing.T) {
	for _, tc := range []struct {
		at       string
		isolated bool
		other    bool // a partition table in the other family
	}{{"ahead", false, false}, {"shaped", false, false}, {"committed", true, false}, {"committed", true, true}} {
		name := "killed " + tc.at
		if tc.other {
			name += ", a table in the other family"
		}
		t.Run(name, func(t *testing.T) {
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
			ahead, _, err := readStatus(tgt.StateDir)
			if err != nil {
				t.Fatal(err)
			}
			if tc.other {
				other := map[Backend]string{BackendNetdev: "bridge", BackendBridge: "netdev"}[ahead.Backend]
				run(t, "", "ip", "netns", "exec", s.bridgeNS, "nft", "add", "table", other, TableName)
			}
			if st, err := Status(tgt); err != nil {
				t.Fatal(err)
			} else if said := strings.Contains(st.Kernel.Detail, "recorded ahead of its commit"); said == tc.isolated {
				t.Errorf("status after the kill says: %s", st.Kernel.Detail)
			}
			var rec Record
			if tc.isolated {
				// Settled twice (by the restorer of a command that died, then by the next
				// change): the change its command never logged is logged once.
				for range 2 {
					if err := Settle(tgt); err != nil {
						t.Fatal(err)
					}
				}
				if n := settledEvents(t, s, ahead.Generation); n != 1 {
					t.Errorf("%d events of the change killed after its commit; want 1", n)
				}
				// The --for's restorer, at the deadline: it ends the isolation.
				if err := Restore(tgt, ahead.Change); err != nil {
					t.Fatalf("restore of the killed --for: %v", err)
				}
				assertBlocks(t, s, []Pair{{"b", "c"}}, 0)
				return
			}
			rec, err = Update(tgt, func(s State) (State, error) {
				s.Impairments = append(s.Impairments, Impairment{Guest: "c", Loss: 1})
				return s, nil
			})
			if err != nil {
				t.Fatal(err)
			}
			if len(rec.Pending) != 0 {
				t.Errorf("pending after the next change: %+v", rec.Pending)
			}
			if err := Restore(tgt, ahead.Change); !errors.Is(err, ErrSuperseded) {
				t.Errorf("the killed --for's restorer: %v; want ErrSuperseded (nothing of it to end)", err)
			}
			assertBlocks(t, s, []Pair{{"b", "c"}}, 1)
			if n := settledEvents(t, s, ahead.Generation); n != 0 {
				t.Errorf("%d events of the change killed before its commit; want none", n)
			}
		})
	}
}

// TestCutKilledWhileClosing: a --cut change killed while it closes connections, after its
// commit and before it logged itself, is in force, and the command that settles it logs it
// once. (Its record said what the kernel held, but nothing logged it.)
func TestCutKilledWhileClosing(t *testing.T) {
	s := newScene(t, 3, false)
	tgt := s.target()
	tgt.What = "isolate a --cut"
	killedAt(t, "cutting", func() {
		_ = Apply(tgt, State{Partition: mustIsolate(t, tgt.Guests, "a"), Cut: true})
	})
	for range 2 {
		if err := Settle(tgt); err != nil {
			skipMissing(t, err)
			t.Fatal(err)
		}
	}
	events, err := eventlog.Read(s.stateDir)
	if err != nil {
		t.Fatal(err)
	}
	if len(events) != 1 || events[0].Kind != EventApply || events[0].Fields["settled"] == "" || events[0].Fields["partition"] != "isolate" {
		t.Errorf("events after the kill and two settles: %+v; want the isolate, once, settled", events)
	}
	if rec, _, err := readStatus(tgt.StateDir); err != nil || rec.Before != nil || len(rec.Blocked) == 0 {
		t.Errorf("record after settling: %+v, %v; want the isolate, settled", rec, err)
	}
	assertBlocks(t, s, []Pair{{"a", "b"}, {"a", "c"}, {"b", "a"}, {"c", "a"}}, 0)
}

// settledEvents counts the events of the change of generation gen that settling logged, each
// checked for the words and deadline of the isolating --for of TestChangeKilledAroundItsCommit.
func settledEvents(t *testing.T, s *scene, gen uint64) int {
	t.Helper()
	events, err := eventlog.Read(s.stateDir)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, e := range events {
		if e.Fields["settled"] == "" {
			continue
		}
		n++
		if e.Kind != EventApply || e.Fields["generation"] != strconv.FormatUint(gen, 10) || e.What != "isolate a" || e.Fields["expires"] == "" {
			t.Errorf("settled event %+v; want an apply of generation %d, isolate a, with its deadline", e, gen)
		}
	}
	return n
}

// assertBlocks checks that status finds the kernel holding its record, which blocks want and
// has imps impairments, and that a reaches b exactly when want leaves it free.
func assertBlocks(t *testing.T, s *scene, want []Pair, imps int) {
	t.Helper()
	st, err := Status(s.target())
	if err != nil {
		t.Fatal(err)
	}
	if !st.Kernel.InEffect {
		t.Errorf("status: %s", st.Kernel.Detail)
	}
	var blocked []Pair
	for _, b := range st.Blocked {
		blocked = append(blocked, Pair{b.Src, b.Dst})
	}
	slices.SortFunc(blocked, comparePairs)
	want = slices.Clone(want)
	slices.SortFunc(want, comparePairs)
	if !slices.Equal(blocked, want) {
		t.Errorf("the kernel blocks %v; want %v", blocked, want)
	}
	if len(st.Impairments) != imps {
		t.Errorf("impairments %+v; want %d", st.Impairments, imps)
	}
	free := !slices.Contains(want, Pair{"a", "b"})
	got := s.probePairs(t, [][2]string{{"a", "b"}}, "a-b", failTimeout)
	if reached := got[[3]string{"a", "b", "tcp"}] == "ok"; reached != free {
		t.Errorf("a -> b over TCP: %s; want it to pass: %t", got[[3]string{"a", "b", "tcp"}], free)
	}
}

// TestShapingOnlyChangeKilled: a --for that lifts the rate limit of c, a change with no
// partition table, killed before its shaping went in or after. Killed before, it is not in
// force: the next change keeps c's limit, nothing is left to restore, and a change that fails
// after the kill leaves the record from before the --for, blocked pairs' times and all.
// Killed after its shaping, it is in force (it is nothing but its shaping), with its restore;
// on a base with a partition table, only once its commit went in. Either way status finds the
// kernel holding the record, and a heal leaves no shaping at all.
func TestShapingOnlyChangeKilled(t *testing.T) {
	for _, at := range []string{"ahead", "shaped", "committed"} {
		for _, next := range []string{"change", "heal", "failed change"} {
			// The failed change's base has a partition table too: then the commit tells.
			in := at == "committed" || at == "shaped" && next != "failed change"
			t.Run("killed "+at+", then "+next, func(t *testing.T) {
				s := newScene(t, 3, true)
				s.startServers(t)
				tgt := s.target()
				limited := State{Partition: Fullmesh(), Impairments: []Impairment{{Guest: "c", Rate: 20_000_000}}}
				if next == "failed change" {
					limited.Partition = mustBlock(t, tgt.Guests, "b", "c")
				}
				if err := Apply(tgt, limited); err != nil {
					skipMissing(t, err)
					t.Fatal(err)
				}
				before, _, err := readStatus(tgt.StateDir)
				if err != nil {
					t.Fatal(err)
				}
				killedAt(t, at, func() {
					_, _ = UpdateUntil(tgt, func(s State) (State, error) { s.Impairments = nil; return s, nil }, time.Hour)
				})
				if st, err := Status(tgt); err != nil {
					t.Fatal(err)
				} else if said := strings.Contains(st.Kernel.Detail, "recorded ahead of its commit"); said == in {
					t.Errorf("status after the kill says: %q", st.Kernel.Detail)
				}
				limits := 1 // c's, when the --for is not in force
				if in {
					limits = 0
				}
				switch next {
				case "change":
					rec, err := Update(tgt, func(s State) (State, error) {
						s.Impairments = append(s.Impairments, Impairment{Src: "c", Dst: "b", Loss: 1})
						return s, nil
					})
					if err != nil {
						t.Fatal(err)
					}
					if len(rec.Pending) != limits^1 {
						t.Errorf("pending after the next change: %+v", rec.Pending)
					}
					// Status compares c's shaping, as recorded, with the kernel's.
					assertBlocks(t, s, nil, limits+1)
				case "heal":
					if err := Heal(tgt); err != nil {
						t.Fatal(err)
					}
					assertBlocks(t, s, nil, 0)
				case "failed change":
					refused := errors.New("refused")
					if _, err := Update(tgt, func(State) (State, error) { return State{}, refused }); !errors.Is(err, refused) {
						t.Fatalf("the failing change: %v", err)
					}
					assertBlocks(t, s, []Pair{{"b", "c"}}, limits)
					after, _, err := readStatus(tgt.StateDir)
					if err != nil {
						t.Fatal(err)
					}
					if !in && (len(after.Blocked) != 1 || !after.Blocked[0].Since.Equal(before.Blocked[0].Since) || !after.Impairments[0].Since.Equal(before.Impairments[0].Since)) {
						t.Errorf("record after the failed change: %+v; want the one before the killed --for: %+v", after, before)
					}
				}
			})
		}
	}
}

// TestTableOfAKilledCommitRemoved: a --for from fullmesh killed in its commit, between the
// step that makes the table's sets and the one that adds its rules, leaves a table with no
// rules (made here by hand). The change is not in force, and settling it removes that table.
func TestTableOfAKilledCommitRemoved(t *testing.T) {
	s := newScene(t, 3, false)
	tgt := s.target()
	killedAt(t, "ahead", func() {
		_, _ = UpdateUntil(tgt, func(s State) (State, error) { s.Partition = mustIsolate(t, tgt.Guests, "a"); return s, nil }, time.Hour)
	})
	ahead, _, err := readStatus(tgt.StateDir)
	if err != nil {
		t.Fatal(err)
	}
	run(t, "", "ip", "netns", "exec", s.bridgeNS, "nft", "add", "table", string(ahead.Backend), TableName)
	if _, err := Update(tgt, func(s State) (State, error) { return s, nil }); err != nil {
		t.Fatal(err)
	}
	if tables := partitionTables(t, s.bridgeNS); len(tables) != 0 {
		t.Errorf("partition tables left: %v", tables)
	}
	if st, err := Status(tgt); err != nil {
		t.Fatal(err)
	} else if !st.Kernel.InEffect {
		t.Errorf("status: %s", st.Kernel.Detail)
	}
}

// TestForDeadlineCountsFromTheChange: a --for that waits for the bridge's lock, then for its
// guests (read under the chain's lock, which another command may hold), lasts its duration
// from when its change goes in, not from when it was asked for.
func TestForDeadlineCountsFromTheChange(t *testing.T) {
	s := newScene(t, 3, false)
	tgt := s.target()
	guests := tgt.Guests
	var read time.Time
	tgt.guests = func() ([]Guest, error) {
		time.Sleep(700 * time.Millisecond)
		read = time.Now()
		return guests, nil
	}
	isolate := mustIsolate(t, guests, "a")
	unlock, err := lockState(tgt.StateDir)
	if err != nil {
		t.Fatal(err)
	}
	type result struct {
		rec Record
		err error
	}
	got := make(chan result, 1)
	go func() {
		rec, err := UpdateUntil(tgt, func(s State) (State, error) { s.Partition = isolate; return s, nil }, time.Second)
		got <- result{rec, err}
	}()
	time.Sleep(700 * time.Millisecond) // with the guests' read, past the duration asked for
	unlock()
	var r result
	select {
	case r = <-got:
	case <-time.After(10 * time.Second):
		t.Fatal("the change did not finish")
	}
	if r.err != nil {
		skipMissing(t, r.err)
		t.Fatal(r.err)
	}
	if deadline, _ := r.rec.Deadline(r.rec.Generation); deadline.Before(read.Add(time.Second)) {
		t.Errorf("deadline %v: before the guests were read (%v) and the second asked for", deadline, read)
	}
}

// TestBackendSwitchKilledBetweenSteps: a --for that moves the partition from the netdev to the
// bridge family, killed between the step that fills the new family's table and the one that
// switches to it, is not in force; settling it (here its restorer's Restore) removes that
// half-made table, and the kernel holds the netdev one, as the record says.
func TestBackendSwitchKilledBetweenSteps(t *testing.T) {
	s := newScene(t, 3, false)
	tgt := s.target()
	t.Cleanup(func() { forcedBackend = "" })
	forcedBackend = BackendNetdev
	if err := Apply(tgt, State{Partition: mustBlock(t, tgt.Guests, "b", "c")}); err != nil {
		skipMissing(t, err)
		t.Fatal(err)
	}
	forcedBackend = BackendBridge
	isolate := mustIsolate(t, tgt.Guests, "a")
	killedAt(t, "step1", func() {
		_, _ = UpdateUntil(tgt, func(s State) (State, error) { s.Partition = isolate; return s, nil }, time.Hour)
	})
	forcedBackend = ""
	ahead, _, err := readStatus(tgt.StateDir)
	if err != nil {
		t.Fatal(err)
	}
	if err := Restore(tgt, ahead.Change); !errors.Is(err, ErrSuperseded) {
		t.Fatalf("the killed --for's restorer: %v; want ErrSuperseded (nothing of it to end)", err)
	}
	if got := partitionTables(t, s.bridgeNS); !slices.Equal(got, []string{"netdev"}) {
		t.Errorf("partition tables in families %v; want netdev's alone", got)
	}
	if st, err := Status(tgt); err != nil {
		t.Fatal(err)
	} else if !st.Kernel.InEffect || len(st.Blocked) != 1 {
		t.Errorf("status: in effect %t, blocked %v: %s", st.Kernel.InEffect, st.Blocked, st.Kernel.Detail)
	}
}

// TestSettleAfterShapedGuestLeft: a guest whose rate the record before a killed --for limits
// leaves before the next change; settling puts back what is left of that record, and the
// change goes through, as it does without a kill.
func TestSettleAfterShapedGuestLeft(t *testing.T) {
	s := newScene(t, 3, true)
	tgt := s.target()
	if err := Apply(tgt, State{Partition: mustBlock(t, tgt.Guests, "b", "c"), Impairments: []Impairment{{Guest: "c", Rate: 20_000_000}}}); err != nil {
		skipMissing(t, err)
		t.Fatal(err)
	}
	isolate := mustIsolate(t, tgt.Guests, "a")
	killedAt(t, "ahead", func() {
		_, _ = UpdateUntil(tgt, func(s State) (State, error) { s.Partition = isolate; return s, nil }, time.Hour)
	})
	run(t, "", "ip", "-n", s.bridgeNS, "link", "del", "g3") // c's port, and its eth0 with it
	tgt.Guests = slices.DeleteFunc(slices.Clone(tgt.Guests), func(g Guest) bool { return g.Name == "c" })
	for _, g := range []string{"a", "b"} {
		if _, err := Update(tgt, func(s State) (State, error) {
			s.Impairments = append(s.Impairments, Impairment{Guest: g, Loss: 1})
			return s, nil
		}); err != nil {
			t.Errorf("a loss on %s after c left: %v", g, err)
		}
	}
	if st, err := Status(tgt); err != nil {
		t.Fatal(err)
	} else if !st.Kernel.InEffect || len(st.Impairments) != 2 {
		t.Errorf("status: in effect %t, impairments %v: %s", st.Kernel.InEffect, st.Impairments, st.Kernel.Detail)
	}
}

// TestPlainShapingChangeKilled: a change without a deadline that limits c's rate, killed after
// its tc changes and before its commit, used to leave a qdisc no record named: status called it
// another tool's and heal left it. It is now recorded ahead too: a heal removes it, and the next
// change settles it away.
func TestPlainShapingChangeKilled(t *testing.T) {
	for _, next := range []string{"heal", "change"} {
		t.Run(next, func(t *testing.T) {
			s := newScene(t, 3, true)
			s.startServers(t)
			tgt := s.target()
			if err := Apply(tgt, State{Partition: mustBlock(t, tgt.Guests, "b", "c")}); err != nil {
				skipMissing(t, err)
				t.Fatal(err)
			}
			killedAt(t, "shaped", func() {
				_, _ = Update(tgt, func(s State) (State, error) {
					s.Impairments = append(s.Impairments, Impairment{Guest: "c", Rate: 20_000_000})
					return s, nil
				})
			})
			if next == "heal" {
				if err := Heal(tgt); err != nil {
					t.Fatal(err)
				}
				assertBlocks(t, s, nil, 0)
				return
			}
			if _, err := Update(tgt, func(s State) (State, error) {
				s.Impairments = append(s.Impairments, Impairment{Src: "a", Dst: "b", Loss: 1})
				return s, nil
			}); err != nil {
				t.Fatal(err)
			}
			assertBlocks(t, s, []Pair{{"b", "c"}}, 1)
		})
	}
}

// TestChangeWaitingWhileBridgeRemade: a change that waits for the bridge's lock while the
// bridge is destroyed and made again under its name refuses, and touches neither the new
// namespace nor the record. It used to land on the new bridge, where the restorer of a --for,
// started for the old one, never ended it.
func TestChangeWaitingWhileBridgeRemade(t *testing.T) {
	s := newScene(t, 3, false)
	tgt := s.target()
	tgt.netnsID, _ = ns.ID(tgt.NetnsPath) // as ForBridge sets it
	if err := Apply(tgt, State{Partition: mustBlock(t, tgt.Guests, "b", "c")}); err != nil {
		skipMissing(t, err)
		t.Fatal(err)
	}
	before, _, err := readStatus(tgt.StateDir)
	if err != nil {
		t.Fatal(err)
	}
	unlock, err := lockState(tgt.StateDir)
	if err != nil {
		t.Fatal(err)
	}
	isolate := mustIsolate(t, tgt.Guests, "a")
	errc := make(chan error, 1)
	go func() {
		_, err := UpdateUntil(tgt, func(s State) (State, error) { s.Partition = isolate; return s, nil }, time.Hour)
		errc <- err
	}()
	time.Sleep(200 * time.Millisecond)
	run(t, "", "ip", "netns", "del", s.bridgeNS)
	run(t, "", "ip", "netns", "add", s.bridgeNS)
	unlock()
	select {
	case err := <-errc:
		if !errors.Is(err, ErrBridgeReplaced) {
			t.Errorf("the change across the new bridge: %v; want ErrBridgeReplaced", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the change did not end")
	}
	if tables := partitionTables(t, s.bridgeNS); len(tables) != 0 {
		t.Errorf("the new namespace has partition tables %v", tables)
	}
	if after, _, err := readStatus(tgt.StateDir); err != nil {
		t.Fatal(err)
	} else if after.Generation != before.Generation || after.Before != nil || len(after.Pending) != 0 {
		t.Errorf("record after the refused change: %+v; want the one before it", after)
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

// A change of shaping with no --for, killed once its record was written ahead of the kernel:
// status says so, and does not call it a --for with a restorer it never had.
func TestShapingChangeKilledAheadIsNoFor(t *testing.T) {
	s := newScene(t, 3, true)
	tgt := s.target()
	if err := Apply(tgt, State{Partition: Fullmesh()}); err != nil {
		skipMissing(t, err)
		t.Fatal(err)
	}
	killedAt(t, "ahead", func() {
		_, _ = Update(tgt, func(s State) (State, error) {
			s.Impairments = []Impairment{{Src: "a", Dst: "b", Rate: 1_000_000}}
			return s, nil
		})
	})
	st, err := Status(tgt)
	if err != nil {
		t.Fatal(err)
	}
	if d := st.Kernel.Detail; !strings.Contains(d, "recorded ahead of its commit") || strings.Contains(d, "--for") {
		t.Errorf("status after a plain rate change killed ahead of its commit: %q; want it said, not as a --for", d)
	}
}
