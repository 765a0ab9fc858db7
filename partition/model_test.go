package partition

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"sort"
	"strings"
	"testing"
)

// testGuests returns guests a, b, c, ... with IPs 172.18.0.1.. and ports g1..
func testGuests(n int) []Guest {
	out := make([]Guest, n)
	for i := range n {
		out[i] = Guest{
			Name: string(rune('a' + i)),
			IP:   netip.AddrFrom4([4]byte{172, 18, 0, byte(i + 1)}),
			Port: fmt.Sprintf("g%d", i+1),
		}
	}
	return out
}

// pairs parses "a>b b>a" into sorted pairs.
func pairs(s string) []Pair {
	out := []Pair{}
	for _, f := range strings.Fields(s) {
		src, dst, _ := strings.Cut(f, ">")
		out = append(out, Pair{src, dst})
	}
	return normPairs(out)
}

// both expands "a-b" into a>b and b>a.
func both(s string) []Pair {
	var out []Pair
	for _, f := range strings.Fields(s) {
		x, y, _ := strings.Cut(f, "-")
		out = append(out, Pair{x, y}, Pair{y, x})
	}
	return normPairs(out)
}

func TestConstructors(t *testing.T) {
	g5 := testGuests(5)
	tests := []struct {
		name    string
		build   func() (Partition, error)
		blocked []Pair
		desc    string
		errHas  string
	}{
		{name: "fullmesh", build: func() (Partition, error) { return Fullmesh(), nil }, blocked: []Pair{}, desc: "fullmesh"},
		{name: "isolate one", build: func() (Partition, error) { return Isolate(g5, "a") },
			blocked: both("a-b a-c a-d a-e"), desc: "isolate a"},
		{name: "isolate two cuts them from each other", build: func() (Partition, error) { return Isolate(g5, "a", "172.18.0.2") },
			blocked: both("a-b a-c a-d a-e b-c b-d b-e")},
		{name: "isolate by port", build: func() (Partition, error) { return Isolate(g5, "g5") }, blocked: both("e-a e-b e-c e-d")},
		{name: "isolate nothing", build: func() (Partition, error) { return Isolate(g5) }, errHas: "no guest given"},
		{name: "isolate unknown", build: func() (Partition, error) { return Isolate(g5, "zz") },
			errHas: `unknown guest "zz"; known guests: a (172.18.0.1), b (172.18.0.2)`},
		{name: "isolate twice", build: func() (Partition, error) { return Isolate(g5, "a", "172.18.0.1") }, errHas: `guest "a" is listed twice`},
		{name: "disjoint", build: func() (Partition, error) { return Disjoint(g5, [][]string{{"a", "b"}, {"c", "d", "e"}}) },
			blocked: both("a-c a-d a-e b-c b-d b-e"), desc: "disjoint a b | c d e"},
		{name: "disjoint missing guest", build: func() (Partition, error) { return Disjoint(g5, [][]string{{"a", "b"}, {"c", "d"}}) },
			errHas: "guest(s) e are in no group"},
		{name: "disjoint duplicated guest", build: func() (Partition, error) {
			return Disjoint(g5, [][]string{{"a", "b", "c"}, {"c", "d", "e"}})
		}, errHas: `guest "c" is in group 1 and group 2`},
		{name: "disjoint empty group", build: func() (Partition, error) { return Disjoint(g5, [][]string{{"a"}, {}}) }, errHas: "group 2 is empty"},
		{name: "split overlapping", build: func() (Partition, error) { return Split(g5, [][]string{{"a", "b", "c"}, {"c", "d", "e"}}) },
			blocked: both("a-d a-e b-d b-e"), desc: "split a b c | c d e"},
		{name: "split isolates unlisted", build: func() (Partition, error) { return Split(g5, [][]string{{"a", "b"}, {"c", "d"}}) },
			blocked: both("a-c a-d b-c b-d e-a e-b e-c e-d")},
		{name: "block one way", build: func() (Partition, error) { return Block(g5, []string{"a"}, []string{"b"}) },
			blocked: pairs("a>b"), desc: "block a -> b"},
		{name: "block many", build: func() (Partition, error) { return Block(g5, []string{"a", "b"}, []string{"c", "d"}) },
			blocked: pairs("a>c a>d b>c b>d")},
		{name: "block self", build: func() (Partition, error) { return Block(g5, []string{"a"}, []string{"a"}) }, errHas: "both a source and a destination"},
		{name: "block without destination", build: func() (Partition, error) { return Block(g5, []string{"a"}, nil) }, errHas: "at least one source and one destination"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := tt.build()
			if tt.errHas != "" {
				if err == nil || !strings.Contains(err.Error(), tt.errHas) {
					t.Fatalf("error = %v, want one containing %q", err, tt.errHas)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(p.Blocked, tt.blocked) {
				t.Errorf("blocked = %v\nwant      %v", p.Blocked, tt.blocked)
			}
			if tt.desc != "" && p.Description != tt.desc {
				t.Errorf("description = %q, want %q", p.Description, tt.desc)
			}
		})
	}
}

func TestGuestValidation(t *testing.T) {
	ok := testGuests(2)
	tests := []struct {
		name   string
		guests []Guest
		errHas string
	}{
		{"duplicate name", []Guest{ok[0], {Name: "a", IP: ok[1].IP, Port: "g2"}}, `guest name "a" is used twice`},
		{"duplicate IP", []Guest{ok[0], {Name: "b", IP: ok[0].IP, Port: "g2"}}, `share "172.18.0.1"`},
		{"no port", []Guest{{Name: "a", IP: ok[0].IP}}, "port is empty"},
		{"IPv6", []Guest{{Name: "a", IP: netip.MustParseAddr("fd00::1"), Port: "g1"}}, "not an IPv4 address"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Isolate(tt.guests, "a")
			if err == nil || !strings.Contains(err.Error(), tt.errHas) {
				t.Fatalf("error = %v, want one containing %q", err, tt.errHas)
			}
		})
	}
	// A guest without a name is named by its IP.
	p, err := Isolate([]Guest{{IP: ok[0].IP, Port: "g1"}, ok[1]}, "172.18.0.1")
	if err != nil {
		t.Fatal(err)
	}
	if want := both("172.18.0.1-b"); !slices.Equal(p.Blocked, want) {
		t.Errorf("blocked = %v, want %v", p.Blocked, want)
	}
}

// canTalk reports whether a and b can talk both ways.
func canTalk(p Partition, a, b string) bool { return !p.Blocks(a, b) && !p.Blocks(b, a) }

func TestRandomConstructors(t *testing.T) {
	for _, n := range []int{3, 4, 5, 6, 7, 9} {
		guests := testGuests(n)
		names := make([]string, n)
		for i, g := range guests {
			names[i] = g.Name
		}
		for seed := int64(0); seed < 20; seed++ {
			t.Run(fmt.Sprintf("n%d/seed%d", n, seed), func(t *testing.T) {
				// Halves: two groups, all-or-nothing connectivity, sizes n/2 and n-n/2.
				h, err := RandomHalves(guests, seed)
				if err != nil {
					t.Fatal(err)
				}
				comp := components(h, names)
				if len(comp) != 2 || len(comp[0])+len(comp[1]) != n || min(len(comp[0]), len(comp[1])) != n/2 {
					t.Errorf("random-halves: components %v", comp)
				}
				if !strings.Contains(h.Description, fmt.Sprintf("seed %d", seed)) {
					t.Errorf("random-halves description %q lacks the seed", h.Description)
				}
				// Same seed, same result, even with guests in another order.
				rev := slices.Clone(guests)
				slices.Reverse(rev)
				if h2, _ := RandomHalves(rev, seed); !slices.Equal(h.Blocked, h2.Blocked) {
					t.Errorf("random-halves not deterministic for seed %d", seed)
				}

				// Node: exactly one guest talks to nobody, the rest to everyone.
				rn, err := RandomNode(guests, seed)
				if err != nil {
					t.Fatal(err)
				}
				if got := len(rn.Blocked); got != 2*(n-1) {
					t.Errorf("random-node blocks %d pairs, want %d", got, 2*(n-1))
				}

				// Bridge: one guest talks to all; the others split into two
				// halves that cannot talk to each other.
				br, err := BridgedHalves(guests, seed)
				if err != nil {
					t.Fatal(err)
				}
				var bridges []string
				for _, a := range names {
					all := true
					for _, b := range names {
						if a != b && !canTalk(br, a, b) {
							all = false
						}
					}
					if all {
						bridges = append(bridges, a)
					}
				}
				if len(bridges) != 1 {
					t.Fatalf("bridge: guests talking to everyone = %v, want exactly one (%s)", bridges, br.Description)
				}
				var rest []string
				for _, a := range names {
					if a != bridges[0] {
						rest = append(rest, a)
					}
				}
				if comp := components(br, rest); len(comp) != 2 {
					t.Errorf("bridge: without the bridge, components %v, want 2", comp)
				}

				// Majorities ring: everyone receives from a majority (itself
				// included), and no two guests see the same set.
				mr, err := MajoritiesRing(guests, seed)
				if err != nil {
					t.Fatal(err)
				}
				seen := map[string]string{}
				for _, dst := range names {
					var view []string
					for _, src := range names {
						if !mr.Blocks(src, dst) {
							view = append(view, src)
						}
					}
					if len(view) != n/2+1 {
						t.Errorf("majorities-ring: %s sees %v, want %d guests", dst, view, n/2+1)
					}
					key := strings.Join(view, ",")
					if other, dup := seen[key]; dup {
						t.Errorf("majorities-ring: %s and %s see the same majority %v", other, dst, view)
					}
					seen[key] = dst
				}
			})
		}
	}
	if _, err := BridgedHalves(testGuests(2), 1); !errors.Is(err, ErrNoGuests) {
		t.Errorf("bridge with 2 guests: error %v, want ErrNoGuests", err)
	}
	if _, err := RandomHalves(testGuests(1), 1); !errors.Is(err, ErrNoGuests) {
		t.Errorf("random-halves with 1 guest: error %v, want ErrNoGuests", err)
	}
}

// components groups names by mutual reachability, for partitions whose
// connectivity is symmetric and transitive.
func components(p Partition, names []string) [][]string {
	var out [][]string
	done := map[string]bool{}
	for _, a := range names {
		if done[a] {
			continue
		}
		grp := []string{a}
		done[a] = true
		for _, b := range names {
			if !done[b] && canTalk(p, a, b) {
				grp = append(grp, b)
				done[b] = true
			}
		}
		out = append(out, grp)
	}
	sort.Slice(out, func(i, j int) bool { return len(out[i]) < len(out[j]) })
	return out
}

func TestUnion(t *testing.T) {
	g := testGuests(3)
	a, _ := Block(g, []string{"a"}, []string{"b"})
	b, _ := Isolate(g, "c")
	u := a.Union(b)
	want := normPairs(append(pairs("a>b"), both("c-a c-b")...))
	if !slices.Equal(u.Blocked, want) {
		t.Errorf("union = %v, want %v", u.Blocked, want)
	}
	if u.Description != "block a -> b + isolate c" {
		t.Errorf("union description = %q", u.Description)
	}
}
