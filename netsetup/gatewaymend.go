package netsetup

import (
	"fmt"
	"net/netip"
	"path/filepath"
	"strings"

	"github.com/pontoon-dev/pontoon/internal/nftpool"
	"github.com/pontoon-dev/pontoon/internal/nftwire"
	"github.com/pontoon-dev/pontoon/netsetup/ns"
	"golang.org/x/sys/unix"
)

// gatewayDamage is what was done outside pontoon to a gateway recorded ready.
type gatewayDamage int

const (
	gatewayIntact   gatewayDamage = iota
	gatewayHidden                 // its pin is hidden under another tool's bind mount
	gatewayForeign                // another namespace is mounted over its pin
	gatewayUnlinked               // its link to the host was deleted
	gatewayGone                   // its namespace was deleted or unpinned
)

// gatewayDamage looks at the gateway's namespace, whose identity is want (0: any namespace
// pinned there is taken for it). The host link is looked for from the gateway's side (its
// uplink, the veth's other end): a pontoon command in a bridge child starts in the bridge's
// namespace, not the host's.
func (e Env) gatewayDamage(want uint64) gatewayDamage {
	p := e.GatewayNetns()
	switch ns.Check(p, want) {
	case ns.PinHidden:
		return gatewayHidden
	case ns.PinForeign:
		return gatewayForeign
	case ns.PinGone, ns.PinTaken:
		// Taken: the gateway's pin went and another tool pinned a namespace of its own at
		// the path, which is not pontoon's to pin over (gatewayProblem says so).
		return gatewayGone
	}
	h, err := openHandle(p)
	if err != nil {
		return gatewayIntact // pinned: whatever keeps it from being opened, it is there
	}
	defer h.Close()
	if _, ok, err := existing(h, UplinkName); err == nil && !ok {
		return gatewayUnlinked
	}
	return gatewayIntact
}

// gatewayProblem says what is wrong with a ready gateway and what puts it right, the way
// GatewayUp does it; "" when nothing is. bridges are the bridges there are.
func (e Env) gatewayProblem(d gatewayDamage, bridges []*BridgeState) string {
	p := e.GatewayNetns()
	switch d {
	case gatewayHidden:
		return fmt.Sprintf("namespace %s is hidden under a bind mount of %s made by another tool; `pontoon gateway up` (or `pontoon gc`) pins it again", p, filepath.Dir(p))
	case gatewayForeign:
		return fmt.Sprintf("another namespace is mounted over its pin %s (by another tool), so pontoon would work in that one; `pontoon gateway up` (or `pontoon gc`) puts the gateway's back", p)
	case gatewayUnlinked:
		return fmt.Sprintf("its link to the host (%s) is gone (deleted outside pontoon); `pontoon gateway up` makes it again", HostLinkName)
	case gatewayGone:
		gone, free := "is gone (deleted or unpinned outside pontoon)", ""
		if ns.IsPinned(p) {
			gone = "was deleted outside pontoon, and another tool's namespace is pinned at its path now, which pontoon leaves alone"
			free = fmt.Sprintf(", once that path is free (`umount %s && rm %s` if that namespace may go, or another --netns-dir)", p, p)
		}
		if len(bridges) == 0 {
			return fmt.Sprintf("namespace %s %s; `pontoon gateway up` builds it again%s", p, gone, free)
		}
		names := make([]string, len(bridges))
		for i, b := range bridges {
			names[i] = b.Name
		}
		links, them := "the link of bridge", "it"
		if len(names) > 1 {
			links, them = "the links of bridges", "them"
		}
		return fmt.Sprintf("namespace %s %s, and with it %s %s; "+
			"run `pontoon gateway down --force` (which destroys %s), then `pontoon gateway up`%s", p, gone, links, strings.Join(names, ", "), them, free)
	}
	return ""
}

// mendGateway puts right what was done outside pontoon to a ready gateway whose namespace is
// still there: a pin another tool hid is pinned again (as GC does), a deleted host link is
// made again (the gateway's tables and the host's rules name the link, and take the new one
// as they did the old), and so are deleted host NAT tables. The caller holds the state lock.
func mendGateway(env Env, st store, g *GatewayState) error {
	p := env.GatewayNetns()
	d := env.gatewayDamage(g.NetnsID)
	if d == gatewayHidden || d == gatewayForeign {
		if env.DryRun != nil {
			fmt.Fprintf(env.DryRun, "# pin %s again: the gateway's namespace, hidden or covered by another tool's mount\n", p)
			return nil
		}
		if err := ns.Mend(p, g.NetnsID); err != nil {
			return fmt.Errorf("gateway: %w", err)
		}
		d = env.gatewayDamage(g.NetnsID)
	}
	if d == gatewayUnlinked {
		if err := mendHostLink(env, st, g, d); err != nil {
			return err
		}
	}
	return mendHostTables(env, g)
}

// mendHostLink makes the deleted host link of g again.
func mendHostLink(env Env, st store, g *GatewayState, d gatewayDamage) error {
	// In a bridge child the namespace pontoon started in is the bridge's: the host link
	// belongs in the host's.
	bridges, err := st.bridges()
	if err != nil {
		return err
	}
	for _, b := range bridges {
		if sameNamespace(env.hostNetns(), env.BridgeNetns(b.Name)) {
			return fmt.Errorf("%w: %s; run `pontoon gateway up` on the host, not in bridge %s", ErrGatewayLost, env.gatewayProblem(d, bridges), b.Name)
		}
	}
	plan := Plan{Subnet: g.Plan, Subnet6: g.Plan6}
	var hostH, gwH *handle
	defer func() { hostH.Close(); gwH.Close() }()
	steps := hostLinkSteps(env, plan, &hostH, &gwH)
	if !g.NoFirewall && g.DNS != "" {
		steps = append(steps, routeLocalnetStep(&hostH))
	}
	r := &runner{dry: env.DryRun}
	if err := r.run(steps...); err != nil {
		r.rollback()
		return fmt.Errorf("make the gateway's host link again: %w", err)
	}
	return nil
}

// sameNamespace reports whether two paths name the same namespace.
func sameNamespace(a, b string) bool {
	var sa, sb unix.Stat_t
	return unix.Stat(a, &sa) == nil && unix.Stat(b, &sb) == nil && sa.Dev == sb.Dev && sa.Ino == sb.Ino
}

// GatewayThere reports whether bridges have a gateway: one recorded ready whose namespace is
// not gone. A hidden pin or a deleted host link leave it there (gc and gateway up put them
// right); a namespace deleted outside pontoon took every bridge's uplink with it, and its
// bridges only wait for `gateway down --force`.
func GatewayThere(env Env) (bool, error) {
	st := env.store()
	var g *GatewayState
	err := st.lockedIfAny(func() (err error) {
		g, err = st.gateway()
		return err
	})
	if err != nil || g == nil || g.Phase != PhaseReady {
		return false, err
	}
	return env.gatewayDamage(g.NetnsID) != gatewayGone, nil
}

// hostTableProblems says how g's NAT tables in the host's namespace differ from what gateway
// up made (deleted, flushed or edited outside pontoon): without them nothing the guests send
// goes beyond the host. It finds none where the namespace pontoon started in is not the
// host's (a bridge child's has no host link, and tables of the same name), nor for a gateway
// that leaves the host's firewall alone.
func (e Env) hostTableProblems(g *GatewayState) ([]string, error) {
	if g == nil || g.NoFirewall {
		return nil, nil
	}
	h, err := openHandle(e.hostNetns())
	if err != nil {
		return nil, err
	}
	defer h.Close()
	if _, ok, err := existing(h, HostLinkName); err != nil || !ok {
		return nil, err
	}
	var problems []string
	err = nftpool.WithConn(e.hostNetns(), func(c *nftwire.Conn) error {
		for _, t := range hostTables(g) {
			p, err := t.problems(c, setChecks{})
			if err != nil {
				return err
			}
			problems = append(problems, p...)
		}
		return nil
	})
	return problems, err
}

// hostTables are the tables gateway up made in the host's namespace for g.
func hostTables(g *GatewayState) []tableSpec {
	plan := Plan{Subnet: g.Plan, Subnet6: g.Plan6}
	dns, _ := netip.ParseAddr(g.DNS) // none recorded: no DNS redirect
	t := []tableSpec{hostTable(plan, dns)}
	if plan.IPv6() {
		t = append(t, hostTable6(plan))
	}
	return t
}

// hostTablesProblem says how g's host NAT tables differ from gateway up's and what makes
// them again; "" when they do not.
func (e Env) hostTablesProblem(g *GatewayState) string {
	problems, err := e.hostTableProblems(g)
	if err != nil || len(problems) == 0 {
		return ""
	}
	return fmt.Sprintf("its NAT on the host was changed outside pontoon (%s), so guests may reach nothing beyond the host; `pontoon gateway up` makes it again", strings.Join(problems, "; "))
}

// mendHostTables makes g's host NAT tables again when they differ from what gatewayUp made.
func mendHostTables(env Env, g *GatewayState) error {
	problems, err := env.hostTableProblems(g)
	if err != nil || len(problems) == 0 {
		return err
	}
	hostH, err := openHandle(env.hostNetns())
	if err != nil {
		return err
	}
	defer hostH.Close()
	r := &runner{dry: env.DryRun}
	var steps []step
	for _, t := range hostTables(g) {
		steps = append(steps, step{show: t.show(""), do: func() error { return replaceTable(hostH.NS, t) }})
	}
	if err := r.run(steps...); err != nil {
		return fmt.Errorf("make the gateway's host NAT again (%s): %w", strings.Join(problems, "; "), err)
	}
	return nil
}
