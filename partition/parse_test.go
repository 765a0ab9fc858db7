package partition

import (
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestParseSpec(t *testing.T) {
	g := testGuests(5)
	tests := []struct {
		words   string
		blocked []Pair
		kind    string
		errHas  string
	}{
		{words: "fullmesh", blocked: []Pair{}, kind: "fullmesh"},
		{words: "heal", blocked: []Pair{}, kind: "fullmesh"},
		{words: "isolate a", blocked: both("a-b a-c a-d a-e"), kind: "isolate"},
		{words: "disjoint a b -- c d e", blocked: both("a-c a-d a-e b-c b-d b-e"), kind: "disjoint"},
		{words: "split a b c -- c d e", blocked: both("a-d a-e b-d b-e"), kind: "split"},
		{words: "block a -- b c", blocked: pairs("a>b a>c"), kind: "block"},
		{words: "disjoint 172.18.0.1 172.18.0.2 -- c d e", blocked: both("a-c a-d a-e b-c b-d b-e"), kind: "disjoint"},
		{words: "", errHas: "spec is empty"},
		{words: "explode a", errHas: `unknown partition kind "explode"`},
		{words: "fullmesh a", errHas: "fullmesh takes no guests"},
		{words: "isolate a -- b", errHas: "without \"--\""},
		{words: "block a b", errHas: "exactly two groups"},
		{words: "disjoint a b -- c", errHas: "guest(s) d, e are in no group"},
		{words: "split a -- zz", errHas: `split group 2: unknown guest "zz"`},
		{words: "random-halves x", errHas: `seed "x" is not an integer`},
		{words: "random-node 1 2", errHas: "at most one word"},
	}
	for _, tt := range tests {
		t.Run(tt.words, func(t *testing.T) {
			p, err := ParseSpec(strings.Fields(tt.words), g)
			if tt.errHas != "" {
				if err == nil || !strings.Contains(err.Error(), tt.errHas) {
					t.Fatalf("error = %v, want one containing %q", err, tt.errHas)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(p.Blocked, tt.blocked) || p.Kind != tt.kind {
				t.Errorf("got %s %v\nwant %s %v", p.Kind, p.Blocked, tt.kind, tt.blocked)
			}
		})
	}
	// Random kinds with a seed equal the constructor with that seed.
	for _, kind := range []string{"random-halves", "random-node", "bridge", "majorities-ring"} {
		p, err := ParseSpec([]string{kind, "42"}, g)
		if err != nil {
			t.Fatal(err)
		}
		var q Partition
		switch kind {
		case "random-halves":
			q, _ = RandomHalves(g, 42)
		case "random-node":
			q, _ = RandomNode(g, 42)
		case "bridge":
			q, _ = BridgedHalves(g, 42)
		default:
			q, _ = MajoritiesRing(g, 42)
		}
		if !slices.Equal(p.Blocked, q.Blocked) || p.Description != q.Description {
			t.Errorf("%s 42: parse gives %v, constructor %v", kind, p, q)
		}
		// Without a seed, one is drawn and recorded.
		r, err := ParseSpec([]string{kind}, g)
		if err != nil || !strings.Contains(r.Description, "seed ") {
			t.Errorf("%s without seed: %v, description %q", kind, err, r.Description)
		}
	}
}

func TestSplitGroups(t *testing.T) {
	got := SplitGroups([]string{"a", "b", "--", "c", "--"})
	want := [][]string{{"a", "b"}, {"c"}, {}}
	if len(got) != len(want) {
		t.Fatalf("got %q, want %q", got, want)
	}
	for i := range want {
		if !slices.Equal(got[i], want[i]) {
			t.Errorf("group %d = %q, want %q", i, got[i], want[i])
		}
	}
}

func TestParseImpairments(t *testing.T) {
	g := testGuests(4)
	tests := []struct {
		words  string
		want   []Impairment
		errHas string
	}{
		{words: "loss=10% a", want: []Impairment{{Guest: "a", Loss: 10}}},
		{words: "loss=10 rate=1mbit a 172.18.0.2", want: []Impairment{{Guest: "a", Loss: 10, Rate: 1_000_000}, {Guest: "b", Loss: 10, Rate: 1_000_000}}},
		{words: "delay=100ms jitter=10ms a -- b c", want: []Impairment{
			{Src: "a", Dst: "b", Delay: 100 * time.Millisecond, Jitter: 10 * time.Millisecond},
			{Src: "a", Dst: "c", Delay: 100 * time.Millisecond, Jitter: 10 * time.Millisecond}}},
		{words: "loss=0 a", want: []Impairment{{Guest: "a"}}},
		{words: "a", errHas: "no setting given"},
		{words: "loss=10%", errHas: "name the guests after the settings"},
		{words: "loss=150% a", errHas: "loss 150% is out of range; use a percentage from 0 to 100"},
		{words: "loss=10 rate=1mbit loss=20 a", errHas: "impairment: loss is given twice (loss=10 and loss=20); give each setting once"},
		{words: "loss=-1 a", errHas: "loss -1% is out of range"},
		{words: "loss=lots a", errHas: "loss=lots: not a percentage"},
		{words: "rate=fast a", errHas: `rate "fast": missing or unknown unit`},
		{words: "rate=1 a", errHas: "missing or unknown unit"},
		{words: "rate=100bit a", errHas: "rate 100bit is out of range; use 1kbit to 10gbit"},
		{words: "rate=20gbit a", errHas: "rate 20gbit is out of range"},
		{words: "delay=2h a", errHas: "delay 2h0m0s is out of range; use 0 to 1m0s"},
		{words: "delay=soon a", errHas: `delay: "soon" is not a duration`},
		{words: "jitter=5ms a", errHas: "jitter 5ms needs a delay"},
		{words: "reorder=25% a", errHas: "reorder 25% needs a delay"},
		{words: "speed=1 a", errHas: `unknown setting "speed"`},
		{words: "loss=1 a -- a", errHas: "both a source and a destination"},
		{words: "loss=1 zz", errHas: `unknown guest "zz"`},
	}
	for _, tt := range tests {
		t.Run(tt.words, func(t *testing.T) {
			got, err := ParseImpairments(strings.Fields(tt.words), g)
			if tt.errHas != "" {
				if err == nil || !strings.Contains(err.Error(), tt.errHas) {
					t.Fatalf("error = %v, want one containing %q", err, tt.errHas)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("got  %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

func TestRate(t *testing.T) {
	tests := []struct {
		in   string
		want Rate
		out  string
	}{
		{"1mbit", 1_000_000, "1mbit"},
		{"512kbit", 512_000, "512kbit"},
		{"1.5gbit", 1_500_000_000, "1500mbit"},
		{"100kbps", 800_000, "800kbit"},
		{"1mibit", 1 << 20, "1048576bit"},
		{"2500bit", 2500, "2500bit"},
		{" 10MBIT ", 10_000_000, "10mbit"},
		// 0 is unlimited, with a unit or without (the range error's advice says "0").
		{"0", 0, "0bit"},
		{"0mbit", 0, "0bit"},
	}
	for _, tt := range tests {
		r, err := ParseRate(tt.in)
		if err != nil || r != tt.want || r.String() != tt.out {
			t.Errorf("ParseRate(%q) = %d %q, %v; want %d %q", tt.in, r, r, err, tt.want, tt.out)
		}
	}
	for _, bad := range []string{"", "mbit", "-1mbit", "1 furlong", "NaNmbit", "1", "00x"} {
		if _, err := ParseRate(bad); err == nil {
			t.Errorf("ParseRate(%q) succeeded", bad)
		}
	}
}

func TestParseMode(t *testing.T) {
	for in, want := range map[string]Mode{"": ModeDrop, "drop": ModeDrop, "reject": ModeReject} {
		if m, err := ParseMode(in); err != nil || m != want {
			t.Errorf("ParseMode(%q) = %q, %v", in, m, err)
		}
	}
	if _, err := ParseMode("refuse"); err == nil || !strings.Contains(err.Error(), "use drop") {
		t.Errorf("ParseMode(refuse) error = %v", err)
	}
}

func TestParseImpairmentsGroupErrors(t *testing.T) {
	guests := []Guest{{Name: "a", IP: netip.MustParseAddr("172.18.0.1"), Port: "g1"}, {Name: "b", IP: netip.MustParseAddr("172.18.0.2"), Port: "g2"}}
	for words, want := range map[string]string{
		"loss=10 a -- b -- a": "at most two groups",
		"loss=10 -- b":        "empty group",
		"loss=0.001 a":        "below the resolution",
	} {
		_, err := ParseImpairments(strings.Fields(words), guests)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("ParseImpairments(%q) = %v, want an error mentioning %q", words, err, want)
		}
	}
}
