package partition

import (
	"encoding/binary"
	"fmt"
	"hash/fnv"
	"net/netip"
	"slices"

	"github.com/google/nftables"
	"github.com/pontoon-dev/pontoon/internal/nftrule"
	"github.com/pontoon-dev/pontoon/netsetup"
)

// Service addresses (netsetup.Service) are NAT rules in the bridge namespace's IP layer, in
// the table ServiceTable (family inet). They are written in the same transaction as the
// partition table, by every change of the partition and by Refresh, so that a service's
// notion of which members a client can reach (SkipUnreachable) never disagrees with the
// partition in force.
//
// A client's packet to a service address goes to the bridge (its default gateway), which
// picks a member (numgen inc or random over a map of members), marks the connection with the
// service's mark, translates the destination to the member and the source to the client's
// alias (netsetup.Plan.ClientAlias: the member's reply must come back through the bridge to
// be translated back, and on the guests' shared L2 network a reply to the client's own
// address would not), and forwards it out of the member's port, the mark now naming the
// member too (memberMark). Conntrack keeps every later packet of the connection on its
// member.
//
// The partition judges guests where their packets enter and leave the bridge, by address
// and port; a service's packets carry the service address or an alias there. So the rules
// here judge them by the real pair, client and member, in the partition's mode (see judge),
// and count what they stop in the service's own counter sets.

const (
	// ServiceTable is the inet table of the service rules in the bridge namespace.
	ServiceTable = "pontoon_service"
	// ServiceFlows (ServiceFlows6) count the connections each service sent to each member:
	// keyed by the service's connection mark and the member's address.
	ServiceFlows  = "flows"
	ServiceFlows6 = "flows6"
	// ServiceDropped and ServiceRejected (and their IPv6 twins) count service packets the
	// partition stopped, keyed by the connection's mark and the packet's source and
	// destination addresses (see service_count.go).
	ServiceDropped   = "stopped_drop_svc"
	ServiceRejected  = "stopped_reject_svc"
	ServiceDropped6  = "stopped_drop6_svc"
	ServiceRejected6 = "stopped_reject6_svc"
	// serviceBlocked (serviceBlocked6) holds the blocked pairs of the partition in force.
	serviceBlocked  = "blocked"
	serviceBlocked6 = "blocked6"
	// serviceBlockedMark (serviceBlockedMark6) holds them for packets of connections under
	// way: the address of the packet's client end and the connection's mark, which names
	// the service and the member (memberMark).
	serviceBlockedMark  = "blocked_mark"
	serviceBlockedMark6 = "blocked_mark6"
	// serviceMarks (serviceMarks6) maps a service's mark and a member's address to the
	// member's mark, given to a connection once its member is picked.
	serviceMarks  = "marks"
	serviceMarks6 = "marks6"
)

// serviceSpec is what the service rules are compiled from: the chain's plan and the
// bridge's services.
type serviceSpec struct {
	plan     netsetup.Plan
	services []netsetup.Service
}

// bridgeServices returns a bridge's services for the rules, from rec when the guests were
// read from it (the plan is read only when there are services).
func bridgeServices(env netsetup.Env, bridge string, rec *netsetup.BridgeState) (*serviceSpec, error) {
	if rec == nil {
		var err error
		if rec, err = netsetup.BridgeMembers(env, bridge); err != nil {
			return nil, err
		}
	}
	// A service on its way out loses its rules before its record.
	services := slices.DeleteFunc(slices.Clone(rec.Services), func(s netsetup.Service) bool { return s.Removing })
	if len(services) == 0 {
		return &serviceSpec{}, nil
	}
	plan, err := netsetup.CurrentPlan(env)
	if err != nil {
		return nil, err
	}
	return &serviceSpec{plan: plan, services: services}, nil
}

// serviceMark is the connection mark of a service's connections until a member is picked.
// It must differ between the services of a bridge (the member marks, the blocked pairs and
// the counters are keyed by it), and stay the same while the service lives, so that its
// connections keep being counted for it when other services come and go: its address's
// last number (unique on the bridge) does both; a little of its name's hash keeps a later
// service at the same address from taking over the old one's counts. Its low 16 bits are 0,
// its highest is set.
func serviceMark(s netsetup.Service) uint32 {
	h := fnv.New32a()
	h.Write([]byte(s.Name))
	return (h.Sum32()&0x7f|0x80)<<24 | uint32(s.IP.As4()[3])<<16
}

// memberMark is the mark of a service's connection to member g: the service's, and g's
// IPv4 address's last number (which names a guest of the bridge, as its port does).
func memberMark(s netsetup.Service, g Guest) uint32 { return serviceMark(s) | uint32(g.IP.As4()[3]) }

// serviceOf tells the service mark of a connection mark.
func serviceOf(mark uint32) uint32 { return mark &^ 0xffff }

// serviceRules is the compiled service table: nil leaves the table alone (a Target that
// does not know the bridge's services), empty removes it.
type serviceRules struct {
	empty bool
	// loss are the pairs' loss rules of the bridge-family table ServiceTable.
	loss []nftrule.Rule
	// Each set's elements by name: the blocked pairs and the member marks.
	elements map[string][]nftables.SetElement
	chains   []svcChain
	counters []string
	// stoppedKeep gives the address pairs of the stopped counters the change keeps (made
	// only when there are counters to prune).
	stoppedKeep func() map[string]bool
}

type svcChain struct {
	name     string
	typ      nftables.ChainType
	hook     *nftables.ChainHook
	priority *nftables.ChainPriority
	rules    []svcRule
}

// svcRule is a rule, and the member map its DNAT looks up (nil when it has none): the
// rule's matches, then the clients' source addresses (any when nil), then mark.
type svcRule struct {
	rule    nftrule.Rule
	clients []netip.Addr
	mark    nftrule.Match
	members []netip.Addr
	ipv6    bool
	random  bool
}

// svcGroup is the clients that reach the same members.
type svcGroup struct {
	clients []netip.Addr
	members []netip.Addr
}

// reachGroups groups the guests by the members of s each may reach under the blocked pairs
// (vip stands for a member the client cannot send to, unless s skips those; s skips the
// members blocked either way).
func reachGroups(f family, s netsetup.Service, guests []Guest, byName map[string]Guest, isBlocked map[Pair]bool, vip netip.Addr) []svcGroup {
	var out []svcGroup
	index := map[string]int{}
	for _, c := range guests {
		if !f.addr(c).IsValid() {
			continue
		}
		var reach []netip.Addr
		for _, m := range s.Members {
			g, ok := byName[m]
			if !ok || !f.addr(g).IsValid() {
				continue
			}
			// A direct dial of a member that may only not answer the client reaches it:
			// the member's answers are judged (and refused) as a direct one's would be, and
			// the client waits as it would, so only skip_unreachable leaves it out.
			if there, back := isBlocked[Pair{c.Name, m}], isBlocked[Pair{m, c.Name}]; m != c.Name && (there || back && s.SkipUnreachable) {
				if !s.SkipUnreachable {
					reach = append(reach, vip)
				}
				continue
			}
			reach = append(reach, f.addr(g))
		}
		key := fmt.Sprint(reach)
		i, ok := index[key]
		if !ok {
			i = len(out)
			index[key] = i
			out = append(out, svcGroup{members: reach})
		}
		out[i].clients = append(out[i].clients, f.addr(c))
	}
	return out
}

// family is one IP family's view of the rules.
type family struct {
	v6     bool
	proto  string // nfproto name
	l3     nftrule.Match
	addr   func(Guest) netip.Addr
	svc    func(netsetup.Service) netip.Addr
	daddr  func(netip.Addr) nftrule.Match
	keys   [2]nftrule.Key
	blkSet string
	mkSet  string
	marks  string
	flows  string
	drop   string
	reject string
}

func families(plan netsetup.Plan) []family {
	v4 := family{
		proto: "ipv4", addr: func(g Guest) netip.Addr { return g.IP },
		svc:    func(s netsetup.Service) netip.Addr { return s.IP },
		daddr:  func(a netip.Addr) nftrule.Match { return nftrule.Daddr(netip.PrefixFrom(a, a.BitLen())) },
		keys:   [2]nftrule.Key{nftrule.KeyIPSaddr, nftrule.KeyIPDaddr},
		blkSet: serviceBlocked, mkSet: serviceBlockedMark, marks: serviceMarks, flows: ServiceFlows, drop: ServiceDropped, reject: ServiceRejected,
	}
	v4.l3 = nftrule.NFProto(v4.proto)
	if !plan.IPv6() {
		return []family{v4}
	}
	v6 := family{
		v6: true, proto: "ipv6", addr: func(g Guest) netip.Addr { return g.IP6 },
		svc:    func(s netsetup.Service) netip.Addr { return s.IP6 },
		daddr:  nftrule.Daddr6,
		keys:   [2]nftrule.Key{nftrule.KeyIP6Saddr, nftrule.KeyIP6Daddr},
		blkSet: serviceBlocked6, mkSet: serviceBlockedMark6, marks: serviceMarks6, flows: ServiceFlows6, drop: ServiceDropped6, reject: ServiceRejected6,
	}
	v6.l3 = nftrule.NFProto(v6.proto)
	return []family{v4, v6}
}

// compileServices builds the service table for the guests and the partition in force.
func compileServices(spec *serviceSpec, guests []Guest, blocked []Pair, mode Mode, cut bool, imps []Impairment) *serviceRules {
	if spec == nil {
		return nil
	}
	if len(spec.services) == 0 {
		return &serviceRules{empty: true}
	}
	byName := make(map[string]Guest, len(guests))
	for _, g := range guests {
		byName[g.Name] = g
	}
	isBlocked := make(map[Pair]bool, len(blocked))
	for _, p := range blocked {
		isBlocked[p] = true
	}
	member := map[string]bool{}
	for _, s := range spec.services {
		for _, m := range s.Members {
			member[m] = true
		}
	}
	sr := &serviceRules{elements: map[string][]nftables.SetElement{}}
	fams := families(spec.plan)
	add := func(set string, key ...[]byte) {
		sr.elements[set] = append(sr.elements[set], nftables.SetElement{Key: nftrule.ConcatKey(key...)})
	}
	markKey := func(m uint32) []byte { return binary.NativeEndian.AppendUint32(nil, m) }
	for _, f := range fams {
		for _, s := range spec.services {
			for _, m := range s.Members {
				if g, ok := byName[m]; ok && f.addr(g).IsValid() {
					sr.elements[f.marks] = append(sr.elements[f.marks], nftables.SetElement{
						Key: nftrule.ConcatKey(markKey(serviceMark(s)), f.addr(g).AsSlice()), Val: markKey(memberMark(s, g))})
				}
			}
		}
		// Every blocked pair with a member at either end: the first packet of a connection
		// is judged by its addresses once translated, the later ones by the client end's
		// address and the connection's mark (see judge).
		for _, p := range blocked {
			a, b := byName[p.Src], byName[p.Dst]
			x, y := f.addr(a), f.addr(b)
			if !member[p.Src] && !member[p.Dst] || !x.IsValid() || !y.IsValid() {
				continue
			}
			add(f.blkSet, x.AsSlice(), y.AsSlice())
			for _, s := range spec.services {
				if slices.Contains(s.Members, p.Dst) {
					add(f.mkSet, x.AsSlice(), markKey(memberMark(s, b))) // client a to member b
				}
				if slices.Contains(s.Members, p.Src) {
					add(f.mkSet, spec.plan.ClientAlias(y).AsSlice(), markKey(memberMark(s, a))) // member a to client b
				}
			}
		}
	}
	pre := svcChain{name: "prerouting", typ: nftables.ChainTypeNAT, hook: nftables.ChainHookPrerouting, priority: nftables.ChainPriorityNATDest}
	out := svcChain{name: "output", typ: nftables.ChainTypeNAT, hook: nftables.ChainHookOutput, priority: nftables.ChainPriorityNATDest}
	post := svcChain{name: "postrouting", typ: nftables.ChainTypeNAT, hook: nftables.ChainHookPostrouting, priority: nftables.ChainPriorityNATSource}
	fwd := svcChain{name: "forward", typ: nftables.ChainTypeFilter, hook: nftables.ChainHookForward, priority: nftables.ChainPriorityFilter}
	// After conntrack (-200), before the translation (-100).
	jdg := svcChain{name: "judge", typ: nftables.ChainTypeFilter, hook: nftables.ChainHookPrerouting, priority: nftables.ChainPriorityRef(-150)}
	for _, f := range fams {
		clients := spec.plan.ClientNet()
		svcNet := spec.plan.ServiceNet()
		if f.v6 {
			clients, svcNet = spec.plan.ClientNet6(), spec.plan.ServiceNet6()
		}
		for _, s := range spec.services {
			vip := f.svc(s)
			if !vip.IsValid() {
				continue
			}
			var all []netip.Addr
			for _, m := range s.Members {
				if g, ok := byName[m]; ok && f.addr(g).IsValid() {
					all = append(all, f.addr(g))
				}
			}
			mark := nftrule.CtMarkSet(serviceMark(s))
			random := s.Mode == netsetup.ModeRandom
			// The clients that share what they reach share a rule: under a partition there
			// are few such groups however many clients there are. In reject mode a member a
			// client cannot reach is replaced by the service address itself, which the
			// forward chain refuses (see judge); with SkipUnreachable it is left out.
			var groups []svcGroup
			if !s.SkipUnreachable && (mode != ModeReject || len(blocked) == 0) {
				groups = []svcGroup{{members: all}}
			} else {
				groups = reachGroups(f, s, guests, byName, isBlocked, vip)
			}
			for _, match := range portMatches(f, vip, s) {
				// The bridge's own processes (a bridge child) are not partitioned: all members.
				if len(all) > 0 {
					out.rules = append(out.rules, svcRule{rule: match, mark: mark, members: all, ipv6: f.v6, random: random})
				}
				for _, g := range groups {
					// No member reachable: no translation, so the forward chain refuses it.
					if len(g.members) > 0 {
						pre.rules = append(pre.rules, svcRule{rule: match, clients: g.clients, mark: mark, members: g.members, ipv6: f.v6, random: random})
					}
				}
			}
		}
		// Only the original direction: a reset the forward chain answers for a member is
		// translated back from the service address by conntrack, and must not make a
		// translation of its own.
		post.rules = append(post.rules, svcRule{rule: nftrule.Rule{f.l3, nftrule.CtMarkNonzero(), nftrule.CtDNAT(), nftrule.CtOriginal(), nftrule.SNATPrefix(clients)}})
		first, later := judge(f, mode, cut)
		fwd.rules = append(fwd.rules, first...)
		// The member is picked: the connection's mark names it from now on.
		fwd.rules = append(fwd.rules, svcRule{rule: nftrule.Rule{f.l3, nftrule.CtNew(), nftrule.CtMarkNonzero(),
			nftrule.CtMarkSetMap(&nftables.Set{Name: f.marks}, nftrule.KeyCtMark, f.keys[1])}})
		jdg.rules = append(jdg.rules, later...)
		fwd.rules = append(fwd.rules,
			svcRule{rule: nftrule.Rule{f.l3, nftrule.CtMarkNonzero(), nftrule.CtNew(), nftrule.UpdateCounter(counterRef(f.flows), nftrule.KeyCtMark, f.keys[1])}},
			// What reaches a service address untranslated is refused as a host without the
			// port would refuse it: a port the service does not serve, a service without
			// members, or (SkipUnreachable) none reachable; an unused address likewise.
			svcRule{rule: nftrule.Rule{f.l3, nftrule.CtMarkNonzero(), prefixDaddr(f, svcNet), nftrule.UpdateCounter(counterRef(f.reject), nftrule.KeyCtMark, f.keys[0], f.keys[1])}},
			svcRule{rule: nftrule.Rule{f.l3, prefixDaddr(f, svcNet), nftrule.L4Proto("tcp"), nftrule.RejectTCPReset()}},
			svcRule{rule: nftrule.Rule{f.l3, prefixDaddr(f, svcNet), nftrule.RejectPortUnreachable()}},
			// Client aliases are addresses only translated connections use.
			svcRule{rule: nftrule.Rule{f.l3, prefixDaddr(f, clients), nftrule.RejectAdminProhibited()}},
		)
		sr.counters = append(sr.counters, f.flows, f.drop, f.reject)
	}
	sr.chains = []svcChain{pre, out, post, fwd, jdg}
	sr.loss = pairLoss(spec, fams, byName, member, imps)
	sr.stoppedKeep = func() map[string]bool { return stoppedKeys(spec, fams, byName, blocked) }
	return sr
}

// pairLoss are the rules that lose a pair's share of the service connections between a
// client and a member, as the pair's loss does to direct traffic (which it judges where it
// enters the bridge, by the address it is sent to: a service's packets carry the service
// address or an alias there). They are bridge-family rules, by the address pair only service
// connections carry: a client's packet as it leaves for the member (source its alias, after
// conntrack has recorded the connection, so that a lost first packet's retransmission goes
// to the same member, as to a direct one), a member's packet as it arrives (destination the
// client's alias).
func pairLoss(spec *serviceSpec, fams []family, byName map[string]Guest, member map[string]bool, imps []Impairment) []nftrule.Rule {
	var out []nftrule.Rule
	for _, im := range imps {
		c := lossChance(im.Loss)
		if im.Src == "" || c == 0 || !member[im.Src] && !member[im.Dst] {
			continue
		}
		src, okS := byName[im.Src]
		dst, okD := byName[im.Dst]
		if !okS || !okD {
			continue
		}
		for _, f := range fams {
			a, b := f.addr(src), f.addr(dst)
			if !a.IsValid() || !b.IsValid() {
				continue
			}
			proto, saddr, daddr := nftrule.Protocol("ip", 0x0800), nftrule.Saddr, nftrule.Daddr
			if f.v6 {
				proto, saddr, daddr = nftrule.Protocol("ip6", 0x86dd), nftrule.Saddr6, nftrule.Daddr6Prefix
			}
			host := func(x netip.Addr) netip.Prefix { return netip.PrefixFrom(x, x.BitLen()) }
			random := []nftrule.Match{nftrule.Drop()}
			if c < LossScale {
				random = []nftrule.Match{nftrule.RandomBelow(LossScale, c), nftrule.Drop()}
			}
			if member[im.Dst] { // src as a client of dst
				out = append(out, append(nftrule.Rule{proto, saddr(host(spec.plan.ClientAlias(a))), daddr(host(b))}, random...))
			}
			if member[im.Src] { // src as a member answering dst
				out = append(out, append(nftrule.Rule{proto, saddr(host(a)), daddr(host(spec.plan.ClientAlias(b)))}, random...))
			}
		}
	}
	return out
}

func clone(r nftrule.Rule) nftrule.Rule { return append(nftrule.Rule(nil), r...) }

func prefixDaddr(f family, p netip.Prefix) nftrule.Match {
	if f.v6 {
		return nftrule.Daddr6Prefix(p)
	}
	return nftrule.Daddr(p)
}

// portMatches are the matches of a service's traffic: its address, and each port it serves.
func portMatches(f family, vip netip.Addr, s netsetup.Service) []nftrule.Rule {
	base := nftrule.Rule{f.l3, f.daddr(vip)}
	if len(s.Ports) == 0 {
		return []nftrule.Rule{base}
	}
	out := make([]nftrule.Rule, 0, len(s.Ports))
	for _, p := range s.Ports {
		out = append(out, append(clone(base), nftrule.Dport(p.Proto, p.Port)))
	}
	return out
}

// judge are the rules for packets of service connections between a blocked pair, in the
// partition's mode (see blockRules for the direct path).
//
// A connection's first packet (and its retransmissions) is counted in the forward chain,
// once the member is picked and the real pair is in the packet, and dropped by the
// partition's own check where it would leave for the member: dropped here, it would take its
// connection's translation along, and a retransmission would be sent to the next member
// instead of timing out as a direct one does. Only drop mode gets there: in reject mode a
// member the client cannot reach is never picked (the service address stands in for it, and
// the forward chain's refusal of untranslated packets answers with a reset or port
// unreachable from the service address, counted for the client and the service address).
//
// Later packets are judged in the judge chain, before conntrack's translation: the peer is
// the connection's other end as conntrack knows it, and a reset or ICMP error built from the
// packet carries the addresses its receiver knows (the service address for the client, the
// client's alias for the member), so reject and Cut's resets work as on a direct
// connection. They are counted by the packet's own addresses.
func judge(f family, mode Mode, cut bool) (first, later []svcRule) {
	blk := nftrule.Rule{f.l3, nftrule.CtMarkNonzero(), nftrule.InSet(&nftables.Set{Name: f.blkSet}, f.keys[0], f.keys[1])}
	count := func(set string) nftrule.Match {
		return nftrule.UpdateCounter(counterRef(set), nftrule.KeyCtMark, f.keys[0], f.keys[1])
	}
	first = []svcRule{{rule: append(clone(blk), count(f.drop))}}
	// The client end is the source of what the client sends, the destination (the client's
	// alias) of what the member sends.
	for _, dir := range []struct {
		m      nftrule.Match
		client nftrule.Key
	}{{nftrule.CtOriginal(), f.keys[0]}, {nftrule.CtReply(), f.keys[1]}} {
		b := nftrule.Rule{f.l3, nftrule.CtMarkNonzero(), nftrule.NotCtNew(), dir.m, nftrule.InSet(&nftables.Set{Name: f.mkSet}, dir.client, nftrule.KeyCtMark)}
		switch {
		case mode == ModeReject:
			later = append(later,
				svcRule{rule: append(clone(b), nftrule.L4Proto("tcp"), count(f.reject), nftrule.RejectTCPReset())},
				svcRule{rule: append(clone(b), count(f.reject), nftrule.RejectAdminProhibited())})
		case cut:
			later = append(later,
				svcRule{rule: append(clone(b), nftrule.L4Proto("tcp"), nftrule.NoSYN(), count(f.reject), nftrule.RejectTCPReset())},
				svcRule{rule: append(clone(b), count(f.drop), nftrule.Drop())})
		default:
			later = append(later, svcRule{rule: append(clone(b), count(f.drop), nftrule.Drop())})
		}
	}
	return first, later
}

// counterRef names a counter set for a rule; the batch resolves it by name.
func counterRef(name string) *nftables.Set { return &nftables.Set{Name: name} }

// serviceSpec reads the target's services, nil when it does not know them.
func (t Target) serviceSpec() (*serviceSpec, error) {
	if t.services == nil {
		return nil, nil
	}
	return t.services()
}

// healedServices is the empty rule set of a heal with the service table for no partition.
func (t Target) healedServices() (RuleSet, error) {
	if t.services == nil {
		return RuleSet{}, nil
	}
	guests := t.Guests
	if t.guests != nil {
		var err error
		if guests, err = t.guests(); err != nil {
			return RuleSet{}, err
		}
	}
	svc, err := t.serviceSpec()
	if err != nil {
		return RuleSet{}, err
	}
	return RuleSet{services: compileServices(svc, guests, nil, ModeDrop, false, nil)}, nil
}

// hasServices reports whether a bridge has services (false when it cannot be read: the
// change that follows reads it again and says what is wrong).
func hasServices(env netsetup.Env, bridge string) bool {
	b, err := netsetup.BridgeMembers(env, bridge)
	return err == nil && slices.ContainsFunc(b.Services, func(s netsetup.Service) bool { return !s.Removing })
}
