package partition

import (
	"fmt"
	"net/netip"

	"github.com/pontoon-dev/pontoon/netsetup"
)

// ForBridge returns the Target for a bridge of the chain: its namespace, its guests and the
// bridge's data directory for the partition record (removed with the bridge).
func ForBridge(env netsetup.Env, bridge string) (Target, error) {
	b, err := netsetup.GetBridge(env, bridge)
	if err != nil {
		return Target{}, err
	}
	t := Target{NetnsPath: b.Netns(env), Bridge: netsetup.BridgeDev, StateDir: env.BridgeDataDir(bridge)}
	for _, g := range b.Guests {
		if g.Phase != netsetup.PhaseReady {
			continue
		}
		ip, err := netip.ParseAddr(g.IP)
		if err != nil {
			return Target{}, fmt.Errorf("bridge %q: guest %q has a bad address %q in its state", bridge, g.Name, g.IP)
		}
		t.Guests = append(t.Guests, Guest{Name: g.Name, IP: ip, Port: g.PortName(), NetnsPath: g.Netns})
	}
	return t, nil
}
