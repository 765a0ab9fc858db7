package partition

import (
	"errors"
	"fmt"

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
		ip := g.IP
		if !ip.Is4() {
			return Target{}, fmt.Errorf("bridge %q: guest %q has a bad address %q in its state", bridge, g.Name, g.IP)
		}
		t.Guests = append(t.Guests, Guest{Name: g.Name, IP: ip, Port: g.PortName(), NetnsPath: g.Netns})
	}
	return t, nil
}

// Refresh applies the bridge's recorded state again, for the guests it has now. The kernel
// knows a guest by its bridge port, so a guest that attaches, or attaches again with a new
// port after a restart, is outside the partition in force until the table names its port:
// whatever attaches a guest calls Refresh afterwards. With nothing applied it changes
// nothing.
func Refresh(env netsetup.Env, bridge string) error {
	t, err := ForBridge(env, bridge)
	if err != nil {
		return err
	}
	_, err = applyWith(t, func(s State) (State, error) { return s, nil }, applyOpts{onlyIfApplied: true})
	if errors.Is(err, errNothingApplied) {
		return nil
	}
	return err
}
