package partition

import (
	"net/netip"
	"slices"

	"github.com/pontoon-dev/pontoon/netsetup"
)

// IPv6. A guest with an IPv6 address is partitioned and impaired on both families alike:
// its row class comes from its port whatever it sends, the column class of what it is sent
// from its IPv6 address (DestMap6) as from its IPv4 one, and the check where a frame leaves
// judges by port, which is family-agnostic already. Every rule that names the IPv4 family
// gets a twin for IPv6 right after it, in the same chain, so both are switched in the same
// transaction.
//
// Neighbour solicitations and advertisements pass the way ARP does: they leave the
// partition's judgement (accept) before the class lookup and before any loss, and carry no
// row class to where they leave. Port security lets a guest send only those about its own
// addresses, so nothing else crosses this way; router advertisements and redirects from
// guests never reach the bridge.

// linkLocal6 is the link-local address of a guest with IPv6, which its EUI-64 MAC gives it
// (netsetup.GuestMAC): it reaches its peers from it, and they it, as by its global address.
func linkLocal6(g Guest) netip.Addr { return linkLocalOf(g.IP, g.IP6) }

// linkLocalOf is the link-local address of the guest at ip (IPv4) and ip6: its MAC comes from
// ip, and only a guest with IPv6 has one.
func linkLocalOf(ip, ip6 netip.Addr) netip.Addr {
	if !ip6.IsValid() || !ip.Is4() {
		return netip.Addr{}
	}
	return netsetup.LinkLocal6(netsetup.GuestMAC(ip))
}

// dualStack reports whether any guest of the run has an IPv6 address.
func (r *resolved) dualStack() bool {
	return slices.ContainsFunc(r.gs.list, func(g Guest) bool { return g.IP6.IsValid() })
}

// ndAccept lets neighbour discovery leave the partition's rules.
var ndAccept = Rule{IPv6: true, ND: true, Action: ActionAccept}

// with6 returns rules with an IPv6 twin after each rule that names IPv4, when the run has
// IPv6 (rules unchanged otherwise). A twin of a rule for one destination address is for the
// same guest's IPv6 address, and is left out for a guest without one. A loss rule's twin is
// preceded by ndAccept (once), so neighbour discovery is never lost. A twin counts into the
// IPv6 twin of a counter set keyed by an IPv4 address (counterSet6), into the same set
// otherwise.
func (r *resolved) with6(rules []Rule) []Rule {
	if !r.dualStack() {
		return rules
	}
	out := make([]Rule, 0, 2*len(rules)+1)
	nd := false
	for _, x := range rules {
		out = append(out, x)
		if !x.IPv4 {
			continue
		}
		t := x
		t.IPv4, t.IPv6 = false, true
		if t.Classify == ClassifyColumnByIP {
			t.Classify = ClassifyColumnByIP6
		}
		twins := []Rule{t}
		if x.Daddr.IsValid() {
			if r.ip6 == nil {
				// Built once: every port's chain comes here.
				r.ip6 = make(map[netip.Addr][2]netip.Addr, len(r.gs.list))
				for _, g := range r.gs.list {
					r.ip6[g.IP] = [2]netip.Addr{g.IP6, linkLocal6(g)}
				}
			}
			a := r.ip6[x.Daddr]
			if !a[0].IsValid() {
				continue
			}
			// One for each of the guest's IPv6 addresses, global and link-local.
			t.Daddr = a[0]
			twins = []Rule{t}
			if a[1].IsValid() {
				ll := t
				ll.Daddr = a[1]
				twins = append(twins, ll)
			}
		}
		for _, t := range twins {
			if c6, ok := counterSet6.Get()[t.Count]; ok {
				t.Count = c6
			}
			if isLoss(t) && !nd {
				out, nd = append(out, ndAccept), true
			}
			out = append(out, t)
		}
	}
	return out
}

// isLoss tells a loss rule: a drop that no class lookup decides.
func isLoss(r Rule) bool { return r.Action == ActionDrop && !r.Blocked && r.Classify == "" }

// ndFirst puts ndAccept at the head of the class lookup, right after the reset, when the
// run has IPv6.
func (r *resolved) ndFirst(rules []Rule) []Rule {
	if !r.dualStack() || len(rules) == 0 || rules[0].Classify != ClassifyReset {
		return rules
	}
	return slices.Insert(rules, 1, ndAccept)
}
