package main

import (
	"bytes"
	"errors"
	"fmt"
	"net/netip"
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

// floorPins are where grow-floor pins the namespaces of its n-th guest.
func floorPins(env netsetup.Env, n int) ns.Spec {
	dir := filepath.Dir(env.BridgeNetns(growBridge))
	return ns.Spec{Net: filepath.Join(dir, fmt.Sprintf("floor-g%d", n)), UTS: filepath.Join(dir, fmt.Sprintf("floor-uts-g%d", n)),
		Hostname: fmt.Sprintf("g%d", n)}
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
	attach := func(env netsetup.Env, i int) error {
		s := floorPins(env, i)
		if err := ns.New(s); err != nil {
			return err
		}
		ip := plan.GuestNet().Addr().Next()
		for range i - 1 {
			ip = ip.Next()
		}
		return floor.Attach(env.BridgeNetns(growBridge), s.Net, floorGuest(plan, ip, fmt.Sprintf("g%d", i)))
	}
	detach := func(env netsetup.Env, i int) error {
		s := floorPins(env, i)
		return errors.Join(floor.Detach(env.BridgeNetns(growBridge), fmt.Sprintf("g%d", i)), ns.Remove(s.Net), ns.Remove(s.UTS))
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
			for i := 1; i <= n; i++ {
				if i < n || attached {
					errs = append(errs, detach(env, i))
				}
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
	const ip, port = "172.18.0.78", "g78"
	var h holder
	var args []string
	var pid int
	stop := func(env netsetup.Env) error {
		if _, ok := h.stop(); !ok {
			return nil
		}
		return runFloorHook(bin, nil, "poststop", env.BridgeNetns(attachBridge), port)
	}
	return step{
		prepare: func(env netsetup.Env) error {
			if err := stop(env); err != nil {
				return err
			}
			if args == nil {
				plan, err := netsetup.CurrentPlan(env)
				if err != nil {
					return err
				}
				args = append([]string{"create-runtime", env.BridgeNetns(attachBridge)}, floorGuest(plan, netip.MustParseAddr(ip), port).Args()...)
			}
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
