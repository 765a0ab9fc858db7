package netsetup

import (
	"errors"
	"net"
	"net/netip"
	"time"

	"github.com/google/nftables"
	"github.com/pontoon-dev/pontoon/internal/nftpool"
	"github.com/pontoon-dev/pontoon/internal/nftrule"
	"github.com/pontoon-dev/pontoon/internal/nftwire"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
	"golang.org/x/sys/unix"
)

// A peer that sent to an address before its guest was attached (a sibling started at the
// same time, or the bridge's own stack) holds an incomplete neighbour entry, which the kernel
// asks again for only a second later (neigh retrans_time_ms); its packets wait in that entry
// meanwhile. An attach makes the new guest known to such peers once its queue is active and
// the bridge forwards through its port:
//
//   - the bridge's own entries (for the host's port forwards, other bridges' guests, the
//     name server) are given the guest's MAC directly: the MAC follows from the address, and
//     port security holds the guest to it. Only an entry that exists is updated, so the
//     bridge holds no entry for a guest it never talked to (the neighbour tables' limits
//     count entries across all namespaces);
//   - the guest announces itself to the other guests only when one of them asked for its
//     address lately. An announcement floods every port of the bridge, and each guest that
//     receives it looks it up: for the 200th guest of a bridge, half its attach.
//
// Who asked is kept by the bridge's table: prerouting records the target of every ARP
// request for an address of the bridge's /24, and of every neighbour solicitation, in a
// dynamic set (asked, asked6), for as long as an incomplete entry keeps asking.
// The record is made before the bridge floods the request, so a request that the new port
// missed is in the set by the time the port forwards, which is when the attach looks the
// address up (one key, whatever the set holds). No guest can fill the sets to hide another's
// question: their keys are bounded (an address of the /24; the last byte of a target, where
// a byte shared with another address costs an announcement that was not needed, nothing
// else), and each set has room for four times its keys, since an element that expired
// counts against the size until the kernel's collection, a second later, removes it.
const (
	askedSet  = "asked"
	asked6Set = "asked6"
	// askedFor is how long a question counts: an incomplete entry asks mcast_solicit (3)
	// times, a second apart, and each question restarts the element's timeout.
	askedFor = 3 * time.Second
	// askedRoom is the sets' size: 256 keys each, see above.
	askedRoom = 4 * 256
)

// askedSets are the dynamic sets of questions, IPv6's with an IPv6 plan.
func askedSets(plan Plan) []setSpec {
	sets := []setSpec{{name: askedSet, types: []nftables.SetDatatype{nftables.TypeIPAddr}, room: askedRoom, timeout: askedFor}}
	if plan.IPv6() {
		sets = append(sets, setSpec{name: asked6Set, types: []nftables.SetDatatype{nftrule.OneByte}, typeOf: nftrule.KeyNDTargetLast.Text,
			room: askedRoom, timeout: askedFor})
	}
	return sets
}

// askedARP records an ARP question, ahead of the rule that accepts ARP; it decides nothing.
func askedARP(plan Plan) nftrule.Rule {
	return nftrule.Rule{nftrule.EtherType("arp", unix.ETH_P_ARP), nftrule.ARPRequest(), nftrule.ARPTargetIn(plan.GuestNet()),
		nftrule.Update(&nftables.Set{Name: askedSet}, nftrule.KeyARPTargetIP)}
}

// askedND records a neighbour solicitation's question, ahead of the rules that accept one.
func askedND() nftrule.Match {
	return nftrule.Update(&nftables.Set{Name: asked6Set}, nftrule.KeyNDTargetLast)
}

// announce makes the guest known to whoever waits for it (see above). It is best effort:
// without it the peers' own retry still finds the guest.
func announce(brH, gH *handle, brIndex int, plan Plan, g *Guest) {
	mac := GuestMAC(g.IP)
	for _, ip := range []netip.Addr{g.IP, g.IP6} {
		if ip.IsValid() {
			_ = updateNeigh(brH, brIndex, ip, mac)
		}
	}
	v4, v6 := asked(brH.path, g)
	if !v4 && !v6 {
		return
	}
	link, err := gH.linkByName(GuestIfName)
	if err != nil {
		return
	}
	idx := link.Attrs().Index
	if v4 {
		// The guest asks for the bridge's address, which it needs anyway: the request is
		// broadcast, and any ARP from the guest's address completes the peers' incomplete
		// entries at once and releases their packets, while peers without one create none
		// (arp_accept is off). The kernel sends the request itself (NTF_USE), so no packet
		// socket is opened: closing one waits for an RCU grace period. It asks only for an
		// address it has no entry for: the guest may have learned the bridge's from a request
		// of the bridge it received while its own replies were still dropped (its queue not
		// yet active), so that entry goes first.
		bridge := &netlink.Neigh{LinkIndex: idx, Family: unix.AF_INET, IP: net.IP(plan.BridgeAddr().Addr().AsSlice())}
		_ = gH.NeighDel(bridge)
		bridge.Flags = netlink.NTF_USE
		_ = gH.NeighSet(bridge)
	}
	if v6 {
		// A solicitation reaches only its target, so the guest advertises its address to all
		// nodes instead.
		advertise6(gH, idx, g)
	}
}

// updateNeigh gives the existing neighbour entry for ip on the link index of h the MAC mac,
// stale (usable at once, confirmed by the kernel's own probe when next used); it creates
// none (no NLM_F_CREATE, which the netlink library always sets).
func updateNeigh(h *handle, index int, ip netip.Addr, mac net.HardwareAddr) error {
	fam := unix.AF_INET
	if ip.Is6() {
		fam = unix.AF_INET6
	}
	req := nl.NewNetlinkRequest(unix.RTM_NEWNEIGH, unix.NLM_F_REPLACE|unix.NLM_F_ACK)
	req.AddData(&netlink.Ndmsg{Family: uint8(fam), Index: uint32(index), State: netlink.NUD_STALE})
	req.AddData(nl.NewRtAttr(unix.NDA_DST, ip.AsSlice()))
	req.AddData(nl.NewRtAttr(unix.NDA_LLADDR, mac))
	_, err := h.Execute(req, 0)
	return err
}

// asked reports for each of the guest's addresses whether a peer asked for it lately. When it
// cannot tell (a bridge made before these sets, an error), it says yes: an announcement too
// many costs a flood, one too few a second's wait.
func asked(brPath string, g *Guest) (v4, v6 bool) {
	v4, v6 = true, g.IP6.IsValid()
	a4, a6 := g.IP.As4(), g.IP6.As16()
	lookups := []nftwire.Lookup{{Set: askedSet, Key: a4[:]}}
	if v6 {
		lookups = append(lookups, nftwire.Lookup{Set: asked6Set, Key: a6[15:]})
	}
	_ = nftpool.WithConn(brPath, func(c *nftwire.Conn) error {
		held, err := c.Holds(nftables.TableFamilyBridge, TableName, lookups...)
		if err != nil {
			if errors.Is(err, nftwire.ErrNoSet) {
				return nil // the connection is fine: the pool keeps it
			}
			return err
		}
		v4 = held[0]
		if v6 {
			v6 = held[1]
		}
		return nil
	})
	return v4, v6
}

// advertise6 sends the unsolicited advertisement (RFC 4861 7.2.6) to all nodes: override
// set, solicited not, the guest's MAC as the target link-layer address.
func advertise6(gH *handle, ifindex int, g *Guest) {
	fd, err := gH.Socket(unix.AF_INET6, unix.SOCK_RAW, unix.IPPROTO_ICMPV6)
	if err != nil {
		return
	}
	defer unix.Close(fd)
	// Receivers drop neighbour discovery that a router could have forwarded.
	if unix.SetsockoptInt(fd, unix.IPPROTO_IPV6, unix.IPV6_MULTICAST_HOPS, 255) != nil ||
		unix.SetsockoptInt(fd, unix.IPPROTO_IPV6, unix.IPV6_MULTICAST_IF, ifindex) != nil {
		return
	}
	target := g.IP6.As16()
	msg := []byte{136, 0, 0, 0, 0x20, 0, 0, 0} // type, code, checksum (the kernel's), flags: override
	msg = append(msg, target[:]...)
	msg = append(msg, 2, 1) // option: target link-layer address, 8 bytes
	msg = append(msg, GuestMAC(g.IP)...)
	to := &unix.SockaddrInet6{Addr: [16]byte{0: 0xff, 1: 0x02, 15: 0x01}, ZoneId: uint32(ifindex)}
	_ = unix.Sendto(fd, msg, 0, to)
}
