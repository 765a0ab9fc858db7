package partition

import (
	"fmt"
	"math"
	"net/netip"
	"slices"
	"strings"
	"time"
)

// Mode says what a blocked packet's sender experiences.
type Mode string

const (
	// ModeDrop loses blocked packets silently: peers see timeouts.
	ModeDrop Mode = "drop"
	// ModeReject answers blocked TCP packets with a reset and other blocked
	// packets with an ICMP "administratively prohibited" unreachable, so
	// clients fail fast ("connection refused", "no route to host").
	ModeReject Mode = "reject"
)

// State is what Apply makes true on a bridge: a partition, how blocked
// packets are treated, and impairments.
type State struct {
	Partition Partition `json:"partition"`
	// Mode is drop (default when empty) or reject.
	Mode Mode `json:"mode"`
	// Cut resets TCP connections that are already open across the partition
	// instead of leaving them stalled: every segment of an established flow
	// crossing a blocked pair is answered with a TCP reset (in drop mode too;
	// new connections are still dropped there). When guests carry NetnsPath,
	// Apply also closes such sockets inside the guests at once (sock_diag
	// SOCK_DESTROY), so even an idle reader sees the cut.
	Cut         bool         `json:"cut"`
	Impairments []Impairment `json:"impairments"`
}

// WithImpairments returns a copy of s in which each of imps replaces the
// impairment of the same guest or pair, or is added. It is what an
// "impair" command applies on top of the current state (Status(t).State()).
func (s State) WithImpairments(imps ...Impairment) State {
	out := s
	out.Impairments = slices.Clone(s.Impairments)
	for _, im := range imps {
		i := slices.IndexFunc(out.Impairments, func(x Impairment) bool { return x.Target() == im.Target() })
		if i >= 0 {
			out.Impairments[i] = im
		} else {
			out.Impairments = append(out.Impairments, im)
		}
	}
	return out
}

// Impair returns s with the settings that words give (as ParseImpairments reads them)
// changed on each named guest or pair, and their other settings kept: "delay=100ms a" after
// "loss=10% a" leaves a with both. An impairment left without effect (every setting zero) is
// removed. It also returns the changed impairments, for reporting.
func (s State) Impair(words []string, guests []Guest) (State, []Impairment, error) {
	targets, err := ParseImpairments(words, guests) // checks the targets and the settings alone
	if err != nil {
		return s, nil, err
	}
	var settings [][2]string
	given := map[string]bool{}
	for _, w := range words {
		key, val, ok := strings.Cut(w, "=")
		if !ok {
			break
		}
		settings = append(settings, [2]string{key, val})
		given[key] = true
	}
	out := s
	out.Impairments = slices.Clone(s.Impairments)
	changed := make([]Impairment, 0, len(targets))
	for _, t := range targets {
		im := Impairment{Guest: t.Guest, Src: t.Src, Dst: t.Dst}
		if i := slices.IndexFunc(out.Impairments, func(x Impairment) bool { return x.Target() == t.Target() }); i >= 0 {
			im = out.Impairments[i]
			out.Impairments = slices.Delete(out.Impairments, i, i+1)
		}
		for _, kv := range settings {
			if err := setField(&im, kv[0], kv[1]); err != nil {
				return s, nil, err
			}
		}
		if im.Delay == 0 && given["delay"] {
			// Without a delay, jitter and reorder mean nothing (and are refused): removing
			// the delay removes them unless they are given too.
			if !given["jitter"] {
				im.Jitter = 0
			}
			if !given["reorder"] {
				im.Reorder = 0
			}
		}
		if err := im.validate(); err != nil {
			return s, nil, err
		}
		if !im.Empty() {
			out.Impairments = append(out.Impairments, im)
		}
		changed = append(changed, im)
	}
	return out, changed, nil
}

// Empty reports an impairment whose every setting is zero: it has no effect.
func (im Impairment) Empty() bool {
	im.Guest, im.Src, im.Dst, im.Since = "", "", "", time.Time{}
	return im == Impairment{}
}

// Names of what partition owns in the bridge namespace.
const (
	// TableName is pontoon's partition table in the bridge namespace, in the
	// family of the backend (Backend.Family): netdev or bridge. Other tables,
	// including other "pontoon*" tables, are never touched.
	TableName = "pontoon_partition"
	// BlockedSet holds the blocked (src . dst) IPv4 pairs.
	BlockedSet = "blocked"
	// FilterChain is the regular chain that every packet a guest sends is
	// sent to: from each port's ingress chain (netdev backend) or from
	// PreroutingChain (bridge backend).
	FilterChain = "filter"
	// PreroutingChain and PostroutingChain are the base chains of the bridge
	// backend; they pick the guests' packets by port name.
	PreroutingChain  = "prerouting"
	PostroutingChain = "postrouting"
	// QdiscMajor is the handle major of every root qdisc partition adds
	// ("pt"), by which it recognises its own qdiscs when healing.
	QdiscMajor = 0x7074
	// ChainPriority orders partition's base chains before any other chain a
	// user might add on the same hook (netdev ingress and egress, bridge
	// prerouting and postrouting, whose filter priority is -200), so a
	// blocked packet never reaches them.
	ChainPriority = -300
)

// Class minors inside the QdiscMajor HTB tree.
const (
	classTop     = 1
	classDefault = 2
	classPairs   = 0x100 // + index of the source guest
)

// Plan is the compiled form of a State: the nftables rule set and the
// traffic-control configuration, as plain data.
type Plan struct {
	RuleSet RuleSet   `json:"ruleset"`
	Shaping []Shaping `json:"shaping"`
}

// RuleSet describes the content of the partition table. An empty RuleSet
// (no chains) means the table must not exist, in any family.
type RuleSet struct {
	// Backend is the kind of table the rule set is for; Family is its
	// nftables family (the same word).
	Backend Backend `json:"backend"`
	Family  string  `json:"family"`
	Table   string  `json:"table"`
	Sets    []Set   `json:"sets"`
	Chains  []Chain `json:"chains"`
}

// Empty reports whether the rule set has nothing to enforce.
func (rs RuleSet) Empty() bool { return len(rs.Chains) == 0 }

// Set is a named set of IPv4 address pairs.
type Set struct {
	Name     string     `json:"name"`
	Elements []AddrPair `json:"elements"`
}

// AddrPair is one "src . dst" set element.
type AddrPair struct {
	Src netip.Addr `json:"src"`
	Dst netip.Addr `json:"dst"`
}

// Chain is a base chain (Hook set) or a regular chain (Hook empty).
type Chain struct {
	Name string `json:"name"`
	// Hook is "ingress" or "egress" of Device (netdev backend), or
	// "prerouting" or "postrouting" (bridge backend, no Device).
	Hook     string `json:"hook,omitempty"`
	Device   string `json:"device,omitempty"`
	Priority int32  `json:"priority,omitempty"`
	Rules    []Rule `json:"rules"`
}

// Action is what a rule does when it matches.
type Action string

// Rule actions.
const (
	ActionDrop           Action = "drop"
	ActionRejectTCPReset Action = "reject with tcp reset"
	ActionRejectAdmin    Action = "reject with icmpx admin-prohibited"
	ActionJump           Action = "jump"
)

// Rule is one rule: every set match must hold, then Action is taken.
type Rule struct {
	Iifname string     `json:"iifname,omitempty"`  // iifname NAME (bridge port it came in on)
	Oifname string     `json:"oifname,omitempty"`  // oifname NAME (bridge port it goes out of)
	IPv4    bool       `json:"ipv4,omitempty"`     // meta protocol ip
	Saddr   netip.Addr `json:"saddr,omitzero"`     // ip saddr ADDR
	Daddr   netip.Addr `json:"daddr,omitzero"`     // ip daddr ADDR
	PairSet string     `json:"pair_set,omitempty"` // ip saddr . ip daddr @SET
	TCP     bool       `json:"tcp,omitempty"`      // meta l4proto tcp
	NoSYN   bool       `json:"no_syn,omitempty"`   // tcp flags & syn == 0
	// Chance, when not 0, matches with probability Chance/10000
	// (numgen random mod 10000 < Chance).
	Chance uint32 `json:"chance,omitempty"`
	Action Action `json:"action"`
	Jump   string `json:"jump,omitempty"` // for ActionJump
}

// LossScale is the modulus of the random number loss rules draw: loss is
// applied with a resolution of 0.01%.
const LossScale = 10000

// String renders the rule in nft syntax.
func (r Rule) String() string {
	var b []string
	if r.Iifname != "" {
		b = append(b, fmt.Sprintf("iifname %q", r.Iifname))
	}
	if r.Oifname != "" {
		b = append(b, fmt.Sprintf("oifname %q", r.Oifname))
	}
	if r.IPv4 {
		b = append(b, "meta protocol ip")
	}
	if r.Saddr.IsValid() {
		b = append(b, "ip saddr "+r.Saddr.String())
	}
	if r.Daddr.IsValid() {
		b = append(b, "ip daddr "+r.Daddr.String())
	}
	if r.PairSet != "" {
		b = append(b, "ip saddr . ip daddr @"+r.PairSet)
	}
	if r.TCP {
		b = append(b, "meta l4proto tcp")
	}
	if r.NoSYN {
		b = append(b, "tcp flags & syn == 0")
	}
	if r.Chance != 0 {
		b = append(b, fmt.Sprintf("numgen random mod %d < %d", LossScale, r.Chance))
	}
	switch r.Action {
	case ActionJump:
		b = append(b, "jump "+r.Jump)
	default:
		b = append(b, string(r.Action))
	}
	return strings.Join(b, " ")
}

// String renders the rule set as an nft script (what `nft -f` would load),
// headed by a comment naming the backend.
func (rs RuleSet) String() string {
	if rs.Empty() {
		if rs.Family == "" {
			return fmt.Sprintf("# table %s: absent in every family\n", rs.Table)
		}
		return fmt.Sprintf("# backend %s: table %s %s absent\n", rs.Backend, rs.Family, rs.Table)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "# backend %s: %s\n", rs.Backend, rs.Backend.describe())
	fmt.Fprintf(&b, "table %s %s {\n", rs.Family, rs.Table)
	for _, s := range rs.Sets {
		fmt.Fprintf(&b, "\tset %s {\n\t\ttype ipv4_addr . ipv4_addr\n", s.Name)
		if len(s.Elements) > 0 {
			els := make([]string, len(s.Elements))
			for i, e := range s.Elements {
				els[i] = e.Src.String() + " . " + e.Dst.String()
			}
			fmt.Fprintf(&b, "\t\telements = { %s }\n", strings.Join(els, ", "))
		}
		b.WriteString("\t}\n")
	}
	for _, c := range rs.Chains {
		fmt.Fprintf(&b, "\tchain %s {\n", c.Name)
		switch {
		case c.Hook != "" && c.Device != "":
			fmt.Fprintf(&b, "\t\ttype filter hook %s device %q priority %d;\n", c.Hook, c.Device, c.Priority)
		case c.Hook != "":
			fmt.Fprintf(&b, "\t\ttype filter hook %s priority %d;\n", c.Hook, c.Priority)
		}
		for _, r := range c.Rules {
			fmt.Fprintf(&b, "\t\t%s\n", r)
		}
		b.WriteString("\t}\n")
	}
	b.WriteString("}\n")
	return b.String()
}

// Shaping is the traffic-control tree on the egress of one device: an HTB
// qdisc (handle QdiscMajor:) with a top class of Rate, a default class and
// one class per impaired source pair, each class optionally with a netem
// leaf.
type Shaping struct {
	// Netns is empty for a port in the bridge namespace, which carries what
	// is delivered to Guest. Otherwise it is the guest's namespace, and
	// Device (GuestIface) carries what Guest sends.
	Netns string `json:"netns,omitempty"`
	// Device is the shaped device: the guest's port, or its GuestIface.
	Device string `json:"device"`
	// Guest is whose link this shapes.
	Guest string `json:"guest"`
	// Rate of the top class; 0 means MaxRate.
	Rate Rate `json:"rate,omitempty"`
	// Classes; the first is the default class.
	Classes []Class `json:"classes"`
}

// Class is one HTB leaf class.
type Class struct {
	Minor uint16 `json:"minor"`
	// From is the source guest of a pair class; empty for the default class.
	From string `json:"from,omitempty"`
	// Src is From's address, which a u32 filter matches (ip saddr) to put
	// the pair's packets into this class.
	Src   netip.Addr `json:"src,omitzero"`
	Rate  Rate       `json:"rate,omitempty"` // 0 means MaxRate
	Netem *Netem     `json:"netem,omitempty"`
}

// Netem holds the netem settings of a class.
type Netem struct {
	Delay     time.Duration `json:"delay,omitempty"`
	Jitter    time.Duration `json:"jitter,omitempty"`
	Duplicate float64       `json:"duplicate,omitempty"`
	Corrupt   float64       `json:"corrupt,omitempty"`
	Reorder   float64       `json:"reorder,omitempty"`
}

func netemOf(im *Impairment) *Netem {
	if im == nil || !im.needsNetem() {
		return nil
	}
	return &Netem{Delay: im.Delay, Jitter: im.Jitter, Duplicate: im.Duplicate, Corrupt: im.Corrupt, Reorder: im.Reorder}
}

// mergeNetem lets the pair's settings override the guest's field by field.
func mergeNetem(guest, pair *Netem) *Netem {
	if guest == nil {
		return pair
	}
	if pair == nil {
		return guest
	}
	m := *guest
	if pair.Delay > 0 {
		m.Delay = pair.Delay
	}
	if pair.Jitter > 0 {
		m.Jitter = pair.Jitter
	}
	if pair.Duplicate > 0 {
		m.Duplicate = pair.Duplicate
	}
	if pair.Corrupt > 0 {
		m.Corrupt = pair.Corrupt
	}
	if pair.Reorder > 0 {
		m.Reorder = pair.Reorder
	}
	return &m
}

// ClassID returns the tc class id (major:minor) of a minor in the HTB tree.
func ClassID(minor uint16) uint32 { return QdiscMajor<<16 | uint32(minor) }

func lossChance(pct float64) uint32 {
	return uint32(math.Round(pct * LossScale / 100))
}

// resolved is a State checked against the run's guests, with every name in
// canonical form.
type resolved struct {
	gs      *guestSet
	mode    Mode
	cut     bool
	blocked []Pair
	imps    []Impairment // sorted by target
	desc    string
	kind    string
}

func resolveState(s State, guests []Guest) (*resolved, error) {
	gs, err := newGuestSet(guests)
	if err != nil {
		return nil, err
	}
	r := &resolved{gs: gs, cut: s.Cut, desc: s.Partition.Description, kind: s.Partition.Kind}
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
		if im.Guest != "" && (im.Rate > 0 || im.needsNetem()) && gs.list[gs.byName[im.Guest]].NetnsPath == "" {
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
	empty := RuleSet{Backend: backend, Family: backend.Family(), Table: TableName}
	rs := empty
	var filter []Rule
	needTable := len(r.blocked) > 0

	set := Set{Name: BlockedSet, Elements: []AddrPair{}}
	for _, p := range r.blocked {
		set.Elements = append(set.Elements, AddrPair{r.guest(p.Src).IP, r.guest(p.Dst).IP})
	}
	rs.Sets = []Set{set}
	blocked := Rule{IPv4: true, PairSet: BlockedSet}
	switch {
	case r.mode == ModeReject:
		// Reject runs where the sender's packet enters the bridge: the reset
		// or ICMP error (nft_reject_netdev or nft_reject_bridge) is built from
		// the offending packet and sent back out of the sender's port, so it
		// reaches the sender as if the destination had answered.
		tcp := blocked
		tcp.TCP, tcp.Action = true, ActionRejectTCPReset
		other := blocked
		other.Action = ActionRejectAdmin
		filter = append(filter, tcp, other)
	case r.cut:
		// Drop mode with Cut: a segment without SYN belongs to a connection
		// that was open before the cut, so it gets a reset; new connections
		// (SYN, SYN-ACK) and everything else still time out.
		est := blocked
		est.TCP, est.NoSYN, est.Action = true, true, ActionRejectTCPReset
		drop := blocked
		drop.Action = ActionDrop
		filter = append(filter, est, drop)
	default:
		drop := blocked
		drop.Action = ActionDrop
		filter = append(filter, drop)
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
			filter = append(filter, lossRule(Rule{Saddr: r.guest(im.Src).IP, Daddr: r.guest(im.Dst).IP}, c))
		}
	}

	shaping := r.shaping(guestImp)
	if !needTable {
		return Plan{RuleSet: empty, Shaping: shaping}
	}
	rs.Chains = append(rs.Chains, Chain{Name: FilterChain, Rules: filter})
	if backend == BackendBridge {
		rs.Chains = append(rs.Chains, r.bridgeChains(guestLoss)...)
		return Plan{RuleSet: rs, Shaping: shaping}
	}
	for _, g := range r.gs.list {
		in := Chain{Name: "in_" + g.Port, Hook: "ingress", Device: g.Port, Priority: ChainPriority,
			Rules: []Rule{{Action: ActionJump, Jump: FilterChain}}}
		if c, ok := guestLoss[g.Name]; ok {
			in.Rules = append(in.Rules, lossRule(Rule{}, c))
		}
		rs.Chains = append(rs.Chains, in)
	}
	for _, g := range r.gs.list {
		// Loss towards a guest is taken where packets leave the bridge for it,
		// so it also hits traffic from outside the run, not only from guests.
		if c, ok := guestLoss[g.Name]; ok {
			rs.Chains = append(rs.Chains, Chain{Name: "out_" + g.Port, Hook: "egress", Device: g.Port,
				Priority: ChainPriority, Rules: []Rule{lossRule(Rule{}, c)}})
		}
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
	for _, g := range r.gs.list {
		in.Rules = append(in.Rules, Rule{Iifname: g.Port, Action: ActionJump, Jump: FilterChain})
		if c, ok := guestLoss[g.Name]; ok {
			in.Rules = append(in.Rules, lossRule(Rule{Iifname: g.Port}, c))
			out.Rules = append(out.Rules, lossRule(Rule{Oifname: g.Port}, c))
		}
	}
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

func (r *resolved) shaping(guestImp map[string]*Impairment) []Shaping {
	var out []Shaping
	shapes := func(im *Impairment) bool { return im != nil && (im.Rate > 0 || im.needsNetem()) }
	for _, g := range r.gs.list {
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
			pairs = append(pairs, Class{Minor: uint16(classPairs + src), From: im.Src, Src: r.guest(im.Src).IP, Rate: rate,
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
