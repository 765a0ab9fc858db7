package partition

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"time"
)

// GroupSeparator separates groups in CLI words, as in vagga: "a b -- c d".
const GroupSeparator = "--"

// SpecUsage describes the words ParseSpec accepts, for CLI help texts.
const SpecUsage = `fullmesh                      heal: every guest reaches every other one
isolate A [B..]               cut each listed guest off from all others (each other included)
disjoint A B -- C D [-- ..]   groups sharing no guest; every guest exactly once
split A B -- B C [-- ..]      groups may overlap; unlisted guests are isolated
block A [B..] -- C [D..]      one way: packets from A, B to C, D are lost
random-halves [SEED]          two random halves
random-node [SEED]            isolate one random guest
bridge [SEED]                 two random halves sharing one guest
majorities-ring [SEED]        each guest sees a different majority (Jepsen)
Guests are named by name or IP.`

// ParseSpec builds a partition from CLI words: a kind followed by guests in
// vagga's group syntax, e.g. {"disjoint","a","b","--","c"}. Random kinds take
// an optional seed; without one a seed is drawn and recorded in the
// Description so the partition can be reproduced. See SpecUsage.
func ParseSpec(words []string, guests []Guest) (Partition, error) {
	if len(words) == 0 {
		return Partition{}, fmt.Errorf("partition spec is empty; give one of fullmesh, isolate, disjoint, split, block, random-halves, random-node, bridge, majorities-ring")
	}
	kind, args := words[0], words[1:]
	switch kind {
	case "fullmesh", "heal":
		if len(args) > 0 {
			return Partition{}, fmt.Errorf("%s takes no guests (got %q)", kind, strings.Join(args, " "))
		}
		return Fullmesh(), nil
	case "isolate":
		if slices.Contains(args, GroupSeparator) {
			return Partition{}, fmt.Errorf("isolate takes a plain list of guests, without %q", GroupSeparator)
		}
		return Isolate(guests, args...)
	case "disjoint":
		return Disjoint(guests, SplitGroups(args))
	case "split":
		return Split(guests, SplitGroups(args))
	case "block":
		groups := SplitGroups(args)
		if len(groups) != 2 {
			return Partition{}, fmt.Errorf("block needs exactly two groups, sources and destinations: block A [B..] -- C [D..] (got %d groups)", len(groups))
		}
		return Block(guests, groups[0], groups[1])
	case "random-halves", "random-node", "bridge", "majorities-ring":
		seed, err := parseSeed(kind, args)
		if err != nil {
			return Partition{}, err
		}
		switch kind {
		case "random-halves":
			return RandomHalves(guests, seed)
		case "random-node":
			return RandomNode(guests, seed)
		case "bridge":
			return BridgedHalves(guests, seed)
		default:
			return MajoritiesRing(guests, seed)
		}
	}
	return Partition{}, fmt.Errorf("unknown partition kind %q; use one of fullmesh, isolate, disjoint, split, block, random-halves, random-node, bridge, majorities-ring", kind)
}

func parseSeed(kind string, args []string) (int64, error) {
	switch len(args) {
	case 0:
		return rand.Int64N(1 << 31), nil
	case 1:
		seed, err := strconv.ParseInt(args[0], 10, 64)
		if err != nil {
			return 0, fmt.Errorf("%s: seed %q is not an integer", kind, args[0])
		}
		return seed, nil
	}
	return 0, fmt.Errorf("%s takes at most one word, a seed (got %q)", kind, strings.Join(args, " "))
}

// SplitGroups cuts words at each "--" into groups. Empty groups are kept so
// that the constructors can report them.
func SplitGroups(words []string) [][]string {
	if len(words) == 0 {
		return nil
	}
	groups := [][]string{{}}
	for _, w := range words {
		if w == GroupSeparator {
			groups = append(groups, []string{})
			continue
		}
		groups[len(groups)-1] = append(groups[len(groups)-1], w)
	}
	return groups
}

// ImpairUsage describes the words ParseImpairments accepts.
const ImpairUsage = `SETTING=VALUE.. GUEST [GUEST..]          each guest's link, both directions
SETTING=VALUE.. SRC [..] -- DST [..]     packets from each SRC to each DST
settings: loss=PCT  rate=RATE (1mbit, 512kbit, 10mbps)
          delay=DUR jitter=DUR duplicate=PCT corrupt=PCT reorder=PCT (need netem)`

// ParseImpairments builds impairments from CLI words: settings such as
// "loss=10%", "rate=1mbit", "delay=100ms" followed by guests ("a b": one
// impairment per guest) or by "SRC.. -- DST.." (one per ordered pair). Guests
// are resolved against guests; settings are validated. See ImpairUsage.
func ParseImpairments(words []string, guests []Guest) ([]Impairment, error) {
	gs, err := newGuestSet(guests)
	if err != nil {
		return nil, err
	}
	var base Impairment
	i := 0
	given := map[string]string{}
	for ; i < len(words); i++ {
		key, val, ok := strings.Cut(words[i], "=")
		if !ok {
			break
		}
		if first, twice := given[key]; twice {
			return nil, fmt.Errorf("impairment: %s is given twice (%s and %s); give each setting once", key, first, words[i])
		}
		given[key] = words[i]
		if err := setField(&base, key, val); err != nil {
			return nil, err
		}
	}
	if i == 0 {
		return nil, fmt.Errorf("impairment: no setting given; start with e.g. loss=10%% or rate=1mbit")
	}
	groups := SplitGroups(words[i:])
	if len(groups) > 2 {
		return nil, fmt.Errorf("impairment: at most two groups, SRC.. -- DST.., got %d; known guests: %s", len(groups), gs.known())
	}
	for _, g := range groups {
		if len(groups) == 2 && len(g) == 0 {
			return nil, fmt.Errorf("impairment: an empty group around %q; name sources before it and destinations after it (SRC.. -- DST..)", GroupSeparator)
		}
	}
	var out []Impairment
	switch len(groups) {
	case 1:
		names, err := gs.resolveAll("impairment guests", groups[0])
		if err != nil {
			return nil, err
		}
		for _, n := range names {
			im := base
			im.Guest = n
			out = append(out, im)
		}
	case 2:
		src, err := gs.resolveAll("impairment sources", groups[0])
		if err != nil {
			return nil, err
		}
		dst, err := gs.resolveAll("impairment destinations", groups[1])
		if err != nil {
			return nil, err
		}
		for _, s := range src {
			for _, d := range dst {
				if s == d {
					return nil, fmt.Errorf("impairment: guest %q is both a source and a destination", s)
				}
				im := base
				im.Src, im.Dst = s, d
				out = append(out, im)
			}
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("impairment: name the guests after the settings (GUEST.. or SRC.. -- DST..); known guests: %s", gs.known())
	}
	for _, im := range out {
		if err := im.validate(); err != nil {
			return nil, err
		}
	}
	return out, nil
}

func setField(im *Impairment, key, val string) error {
	pct := func(dst *float64) error {
		v, err := strconv.ParseFloat(strings.TrimSuffix(val, "%"), 64)
		if err != nil {
			return fmt.Errorf("impairment %s=%s: not a percentage; write e.g. %s=10%%", key, val, key)
		}
		*dst = v
		return nil
	}
	dur := func(dst *time.Duration) error {
		d, err := parseDur(key, val)
		*dst = d
		return err
	}
	switch key {
	case "loss":
		return pct(&im.Loss)
	case "duplicate":
		return pct(&im.Duplicate)
	case "corrupt":
		return pct(&im.Corrupt)
	case "reorder":
		return pct(&im.Reorder)
	case "delay":
		return dur(&im.Delay)
	case "jitter":
		return dur(&im.Jitter)
	case "rate":
		r, err := ParseRate(val)
		if err != nil {
			return fmt.Errorf("impairment: %w", err)
		}
		im.Rate = r
		return nil
	}
	return fmt.Errorf("impairment: unknown setting %q; use loss, rate, delay, jitter, duplicate, corrupt or reorder", key)
}

// ParseMode reads "drop" or "reject"; "" means drop.
func ParseMode(s string) (Mode, error) {
	switch Mode(s) {
	case "", ModeDrop:
		return ModeDrop, nil
	case ModeReject:
		return ModeReject, nil
	}
	return "", fmt.Errorf("mode %q: use drop (peers see timeouts) or reject (TCP peers get a reset, others an ICMP unreachable)", s)
}
