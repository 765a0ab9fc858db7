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

	"github.com/pontoon-dev/pontoon/netsetup"
	"github.com/pontoon-dev/pontoon/netsetup/ns"
	"golang.org/x/sys/unix"
)

// These tests pin in the real /run/netns, next to real `ip netns`, because the problem lies in
// how that one directory is shared with other tools; the host they build on is a sandbox.

const runNetns = "/run/netns"

// privateMountsEnv marks a test process started in a private mount namespace.
const privateMountsEnv = "PONTOON_TEST_PRIVATE_MOUNTS"

// sharedDirEnv returns a sandbox whose namespaces are pinned in the real /run/netns, and
// restores /run/netns afterwards, also on failure: pontoon's and the test's pins removed, the
// directory unmounted again when the test made it a mount (unless some other tool pinned
// there meanwhile: unmounting would detach its pin), and removed when the test created it.
func sharedDirEnv(t *testing.T) netsetup.Env {
	t.Helper()
	needRoot(t)
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("ip (Debian package iproute2) is not installed")
	}
	ents, _ := os.ReadDir(runNetns)
	before := map[string]bool{}
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), "pontoon-") || strings.HasPrefix(e.Name(), "ptest-") {
			t.Skipf("%s/%s exists: a pontoon chain or another run of this test uses /run/netns", runNetns, e.Name())
		}
		before[e.Name()] = true
	}
	_, statErr := os.Stat(runNetns)
	existed := statErr == nil
	mountsBefore := dirMounts(t)
	t.Cleanup(func() {
		exec.Command("ip", "netns", "del", "ptest-x").Run()
		ents, _ := os.ReadDir(runNetns)
		for _, e := range ents {
			if strings.HasPrefix(e.Name(), "pontoon-") {
				if err := ns.Remove(filepath.Join(runNetns, e.Name())); err != nil {
					t.Errorf("cleanup: %v", err)
				}
			}
		}
		for n := dirMounts(t); n > mountsBefore; n-- {
			if foreign := foreignPins(t, before); len(foreign) > 0 {
				t.Logf("leaving %s mounted: other tools pinned %v meanwhile", runNetns, foreign)
				return
			}
			if err := unix.Unmount(runNetns, unix.MNT_DETACH); err != nil {
				t.Errorf("cleanup: unmount %s: %v", runNetns, err)
				return
			}
		}
		if !existed {
			os.Remove(runNetns) // only when empty
		}
	})
	s := newSandbox(t)
	env := s.Env
	env.NetnsDir = runNetns
	t.Cleanup(func() {
		if err := netsetup.GatewayDown(env, true); err != nil {
			t.Errorf("cleanup: %v", err)
		}
	})
	return env
}

// inPlainNetnsDir makes the calling test run where /run/netns is a plain directory, and
// reports whether the caller is there and should go on. A scene that needs /run/netns plain
// cannot be set up on a machine where some tool has already made it a shared mount without
// detaching that tool's pins. So the test runs again in a child process with a private copy
// of the mount namespace (`unshare -m --propagation private`): the real directory and the
// real `ip`, but mounts nobody else sees, which die with the child. The child lifts the
// mounts on /run/netns in its copy. Files the child leaves (pins of its own namespace show
// as plain files here) are removed when the test ends.
func inPlainNetnsDir(t *testing.T) bool {
	t.Helper()
	if os.Getenv(privateMountsEnv) != "" {
		for dirMounts(t) > 0 {
			if err := unix.Unmount(runNetns, unix.MNT_DETACH); err != nil {
				t.Fatal(err)
			}
		}
		return true
	}
	needRoot(t)
	if _, err := exec.LookPath("unshare"); err != nil {
		t.Skip("unshare (Debian package util-linux) is not installed")
	}
	ents, _ := os.ReadDir(runNetns)
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), "pontoon-") || e.Name() == "ptest-x" {
			t.Skipf("%s/%s exists: a pontoon chain or another run of this test uses /run/netns", runNetns, e.Name())
		}
	}
	t.Cleanup(func() {
		left, _ := filepath.Glob(filepath.Join(runNetns, "pontoon-*"))
		for _, p := range append(left, filepath.Join(runNetns, "ptest-x")) {
			if !ns.IsPinned(p) {
				os.Remove(p)
			}
		}
	})
	cmd := exec.Command("unshare", "-m", "--propagation", "private", os.Args[0], "-test.run=^"+t.Name()+"$", "-test.count=1", "-test.v")
	cmd.Env = append(os.Environ(), privateMountsEnv+"=1")
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "--- PASS: "+t.Name()) {
		t.Fatalf("in a private mount namespace: %v\n%s", err, out)
	}
	return false
}

// dirMounts counts the mounts stacked on /run/netns itself.
func dirMounts(t *testing.T) int {
	t.Helper()
	ms, err := ns.Mounts()
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, m := range ms {
		if m.Point == runNetns {
			n++
		}
	}
	return n
}

// foreignPins lists namespaces pinned in /run/netns that were neither there before the test
// nor made by it.
func foreignPins(t *testing.T, before map[string]bool) []string {
	ms, _ := ns.Mounts()
	var out []string
	for _, m := range ms {
		name, ok := strings.CutPrefix(m.Point, runNetns+"/")
		if ok && m.FSType == "nsfs" && !before[name] && !strings.HasPrefix(name, "pontoon-") && name != "ptest-x" {
			out = append(out, name)
		}
	}
	return out
}

// nsfsMountsUnder lists the namespace mounts under /run/netns whose name starts with prefix,
// hidden ones included.
func nsfsMountsUnder(t *testing.T, prefix string) []string {
	t.Helper()
	ms, err := ns.Mounts()
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, m := range ms {
		if m.FSType == "nsfs" && strings.HasPrefix(m.Point, filepath.Join(runNetns, prefix)) {
			out = append(out, m.Point)
		}
	}
	return out
}

func ipNetns(t *testing.T, args ...string) {
	t.Helper()
	if out, err := exec.Command("ip", append([]string{"netns"}, args...)...).CombinedOutput(); err != nil {
		t.Fatalf("ip netns %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// buildAndTearDown creates a bridge with a guest, lets `ip netns add/del` run in the middle
// (between), then destroys the bridge and the gateway and checks that nothing of pontoon
// stays pinned, visibly or hidden.
func buildAndTearDown(t *testing.T, env netsetup.Env, between func()) {
	t.Helper()
	if _, err := netsetup.GatewayUp(env, netsetup.GatewayOptions{}); err != nil {
		t.Fatal(err)
	}
	mustBridge(t, env, "b1", netsetup.BridgeOptions{})
	mustGuest(t, env, "b1", "g1", "172.18.0.1")
	between()
	if n := dirMounts(t); n != 1 {
		t.Errorf("%s is mounted %d times, want once (shared, never bound again)", runNetns, n)
	}
	for _, p := range []string{env.GatewayNetns(), env.BridgeNetns("b1"), env.GuestNetns("b1", "g1")} {
		if !ns.IsPinned(p) {
			t.Errorf("%s is not pinned after ip netns add/del", p)
		}
	}
	if err := netsetup.DestroyBridge(env, "b1"); err != nil {
		t.Fatalf("destroy after ip netns add/del: %v", err)
	}
	if err := netsetup.GatewayDown(env, false); err != nil {
		t.Fatalf("gateway down after ip netns add/del: %v", err)
	}
	if left := nsfsMountsUnder(t, "pontoon-"); len(left) > 0 {
		t.Errorf("pontoon's namespaces are still mounted: %v", left)
	}
	if ents, _ := filepath.Glob(filepath.Join(runNetns, "pontoon-*")); len(ents) > 0 {
		t.Errorf("pin files left: %v", ents)
	}
}

// `pontoon gateway up; pontoon bridge create b1; ip netns add x; ip netns del x; pontoon
// bridge destroy b1; pontoon gateway down` on a host whose /run/netns no tool used before:
// iproute2 must find /run/netns already prepared and bind nothing over pontoon's pins, so
// destroy and down succeed and remove everything.
//
// Run in a private mount namespace with /run/netns plain, as on a machine no tool has pinned
// in yet: see inPlainNetnsDir.
func TestSharedNetnsDirPontoonFirst(t *testing.T) {
	if !inPlainNetnsDir(t) {
		return
	}
	env := sharedDirEnv(t)
	buildAndTearDown(t, env, func() {
		ms, _ := ns.Mounts()
		shared := false
		for _, m := range ms {
			shared = shared || (m.Point == runNetns && m.Shared)
		}
		if !shared {
			t.Errorf("pontoon pinned in %s without making it a shared mount", runNetns)
		}
		ipNetns(t, "add", "ptest-x")
		ipNetns(t, "del", "ptest-x")
	})
}

// `ip netns add x` before pontoon builds its chain, `ip netns del x` while it stands:
// pontoon uses iproute2's shared mount as it finds it.
func TestSharedNetnsDirIPFirst(t *testing.T) {
	env := sharedDirEnv(t)
	ipNetns(t, "add", "ptest-x")
	buildAndTearDown(t, env, func() { ipNetns(t, "del", "ptest-x") })
}

// Pins made on the plain /run/netns (by a pontoon that did not prepare it), then `ip netns
// add x; ip netns del x` binds /run/netns over them. Destroy, gc, gateway down --force and a
// later gateway up must all succeed and leave no namespace mounted out of sight; a bridge
// whose pin got hidden (its visible copy unmounted, as a failed destroy or `ip netns del`
// leaves it) is reported by Bridges and repaired by gc.
//
// Run in a private mount namespace with /run/netns plain: see inPlainNetnsDir.
func TestSharedNetnsDirHiddenPins(t *testing.T) {
	if !inPlainNetnsDir(t) {
		return
	}
	env := sharedDirEnv(t)
	shared := ns.SharedDir
	ns.SharedDir = "" // pin like a pontoon that leaves the directory plain
	_, err := netsetup.GatewayUp(env, netsetup.GatewayOptions{})
	if err == nil {
		mustBridge(t, env, "b1", netsetup.BridgeOptions{})
		// A forward to remove from the gateway when its pin is hidden.
		mustBridge(t, env, "b2", netsetup.BridgeOptions{Ports: mustPorts(t, "9090:g1:80")})
		mustGuest(t, env, "b1", "g1", "172.18.0.1")
		mustGuest(t, env, "b2", "g1", "172.18.0.1")
	}
	ns.SharedDir = shared
	if err != nil {
		t.Fatal(err)
	}
	if n := dirMounts(t); n != 0 {
		t.Fatalf("%s is mounted %d times before ip netns ran, want 0", runNetns, n)
	}
	ipNetns(t, "add", "ptest-x")
	ipNetns(t, "del", "ptest-x")
	if n := dirMounts(t); n != 1 {
		t.Fatalf("ip netns add did not bind %s over the plain directory (%d mounts)", runNetns, n)
	}

	if err := netsetup.DestroyBridge(env, "b1"); err != nil {
		t.Errorf("destroy over hidden pins: %v", err)
	}
	if left := nsfsMountsUnder(t, "pontoon-br-b1"); len(left) > 0 {
		t.Errorf("destroyed bridge still mounted (hidden): %v", left)
	}

	// b2's visible pin goes, its hidden original stays: the bridge is unusable.
	brPath := env.BridgeNetns("b2")
	var st0 unix.Stat_t
	if err := unix.Stat(brPath, &st0); err != nil {
		t.Fatal(err)
	}
	if err := unix.Unmount(brPath, unix.MNT_DETACH); err != nil {
		t.Fatal(err)
	}
	if !ns.HiddenPin(brPath) {
		t.Fatalf("%s: no hidden pin after unmounting its copy", brPath)
	}
	b2 := findBridge(t, env, "b2")
	if b2 == nil || b2.Problem == "" {
		t.Errorf("Bridges reports b2 with a hidden namespace as %+v, want a problem", b2)
	}
	rep, err := netsetup.GC(env)
	if err != nil {
		t.Fatalf("gc over a hidden pin: %v", err)
	}
	if !strings.Contains(strings.Join(rep.Repaired, " "), "b2") {
		t.Errorf("gc report %+v does not say it repaired b2", rep)
	}
	var st1 unix.Stat_t
	if err := unix.Stat(brPath, &st1); err != nil || st1.Ino != st0.Ino || !ns.IsPinned(brPath) {
		t.Errorf("b2's namespace after gc: pinned=%v, inode %d, want the original %d", ns.IsPinned(brPath), st1.Ino, st0.Ino)
	}
	if b2 := findBridge(t, env, "b2"); b2 == nil || b2.Problem != "" {
		t.Errorf("Bridges after gc: b2 = %+v, want no problem", b2)
	}

	// The gateway's pin hidden: status says so (not just "down"), and gateway up, which once
	// said "already up" over it, pins the gateway's own namespace again, as gc does.
	gwPath := env.GatewayNetns()
	if err := unix.Stat(gwPath, &st0); err != nil {
		t.Fatal(err)
	}
	if err := unix.Unmount(gwPath, unix.MNT_DETACH); err != nil {
		t.Fatal(err)
	}
	if st, err := netsetup.Status(env); err != nil || st.Up || !strings.Contains(st.Problem, "hidden") || !strings.Contains(st.Problem, "`pontoon gateway up`") {
		t.Errorf("status over a hidden gateway pin: up %v, problem %q, %v; want not up, hidden, fixed by gateway up", st.Up, st.Problem, err)
	}
	if already, err := netsetup.GatewayUp(env, netsetup.GatewayOptions{}); err != nil || !already {
		t.Errorf("gateway up over a hidden gateway pin: already %v, %v", already, err)
	}
	if err := unix.Stat(gwPath, &st1); err != nil || st1.Ino != st0.Ino || !ns.IsPinned(gwPath) {
		t.Errorf("gateway namespace after gateway up: pinned=%v, inode %d, want the original %d", ns.IsPinned(gwPath), st1.Ino, st0.Ino)
	}
	if st, err := netsetup.Status(env); err != nil || !st.Up || st.Problem != "" {
		t.Errorf("status after gateway up pinned the gateway again: up %v, problem %q, %v", st.Up, st.Problem, err)
	}

	// The gateway's pin hidden again: down --force must still remove everything.
	if err := unix.Unmount(env.GatewayNetns(), unix.MNT_DETACH); err != nil {
		t.Fatal(err)
	}
	if err := netsetup.GatewayDown(env, true); err != nil {
		t.Fatalf("gateway down --force over hidden pins: %v", err)
	}
	if left := nsfsMountsUnder(t, "pontoon-"); len(left) > 0 {
		t.Errorf("namespaces still mounted (hidden) after gateway down: %v", left)
	}
	if _, err := netsetup.GatewayUp(env, netsetup.GatewayOptions{}); err != nil {
		t.Fatalf("gateway up after recovering: %v", err)
	}
	if err := netsetup.GatewayDown(env, true); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(env.GatewayNetns()); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("gateway pin after down: %v", err)
	}
}

func findBridge(t *testing.T, env netsetup.Env, name string) *netsetup.BridgeState {
	t.Helper()
	bs, err := netsetup.Bridges(env)
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range bs {
		if b.Name == name {
			return b
		}
	}
	return nil
}

// `ip netns del pontoon-br-x` on a running chain: `bridge list` once still said ready and gc
// said nothing to collect. Bridges must report the problem, gc remove the bridge (its
// guest's namespace and its uplink too) and say so, and a second gc find nothing.
func TestBridgeDeletedByIPNetnsDel(t *testing.T) {
	env := sharedDirEnv(t)
	if _, err := netsetup.GatewayUp(env, netsetup.GatewayOptions{}); err != nil {
		t.Fatal(err)
	}
	b := mustBridge(t, env, "x", netsetup.BridgeOptions{})
	g := mustGuest(t, env, "x", "g", "172.18.0.1")
	ipNetns(t, "del", filepath.Base(b.Netns(env)))
	if x := findBridge(t, env, "x"); x == nil || !strings.Contains(x.Problem, "gone") {
		t.Errorf("Bridges lists x as %+v, want its namespace reported gone", x)
	}
	rep, err := netsetup.GC(env)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Broken) != 1 || rep.Broken[0] != "x" {
		t.Errorf("gc report %+v, want broken bridge x removed", rep)
	}
	if findBridge(t, env, "x") != nil || exists(g.Netns) {
		t.Errorf("after gc: bridge listed %v, guest pin left %v", findBridge(t, env, "x") != nil, exists(g.Netns))
	}
	if got := linkNames(t, env.GatewayNetns()); slices.Contains(got, fmt.Sprintf("s%d", b.Slot)) {
		t.Errorf("uplink of x left in the gateway: %v", got)
	}
	if rep, err := netsetup.GC(env); err != nil || len(rep.Broken)+len(rep.Bridges)+len(rep.Orphans)+len(rep.Guests) > 0 {
		t.Errorf("second gc: %+v, %v", rep, err)
	}
}
