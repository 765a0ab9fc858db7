package netsetup

import (
	"fmt"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
)

// MaxAliases bounds the aliases of one guest: they are stored in the bridge's record.
const MaxAliases = 16

// CheckAliases validates a guest's aliases; field names where they came from (the
// `--alias` flag, the pontoon.aliases annotation, a pontoon.toml key) for the message.
func CheckAliases(field string, aliases []string) error {
	if len(aliases) > MaxAliases {
		return invalidf("%s: %d aliases; give a guest at most %d", field, len(aliases), MaxAliases)
	}
	for i, a := range aliases {
		if !ValidHostname(a) {
			return invalidf("%s %q is invalid; use up to 64 characters: labels of letters, digits, '-' and '_' separated by '.', none starting or ending with '-'", field, a)
		}
		if _, err := netip.ParseAddr(a); err == nil {
			return invalidf("%s %q is an IP address; a name cannot be one", field, a)
		}
		if err := checkNotLoopback(field, a); err != nil {
			return err
		}
		if slices.ContainsFunc(aliases[:i], func(o string) bool { return strings.EqualFold(o, a) }) {
			return invalidf("%s %q is given twice; give each alias once", field, a)
		}
	}
	return nil
}

// Names returns every name the guest answers to: its name, its hostname and its aliases.
func (g Guest) Names() []string {
	n := make([]string, 0, 2+len(g.Aliases))
	n = append(n, g.Name)
	if g.Hostname != "" && !strings.EqualFold(g.Hostname, g.Name) {
		n = append(n, g.Hostname)
	}
	return append(n, g.Aliases...)
}

// nameClash says which guest of the bridge already answers to one of the names g would be
// served under (its name, hostname and aliases; DNS compares them without case), "" when
// none does. Two guests under one name would have the name server answer one of them for
// both, and a guest's own hostname resolve to another guest.
func nameClash(b *BridgeState, g Guest) string {
	as := map[string]string{"name": "the name", "hostname": "the hostname", "alias": "an alias"}
	for _, o := range b.Guests {
		if o.Name == g.Name {
			continue
		}
		if n, mine, theirs := ServedClash(g, o); n != "" {
			return fmt.Sprintf("%s %q is already %s of guest %q (names are served without regard to case); choose another %s", mine, n, as[theirs], o.Name, mine)
		}
	}
	return ""
}

// ServedClash finds the first name g is served under that o is served under too, without
// regard to case: the name, and which of g's and of o's names it is ("name", "hostname" or
// "alias"); "" when none is. Attaches refuse such a guest, and pontoon.toml such a child.
func ServedClash(g, o Guest) (name, mine, theirs string) {
	kind := func(x Guest, i int) string {
		switch {
		case i == 0:
			return "name"
		case i == 1 && x.Hostname != "" && !strings.EqualFold(x.Hostname, x.Name):
			return "hostname" // Names lists it second when it is not the name
		}
		return "alias"
	}
	ours, their := g.Names(), o.Names()
	for i, n := range ours {
		if j := slices.IndexFunc(their, func(t string) bool { return strings.EqualFold(t, n) }); j >= 0 {
			return n, kind(g, i), kind(o, j)
		}
	}
	return "", "", ""
}

// PingGroupRange is what guests' net.ipv4.ping_group_range is set to, as Docker does: every
// group may open ICMP echo sockets, so unprivileged processes can ping without CAP_NET_RAW.
const PingGroupRange = "0 2147483647"

// pingGroupRange is PingGroupRange cut down to the groups this process's user namespace maps:
// the kernel refuses a range naming unmapped groups (EINVAL), and in a user namespace that maps
// one group, "every group" is group 0.
var pingGroupRange = sync.OnceValue(func() string {
	b, err := os.ReadFile("/proc/self/gid_map")
	if err != nil {
		return PingGroupRange
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) != 3 || f[0] != "0" {
			continue
		}
		if n, err := strconv.ParseUint(f[2], 10, 64); err == nil && n > 0 && n-1 < 2147483647 {
			return "0 " + strconv.FormatUint(n-1, 10)
		}
	}
	return PingGroupRange
})

// BridgeRecordFile is the file holding a bridge's record. It is only ever replaced whole
// (renamed into place) or removed, so a reader that does not take the state lock, such as
// the bridge's name server, still reads a complete record.
func (e Env) BridgeRecordFile(bridge string) string { return e.store().bridgeFile(bridge) }
