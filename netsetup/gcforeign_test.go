package netsetup_test

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pontoon-dev/pontoon/netsetup"
	"github.com/pontoon-dev/pontoon/netsetup/ns"
	"golang.org/x/sys/unix"
)

// A bridge's pin removed outside pontoon and its path then used for another namespace (`ip
// netns del` and `ip netns add` of the name) stays the other tool's: gc drops the bridge, and
// neither that gc nor a later one, which finds the pin with no record, removes the other
// namespace. A guest's path taken the same way is left too.
func TestGCLeavesForeignNamespaceAtPontoonPath(t *testing.T) {
	s := newChain(t, netsetup.GatewayOptions{})
	mustBridge(t, s.Env, "a", netsetup.BridgeOptions{})
	mustBridge(t, s.Env, "b", netsetup.BridgeOptions{})
	mustGuest(t, s.Env, "b", "g1", "172.18.0.1")
	mustGuest(t, s.Env, "b", "g2", "172.18.0.2")
	take := func(path string) uint64 {
		t.Helper()
		if err := unix.Unmount(path, unix.MNT_DETACH); err != nil {
			t.Fatal(err)
		}
		if err := ns.Remove(path); err != nil {
			t.Fatal(err)
		}
		if err := ns.New(ns.Spec{Net: path}); err != nil { // as ip netns add does
			t.Fatal(err)
		}
		t.Cleanup(func() { ns.Remove(path) })
		id, _ := ns.ID(path)
		return id
	}
	brPath, gPath := s.Env.BridgeNetns("a"), s.Env.GuestNetns("b", "g1")
	brTheirs, gTheirs := take(brPath), take(gPath)
	for round := range 3 {
		rep, err := netsetup.GC(s.Env)
		if err != nil {
			t.Logf("gc round %d: %v", round, err)
		}
		if !slices.Contains(rep.Kept, brPath) {
			t.Errorf("gc round %d kept %v; want it to report the other namespace at %s it left", round, rep.Kept, brPath)
		}
		if id, _ := ns.ID(brPath); id != brTheirs {
			t.Fatalf("gc round %d removed or replaced the other tool's namespace at bridge a's path %s", round, brPath)
		}
		if id, _ := ns.ID(gPath); id != gTheirs {
			t.Fatalf("gc round %d removed or replaced the other tool's namespace at guest g1's path %s", round, gPath)
		}
	}
}

// The gateway's namespace, its pin unmounted while a process inside keeps it alive, is still
// refused to an attach of that process: the gateway's record knows its identity.
func TestUnpinnedGatewayNamespaceRefused(t *testing.T) {
	s := newChain(t, netsetup.GatewayOptions{})
	mustBridge(t, s.Env, "b", netsetup.BridgeOptions{})
	pid := insideUnpinned(t, s.Env.GatewayNetns())
	_, err := netsetup.AddGuest(s.Env, "b", "x", netsetup.GuestOptions{IP: "172.18.0.9", PID: pid})
	if !errors.Is(err, netsetup.ErrPontoonNamespace) || !strings.Contains(err.Error(), "the gateway's") {
		t.Fatalf("guest add of a process in the gateway's namespace, its pin unmounted: %v; want it refused as pontoon's own", err)
	}
}

// The gateway's pin removed outside pontoon and its path then used for another namespace:
// status says the gateway is gone and what brings it back; `gateway down --force` clears the
// records and leaves the other namespace pinned, and gateway up builds the gateway again
// once the path is free.
func TestGatewayPathTaken(t *testing.T) {
	s := newChain(t, netsetup.GatewayOptions{})
	mustBridge(t, s.Env, "b", netsetup.BridgeOptions{})
	gw := s.Env.GatewayNetns()
	if err := unix.Unmount(gw, unix.MNT_DETACH); err != nil {
		t.Fatal(err)
	}
	if err := ns.Remove(gw); err != nil {
		t.Fatal(err)
	}
	if err := ns.New(ns.Spec{Net: gw}); err != nil { // as ip netns add does
		t.Fatal(err)
	}
	theirs, _ := ns.ID(gw)
	st, err := netsetup.Status(s.Env)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"another tool's namespace is pinned at its path", "gateway down --force", "umount " + gw} {
		if !strings.Contains(st.Problem, want) {
			t.Errorf("status of a gateway whose path another namespace took: %q; want it to say %q", st.Problem, want)
		}
	}
	// Neither a create nor gc writes into the other namespace.
	if _, err := netsetup.CreateBridge(s.Env, "c", netsetup.BridgeOptions{}); !errors.Is(err, netsetup.ErrGatewayLost) {
		t.Errorf("bridge create with the gateway's path taken: %v; want the gateway reported broken", err)
	}
	netsetup.GC(s.Env)
	if links := linkNames(t, gw); len(links) != 1 {
		t.Errorf("the other tool's namespace at the gateway's path has links %v after create and gc; want its lo alone", links)
	}
	if err := netsetup.GatewayDown(s.Env, true); err != nil {
		t.Fatalf("gateway down --force with the gateway's path taken: %v", err)
	}
	if id, _ := ns.ID(gw); id != theirs {
		t.Fatalf("gateway down --force removed or replaced the other tool's namespace at %s", gw)
	}
	// With no gateway record left, neither gc nor a plain gateway down takes it for a lost
	// gateway's.
	if rep, _ := netsetup.GC(s.Env); !slices.Contains(rep.Kept, gw) {
		t.Errorf("gc with no gateway record kept %v; want it to report the other namespace at %s", rep.Kept, gw)
	}
	netsetup.GatewayDown(s.Env, false)
	if id, _ := ns.ID(gw); id != theirs {
		t.Fatalf("gc or gateway down with no record removed or replaced the other tool's namespace at %s", gw)
	}
	if err := ns.Remove(gw); err != nil {
		t.Fatal(err)
	}
	if _, err := netsetup.GatewayUp(s.Env, netsetup.GatewayOptions{}); err != nil {
		t.Fatalf("gateway up once the path is free: %v", err)
	}
}

// Another bridge's namespace, its pin unmounted while a process inside keeps it alive, is
// refused to an attach of that process: it has pontoon's uplink.
func TestUnpinnedOtherBridgeNamespaceRefused(t *testing.T) {
	s := newChain(t, netsetup.GatewayOptions{})
	mustBridge(t, s.Env, "a", netsetup.BridgeOptions{})
	mustBridge(t, s.Env, "b", netsetup.BridgeOptions{})
	pid := insideUnpinned(t, s.Env.BridgeNetns("a"))
	_, err := netsetup.AddGuest(s.Env, "b", "x", netsetup.GuestOptions{IP: "172.18.0.9", PID: pid})
	if !errors.Is(err, netsetup.ErrPontoonNamespace) || !strings.Contains(err.Error(), "uplink") {
		t.Fatalf("guest add of a process in bridge a's namespace, its pin unmounted: %v; want it refused as pontoon's own", err)
	}
}

// insideUnpinned starts a process in the namespace pinned at pin, then unmounts the pin, as
// another tool might while the process keeps the namespace alive; it returns the process's
// pid. When the test ends, the namespace is pinned again from the process, then the process
// ends.
func insideUnpinned(t *testing.T, pin string) int {
	t.Helper()
	inside := exec.Command("nsenter", "--net="+pin, "sleep", "600")
	if err := inside.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { inside.Process.Kill(); inside.Wait() })
	want, _ := ns.ID(pin)
	procNS := fmt.Sprintf("/proc/%d/ns/net", inside.Process.Pid)
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(time.Millisecond) {
		if id, _ := ns.ID(procNS); id == want {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("nsenter never entered the namespace pinned at %s", pin)
		}
	}
	if err := unix.Unmount(pin, unix.MNT_DETACH); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Mount(procNS, pin, "", unix.MS_BIND, "") })
	return inside.Process.Pid
}

// A bridge whose record was lost with its guests alive: one gc removes its pin, its guests'
// pins and their UTS pins, all recognisably pontoon's, and keeps none.
func TestGCRemovesPontoonsOrphans(t *testing.T) {
	s := newChain(t, netsetup.GatewayOptions{})
	mustBridge(t, s.Env, "b", netsetup.BridgeOptions{})
	mustGuest(t, s.Env, "b", "g1", "172.18.0.1")
	mustGuest(t, s.Env, "b", "g2", "172.18.0.2")
	mustGuest(t, s.Env, "b", "g3", "172.18.0.3")
	// g3's path taken by another tool first: its UTS pin stays in pontoon's state directory,
	// which says nothing of what is at the path now.
	g3 := s.Env.GuestNetns("b", "g3")
	if err := unix.Unmount(g3, unix.MNT_DETACH); err != nil {
		t.Fatal(err)
	}
	if err := ns.Remove(g3); err != nil {
		t.Fatal(err)
	}
	if err := ns.New(ns.Spec{Net: g3}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ns.Remove(g3) })
	theirs, _ := ns.ID(g3)
	if err := os.Remove(filepath.Join(s.Env.StateDir, "bridges", "b.json")); err != nil {
		t.Fatal(err)
	}
	rep, err := netsetup.GC(s.Env)
	if err != nil {
		t.Fatalf("gc after the record was lost: %v", err)
	}
	if !slices.Equal(rep.Kept, []string{g3}) {
		t.Errorf("gc kept %v; want only the other tool's namespace at %s", rep.Kept, g3)
	}
	if id, _ := ns.ID(g3); id != theirs {
		t.Errorf("gc removed or replaced the other tool's namespace at %s", g3)
	}
	for _, p := range []string{s.Env.BridgeNetns("b"), s.Env.GuestNetns("b", "g1"), s.Env.GuestNetns("b", "g2"),
		filepath.Join(s.Env.StateDir, "uts", "g1@b"), filepath.Join(s.Env.StateDir, "uts", "g2@b"), filepath.Join(s.Env.StateDir, "uts", "g3@b")} {
		if exists(p) {
			t.Errorf("gc left %s of the bridge whose record was lost (orphans removed: %v)", p, rep.Orphans)
		}
	}
	// The names are free again.
	mustBridge(t, s.Env, "b", netsetup.BridgeOptions{})
	mustGuest(t, s.Env, "b", "g1", "172.18.0.1")
}

// Another state directory sharing the directory of pins (PONTOON_STATE_DIR set for one
// command) sees this one's gateway, bridge and guests with no record of its own: its gc
// leaves them, saying whose they are, its gateway down and up refuse to touch the gateway,
// and the chain keeps working. Once this directory's records are gone (removed by hand),
// the pins are orphans for anyone. gc used to tear the live chain down as left over from a
// lost record.
func TestAnotherStateDirsChainIsLeftAlone(t *testing.T) {
	s := newChain(t, netsetup.GatewayOptions{})
	mustBridge(t, s.Env, "b", netsetup.BridgeOptions{})
	g1 := mustGuest(t, s.Env, "b", "g1", "172.18.0.1")
	mustGuest(t, s.Env, "b", "g2", "172.18.0.2")
	serve(t, s.Env.GuestNetns("b", "g2"), addr("172.18.0.2"))
	other := s.Env
	other.StateDir = filepath.Join(t.TempDir(), "state")
	before := snapshot(t, s)
	rep, err := netsetup.GC(other)
	if err != nil {
		t.Fatalf("gc of another state directory: %v", err)
	}
	var others []string
	for _, o := range rep.Others {
		if o.StateDir != s.Env.StateDir {
			t.Errorf("gc names %s as %s's; want %s's", o.Path, o.StateDir, s.Env.StateDir)
		}
		others = append(others, o.Path)
	}
	slices.Sort(others)
	want := []string{s.Env.GuestNetns("b", "g1"), s.Env.GuestNetns("b", "g2"), s.Env.BridgeNetns("b"), s.Env.GatewayNetns()}
	slices.Sort(want)
	if !slices.Equal(others, want) || len(rep.Orphans) != 0 || rep.Gateway {
		t.Errorf("gc of another state directory: left as another's %v, removed %v (gateway %v); want %v left, nothing removed", others, rep.Orphans, rep.Gateway, want)
	}
	var oe *netsetup.OthersError
	if err := netsetup.GatewayDown(other, true); !errors.As(err, &oe) || oe.StateDir != s.Env.StateDir {
		t.Errorf("gateway down --force of another state directory: %v; want it refused as %s's", err, s.Env.StateDir)
	}
	if _, err := netsetup.GatewayUp(other, netsetup.GatewayOptions{}); !errors.As(err, &oe) {
		t.Errorf("gateway up of another state directory: %v; want it refused as %s's", err, s.Env.StateDir)
	}
	unchanged(t, s, before, "the other state directory's gc, gateway down and up", "chain")
	mustReach(t, g1.Netns, addr("172.18.0.2"))
	// This directory's records gone: the marks name a directory that no longer records
	// them, and the other's gc removes them.
	if err := os.RemoveAll(filepath.Join(s.Env.StateDir, "bridges")); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(s.Env.StateDir, "gateway.json")); err != nil {
		t.Fatal(err)
	}
	rep, err = netsetup.GC(other)
	if err != nil {
		t.Logf("gc once the records are gone: %v", err)
	}
	if len(rep.Others) != 0 {
		t.Errorf("gc left %v as another's once its records were gone", rep.Others)
	}
	for _, p := range want {
		if ns.IsPinned(p) {
			t.Errorf("gc left %s once the records naming it were gone (removed %v)", p, rep.Orphans)
		}
	}
}

// Another tool's namespace pinned at a guest's path with no '@' in its name (no bridge to
// look up) is left by gc, like any other foreign pin.
func TestGCLeavesAGuestPathWithoutBridge(t *testing.T) {
	s := newChain(t, netsetup.GatewayOptions{})
	p := filepath.Join(s.Env.NetnsDir, "pontoon-g-noat")
	if err := ns.New(ns.Spec{Net: p}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ns.Remove(p) })
	rep, err := netsetup.GC(s.Env)
	if err != nil {
		t.Fatalf("gc: %v", err)
	}
	if !slices.Contains(rep.Kept, p) || !ns.IsPinned(p) {
		t.Errorf("gc kept %v, removed %v; want %s left and reported", rep.Kept, rep.Orphans, p)
	}
}
