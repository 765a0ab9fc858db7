package partition

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"sort"
	"strings"
)

// Guest is one guest of a run as partition sees it.
type Guest struct {
	// Name is the guest's name (the child's name). Empty means "use the IP".
	Name string `json:"name"`
	// IP is the guest's IPv4 address on the bridge.
	IP netip.Addr `json:"ip"`
	// IP6 is the guest's IPv6 address on the bridge, if it has one: partitions and
	// impairments then hold for its IPv6 traffic exactly as for its IPv4 traffic.
	IP6 netip.Addr `json:"ip6,omitzero"`
	// Port is the name of the guest's veth port inside the bridge namespace.
	// A port that does not exist does not stop Apply: the bridge backend
	// matches ports by name, and the netdev backend skips it on kernels
	// before 6.16 (newer ones keep its chain until the port appears).
	Port string `json:"port"`
	// NetnsPath, when set, is a path to the guest's network namespace (e.g.
	// /proc/PID/ns/net or /run/netns/NAME). A rate limit or netem setting on
	// the guest shapes what the guest sends on its GuestIface in there, so
	// such an impairment needs it. The Cut option also uses it to close
	// already-open TCP connections actively; without it Cut still resets them
	// on their next segment.
	NetnsPath string `json:"netns_path,omitempty"`
	// away marks a guest that left the bridge, which a refresh compiles the state for all
	// the same (withDeparted): it has no port or namespace left to shape or to cut in.
	away bool
}

// Target is the bridge of one run: where partitions are enforced and where
// their state is kept.
type Target struct {
	// NetnsPath is a path to the bridge network namespace of the run.
	NetnsPath string
	// Bridge is the bridge device in that namespace (e.g. "br0"). Rules are
	// attached to the guests' ports, so it is informational.
	Bridge string
	// StateDir is the run's state directory; partition keeps partition.json
	// and partition.lock there.
	StateDir string
	// Guests are the guests attached to the bridge.
	Guests []Guest
	// Source and What are logged with every change made through this Target, in the
	// bridge's event log (package eventlog, in StateDir): who asked (SourceCLI, SourceTestenv,
	// ...; DefaultSource when empty) and what, in the asker's words (when empty, the change
	// is described in CLI words).
	Source, What string
	// Sets names the parts of the state a change through this Target sets, whatever their
	// value (SetsAll, SetsPartition, SetsSetting); a part it changes counts anyway. A change
	// with a deadline holds those parts until it ends, and one without takes them for good
	// from any pending (see Timed).
	Sets []string
	// Restorer names who will restore a change with a deadline made through this Target
	// (Timed.Restorer).
	Restorer string
	// guests, set by ForBridge, reads the guests again once a change holds
	// the bridge's lock, so that a guest attached meanwhile is not left out.
	guests func() ([]Guest, error)
	// services, set by ForBridge, reads the bridge's services for their rules (service.go);
	// without it a change leaves the service table alone.
	services func() (*serviceSpec, error)
	// bridgeProblems, set by ForBridge, reads back what the bridge's namespace enforces
	// besides the partition (netsetup.BridgeProblems), for Status.
	bridgeProblems func() ([]string, error)
	// netnsID, set by ForBridge, is the identity of the bridge's namespace when the target
	// was made: a change checks it (sameBridge), so that one that waited while the bridge was
	// destroyed and made again under its name does not land on the new bridge.
	netnsID uint64
}

// Pair is one ordered pair of guests, by name: packets from Src to Dst.
type Pair struct {
	Src string `json:"src"`
	Dst string `json:"dst"`
}

// String renders the pair as "src->dst".
func (p Pair) String() string { return p.Src + "->" + p.Dst }

// Partition is a connectivity: the set of ordered guest pairs whose packets
// are lost. A pair absent from Blocked flows. Blocked is kept sorted and free
// of duplicates by every constructor.
type Partition struct {
	// Kind is the constructor that built it: fullmesh, isolate, disjoint,
	// split, block, random-halves, random-node, bridge, majorities-ring,
	// or "custom" for unions.
	Kind string `json:"kind"`
	// Description says in words what was chosen, including random choices and
	// their seed, e.g. "random-halves seed 7: a c | b d e".
	Description string `json:"description"`
	// Blocked lists the ordered pairs whose packets are lost.
	Blocked []Pair `json:"blocked"`
	// Order, when set, lists guests in the order that makes the partition's
	// structure plain (the ring of a majorities ring, one half then the
	// other): the kernel's encoding follows it and stays small. It never
	// changes which pairs are blocked.
	Order []string `json:"order,omitempty"`
}

// Blocks reports whether packets from src to dst are lost.
func (p Partition) Blocks(src, dst string) bool {
	_, found := slices.BinarySearchFunc(p.Blocked, Pair{src, dst}, comparePairs)
	return found
}

// IsFullmesh reports whether nothing is blocked.
func (p Partition) IsFullmesh() bool { return len(p.Blocked) == 0 }

// Union returns a partition blocking every pair either p or q blocks, so that
// e.g. a one-way block can be combined with an isolation.
func (p Partition) Union(q Partition) Partition {
	all := append(slices.Clone(p.Blocked), q.Blocked...)
	desc := strings.TrimSpace(strings.Join(nonEmpty(p.Description, q.Description), " + "))
	return Partition{Kind: "custom", Description: desc, Blocked: normPairs(all), Order: dedupe(append(slices.Clone(p.Order), q.Order...))}
}

func nonEmpty(s ...string) []string {
	var out []string
	for _, x := range s {
		if x != "" {
			out = append(out, x)
		}
	}
	return out
}

func comparePairs(a, b Pair) int {
	if c := strings.Compare(a.Src, b.Src); c != 0 {
		return c
	}
	return strings.Compare(a.Dst, b.Dst)
}

func normPairs(ps []Pair) []Pair {
	slices.SortFunc(ps, comparePairs)
	ps = slices.Compact(ps)
	if ps == nil {
		ps = []Pair{}
	}
	return ps
}

// guestSet is the validated, name-indexed view of a run's guests used by every
// constructor, so that guests can be named by name, IP or port.
type guestSet struct {
	list   []Guest // sorted by name
	byName map[string]int
	byRef  map[string]int
}

func newGuestSet(guests []Guest) (*guestSet, error) {
	gs := &guestSet{byName: map[string]int{}, byRef: map[string]int{}}
	list := make([]Guest, 0, len(guests))
	for i, g := range guests {
		if !g.IP.Is4() {
			return nil, fmt.Errorf("guest %d (%q): IP %q is not an IPv4 address", i, g.Name, g.IP)
		}
		if g.IP6.IsValid() && (!g.IP6.Is6() || g.IP6.Is4In6()) {
			return nil, fmt.Errorf("guest %d (%q): IP6 %q is not an IPv6 address", i, g.Name, g.IP6)
		}
		if g.Name == "" {
			g.Name = g.IP.String()
		}
		if g.Port == "" {
			return nil, fmt.Errorf("guest %q: port is empty; set Port to the guest's veth port in the bridge namespace (e.g. g%d)", g.Name, g.IP.As4()[3])
		}
		if len(g.Port) > 15 {
			return nil, fmt.Errorf("guest %q: port name %q is longer than 15 characters", g.Name, g.Port)
		}
		list = append(list, g)
	}
	sort.Slice(list, func(i, j int) bool { return list[i].Name < list[j].Name })
	for i, g := range list {
		if _, dup := gs.byName[g.Name]; dup {
			return nil, fmt.Errorf("guest name %q is used twice; guest names must be unique", g.Name)
		}
		gs.byName[g.Name] = i
		refs := []string{g.IP.String(), g.Port}
		if g.IP6.IsValid() {
			refs = append(refs, g.IP6.String())
		}
		for _, ref := range refs {
			if j, dup := gs.byRef[ref]; dup && list[j].Name != g.Name {
				return nil, fmt.Errorf("guests %q and %q share %q; IPs and ports must be unique", list[j].Name, g.Name, ref)
			}
			gs.byRef[ref] = i
		}
	}
	gs.list = list
	return gs, nil
}

// resolve finds a guest by name, IP or port name.
func (gs *guestSet) resolve(ref string) (Guest, error) {
	if i, ok := gs.byName[ref]; ok {
		return gs.list[i], nil
	}
	if i, ok := gs.byRef[ref]; ok {
		return gs.list[i], nil
	}
	return Guest{}, fmt.Errorf("unknown guest %q; known guests: %s", ref, gs.known())
}

func (gs *guestSet) known() string {
	if len(gs.list) == 0 {
		return "(none)"
	}
	parts := make([]string, len(gs.list))
	for i, g := range gs.list {
		parts[i] = g.Name + " (" + g.IP.String() + ")"
	}
	return strings.Join(parts, ", ")
}

func (gs *guestSet) names() []string {
	out := make([]string, len(gs.list))
	for i, g := range gs.list {
		out[i] = g.Name
	}
	return out
}

// resolveAll maps references to guest names, keeping order and rejecting a
// guest listed twice in the same group.
func (gs *guestSet) resolveAll(field string, refs []string) ([]string, error) {
	out := make([]string, 0, len(refs))
	seen := map[string]bool{}
	for _, r := range refs {
		g, err := gs.resolve(r)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", field, err)
		}
		if seen[g.Name] {
			return nil, fmt.Errorf("%s: guest %q is listed twice", field, g.Name)
		}
		seen[g.Name] = true
		out = append(out, g.Name)
	}
	return out, nil
}

// Fullmesh returns the partition that blocks nothing: every guest reaches
// every other one. Applying it heals every partition (impairments are part of
// State and are replaced separately).
func Fullmesh() Partition {
	return Partition{Kind: "fullmesh", Description: "fullmesh", Blocked: []Pair{}}
}

// Isolate cuts each listed guest off from every other guest, the listed ones
// included: no packet leaves or reaches an isolated guest from another guest.
func Isolate(guests []Guest, nodes ...string) (Partition, error) {
	gs, err := newGuestSet(guests)
	if err != nil {
		return Partition{}, err
	}
	if len(nodes) == 0 {
		return Partition{}, fmt.Errorf("isolate: no guest given; name at least one of: %s", gs.known())
	}
	iso, err := gs.resolveAll("isolate", nodes)
	if err != nil {
		return Partition{}, err
	}
	return isolate(gs, iso, "isolate "+strings.Join(iso, " ")), nil
}

func isolate(gs *guestSet, iso []string, desc string) Partition {
	var blocked []Pair
	for _, a := range iso {
		for _, b := range gs.names() {
			if a != b {
				blocked = append(blocked, Pair{a, b}, Pair{b, a})
			}
		}
	}
	return Partition{Kind: "isolate", Description: desc, Blocked: normPairs(blocked), Order: iso}
}

// Disjoint splits the guests into groups that share no guest: guests talk
// only within their own group. Every guest must appear in exactly one group;
// otherwise the error names the missing or duplicated guest.
func Disjoint(guests []Guest, groups [][]string) (Partition, error) {
	gs, err := newGuestSet(guests)
	if err != nil {
		return Partition{}, err
	}
	named, err := resolveGroups(gs, "disjoint", groups)
	if err != nil {
		return Partition{}, err
	}
	where := map[string]int{}
	for gi, grp := range named {
		for _, n := range grp {
			if prev, dup := where[n]; dup {
				return Partition{}, fmt.Errorf("disjoint: guest %q is in group %d and group %d; each guest must be in exactly one group (use split for overlapping groups)", n, prev+1, gi+1)
			}
			where[n] = gi
		}
	}
	var missing []string
	for _, n := range gs.names() {
		if _, ok := where[n]; !ok {
			missing = append(missing, n)
		}
	}
	if len(missing) > 0 {
		return Partition{}, fmt.Errorf("disjoint: guest(s) %s are in no group; every guest must be in exactly one group (use split to isolate unlisted guests)", strings.Join(missing, ", "))
	}
	p := connectGroups(gs, named)
	p.Kind = "disjoint"
	p.Description = "disjoint " + groupsString(named)
	return p, nil
}

// Split lets two guests talk when some group contains both. Groups may
// overlap (a guest in two groups talks to both); guests in no group are
// isolated.
func Split(guests []Guest, groups [][]string) (Partition, error) {
	gs, err := newGuestSet(guests)
	if err != nil {
		return Partition{}, err
	}
	named, err := resolveGroups(gs, "split", groups)
	if err != nil {
		return Partition{}, err
	}
	p := connectGroups(gs, named)
	p.Kind = "split"
	p.Description = "split " + groupsString(named)
	return p, nil
}

// Block makes packets from each guest in from to each guest in to lost, one
// way: replies and traffic in the other direction still flow.
func Block(guests []Guest, from, to []string) (Partition, error) {
	gs, err := newGuestSet(guests)
	if err != nil {
		return Partition{}, err
	}
	if len(from) == 0 || len(to) == 0 {
		return Partition{}, fmt.Errorf("block: need at least one source and one destination guest (block SRC.. -- DST..); known guests: %s", gs.known())
	}
	src, err := gs.resolveAll("block source", from)
	if err != nil {
		return Partition{}, err
	}
	dst, err := gs.resolveAll("block destination", to)
	if err != nil {
		return Partition{}, err
	}
	var blocked []Pair
	for _, a := range src {
		for _, b := range dst {
			if a == b {
				return Partition{}, fmt.Errorf("block: guest %q is both a source and a destination; a guest cannot be cut from itself", a)
			}
			blocked = append(blocked, Pair{a, b})
		}
	}
	return Partition{
		Kind:        "block",
		Description: fmt.Sprintf("block %s -> %s", strings.Join(src, " "), strings.Join(dst, " ")),
		Blocked:     normPairs(blocked),
		Order:       dedupe(append(slices.Clone(src), dst...)),
	}, nil
}

func resolveGroups(gs *guestSet, kind string, groups [][]string) ([][]string, error) {
	if len(groups) == 0 {
		return nil, fmt.Errorf("%s: no group given; write groups separated by --, e.g. %s a b -- c", kind, kind)
	}
	out := make([][]string, len(groups))
	for i, grp := range groups {
		if len(grp) == 0 {
			return nil, fmt.Errorf("%s: group %d is empty", kind, i+1)
		}
		named, err := gs.resolveAll(fmt.Sprintf("%s group %d", kind, i+1), grp)
		if err != nil {
			return nil, err
		}
		out[i] = named
	}
	return out, nil
}

// connectGroups blocks every pair of distinct guests that share no group.
func connectGroups(gs *guestSet, groups [][]string) Partition {
	member := map[string][]int{}
	for gi, grp := range groups {
		for _, n := range grp {
			member[n] = append(member[n], gi)
		}
	}
	share := func(a, b string) bool {
		for _, x := range member[a] {
			if slices.Contains(member[b], x) {
				return true
			}
		}
		return false
	}
	var blocked []Pair
	names := gs.names()
	for _, a := range names {
		for _, b := range names {
			if a != b && !share(a, b) {
				blocked = append(blocked, Pair{a, b})
			}
		}
	}
	return Partition{Blocked: normPairs(blocked), Order: dedupe(slices.Concat(groups...))}
}

// dedupe keeps the first occurrence of every name.
func dedupe(names []string) []string {
	seen := make(map[string]bool, len(names))
	out := make([]string, 0, len(names))
	for _, n := range names {
		if !seen[n] {
			seen[n] = true
			out = append(out, n)
		}
	}
	return out
}

func groupsString(groups [][]string) string {
	parts := make([]string, len(groups))
	for i, g := range groups {
		parts[i] = strings.Join(g, " ")
	}
	return strings.Join(parts, " | ")
}

// ErrNoGuests is returned by constructors that need guests when there are too
// few to build the requested partition.
var ErrNoGuests = errors.New("not enough guests")
