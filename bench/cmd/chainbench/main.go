// Command chainbench times pontoon's chain operations through the netsetup library, inside a
// throwaway sandbox (netsetup/sandbox) so that it never touches the host's own network. It
// is the pontoon side of bench/compare.sh.
//
//	chainbench -op bridge3 -n 30            own sandbox; prints the per-op median
//	chainbench -setup -dir DIR              create a sandbox with its gateway in DIR
//	chainbench -dir DIR -op attach -n 1     one op against it (a process per op, for hyperfine)
//	chainbench -teardown -dir DIR           remove that sandbox and DIR
//
// Operations, each the counterpart of a baseline in ../shared/bench:
//
//	bridge3, bridge10  create a bridge, attach 3 (10) guests with fixed IPs, ping from the
//	                   first guest to the last, destroy the bridge; the gateway stays
//	                   (shell_chain.sh 3 / 10)
//	attach             attach one guest (a namespace pontoon creates) to an existing bridge
//	                   and detach it (cni_bridge.sh)
package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/pontoon-dev/pontoon/netsetup"
	"github.com/pontoon-dev/pontoon/netsetup/probe"
	"github.com/pontoon-dev/pontoon/netsetup/sandbox"
)

// attachBridge is the bridge the attach operation attaches its guest to.
const attachBridge = "attach"

func main() {
	op := flag.String("op", "", "operation: bridge3, bridge10 or attach")
	n := flag.Int("n", 20, "timed iterations")
	warmup := flag.Int("warmup", 3, "untimed iterations first (own sandbox only)")
	dir := flag.String("dir", "", "directory of a sandbox made with -setup (default: a sandbox of its own)")
	setup := flag.Bool("setup", false, "create a sandbox with its gateway in -dir and exit")
	teardown := flag.Bool("teardown", false, "remove the sandbox in -dir and exit")
	quiet := flag.Bool("quiet", false, "print nothing on success")
	flag.Parse()
	if err := run(*op, *n, *warmup, *dir, *setup, *teardown, *quiet); err != nil {
		fmt.Fprintln(os.Stderr, "chainbench:", err)
		os.Exit(1)
	}
}

func run(op string, n, warmup int, dir string, setup, teardown, quiet bool) error {
	if os.Geteuid() != 0 {
		return errors.New("needs root: builds network namespaces")
	}
	switch {
	case setup:
		if dir == "" {
			return errors.New("-setup needs -dir")
		}
		_, err := newSandbox(dir)
		return err
	case teardown:
		if dir == "" {
			return errors.New("-teardown needs -dir")
		}
		s, err := openSandbox(dir)
		if err != nil {
			return err
		}
		if err := s.Close(); err != nil {
			return err
		}
		return os.RemoveAll(dir)
	}
	step, err := operation(op)
	if err != nil {
		return err
	}
	if n < 1 {
		return fmt.Errorf("-n %d: give at least 1 iteration", n)
	}
	var s *sandbox.Sandbox
	if dir != "" {
		if s, err = openSandbox(dir); err != nil {
			return err
		}
		warmup = 0
	} else {
		tmp, err := os.MkdirTemp("", "chainbench-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(tmp)
		if s, err = newSandbox(tmp); err != nil {
			return err
		}
		defer s.Close()
	}
	times := make([]time.Duration, 0, n)
	for i := 0; i < warmup+n; i++ {
		start := time.Now()
		if err := step(s.Env); err != nil {
			return fmt.Errorf("%s: %w", op, err)
		}
		if i >= warmup {
			times = append(times, time.Since(start))
		}
	}
	if !quiet {
		slices.Sort(times)
		ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
		fmt.Printf("%s: n=%d median_ms=%.3f min_ms=%.3f max_ms=%.3f\n", op, n, ms(times[len(times)/2]), ms(times[0]), ms(times[len(times)-1]))
	}
	return nil
}

// newSandbox creates a sandbox with its gateway up and the attach bridge, and records it in
// dir so that later invocations can find it.
func newSandbox(dir string) (*sandbox.Sandbox, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	s, err := sandbox.New(dir)
	if err != nil {
		return nil, err
	}
	if _, err := netsetup.GatewayUp(s.Env, netsetup.GatewayOptions{}); err != nil {
		s.Close()
		return nil, err
	}
	if _, err := netsetup.CreateBridge(s.Env, attachBridge, netsetup.BridgeOptions{}); err != nil {
		s.Close()
		return nil, err
	}
	b, err := json.Marshal(s)
	if err == nil {
		err = os.WriteFile(filepath.Join(dir, "sandbox.json"), b, 0o600)
	}
	if err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

func openSandbox(dir string) (*sandbox.Sandbox, error) {
	b, err := os.ReadFile(filepath.Join(dir, "sandbox.json"))
	if err != nil {
		return nil, fmt.Errorf("no sandbox in %s (run -setup first): %w", dir, err)
	}
	var s sandbox.Sandbox
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, fmt.Errorf("read %s/sandbox.json: %w", dir, err)
	}
	return &s, nil
}

func operation(op string) (func(netsetup.Env) error, error) {
	switch op {
	case "bridge3":
		return func(env netsetup.Env) error { return bridgeWithGuests(env, 3) }, nil
	case "bridge10":
		return func(env netsetup.Env) error { return bridgeWithGuests(env, 10) }, nil
	case "attach":
		return attachDetach, nil
	}
	return nil, fmt.Errorf("-op %q: use bridge3, bridge10 or attach", op)
}

func bridgeWithGuests(env netsetup.Env, n int) (err error) {
	const name = "bench"
	if _, err := netsetup.CreateBridge(env, name, netsetup.BridgeOptions{}); err != nil {
		return err
	}
	defer func() {
		if derr := netsetup.DestroyBridge(env, name); err == nil {
			err = derr
		}
	}()
	var first *netsetup.Guest
	for i := 1; i <= n; i++ {
		g, err := netsetup.AddGuest(env, name, fmt.Sprintf("g%d", i), netsetup.GuestOptions{IP: fmt.Sprintf("172.18.0.%d", i)})
		if err != nil {
			return err
		}
		if first == nil {
			first = g
		}
	}
	last, err := netsetup.DefaultPlan().ParseGuestIP(fmt.Sprintf("172.18.0.%d", n))
	if err != nil {
		return err
	}
	return probe.Ping(first.Netns, last, time.Second)
}

func attachDetach(env netsetup.Env) error {
	if _, err := netsetup.AddGuest(env, attachBridge, "g", netsetup.GuestOptions{IP: "172.18.0.1"}); err != nil {
		return err
	}
	return netsetup.DelGuest(env, attachBridge, "g")
}
