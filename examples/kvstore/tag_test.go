package kvstore

import (
	"io"
	"log"
	"testing"
)

func TestTagCompare(t *testing.T) {
	tests := []struct {
		name string
		a, b Tag
		want int
	}{
		{"equal", Tag{3, 1}, Tag{3, 1}, 0},
		{"zero equals zero", Tag{}, Tag{}, 0},
		{"lower version first", Tag{2, 3}, Tag{3, 1}, -1},
		{"higher version last", Tag{4, 1}, Tag{3, 3}, 1},
		{"same version lower writer first", Tag{3, 1}, Tag{3, 2}, -1},
		{"same version higher writer last", Tag{3, 3}, Tag{3, 2}, 1},
		{"zero before first write", Tag{}, Tag{1, 1}, -1},
		{"version dominates writer", Tag{1, 99}, Tag{2, 1}, -1},
		{"large versions", Tag{1 << 63, 1}, Tag{1<<63 - 1, 3}, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.a.Compare(tt.b); got != tt.want {
				t.Errorf("%v.Compare(%v) = %d, want %d", tt.a, tt.b, got, tt.want)
			}
			if got := tt.b.Compare(tt.a); got != -tt.want {
				t.Errorf("%v.Compare(%v) = %d, want %d (antisymmetry)", tt.b, tt.a, got, -tt.want)
			}
			if got := tt.a.Less(tt.b); got != (tt.want < 0) {
				t.Errorf("%v.Less(%v) = %v, want %v", tt.a, tt.b, got, tt.want < 0)
			}
		})
	}
}

func TestTagIsZeroAndString(t *testing.T) {
	if !(Tag{}).IsZero() || (Tag{Version: 1, Writer: 2}).IsZero() {
		t.Error("IsZero: want true only for the zero tag")
	}
	if got := (Tag{Version: 7, Writer: 2}).String(); got != "v7.n2" {
		t.Errorf("String() = %q, want v7.n2", got)
	}
}

func TestHighest(t *testing.T) {
	e := func(v uint64, w int, val string) reply {
		return reply{found: true, entry: Entry{Key: "k", Value: val, Version: v, Writer: w}}
	}
	tests := []struct {
		name      string
		in        []reply
		wantFound bool
		wantValue string
	}{
		{"none", nil, false, ""},
		{"all missing", []reply{{}, {}}, false, ""},
		{"found beats missing", []reply{{}, e(1, 1, "a")}, true, "a"},
		{"higher version wins", []reply{e(2, 1, "b"), e(3, 1, "c"), e(1, 3, "a")}, true, "c"},
		{"writer breaks tie", []reply{e(5, 2, "two"), e(5, 3, "three"), e(5, 1, "one")}, true, "three"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := highest(tt.in)
			if got.found != tt.wantFound || got.entry.Value != tt.wantValue {
				t.Errorf("highest = found %v value %q, want found %v value %q", got.found, got.entry.Value, tt.wantFound, tt.wantValue)
			}
		})
	}
}

func TestStoreApplyKeepsHighestTag(t *testing.T) {
	tests := []struct {
		name  string
		seq   []Entry
		want  string
		wantV uint64
	}{
		{"first write stored", []Entry{{Key: "k", Value: "a", Version: 1, Writer: 1}}, "a", 1},
		{"newer replaces", []Entry{{Key: "k", Value: "a", Version: 1, Writer: 1}, {Key: "k", Value: "b", Version: 2, Writer: 1}}, "b", 2},
		{"older ignored", []Entry{{Key: "k", Value: "b", Version: 2, Writer: 1}, {Key: "k", Value: "a", Version: 1, Writer: 3}}, "b", 2},
		{"higher writer wins tie", []Entry{{Key: "k", Value: "n1", Version: 4, Writer: 1}, {Key: "k", Value: "n2", Version: 4, Writer: 2}}, "n2", 4},
		{"lower writer loses tie", []Entry{{Key: "k", Value: "n2", Version: 4, Writer: 2}, {Key: "k", Value: "n1", Version: 4, Writer: 1}}, "n2", 4},
		{"repeat is harmless", []Entry{{Key: "k", Value: "a", Version: 1, Writer: 1}, {Key: "k", Value: "a", Version: 1, Writer: 1}}, "a", 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var s store
			var last Entry
			for _, e := range tt.seq {
				last = s.apply(e)
			}
			got, ok := s.get("k")
			if !ok || got.Value != tt.want || got.Version != tt.wantV {
				t.Errorf("stored %+v (found %v), want value %q version %d", got, ok, tt.want, tt.wantV)
			}
			if last != got {
				t.Errorf("last apply returned %+v, store holds %+v", last, got)
			}
		})
	}
}

func TestNextVersionNeverRepeats(t *testing.T) {
	n, err := NewNode(Config{ID: 1, Peers: []string{"127.0.0.1:1"}, Logger: log.New(io.Discard, "", 0)})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		seen, want uint64
	}{
		{0, 1},
		{0, 2}, // same majority answer as before: still above what was issued
		{5, 6}, // majority knows a higher version
		{3, 7}, // stale majority answer
		{10, 11},
	}
	for _, tt := range tests {
		if got := n.nextVersion("k", tt.seen); got != tt.want {
			t.Errorf("nextVersion(k, %d) = %d, want %d", tt.seen, got, tt.want)
		}
	}
	if got := n.nextVersion("other", 0); got != 1 {
		t.Errorf("nextVersion(other, 0) = %d, want 1: versions are per key", got)
	}
}
