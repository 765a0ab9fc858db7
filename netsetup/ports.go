package netsetup

import (
	"fmt"
	"net/netip"
	"regexp"
	"strconv"
	"strings"

	"github.com/google/nftables"
)

// Port forwards HostPort (on the gateway's host-link address) to GuestPort of a guest of one
// bridge. The host connects to x.y.255.2:HostPort; the gateway DNATs it to the bridge's
// uplink and the bridge DNATs it to the guest. Both rules match only traffic arriving from the
// host side, so guests' own outbound connections to that port are never captured.
type Port struct {
	HostPort  uint16 `json:"host_port"`
	Guest     string `json:"guest"` // guest name or IP
	GuestPort uint16 `json:"guest_port"`
	Proto     string `json:"proto"` // "tcp" or "udp"
}

func (p Port) String() string {
	return fmt.Sprintf("%d:%s:%d/%s", p.HostPort, p.Guest, p.GuestPort, p.Proto)
}

// ParsePort parses HOSTPORT:GUEST:GUESTPORT[/tcp|/udp]; GUEST is a guest name or IP.
func ParsePort(s string) (Port, error) {
	const form = "use HOSTPORT:GUEST:GUESTPORT[/tcp|/udp], e.g. 8080:web:80/tcp"
	spec, proto, hasProto := strings.Cut(s, "/")
	if !hasProto {
		proto = "tcp"
	}
	if proto != "tcp" && proto != "udp" {
		return Port{}, fmt.Errorf("port %q: protocol %q is not tcp or udp; %s", s, proto, form)
	}
	f := strings.Split(spec, ":")
	if len(f) != 3 || f[1] == "" {
		return Port{}, fmt.Errorf("port %q: %s", s, form)
	}
	hp, err := parsePortNumber(f[0])
	if err != nil {
		return Port{}, fmt.Errorf("port %q: host port %w; %s", s, err, form)
	}
	gp, err := parsePortNumber(f[2])
	if err != nil {
		return Port{}, fmt.Errorf("port %q: guest port %w; %s", s, err, form)
	}
	if err := checkName("port guest", f[1]); err != nil {
		if _, ipErr := netip.ParseAddr(f[1]); ipErr != nil {
			return Port{}, fmt.Errorf("port %q: %w", s, err)
		}
	}
	return Port{HostPort: hp, Guest: f[1], GuestPort: gp, Proto: proto}, nil
}

func parsePortNumber(s string) (uint16, error) {
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 || n > 65535 {
		return 0, fmt.Errorf("%q is not a port number in 1-65535", s)
	}
	return uint16(n), nil
}

var namePattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$`)

// ValidName reports whether s is a valid bridge or guest name.
func ValidName(s string) bool { return namePattern.MatchString(s) }

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
	if !namePattern.MatchString(name) {
		return fmt.Errorf("%s name %q is invalid; use 1-63 letters, digits, '.', '_' or '-', starting with a letter or digit", what, name)
	}
	return nil
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
func gatewayForwards(plan Plan, bridges []*BridgeState) []rule {
	var out []rule
	for _, b := range bridges {
		if b.Phase != PhaseReady {
			continue
		}
		for _, p := range b.Ports {
			out = append(out, rule{iif(UplinkName), daddr(host(plan.GatewayAddr().Addr())), dport(p.Proto, p.HostPort), dnat(plan.UplinkBridge(b.Slot).Addr(), p.HostPort)})
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
			ip, err := netip.ParseAddr(g.IP)
			return ip, err == nil
		}
	}
	return netip.Addr{}, false
}

// bridgeTable is pontoon's table in a bridge namespace: masquerade of the guest network
// towards the gateway and the bridge half of its port forwards. A forward whose guest is
// not attached yet gets its rule when the guest arrives.
func bridgeTable(plan Plan, b *BridgeState) tableSpec {
	uplinkAddr := host(plan.UplinkBridge(b.Slot).Addr())
	pre := natChain("prerouting", nftables.ChainHookPrerouting, nftables.ChainPriorityNATDest)
	for _, p := range b.Ports {
		if ip, ok := b.guestIP(p.Guest); ok {
			pre.rules = append(pre.rules, rule{iif(UplinkName), daddr(uplinkAddr), dport(p.Proto, p.HostPort), dnat(ip, p.GuestPort)})
		}
	}
	return tableSpec{chains: []chainSpec{
		natChain("postrouting", nftables.ChainHookPostrouting, nftables.ChainPriorityNATSource,
			rule{saddr(plan.GuestNet()), oif(UplinkName), masquerade()}),
		pre,
	}}
}

// rebuildBridgeTable writes the bridge's table from its record.
func rebuildBridgeTable(env Env, plan Plan, b *BridgeState) error {
	h, err := openHandle(env.BridgeNetns(b.Name))
	if err != nil {
		return err
	}
	defer h.Close()
	if err := replaceTable(h.fd(), bridgeTable(plan, b)); err != nil {
		return fmt.Errorf("rewrite the forwards of bridge %q: %w", b.Name, err)
	}
	return nil
}

// bridgeL2Table is pontoon's bridge-family table in a bridge namespace: it drops IPv6 between
// the bridge's ports. Partitions are IPv4 rules; a guest's IPv6 (link-local at least) would
// slip past them. One rule here spares a namespace switch per guest.
func bridgeL2Table() tableSpec {
	return tableSpec{family: nftables.TableFamilyBridge, chains: []chainSpec{
		filterChain("forward", nftables.ChainHookForward, rule{protocol("ip6", 0x86dd), drop()}),
	}}
}

// syncGatewayTable rewrites the gateway's table from the current bridges; the caller holds
// the state lock.
func syncGatewayTable(env Env, plan Plan, bridges []*BridgeState) error {
	h, err := openHandle(env.GatewayNetns())
	if err != nil {
		return err
	}
	defer h.Close()
	return replaceTable(h.fd(), gatewayTable(plan, gatewayForwards(plan, bridges)))
}
