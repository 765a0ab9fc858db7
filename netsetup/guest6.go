package netsetup

import (
	"fmt"
	"net/netip"
)

// guestIP6 is the IPv6 address a guest with IPv4 address ip gets: the one asked for, once
// ParseGuestIP6 admits it (an IPv4-only plan refuses any), or the one derived from ip; none
// when the plan is IPv4 only.
func guestIP6(plan Plan, asked string, ip netip.Addr) (netip.Addr, error) {
	var own netip.Addr
	if asked != "" {
		var err error
		if own, err = plan.ParseGuestIP6(asked, ip); err != nil {
			return netip.Addr{}, err
		}
	}
	return plan.ResolveGuestIP6(own, ip), nil
}

// ResolveGuestIP6 is the IPv6 address a guest with IPv4 address ip and IPv6 address own
// (invalid: none given) gets on the plan's chain: own, or else the one derived from ip; none
// when the plan is IPv4 only, own or not. It does not check own against the plan:
// ParseGuestIP6 does.
func (p Plan) ResolveGuestIP6(own, ip netip.Addr) netip.Addr {
	switch {
	case !p.IPv6():
		return netip.Addr{}
	case own.IsValid():
		return own
	}
	return p.GuestIP6(ip)
}

// guestIPv6 gives a guest's eth0 (still down) its IPv6 addresses: the link-local one of its
// MAC and its own, both usable at once. The kernel generates no address of its own
// (addr_gen_mode none), runs no duplicate address detection and ignores router
// advertisements or redirects: the addresses and routes are pontoon's, and port security
// admits exactly these two.
func guestIPv6(gH *handle, plan Plan, g *Guest) error {
	if !g.IP6.IsValid() {
		return nil
	}
	c := "net.ipv6.conf." + GuestIfName + "."
	if err := gH.Sysctls(c+"addr_gen_mode", "1", c+"accept_dad", "0", c+"accept_ra", "0", c+"accept_redirects", "0", c+"disable_ipv6", "0"); err != nil {
		return fmt.Errorf("enable IPv6 on %s in %s (a host or container without IPv6 needs the gateway up with --ipv4-only): %w", GuestIfName, g.Netns, err)
	}
	if err := addAddr6(gH, GuestIfName, netip.PrefixFrom(LinkLocal6(GuestMAC(g.IP)), 64)); err != nil {
		return err
	}
	return addAddr6(gH, GuestIfName, netip.PrefixFrom(g.IP6, plan.GuestNet6().Bits()))
}

// defaultRoute6 routes a guest's IPv6 through the bridge's address: a static route, so
// nothing waits for a router advertisement.
func defaultRoute6(gH *handle, plan Plan, g *Guest) error {
	if !g.IP6.IsValid() {
		return nil
	}
	return defaultRoute(gH, plan.BridgeAddr6().Addr())
}
