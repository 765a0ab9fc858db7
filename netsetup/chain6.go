package netsetup

import (
	"fmt"
	"net/netip"

	"github.com/google/nftables"
	"github.com/pontoon-dev/pontoon/internal/nftrule"
)

// The chain's IPv6, when the plan has it, mirrors its IPv4: the host link and every uplink
// carry the plan's IPv6 addresses, the gateway and the bridges route and masquerade IPv6 as
// they do IPv4, port forwards answer on the gateway's IPv6 address too, and the gateway keeps
// bridges apart on both families. pontoon leaves the host's own IPv6 forwarding alone
// (turning it on makes Linux ignore router advertisements on every interface that accepts
// them): guests reach the host's IPv6 addresses through the chain, and beyond it once the
// host forwards IPv6.

// gatewayTable6 is the gateway's ip6 table: gatewayTable for IPv6.
func gatewayTable6(plan Plan, forwards []nftrule.Rule) tableSpec {
	return gatewayTableOf(nftables.TableFamilyIPv6, nftrule.Daddr6Prefix(plan.Uplinks6()), forwards)
}

// gatewayForwards6 is gatewayForwards for the gateway's IPv6 address.
func gatewayForwards6(plan Plan, bridges []*BridgeState) []nftrule.Rule {
	return readyForwards(bridges, func(slot int, proto string, port uint16) nftrule.Rule {
		return nftrule.Rule{nftrule.Iifname(UplinkName), nftrule.Daddr6(plan.GatewayAddr6().Addr()),
			nftrule.Dport(proto, port), nftrule.DNAT6(plan.UplinkBridge6(slot).Addr(), port)}
	})
}

// bridgeTable6 is a bridge's ip6 table: bridgeTable for IPv6.
func bridgeTable6(plan Plan, b *BridgeState) tableSpec {
	pre := natChain("prerouting", nftables.ChainHookPrerouting, nftables.ChainPriorityNATDest)
	for _, p := range b.Ports {
		if ip, ok := b.guestIP6(plan, p.Guest); ok {
			pre.rules = append(pre.rules, nftrule.Rule{nftrule.Iifname(UplinkName), nftrule.Daddr6(plan.UplinkBridge6(b.Slot).Addr()),
				nftrule.Dport(p.Proto, p.HostPort), nftrule.DNAT6(ip, p.GuestPort)})
		}
	}
	return tableSpec{family: nftables.TableFamilyIPv6, chains: []chainSpec{
		natChain("postrouting", nftables.ChainHookPostrouting, nftables.ChainPriorityNATSource,
			nftrule.Rule{nftrule.Saddr6(plan.GuestNet6()), nftrule.Oifname(UplinkName), nftrule.Masquerade()}),
		pre,
	}}
}

// guestIP6 resolves a port's guest (name or IPv4 address) to its IPv6 address.
func (b *BridgeState) guestIP6(plan Plan, ref string) (netip.Addr, bool) {
	ip, ok := b.guestIP(ref)
	if !ok {
		return netip.Addr{}, false
	}
	for _, g := range b.Guests {
		if g.IP == ip && g.IP6.IsValid() {
			return g.IP6, true
		}
	}
	// A forward by address whose guest is not attached yet: the derived address.
	return plan.GuestIP6(ip), ip.Is4()
}

// hostTable6 masquerades the host link's IPv6 leaving the host, as hostTable does IPv4.
func hostTable6(plan Plan) tableSpec {
	return tableSpec{family: nftables.TableFamilyIPv6, chains: []chainSpec{
		natChain("postrouting", nftables.ChainHookPostrouting, nftables.ChainPriorityNATSource,
			nftrule.Rule{nftrule.Saddr6(netip.PrefixFrom(plan.HostAddr6().Addr(), 64).Masked()), nftrule.NotOifname(HostLinkName), nftrule.Masquerade()}),
	}}
}

// linkIPv6 turns IPv6 on for a link and gives it an address, usable at once.
func linkIPv6(h *handle, dev string, p netip.Prefix) error {
	if err := enableIPv6(h, dev); err != nil {
		return err
	}
	return addAddr6(h, dev, p)
}

// gatewayIPv6Step gives the host link its IPv6 addresses and makes the gateway route IPv6.
func gatewayIPv6Step(plan Plan, hostH, gwH **handle, gwName string) step {
	if !plan.IPv6() {
		return step{}
	}
	return step{
		show: fmt.Sprintf("ip addr add %s dev %s nodad && ip -n %s addr add %s dev %s nodad && ip -n %s route add default via %s && ip netns exec %s sysctl -w net.ipv6.conf.all.forwarding=1",
			plan.HostAddr6(), HostLinkName, gwName, plan.GatewayAddr6(), UplinkName, gwName, plan.HostAddr6().Addr(), gwName),
		do: func() error {
			if err := linkIPv6(*hostH, HostLinkName, plan.HostAddr6()); err != nil {
				return err
			}
			if err := linkIPv6(*gwH, UplinkName, plan.GatewayAddr6()); err != nil {
				return err
			}
			if err := defaultRoute(*gwH, plan.HostAddr6().Addr()); err != nil {
				return err
			}
			return (*gwH).Sysctls("net.ipv6.conf.all.forwarding", "1")
		},
	}
}

// bridgeUplinkIPv6Step gives a bridge's uplink its IPv6 addresses on both ends and makes the
// bridge route its guests' IPv6 through it.
func bridgeUplinkIPv6Step(plan Plan, slot int, gwH, brH **handle, gwName, brName string) step {
	if !plan.IPv6() {
		return step{}
	}
	sl := slotLink(slot)
	return step{
		show: fmt.Sprintf("ip -n %s addr add %s dev %s nodad && ip -n %s addr add %s dev %s nodad && ip -n %s route add default via %s && ip netns exec %s sysctl -w net.ipv6.conf.all.forwarding=1",
			gwName, plan.UplinkGateway6(slot), sl, brName, plan.UplinkBridge6(slot), UplinkName, brName, plan.UplinkGateway6(slot).Addr(), brName),
		do: func() error {
			if err := linkIPv6(*gwH, sl, plan.UplinkGateway6(slot)); err != nil {
				return err
			}
			if err := linkIPv6(*brH, UplinkName, plan.UplinkBridge6(slot)); err != nil {
				return err
			}
			if err := defaultRoute(*brH, plan.UplinkGateway6(slot).Addr()); err != nil {
				return err
			}
			return (*brH).Sysctls("net.ipv6.conf.all.forwarding", "1")
		},
	}
}

// table6Step installs an ip6 table in the namespace of h, when the plan has IPv6.
func table6Step(plan Plan, t tableSpec, h **handle, nsName string) step {
	if !plan.IPv6() {
		return step{}
	}
	return step{text: func() string { return t.show(nsName) }, do: func() error { return replaceTable((*h).NS, t) }}
}
