package netsetup

import (
	"fmt"
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

// aliasClash says which guest of the bridge already answers to one of g's aliases, or to
// g's name as an alias of its own; "" when none does.
func aliasClash(b *BridgeState, g Guest) string {
	for _, o := range b.Guests {
		if o.Name == g.Name {
			continue
		}
		for _, a := range g.Aliases {
			if slices.ContainsFunc(o.Names(), func(n string) bool { return strings.EqualFold(n, a) }) {
				return fmt.Sprintf("alias %q is already a name of guest %q; choose another alias", a, o.Name)
			}
		}
		if slices.ContainsFunc(o.Aliases, func(n string) bool { return strings.EqualFold(n, g.Name) }) {
			return fmt.Sprintf("name %q is already an alias of guest %q; choose another name or remove that alias", g.Name, o.Name)
		}
	}
	return ""
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
