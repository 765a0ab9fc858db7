package netsetup

import (
	"fmt"
	"net/netip"

	"github.com/google/nftables"
	"github.com/pontoon-dev/pontoon/internal/nftrule"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// Port security: a guest is who its bridge port says, not what its packets claim. Guests
// are often root in their namespace (containers keep CAP_NET_RAW), so they can forge an
// IPv4 source, add addresses of their own, change their MAC or answer ARP for another
// guest's address. Whatever partition is in force, two bindings hold:
//
//   - port to MAC, kept by the bridge: each guest port is locked, learns nothing, and holds
//     its guest's MAC as a static forwarding entry, so the bridge drops every frame from the
//     port whose source is another MAC (before forwarding or learning anything from it),
//     and the entry goes away with the port;
//   - MAC to IP, kept by the bridge namespace's bridge-family table: a guest's MAC is
//     derived from its address (GuestMAC), so one static set of the plan's 253 MAC . IP
//     pairs tells every IPv4 and ARP sender whether its addresses belong together.
//
// Binding the port in the bridge rather than in a per-guest set element keeps attach and
// detach free of nftables transactions. Deleting an element would cost a detach an RCU grace
// period (10 ms and more, measured here): after any nftables delete, the kernel makes the
// next close of a netfilter socket wait for the deleted objects to be freed, holding the
// namespace's nftables lock meanwhile.

// guestSet holds the MAC . IP pair of every address a guest can have.
const guestSet = "guests"

// guestPorts matches every guest port (named g<octet>, or g<octet>-N while an earlier port
// of that address is still being removed).
const guestPorts = "g*"

func guestElem(ip netip.Addr) setElem {
	mac, a := GuestMAC(ip), ip.As4()
	return setElem{key: nftrule.ConcatKey(mac, a[:]), text: macAndAddr}
}

// guestSetSpec is the set of the plan's guest identities, x.y.0.1-x.y.0.253.
func guestSetSpec(plan Plan) setSpec {
	s := setSpec{name: guestSet, types: []nftables.SetDatatype{nftables.TypeEtherAddr, nftables.TypeIPAddr}}
	first, last, _, _ := GuestRange(plan.GuestNet())
	for ip := first; !last.Less(ip); ip = ip.Next() {
		s.elems = append(s.elems, guestElem(ip))
	}
	return s
}

// bridgeL2Table is pontoon's bridge-family table in a bridge namespace.
//
// Prerouting lets IPv4 from a guest port through only when its source address is the one
// that goes with its source MAC, and ARP only when the sender fields name such a pair and
// the Ethernet source is the sender's MAC; the bridge then drops what came with a MAC that
// is not the port's. With an IPv6 plan, IPv6 and neighbour discovery get the same checks
// (portsec6.go). Everything else from a guest port is dropped: any other ethertype (IPv6 on
// an IPv4-only chain, VLAN stacks, PPPoE, MPLS...) would carry traffic, or an address, that
// these checks and the partitions' rules never look at; no guest needs one to talk over its
// bridge. The accepting rules read the frame's own ethertype (ether type), not meta protocol:
// a VLAN tag, priority tag (VLAN 0) included, is taken off the frame on receipt and kept
// beside it, meta protocol then names what is inside, and the bridge would pass the tag on
// to a guest whose kernel takes a priority-tagged frame as untagged.
//
// On an IPv4-only chain, forward drops IPv6 between the bridge's ports whatever port it
// comes from: a guest's IPv6 (link-local at least) would slip past these checks and the
// partitions. With an IPv6 plan, both cover IPv6 (partition binds each guest's IPv6
// address to its column class as its IPv4 one), and it passes like IPv4.
func bridgeL2Table(plan Plan) tableSpec {
	guests := &nftables.Set{Name: guestSet}
	sets := append([]setSpec{guestSetSpec(plan)}, askedSets(plan)...)
	var rules6 []nftrule.Rule
	forward := []nftrule.Rule{{nftrule.Protocol("ip6", unix.ETH_P_IPV6), nftrule.Drop()}}
	if plan.IPv6() {
		sets = append(sets, guest6Sets(plan)...)
		rules6, forward = portRules6(), nil
	}
	return tableSpec{
		family: nftables.TableFamilyBridge,
		sets:   sets,
		chains: []chainSpec{
			{
				name: "prerouting", typ: nftables.ChainTypeFilter, hook: nftables.ChainHookPrerouting,
				// Before any other bridge-family chain, so none sees a forged packet.
				priority: nftables.ChainPriorityRef(-300),
				rules: append([]nftrule.Rule{
					{nftrule.EtherType("ip", unix.ETH_P_IP), nftrule.InSet(guests, nftrule.KeyEtherSaddr, nftrule.KeyIPSaddr), nftrule.Accept()},
					askedARP(plan),
					{nftrule.EtherType("arp", unix.ETH_P_ARP), nftrule.InSet(guests, nftrule.KeyEtherSaddr, nftrule.KeyARPSenderIP),
						nftrule.InSet(guests, nftrule.KeyARPSenderMAC, nftrule.KeyARPSenderIP), nftrule.Accept()},
				}, append(rules6, nftrule.Rule{nftrule.Iifname(guestPorts), nftrule.Drop()})...),
			},
			filterChain("forward", nftables.ChainHookForward, forward...),
		},
	}
}

// securePort binds a new guest port (still down) to its guest's MAC: the port is locked and
// learns nothing, and the guest's MAC is a static forwarding entry on it. Learning stays off
// because the bridge learns from link-local frames (LLDP, 01:80:c2:00:00:0e) without running
// any netfilter hook; the static entry also keeps frames for the guest from being flooded
// to other ports, as they would be once a learned entry aged out.
func securePort(brH *handle, port netlink.Link, ip netip.Addr) error {
	name := port.Attrs().Name
	if err := brH.LockPort(port.Attrs().Index); err != nil {
		return fmt.Errorf("lock port %s: %w", name, err)
	}
	fdb := &netlink.Neigh{LinkIndex: port.Attrs().Index, Family: unix.AF_BRIDGE, State: netlink.NUD_NOARP,
		Flags: netlink.NTF_MASTER, HardwareAddr: GuestMAC(ip)}
	// Replaces the entry on an earlier port of this address that is still being removed.
	if err := brH.NeighSet(fdb); err != nil {
		return fmt.Errorf("add static forwarding entry %s to port %s: %w", fdb.HardwareAddr, name, err)
	}
	return nil
}
