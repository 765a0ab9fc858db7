package netsetup

import (
	"fmt"
	"net/netip"
	"path/filepath"
	"slices"
	"strings"

	"github.com/google/nftables"
	"github.com/pontoon-dev/pontoon/internal/nftrule"
	"github.com/pontoon-dev/pontoon/netsetup/ns"
	"golang.org/x/sys/unix"
)

// gatewayDamage is what was done outside pontoon to a gateway recorded ready.
type gatewayDamage int

const (
	gatewayIntact   gatewayDamage = iota
	gatewayHidden                 // its pin is hidden under another tool's bind mount
	gatewayUnlinked               // its link to the host was deleted
	gatewayGone                   // its namespace was deleted or unpinned
)

// gatewayDamage looks at the gateway's namespace. The host link is looked for from the
// gateway's side (its uplink, the veth's other end): a pontoon command in a bridge child
// starts in the bridge's namespace, not the host's.
func (e Env) gatewayDamage() gatewayDamage {
	p := e.GatewayNetns()
	if !ns.IsPinned(p) {
		if ns.HiddenPin(p) {
			return gatewayHidden
		}
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
	case gatewayUnlinked:
		return fmt.Sprintf("its link to the host (%s) is gone (deleted outside pontoon); `pontoon gateway up` makes it again", HostLinkName)
	case gatewayGone:
		if len(bridges) == 0 {
			return fmt.Sprintf("namespace %s is gone (deleted or unpinned outside pontoon); `pontoon gateway up` builds it again", p)
		}
		names := make([]string, len(bridges))
		for i, b := range bridges {
			names[i] = b.Name
		}
		links, them := "the link of bridge", "it"
		if len(names) > 1 {
			links, them = "the links of bridges", "them"
		}
		return fmt.Sprintf("namespace %s is gone (deleted or unpinned outside pontoon), and with it %s %s; "+
			"run `pontoon gateway down --force` (which destroys %s), then `pontoon gateway up`", p, links, strings.Join(names, ", "), them)
	}
	return ""
}

// mendGateway puts right what was done outside pontoon to a ready gateway whose namespace is
// still there: a pin another tool hid is pinned again (as GC does), a deleted host link is
// made again (the gateway's tables and the host's rules name the link, and take the new one
// as they did the old), and so are deleted host NAT tables. The caller holds the state lock.
func mendGateway(env Env, st store, g *GatewayState) error {
	p := env.GatewayNetns()
	d := env.gatewayDamage()
	if d == gatewayHidden {
		if env.DryRun != nil {
			fmt.Fprintf(env.DryRun, "# pin %s again: the namespace hidden under a bind mount of %s\n", p, filepath.Dir(p))
			return nil
		}
		if err := ns.Mend(p, 0); err != nil {
			return fmt.Errorf("gateway: %w", err)
		}
		d = env.gatewayDamage()
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
	return env.gatewayDamage() != gatewayGone, nil
}

// missingHostTables names the NAT tables g has in the host's namespace that are not there
// (deleted outside pontoon): without them nothing the guests send goes beyond the host. It
// names none where the namespace pontoon started in is not the host's (a bridge child's has
// no host link, and tables of the same name), nor for a gateway that leaves the host's
// firewall alone.
func (e Env) missingHostTables(g *GatewayState) ([]string, error) {
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
	c, err := h.Nftables()
	if err != nil {
		return nil, err
	}
	defer c.Close()
	tables, err := c.ListTables()
	if err != nil {
		return nil, fmt.Errorf("list host nftables tables: %w", err)
	}
	want := []nftables.TableFamily{nftables.TableFamilyIPv4}
	if g.Plan6.IsValid() {
		want = append(want, nftables.TableFamilyIPv6)
	}
	var missing []string
	for _, f := range want {
		if !slices.ContainsFunc(tables, func(t *nftables.Table) bool { return t.Name == TableName && t.Family == f }) {
			missing = append(missing, fmt.Sprintf("table %s %s", nftrule.FamilyName(f), TableName))
		}
	}
	return missing, nil
}

// hostTablesProblem says which of g's host NAT tables are gone and what makes them again;
// "" when none is.
func (e Env) hostTablesProblem(g *GatewayState) string {
	missing, err := e.missingHostTables(g)
	if err != nil || len(missing) == 0 {
		return ""
	}
	return fmt.Sprintf("its NAT on the host (%s) is gone (deleted outside pontoon), so guests reach nothing beyond the host; `pontoon gateway up` makes it again", strings.Join(missing, ", "))
}

// mendHostTables makes g's host NAT tables again when one is gone, as gatewayUp made them.
func mendHostTables(env Env, g *GatewayState) error {
	missing, err := env.missingHostTables(g)
	if err != nil || len(missing) == 0 {
		return err
	}
	plan := Plan{Subnet: g.Plan, Subnet6: g.Plan6}
	dns, _ := netip.ParseAddr(g.DNS) // none recorded: no DNS redirect
	hostH, err := openHandle(env.hostNetns())
	if err != nil {
		return err
	}
	defer hostH.Close()
	t := hostTable(plan, dns)
	r := &runner{dry: env.DryRun}
	err = r.run(step{show: t.show(""), do: func() error { return replaceTable(hostH.NS, t) }},
		table6Step(plan, hostTable6(plan), &hostH, ""))
	if err != nil {
		return fmt.Errorf("make the gateway's host NAT again (%s): %w", strings.Join(missing, ", "), err)
	}
	return nil
}
