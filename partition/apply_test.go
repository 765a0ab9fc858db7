package partition

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"
)

var errFake = errors.New("fake kernel answer")

func isNetem(err error) bool { return errors.Is(err, ErrNetemUnavailable) }
func isHTB(err error) bool   { return errors.Is(err, ErrHTBUnavailable) }

func TestNewStatusKeepsSince(t *testing.T) {
	g := testGuests(3)
	t0 := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	t1 := t0.Add(time.Minute)
	first, err := resolveState(State{Partition: Partition{Blocked: []Pair{{"a", "b"}, {"a", "c"}}},
		Impairments: []Impairment{{Guest: "a", Loss: 5}, {Guest: "b", Loss: 5}}}, g)
	if err != nil {
		t.Fatal(err)
	}
	st0 := newStatus(first, first.plan(BackendNetdev), fullmeshStatus(), t0)
	second, err := resolveState(State{Partition: Partition{Blocked: []Pair{{"a", "b"}, {"b", "c"}}},
		Impairments: []Impairment{{Guest: "a", Loss: 5}, {Guest: "b", Loss: 6}}}, g)
	if err != nil {
		t.Fatal(err)
	}
	st1 := newStatus(second, second.plan(BackendNetdev), st0, t1)
	want := map[Pair]time.Time{{"a", "b"}: t0, {"b", "c"}: t1}
	for _, b := range st1.Blocked {
		if b.Since != want[Pair{b.Src, b.Dst}] {
			t.Errorf("%s->%s since %v, want %v", b.Src, b.Dst, b.Since, want[Pair{b.Src, b.Dst}])
		}
	}
	if st1.Impairments[0].Since != t0 || st1.Impairments[1].Since != t1 {
		t.Errorf("impairment since = %v, %v; want unchanged a (%v) and changed b (%v)",
			st1.Impairments[0].Since, st1.Impairments[1].Since, t0, t1)
	}
	if st1.Generation != 2 {
		t.Errorf("generation = %d, want 2", st1.Generation)
	}
}

func TestRecordJSONRoundTrip(t *testing.T) {
	g := testGuests(3)
	g[2].NetnsPath = "/run/netns/guest-c" // the shaping record names it
	r, err := resolveState(State{Partition: Partition{Kind: "block", Description: "block a -> b", Blocked: []Pair{{"a", "b"}}},
		Mode: ModeReject, Cut: true,
		Impairments: []Impairment{{Guest: "c", Rate: 2_000_000, Delay: 150 * time.Millisecond, Jitter: 5 * time.Millisecond, Loss: 1.5}}}, g)
	if err != nil {
		t.Fatal(err)
	}
	st := newStatus(r, r.plan(BackendNetdev), fullmeshStatus(), time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC))
	b, err := json.Marshal(st)
	if err != nil {
		t.Fatal(err)
	}
	var back Record
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(back, st) {
		t.Errorf("round trip differs\n got %+v\nwant %+v\njson %s", back, st, b)
	}
	// Durations and rates are readable.
	var raw map[string]any
	_ = json.Unmarshal(b, &raw)
	im := raw["impairments"].([]any)[0].(map[string]any)
	if im["delay"] != "150ms" || im["jitter"] != "5ms" || im["rate"] != "2mbit" {
		t.Errorf("impairment JSON = %v", im)
	}
	// The compact on-disk form reads back the same record.
	fb, err := json.Marshal(toFile(st))
	if err != nil {
		t.Fatal(err)
	}
	var f recordFile
	if err := json.Unmarshal(fb, &f); err != nil {
		t.Fatal(err)
	}
	if got := fromFile(f); !reflect.DeepEqual(got, st) {
		t.Errorf("file round trip differs\n got %+v\nwant %+v\njson %s", got, st, fb)
	}
	// State() gives back what Apply needs.
	s := back.State()
	if s.Mode != ModeReject || !s.Cut || len(s.Partition.Blocked) != 1 || s.Partition.Blocked[0] != (Pair{"a", "b"}) {
		t.Errorf("State() = %+v", s)
	}
}

func TestTargetCheck(t *testing.T) {
	if err := Apply(Target{StateDir: t.TempDir()}, State{}); err == nil {
		t.Error("Apply without NetnsPath succeeded")
	}
	if err := Heal(Target{NetnsPath: "/nonexistent"}); err == nil {
		t.Error("Heal without StateDir succeeded")
	}
	// A bad state is refused before the namespace is even opened.
	err := Apply(Target{NetnsPath: "/nonexistent", StateDir: t.TempDir(), Guests: testGuests(2)},
		State{Partition: Partition{Blocked: []Pair{{"a", "zz"}}}})
	if err == nil || !strings.Contains(err.Error(), `unknown guest "zz"`) {
		t.Errorf("Apply with unknown guest: %v", err)
	}
	// Status of a bridge never touched is fullmesh.
	st, err := Status(Target{StateDir: t.TempDir()})
	if err != nil || st.Kind != "fullmesh" || len(st.Blocked) != 0 {
		t.Errorf("Status of fresh dir = %+v, %v", st, err)
	}
}

func TestWithImpairments(t *testing.T) {
	s := State{Mode: ModeReject, Impairments: []Impairment{{Guest: "a", Loss: 5}, {Src: "a", Dst: "b", Loss: 1}}}
	got := s.WithImpairments(Impairment{Guest: "a", Rate: 1e6}, Impairment{Guest: "c", Loss: 2})
	want := []Impairment{{Guest: "a", Rate: 1e6}, {Src: "a", Dst: "b", Loss: 1}, {Guest: "c", Loss: 2}}
	if !reflect.DeepEqual(got.Impairments, want) || got.Mode != ModeReject {
		t.Errorf("got %+v, want %+v", got.Impairments, want)
	}
	if s.Impairments[0].Loss != 5 {
		t.Error("WithImpairments changed its receiver")
	}
}

func TestHealGoneNamespace(t *testing.T) {
	dir := t.TempDir()
	if err := Heal(Target{NetnsPath: "/nonexistent/netns", StateDir: dir}); err != nil {
		t.Fatalf("heal of a gone bridge: %v", err)
	}
	st, err := Status(Target{StateDir: dir})
	if err != nil || st.Kind != "fullmesh" || st.Generation != 1 {
		t.Errorf("status after heal = %+v, %v", st, err)
	}
}
