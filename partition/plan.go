package partition

import (
	"fmt"
	"math"
	"net/netip"
	"strings"
	"time"
)

// Names of what partition owns in the bridge namespace.
const (
	// TableName is pontoon's partition table in the bridge namespace, in the
	// family of the backend (Backend.Family): netdev or bridge. Other tables,
	// including other "pontoon*" tables, are never touched.
	TableName = "pontoon_partition"
	// SourceMap maps a guest's bridge port to its row class, DestMap a
	// guest's address and DestPortMap its port to its column class, and
	// BlockedSet holds the blocked (row . column range) class pairs: the
	// class matrix of matrix.go. A guest is known by the port its frames
	// arrive on, never by the source address they claim. MarkerSet holds
	// one element whose comment is the rule set's marker.
	SourceMap   = "src"
	DestMap     = "dst"
	DestMap6    = "dst6" // DestMap for IPv6 addresses
	DestPortMap = "dstport"
	BlockedSet  = "blocked"
	MarkerSet   = "applied"
	// FilterChain is the regular chain that every packet a guest sends is
	// sent to: from each port's ingress chain (netdev backend) or from
	// PreroutingChain (bridge backend).
	FilterChain = "filter"
	// EgressChain is the regular chain every guest port's egress chain
	// (netdev backend) jumps to: the check of the port a frame leaves by.
	EgressChain = "egress"
	// PreroutingChain and PostroutingChain are the base chains of the bridge
	// backend.
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
	// Classes is the content of the maps and the set.
	Classes Classes `json:"classes"`
	Chains  []Chain `json:"chains"`
	// Marker is stored with the table (in MarkerSet) so
	// that what is in force can be told apart from what was meant to be:
	// after a commit whose answer was lost, and by Status.
	Marker string `json:"marker,omitempty"`
	// services is the service table, committed with the rules (nil: left alone).
	services *serviceRules
	// sums are the chains' fingerprints once the rule set is sealed (nil before).
	sums map[string]uint64
}

// Empty reports whether the rule set has nothing to enforce.
func (rs RuleSet) Empty() bool { return len(rs.Chains) == 0 }

// Classes is the blocked-pair class matrix as the kernel holds it.
type Classes struct {
	Sources []PortClass `json:"sources"`
	Dests   []DestClass `json:"dests"`
	Runs    []ClassRun  `json:"runs"`
}

// PortClass gives the row class of the guest behind a bridge port.
type PortClass struct {
	Port string `json:"port"`
	Row  uint32 `json:"row"`
}

// DestClass gives the column class of a guest, by its address and its port.
type DestClass struct {
	IP   netip.Addr `json:"ip"`
	IP6  netip.Addr `json:"ip6,omitzero"`
	Port string     `json:"port,omitempty"`
	Col  uint32     `json:"col"`
}

// ClassRun blocks packets from row class Row to column classes From..To.
type ClassRun struct {
	Row  uint32 `json:"row"`
	From uint32 `json:"from"`
	To   uint32 `json:"to"`
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
	// ActionAccept ends the base chain's judgement of the packet: neighbour
	// discovery leaves the partition's rules this way, as ARP does by its
	// ethertype.
	ActionAccept Action = "accept"
)

// Rule is one rule: every set match must hold, then Action is taken.
type Rule struct {
	Iifname string     `json:"iifname,omitempty"` // iifname NAME (bridge port it came in on)
	Oifname string     `json:"oifname,omitempty"` // oifname NAME (bridge port it goes out of)
	IPv4    bool       `json:"ipv4,omitempty"`    // meta protocol ip
	IPv6    bool       `json:"ipv6,omitempty"`    // meta protocol ip6
	ND      bool       `json:"nd,omitempty"`      // icmpv6 type 135-136 (neighbour solicitation, advertisement)
	NotARP  bool       `json:"not_arp,omitempty"` // meta protocol != arp
	Daddr   netip.Addr `json:"daddr,omitzero"`    // ip daddr ADDR, or ip6 daddr ADDR
	// Classify, when set, is a rule that stores a class instead of
	// matching: see Classify. Blocked matches a packet whose stored (row,
	// column) classes the blocked set holds.
	Classify Classify `json:"classify,omitempty"`
	Blocked  bool     `json:"blocked,omitempty"`
	TCP      bool     `json:"tcp,omitempty"`    // meta l4proto tcp
	NoSYN    bool     `json:"no_syn,omitempty"` // tcp flags & syn == 0
	// Chance, when not 0, matches with probability Chance/10000
	// (numgen random mod 10000 < Chance).
	Chance uint32 `json:"chance,omitempty"`
	// Count, when set, names the counter set (stats.go) that counts the packets this
	// rule's action takes, by the key that set is for.
	Count  string `json:"count,omitempty"`
	Action Action `json:"action"`
	Jump   string `json:"jump,omitempty"` // for ActionJump
}

// Classify is a step of the class lookup. The row class goes into the
// packet's mark where it enters the bridge, and the column class into its
// priority, by its IPv4 destination where it enters (to reject it there) and
// by the port it leaves through (to drop it there whatever it is: unicast to
// any MAC, broadcast or multicast). nft matches the two as one concatenated
// key natively, so `nft list ruleset` shows every rule. What a guest sets is
// cleared first, and crossing into a guest's namespace scrubs the mark.
type Classify string

// Steps of the class lookup.
const (
	// ClassifyReset clears mark and priority.
	ClassifyReset Classify = "reset"
	// ClassifyClearColumn clears the priority only, keeping the row.
	ClassifyClearColumn Classify = "clear-column"
	// ClassifyRow stores the row class of the port the frame came in on: a
	// guest is who its port says, whatever source address it writes.
	ClassifyRow Classify = "row"
	// ClassifyColumnByIP stores the column class of the IPv4 destination.
	ClassifyColumnByIP Classify = "column-by-ip"
	// ClassifyColumnByIP6 stores the column class of the IPv6 destination.
	ClassifyColumnByIP6 Classify = "column-by-ip6"
	// ClassifyColumnByPort stores the column class of the guest behind the
	// port the frame leaves through.
	ClassifyColumnByPort Classify = "column-by-port"
)

// LossScale is the modulus of the random number loss rules draw: loss is
// applied with a resolution of 0.01%.
const LossScale = 10000

// String renders the rule in nft syntax, from the same matches as the rule
// the kernel gets. An invalid rule renders as far as it is valid, followed by
// a comment saying what is wrong.
func (r Rule) String() string {
	m, err := r.matches(logicalSet)
	if err != nil {
		return strings.TrimSpace(m.Text() + " # invalid: " + err.Error())
	}
	return m.Text()
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
	if rs.Marker != "" {
		fmt.Fprintf(&b, "\tset %s {\n\t\ttype integer\n\t\telements = { 1 comment %q }\n\t}\n", MarkerSet, rs.Marker)
	}
	rs.Classes.render(&b)
	rs.renderCounterSets(&b)
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

// render writes the maps and the set of the class matrix in nft syntax.
func (c Classes) render(b *strings.Builder) {
	elements := func(els []string) {
		if len(els) > 0 {
			fmt.Fprintf(b, "\t\telements = { %s }\n", strings.Join(els, ", "))
		}
	}
	var src, dst, port, runs []string
	for _, p := range c.Sources {
		src = append(src, fmt.Sprintf("%q : %d", p.Port, p.Row))
	}
	var dst6 []string
	for _, d := range c.Dests {
		if d.IP6.IsValid() {
			dst6 = append(dst6, fmt.Sprintf("%s : %d", d.IP6, d.Col))
		}
		if d.IP.IsValid() {
			dst = append(dst, fmt.Sprintf("%s : %d", d.IP, d.Col))
		}
		if d.Port != "" {
			port = append(port, fmt.Sprintf("%q : %d", d.Port, d.Col))
		}
	}
	for _, r := range c.Runs {
		if r.From == r.To {
			runs = append(runs, fmt.Sprintf("%d . %d", r.Row, r.From))
		} else {
			runs = append(runs, fmt.Sprintf("%d . %d-%d", r.Row, r.From, r.To))
		}
	}
	fmt.Fprintf(b, "\tmap %s {\n\t\ttype ifname : mark\n", SourceMap)
	elements(src)
	fmt.Fprintf(b, "\t}\n\tmap %s {\n\t\ttype ipv4_addr : classid\n", DestMap)
	elements(dst)
	if len(dst6) > 0 {
		fmt.Fprintf(b, "\t}\n\tmap %s {\n\t\ttype ipv6_addr : classid\n", DestMap6)
		elements(dst6)
	}
	fmt.Fprintf(b, "\t}\n\tmap %s {\n\t\ttype ifname : classid\n", DestPortMap)
	elements(port)
	fmt.Fprintf(b, "\t}\n\tset %s {\n\t\ttype mark . classid\n\t\tflags interval\n", BlockedSet)
	elements(runs)
	b.WriteString("\t}\n")
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
	Src netip.Addr `json:"src,omitzero"`
	// Src6 is From's IPv6 address, matched the same way (ip6 saddr) when From has one.
	Src6  netip.Addr `json:"src6,omitzero"`
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
	if im == nil || !im.NeedsNetem() {
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
