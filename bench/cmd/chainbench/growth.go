package main

import (
	"errors"
	"fmt"

	"github.com/pontoon-dev/pontoon/netsetup"
)

// growBridge is the bridge the grow-attach operation fills.
const growBridge = "grow"

// growAttach times the attach of the n-th guest of a bridge that already holds n-1: the
// filling happens once, before the first run, and the guest is detached again before each
// run (neither timed).
func growAttach(n int) (step, error) {
	if n < 1 || n > 253 {
		return step{}, fmt.Errorf("-guests %d: give 1 to 253", n)
	}
	filled, attached := false, false
	name := fmt.Sprintf("g%d", n)
	return step{
		prepare: func(env netsetup.Env) error {
			if !filled {
				if _, err := netsetup.CreateBridge(env, growBridge, netsetup.BridgeOptions{}); err != nil {
					return err
				}
				for i := 1; i < n; i++ {
					if _, err := netsetup.AddGuest(env, growBridge, fmt.Sprintf("g%d", i), netsetup.GuestOptions{IP: fmt.Sprintf("172.18.0.%d", i)}); err != nil {
						return fmt.Errorf("fill bridge %s: %w", growBridge, err)
					}
				}
				filled = true
			}
			if attached {
				attached = false
				return netsetup.DelGuest(env, growBridge, name)
			}
			return nil
		},
		run: func(env netsetup.Env) error {
			_, err := netsetup.AddGuest(env, growBridge, name, netsetup.GuestOptions{IP: fmt.Sprintf("172.18.0.%d", n)})
			attached = err == nil
			return err
		},
	}, nil
}

// growBridges times the creation of the n-th bridge of a chain that already holds n-1
// (besides the sandbox's own): created once before the first run, and the n-th destroyed
// again before each run (neither timed).
func growBridges(n int) (step, error) {
	if n < 1 || n > 1000 {
		return step{}, fmt.Errorf("-bridges %d: give 1 to 1000", n)
	}
	filled, created := false, false
	name := fmt.Sprintf("b%d", n)
	return step{
		prepare: func(env netsetup.Env) error {
			if !filled {
				for i := 1; i < n; i++ {
					if _, err := netsetup.CreateBridge(env, fmt.Sprintf("b%d", i), netsetup.BridgeOptions{}); err != nil {
						return fmt.Errorf("create bridge %d of %d: %w", i, n-1, err)
					}
				}
				filled = true
			}
			if created {
				created = false
				return netsetup.DestroyBridge(env, name)
			}
			return nil
		},
		run: func(env netsetup.Env) error {
			_, err := netsetup.CreateBridge(env, name, netsetup.BridgeOptions{})
			created = err == nil
			return err
		},
	}, nil
}

// errGrowDir refuses the growth operations against a shared sandbox, whose bridges and
// guests they would add to and leave behind.
var errGrowDir = errors.New("grow-attach and grow-bridges fill a sandbox of their own; drop -dir")
