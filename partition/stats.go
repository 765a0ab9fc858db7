package partition

import (
	"fmt"
	"net/netip"
	"slices"

	"github.com/google/nftables"
	"github.com/pontoon-dev/pontoon/internal/nftpool"
	"github.com/pontoon-dev/pontoon/internal/nftrule"
	"github.com/pontoon-dev/pontoon/internal/nftwire"
	"github.com/pontoon-dev/pontoon/netsetup"
)

// What the partition and the impairments did, read back from the kernel (how the table
// counts: stats_rules.go).

// Count is packets and their bytes.
type Count struct {
	Packets uint64 `json:"packets"`
	Bytes   uint64 `json:"bytes"`
}

func (c *Count) add(o Count) { c.Packets += o.Packets; c.Bytes += o.Bytes }

// Zero reports whether nothing was counted.
func (c Count) Zero() bool { return c.Packets == 0 && c.Bytes == 0 }

// PairCounters is what the partition did to the packets of one blocked pair since the pair
// was blocked (BlockedPair.Since).
type PairCounters struct {
	Src string `json:"src"`
	Dst string `json:"dst"`
	// Dropped counts packets lost where they entered the bridge or where they would have
	// left it; Rejected those answered with a TCP reset or an ICMP error (reject mode, and
	// segments of connections open before a cut).
	Dropped  Count `json:"dropped"`
	Rejected Count `json:"rejected"`
}

// Total is everything the partition stopped from Src to Dst.
func (p PairCounters) Total() Count {
	t := p.Dropped
	t.add(p.Rejected)
	return t
}

// ImpairmentCounters is what one impairment did, read from the kernel.
type ImpairmentCounters struct {
	// Target is the impairment's Target(): "guest a" or "a->b".
	Target string `json:"target"`
	// Lost counts packets its loss setting dropped since the impairment was set.
	Lost Count `json:"lost"`
	// Shaped counts packets sent through its traffic-control classes (rate and netem
	// settings) since the shaping of the device was last set up; QueueDrops those the
	// classes dropped (a full queue) and Overlimits how often a packet had to wait for its
	// rate. Delayed counts packets through its netem qdiscs (delay, jitter, duplicate,
	// corrupt, reorder).
	Shaped     Count  `json:"shaped"`
	QueueDrops uint64 `json:"queue_drops,omitempty"`
	Overlimits uint64 `json:"overlimits,omitempty"`
	Delayed    Count  `json:"delayed"`
}

// Counters is what the bridge's partition and impairments did, as the kernel counts it.
type Counters struct {
	// Blocked lists the blocked pairs that saw packets, in the order of the record's
	// pairs; a blocked pair not listed saw none.
	Blocked []PairCounters `json:"blocked"`
	// Impairments has one entry per impairment, in the record's order.
	Impairments []ImpairmentCounters `json:"impairments"`
	// Unattributed counts frames the partition dropped whose sender is no guest of the
	// bridge (a MAC no guest has: the bridge's own address routing for a guest).
	Unattributed Count `json:"unattributed"`
	// Detail says what could not be read, if anything.
	Detail string `json:"detail,omitempty"`
}

// Pair returns the counters of the pair src->dst (zero when it saw nothing).
func (c Counters) Pair(src, dst string) PairCounters {
	for _, p := range c.Blocked {
		if p.Src == src && p.Dst == dst {
			return p
		}
	}
	return PairCounters{Src: src, Dst: dst}
}

// PairFinder is Pair for many lookups: it indexes the pairs once, so that listing every
// blocked pair of a large partition (32,004 for random halves of 253 guests) does not
// scan the list once per pair.
func (c Counters) PairFinder() func(src, dst string) PairCounters {
	index := make(map[[2]string]int, len(c.Blocked))
	for i, p := range c.Blocked {
		index[[2]string{p.Src, p.Dst}] = i
	}
	return func(src, dst string) PairCounters {
		if i, ok := index[[2]string{src, dst}]; ok {
			return c.Blocked[i]
		}
		return PairCounters{Src: src, Dst: dst}
	}
}

// Impairment returns the counters of the impairment with the given Target ("guest a",
// "a->b").
func (c Counters) Impairment(target string) ImpairmentCounters {
	for _, im := range c.Impairments {
		if im.Target == target {
			return im
		}
	}
	return ImpairmentCounters{Target: target}
}

// TotalBlocked is everything the partition stopped, over all pairs.
func (c Counters) TotalBlocked() Count {
	var t Count
	for _, p := range c.Blocked {
		t.add(p.Total())
	}
	return t
}

// Stats reads from the kernel what the bridge's partition and impairments did: per blocked
// pair, the packets dropped and rejected since the pair was blocked, and per impairment the
// packets lost, shaped and delayed. A bridge with nothing applied has empty counters.
func Stats(t Target) (Counters, error) {
	if err := t.check(); err != nil {
		return Counters{}, err
	}
	st, _, err := readStatus(t.StateDir)
	if err != nil {
		return Counters{}, err
	}
	return readCounters(t.NetnsPath, st, t.Guests)
}

// counterKey is a counter set element's key, decoded.
type counterKey struct {
	port, port2 string
	ip          netip.Addr
	mac         string
}

// readCounterSets reads every counter set of the backend's table; a set that does not exist
// (nothing applied, or a table of an older layout) reads as empty.
func readCounterSets(nsPath string, b Backend) (map[string]map[counterKey]Count, error) {
	out := map[string]map[counterKey]Count{}
	t := nftTable(b)
	err := nftpool.With(nsPath, func(c *nftables.Conn) error {
		have, err := counterSetsOf(c, t)
		if err != nil {
			return err
		}
		for _, name := range have {
			els, err := nftwire.SetElements(c, counterSet(t, name))
			if err != nil {
				return fmt.Errorf("read counter set %s of table %s %s: %w", name, b.Family(), TableName, err)
			}
			m := map[counterKey]Count{}
			for _, el := range els {
				if el.Counter == nil {
					continue
				}
				m[decodeCounterKey(name, el.Key)] = Count{Packets: el.Counter.Packets, Bytes: el.Counter.Bytes}
			}
			out[name] = m
		}
		return nil
	})
	return out, err
}

// subsetPairs reports whether every pair of a is in b; both are sorted by pair.
func subsetPairs(a, b []BlockedPair) bool {
	j := 0
	for _, p := range a {
		for j < len(b) && comparePairs(Pair{b[j].Src, b[j].Dst}, Pair{p.Src, p.Dst}) < 0 {
			j++
		}
		if j == len(b) || b[j].Src != p.Src || b[j].Dst != p.Dst {
			return false
		}
	}
	return true
}

// counterSetsOf lists the counter sets table t has.
func counterSetsOf(c *nftables.Conn, t *nftables.Table) ([]string, error) {
	sets, err := c.GetSets(t)
	if err != nil {
		return nil, fmt.Errorf("list the sets of table %s %s: %w", nftrule.FamilyName(t.Family), t.Name, err)
	}
	var out []string
	for _, s := range sets {
		if slices.Contains(counterSets, s.Name) {
			out = append(out, s.Name)
		}
	}
	return out, nil
}

func ifnameOf(b []byte) string {
	if i := slices.Index(b, 0); i >= 0 {
		b = b[:i]
	}
	return string(b)
}

func decodeCounterKey(set string, k []byte) counterKey {
	var key counterKey
	switch set {
	case CountDroppedOut:
		if len(k) >= 8+16 {
			key.mac = fmt.Sprintf("%x", k[:6])
			key.port = ifnameOf(k[8:24])
		}
	case CountLostFrom, CountLostTo:
		key.port = ifnameOf(k)
	case CountDropped6, CountRejected6, CountLostPair6:
		if len(k) >= 16+16 {
			key.port = ifnameOf(k[:16])
			key.ip = netip.AddrFrom16([16]byte(k[16:32]))
		}
	default:
		if len(k) >= 16+4 {
			key.port = ifnameOf(k[:16])
			key.ip = netip.AddrFrom4([4]byte(k[16:20]))
		}
	}
	return key
}

// guestIndex finds guests by port, address (IPv4 or IPv6) and MAC.
type guestIndex struct {
	byPort, byIP, byMAC map[string]string
}

func indexGuests(guests []Guest) guestIndex {
	x := guestIndex{byPort: map[string]string{}, byIP: map[string]string{}, byMAC: map[string]string{}}
	for _, g := range guests {
		x.byPort[g.Port] = g.Name
		x.byIP[g.IP.String()] = g.Name
		if g.IP6.IsValid() {
			x.byIP[g.IP6.String()] = g.Name
		}
		// Peers reach a guest by its link-local address too, which partitions cover: what
		// they stop on its way there is the pair's, not traffic from no guest.
		if ll := linkLocal6(g); ll.IsValid() {
			x.byIP[ll.String()] = g.Name
		}
		x.byMAC[fmt.Sprintf("%x", []byte(netsetup.GuestMAC(g.IP)))] = g.Name
	}
	return x
}

// readCounters reads the counters of what st records as applied.
func readCounters(nsPath string, st Record, guests []Guest) (Counters, error) {
	c := Counters{Blocked: []PairCounters{}, Impairments: []ImpairmentCounters{}}
	if nsPath == "" {
		return c, nil
	}
	x := indexGuests(guests)
	var sets map[string]map[counterKey]Count
	if st.Table {
		var err error
		if sets, err = readCounterSets(nsPath, st.Backend); err != nil {
			return c, err
		}
	}
	pairs := map[Pair]*PairCounters{}
	pair := func(src, dst string) *PairCounters {
		p := pairs[Pair{src, dst}]
		if p == nil {
			p = &PairCounters{Src: src, Dst: dst}
			pairs[Pair{src, dst}] = p
		}
		return p
	}
	// A pair's IPv6 packets add to its IPv4 ones: the pair is blocked on both families.
	for _, name := range []string{CountDropped, CountRejected, CountDropped6, CountRejected6} {
		for k, n := range sets[name] {
			src, dst := x.byPort[k.port], x.byIP[k.ip.String()]
			switch {
			case src == "" || dst == "":
				c.Unattributed.add(n)
			case name == CountDropped || name == CountDropped6:
				pair(src, dst).Dropped.add(n)
			default:
				pair(src, dst).Rejected.add(n)
			}
		}
	}
	for k, n := range sets[CountDroppedOut] {
		src, dst := x.byMAC[k.mac], x.byPort[k.port]
		if src == "" || dst == "" {
			c.Unattributed.add(n)
			continue
		}
		pair(src, dst).Dropped.add(n)
	}
	for _, b := range st.Blocked {
		if p := pairs[Pair{b.Src, b.Dst}]; p != nil {
			c.Blocked = append(c.Blocked, *p)
			delete(pairs, Pair{b.Src, b.Dst})
		}
	}
	// What the kernel counted for pairs the record does not block (a table edited by
	// hand) is shown too: status shows what the kernel does.
	var rest []PairCounters
	for _, p := range pairs {
		rest = append(rest, *p)
	}
	slices.SortFunc(rest, func(a, b PairCounters) int { return comparePairs(Pair{a.Src, a.Dst}, Pair{b.Src, b.Dst}) })
	c.Blocked = append(c.Blocked, rest...)

	port := map[string]string{}
	ip := map[string]string{}
	ip6 := map[string]netip.Addr{}
	for _, g := range guests {
		port[g.Name], ip[g.Name], ip6[g.Name] = g.Port, g.IP.String(), g.IP6
	}
	tc, tcErr := readShapingCounters(nsPath, st.Shaping)
	for _, im := range st.Impairments {
		ic := ImpairmentCounters{Target: im.Target()}
		if im.Guest != "" {
			ic.Lost.add(sets[CountLostFrom][counterKey{port: port[im.Guest]}])
			ic.Lost.add(sets[CountLostTo][counterKey{port: port[im.Guest]}])
		} else if a, err := netip.ParseAddr(ip[im.Dst]); err == nil {
			ic.Lost.add(sets[CountLostPair][counterKey{port: port[im.Src], ip: a}])
			if a6 := ip6[im.Dst]; a6.IsValid() {
				ic.Lost.add(sets[CountLostPair6][counterKey{port: port[im.Src], ip: a6}])
			}
		}
		// A port's default class also carries what no pair class takes when only pair
		// impairments shape it: it is the guest's only when the guest's impairment shapes.
		if s, ok := tc[im.Target()]; ok && (im.Guest == "" || im.Rate > 0 || im.NeedsNetem()) {
			ic.Shaped, ic.Delayed, ic.QueueDrops, ic.Overlimits = s.Shaped, s.Delayed, s.QueueDrops, s.Overlimits
		}
		c.Impairments = append(c.Impairments, ic)
	}
	if tcErr != nil {
		c.Detail = tcErr.Error()
	}
	return c, nil
}

// pruneCounters deletes the counter elements that no longer count for anything in force:
// those of pairs st no longer blocks and of loss settings that changed or ended, so a pair
// blocked again, or a loss set anew, counts from zero. It records in st the counter sets the
// table holds, and reads only those that can hold such elements.
func pruneCounters(nsPath string, prev Record, st *Record, rs RuleSet, guests []Guest) error {
	if !st.Table {
		return nil
	}
	same := prev.Table && prev.Backend == st.Backend // else the table is new
	have := rs.counted()
	if same {
		for _, name := range prev.CounterSets {
			if !slices.Contains(have, name) {
				have = append(have, name)
			}
		}
	}
	st.CounterSets = have
	if !same || !countersOn() {
		return nil
	}
	// Both lists are sorted by pair: a random halves of 253 guests is 32,000 pairs, which
	// hashing would spend milliseconds on.
	blocked := func(p Pair) bool {
		_, ok := slices.BinarySearchFunc(st.Blocked, p, func(b BlockedPair, p Pair) int { return comparePairs(Pair{b.Src, b.Dst}, p) })
		return ok
	}
	unblocked := !subsetPairs(prev.Blocked, st.Blocked)
	keepLoss := map[string]bool{}
	for _, im := range st.Impairments {
		if im.Loss > 0 && slices.ContainsFunc(prev.Impairments, func(p Impairment) bool { return p.Target() == im.Target() && p.Since.Equal(im.Since) }) {
			keepLoss[im.Target()] = true
		}
	}
	lossEnded := slices.ContainsFunc(prev.Impairments, func(p Impairment) bool { return p.Loss > 0 && !keepLoss[p.Target()] })
	var sets []string
	for _, name := range prev.CounterSets {
		switch name {
		case CountDropped, CountRejected, CountDroppedOut, CountDropped6, CountRejected6:
			if unblocked {
				sets = append(sets, name)
			}
		default:
			if lossEnded {
				sets = append(sets, name)
			}
		}
	}
	if len(sets) == 0 {
		return nil
	}
	x := indexGuests(guests)
	keep := func(set string, k counterKey) bool {
		switch set {
		case CountDropped, CountRejected, CountDropped6, CountRejected6:
			return blocked(Pair{x.byPort[k.port], x.byIP[k.ip.String()]})
		case CountDroppedOut:
			return blocked(Pair{x.byMAC[k.mac], x.byPort[k.port]})
		case CountLostPair, CountLostPair6:
			return keepLoss[x.byPort[k.port]+"->"+x.byIP[k.ip.String()]]
		default:
			return keepLoss["guest "+x.byPort[k.port]]
		}
	}
	t := nftTable(st.Backend)
	return nftpool.WithConn(nsPath, func(w *nftwire.Conn) error {
		c := w.Conn
		w.ForgetGen()
		queued := false
		for _, name := range sets {
			set := counterSet(t, name)
			// One read: a counter it misses stays until the next change prunes it.
			els, err := nftwire.SetElementsOnce(c, set)
			if err != nil {
				return fmt.Errorf("read counter set %s: %w", name, err)
			}
			var stale []nftables.SetElement
			for _, el := range els {
				if !keep(name, decodeCounterKey(name, el.Key)) {
					stale = append(stale, nftables.SetElement{Key: el.Key})
				}
			}
			for chunk := range slices.Chunk(stale, elemChunk) {
				if err := c.SetDeleteElements(set, chunk); err != nil {
					return fmt.Errorf("queue the removal of stale counters of %s: %w", name, err)
				}
				queued = true
			}
		}
		if !queued {
			return nil
		}
		// A transaction of pontoon's own: the next change still finds the chains as the
		// last one left them (see genKey), unless something else was committed since it.
		recorded, ok := recordedGen(c, t)
		gen, seen := w.SeenGen() // as of the marker set's listing, the last one
		if err := queueGen(c, t, gen+1, ok && seen && recorded == gen); err != nil {
			return err
		}
		if err := flush(c); err != nil {
			return fmt.Errorf("remove stale counters in %q: %w", nsPath, err)
		}
		return nil
	})
}
