package main

import (
	"bytes"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	"github.com/opencontainers/runtime-spec/specs-go"
	"github.com/pontoon-dev/pontoon/bench/internal/floor"
	"github.com/pontoon-dev/pontoon/netsetup"
	"github.com/pontoon-dev/pontoon/netsetup/ns"
)

// floorGuest is what floor.Attach gives the guest with address ip on plan, on a port named
// port: what pontoon's attach gives it.
func floorGuest(plan netsetup.Plan, ip netip.Addr, port string) floor.Guest {
	mac := netsetup.GuestMAC(ip)
	g := floor.Guest{Port: port, MAC: mac, Addr: plan.GuestAddr(ip), Via: plan.BridgeAddr().Addr(),
		PingGroups: netsetup.PingGroupRange, BridgeDev: netsetup.BridgeDev, If: netsetup.GuestIfName}
	if plan.IPv6() {
		g.LinkLocal6 = netsetup.LinkLocal6(mac)
		g.Addr6 = netip.PrefixFrom(plan.GuestIP6(ip), plan.GuestNet6().Bits())
		g.Via6 = plan.BridgeAddr6().Addr()
	}
	return g
}

// floorPins are where grow-floor pins the namespaces of its n-th guest: beside pontoon's
// guests' pins, the UTS one in the state directory as pontoon's are.
func floorPins(env netsetup.Env, n int) ns.Spec {
	return ns.Spec{Net: filepath.Join(filepath.Dir(env.BridgeNetns(growBridge)), fmt.Sprintf("floor-g%d", n)),
		UTS: filepath.Join(env.StateDir, "uts", fmt.Sprintf("floor-g%d", n)), Hostname: fmt.Sprintf("g%d", n)}
}

// growFloor is growAttach done by the kernel's part of an attach alone (bench/internal/floor):
// a namespace made and pinned as pontoon makes a guest's, then attached, for the n-th guest
// of a bridge holding n-1 attached the same way.
func growFloor(n int) (step, error) {
	if n < 1 || n > 253 {
		return step{}, fmt.Errorf("-guests %d: give 1 to 253", n)
	}
	filled, attached := false, false
	var plan netsetup.Plan
	// A detached port goes with its namespace, later: each attach of guest n names its port
	// afresh, as pontoon's does while an earlier one is still there.
	ports, runs := map[int]string{}, 0
	attach := func(env netsetup.Env, i int) error {
		ports[i] = fmt.Sprintf("g%d", i)
		if i == n {
			runs++
			ports[i] = fmt.Sprintf("g%d-%d", i, runs)
		}
		s := floorPins(env, i)
		if err := os.MkdirAll(filepath.Dir(s.UTS), 0o700); err != nil {
			return err
		}
		if err := ns.New(s); err != nil {
			return err
		}
		ip := plan.GuestNet().Addr().Next()
		for range i - 1 {
			ip = ip.Next()
		}
		return floor.Attach(env.BridgeNetns(growBridge), s.Net, floorGuest(plan, ip, ports[i]))
	}
	detach := func(env netsetup.Env, i int) error {
		s := floorPins(env, i)
		err := errors.Join(floor.Detach(env.BridgeNetns(growBridge), ports[i]), ns.Remove(s.Net), ns.Remove(s.UTS))
		delete(ports, i)
		return err
	}
	return step{
		prepare: func(env netsetup.Env) error {
			if !filled {
				var err error
				if plan, err = netsetup.CurrentPlan(env); err != nil {
					return err
				}
				if _, err := netsetup.CreateBridge(env, growBridge, netsetup.BridgeOptions{}); err != nil {
					return err
				}
				for i := 1; i < n; i++ {
					if err := attach(env, i); err != nil {
						return fmt.Errorf("fill bridge %s: %w", growBridge, err)
					}
				}
				filled = true
			}
			if attached {
				attached = false
				return detach(env, n)
			}
			return nil
		},
		run: func(env netsetup.Env) error {
			err := attach(env, n)
			attached = err == nil
			return err
		},
		cleanup: func(env netsetup.Env) error {
			var errs []error
			for i := 1; i < n || (i == n && attached); i++ {
				errs = append(errs, detach(env, i))
			}
			if !attached {
				detach(env, n) // what a failed run left, if anything
			}
			return errors.Join(errs...)
		},
	}, nil
}

// floorHookStep is hookStep with bench/cmd/floorhook as the hook: the least a hook that is
// one Go process adds to a container's start here.
func floorHookStep(bin string) (step, error) {
	if bin == "" {
		return step{}, errors.New("-op floor-hook needs -floorhook, the floorhook binary")
	}
	const ip = "172.18.0.78"
	var h holder
	var plan netsetup.Plan
	var args []string
	var pid, runs int
	port := func() string { return fmt.Sprintf("g78-%d", runs) } // afresh each run, as in growFloor
	stop := func(env netsetup.Env) error {
		if _, ok := h.stop(); !ok {
			return nil
		}
		return runFloorHook(bin, nil, "poststop", env.BridgeNetns(attachBridge), port())
	}
	return step{
		prepare: func(env netsetup.Env) error {
			if err := stop(env); err != nil {
				return err
			}
			if runs == 0 {
				var err error
				if plan, err = netsetup.CurrentPlan(env); err != nil {
					return err
				}
			}
			runs++
			args = append([]string{"create-runtime", env.BridgeNetns(attachBridge)}, floorGuest(plan, netip.MustParseAddr(ip), port()).Args()...)
			time.Sleep(hookSettle)
			var err error
			pid, err = h.start()
			return err
		},
		run: func(env netsetup.Env) error {
			return runFloorHook(bin, hookState(pid, specs.StateCreated), args...)
		},
		cleanup: stop,
	}, nil
}

func runFloorHook(bin string, state []byte, args ...string) error {
	cmd := exec.Command(bin, args...)
	cmd.Stdin = bytes.NewReader(state)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("floorhook %s: %w: %s", args[0], err, out)
	}
	return nil
}
