package partition

import (
	"slices"
	"strings"
	"time"
)

// Mode says what a blocked packet's sender experiences.
type Mode string

const (
	// ModeDrop loses blocked packets silently: peers see timeouts.
	ModeDrop Mode = "drop"
	// ModeReject answers blocked TCP packets with a reset and other blocked
	// packets with an ICMP "administratively prohibited" unreachable, so
	// clients fail fast ("connection refused", "no route to host").
	ModeReject Mode = "reject"
)

// State is what Apply makes true on a bridge: a partition, how blocked
// packets are treated, and impairments.
type State struct {
	Partition Partition `json:"partition"`
	// Mode is drop (default when empty) or reject.
	Mode Mode `json:"mode"`
	// Cut resets TCP connections that are already open across the partition
	// instead of leaving them stalled: every segment of an established flow
	// crossing a blocked pair is answered with a TCP reset (in drop mode too;
	// new connections are still dropped there). When guests carry NetnsPath,
	// Apply also closes such sockets inside the guests at once (sock_diag
	// SOCK_DESTROY), so even an idle reader sees the cut.
	Cut         bool         `json:"cut"`
	Impairments []Impairment `json:"impairments"`
}

// WithImpairments returns a copy of s in which each of imps replaces the
// impairment of the same guest or pair, or is added. It is what an
// "impair" command applies on top of the current state (Status(t).State()).
func (s State) WithImpairments(imps ...Impairment) State {
	out := s
	out.Impairments = slices.Clone(s.Impairments)
	for _, im := range imps {
		i := slices.IndexFunc(out.Impairments, func(x Impairment) bool { return x.Target() == im.Target() })
		if i >= 0 {
			out.Impairments[i] = im
		} else {
			out.Impairments = append(out.Impairments, im)
		}
	}
	return out
}

// ImpairSets names what `partition impair` with words sets (Target.Sets): each setting given,
// of each target.
func ImpairSets(words []string, guests []Guest) ([]string, error) {
	targets, err := ParseImpairments(words, guests)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, w := range words {
		key, _, ok := strings.Cut(w, "=")
		if !ok {
			break
		}
		for _, t := range targets {
			out = append(out, SetsSetting(t.Target(), key))
		}
	}
	return out, nil
}

// Impair returns s with the settings that words give (as ParseImpairments reads them)
// changed on each named guest or pair, and their other settings kept: "delay=100ms a" after
// "loss=10% a" leaves a with both. An impairment left without effect (every setting zero) is
// removed. It also returns the changed impairments, for reporting.
func (s State) Impair(words []string, guests []Guest) (State, []Impairment, error) {
	targets, err := ParseImpairments(words, guests) // checks the targets and the settings alone
	if err != nil {
		return s, nil, err
	}
	var settings [][2]string
	given := map[string]bool{}
	for _, w := range words {
		key, val, ok := strings.Cut(w, "=")
		if !ok {
			break
		}
		settings = append(settings, [2]string{key, val})
		given[key] = true
	}
	out := s
	out.Impairments = slices.Clone(s.Impairments)
	changed := make([]Impairment, 0, len(targets))
	for _, t := range targets {
		im := Impairment{Guest: t.Guest, Src: t.Src, Dst: t.Dst}
		if i := slices.IndexFunc(out.Impairments, func(x Impairment) bool { return x.Target() == t.Target() }); i >= 0 {
			im = out.Impairments[i]
			out.Impairments = slices.Delete(out.Impairments, i, i+1)
		}
		for _, kv := range settings {
			if err := setField(&im, kv[0], kv[1]); err != nil {
				return s, nil, err
			}
		}
		if im.Delay == 0 && given["delay"] {
			// Without a delay, jitter and reorder mean nothing (and are refused): removing
			// the delay removes them unless they are given too.
			if !given["jitter"] {
				im.Jitter = 0
			}
			if !given["reorder"] {
				im.Reorder = 0
			}
		}
		if err := im.validate(); err != nil {
			return s, nil, err
		}
		if !im.Empty() {
			out.Impairments = append(out.Impairments, im)
		}
		changed = append(changed, im)
	}
	return out, changed, nil
}

// Empty reports an impairment whose every setting is zero: it has no effect.
func (im Impairment) Empty() bool {
	im.Guest, im.Src, im.Dst, im.Since = "", "", "", time.Time{}
	return im == Impairment{}
}

// withDeparted is the guests here and, after them, the recorded guests that left and that
// the state still names, with the port and addresses their rules were compiled for, marked
// away: a refresh leaves a departed guest under its pairs and impairments until the next
// change (it may be a container restarting). One whose name, port or an address a guest
// here holds now is not departed: it is back, or gone for good.
func withDeparted(here, recorded []Guest, s State) []Guest {
	named := map[string]bool{}
	for _, p := range s.Partition.Blocked {
		named[p.Src], named[p.Dst] = true, true
	}
	for _, im := range s.Impairments {
		named[im.Guest], named[im.Src], named[im.Dst] = true, true, true
	}
	taken := map[string]bool{}
	for _, g := range here {
		taken["n"+g.Name], taken["p"+g.Port], taken["a"+g.IP.String()] = true, true, true
		if g.IP6.IsValid() {
			taken["a"+g.IP6.String()] = true
		}
	}
	out := slices.Clip(here)
	for _, g := range recorded {
		if !named[g.Name] || taken["n"+g.Name] || taken["p"+g.Port] || taken["a"+g.IP.String()] || (g.IP6.IsValid() && taken["a"+g.IP6.String()]) {
			continue
		}
		// Its namespace path may name another's by now (a /proc path of a reused pid).
		g.NetnsPath, g.away = "", true
		out = append(out, g)
	}
	return out
}

// For returns s without the pairs, order entries and impairments that name a guest not
// among guests: a guest that left the bridge takes its part of the state with it.
func (s State) For(guests []Guest) State {
	here := make(map[string]bool, len(guests))
	for _, g := range guests {
		here[g.Name] = true
	}
	gone := func(names ...string) bool {
		for _, n := range names {
			if n != "" && !here[n] {
				return true
			}
		}
		return false
	}
	out := s
	out.Partition.Blocked = slices.DeleteFunc(slices.Clone(s.Partition.Blocked), func(p Pair) bool { return gone(p.Src, p.Dst) })
	out.Partition.Order = slices.DeleteFunc(slices.Clone(s.Partition.Order), func(n string) bool { return gone(n) })
	out.Impairments = slices.DeleteFunc(slices.Clone(s.Impairments), func(im Impairment) bool { return gone(im.Guest, im.Src, im.Dst) })
	return out
}
