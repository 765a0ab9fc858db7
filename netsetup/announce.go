package netsetup

import (
	"bytes"
	"net"
	"net/netip"
	"time"

	"github.com/google/nftables"
	"github.com/pontoon-dev/pontoon/internal/nftpool"
	"github.com/pontoon-dev/pontoon/internal/nftrule"
	"github.com/pontoon-dev/pontoon/internal/nftwire"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// A peer that sent to an address before its guest was attached (a sibling started at the
// same time, or the bridge's own stack) holds an incomplete neighbour entry, which the kernel
// asks again for only a second later (neigh retrans_time_ms); its packets wait in that entry
// meanwhile. An attach makes the new guest known to such peers once its queue is active and
// the bridge forwards through its port:
//
//   - the bridge's own entries (for the host's port forwards, other bridges' guests, the
//     name server) are set to the guest's MAC directly, one netlink request whatever waits:
//     the MAC follows from the address, and port security holds the guest to it;
//   - the guest announces itself to the other guests only when one of them asked for its
//     address lately. An announcement floods every port of the bridge, and each guest that
//     receives it looks it up: for the 200th guest of a bridge, half its attach.
//
// Who asked is kept by the bridge's table: prerouting, ahead of port security, records the
// target of every ARP request and neighbour solicitation from a guest port in a dynamic set
// (asked, asked6), for as long as an incomplete entry keeps asking. The record is made before
// the bridge floods the request, so a request that the new port missed is in the set by the
// time the port forwards, which is when the attach reads it. Both sets are bounded by their
// keys, so no guest can fill them and hide another's question: asked holds addresses of the
// bridge's /24 only, and asked6 the last byte of a target (a byte shared with another
// address costs an announcement that was not needed, nothing else).
const (
	askedSet  = "asked"
	asked6Set = "asked6"
	// askedFor is how long a question counts: an incomplete entry asks mcast_solicit (3)
	// times, a second apart, and each question restarts the element's timeout.
	askedFor = 3 * time.Second
)

// oneByte is the key type of a set keyed by a one-byte raw field.
var oneByte = func() nftables.SetDatatype { t := nftables.TypeInteger; t.Bytes = 1; return t }()

// askedSets are the dynamic sets of questions, IPv6's with an IPv6 plan.
func askedSets(plan Plan) []setSpec {
	sets := []setSpec{{name: askedSet, types: []nftables.SetDatatype{nftables.TypeIPAddr}, room: 256, timeout: askedFor}}
	if plan.IPv6() {
		sets = append(sets, setSpec{name: asked6Set, types: []nftables.SetDatatype{oneByte}, typeOf: nftrule.KeyNDTargetLast.Text,
			room: 256, timeout: askedFor})
	}
	return sets
}

// askedARP and askedND record the questions, ahead of the rules that accept ARP and
// neighbour discovery; they decide nothing.
func askedARP(plan Plan) nftrule.Rule {
	return nftrule.Rule{nftrule.Protocol("arp", unix.ETH_P_ARP), nftrule.ARPRequest(), nftrule.ARPTargetIn(plan.GuestNet()),
		nftrule.Update(&nftables.Set{Name: askedSet}, nftrule.KeyARPTargetIP)}
}

func askedND() nftrule.Rule {
	return nftrule.Rule{nftrule.Protocol("ip6", unix.ETH_P_IPV6), nftrule.ICMPv6Type(nftrule.ICMPv6NeighborSolicit),
		nftrule.Update(&nftables.Set{Name: asked6Set}, nftrule.KeyNDTargetLast)}
}

// announce makes the guest known to whoever waits for it (see above). It is best effort:
// without it the peers' own retry still finds the guest.
func announce(brH, gH *handle, brIndex int, plan Plan, g *Guest) {
	mac := GuestMAC(g.IP)
	for _, ip := range []netip.Addr{g.IP, g.IP6} {
		if ip.IsValid() {
			// Stale: usable at once, and confirmed by the kernel's own probe when next used.
			_ = brH.NeighSet(&netlink.Neigh{LinkIndex: brIndex, Family: family(ip), State: netlink.NUD_STALE,
				IP: net.IP(ip.AsSlice()), HardwareAddr: mac})
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

func family(ip netip.Addr) int {
	if ip.Is4() {
		return unix.AF_INET
	}
	return unix.AF_INET6
}

// asked reports for each of the guest's addresses whether a peer asked for it lately. When it
// cannot tell (a bridge made before these sets, an error), it says yes: an announcement too
// many costs a flood, one too few a second's wait.
func asked(brPath string, g *Guest) (v4, v6 bool) {
	v4, v6 = true, g.IP6.IsValid()
	tbl := &nftables.Table{Family: nftables.TableFamilyBridge, Name: TableName}
	a4, a6 := g.IP.As4(), g.IP6.As16()
	_ = nftpool.With(brPath, func(c *nftables.Conn) error {
		var err error
		if v4, err = holds(c, tbl, askedSet, a4[:]); err != nil {
			v4 = true
			return err
		}
		if v6 {
			if v6, err = holds(c, tbl, asked6Set, a6[15:]); err != nil {
				v6 = true
			}
		}
		return err
	})
	return v4, v6
}

// holds reports whether the set of tbl holds key.
func holds(c *nftables.Conn, tbl *nftables.Table, set string, key []byte) (bool, error) {
	els, err := nftwire.SetElementsOnce(c, &nftables.Set{Table: tbl, Name: set})
	for _, e := range els {
		if bytes.Equal(e.Key, key) {
			return true, nil
		}
	}
	return false, err
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
