package netsetup

import (
	"fmt"
	"net"
	"net/netip"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// checkHostCollisions refuses a plan whose ranges, IPv4 or IPv6, are already routed or
// addressed in the host namespace (Docker's 172.17/172.18 networks being the common case; a
// VPN's or another tool's unique local /48 the IPv6 one): the plan is the value to change
// (ErrInvalid).
func checkHostCollisions(env Env, plan Plan) error {
	h, err := openHandle(env.hostNetns())
	if err != nil {
		return err
	}
	defer h.Close()
	ifname := func(idx int) string {
		if l, err := h.LinkByIndex(idx); err == nil {
			return l.Attrs().Name
		}
		return fmt.Sprint(idx)
	}
	families := []hostFamily{{netlink.FAMILY_V4, plan.Ranges(), func(used netip.Prefix) string {
		return fmt.Sprintf("subnet %s collides with the host %%s (the plan uses %s); choose a free /16 with --subnet, e.g. --subnet %s", plan, used, suggestSubnet(plan))
	}}}
	if plan.IPv6() {
		families = append(families, hostFamily{netlink.FAMILY_V6, plan.Ranges6(), func(used netip.Prefix) string {
			return fmt.Sprintf("subnet6 %s collides with the host %%s (the plan uses %s); choose a free unique local /48 with --subnet6, e.g. --subnet6 %s, or bring the gateway up with --ipv4-only", plan.Subnet6, used, suggestSubnet6(plan))
		}})
	}
	for _, f := range families {
		// Every routing table: a policy rule can send the host's traffic for the plan through
		// any of them. The local table holds the host's own addresses, checked below.
		routes, err := h.RouteListFiltered(f.family, &netlink.Route{Table: unix.RT_TABLE_UNSPEC}, netlink.RT_FILTER_TABLE)
		if err != nil {
			return fmt.Errorf("list host routes: %w", err)
		}
		for _, r := range routes {
			p, ok := anyPrefixOf(r.Dst)
			if !ok || p.Bits() == 0 || r.Table == unix.RT_TABLE_LOCAL || ifname(r.LinkIndex) == HostLinkName {
				continue // default route, the host's own addresses, or pontoon's own
			}
			if used, hit := overlapsAny(f.ranges, p); hit {
				where := fmt.Sprintf("route %s dev %s", p, ifname(r.LinkIndex))
				if r.Table != unix.RT_TABLE_MAIN {
					where += fmt.Sprintf(" table %d", r.Table)
				}
				return invalidf(f.text(used), where)
			}
		}
		addrs, err := h.AddrList(nil, f.family)
		if err != nil {
			return fmt.Errorf("list host addresses: %w", err)
		}
		for _, a := range addrs {
			p, ok := anyPrefixOf(a.IPNet)
			if !ok || ifname(a.LinkIndex) == HostLinkName || p.Addr().IsLoopback() || p.Addr().IsLinkLocalUnicast() {
				continue
			}
			if used, hit := overlapsAny(f.ranges, p); hit {
				return invalidf(f.text(used), fmt.Sprintf("address %s on %s", p, ifname(a.LinkIndex)))
			}
		}
	}
	return nil
}

// hostFamily is what checkHostCollisions checks of one address family.
type hostFamily struct {
	family int
	ranges []netip.Prefix
	text   func(used netip.Prefix) string // the refusal, with %s for the host's culprit
}

func overlapsAny(ranges []netip.Prefix, q netip.Prefix) (netip.Prefix, bool) {
	for _, r := range ranges {
		if r.Overlaps(q) {
			return r, true
		}
	}
	return netip.Prefix{}, false
}

func suggestSubnet6(p Plan) string {
	if p.Subnet6 == DefaultPlan6() {
		return "fd70:6f6f::/48"
	}
	return DefaultSubnet6
}

// anyPrefixOf is n as a prefix of its own family (IPv4 unmapped).
func anyPrefixOf(n *net.IPNet) (netip.Prefix, bool) {
	if p, ok := prefixOf(n); ok {
		return p, true
	}
	if n == nil {
		return netip.Prefix{}, false
	}
	a, ok := netip.AddrFromSlice(n.IP)
	if !ok {
		return netip.Prefix{}, false
	}
	bits, _ := n.Mask.Size()
	return netip.PrefixFrom(a, bits), true
}
