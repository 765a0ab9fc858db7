package netsetup

import (
	"fmt"
	"net"
	"net/netip"

	"github.com/google/nftables"
	"github.com/pontoon-dev/pontoon/internal/nftpool"
	"github.com/pontoon-dev/pontoon/internal/nftrule"
	"github.com/pontoon-dev/pontoon/internal/nftwire"
	"golang.org/x/sys/unix"
)

// IPv6 port security extends the MAC-to-IP binding to IPv6 and to neighbour discovery, the
// IPv6 counterpart of ARP. A guest's IPv6 addresses are bound to its MAC like its IPv4 one:
// the set guests6 pairs each MAC of the plan with the IPv6 address derived from its IPv4
// address and with its EUI-64 link-local address (static, like guests), and a guest given an
// address of its own gets that pair in place of its derived one while it is attached.
//
// From a guest port, then:
//   - IPv6 passes only from a source address bound to the Ethernet source (the link-local
//     address of a MAC is bound to it, and the unspecified address to none: there is no
//     duplicate address detection to send from it);
//   - a neighbour advertisement passes only for a target bound to the Ethernet source (a
//     guest announces only its own addresses), and a solicitation only from a bound source;
//     either may carry only the one link-layer address option, naming the Ethernet source
//     (Linux keeps the first of duplicated options, so a second one could name another MAC:
//     none is allowed);
//   - router solicitations, advertisements and redirects never pass: routes are static, and
//     a guest must not become anyone's router.

// The sets of IPv6 port security. guests6 pairs each MAC with the IPv6 addresses its guest
// may send from; ndTargets6 holds the same pairs keyed for a neighbour message's target, and
// ndMACs6 each MAC with itself, keyed for a link-layer address option: nft(8) compares a raw
// payload field (an ND target or option) only with a set declared by the same raw key.
const (
	guest6Set   = "guests6"
	ndTarget6   = "ndtargets6"
	ndMAC6Set   = "ndmacs6"
	ndTargetKey = "ether saddr . @th,64,128"
	ndMACKey    = "ether saddr . @th,208,48"
)

func guest6Elem(mac net.HardwareAddr, ip netip.Addr) setElem {
	a := ip.As16()
	return setElem{key: nftrule.ConcatKey(mac, a[:]), text: macAndAddr}
}

func showNDTarget(key []byte) string { return macAndRaw(16)(key) }
func showNDMAC(key []byte) string    { return macAndRaw(6)(key) }

func ndTarget6Elem(mac net.HardwareAddr, ip netip.Addr) setElem {
	a := ip.As16()
	return setElem{key: nftrule.ConcatKey(mac, a[:]), text: showNDTarget}
}

// guest6Sets are the static sets: for every guest address of the plan, its MAC with its
// derived and its link-local IPv6 address, and with itself.
func guest6Sets(plan Plan) []setSpec {
	first, last, _, _ := GuestRange(plan.GuestNet())
	// A guest given an IPv6 address of its own (not derived from its IPv4 one) adds it to
	// pairs and targets when it attaches: one per guest address at most, and as many again
	// for elements of guests whose removal has not been finished yet (gc does).
	room := 2 * (int(last.As4()[3]) - int(first.As4()[3]) + 1)
	pairs := setSpec{name: guest6Set, types: []nftables.SetDatatype{nftables.TypeEtherAddr, nftables.TypeIP6Addr}, room: room,
		elems: make([]setElem, 0, room)}
	targets := setSpec{name: ndTarget6, types: pairs.types, typeOf: ndTargetKey, room: room, elems: make([]setElem, 0, room)}
	macs := setSpec{name: ndMAC6Set, types: []nftables.SetDatatype{nftables.TypeEtherAddr, nftables.TypeEtherAddr}, typeOf: ndMACKey,
		elems: make([]setElem, 0, room/2)}
	for ip := first; !last.Less(ip); ip = ip.Next() {
		mac := GuestMAC(ip)
		for _, a := range []netip.Addr{plan.GuestIP6(ip), LinkLocal6(mac)} {
			pairs.elems = append(pairs.elems, guest6Elem(mac, a))
			targets.elems = append(targets.elems, ndTarget6Elem(mac, a))
		}
		macs.elems = append(macs.elems, setElem{key: nftrule.ConcatKey(mac, mac), text: showNDMAC})
	}
	return []setSpec{pairs, targets, macs}
}

// portRules6 are the prerouting rules for IPv6 from guest ports (see above); anything they
// do not accept meets the chain's final drop.
func portRules6() []nftrule.Rule {
	g6 := &nftables.Set{Name: guest6Set}
	ip6 := nftrule.EtherType("ip6", unix.ETH_P_IPV6)
	fromBound := nftrule.InSet(g6, nftrule.KeyEtherSaddr, nftrule.KeyIP6Saddr)
	na, ns := nftrule.ICMPv6Type(nftrule.ICMPv6NeighborAdvert), nftrule.ICMPv6Type(nftrule.ICMPv6NeighborSolicit)
	ownTarget := nftrule.InSet(&nftables.Set{Name: ndTarget6}, nftrule.KeyEtherSaddr, nftrule.KeyNDTarget)
	ownOption := nftrule.InSet(&nftables.Set{Name: ndMAC6Set}, nftrule.KeyEtherSaddr, nftrule.KeyNDOptMAC)
	var rules []nftrule.Rule
	for _, t := range []byte{nftrule.ICMPv6RouterSolicit, nftrule.ICMPv6RouterAdvert, nftrule.ICMPv6Redirect} {
		rules = append(rules, nftrule.Rule{ip6, nftrule.ICMPv6Type(t), nftrule.Drop()})
	}
	return append(rules,
		nftrule.Rule{ip6, na, fromBound, ownTarget, nftrule.NDBare(), nftrule.Accept()},
		nftrule.Rule{ip6, na, fromBound, ownTarget, nftrule.NDOneLinkAddr(nftrule.NDOptTargetLinkAddr), ownOption, nftrule.Accept()},
		nftrule.Rule{ip6, na, nftrule.Drop()},
		// A rule of its own: a record that fails (a full set) ends its rule, and must not
		// take a solicitation's acceptance with it.
		nftrule.Rule{ip6, ns, askedND()},
		nftrule.Rule{ip6, ns, fromBound, nftrule.NDBare(), nftrule.Accept()},
		nftrule.Rule{ip6, ns, fromBound, nftrule.NDOneLinkAddr(nftrule.NDOptSourceLinkAddr), ownOption, nftrule.Accept()},
		nftrule.Rule{ip6, ns, nftrule.Drop()},
		nftrule.Rule{ip6, fromBound, nftrule.Accept()},
	)
}

// ownIP6 reports whether a guest's IPv6 address is one it was given rather than the one
// derived from its IPv4 address: only those have an element of their own in guests6.
func ownIP6(plan Plan, g Guest) bool {
	return g.IP6.IsValid() && plan.IPv6() && g.IP6 != plan.GuestIP6(g.IP)
}

// boundElem is an element of one of the bridge's sets.
type boundElem struct {
	set  string
	elem setElem
}

// ownIP6Elems are the elements that bind a guest's own IPv6 address (see ownIP6) to its MAC.
func ownIP6Elems(g Guest) []boundElem {
	mac := GuestMAC(g.IP)
	return []boundElem{{guest6Set, guest6Elem(mac, g.IP6)}, {ndTarget6, ndTarget6Elem(mac, g.IP6)}}
}

// derivedIP6Elems are the static elements that bind the IPv6 address derived from a guest's
// IPv4 one to its MAC: a guest given an address of its own loses them while it is attached,
// or it could send from both.
func derivedIP6Elems(plan Plan, g Guest) []boundElem {
	mac, derived := GuestMAC(g.IP), plan.GuestIP6(g.IP)
	return []boundElem{{guest6Set, guest6Elem(mac, derived)}, {ndTarget6, ndTarget6Elem(mac, derived)}}
}

// bindIP6 binds a guest's own IPv6 address to its MAC in guests6 and ndtargets6, in place of
// its derived one, in the bridge namespace of brH; unbind puts the derived one back. Each
// element is added before it is deleted in the same batch, so that one there already, or gone
// already, is fine: gc and a retried attach may repeat either. It goes through the pooled
// connection: after a removal, the close of a fresh socket would wait for the kernel (nftpool).
func bindIP6(brH *handle, plan Plan, g Guest, unbind bool) error {
	if !ownIP6(plan, g) {
		return nil
	}
	tbl := &nftables.Table{Family: nftables.TableFamilyBridge, Name: TableName}
	what := "add"
	if unbind {
		what = "remove"
	}
	// Either way an element is deleted: the close of the connection waits for the kernel
	// unless the pool holds it (nftpool).
	nftpool.MarkRemoved()
	var flushErr error
	err := nftpool.With(brH.path, func(c *nftables.Conn) error {
		keep, drop := ownIP6Elems(g), derivedIP6Elems(plan, g)
		if unbind {
			keep, drop = drop, keep
		}
		sets := map[string]*nftables.Set{}
		for _, e := range append(keep, drop...) {
			if sets[e.set] != nil {
				continue
			}
			set, err := c.GetSetByName(tbl, e.set)
			if err != nil {
				return fmt.Errorf("find set %s in %s: %w", e.set, brH.path, err)
			}
			sets[e.set] = set
		}
		for _, e := range keep {
			if err := c.SetAddElements(sets[e.set], nftElems([]setElem{e.elem})); err != nil {
				return err
			}
		}
		for _, e := range drop {
			if err := c.SetAddElements(sets[e.set], nftElems([]setElem{e.elem})); err != nil {
				return err
			}
			if err := c.SetDeleteElements(sets[e.set], nftElems([]setElem{e.elem})); err != nil {
				return err
			}
		}
		flushErr = nftwire.Flush(c)
		return flushErr
	})
	switch {
	case err == nil:
		return nil
	case flushErr == nil:
		return err // before the batch: the namespace, the connection or the table's sets
	}
	return fmt.Errorf("%s %s . %s in sets %s and %s: %w", what, GuestMAC(g.IP), g.IP6, guest6Set, ndTarget6, err)
}

// rebindOwnIP6 binds again the own IPv6 addresses of b's ready guests, in place of their
// derived ones: a guest attached by an older pontoon has both bound, which the check reports,
// and gc puts right. A batch per such guest, each a no-op when it is bound already. The
// caller holds the state lock.
func rebindOwnIP6(env Env, st store, b *BridgeState) error {
	plan, _, err := readyGateway(st)
	if err != nil || b.Phase != PhaseReady {
		return nil
	}
	var own []Guest
	for _, g := range b.Guests {
		if g.Phase == PhaseReady && ownIP6(plan, g) {
			own = append(own, g)
		}
	}
	if len(own) == 0 {
		return nil
	}
	h := ownHandle(env.BridgeNetns(b.Name), b.NetnsID)
	if h == nil {
		return nil
	}
	defer h.Close()
	for _, g := range own {
		if err := bindIP6(h, plan, g, false); err != nil {
			return err
		}
	}
	return nil
}
