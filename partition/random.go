package partition

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
)

// The random constructors follow Jepsen's nemesis partitions. They take an
// explicit seed and shuffle the guests sorted by name, so the same seed on the
// same guests always gives the same partition (a failing test can be
// replayed), and the Description records the seed and the choice.

// shuffled returns the guest names in an order that depends only on seed.
// It uses PCG's specified output and its own Fisher-Yates, not rand.Shuffle,
// whose algorithm is not promised to stay the same across Go releases.
func shuffled(gs *guestSet, seed int64) []string {
	names := gs.names()
	r := rand.NewPCG(uint64(seed), 0x706f6e746f6f6e) // second word: "pontoon"
	for i := len(names) - 1; i > 0; i-- {
		j := int(r.Uint64() % uint64(i+1))
		names[i], names[j] = names[j], names[i]
	}
	return names
}

func needGuests(kind string, gs *guestSet, n int) error {
	if len(gs.list) < n {
		return fmt.Errorf("%s: needs at least %d guests, the run has %d: %w", kind, n, len(gs.list), ErrNoGuests)
	}
	return nil
}

// RandomHalves cuts the guests into two random halves that cannot talk to
// each other (the first half has the smaller size when the count is odd).
func RandomHalves(guests []Guest, seed int64) (Partition, error) {
	gs, err := newGuestSet(guests)
	if err != nil {
		return Partition{}, err
	}
	if err := needGuests("random-halves", gs, 2); err != nil {
		return Partition{}, err
	}
	names := shuffled(gs, seed)
	half := len(names) / 2
	groups := [][]string{sorted(names[:half]), sorted(names[half:])}
	p := connectGroups(gs, groups)
	p.Kind = "random-halves"
	p.Description = fmt.Sprintf("random-halves seed %d: %s", seed, groupsString(groups))
	return p, nil
}

// RandomNode isolates one randomly chosen guest from all others.
func RandomNode(guests []Guest, seed int64) (Partition, error) {
	gs, err := newGuestSet(guests)
	if err != nil {
		return Partition{}, err
	}
	if err := needGuests("random-node", gs, 2); err != nil {
		return Partition{}, err
	}
	n := shuffled(gs, seed)[0]
	p := isolate(gs, []string{n}, fmt.Sprintf("random-node seed %d: isolate %s", seed, n))
	p.Kind = "random-node"
	return p, nil
}

// BridgedHalves cuts the guests into two random halves that share one guest,
// the bridge: it talks to both halves, while the halves cannot talk to each
// other (Jepsen's "bridge" partition, the `bridge` verb of the CLI).
func BridgedHalves(guests []Guest, seed int64) (Partition, error) {
	gs, err := newGuestSet(guests)
	if err != nil {
		return Partition{}, err
	}
	if err := needGuests("bridge", gs, 3); err != nil {
		return Partition{}, err
	}
	names := shuffled(gs, seed)
	bridge, rest := names[0], names[1:]
	half := len(rest) / 2
	groups := [][]string{sorted(append([]string{bridge}, rest[:half]...)), sorted(append([]string{bridge}, rest[half:]...))}
	p := connectGroups(gs, groups)
	p.Order = dedupe(slices.Concat(rest[:half], []string{bridge}, rest[half:]))
	p.Kind = "bridge"
	p.Description = fmt.Sprintf("bridge seed %d: %s (bridge %s)", seed, groupsString(groups), bridge)
	return p, nil
}

// MajoritiesRing places the guests on a random ring and lets each guest
// receive only from the majority of guests around it: the window of
// majority(n) = n/2+1 consecutive guests whose middle is that guest. Every
// guest sees a majority and no two guests see the same one, as in Jepsen's
// majorities-ring. With an odd window the cut is symmetric; otherwise some
// pairs are cut one way only.
func MajoritiesRing(guests []Guest, seed int64) (Partition, error) {
	gs, err := newGuestSet(guests)
	if err != nil {
		return Partition{}, err
	}
	if err := needGuests("majorities-ring", gs, 3); err != nil {
		return Partition{}, err
	}
	ring := shuffled(gs, seed)
	n := len(ring)
	m := n/2 + 1
	var blocked []Pair
	var views []string
	for start := range n {
		window := make([]string, m)
		for k := range m {
			window[k] = ring[(start+k)%n]
		}
		center := window[m/2]
		for _, other := range ring {
			if !slices.Contains(window, other) {
				blocked = append(blocked, Pair{Src: other, Dst: center})
			}
		}
		views = append(views, center+" sees "+strings.Join(sorted(window), " "))
	}
	slices.Sort(views)
	return Partition{
		Kind:        "majorities-ring",
		Description: fmt.Sprintf("majorities-ring seed %d: ring %s; %s", seed, strings.Join(ring, " "), strings.Join(views, "; ")),
		Blocked:     normPairs(blocked),
		Order:       ring,
	}, nil
}

func sorted(s []string) []string {
	out := slices.Clone(s)
	slices.Sort(out)
	return out
}
