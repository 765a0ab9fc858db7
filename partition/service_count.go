package partition

import (
	"net/netip"
	"slices"

	"github.com/google/nftables"
	"github.com/pontoon-dev/pontoon/internal/nftwire"
	"github.com/pontoon-dev/pontoon/netsetup"
)

// What the partition stops of service connections is counted per service and pair: keyed by
// the connection's mark, which names the service, and the packet's two addresses, so that
// services sharing a member count apart. An element lasts while its pair is blocked, as the
// partition's own counters do (pruneCounters): the change that unblocks the pair removes it,
// in the change's own transaction.

// stoppedKeys are the address pairs (source, then destination, as one string) under which the
// service packets of blocked pairs are counted, for the pairs blocked: a client's first
// packet to a member once translated, its later ones to the service's address before, and a
// member's to the client's alias.
func stoppedKeys(spec *serviceSpec, fams []family, byName map[string]Guest, blocked []Pair) map[string]bool {
	keep := map[string]bool{}
	pair := func(a, b netip.Addr) { keep[string(a.AsSlice())+string(b.AsSlice())] = true }
	for _, p := range blocked {
		a, b := byName[p.Src], byName[p.Dst]
		for _, f := range fams {
			x, y := f.addr(a), f.addr(b)
			if !x.IsValid() || !y.IsValid() {
				continue
			}
			pair(x, y)
			pair(x, spec.plan.ClientAlias(y))
			for _, s := range spec.services {
				if vip := f.svc(s); vip.IsValid() && slices.Contains(s.Members, p.Dst) {
					pair(x, vip)
				}
			}
		}
	}
	return keep
}

// stoppedSet reports whether a counter set of the service table counts stopped packets.
func stoppedSet(name string) bool {
	return name == ServiceDropped || name == ServiceRejected || name == ServiceDropped6 || name == ServiceRejected6
}

// queueStoppedPrune queues, into the change's batch, the removal of the stopped counters
// whose pair the change leaves unblocked. A set it cannot read (none yet) is left: the next
// change prunes what this one misses.
func queueStoppedPrune(c *nftables.Conn, t *nftables.Table, sr *serviceRules) error {
	var keep map[string]bool
	for _, name := range sr.counters {
		if !stoppedSet(name) {
			continue
		}
		set := serviceSet(t, name)
		els, err := nftwire.SetElementsOnce(c, set)
		if err != nil {
			continue
		}
		if len(els) > 0 && keep == nil {
			keep = sr.stoppedKeep()
		}
		var stale []nftables.SetElement
		for _, el := range els {
			if len(el.Key) < 4 || !keep[string(el.Key[4:])] {
				stale = append(stale, nftables.SetElement{Key: el.Key})
			}
		}
		for chunk := range slices.Chunk(stale, elemChunk) {
			if err := c.SetDeleteElements(set, chunk); err != nil {
				return err
			}
		}
	}
	return nil
}

// stoppedFor sums the stopped packets of s, per pair of guests (a refusal at the service's
// address counted for the client and the service's name).
func stoppedFor(s netsetup.Service, sets map[string][]nftables.SetElement, byAddr map[netip.Addr]string) []PairCounters {
	var out []PairCounters
	at := func(src, dst string) *PairCounters {
		for i := range out {
			if out[i].Src == src && out[i].Dst == dst {
				return &out[i]
			}
		}
		out = append(out, PairCounters{Src: src, Dst: dst})
		return &out[len(out)-1]
	}
	mark := serviceMark(s)
	for _, name := range []string{ServiceDropped, ServiceRejected, ServiceDropped6, ServiceRejected6} {
		for _, el := range sets[name] {
			if el.Counter == nil || len(el.Key) < 4 || (len(el.Key)-4)%2 != 0 || serviceOf(nativeU32(el.Key[:4])) != mark {
				continue
			}
			addrs := el.Key[4:]
			n := len(addrs) / 2
			x, _ := netip.AddrFromSlice(addrs[:n])
			y, _ := netip.AddrFromSlice(addrs[n:])
			src, dst := byAddr[x], byAddr[y]
			if y == s.IP || (s.IP6.IsValid() && y == s.IP6) {
				dst = s.Name // refused by the service for a member src could not reach
			}
			if src == "" || dst == "" {
				continue
			}
			c := Count{Packets: el.Counter.Packets, Bytes: el.Counter.Bytes}
			p := at(src, dst)
			if name == ServiceRejected || name == ServiceRejected6 {
				p.Rejected.add(c)
			} else {
				p.Dropped.add(c)
			}
		}
	}
	return out
}
