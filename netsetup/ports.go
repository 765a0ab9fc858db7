package netsetup

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"

	"github.com/google/nftables"
	"github.com/pontoon-dev/pontoon/internal/nftrule"
	"github.com/pontoon-dev/pontoon/netsetup/ns"
)

// ValidName reports whether s is a valid bridge or guest name: 1-63 letters, digits, '.', '_'
// or '-', starting with a letter or digit. (Checked by hand: every command checks names, and
// compiling the equivalent regular expression at start-up cost more than the check ever does.)
func ValidName(s string) bool {
	if s == "" || len(s) > 63 {
		return false
	}
	for i := 0; i < len(s); i++ {
		ch := s[i]
		alnum := ch >= 'a' && ch <= 'z' || ch >= 'A' && ch <= 'Z' || ch >= '0' && ch <= '9'
		if !alnum && (i == 0 || ch != '_' && ch != '.' && ch != '-') {
			return false
		}
	}
	return true
}

// ValidHostname accepts what sethostname(2) and /etc/hosts take in practice: at most 64
// bytes of dot-separated labels of letters, digits, '-' and '_', no label starting or ending
// with '-'. '_' is allowed because names, the default hostnames, may contain it.
func ValidHostname(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for _, label := range strings.Split(s, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for i := 0; i < len(label); i++ {
			ch := label[i]
			if !(ch >= 'a' && ch <= 'z' || ch >= 'A' && ch <= 'Z' || ch >= '0' && ch <= '9' || ch == '-' || ch == '_') {
				return false
			}
		}
	}
	return true
}

// checkName validates a bridge or guest name: it ends up in file names and state.
func checkName(what, name string) error {
	if !ValidName(name) {
		return invalidf("%s name %q is invalid; use 1-63 letters, digits, '.', '_' or '-', starting with a letter or digit", what, name)
	}
	return nil
}

// checkNames validates a bridge name and a guest name.
func checkNames(bridge, guest string) error {
	if err := checkName("bridge", bridge); err != nil {
		return err
	}
	return checkName("guest", guest)
}

// checkNewGuestName refuses, for a guest being added, a name that is an IP address: partition
// specs take a guest by name or address, and such a name would take another guest's place.
// (Only new ones: a guest so named by an earlier version can still be deleted.)
func checkNewGuestName(guest string) error {
	if _, err := netip.ParseAddr(guest); err == nil {
		return invalidf("guest name %q is an IP address; guests are named by name or address, so choose a name that is not one", guest)
	}
	return checkNotLoopback("guest name", guest)
}

// checkNotLoopback refuses a name the bridge's name server would answer with a guest's
// address although every resolver means the loopback by it (RFC 6761, Debian's hosts file).
func checkNotLoopback(field, name string) error {
	if LoopbackName(name) {
		return invalidf("%s %q names the loopback, not a guest; choose another", field, name)
	}
	return nil
}

// LoopbackName reports whether resolvers take name for the loopback (localhost and its kin),
// so that no guest may be known by it.
func LoopbackName(name string) bool {
	n := strings.ToLower(strings.TrimSuffix(name, "."))
	return n == "localhost" || strings.HasSuffix(n, ".localhost") || n == "localhost.localdomain" ||
		n == "ip6-localhost" || n == "ip6-loopback"
}

// portConflict returns the bridge already forwarding host port p, if any.
func portConflict(bridges []*BridgeState, self string, p Port) (string, bool) {
	for _, b := range bridges {
		if b.Name == self {
			continue
		}
		for _, q := range b.Ports {
			if q.HostPort == p.HostPort && q.Proto == p.Proto {
				return b.Name, true
			}
		}
	}
	return "", false
}

// gatewayForwards is the gateway half of every ready bridge's port forwards: host port to
// the same port on the bridge's uplink address.
func gatewayForwards(plan Plan, bridges []*BridgeState) []nftrule.Rule {
	return readyForwards(bridges, func(slot int, proto string, port uint16) nftrule.Rule {
		return nftrule.Rule{nftrule.Iifname(UplinkName), nftrule.Daddr(nftrule.Host(plan.GatewayAddr().Addr())),
			nftrule.Dport(proto, port), nftrule.DNAT(plan.UplinkBridge(slot).Addr(), port)}
	})
}

// readyForwards is one gateway rule per port forward of every ready bridge.
func readyForwards(bridges []*BridgeState, rule func(slot int, proto string, hostPort uint16) nftrule.Rule) []nftrule.Rule {
	var out []nftrule.Rule
	for _, b := range bridges {
		if b.Phase != PhaseReady {
			continue
		}
		for _, p := range b.Ports {
			out = append(out, rule(b.Slot, p.Proto, p.HostPort))
		}
	}
	return out
}

// guestIP resolves a port's guest (name or IP) among the bridge's guests.
func (b *BridgeState) guestIP(ref string) (netip.Addr, bool) {
	if ip, err := netip.ParseAddr(ref); err == nil {
		return ip, true
	}
	for _, g := range b.Guests {
		if g.Name == ref {
			return g.IP, g.IP.IsValid()
		}
	}
	return netip.Addr{}, false
}

// bridgeTable is pontoon's table in a bridge namespace: masquerade of the guest network
// towards the gateway and the bridge half of its port forwards. A forward whose guest is
// not attached yet gets its rule when the guest arrives.
func bridgeTable(plan Plan, b *BridgeState) tableSpec {
	uplinkAddr := nftrule.Host(plan.UplinkBridge(b.Slot).Addr())
	pre := natChain("prerouting", nftables.ChainHookPrerouting, nftables.ChainPriorityNATDest)
	for _, p := range b.Ports {
		if ip, ok := b.guestIP(p.Guest); ok {
			pre.rules = append(pre.rules, nftrule.Rule{nftrule.Iifname(UplinkName), nftrule.Daddr(uplinkAddr),
				nftrule.Dport(p.Proto, p.HostPort), nftrule.DNAT(ip, p.GuestPort)})
		}
	}
	return tableSpec{chains: []chainSpec{
		natChain("postrouting", nftables.ChainHookPostrouting, nftables.ChainPriorityNATSource,
			nftrule.Rule{nftrule.Saddr(plan.GuestNet()), nftrule.Oifname(UplinkName), nftrule.Masquerade()}),
		pre,
	}}
}

// rebuildBridgeTable writes the bridge's table from its record.
func rebuildBridgeTable(env Env, plan Plan, b *BridgeState) error {
	ts := []tableSpec{bridgeTable(plan, b)}
	if plan.IPv6() {
		ts = append(ts, bridgeTable6(plan, b))
	}
	if err := rewriteTables(env.BridgeNetns(b.Name), ts...); err != nil {
		return fmt.Errorf("rewrite the forwards of bridge %q: %w", b.Name, err)
	}
	return nil
}

// gatewayTables are the gateway's tables with the forwards of bridges.
func gatewayTables(plan Plan, bridges []*BridgeState) []tableSpec {
	ts := []tableSpec{gatewayTable(plan, gatewayForwards(plan, bridges))}
	if plan.IPv6() {
		ts = append(ts, gatewayTable6(plan, gatewayForwards6(plan, bridges)))
	}
	return ts
}

// syncGatewayTable rewrites the gateway's table from the current bridges; the caller holds
// the state lock. A gateway whose namespace is gone has no forwards left to rewrite: they
// went with it, and what removes bridges from it (destroy, gc, down --force) must go on.
func syncGatewayTable(env Env, plan Plan, bridges []*BridgeState) error {
	p := env.GatewayNetns()
	err := rewriteTables(p, gatewayTables(plan, bridges)...)
	if err != nil {
		// Looked at only on failure: the common case pays nothing for it.
		switch env.gatewayDamage(0) {
		case gatewayGone:
			return nil
		case gatewayHidden:
			// Its rules are still there, out of sight: pinned again (as gc and gateway up
			// do), they can be rewritten.
			if rerr := ns.Mend(p, 0); rerr != nil {
				err = errors.Join(err, rerr)
			} else {
				err = rewriteTables(p, gatewayTables(plan, bridges)...)
			}
		}
	}
	if err != nil {
		return fmt.Errorf("rewrite the gateway's port forwards: %w", err)
	}
	return nil
}
