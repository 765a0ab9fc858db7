package partition

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
)

// resolved is a State checked against the run's guests, with every name in
// canonical form.
type resolved struct {
	gs      *guestSet
	mode    Mode
	cut     bool
	blocked []Pair
	order   []string     // column order hint (Partition.Order)
	imps    []Impairment // sorted by target
	desc    string
	kind    string
	ip6     map[netip.Addr][2]netip.Addr // each guest's IPv6 addresses, global and link-local, by its IPv4 one; see with6
}

func resolveState(s State, guests []Guest) (*resolved, error) {
	gs, err := newGuestSet(guests)
	if err != nil {
		return nil, err
	}
	if len(gs.list) > maxGuests {
		return nil, fmt.Errorf("%d guests: a bridge has at most %d", len(gs.list), maxGuests)
	}
	r := &resolved{gs: gs, cut: s.Cut, desc: s.Partition.Description, kind: s.Partition.Kind, order: s.Partition.Order}
	if r.mode, err = ParseMode(string(s.Mode)); err != nil {
		return nil, err
	}
	for _, p := range s.Partition.Blocked {
		a, err := gs.resolve(p.Src)
		if err != nil {
			return nil, fmt.Errorf("blocked pair %s: %w", p, err)
		}
		b, err := gs.resolve(p.Dst)
		if err != nil {
			return nil, fmt.Errorf("blocked pair %s: %w", p, err)
		}
		if a.Name == b.Name {
			return nil, fmt.Errorf("blocked pair %s: a guest cannot be cut from itself", p)
		}
		r.blocked = append(r.blocked, Pair{a.Name, b.Name})
	}
	r.blocked = normPairs(r.blocked)
	seen := map[string]bool{}
	for _, im := range s.Impairments {
		if err := im.validate(); err != nil {
			return nil, err
		}
		for _, ref := range []*string{&im.Guest, &im.Src, &im.Dst} {
			if *ref == "" {
				continue
			}
			g, err := gs.resolve(*ref)
			if err != nil {
				return nil, fmt.Errorf("impairment of %s: %w", im.Target(), err)
			}
			*ref = g.Name
		}
		if im.Src != "" && im.Src == im.Dst {
			return nil, fmt.Errorf("impairment of %s: source and destination are the same guest", im.Target())
		}
		if seen[im.Target()] {
			return nil, fmt.Errorf("impairment of %s is given twice; merge the settings into one", im.Target())
		}
		if im.Guest != "" && (im.Rate > 0 || im.NeedsNetem()) && gs.list[gs.byName[im.Guest]].NetnsPath == "" && !gs.list[gs.byName[im.Guest]].away {
			return nil, fmt.Errorf("impairment of %s (%s): what the guest sends is shaped on its %s inside its network namespace, "+
				"but guest %s has no NetnsPath; set Guest.NetnsPath (partition.ForBridge does), or impair the pairs towards the guest instead (SRC->%s is shaped on the bridge side)",
				im.Target(), shapedFields(im), GuestIface, im.Guest, im.Guest)
		}
		seen[im.Target()] = true
		r.imps = append(r.imps, im)
	}
	slices.SortFunc(r.imps, func(a, b Impairment) int { return strings.Compare(impKey(a), impKey(b)) })
	return r, nil
}

// impKey orders guest impairments before pair impairments.
func impKey(im Impairment) string {
	if im.Guest != "" {
		return "0" + im.Guest
	}
	return "1" + im.Src + "\x00" + im.Dst
}

// Compile turns a State into a Plan for the given guests and backend (see
// DetectBackend for the one Apply uses) without touching the kernel. It
// rejects unknown guests, bad modes, out-of-range impairments and unknown
// backends with an error naming the field. Whether the kernel can reject in
// the backend's family is checked by Apply, not here.
func Compile(s State, guests []Guest, backend Backend) (Plan, error) {
	if !backend.valid() {
		return Plan{}, fmt.Errorf("backend %q: want %q or %q", backend, BackendNetdev, BackendBridge)
	}
	r, err := resolveState(s, guests)
	if err != nil {
		return Plan{}, err
	}
	return r.plan(backend), nil
}

func (r *resolved) guest(name string) Guest { return r.gs.list[r.gs.byName[name]] }

func (r *resolved) plan(backend Backend) Plan {
	p := r.planRules(backend)
	p.RuleSet = countVia(p.RuleSet)
	return p
}

// planRules is plan before the counting rules move into their chains (countVia).
func (r *resolved) planRules(backend Backend) Plan {
	empty := RuleSet{Backend: backend, Family: backend.Family(), Table: TableName}
	rs := empty
	var filter []Rule
	needTable := len(r.blocked) > 0
	rs.Classes = r.classes()

	if needTable {
		filter = r.blockRules()
	}

	guestLoss := map[string]uint32{}
	guestImp := map[string]*Impairment{}
	for i := range r.imps {
		im := &r.imps[i]
		if im.Guest != "" {
			guestImp[im.Guest] = im
			if c := lossChance(im.Loss); c > 0 {
				guestLoss[im.Guest] = c
				needTable = true
			}
			continue
		}
		if c := lossChance(im.Loss); c > 0 {
			needTable = true
			filter = append(filter, counting(lossRule(Rule{Iifname: r.guest(im.Src).Port, Daddr: r.guest(im.Dst).IP}, c), CountLostPair))
		}
	}

	shaping := r.shaping(guestImp)
	if !needTable {
		return Plan{RuleSet: empty, Shaping: shaping}
	}
	rs.Chains = append(rs.Chains, Chain{Name: FilterChain, Rules: r.with6(r.ndFirst(filter))})
	if backend == BackendBridge {
		rs.Chains = append(rs.Chains, r.bridgeChains(guestLoss)...)
		return Plan{RuleSet: rs, Shaping: shaping}
	}
	blockedTo := r.blockedTo()
	if len(blockedTo) > 0 {
		rs.Chains = append(rs.Chains, Chain{Name: EgressChain, Rules: egressRules()})
	}
	for _, g := range r.gs.list {
		in := Chain{Name: "in_" + g.Port, Hook: "ingress", Device: g.Port, Priority: ChainPriority,
			Rules: []Rule{{Action: ActionJump, Jump: FilterChain}}}
		if c, ok := guestLoss[g.Name]; ok {
			in.Rules = append(in.Rules, counting(lossRule(Rule{}, c), CountLostFrom))
		}
		in.Rules = r.with6(in.Rules)
		rs.Chains = append(rs.Chains, in)
	}
	for _, g := range r.gs.list {
		// Loss towards a guest is taken where packets leave the bridge for it,
		// so it also hits traffic from outside the run, not only from guests.
		c, loss := guestLoss[g.Name]
		if !loss && !blockedTo[g.Name] {
			continue
		}
		out := Chain{Name: "out_" + g.Port, Hook: "egress", Device: g.Port, Priority: ChainPriority}
		if blockedTo[g.Name] {
			out.Rules = []Rule{{Action: ActionJump, Jump: EgressChain}}
		}
		if loss {
			out.Rules = append(out.Rules, counting(lossRule(Rule{}, c), CountLostTo))
		}
		out.Rules = r.with6(out.Rules)
		rs.Chains = append(rs.Chains, out)
	}
	return Plan{RuleSet: rs, Shaping: shaping}
}

// bridgeChains hooks the filter chain and the guests' loss into the bridge:
// prerouting sees every frame a port receives (before the bridge forwards it
// or passes it up to br0), postrouting every frame it sends out of a port
// (forwarded or from br0), so they stand where the netdev backend's ingress
// and egress chains are. Ports are told apart by name, so a port that does
// not exist (yet) only matches nothing.
func (r *resolved) bridgeChains(guestLoss map[string]uint32) []Chain {
	in := Chain{Name: PreroutingChain, Hook: "prerouting", Priority: ChainPriority}
	out := Chain{Name: PostroutingChain, Hook: "postrouting", Priority: ChainPriority}
	// Frames of ports that are not guests' (br0's own, the uplink's) find no
	// row class and pass the filter chain untouched: one jump serves all.
	in.Rules = append(in.Rules, Rule{Action: ActionJump, Jump: FilterChain})
	if len(r.blocked) > 0 {
		out.Rules = egressRules()
	}
	for _, g := range r.gs.list {
		if c, ok := guestLoss[g.Name]; ok {
			in.Rules = append(in.Rules, counting(lossRule(Rule{Iifname: g.Port}, c), CountLostFrom))
			out.Rules = append(out.Rules, counting(lossRule(Rule{Oifname: g.Port}, c), CountLostTo))
		}
	}
	in.Rules, out.Rules = r.with6(in.Rules), r.with6(out.Rules)
	if len(out.Rules) == 0 {
		return []Chain{in}
	}
	return []Chain{in, out}
}

// needsReject reports whether any rule rejects.
func (rs RuleSet) needsReject() bool {
	for _, c := range rs.Chains {
		for _, r := range c.Rules {
			if r.Action == ActionRejectTCPReset || r.Action == ActionRejectAdmin {
				return true
			}
		}
	}
	return false
}

func lossRule(match Rule, chance uint32) Rule {
	match.IPv4 = true
	match.Action = ActionDrop
	if chance < LossScale {
		match.Chance = chance
	}
	return match
}

// shapingHere is the recorded shaping without what was set up inside the namespace of a guest
// now away: that namespace is gone or no longer the bridge's business, and its recorded
// path (a /proc path of a pid since reused) may name another's.
func (r *resolved) shapingHere(recorded []Shaping) []Shaping {
	inAway := func(sh Shaping) bool {
		i, ok := r.gs.byName[sh.Guest]
		return ok && sh.Netns != "" && r.gs.list[i].away
	}
	if !slices.ContainsFunc(recorded, inAway) {
		return recorded // the record's own slice: compared as it is
	}
	return slices.DeleteFunc(slices.Clone(recorded), inAway)
}

func (r *resolved) shaping(guestImp map[string]*Impairment) []Shaping {
	var out []Shaping
	shapes := func(im *Impairment) bool { return im != nil && (im.Rate > 0 || im.NeedsNetem()) }
	for _, g := range r.gs.list {
		if g.away {
			continue // its port and namespace went with it; shaped again when it is back
		}
		gimp := guestImp[g.Name]
		if !shapes(gimp) {
			gimp = nil
		}
		var pairs []Class
		top := MaxRate
		if gimp != nil && gimp.Rate > 0 {
			top = gimp.Rate
		}
		for i := range r.imps {
			im := &r.imps[i]
			if im.Dst != g.Name || !shapes(im) {
				continue
			}
			rate := top
			if im.Rate > 0 && im.Rate < top {
				rate = im.Rate
			}
			src := r.gs.byName[im.Src]
			pairs = append(pairs, Class{Minor: uint16(classPairs + src), From: im.Src, Src: r.guest(im.Src).IP, Src6: r.guest(im.Src).IP6, Rate: rate,
				Netem: mergeNetem(netemOf(gimp), netemOf(im))})
		}
		if gimp == nil && len(pairs) == 0 {
			continue
		}
		def := Class{Minor: classDefault, Rate: top, Netem: netemOf(gimp)}
		out = append(out, Shaping{Device: g.Port, Guest: g.Name, Rate: top, Classes: append([]Class{def}, pairs...)})
		if gimp != nil {
			// resolveState made sure the guest has a namespace.
			out = append(out, Shaping{Netns: g.NetnsPath, Device: GuestIface, Guest: g.Name, Rate: top,
				Classes: []Class{{Minor: classDefault, Rate: top, Netem: netemOf(gimp)}}})
		}
	}
	return out
}

// needsNetem reports whether any class of the plan uses netem.
func (p Plan) needsNetem() (string, bool) {
	for _, sh := range p.Shaping {
		for _, c := range sh.Classes {
			if c.Netem != nil {
				return "guest " + sh.Guest, true
			}
		}
	}
	return "", false
}

// shapedFields names the settings of im that need traffic control.
func shapedFields(im Impairment) string {
	var f []string
	if im.Rate > 0 {
		f = append(f, "rate")
	}
	for _, x := range []struct {
		name string
		on   bool
	}{{"delay", im.Delay > 0}, {"jitter", im.Jitter > 0}, {"duplicate", im.Duplicate > 0}, {"corrupt", im.Corrupt > 0}, {"reorder", im.Reorder > 0}} {
		if x.on {
			f = append(f, x.name)
		}
	}
	return strings.Join(f, ", ")
}

// blockRules look the packet's classes up and act on blocked ones.
func (r *resolved) blockRules() []Rule {
	byIP := Rule{IPv4: true, Blocked: true}
	rules := []Rule{
		{Classify: ClassifyReset},
		{Classify: ClassifyRow},
		{IPv4: true, Classify: ClassifyColumnByIP},
	}
	switch {
	case r.mode == ModeReject:
		// Reject runs where the sender's packet enters the bridge: the reset
		// or ICMP error (nft_reject_netdev or nft_reject_bridge) is built from
		// the offending packet and sent back out of the sender's port, so it
		// reaches the sender as if the destination had answered.
		tcp := byIP
		tcp.TCP, tcp.Action = true, ActionRejectTCPReset
		other := byIP
		other.Action = ActionRejectAdmin
		rules = append(rules, counting(tcp, CountRejected), counting(other, CountRejected))
	case r.cut:
		// Drop mode with Cut: a segment without SYN belongs to a connection
		// that was open before the cut, so it gets a reset; new connections
		// (SYN, SYN-ACK) and everything else still time out.
		est := byIP
		est.TCP, est.NoSYN, est.Action = true, true, ActionRejectTCPReset
		drop := byIP
		drop.Action = ActionDrop
		rules = append(rules, counting(est, CountRejected), counting(drop, CountDropped))
	default:
		drop := byIP
		drop.Action = ActionDrop
		rules = append(rules, counting(drop, CountDropped))
	}
	// The row stays in the mark for the check where the frame leaves.
	return append(rules, Rule{Classify: ClassifyClearColumn})
}

// egressRules drop what leaves through a guest's port from a guest the
// partition blocks from it: frames to the guest's MAC whatever address they
// carry, broadcasts and multicasts, and packets routed through the bridge's
// own address. ARP passes, so that a one-way block does not also stop the
// answers of the open direction's address resolution. The priority is
// cleared first: the bridge's IP stack sets it from the TOS of what it
// routes.
func egressRules() []Rule {
	return []Rule{
		{Classify: ClassifyClearColumn},
		{NotARP: true, Classify: ClassifyColumnByPort},
		counting(Rule{NotARP: true, Blocked: true, Action: ActionDrop}, CountDroppedOut),
		{Classify: ClassifyReset},
	}
}

// blockedTo tells the guests somebody is blocked from reaching: their ports
// need the check where frames leave.
func (r *resolved) blockedTo() map[string]bool {
	out := map[string]bool{}
	for _, p := range r.blocked {
		out[p.Dst] = true
	}
	return out
}

// classes encodes the blocked pairs as the class matrix the kernel holds, the
// column classes following the partition's order.
func (r *resolved) classes() Classes {
	var c Classes
	if len(r.blocked) == 0 {
		return c
	}
	pairs := make([][2]int, len(r.blocked))
	for i, p := range r.blocked {
		pairs[i] = [2]int{r.gs.byName[p.Src], r.gs.byName[p.Dst]}
	}
	var order []int
	for _, name := range r.order {
		if i, ok := r.gs.byName[name]; ok {
			order = append(order, i)
		}
	}
	// resolveState has checked the guest count against maxGuests.
	m, _ := newClassMatrix(len(r.gs.list), pairs, order)
	for i, g := range r.gs.list {
		if m.Row[i] != 0 {
			c.Sources = append(c.Sources, PortClass{Port: g.Port, Row: m.Row[i]})
		}
		if m.Col[i] != 0 {
			c.Dests = append(c.Dests, DestClass{IP: g.IP, IP6: g.IP6, Port: g.Port, Col: m.Col[i]})
			// Its link-local address is its too: reject and the pair rules judge what is
			// sent to it, as what is sent to its global one.
			if ll := linkLocal6(g); ll.IsValid() {
				c.Dests = append(c.Dests, DestClass{IP6: ll, Col: m.Col[i]})
			}
		}
	}
	c.Runs = m.Runs
	return c
}
