package partition

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pontoon-dev/pontoon/eventlog"
)

// Every change through the library lands in the bridge's event log, in order, with its kind,
// who asked, what was asked in the asker's words (or described when none were given), and
// the commit time.
func TestChangesAreLogged(t *testing.T) {
	s := newScene(t, 3, false)
	tgt := s.target()
	tgt.Source, tgt.What = SourceTestenv, "isolate a --mode reject"
	if err := Apply(tgt, State{Partition: mustIsolate(t, tgt.Guests, "a"), Mode: ModeReject}); err != nil {
		t.Fatal(err)
	}
	tgt.What = ""
	if _, err := Update(tgt, func(st State) (State, error) {
		st.Impairments = []Impairment{{Guest: "b", Loss: 10}}
		return st, nil
	}); err != nil {
		t.Fatal(err)
	}
	if err := ApplyFor(context.Background(), tgt, State{Partition: mustBlock(t, tgt.Guests, "b", "c")}, 50*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	// The end of a --for whose asker gave words names it by them.
	tgt.What = "fullmesh --for 1h"
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := ApplyFor(ctx, tgt, State{Partition: Fullmesh()}, time.Hour); !errors.Is(err, context.Canceled) {
		t.Fatalf("ApplyFor with an ended context: %v", err)
	}
	tgt.What = ""
	if err := Heal(tgt); err != nil {
		t.Fatal(err)
	}
	// A change whose words do not resolve changes nothing and is not logged.
	if _, err := Update(tgt, constant(State{Partition: Partition{Blocked: []Pair{{"a", "nobody"}}}})); err == nil {
		t.Fatal("a pair naming no guest applied")
	}

	events, err := eventlog.Read(s.stateDir)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range events {
		got = append(got, fmt.Sprintf("%s|%s|%s", e.Kind, e.Source, e.What))
		if e.Error != "" || e.Time.IsZero() || e.CommitUS <= 0 {
			t.Errorf("event %+v: want a time, a commit time and no error", e)
		}
	}
	want := []string{
		"apply|testenv|isolate a --mode reject",
		"impair|testenv|loss=10% guest b",
		"apply|testenv|block b -> c",
		"expire|testenv|expire: back to isolate a --mode reject with loss=10% guest b",
		"apply|testenv|fullmesh --for 1h",
		"restore|testenv|restore fullmesh --for 1h: back to isolate a --mode reject with loss=10% guest b",
		"heal|testenv|heal",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("event log:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	forEvent := events[2]
	if forEvent.Fields["for"] != "50ms" || forEvent.Fields["expires"] == "" || forEvent.Fields["blocked"] != "1" {
		t.Errorf("--for apply event fields = %v, want for=50ms, expires and blocked=1", forEvent.Fields)
	}
	// The end of each --for names it by its change's generation.
	if events[3].Fields["ended"] != forEvent.Fields["generation"] || events[5].Fields["ended"] != events[4].Fields["generation"] {
		t.Errorf("ended fields %q and %q; want the generations %q and %q of the --fors", events[3].Fields["ended"], events[5].Fields["ended"],
			forEvent.Fields["generation"], events[4].Fields["generation"])
	}
	for i, e := range events {
		if g, _ := strconv.Atoi(e.Fields["generation"]); g != i+1 {
			t.Errorf("event %d (%s) has generation %q, want %d", i, e.Kind, e.Fields["generation"], i+1)
		}
	}
}

func TestDescribeChange(t *testing.T) {
	isolate := Record{Kind: "isolate", Description: "isolate a", Mode: ModeDrop, Blocked: []BlockedPair{{Src: "a", Dst: "b"}}}
	lossA := Impairment{Guest: "a", Loss: 5}
	withLoss := isolate
	withLoss.Impairments = []Impairment{lossA}
	rejecting := isolate
	rejecting.Mode, rejecting.Cut = ModeReject, true
	for _, c := range []struct {
		kind      string
		prev, now Record
		want      string
	}{
		{"", fullmeshStatus(), isolate, "apply|isolate a"},
		{"", isolate, rejecting, "apply|isolate a --mode reject --cut"},
		{"", isolate, withLoss, "impair|loss=5% guest a"},
		{"", withLoss, isolate, "impair|no impairment of guest a"},
		{EventExpire, rejecting, withLoss, "expire|expire: back to isolate a with loss=5% guest a"},
		{EventHeal, withLoss, fullmeshStatus(), "heal|heal"},
	} {
		kind := c.kind
		if kind == "" {
			kind = changeKind(c.prev, c.now)
		}
		if got := kind + "|" + describeChange(kind, c.prev, c.now); got != c.want {
			t.Errorf("%s -> %s: %q, want %q", c.prev.Description, c.now.Description, got, c.want)
		}
	}
}
