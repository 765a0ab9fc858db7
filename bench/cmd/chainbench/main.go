// Command chainbench times pontoon's chain and partition operations through the library,
// inside a throwaway sandbox (netsetup/sandbox) so that it never touches the host's own
// network, and prepares the scenes that bench/compare.sh times pontoon's command line and
// runc against. It is the pontoon side of bench/compare.sh.
//
//	chainbench -op bridge3 -n 30            own sandbox; prints the per-op median
//	chainbench -op apply -guests 16 -n 30   the same for a partition of a 16-guest bridge
//	chainbench -setup -dir DIR [-setup-guests 5,16,64] [-bundles -pontoon BIN -cni-netns PATH]
//	                                        create a sandbox with its gateway in DIR
//	chainbench -dir DIR -op attach -n 1     one op against it (a process per op, for hyperfine)
//	chainbench -dir DIR -print-env          the PONTOON_* variables that point pontoon at it
//	chainbench -teardown -dir DIR           remove that sandbox and DIR
//
// Operations, each the counterpart of a baseline in bench/baselines:
//
//	bridge3, bridge10  create a bridge, attach 3 (10) guests with fixed IPs, ping from the
//	                   first guest to the last, destroy the bridge; the gateway stays
//	                   (shell_chain.sh 3 / 10)
//	attach             attach one guest (a namespace pontoon creates) to an existing bridge
//	                   and detach it (cni_bridge.sh)
//	hook               run `-pontoon BIN hook create-runtime` for a new process in a network
//	                   namespace of its own, as an engine does at a container's start; its
//	                   stop and poststop before the next run are not timed
//	floor-hook         the same with -floorhook BIN (bench/cmd/floorhook) as the hook: the
//	                   kernel's part of the attach alone, in a Go process of its own
//	apply              isolate guest g1 of the bridge p<N> (N = -guests) from a healed state:
//	                   look the bridge up, build the partition, apply it; the heal before
//	                   each run is not timed (iptables_per_guest.sh apply N)
//	heal               heal that bridge from the isolated state; the apply before each run is
//	                   not timed (iptables_per_guest.sh heal N)
//	halves             random-halves (seed 7) of that bridge from a healed state
//
// and, for how cost grows with size (own sandbox only; the filling is not timed):
//
//	grow-attach        attach the N-th guest (N = -guests) to a bridge holding N-1
//	grow-floor         the same done by the kernel's part of an attach alone
//	                   (bench/internal/floor): no records, lock or checks
//	grow-bridges       create the N-th bridge (N = -bridges) beside N-1 others
//
// -setup-guests N,.. creates a bridge p<N> with guests g1..gN (172.18.0.1..N) per size, for
// apply and heal and for `pontoon partition ... --bridge p<N>`. -bundles writes OCI bundles of
// a busybox `true` container under DIR/bundles (its root, DIR/bundles/rootfs, also has the
// ping, touch and usleep the three-children comparison runs): "none" (a network namespace of its own, no
// networking), "hook" (attached to the bridge "ctr" by the pontoon binary -pontoon as its
// hook, detached at poststop) and, with -cni-netns, "cni" (joins that namespace, which the
// caller sets up with the CNI bridge plugin).
package main

import (
	"debug/elf"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/pontoon-dev/pontoon/netsetup"
	"github.com/pontoon-dev/pontoon/netsetup/probe"
	"github.com/pontoon-dev/pontoon/netsetup/sandbox"
	"github.com/pontoon-dev/pontoon/partition"
	"github.com/pontoon-dev/pontoon/runtime"
	"github.com/pontoon-dev/pontoon/runtime/config"
)

const (
	// attachBridge is the bridge the attach operation attaches its guest to.
	attachBridge = "attach"
	// containerBridge is the bridge the hook bundle's container joins.
	containerBridge = "ctr"
)

type options struct {
	op             string
	n, warmup      int
	guests         int
	bridges        int
	dir            string
	setup          bool
	teardown       bool
	printEnv       bool
	quiet          bool
	setupGuests    string
	bundles        bool
	pontoon        string
	floorhook      string
	cniNetns       string
	partitionSizes []int
}

func main() {
	var o options
	flag.StringVar(&o.op, "op", "", "operation: bridge3, bridge10, attach, hook, floor-hook, apply, heal, halves, grow-attach, grow-floor or grow-bridges")
	flag.IntVar(&o.n, "n", 20, "timed iterations")
	flag.IntVar(&o.warmup, "warmup", 3, "untimed iterations first (own sandbox only)")
	flag.IntVar(&o.guests, "guests", 16, "guests of the bridge that apply, heal and halves act on; grow-attach times the attach of guest N")
	flag.IntVar(&o.bridges, "bridges", 10, "grow-bridges times the creation of bridge N")
	flag.StringVar(&o.dir, "dir", "", "directory of a sandbox made with -setup (default: a sandbox of its own)")
	flag.BoolVar(&o.setup, "setup", false, "create a sandbox with its gateway in -dir and exit")
	flag.BoolVar(&o.teardown, "teardown", false, "remove the sandbox in -dir and exit")
	flag.BoolVar(&o.printEnv, "print-env", false, "print shell exports that point pontoon at the sandbox in -dir and exit")
	flag.BoolVar(&o.quiet, "quiet", false, "print nothing on success")
	flag.StringVar(&o.setupGuests, "setup-guests", "", "with -setup: comma-separated sizes N; a bridge p<N> with guests g1..gN each")
	flag.BoolVar(&o.bundles, "bundles", false, "with -setup: write the container bundles under DIR/bundles (needs -pontoon)")
	flag.StringVar(&o.pontoon, "pontoon", "", "with -bundles or -op hook: the pontoon binary run as the hook")
	flag.StringVar(&o.floorhook, "floorhook", "", "with -op floor-hook: the floorhook binary (bench/cmd/floorhook) run as the hook")
	flag.StringVar(&o.cniNetns, "cni-netns", "", "with -bundles: the network namespace path the cni bundle joins")
	flag.Parse()
	if err := run(o); err != nil {
		fmt.Fprintln(os.Stderr, "chainbench:", err)
		os.Exit(1)
	}
}

func run(o options) (err error) {
	if os.Geteuid() != 0 {
		return errors.New("needs root: builds network namespaces")
	}
	switch {
	case o.setup:
		if o.dir == "" {
			return errors.New("-setup needs -dir")
		}
		sizes, err := parseSizes(o.setupGuests)
		if err != nil {
			return err
		}
		o.partitionSizes = sizes
		if o.bundles && o.pontoon == "" {
			return errors.New("-bundles needs -pontoon, the pontoon binary to run as the hook")
		}
		_, err = newSandbox(o.dir, o)
		return err
	case o.teardown:
		if o.dir == "" {
			return errors.New("-teardown needs -dir")
		}
		s, err := openSandbox(o.dir)
		if err != nil {
			return err
		}
		if err := s.Close(); err != nil {
			return err
		}
		return os.RemoveAll(o.dir)
	case o.printEnv:
		if o.dir == "" {
			return errors.New("-print-env needs -dir")
		}
		s, err := openSandbox(o.dir)
		if err != nil {
			return err
		}
		for _, kv := range s.Env.Environ() {
			k, v, _ := strings.Cut(kv, "=")
			fmt.Printf("export %s='%s'\n", k, strings.ReplaceAll(v, "'", `'\''`))
		}
		return nil
	}
	step, err := operation(o.op, o.guests, o.bridges, o.pontoon, o.floorhook)
	if err != nil {
		return err
	}
	if o.dir != "" && strings.HasPrefix(o.op, "grow-") {
		return errGrowDir
	}
	if o.n < 1 {
		return fmt.Errorf("-n %d: give at least 1 iteration", o.n)
	}
	var s *sandbox.Sandbox
	if o.dir != "" {
		if s, err = openSandbox(o.dir); err != nil {
			return err
		}
		o.warmup = 0
	} else {
		tmp, err := os.MkdirTemp("", "chainbench-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(tmp)
		if o.op == "apply" || o.op == "heal" || o.op == "halves" {
			o.partitionSizes = []int{o.guests}
		}
		if s, err = newSandbox(tmp, o); err != nil {
			return err
		}
		defer s.Close()
	}
	if step.cleanup != nil {
		defer func() {
			if cerr := step.cleanup(s.Env); cerr != nil && err == nil {
				err = fmt.Errorf("%s: clean up: %w", o.op, cerr)
			}
		}()
	}
	times := make([]time.Duration, 0, o.n)
	for i := 0; i < o.warmup+o.n; i++ {
		if step.prepare != nil {
			if err := step.prepare(s.Env); err != nil {
				return fmt.Errorf("%s: prepare: %w", o.op, err)
			}
		}
		start := time.Now()
		if err := step.run(s.Env); err != nil {
			return fmt.Errorf("%s: %w", o.op, err)
		}
		if i >= o.warmup {
			times = append(times, time.Since(start))
		}
	}
	if !o.quiet {
		slices.Sort(times)
		ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
		fmt.Printf("%s: n=%d median_ms=%.3f min_ms=%.3f max_ms=%.3f\n", o.op, o.n, ms(times[len(times)/2]), ms(times[0]), ms(times[len(times)-1]))
	}
	return nil
}

// parseSizes reads the -setup-guests list.
func parseSizes(list string) ([]int, error) {
	var sizes []int
	for _, f := range strings.Split(list, ",") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		n, err := strconv.Atoi(f)
		if err != nil || n < 2 || n > 253 {
			return nil, fmt.Errorf("-setup-guests %q: %q is not a guest count from 2 to 253; give e.g. 5,16,64", list, f)
		}
		sizes = append(sizes, n)
	}
	return sizes, nil
}

// partitionBridge names the bridge of n guests that apply and heal act on.
func partitionBridge(n int) string { return fmt.Sprintf("p%d", n) }

// newSandbox creates a sandbox with its gateway up, the attach bridge and whatever o asks
// for, and records it in dir so that later invocations can find it.
func newSandbox(dir string, o options) (_ *sandbox.Sandbox, err error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	s, err := sandbox.New(dir)
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			s.Close()
		}
	}()
	if _, err := netsetup.GatewayUp(s.Env, netsetup.GatewayOptions{}); err != nil {
		return nil, err
	}
	if _, err := netsetup.CreateBridge(s.Env, attachBridge, netsetup.BridgeOptions{}); err != nil {
		return nil, err
	}
	for _, n := range o.partitionSizes {
		name := partitionBridge(n)
		if _, err := netsetup.CreateBridge(s.Env, name, netsetup.BridgeOptions{}); err != nil {
			return nil, err
		}
		for i := 1; i <= n; i++ {
			if _, err := netsetup.AddGuest(s.Env, name, fmt.Sprintf("g%d", i), netsetup.GuestOptions{IP: fmt.Sprintf("172.18.0.%d", i)}); err != nil {
				return nil, err
			}
		}
	}
	if o.bundles {
		if _, err := netsetup.CreateBridge(s.Env, containerBridge, netsetup.BridgeOptions{}); err != nil {
			return nil, err
		}
		if err := writeBundles(filepath.Join(dir, "bundles"), s.Env, o.pontoon, o.cniNetns); err != nil {
			return nil, err
		}
	}
	b, err := json.Marshal(s)
	if err == nil {
		err = os.WriteFile(filepath.Join(dir, "sandbox.json"), b, 0o600)
	}
	if err != nil {
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

// step is one timed operation; prepare, when set, runs untimed before each run, and
// cleanup after the last.
type step struct {
	prepare func(netsetup.Env) error
	run     func(netsetup.Env) error
	cleanup func(netsetup.Env) error
}

func operation(op string, guests, bridges int, pontoon, floorhook string) (step, error) {
	switch op {
	case "hook":
		return hookStep(pontoon)
	case "floor-hook":
		return floorHookStep(floorhook)
	case "grow-attach":
		return growAttach(guests)
	case "grow-floor":
		return growFloor(guests)
	case "grow-bridges":
		return growBridges(bridges)
	case "bridge3":
		return step{run: func(env netsetup.Env) error { return bridgeWithGuests(env, 3) }}, nil
	case "bridge10":
		return step{run: func(env netsetup.Env) error { return bridgeWithGuests(env, 10) }}, nil
	case "attach":
		return step{run: attachDetach}, nil
	case "apply", "heal", "halves":
		if guests < 2 || guests > 253 {
			return step{}, fmt.Errorf("-guests %d: give 2 to 253", guests)
		}
		br := partitionBridge(guests)
		apply := func(env netsetup.Env) error { return isolateFirst(env, br) }
		if op == "halves" {
			return step{prepare: func(env netsetup.Env) error { return healBridge(env, br) },
				run: func(env netsetup.Env) error { return randomHalves(env, br) }}, nil
		}
		heal := func(env netsetup.Env) error { return healBridge(env, br) }
		if op == "apply" {
			return step{prepare: heal, run: apply}, nil
		}
		return step{prepare: apply, run: heal}, nil
	}
	return step{}, fmt.Errorf("-op %q: use bridge3, bridge10, attach, hook, floor-hook, apply, heal, halves, grow-attach, grow-floor or grow-bridges", op)
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

// isolateFirst does what `pontoon partition isolate g1 --bridge BR` does in the library:
// look the bridge up, build the partition, apply it.
func isolateFirst(env netsetup.Env, bridge string) error {
	t, err := partition.ForBridge(env, bridge)
	if err != nil {
		return err
	}
	p, err := partition.Isolate(t.Guests, "g1")
	if err != nil {
		return err
	}
	return partition.Apply(t, partition.State{Partition: p})
}

// randomHalves does what `pontoon partition random-halves 7 --bridge BR` does in the library.
func randomHalves(env netsetup.Env, bridge string) error {
	t, err := partition.ForBridge(env, bridge)
	if err != nil {
		return err
	}
	p, err := partition.RandomHalves(t.Guests, 7)
	if err != nil {
		return err
	}
	return partition.Apply(t, partition.State{Partition: p})
}

func healBridge(env netsetup.Env, bridge string) error {
	t, err := partition.ForBridge(env, bridge)
	if err != nil {
		return err
	}
	return partition.Heal(t)
}

// writeBundles writes the none, hook and (with cniNetns) cni bundles of a busybox `true`
// container below dir, sharing one root filesystem.
func writeBundles(dir string, env netsetup.Env, pontoon, cniNetns string) error {
	pontoon, err := filepath.Abs(pontoon)
	if err != nil {
		return err
	}
	rootfs, err := busyboxRootfs(filepath.Join(dir, "rootfs"))
	if err != nil {
		return err
	}
	root := config.Root{Kind: config.RootRootfs, Path: rootfs}
	bundles := map[string]*runtime.Container{
		"none": {Net: runtime.NetNone},
		"hook": {Net: runtime.NetGuest, Guest: &runtime.Guest{Bridge: containerBridge, Name: "c", IP: netip.MustParseAddr("172.18.0.1")}},
	}
	if cniNetns != "" {
		bundles["cni"] = &runtime.Container{Net: runtime.NetBridge, BridgeNetns: cniNetns}
	}
	for name, c := range bundles {
		c.ID, c.Name, c.Args, c.Root, c.Hostname = "bench-"+name, "bench", []string{"true"}, root, "bench"
		c.Pontoon, c.ChainEnv = pontoon, env
		if err := runtime.WriteBundle(filepath.Join(dir, name), c); err != nil {
			return err
		}
	}
	return nil
}

// busyboxRootfs builds a root filesystem of a static busybox and the applets the bundles
// run, and returns its path.
func busyboxRootfs(root string) (string, error) {
	const bb = "/bin/busybox"
	f, err := elf.Open(bb)
	if err != nil {
		return "", fmt.Errorf("container root: open %s: %w (install the Debian package busybox-static)", bb, err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		// A dynamic busybox cannot run without its libraries in a root of its own.
		if p.Type == elf.PT_INTERP {
			return "", fmt.Errorf("container root: %s is dynamically linked; install the Debian package busybox-static", bb)
		}
	}
	for _, d := range []string{"bin", "etc", "tmp", "proc", "sys", "dev", "work"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			return "", err
		}
	}
	data, err := os.ReadFile(bb)
	if err != nil {
		return "", err
	}
	if err := os.WriteFile(filepath.Join(root, "bin", "busybox"), data, 0o755); err != nil {
		return "", err
	}
	for _, a := range []string{"sh", "true", "echo", "ping", "touch", "usleep"} {
		if err := os.Symlink("busybox", filepath.Join(root, "bin", a)); err != nil && !errors.Is(err, os.ErrExist) {
			return "", err
		}
	}
	return root, nil
}
