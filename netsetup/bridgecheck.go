package netsetup

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/google/nftables"
	"github.com/pontoon-dev/pontoon/internal/kernel"
	"github.com/pontoon-dev/pontoon/internal/nftpool"
	"github.com/pontoon-dev/pontoon/internal/nftwire"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// A bridge's guarantees live in its namespace, where root can change them by hand: a rule of
// pontoon's tables deleted or rewritten, a chain's policy set to drop, an identity added to
// the set of guest MAC . IP pairs, a guest port unlocked or given a forwarding entry for
// another MAC. Any of these lets a guest pass for another, or cuts one off, while pontoon's
// records say nothing changed; BridgeProblems reads them back.

// BridgeProblems compares what the kernel holds in the bridge's namespace with what pontoon
// set up there: the chains (where they hook, their policy) and rules of pontoon's tables and
// the elements of their static sets, every guest's port (portSecurityProblems), and the
// namespace's own settings (namespaceProblems). It returns what differs, a sentence each;
// none while a bridge is being created or removed.
func BridgeProblems(env Env, name string) ([]string, error) {
	if err := checkName("bridge", name); err != nil {
		return nil, err
	}
	st := env.store()
	var problems []string
	// Under the state lock: an attach or a forward changing the namespace meanwhile would pass
	// for a change by hand.
	err := st.lockedIfAny(func() error {
		plan, _, err := readyGateway(st)
		if err != nil {
			return err
		}
		b, err := st.bridge(name)
		switch {
		case err != nil:
			return err
		case b == nil:
			return fmt.Errorf("bridge %q: %w", name, ErrNoBridge)
		case b.Phase != PhaseReady:
			return nil
		}
		// What is read below is read through the pins: through a pin another tool hid or
		// covered, it fails with errors that say nothing of the cause, or reads another
		// namespace.
		env.findProblems(b)
		if problems = pinProblems(b); len(problems) > 0 {
			return nil
		}
		path := env.BridgeNetns(name)
		if problems, err = tablesProblems(path, plan, b); err != nil {
			return err
		}
		h, err := openHandle(path)
		if err != nil {
			return err
		}
		defer h.Close()
		pp, err := portSecurityProblems(h, b)
		np, nerr := namespaceProblems(h, plan)
		problems = append(append(append(problems, pp...), np...), exitedProblems(b)...)
		return errors.Join(err, nerr)
	})
	return problems, err
}

// settled reports whether every guest of b is ready: a guest on its way in or out (or whose
// command was killed on the way, until gc) has its forwards' rules and its own IPv6 binding
// in the kernel or not, depending on how far it got.
func settled(b *BridgeState) bool {
	for _, g := range b.Guests {
		if g.Phase != PhaseReady {
			return false
		}
	}
	return true
}

// tablesProblems compares the namespace's tables with those pontoon made for b.
func tablesProblems(nsPath string, plan Plan, b *BridgeState) ([]string, error) {
	// The elements binding guests' own IPv6 addresses: those of ready guests must be there,
	// those of any guest in the record may. Their derived ones, static otherwise, must be
	// gone for ready guests and may be for any.
	els := setChecks{need: map[string][]setElem{}, may: map[string][]setElem{}, banned: map[string][]setElem{}, spared: map[string]bool{}}
	for _, g := range b.Guests {
		if !ownIP6(plan, g) {
			continue
		}
		for _, e := range ownIP6Elems(g) {
			if g.Phase == PhaseReady {
				els.need[e.set] = append(els.need[e.set], e.elem)
			}
			els.may[e.set] = append(els.may[e.set], e.elem)
		}
		for _, e := range derivedIP6Elems(plan, g) {
			if g.Phase == PhaseReady {
				els.banned[e.set] = append(els.banned[e.set], e.elem)
			}
			els.spared[e.set+"\x00"+string(e.elem.key)] = true
		}
	}
	var problems []string
	err := nftpool.WithConn(nsPath, func(c *nftwire.Conn) error {
		for _, t := range bridgeTables(plan, b, bridgeL2Table(plan)) {
			if !settled(b) && t.family != nftables.TableFamilyBridge {
				continue // its forwards' rules follow the guests (see settled)
			}
			p, err := t.problems(c, els)
			if err != nil {
				return err
			}
			problems = append(problems, p...)
		}
		return nil
	})
	return problems, err
}

// setChecks are the elements beside a set's static ones that a check expects: need must be
// there, may can be, banned must not be, and a static one spared (by set and key) may be gone.
type setChecks struct {
	need, may, banned map[string][]setElem
	spared            map[string]bool
}

// problems says how the kernel's table differs from t, whose sets hold their static
// elements and els beside them.
func (t tableSpec) problems(c *nftwire.Conn, els setChecks) ([]string, error) {
	fam := t.nftFamily()
	where := "table " + t.familyName() + " " + TableName
	if _, err := c.ListTableOfFamily(TableName, fam); errors.Is(err, unix.ENOENT) {
		return []string{where + " is missing"}, nil
	} else if err != nil {
		return nil, fmt.Errorf("read %s: %w", where, err)
	}
	chains, err := c.Chains(fam, TableName)
	if err != nil {
		return nil, err
	}
	rules, err := c.Rules(fam, TableName)
	if err != nil {
		return nil, err
	}
	var problems []string
	add := func(format string, a ...any) { problems = append(problems, where+": "+fmt.Sprintf(format, a...)) }
	got := make(map[string]nftwire.Chain, len(chains))
	for _, ch := range chains {
		got[ch.Name] = ch
	}
	byChain := make(map[string][]nftwire.Rule)
	for _, r := range rules {
		byChain[r.Chain] = append(byChain[r.Chain], r)
	}
	for _, cs := range t.chains {
		ch, ok := got[cs.name]
		delete(got, cs.name)
		switch {
		case !ok:
			add("chain %s is missing", cs.name)
			continue
		case !ch.Hooked || ch.Hook != uint32(*cs.hook) || ch.Priority != int32(*cs.priority) || ch.Type != string(cs.typ):
			add("chain %s was re-created elsewhere by hand (type %s hook %d priority %d, not %s %s priority %d)",
				cs.name, ch.Type, ch.Hook, ch.Priority, cs.typ, hookName(*cs.hook), *cs.priority)
		case ch.Policy != uint32(nftables.ChainPolicyAccept):
			add("chain %s's policy was set to drop by hand: what no rule accepts is dropped", cs.name)
		}
		have := byChain[cs.name]
		if len(have) != len(cs.rules) {
			add("chain %s has %d rules, pontoon set up %d", cs.name, len(have), len(cs.rules))
			continue
		}
		for i, r := range cs.rules {
			if !nftwire.SameExprs(byte(fam), r.Exprs(), have[i].Exprs) {
				add("rule %d of chain %s was changed by hand (pontoon's: %s)", i+1, cs.name, r.Text())
				break
			}
		}
	}
	for name := range got {
		add("chain %s was added by hand", name)
	}
	for _, s := range t.sets {
		if s.timeout > 0 {
			continue // rules fill it
		}
		p, err := s.problems(c, &nftables.Table{Name: TableName, Family: fam}, els)
		if err != nil {
			return nil, err
		}
		for _, x := range p {
			add("%s", x)
		}
	}
	return problems, nil
}

// problems says which of s's elements, and of need, the kernel's set lacks, and which it
// holds beyond them and may.
func (s setSpec) problems(c *nftwire.Conn, tbl *nftables.Table, want setChecks) ([]string, error) {
	need, may := want.need[s.name], want.may[s.name]
	set, err := c.GetSetByName(tbl, s.name)
	if errors.Is(err, unix.ENOENT) {
		return []string{"set " + s.name + " is missing"}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read set %s: %w", s.name, err)
	}
	var problems []string
	if set.Interval {
		// A range element passes every address between its ends; its start may be a real pair.
		problems = append(problems, "set "+s.name+" was made again by hand as a set of ranges")
	}
	els, err := nftwire.SetElements(c.Conn, set)
	if err != nil {
		return nil, fmt.Errorf("list set %s: %w", s.name, err)
	}
	have := make(map[string]bool, len(els))
	for _, e := range els {
		have[string(e.Key)] = true
		if len(e.KeyEnd) > 0 {
			have[string(e.KeyEnd)] = true
		}
	}
	var kept []string
	for _, e := range want.banned[s.name] {
		if have[string(e.key)] {
			kept = append(kept, e.text(e.key))
		}
	}
	var missing []string
	for _, e := range slices.Concat(s.elems, need) {
		if !have[string(e.key)] && !want.spared[s.name+"\x00"+string(e.key)] {
			missing = append(missing, e.text(e.key))
		}
		delete(have, string(e.key))
	}
	if len(kept) > 0 {
		problems = append(problems, fmt.Sprintf("set %s still binds %d derived IPv6 addresses of guests given their own (each may send from both): %s",
			s.name, len(kept), firstFew(kept)))
	}
	for _, e := range may {
		delete(have, string(e.key))
	}
	if len(missing) > 0 {
		problems = append(problems, fmt.Sprintf("set %s lacks %d of its elements (deleted by hand; the guests they identify are cut off): %s",
			s.name, len(missing), firstFew(missing)))
	}
	if len(have) > 0 {
		var extra []string
		for k := range have {
			extra = append(extra, s.elemText([]byte(k)))
		}
		slices.Sort(extra)
		problems = append(problems, fmt.Sprintf("set %s holds %d elements pontoon did not put there (added by hand; a guest may pass for another): %s",
			s.name, len(extra), firstFew(extra)))
	}
	return problems, nil
}

// elemText writes a key of the set as nft does.
func (s setSpec) elemText(key []byte) string {
	if len(s.elems) > 0 && s.elems[0].text != nil && len(key) == len(s.elems[0].key) {
		return s.elems[0].text(key)
	}
	return fmt.Sprintf("0x%x", key)
}

func firstFew(s []string) string {
	if len(s) > 3 {
		return strings.Join(s[:3], ", ") + ", ..."
	}
	return strings.Join(s, ", ")
}

// portSecurityProblems checks the bridge's ports: each ready guest has its port, locked,
// learning nothing, flooding as the bridge does by default, with nothing attached that acts
// before the bridge (XDP) or takes its traffic (a backup port), and its guest's MAC as its
// one static forwarding entry; and no port is on the bridge that is no guest's.
func portSecurityProblems(h *handle, b *BridgeState) ([]string, error) {
	ports, err := h.Ports()
	if err != nil {
		return nil, err
	}
	fdb, err := h.NeighList(0, unix.AF_BRIDGE)
	if err != nil {
		return nil, fmt.Errorf("list the bridge's forwarding entries: %w", err)
	}
	byName := make(map[string]kernel.Port, len(ports))
	for _, p := range ports {
		byName[p.Name] = p
	}
	br := byName[BridgeDev]
	var problems []string
	guestPort := make(map[string]bool, len(b.Guests))
	for _, g := range b.Guests {
		guestPort[g.PortName()] = true
	}
	for _, p := range ports {
		// A port that is down passes nothing: the port of a guest that left is set down and
		// goes when the kernel has released its namespace, later.
		if p.Master != br.Index || br.Index == 0 || guestPort[p.Name] || p.Name == UplinkName || !p.Up {
			continue
		}
		// A guest's port outlives its record while the kernel removes its namespace.
		if l, err := h.LinkByIndex(p.Index); err == nil && h.PeerGoing(l) {
			continue
		}
		problems = append(problems, fmt.Sprintf("port %s is on the bridge but is no guest's (added or renamed by hand): nothing checks what comes in through it", p.Name))
	}
	for _, g := range b.Guests {
		if g.Phase != PhaseReady || g.processGone() {
			continue // on its way, or gone with its process (findProblems says so): gc's to remove
		}
		where := fmt.Sprintf("port %s of guest %s", g.PortName(), g.Name)
		p, ok := byName[g.PortName()]
		switch {
		case !ok:
			problems = append(problems, where+" is missing (deleted or renamed by hand, or the guest deleted its own end): the guest is cut off")
			continue
		case !p.Up:
			continue // partition status says it is down; nothing passes it meanwhile
		}
		for _, c := range []struct {
			bad  bool
			what string
		}{
			{p.LockedSeen && !p.Locked, "was unlocked by hand: frames with any source MAC pass it"},
			{p.Learning, "learns (turned on by hand): the bridge takes in what it sends"},
			{!p.Flood || !p.McastFlood || !p.BcastFlood, "floods no unicast, multicast or broadcast (turned off by hand): the guest misses what it must get"},
			{p.ProxyARP || p.ProxyARPWiFi || p.NeighSuppress, "answers or suppresses neighbour requests for the guest (turned on by hand)"},
			{p.Hairpin, "sends frames back where they came from (hairpin, turned on by hand)"},
			{p.BackupPort != 0, "has a backup port (set by hand) that takes its traffic when it is down"},
			{p.XDP, "has an XDP program attached (by hand), which acts on its frames before the bridge's checks"},
		} {
			if c.bad {
				problems = append(problems, where+" "+c.what)
			}
		}
		mac := GuestMAC(g.IP)
		var own, dynamic bool
		var others []string
		for _, n := range fdb {
			if n.LinkIndex != p.Index || n.MasterIndex == 0 || n.State&netlink.NUD_PERMANENT != 0 {
				continue // another port's, the device's own (self), or the port's local address
			}
			// The kernel adds the guest's entry once more for each VLAN a port has (VLAN 1,
			// where it is built with VLAN filtering): the MAC decides, not the VLAN.
			switch {
			case !bytes.Equal(n.HardwareAddr, mac):
				others = append(others, n.HardwareAddr.String())
			case n.State&netlink.NUD_NOARP != 0:
				own = true
			default:
				dynamic = true
			}
		}
		switch {
		case dynamic && !own:
			problems = append(problems, fmt.Sprintf("%s holds its forwarding entry for %s as a learned one (replaced by hand): it ages out and cuts the guest off", where, mac))
		case !own:
			problems = append(problems, fmt.Sprintf("%s lacks its static forwarding entry for %s (deleted by hand): its frames are dropped", where, mac))
		}
		if len(others) > 0 {
			problems = append(problems, fmt.Sprintf("%s has forwarding entries for other MACs (added by hand), whose frames it lets in: %s", where, firstFew(others)))
		}
	}
	return problems, nil
}

// bridgeSysctls are the settings bridge create makes in the bridge's namespace that decide
// what reaches the guests: without forwarding nothing from outside does, and a redirect tells
// guests to send past the namespace's IP layer, where partitions are enforced.
func bridgeSysctls(plan Plan) []string {
	kv := []string{"net.ipv4.ip_forward", "1", "net.ipv4.conf." + BridgeDev + ".send_redirects", "0", "net.ipv4.conf.all.send_redirects", "0"}
	if plan.IPv6() {
		kv = append(kv, "net.ipv6.conf.all.forwarding", "1")
	}
	return kv
}

// namespaceProblems says what else in the bridge's namespace changes what passes: pontoon's
// sysctls, and iptables' own (legacy) tables, which nftables does not show.
func namespaceProblems(h *handle, plan Plan) (problems []string, err error) {
	kv := bridgeSysctls(plan)
	for i := 0; i < len(kv); i += 2 {
		v, err := h.ReadSysctl(kv[i])
		if err != nil {
			return problems, err
		}
		if v != kv[i+1] {
			problems = append(problems, fmt.Sprintf("sysctl %s is %s in the bridge's namespace, not %s (set by hand)", kv[i], v, kv[i+1]))
		}
	}
	for _, f := range []string{"ip_tables_names", "ip6_tables_names", "arp_tables_names"} {
		names, err := h.ReadNetFile(f)
		if err != nil {
			continue // no x_tables in this kernel
		}
		if t := strings.Fields(names); len(t) > 0 {
			problems = append(problems, fmt.Sprintf("the bridge's namespace holds legacy iptables tables (%s: %s), which nftables does not show: their rules may change what passes", f, strings.Join(t, ", ")))
		}
	}
	return problems, nil
}
