package netsetup

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/google/nftables"
	"github.com/pontoon-dev/pontoon/internal/nftpool"
	"github.com/pontoon-dev/pontoon/internal/nftwire"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
	"golang.org/x/sys/unix"
)

// A bridge's guarantees live in its namespace, where root can change them by hand: a rule of
// pontoon's tables deleted or rewritten, a chain's policy set to drop, an identity added to
// the set of guest MAC . IP pairs, a guest port unlocked or given a forwarding entry for
// another MAC. Any of these lets a guest pass for another, or cuts one off, while pontoon's
// records say nothing changed; BridgeProblems reads them back.

// BridgeProblems compares what the kernel holds in the bridge's namespace with what pontoon
// set up there: the chains (where they hook, their policy) and rules of pontoon's tables,
// the static set of the plan's guest identities, and for each guest its port's lock, its
// learning and its static forwarding entry. It returns what differs, a sentence each; none
// while a bridge is being created or removed.
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
		path := env.BridgeNetns(name)
		if problems, err = tablesProblems(path, bridgeTables(plan, b, bridgeL2Table(plan))); err != nil {
			return err
		}
		h, err := openHandle(path)
		if err != nil {
			return err
		}
		defer h.Close()
		pp, err := portSecurityProblems(h, b)
		problems = append(problems, pp...)
		return err
	})
	return problems, err
}

// tablesProblems compares the namespace's tables with ts.
func tablesProblems(nsPath string, ts []tableSpec) ([]string, error) {
	var problems []string
	err := nftpool.WithConn(nsPath, func(c *nftwire.Conn) error {
		for _, t := range ts {
			p, err := t.problems(c)
			if err != nil {
				return err
			}
			problems = append(problems, p...)
		}
		return nil
	})
	return problems, err
}

// problems says how the kernel's table differs from t.
func (t tableSpec) problems(c *nftwire.Conn) ([]string, error) {
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
		p, err := s.problems(c, &nftables.Table{Name: TableName, Family: fam})
		if err != nil {
			return nil, err
		}
		for _, x := range p {
			add("%s", x)
		}
	}
	return problems, nil
}

// problems says which of s's elements the kernel's set lacks, and, for a set that no attach
// adds to (room 0), which it holds beyond them.
func (s setSpec) problems(c *nftwire.Conn, tbl *nftables.Table) ([]string, error) {
	els, err := nftwire.SetElements(c.Conn, &nftables.Set{Table: tbl, Name: s.name})
	if errors.Is(err, unix.ENOENT) {
		return []string{"set " + s.name + " is missing"}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list set %s: %w", s.name, err)
	}
	have := make(map[string]bool, len(els))
	for _, e := range els {
		have[string(e.Key)] = true
	}
	var missing []string
	for _, e := range s.elems {
		if !have[string(e.key)] {
			missing = append(missing, e.text(e.key))
		}
		delete(have, string(e.key))
	}
	var problems []string
	if len(missing) > 0 {
		problems = append(problems, fmt.Sprintf("set %s lacks %d of its elements (deleted by hand; the guests they identify are cut off): %s",
			s.name, len(missing), firstFew(missing)))
	}
	if s.room == 0 && len(have) > 0 {
		var extra []string
		for k := range have {
			extra = append(extra, s.elemText([]byte(k)))
		}
		slices.Sort(extra)
		problems = append(problems, fmt.Sprintf("set %s holds %d elements pontoon did not put there (added by hand): %s",
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

// bridgePort is what the bridge says of one of its ports.
type bridgePort struct {
	index              int
	learning           bool
	locked, lockedSeen bool // lockedSeen: the kernel reports locking (5.18 and later)
}

// portSecurityProblems checks each ready guest's port: locked, learning nothing, with its
// guest's MAC as a static forwarding entry and no entry for any other MAC. A port that is
// missing is not reported here: its guest is cut off, which the guest's own checks say.
func portSecurityProblems(h *handle, b *BridgeState) ([]string, error) {
	ports, err := bridgePorts(h)
	if err != nil {
		return nil, err
	}
	fdb, err := h.NeighList(0, unix.AF_BRIDGE)
	if err != nil {
		return nil, fmt.Errorf("list the bridge's forwarding entries: %w", err)
	}
	var problems []string
	for _, g := range b.Guests {
		p, ok := ports[g.PortName()]
		if g.Phase != PhaseReady || !ok {
			continue
		}
		where := fmt.Sprintf("port %s of guest %s", g.PortName(), g.Name)
		if p.lockedSeen && !p.locked {
			problems = append(problems, where+" was unlocked by hand: frames with any source MAC pass it")
		}
		if p.learning {
			problems = append(problems, where+" learns (turned on by hand): the bridge takes in what it sends")
		}
		mac, own := GuestMAC(g.IP), false
		var others []string
		for _, n := range fdb {
			if n.LinkIndex != p.index || n.MasterIndex == 0 || n.State&netlink.NUD_PERMANENT != 0 {
				continue // another port's, the device's own (self), or the port's local address
			}
			if bytes.Equal(n.HardwareAddr, mac) {
				own = true
			} else {
				others = append(others, n.HardwareAddr.String())
			}
		}
		if !own {
			problems = append(problems, fmt.Sprintf("%s lacks its static forwarding entry for %s (deleted by hand): its frames are dropped", where, mac))
		}
		if len(others) > 0 {
			problems = append(problems, fmt.Sprintf("%s has forwarding entries for other MACs (added by hand), whose frames it lets in: %s", where, firstFew(others)))
		}
	}
	return problems, nil
}

// bridgePorts reads every bridge port's flags by name, in one dump (`bridge -d link`).
func bridgePorts(h *handle) (map[string]bridgePort, error) {
	req := nl.NewNetlinkRequest(unix.RTM_GETLINK, unix.NLM_F_DUMP)
	req.AddData(nl.NewIfInfomsg(unix.AF_BRIDGE))
	msgs, err := h.Execute(req, unix.RTM_NEWLINK)
	if err != nil {
		return nil, fmt.Errorf("list the bridge's ports: %w", err)
	}
	ports := make(map[string]bridgePort, len(msgs))
	for _, m := range msgs {
		info := nl.DeserializeIfInfomsg(m)
		attrs, err := nl.ParseRouteAttr(m[info.Len():])
		if err != nil {
			return nil, err
		}
		p, name := bridgePort{index: int(info.Index)}, ""
		for _, a := range attrs {
			switch a.Attr.Type &^ unix.NLA_F_NESTED {
			case unix.IFLA_IFNAME:
				name = string(bytes.TrimRight(a.Value, "\x00"))
			case unix.IFLA_PROTINFO:
				flags, err := nl.ParseRouteAttr(a.Value)
				if err != nil {
					return nil, err
				}
				for _, f := range flags {
					on := len(f.Value) > 0 && f.Value[0] != 0
					switch f.Attr.Type {
					case nl.IFLA_BRPORT_LEARNING:
						p.learning = on
					case nl.IFLA_BRPORT_LOCKED:
						p.locked, p.lockedSeen = on, true
					}
				}
			}
		}
		if name != "" {
			ports[name] = p
		}
	}
	return ports, nil
}
