package partition

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync/atomic"

	"github.com/pontoon-dev/pontoon/netsetup"
	"github.com/pontoon-dev/pontoon/netsetup/ns"
)

// ForBridge returns the Target for a bridge of the chain: its namespace, its guests and the
// bridge's data directory for the partition record (removed with the bridge). A change
// applied to it reads the guests again under the bridge's lock.
func ForBridge(env netsetup.Env, bridge string) (Target, error) {
	t := bridgeTarget(env, bridge)
	var err error
	t.Guests, err = t.guests()
	return t, err
}

// bridgeTarget is ForBridge's Target before its guests are read.
func bridgeTarget(env netsetup.Env, bridge string) Target {
	// The services come from the record the guests were read from, under the same lock.
	var rec atomic.Pointer[netsetup.BridgeState]
	id, _ := ns.ID(env.BridgeNetns(bridge))
	return Target{NetnsPath: env.BridgeNetns(bridge), Bridge: netsetup.BridgeDev, StateDir: env.BridgeDataDir(bridge), netnsID: id,
		guests: func() ([]Guest, error) {
			g, b, err := bridgeGuests(env, bridge)
			rec.Store(b)
			return g, err
		},
		services:       func() (*serviceSpec, error) { return bridgeServices(env, bridge, rec.Load()) },
		bridgeProblems: func() ([]string, error) { return netsetup.BridgeProblems(env, bridge) }}
}

func bridgeGuests(env netsetup.Env, bridge string) ([]Guest, *netsetup.BridgeState, error) {
	b, err := netsetup.BridgeMembers(env, bridge)
	if err != nil {
		return nil, nil, err
	}
	if b.Phase == netsetup.PhaseRemoving {
		return nil, nil, fmt.Errorf("bridge %q is being removed: %w", bridge, netsetup.ErrNoBridge)
	}
	var out []Guest
	for _, g := range b.Guests {
		if g.Phase != netsetup.PhaseReady {
			continue
		}
		if !g.IP.Is4() {
			return nil, nil, fmt.Errorf("bridge %q: guest %q has a bad address %q in its state", bridge, g.Name, g.IP)
		}
		out = append(out, Guest{Name: g.Name, IP: g.IP, IP6: g.IP6, Port: g.PortName(), NetnsPath: g.Netns})
	}
	return out, b, nil
}

// Refresh applies the bridge's recorded state again, for the guests it has now. The kernel
// knows a guest by its bridge port, so a guest that attaches, or attaches again with a new
// port after a restart, is outside the partition in force until the table names its port:
// whatever attaches a guest calls Refresh afterwards. With nothing applied it changes
// nothing and costs a stat: a change applied later reads the guests, this one included,
// under the lock.
func Refresh(env netsetup.Env, bridge string) error {
	t := bridgeTarget(env, bridge)
	// Adding a service writes the record too, so without one there is nothing to refresh.
	if _, err := os.Stat(filepath.Join(t.StateDir, StateFile)); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	services := hasServices(env, bridge)
	_, err := applyWith(t, func(s State) (State, error) { return s, nil }, applyOpts{onlyIfApplied: !services, kind: EventRefresh})
	if errors.Is(err, errNothingApplied) {
		return nil
	}
	return err
}
