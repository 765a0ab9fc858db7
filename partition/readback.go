package partition

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"maps"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"github.com/google/nftables/userdata"
	"github.com/pontoon-dev/pontoon/internal/nftpool"
	"github.com/pontoon-dev/pontoon/internal/nftrule"
	"github.com/pontoon-dev/pontoon/internal/nftwire"
	"github.com/pontoon-dev/pontoon/netsetup"
	"golang.org/x/sys/unix"
)

// What the kernel holds is read back rather than assumed: a commit whose
// answer was lost (a full socket buffer, a killed process) may or may not
// have happened, and someone may have changed or removed the table since.

// kernelTable is the partition table as the kernel has it.
type kernelTable struct {
	// Present lists the backends whose family holds the table (normally at
	// most one); the rest describes the first.
	Present []Backend
	Marker  string
	Classes Classes
	// Reject and Cut say whether the filter chain answers blocked packets
	// (reject mode) or resets open connections (Cut in drop mode).
	Reject, Cut bool
	// Chains names the table's chains.
	Chains []string
	// Foreign names the namespace's tables that are none of pontoon's ("family name").
	Foreign []string
	// ChainOf has the chains of Chains by name, where the kernel has them.
	ChainOf map[string]nftwire.Chain
	// InUse is the set buffer the rules use; -1 when none.
	InUse int
	// Dormant names pontoon's tables in the namespace made dormant ("family name"): none of
	// their rules run.
	Dormant []string
}

// marker names a rule set in the kernel: the record's generation and a hash
// of the rule set, so neither an old table nor a different one passes for it.
// The chains enter by their fingerprints (see seal): rendering the rules is
// most of what a plan costs, so it is done once.
func marker(generation uint64, rs RuleSet) string {
	b := make([]byte, 0, 64*(1+len(rs.Classes.Sources)+len(rs.Classes.Dests)+len(rs.Classes.Runs)+len(rs.Chains)))
	b = append(append(b, rs.Backend...), '\n')
	for _, p := range rs.Classes.Sources {
		b = append(append(b, "s "...), p.Port...)
		b = append(strconv.AppendUint(append(b, ' '), uint64(p.Row), 10), '\n')
	}
	for _, d := range rs.Classes.Dests {
		b = d.IP.AppendTo(append(b, "d "...))
		b = d.IP6.AppendTo(append(b, ' '))
		b = append(append(b, ' '), d.Port...)
		b = append(strconv.AppendUint(append(b, ' '), uint64(d.Col), 10), '\n')
	}
	for _, r := range rs.Classes.Runs {
		b = strconv.AppendUint(append(b, "r "...), uint64(r.Row), 10)
		b = strconv.AppendUint(append(b, ' '), uint64(r.From), 10)
		b = append(strconv.AppendUint(append(b, ' '), uint64(r.To), 10), '\n')
	}
	sums := rs.chainSums()
	for _, c := range rs.Chains {
		b = append(append(b, "c "...), c.Name...)
		b = append(strconv.AppendUint(append(b, ' '), sums[c.Name], 16), '\n')
	}
	h := fnv.New64a()
	_, _ = h.Write(b)
	return fmt.Sprintf("pontoon generation %d plan %016x classes %016x%s", generation, h.Sum64(), classDigest(rs.Classes), taggedRules)
}

// classDigest fingerprints the content of the class maps and the blocked set, one entry per
// element as the kernel holds them, in any order (a sum of the entries' hashes): Status
// compares the kernel's with the one in the marker, so an element removed or changed by hand
// in any map, IPv6 and port maps included, is seen.
func classDigest(c Classes) uint64 {
	var sum uint64
	b := make([]byte, 0, 64)
	add := func(b []byte) {
		h := fnv.New64a()
		_, _ = h.Write(b)
		sum += h.Sum64()
	}
	for _, s := range c.Sources {
		add(strconv.AppendUint(append(append(b[:0], "s "...), s.Port...), uint64(s.Row), 10))
	}
	for _, d := range c.Dests {
		if d.IP.IsValid() {
			add(strconv.AppendUint(d.IP.AppendTo(append(b[:0], "d "...)), uint64(d.Col), 10))
		}
		if d.IP6.IsValid() {
			add(strconv.AppendUint(d.IP6.AppendTo(append(b[:0], "d6 "...)), uint64(d.Col), 10))
		}
		if d.Port != "" {
			add(strconv.AppendUint(append(append(b[:0], "p "...), d.Port...), uint64(d.Col), 10))
		}
	}
	for _, r := range c.Runs {
		b = strconv.AppendUint(append(b[:0], "r "...), uint64(r.Row), 10)
		b = strconv.AppendUint(append(b, ' '), uint64(r.From), 10)
		add(strconv.AppendUint(append(b, ' '), uint64(r.To), 10))
	}
	return sum
}

// classProblems compares the kernel's class maps with the digest in the marker of the table
// in force (which is st's), when the marker carries one.
func classProblems(kt kernelTable, st Record) []string {
	_, digest, ok := strings.Cut(kt.Marker, " classes ")
	if len(kt.Present) != 1 || !st.Table || kt.Marker != st.Marker || !ok {
		return nil
	}
	digest, _, _ = strings.Cut(digest, " ")
	if want, err := strconv.ParseUint(digest, 16, 64); err == nil && want != classDigest(kt.Classes) {
		return []string{"the class maps hold other elements than were committed (a set edited by hand)"}
	}
	return nil
}

// taggedRules ends the marker of a table whose rules carry their tags (ruleTag); the rules
// of a table committed before they did cannot be checked.
const taggedRules = " tagged"

// chainsRead is what status reads of the partition table's rules, in one exchange.
type chainsRead struct {
	tags   map[string][]string       // each rule's tag ("" for a rule without one), by chain
	rules  map[string][]nftwire.Rule // the rules as the kernel encodes them, by chain
	chains map[string]nftwire.Chain  // by name (kernelTable.ChainOf)
	marker string                    // the table's marker, read last
}

// readChains reads the rules of the table's chains (listed already by readKernel), and then
// its marker: a change committed while they were read shows as another marker than the one
// the chains were listed with.
func readChains(nsPath string, b Backend, chains map[string]nftwire.Chain) (chainsRead, error) {
	read := chainsRead{tags: map[string][]string{}, rules: map[string][]nftwire.Rule{}, chains: chains}
	for name := range chains {
		read.tags[name] = []string{}
	}
	err := nftpool.WithConn(nsPath, func(c *nftwire.Conn) error {
		rules, err := c.Rules(b.nftFamily(), TableName)
		if err != nil {
			return err
		}
		for _, r := range rules {
			tag, _ := userdata.GetString(r.UserData, userdata.TypeComment)
			read.tags[r.Chain] = append(read.tags[r.Chain], tag)
			read.rules[r.Chain] = append(read.rules[r.Chain], r)
		}
		if els, err := nftwire.SetElements(c.Conn, markerSet(nftTable(b))); err == nil {
			for _, el := range els {
				if be(el.Key) == markerKey {
					read.marker = el.Comment
				}
			}
		}
		return nil
	})
	return read, err
}

// checkRules compares the rules of the table's chains (tags, from readChains) with the
// chains committed (their fingerprints, Record.Chains), and says what differs: a chain
// removed, emptied, cut short, added to or rewritten by hand, or one pontoon did not make.
// The chain of a port that is gone is gone with it (the kernel removes a device's netdev
// chain), which enforces nothing less. present tells whether a port exists.
func checkRules(committed map[string]uint64, tags map[string][]string, present func(port string) bool) []string {
	var problems []string
	for _, name := range slices.Sorted(maps.Keys(committed)) {
		sum := committed[name]
		got, ok := tags[name]
		if !ok {
			port, isPort := strings.CutPrefix(name, "in_")
			if !isPort {
				port, isPort = strings.CutPrefix(name, "out_")
			}
			if !isPort || present(port) {
				problems = append(problems, fmt.Sprintf("chain %s is gone", name))
			}
			continue
		}
		if want := ruleCount(sum); len(got) != want {
			problems = append(problems, fmt.Sprintf("chain %s holds %d rules, not the %d committed", name, len(got), want))
			continue
		}
		for i, tag := range got {
			if want := string(ruleTag(sum, i)[2:]); tag+"\x00" != want {
				problems = append(problems, fmt.Sprintf("rule %d of chain %s is not the one committed", i+1, name))
				break
			}
		}
	}
	for _, name := range slices.Sorted(maps.Keys(tags)) {
		if _, ok := committed[name]; !ok {
			problems = append(problems, fmt.Sprintf("chain %s is not pontoon's", name))
		}
	}
	return problems
}

// readKernel reads the partition table of the namespace at nsPath.
func readKernel(nsPath string) (kernelTable, error) {
	var kt kernelTable
	err := nftpool.WithConn(nsPath, func(w *nftwire.Conn) error {
		c := w.Conn
		tables, err := c.ListTables()
		if err != nil {
			return fmt.Errorf("list nftables tables in %q: %w", nsPath, err)
		}
		for _, b := range backends {
			if slices.ContainsFunc(tables, func(t *nftables.Table) bool { return t.Name == TableName && t.Family == b.nftFamily() }) {
				kt.Present = append(kt.Present, b)
			}
		}
		for _, t := range tables {
			name := nftrule.FamilyName(t.Family) + " " + t.Name
			if !pontoonTable(t) {
				kt.Foreign = append(kt.Foreign, name)
			} else if nftwire.TableFlags(t)&unix.NFT_TABLE_F_DORMANT != 0 {
				kt.Dormant = append(kt.Dormant, name)
			}
		}
		if len(kt.Present) == 0 {
			return nil
		}
		b := kt.Present[0]
		t := nftTable(b)
		now, err := readTableNow(w, b)
		if err != nil {
			return err
		}
		kt.Chains, kt.ChainOf, kt.InUse = now.chains, now.hooks, now.inUse
		elements := func(name string) ([]nftables.SetElement, error) {
			set, err := c.GetSetByName(t, name)
			if err != nil {
				return nil, fmt.Errorf("read set %s of table %s %s: %w", name, b.Family(), TableName, err)
			}
			els, err := nftwire.SetElements(c, set)
			if err != nil {
				return nil, fmt.Errorf("read elements of set %s: %w", name, err)
			}
			return els, nil
		}
		applied, err := elements(MarkerSet)
		if err != nil {
			return err
		}
		for _, el := range applied {
			if be(el.Key) == markerKey {
				kt.Marker = el.Comment
			}
		}
		if now.inUse >= 0 {
			if err := kt.readClasses(func(name string) ([]nftables.SetElement, error) {
				return elements(bufferName(name, now.inUse))
			}); err != nil {
				return err
			}
		}
		if !slices.Contains(now.chains, FilterChain) {
			return nil
		}
		rules, err := c.GetRules(t, &nftables.Chain{Name: FilterChain, Table: t})
		if err != nil {
			return fmt.Errorf("read chain %s of table %s %s: %w", FilterChain, b.Family(), TableName, err)
		}
		for _, r := range rules {
			for _, e := range r.Exprs {
				if rj, ok := e.(*expr.Reject); ok {
					if rj.Type == unix.NFT_REJECT_ICMPX_UNREACH {
						kt.Reject = true
					} else {
						kt.Cut = true
					}
				}
				// A counting rule rejects in its counting chain (stats.go).
				if v, ok := e.(*expr.Verdict); ok && v.Kind == expr.VerdictJump {
					switch countingAction(v.Chain) {
					case ActionRejectAdmin:
						kt.Reject = true
					case ActionRejectTCPReset:
						kt.Cut = true
					}
				}
			}
		}
		kt.Cut = kt.Cut && !kt.Reject
		sortRunsOf(kt.Classes.Runs)
		return nil
	})
	return kt, err
}

// readClasses reads the class matrix from the sets elements returns.
func (kt *kernelTable) readClasses(elements func(name string) ([]nftables.SetElement, error)) error {
	runs, err := elements(BlockedSet)
	if err != nil {
		return err
	}
	for _, el := range runs {
		if len(el.Key) == 8 && len(el.KeyEnd) == 8 {
			kt.Classes.Runs = append(kt.Classes.Runs, ClassRun{Row: be(el.Key[:4]), From: be(el.Key[4:]), To: be(el.KeyEnd[4:])})
		}
	}
	src, err := elements(SourceMap)
	if err != nil {
		return err
	}
	for _, el := range src {
		kt.Classes.Sources = append(kt.Classes.Sources, PortClass{Port: ifnameOf(el.Key), Row: be(el.Val)})
	}
	dst, err := elements(DestMap)
	if err != nil {
		return err
	}
	for _, el := range dst {
		if len(el.Key) == 4 {
			kt.Classes.Dests = append(kt.Classes.Dests, DestClass{IP: netip.AddrFrom4([4]byte(el.Key)), Col: be(el.Val)})
		}
	}
	// A table written before IPv6 was covered has no such map: nothing is blocked by IPv6
	// address then.
	dst6, err := elements(DestMap6)
	if err != nil && !errors.Is(err, unix.ENOENT) {
		return err
	}
	for _, el := range dst6 {
		if len(el.Key) == 16 {
			kt.Classes.Dests = append(kt.Classes.Dests, DestClass{IP6: netip.AddrFrom16([16]byte(el.Key)), Col: be(el.Val)})
		}
	}
	ports, err := elements(DestPortMap)
	if err != nil {
		return err
	}
	for _, el := range ports {
		kt.Classes.Dests = append(kt.Classes.Dests, DestClass{Port: ifnameOf(el.Key), Col: be(el.Val)})
	}
	return nil
}

func be(b []byte) uint32 {
	if len(b) < 4 {
		return 0
	}
	return binary.BigEndian.Uint32(b)
}

func sortRunsOf(runs []ClassRun) {
	slices.SortFunc(runs, func(a, b ClassRun) int {
		if a.Row != b.Row {
			return int(a.Row) - int(b.Row)
		}
		return int(a.From) - int(b.From)
	})
}

// blockedPairs lists the guest pairs the kernel's class matrix blocks, with
// guests known by their port (sources) and their address (destinations), as
// the kernel knows them. Ports and addresses of no guest are named as such.
func (kt kernelTable) blockedPairs(guests []Guest, recorded []BlockedPair, compiledFor []Guest) []BlockedPair {
	byPort := map[string]Guest{}
	byIP := map[netip.Addr]Guest{}
	here := map[string]bool{}
	for _, g := range guests {
		byPort[g.Port] = g
		byIP[g.IP] = g
		here[g.Name] = true
	}
	// The guests the rules were compiled for name a departed guest's port and address as
	// they were, where no guest here holds them now.
	for _, g := range compiledFor {
		if here[g.Name] {
			continue
		}
		if _, ok := byPort[g.Port]; !ok && g.Port != "" {
			byPort[g.Port] = g
		}
		if _, ok := byIP[g.IP]; !ok && g.IP.IsValid() {
			byIP[g.IP] = g
		}
	}
	// A guest that has left the bridge keeps its classes in the kernel until the next change
	// (it may come back, as a restarted container does). It is named as the record names it:
	// its address from the record's pairs, its port by the column class the kernel gives both
	// (when that class is its alone). Only a guest not on the bridge now: the old port or
	// address of one that is (back on a new port or address) is no pair of its own, and
	// must not pass for one.
	for _, p := range recorded {
		for _, g := range []Guest{{Name: p.Src, IP: p.SrcIP, IP6: p.SrcIP6}, {Name: p.Dst, IP: p.DstIP, IP6: p.DstIP6}} {
			if _, ok := byIP[g.IP]; !ok && g.IP.IsValid() && !here[g.Name] {
				byIP[g.IP] = g
			}
		}
	}
	colIPs := map[uint32][]netip.Addr{}
	for _, d := range kt.Classes.Dests {
		if d.IP.IsValid() {
			colIPs[d.Col] = append(colIPs[d.Col], d.IP)
		}
	}
	for _, d := range kt.Classes.Dests {
		if _, ok := byPort[d.Port]; ok || d.Port == "" || len(colIPs[d.Col]) != 1 {
			continue
		}
		if g, ok := byIP[colIPs[d.Col][0]]; ok && !here[g.Name] {
			byPort[d.Port] = g
		}
	}
	var out []BlockedPair
	for _, s := range kt.Classes.Sources {
		src, ok := byPort[s.Port]
		if !ok {
			src = Guest{Name: "port " + s.Port}
		}
		for _, d := range kt.Classes.Dests {
			if !d.IP.IsValid() || !kt.Classes.blocks(s.Row, d.Col) {
				continue
			}
			dst, ok := byIP[d.IP]
			if !ok {
				dst = Guest{Name: d.IP.String(), IP: d.IP}
			}
			if src.Name == dst.Name {
				continue
			}
			out = append(out, BlockedPair{Src: src.Name, Dst: dst.Name, SrcIP: src.IP, DstIP: d.IP, SrcIP6: src.IP6, DstIP6: kt.ip6Col(dst.IP6, s.Row)})
		}
	}
	slices.SortFunc(out, func(a, b BlockedPair) int { return comparePairs(Pair{a.Src, a.Dst}, Pair{b.Src, b.Dst}) })
	return out
}

// blocks reports whether a run blocks row class row from column class col.
func (c Classes) blocks(row, col uint32) bool {
	for _, r := range c.Runs {
		if r.Row == row && r.From <= col && col <= r.To {
			return true
		}
	}
	return false
}

// sameClasses compares two class matrices as sets of elements. Destinations
// are compared by address and by port separately, as the kernel keeps them.
func sameClasses(a, b Classes) bool {
	key := func(c Classes) map[string]int {
		m := map[string]int{}
		for _, s := range c.Sources {
			m[fmt.Sprintf("s %s %d", s.Port, s.Row)]++
		}
		for _, d := range c.Dests {
			if d.IP.IsValid() {
				m[fmt.Sprintf("d %s %d", d.IP, d.Col)]++
			}
			if d.IP6.IsValid() {
				m[fmt.Sprintf("d6 %s %d", d.IP6, d.Col)]++
			}
			if d.Port != "" {
				m[fmt.Sprintf("p %s %d", d.Port, d.Col)]++
			}
		}
		for _, r := range c.Runs {
			m[fmt.Sprintf("r %d %d %d", r.Row, r.From, r.To)]++
		}
		return m
	}
	return maps.Equal(key(a), key(b))
}

// ruleProblems checks the rules of the table in force against the chains st committed (see
// checkRules), when the table is st's and its rules carry tags.
func ruleProblems(nsPath string, kt kernelTable, st Record, guests []Guest) []string {
	if len(kt.Present) != 1 || !st.Table || kt.Marker != st.Marker || !strings.HasSuffix(kt.Marker, taggedRules) {
		return nil
	}
	read, err := readChains(nsPath, kt.Present[0], kt.ChainOf)
	if err != nil {
		return []string{err.Error()}
	}
	if read.marker != kt.Marker {
		return nil // a change committed meanwhile: the chains read are of no one state
	}
	var problems []string
	for _, name := range slices.Sorted(maps.Keys(read.chains)) {
		// All of pontoon's base chains accept: a policy drop set by hand cuts a port off.
		if ch := read.chains[name]; ch.Hooked && ch.Policy != uint32(nftables.ChainPolicyAccept) {
			problems = append(problems, fmt.Sprintf("chain %s has a policy that drops (set by hand)", name))
		}
	}
	var links map[string]bool
	problems = append(problems, checkRules(st.Chains, read.tags, func(port string) bool {
		if links == nil {
			if links, err = presentLinks(nsPath); err != nil {
				return true // unknown: the chain's absence is reported
			}
		}
		return links[port]
	})...)
	if len(problems) > 0 {
		return problems // the content of rules already reported as not the ones committed
	}
	return contentProblems(kt, st, guests, read)
}

// pontoonTable tells pontoon's own tables in a bridge's namespace by name and family: the
// bridge's (NAT in ip and ip6, port security in bridge), the services' and the partition's.
// A table of another family under one of their names is another tool's, or made by hand.
func pontoonTable(t *nftables.Table) bool {
	switch t.Name {
	case TableName:
		_, ok := backendOf(t.Family)
		return ok
	case ServiceTable:
		return t.Family == serviceTable().Family
	case netsetup.TableName:
		return t.Family == nftables.TableFamilyIPv4 || t.Family == nftables.TableFamilyIPv6 || t.Family == nftables.TableFamilyBridge
	}
	return false
}
