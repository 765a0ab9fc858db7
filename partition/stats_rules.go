package partition

import (
	"fmt"
	"slices"
	"strings"

	"github.com/google/nftables"
	"github.com/pontoon-dev/pontoon/internal/lazy"
	"github.com/pontoon-dev/pontoon/internal/nftrule"
)

// How the partition proves it bit. The kernel holds classes, not pairs, so a rule's own
// counter would count a class; instead a packet that is to be dropped or rejected is added
// to a dynamic set keyed by who sent it to whom (`update @set { key counter }`, in the
// counting chain its rule jumps to), and the set element's counter counts it. Only packets
// that reach a drop or reject pay for that; the
// allowed path runs no extra expression. The sets live in the partition table, so Heal
// clears them, and after a change the elements of pairs no longer blocked (and of loss
// settings that changed) are deleted, so every count runs from the pair's or impairment's
// Since. Shaping (rate, delay and the other netem settings) is counted by tc, per class.

// The counter sets of the partition table.
const (
	// CountDropped and CountRejected count what the partition drops, or answers with a
	// reset or an ICMP error, where it enters the bridge, keyed by the port it came in on
	// and its IPv4 destination (IPv6: CountDropped6, CountRejected6).
	CountDropped  = "count_drop"
	CountRejected = "count_reject"
	// CountDroppedOut counts what is dropped where it would leave the bridge (broadcast,
	// multicast, frames to a blocked guest's MAC under another address), keyed by the
	// sender's MAC and the port it would leave by: a guest's port fixes its MAC.
	CountDroppedOut = "count_out"
	// CountLostPair, CountLostFrom and CountLostTo count what loss settings drop: of a
	// pair (source port, destination), of what a guest sends (its port, where frames
	// enter) and of what is delivered to it (its port, where frames leave).
	CountLostPair = "count_loss_pair"
	CountLostFrom = "count_loss_from"
	CountLostTo   = "count_loss_to"
	// CountDropped6, CountRejected6 and CountLostPair6 are the IPv6 twins of CountDropped,
	// CountRejected and CountLostPair, keyed by the IPv6 destination. The rules that count
	// into them match IPv6 alone, so no packet is read at the offsets of the other family.
	CountDropped6  = "count_drop6"
	CountRejected6 = "count_reject6"
	CountLostPair6 = "count_loss_pair6"
)

// counterSets are the counter sets, in the order they are created.
var counterSets = []string{CountDropped, CountRejected, CountDroppedOut, CountLostPair, CountLostFrom, CountLostTo,
	CountDropped6, CountRejected6, CountLostPair6}

// counterSet6 is the IPv6 twin of each counter set keyed by an IPv4 address.
var counterSet6 = lazy.Value[map[string]string]{Build: func() map[string]string {
	return map[string]string{CountDropped: CountDropped6, CountRejected: CountRejected6, CountLostPair: CountLostPair6}
}}

// counterKeys are the keys each counter set is updated with.
var counterKeys = lazy.Value[map[string][]nftrule.Key]{Build: func() map[string][]nftrule.Key {
	return map[string][]nftrule.Key{
		CountDropped:    {nftrule.KeyIifname, nftrule.KeyIPDaddr},
		CountRejected:   {nftrule.KeyIifname, nftrule.KeyIPDaddr},
		CountDroppedOut: {nftrule.KeyEtherSaddr, nftrule.KeyOifname},
		CountLostPair:   {nftrule.KeyIifname, nftrule.KeyIPDaddr},
		CountLostFrom:   {nftrule.KeyIifname},
		CountLostTo:     {nftrule.KeyOifname},
		CountDropped6:   {nftrule.KeyIifname, nftrule.KeyIP6Daddr},
		CountRejected6:  {nftrule.KeyIifname, nftrule.KeyIP6Daddr},
		CountLostPair6:  {nftrule.KeyIifname, nftrule.KeyIP6Daddr},
	}
}}

// countersSetting turns the counters off when built with
// -ldflags "-X github.com/pontoon-dev/pontoon/partition.countersSetting=off", to measure
// what they cost.
var countersSetting = "on"

func countersOn() bool { return countersSetting != "off" }

// maxCounted bounds each counter set: every ordered pair of a full bridge fits.
const maxCounted = 65536

func counterSet(t *nftables.Table, name string) *nftables.Set {
	s := &nftables.Set{Table: t, Name: name, Dynamic: true, Size: maxCounted}
	switch name {
	case CountDroppedOut:
		s.Concatenation = true
		s.KeyType = nftables.MustConcatSetType(nftables.TypeEtherAddr, nftables.TypeIFName)
	case CountLostFrom, CountLostTo:
		s.KeyType = nftables.TypeIFName
	case CountDropped6, CountRejected6, CountLostPair6:
		s.Concatenation = true
		s.KeyType = nftables.MustConcatSetType(nftables.TypeIFName, nftables.TypeIP6Addr)
	default:
		s.Concatenation = true
		s.KeyType = nftables.MustConcatSetType(nftables.TypeIFName, nftables.TypeIPAddr)
	}
	return s
}

// queueCounterSets adds the counter sets rs's rules update. Adding an existing set
// changes nothing and keeps its elements.
func queueCounterSets(c *nftables.Conn, t *nftables.Table, rs RuleSet) error {
	for _, name := range rs.counted() {
		if err := c.AddSet(counterSet(t, name), nil); err != nil {
			return fmt.Errorf("queue set %s: %w", name, err)
		}
	}
	return nil
}

// counted lists the counter sets rs's rules update.
func (rs RuleSet) counted() []string {
	var out []string
	for _, ch := range rs.Chains {
		for _, r := range ch.Rules {
			if r.Count != "" && !slices.Contains(out, r.Count) {
				out = append(out, r.Count)
			}
		}
	}
	slices.SortFunc(out, func(a, b string) int { return slices.Index(counterSets, a) - slices.Index(counterSets, b) })
	return out
}

// renderCounterSets writes the counter sets rs's rules update in nft syntax.
func (rs RuleSet) renderCounterSets(b *strings.Builder) {
	for _, name := range rs.counted() {
		types := make([]string, 0, 2)
		for _, k := range counterKeys.Get()[name] {
			types = append(types, keyType.Get()[k.Text])
		}
		fmt.Fprintf(b, "\tset %s {\n\t\ttype %s\n\t\tsize %d\n\t\tflags dynamic\n\t}\n", name, strings.Join(types, " . "), maxCounted)
	}
}

// keyType is the nft type of each counter key.
var keyType = lazy.Value[map[string]string]{Build: func() map[string]string {
	return map[string]string{"iifname": "ifname", "oifname": "ifname", "ip daddr": "ipv4_addr", "ip6 daddr": "ipv6_addr", "ether saddr": "ether_addr"}
}}

// A counting rule jumps to a chain of two rules, the update and then the verdict, instead of
// updating and deciding in one rule: an update that fails (a set full of keys a guest forged,
// no memory) ends the rule it is in, and the packet must be dropped all the same. The
// blocked packet pays the jump; the allowed path, which never matched, pays nothing.

// countingChains are the chains counting rules jump to, by counter set and verdict. They
// never change, so a change leaves those in use alone; one no longer used goes after every
// chain that could still jump to it (isCountingChain).
var countingChains = []struct {
	name   string
	set    string
	action Action
}{
	{"count_drop", CountDropped, ActionDrop},
	{"count_reset", CountRejected, ActionRejectTCPReset},
	{"count_reject", CountRejected, ActionRejectAdmin},
	{"count_drop_out", CountDroppedOut, ActionDrop},
	{"count_loss_pair", CountLostPair, ActionDrop},
	{"count_loss_from", CountLostFrom, ActionDrop},
	{"count_loss_to", CountLostTo, ActionDrop},
	{"count_drop6", CountDropped6, ActionDrop},
	{"count_reset6", CountRejected6, ActionRejectTCPReset},
	{"count_reject6", CountRejected6, ActionRejectAdmin},
	{"count_loss_pair6", CountLostPair6, ActionDrop},
}

// countVia turns every rule of rs that counts into a jump to its counting chain, and adds
// the counting chains used.
func countVia(rs RuleSet) RuleSet {
	if rs.Empty() || !countersOn() {
		return rs
	}
	chains := make([]Chain, len(rs.Chains))
	used := map[string]bool{}
	for i, ch := range rs.Chains {
		ch.Rules = slices.Clone(ch.Rules)
		for j, r := range ch.Rules {
			if r.Count == "" {
				continue
			}
			for _, cc := range countingChains {
				if cc.set == r.Count && cc.action == r.Action {
					r.Count, r.Action, r.Jump = "", ActionJump, cc.name
					used[cc.name] = true
				}
			}
			ch.Rules[j] = r
		}
		chains[i] = ch
	}
	for _, cc := range countingChains {
		if used[cc.name] {
			chains = append(chains, Chain{Name: cc.name, Rules: []Rule{{Count: cc.set}, {Action: cc.action}}})
		}
	}
	rs.Chains = chains
	return rs
}

// countingAction is the verdict of the counting chain named chain ("" for any other chain).
func countingAction(chain string) Action {
	for _, cc := range countingChains {
		if cc.name == chain {
			return cc.action
		}
	}
	return ""
}

// isCountingChain tells the counting chains, which a commit deletes last.
func isCountingChain(name string) bool { return countingAction(name) != "" }

// counting returns r counting into set, when counters are on.
func counting(r Rule, set string) Rule {
	if countersOn() {
		r.Count = set
	}
	return r
}
