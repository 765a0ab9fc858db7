package netsetup

import (
	"strings"

	"github.com/pontoon-dev/pontoon/netsetup/ns"
)

// GuestNamespaces returns the namespaces to enter to run a command as the guest.
func (g Guest) Namespaces() ns.Spec { return ns.Spec{Net: g.Netns, UTS: g.UTS} }

// FindGuest returns a guest of a bridge by name, IP or IPv6 address.
// A pin of the bridge's another tool hid or covered is pinned again first: the guest's
// namespaces are to be entered.
func FindGuest(env Env, bridge, ref string) (*BridgeState, *Guest, error) {
	b, err := GetBridge(env, bridge)
	if err != nil {
		return nil, nil, err
	}
	if len(pinProblems(b)) > 0 {
		if _, err := MendPins(env, bridge); err != nil {
			return nil, nil, err
		}
		if b, err = GetBridge(env, bridge); err != nil {
			return nil, nil, err
		}
	}
	for i, g := range b.Guests {
		if g.Name == ref || g.IP.String() == ref || (g.IP6.IsValid() && g.IP6.String() == ref) {
			return b, &b.Guests[i], nil
		}
	}
	names := make([]string, len(b.Guests))
	for i, g := range b.Guests {
		names[i] = g.Name
	}
	if len(names) == 0 {
		return nil, nil, invalidf("bridge %q has no guest %q; it has no guests", bridge, ref)
	}
	return nil, nil, invalidf("bridge %q has no guest %q; its guests are %s", bridge, ref, strings.Join(names, ", "))
}
