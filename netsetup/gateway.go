package netsetup

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"time"

	"github.com/google/nftables"
	"github.com/pontoon-dev/pontoon/internal/nftrule"
	"github.com/pontoon-dev/pontoon/internal/statefile"
	"github.com/pontoon-dev/pontoon/netsetup/ns"
)

// ErrNoGateway is returned when an operation needs the gateway and it is not up.
var ErrNoGateway = errors.New("the pontoon gateway is not up")

// ErrGatewayPlan is returned by GatewayUp when the gateway is up with another address plan
// than the one asked for. It is refused input (ErrInvalid): nothing was changed.
var ErrGatewayPlan = errors.New("the gateway is up with another address plan")

// ErrGatewayLost is returned by GatewayUp when the gateway's namespace was deleted outside
// pontoon while bridges that were linked to it are still there: it cannot be built again
// under them.
var ErrGatewayLost = errors.New("the gateway is broken")

// ErrBusy is returned when another pontoon process is creating or removing what a command
// needs, or left it halfway.
var ErrBusy = errors.New("another pontoon process is changing it")

// ErrGatewayInUse is returned by GatewayDown without force while bridges use the gateway.
var ErrGatewayInUse = errors.New("bridges still use the gateway")

// GatewayOptions configures `gateway up`.
type GatewayOptions struct {
	// Plan is the address plan. Its parts left zero are not asked for: a gateway that is up
	// keeps what it has, a new one gets DefaultPlan's Subnet and, unless IPv4Only,
	// DefaultSubnet6. Only a part given that differs from a running gateway's is refused.
	Plan Plan
	// IPv4Only gives the chain and its guests no IPv6 addresses, and keeps IPv6 dropped
	// between guests, for hosts without IPv6.
	IPv4Only bool
	// NoFirewall skips every change to the host's firewall (masquerade, FORWARD exceptions,
	// DNS redirect) for hosts that manage their own.
	NoFirewall bool
}

// GatewayUp creates the gateway namespace and links it to the host. When the gateway
// already exists with the plan asked for (or nothing of the plan is asked for) it re-asserts
// the host firewall and returns already=true; with another plan it fails (ErrGatewayPlan,
// refused input) and changes nothing. A gateway recorded ready is looked at, not trusted:
// a pin hidden by another tool is pinned again and a deleted host link made again
// (already=true); a namespace deleted outside pontoon is built again with the recorded
// plan when no bridge is left (already=false), and refused with ErrGatewayLost when
// bridges are. In a user's space that the host's root linked to the host, it also points
// the link at this gateway (syncSpaceLink).
func GatewayUp(env Env, opt GatewayOptions) (already bool, err error) {
	// A Plan built by hand has not been through ParsePlan's checks.
	if opt.Plan.Subnet.IsValid() {
		if _, err := ParsePlan(opt.Plan.String()); err != nil {
			return false, err
		}
	}
	switch {
	case opt.IPv4Only && opt.Plan.IPv6():
		return false, invalidf("subnet6 %s given with IPv4 only; drop one of them", opt.Plan.Subnet6)
	case opt.Plan.IPv6():
		if _, err := ParsePlan6(opt.Plan.Subnet6.String()); err != nil {
			return false, err
		}
	}
	st := env.store()
	err = st.locked(func() error {
		cur, err := st.gateway()
		if err != nil {
			return err
		}
		if cur == nil {
			if _, other := env.gatewaysPin(env.GatewayNetns()); other != "" {
				return &OthersError{Path: env.GatewayNetns(), StateDir: other}
			}
		}
		rebuild := false
		if cur != nil && cur.Phase == PhaseReady {
			// The record alone does not make a gateway: what was done to it outside
			// pontoon is put right, or refused, as status describes it (gatewayProblem).
			damage := env.gatewayDamage(cur.NetnsID)
			if damage == gatewayGone {
				bridges, err := st.bridges()
				if err != nil {
					return err
				}
				if len(bridges) > 0 {
					return fmt.Errorf("%w: %s", ErrGatewayLost, env.gatewayProblem(damage, bridges))
				}
				// Nothing depends on it: it is built again below, with the plan it had
				// for every part not asked for.
				rebuild = true
				if !opt.Plan.Subnet.IsValid() {
					opt.Plan.Subnet = cur.Plan
				}
				if !opt.IPv4Only && !opt.Plan.IPv6() {
					opt.Plan.Subnet6 = cur.Plan6
					opt.IPv4Only = !cur.Plan6.IsValid()
				}
				opt.NoFirewall = opt.NoFirewall || cur.NoFirewall
			}
		}
		if cur != nil && cur.Phase == PhaseReady && !rebuild {
			if opt.Plan.Subnet.IsValid() && cur.Plan != opt.Plan.Subnet {
				return invalidf("%w: it has %s, not %s", ErrGatewayPlan, cur.Plan, opt.Plan)
			}
			// --subnet6 or --ipv4-only given: the IPv6 half asked for.
			if (opt.Plan.IPv6() || opt.IPv4Only) && cur.Plan6 != opt.Plan.Subnet6 {
				return invalidf("%w: it has IPv6 %s, not %s", ErrGatewayPlan, plan6Text(cur.Plan6), plan6Text(opt.Plan.Subnet6))
			}
			already = true
			if err := mendGateway(env, st, cur); err != nil || env.DryRun != nil {
				return err
			}
			if !cur.NoFirewall {
				if err := withHostNft(env, ensureHostForward); err != nil {
					return err
				}
			}
			return syncSpaceLink(env, Plan{Subnet: cur.Plan}.GatewayAddr().Addr())
		}
		if cur != nil && !rebuild && cur.Creator.Alive() && cur.Creator != Self() {
			what := "creating"
			if cur.Phase == PhaseRemoving {
				what = "removing"
			}
			return fmt.Errorf("pid %d is %s the gateway: %w", cur.Creator.PID, what, ErrBusy)
		}
		if cur != nil {
			// A creation or removal that died halfway, or a gateway whose namespace is
			// gone: clear it away first.
			if err := gatewayDown(env, cur); err != nil {
				return err
			}
		}
		if !opt.Plan.Subnet.IsValid() {
			opt.Plan.Subnet = DefaultPlan().Subnet
		}
		if !opt.IPv4Only && !opt.Plan.IPv6() {
			opt.Plan.Subnet6 = DefaultPlan6()
		}
		if err := checkHostCollisions(env, opt.Plan); err != nil {
			return err
		}
		if err := gatewayUp(env, opt); err != nil || env.DryRun != nil {
			return err
		}
		return syncSpaceLink(env, opt.Plan.GatewayAddr().Addr())
	})
	return already, err
}

func gatewayUp(env Env, opt GatewayOptions) error {
	st := env.store()
	plan := opt.Plan
	state := &GatewayState{Plan: plan.Subnet, Plan6: plan.Subnet6, Phase: PhaseCreating, Creator: Self(), Created: time.Now().UTC(), NoFirewall: opt.NoFirewall}
	if env.DryRun == nil {
		// Recorded before any kernel object exists, so a kill at any later point leaves a
		// record gc can act on.
		if err := statefile.WriteJSON(st.gatewayFile(), state); err != nil {
			return err
		}
	}
	gwPath := env.GatewayNetns()
	gwName := filepath.Base(gwPath)
	var hostH, gwH *handle
	defer func() { hostH.Close(); gwH.Close() }()
	r := &runner{dry: env.DryRun}
	fail := func(err error) error {
		r.rollback()
		if env.DryRun == nil {
			os.Remove(st.gatewayFile())
		}
		return fmt.Errorf("create gateway: %w", err)
	}
	err := r.run(append([]step{{
		show: "ip netns add " + gwName,
		do:   func() error { return ns.New(ns.Spec{Net: gwPath, Mark: env.ownerMark()}) },
		undo: func() error { return ns.Remove(gwPath) },
	}}, hostLinkSteps(env, plan, &hostH, &gwH)...)...)
	if err != nil {
		return fail(err)
	}
	err = r.run(
		step{
			show: fmt.Sprintf("ip netns exec %s sysctl -w net.ipv4.ip_forward=1", gwName),
			do:   func() error { _, err := gwH.Sysctl("net.ipv4.ip_forward", "1"); return err },
		},
		step{
			show: "sysctl -w net.ipv4.ip_forward=1",
			do: func() error {
				// The old value is recorded before the change, so that gc can restore it
				// even when this process is killed right after changing it.
				// User links may have changed it already; the setting before them is theirs.
				var err error
				if links, _ := st.userLinks(); len(links) > 0 && links[0].HostForwarding != "" {
					state.HostForwarding = links[0].HostForwarding
				} else if state.HostForwarding, err = hostH.ReadSysctl("net.ipv4.ip_forward"); err != nil {
					return err
				}
				if err := statefile.WriteJSON(st.gatewayFile(), state); err != nil {
					return err
				}
				_, err = hostH.Sysctl("net.ipv4.ip_forward", "1")
				return err
			},
			undo: func() error { return restoreForwarding(hostH, state.HostForwarding) },
		},
	)
	if err != nil {
		return fail(err)
	}
	gwTable := gatewayTable(plan, nil)
	err = r.run(step{
		show: gwTable.show(gwName),
		do:   func() error { return replaceTable(gwH.NS, gwTable) },
	}, table6Step(plan, gatewayTable6(plan, nil), &gwH, gwName))
	if err != nil {
		return fail(err)
	}
	if !opt.NoFirewall {
		dns := loopbackResolver(env.resolvConf())
		state.DNS = dns.String()
		if !dns.IsValid() {
			state.DNS = ""
		}
		hostTable := hostTable(plan, dns)
		steps := []step{{
			show: hostTable.show(""),
			do:   func() error { return replaceTable(hostH.NS, hostTable) },
			undo: func() error { return deleteTable(hostH.NS) },
		}, table6Step(plan, hostTable6(plan), &hostH, "")}
		if dns.IsValid() {
			steps = append(steps, routeLocalnetStep(&hostH))
		}
		steps = append(steps, step{
			show: fmt.Sprintf("# for every forward chain with policy drop: nft insert rule ... iifname %q accept; ... oifname %q ct state established,related accept", HostLinkName, HostLinkName),
			do:   func() error { return ensureHostForward(hostH) },
			undo: func() error { return removeHostForward(hostH) },
		})
		if err := r.run(steps...); err != nil {
			return fail(err)
		}
	}
	if env.DryRun != nil {
		return nil
	}
	state.Phase = PhaseReady
	state.NetnsID, _ = ns.ID(gwPath)
	if err := statefile.WriteJSON(st.gatewayFile(), state); err != nil {
		return fail(err)
	}
	return nil
}

// hostLinkSteps link the gateway's namespace to the host: the veth pair (opening both
// handles), its addresses and the gateway's default routes.
func hostLinkSteps(env Env, plan Plan, hostH, gwH **handle) []step {
	gwPath := env.GatewayNetns()
	gwName := filepath.Base(gwPath)
	return []step{
		{
			show: fmt.Sprintf("ip link add %s type veth peer name %s netns %s", HostLinkName, UplinkName, gwName),
			do: func() (err error) {
				if *hostH, err = openHandle(env.hostNetns()); err != nil {
					return err
				}
				if *gwH, err = openHandle(gwPath); err != nil {
					return err
				}
				return addVeth(*hostH, HostLinkName, UplinkName, *gwH)
			},
			undo: func() error { return delLink(*hostH, HostLinkName) },
		},
		{
			show: fmt.Sprintf("ip addr add %s dev %s && ip link set %s up", plan.HostAddr(), HostLinkName, HostLinkName),
			do:   func() error { return addrUp(*hostH, HostLinkName, plan.HostAddr()) },
		},
		{
			show: fmt.Sprintf("ip -n %s link set lo up && ip -n %s addr add %s dev %s && ip -n %s link set %s up", gwName, gwName, plan.GatewayAddr(), UplinkName, gwName, UplinkName),
			do: func() error {
				if err := linkUp(*gwH, "lo"); err != nil {
					return err
				}
				return addrUp(*gwH, UplinkName, plan.GatewayAddr())
			},
		},
		{
			show: fmt.Sprintf("ip -n %s route add default via %s", gwName, plan.HostAddr().Addr()),
			do:   func() error { return defaultRoute(*gwH, plan.HostAddr().Addr()) },
		},
		gatewayIPv6Step(plan, hostH, gwH, gwName),
	}
}

// routeLocalnetStep lets the host link's DNS redirect reach a loopback resolver: DNAT to a
// loopback address is only routed when the receiving interface allows it; the setting is
// scoped to pontoon's own link and vanishes with it.
func routeLocalnetStep(hostH **handle) step {
	return step{
		show: fmt.Sprintf("sysctl -w net.ipv4.conf.%s.route_localnet=1", HostLinkName),
		do: func() error {
			_, err := (*hostH).Sysctl("net.ipv4.conf."+HostLinkName+".route_localnet", "1")
			return err
		},
	}
}

// hostTable is pontoon's table in the host namespace: masquerade for everything leaving
// through another interface than the host link, and the DNS redirect to a loopback resolver.
func hostTable(plan Plan, dns netip.Addr) tableSpec {
	post := natChain("postrouting", nftables.ChainHookPostrouting, nftables.ChainPriorityNATSource,
		nftrule.Rule{nftrule.Saddr(plan.HostLink()), nftrule.NotOifname(HostLinkName), nftrule.Masquerade()})
	pre := natChain("prerouting", nftables.ChainHookPrerouting, nftables.ChainPriorityNATDest)
	if dns.IsValid() {
		for _, proto := range []string{"udp", "tcp"} {
			pre.rules = append(pre.rules, nftrule.Rule{nftrule.Iifname(HostLinkName), nftrule.Daddr(nftrule.Host(plan.HostAddr().Addr())),
				nftrule.Dport(proto, 53), nftrule.DNAT(dns, 53)})
		}
	}
	return tableSpec{chains: []chainSpec{post, pre}}
}

// gatewayTable is pontoon's table in the gateway: masquerade towards the host, bridges cut
// off from each other and from the gateway's uplink addresses, and the port forwards.
func gatewayTable(plan Plan, forwards []nftrule.Rule) tableSpec {
	return gatewayTableOf(0, nftrule.Daddr(plan.Uplinks()), forwards)
}

// gatewayTableOf is the gateway's table in one family, uplinks matching the gateway's
// uplink addresses in it.
func gatewayTableOf(family nftables.TableFamily, uplinks nftrule.Match, forwards []nftrule.Rule) tableSpec {
	return tableSpec{family: family, chains: []chainSpec{
		natChain("postrouting", nftables.ChainHookPostrouting, nftables.ChainPriorityNATSource,
			nftrule.Rule{nftrule.Oifname(UplinkName), nftrule.Masquerade()}),
		natChain("prerouting", nftables.ChainHookPrerouting, nftables.ChainPriorityNATDest, forwards...),
		filterChain("forward", nftables.ChainHookForward,
			nftrule.Rule{nftrule.Iifname("s*"), nftrule.Oifname("s*"), nftrule.Drop()}),
		filterChain("input", nftables.ChainHookInput,
			nftrule.Rule{nftrule.Iifname("s*"), uplinks, nftrule.Drop()}),
	}}
}

// GatewayDown removes exactly what GatewayUp created and restores the host's forwarding
// setting. It succeeds when nothing is there. Bridges still present block it unless force,
// which destroys them first.
func GatewayDown(env Env, force bool) error {
	st := env.store()
	return st.locked(func() error {
		cur, err := st.gateway()
		if err != nil {
			return err
		}
		bridges, err := st.bridges()
		if err != nil {
			return err
		}
		if len(bridges) > 0 && !force {
			names := make([]string, len(bridges))
			for i, b := range bridges {
				names[i] = b.Name
			}
			return fmt.Errorf("%w: %v", ErrGatewayInUse, names)
		}
		if env.DryRun == nil {
			// The intent first: a down --force killed once it has destroyed some bridges
			// is finished by gc (a gateway in phase removing whose process is gone),
			// rather than left with the gateway up and its bridges gone.
			if cur != nil && cur.Phase == PhaseReady && len(bridges) > 0 {
				cur.Phase, cur.Creator = PhaseRemoving, Self()
				if err := statefile.WriteJSON(st.gatewayFile(), cur); err != nil {
					return err
				}
			}
			// All of them marked first: should one fail to go, the others are not left
			// looking ready (gc would start their name servers again) but recorded as
			// on their way out, for gc or the next down --force to finish.
			for _, b := range bridges {
				if err := markRemoving(st, b); err != nil {
					return fmt.Errorf("destroy bridge %q: %w", b.Name, err)
				}
			}
		}
		var errs []error
		for _, b := range bridges {
			if env.DryRun != nil {
				// destroyBridge knows no dry run: only say what it would remove.
				for _, g := range b.Guests {
					if g.Owned {
						fmt.Fprintf(env.DryRun, "ip netns del %s\n", filepath.Base(g.Netns))
					}
				}
				fmt.Fprintf(env.DryRun, "ip -n %s link del %s\nip netns del %s\n", filepath.Base(env.GatewayNetns()), slotLink(b.Slot), filepath.Base(env.BridgeNetns(b.Name)))
				continue
			}
			// One that fails keeps none of the others: each goes as far as it can.
			errs = append(errs, destroyBridge(env, b))
		}
		if err := errors.Join(errs...); err != nil {
			// The gateway stays, recorded, for the bridges left to be taken from it.
			return err
		}
		if cur == nil {
			// Nothing of this state directory's: another's gateway, and its host link,
			// stay.
			if _, other := env.gatewaysPin(env.GatewayNetns()); other != "" {
				return &OthersError{Path: env.GatewayNetns(), StateDir: other}
			}
			cur = &GatewayState{}
		}
		if err := gatewayDown(env, cur); err != nil || env.DryRun != nil {
			return err
		}
		// With no bridge and no user link left, no trace either: the host is as before
		// pontoon ran. Last, under the lock: whoever waits for it finds the state gone.
		st.removeIfEmpty()
		return nil
	})
}

func gatewayDown(env Env, cur *GatewayState) error {
	gwPath := env.GatewayNetns()
	if env.DryRun != nil {
		w := env.DryRun
		if !cur.NoFirewall {
			fmt.Fprintf(w, "# delete every rule commented \"pontoon\" from forward chains\nnft delete table ip %s\n", TableName)
			if cur.Plan6.IsValid() {
				fmt.Fprintf(w, "nft delete table ip6 %s\n", TableName)
			}
		}
		fmt.Fprintf(w, "ip link del %s\nip netns del %s\n", HostLinkName, filepath.Base(gwPath))
		if cur.HostForwarding != "" && cur.HostForwarding != "1" {
			fmt.Fprintf(w, "sysctl -w net.ipv4.ip_forward=%s\n", cur.HostForwarding)
		}
		return nil
	}
	if cur.Phase != "" {
		// Recorded first, so that a removal killed halfway is finished by gc (or the next
		// up) instead of leaving a record that claims a working gateway.
		cur.Phase, cur.Creator = PhaseRemoving, Self()
		if err := statefile.WriteJSON(env.store().gatewayFile(), cur); err != nil {
			return err
		}
	}
	hostH, err := openHandle(env.hostNetns())
	if err != nil {
		return err
	}
	defer hostH.Close()
	var errs []error
	if !cur.NoFirewall {
		errs = append(errs, removeHostForward(hostH), deleteTable(hostH.NS))
	}
	errs = append(errs, delLink(hostH, HostLinkName))
	// With no record (gc's sweep, or down without one), only a namespace that shows it is the
	// gateway's goes: another tool's pinned at the path stays. A record, written before its
	// namespace was made, makes what is there pontoon's (its identity, once known, too).
	if ours, _ := env.gatewaysPin(gwPath); cur.Phase != "" || ours {
		errs = append(errs, ns.RemoveOwn(gwPath, cur.NetnsID))
	}
	// User links forward through the host too: the setting stays until the last of them goes.
	if links, _ := env.store().userLinks(); cur.HostForwarding != "" && len(links) == 0 {
		errs = append(errs, restoreForwarding(hostH, cur.HostForwarding))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("remove gateway: %w", err)
	}
	for _, f := range []string{env.store().gatewayFile(), filepath.Join(env.stateDir(), "next-slot")} {
		if err := os.Remove(f); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("remove gateway state: %w", err)
		}
	}
	return nil
}

func restoreForwarding(hostH *handle, old string) error {
	if old == "" || old == "1" {
		return nil
	}
	_, err := hostH.Sysctl("net.ipv4.ip_forward", old)
	return err
}

// GatewayStatus describes the gateway and its bridges.
type GatewayStatus struct {
	Up      bool          `json:"up"`
	Gateway *GatewayState `json:"gateway,omitempty"`
	// Problem says what is wrong with a gateway recorded ready that is not up (its namespace
	// or host link gone, or its pin hidden) and what puts it right; empty when nothing is.
	Problem string         `json:"problem,omitempty"`
	Bridges []*BridgeState `json:"bridges"`
}

// GatewayProblem says what is wrong with a gateway recorded ready whose namespace or host
// link is gone or hidden, and what puts it right (as Status does); "" when it is whole, or
// there is none. It reads the bridges only to name them in a problem: what attaches a guest
// asks it every time.
func GatewayProblem(env Env) (string, error) {
	st := env.store()
	var problem string
	err := st.lockedIfAny(func() error {
		g, err := st.gateway()
		if err != nil || g == nil || g.Phase != PhaseReady {
			return err
		}
		if d := env.gatewayDamage(g.NetnsID); d != gatewayIntact {
			bridges, _ := st.bridgeHeads()
			problem = env.gatewayProblem(d, bridges)
		}
		return nil
	})
	return problem, err
}

// Status reads the gateway's and bridges' state.
func Status(env Env) (GatewayStatus, error) {
	st := env.store()
	var out GatewayStatus
	err := st.lockedIfAny(func() (err error) {
		if out.Gateway, err = st.gateway(); err != nil {
			return err
		}
		if out.Bridges, err = st.bridges(); err != nil {
			return err
		}
		if out.Gateway != nil && out.Gateway.Phase == PhaseReady {
			d := env.gatewayDamage(out.Gateway.NetnsID)
			out.Up = d == gatewayIntact
			out.Problem = env.gatewayProblem(d, out.Bridges)
			if out.Up {
				out.Problem = env.hostTablesProblem(out.Gateway)
				out.Up = out.Problem == ""
			}
		}
		return nil
	})
	here := ns.MountNS()
	for _, b := range out.Bridges {
		b.Problem = env.bridgeProblem(b, here)
	}
	if out.Bridges == nil {
		out.Bridges = []*BridgeState{}
	}
	return out, err
}

// readyGateway returns the gateway's plan, or ErrNoGateway.
func readyGateway(st store) (Plan, *GatewayState, error) {
	g, err := st.gateway()
	if err != nil {
		return Plan{}, nil, err
	}
	if g == nil || g.Phase != PhaseReady {
		return Plan{}, nil, ErrNoGateway
	}
	p, err := ParsePlan(g.Plan.String())
	if err != nil {
		return Plan{}, nil, fmt.Errorf("gateway state has a bad plan: %w", err)
	}
	if g.Plan6.IsValid() {
		if p.Subnet6, err = ParsePlan6(g.Plan6.String()); err != nil {
			return Plan{}, nil, fmt.Errorf("gateway state has a bad plan: %w", err)
		}
	}
	return p, g, nil
}

// CurrentPlan returns the plan the gateway was created with, or ErrNoGateway.
func CurrentPlan(env Env) (Plan, error) {
	p, _, err := readyGateway(env.store())
	return p, err
}

func suggestSubnet(p Plan) string {
	if p.Subnet.Addr().As4()[0] == 10 {
		return "172.29.0.0/16"
	}
	return "10.77.0.0/16"
}

func prefixOf(n *net.IPNet) (netip.Prefix, bool) {
	if n == nil {
		return netip.Prefix{}, false
	}
	a, ok := netip.AddrFromSlice(n.IP.To4())
	if !ok {
		return netip.Prefix{}, false
	}
	bits, _ := n.Mask.Size()
	return netip.PrefixFrom(a, bits), true
}
