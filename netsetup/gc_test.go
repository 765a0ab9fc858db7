package netsetup_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/pontoon-dev/pontoon/internal/nftpool"
	"github.com/pontoon-dev/pontoon/netsetup"
	"github.com/pontoon-dev/pontoon/netsetup/ns"
	"github.com/pontoon-dev/pontoon/netsetup/sandbox"
)

// 32 pontoon processes creating bridges at once get 32 distinct slots, and a gc running
// meanwhile removes none of the bridges being created (their creators are alive).
func TestConcurrentBridgeCreateProcesses(t *testing.T) {
	t.Parallel()
	const n = 32
	s := newChain(t, netsetup.GatewayOptions{})
	type result struct {
		slot int
		err  error
	}
	results := make([]result, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cmd := child(t, s.Env, "create-bridge", fmt.Sprintf("c%d", i))
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			out, err := cmd.Output()
			if err != nil {
				results[i].err = fmt.Errorf("process %d: %v: %s", i, err, stderr.String())
				return
			}
			results[i].err = json.Unmarshal(out, &results[i].slot)
		}()
	}
	created := make(chan struct{})
	go func() { wg.Wait(); close(created) }()
	var gcErr error
	var removed []string
	for running := true; running; {
		select {
		case <-created:
			running = false
		case <-time.After(5 * time.Millisecond):
		}
		rep, err := netsetup.GC(s.Env)
		if err != nil {
			gcErr = err
		}
		removed = append(removed, rep.Bridges...)
		removed = append(removed, rep.Orphans...)
		removed = append(removed, rep.Guests...)
	}
	if gcErr != nil || len(removed) > 0 {
		t.Errorf("gc during creation: removed %v, error %v", removed, gcErr)
	}
	var slots []int
	for _, r := range results {
		if r.err != nil {
			t.Error(r.err)
			continue
		}
		slots = append(slots, r.slot)
	}
	slices.Sort(slots)
	want := make([]int, n)
	for i := range want {
		want[i] = i
	}
	if !slices.Equal(slots, want) {
		t.Errorf("slots %v, want each of 0-%d once", slots, n-1)
	}
	plan := netsetup.DefaultPlan()
	gwLinks := strings.Join(links(t, s.Env.GatewayNetns()), "\n")
	bridges, err := netsetup.Bridges(s.Env)
	if err != nil || len(bridges) != n {
		t.Fatalf("Bridges: %d, %v", len(bridges), err)
	}
	for _, b := range bridges {
		if b.Phase != netsetup.PhaseReady {
			t.Errorf("bridge %s is %s", b.Name, b.Phase)
		}
		if want := fmt.Sprintf("s%d %s", b.Slot, plan.UplinkGateway(b.Slot)); !strings.Contains(gwLinks, want+"\n") && !strings.HasSuffix(gwLinks, want) {
			t.Errorf("gateway has no %q", want)
		}
		if got := fmt.Sprint(links(t, b.Netns(s.Env))); !strings.Contains(got, "uplink "+plan.UplinkBridge(b.Slot).String()) {
			t.Errorf("bridge %s (slot %d) links: %s", b.Name, b.Slot, got)
		}
	}
	// Tear them all down at once.
	for _, b := range bridges {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := netsetup.DestroyBridge(s.Env, b.Name); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	assertOnlyGateway(t, s)
}

// assertOnlyGateway checks that a sandbox holds a gateway and nothing of any bridge: no
// state record, no pinned namespace, no uplink in the gateway, no forward in its table.
func assertOnlyGateway(t *testing.T, s *sandbox.Sandbox) {
	t.Helper()
	if f := slices.DeleteFunc(files(t, s.Env.StateDir), func(n string) bool { return n == "next-slot" }); !slices.Equal(f, []string{"gateway.json"}) {
		t.Errorf("state files: %v, want only gateway.json (and the slot hint)", f)
	}
	if f := files(t, s.Env.NetnsDir); !slices.Equal(f, []string{"pontoon-gw"}) {
		t.Errorf("pinned namespaces: %v, want only pontoon-gw", f)
	}
	// Uplinks go away with their bridge's namespace, which the kernel removes asynchronously.
	deadline := time.Now().Add(10 * time.Second)
	got := linkNames(t, s.Env.GatewayNetns())
	for !slices.Equal(got, []string{"lo", "uplink"}) && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
		got = linkNames(t, s.Env.GatewayNetns())
	}
	if !slices.Equal(got, []string{"lo", "uplink"}) {
		t.Errorf("gateway links: %v, want lo and uplink", got)
	}
	if out := inNetns(t, s.Env.GatewayNetns(), "nft", "list", "chain", "ip", "pontoon", "prerouting"); strings.Contains(out, "dnat") {
		t.Errorf("port forwards left in the gateway:\n%s", out)
	}
}

// A pontoon process killed with SIGKILL at an arbitrary point of creating bridges and guests
// leaves garbage that gc removes completely; the chain keeps working afterwards.
func TestGCAfterKill(t *testing.T) {
	t.Parallel()
	s := newChain(t, netsetup.GatewayOptions{})
	const rounds = 10
	for i := range rounds {
		cmd := child(t, s.Env, "churn", fmt.Sprintf("k%d", i))
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		started, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		// Wait until the child runs pontoon code, then let it go for up to about two of its
		// create-and-destroy rounds.
		if _, err := started.Read(make([]byte, 1)); err != nil {
			t.Fatalf("round %d: churn process did not start: %v\n%s", i, err, stderr.String())
		}
		time.Sleep(time.Duration(rand.IntN(250)) * time.Millisecond)
		cmd.Process.Signal(syscall.SIGKILL)
		err = cmd.Wait()
		if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() {
			t.Fatalf("round %d: churn process ended by itself: %v\n%s", i, err, stderr.String())
		}
		rep, err := netsetup.GC(s.Env)
		if err != nil {
			t.Fatalf("round %d: gc: %v", i, err)
		}
		t.Logf("round %d: gc removed %+v", i, rep)
		assertOnlyGateway(t, s)
		if t.Failed() {
			t.FailNow()
		}
		// gc once more: nothing left to do.
		if rep, err := netsetup.GC(s.Env); err != nil || len(rep.Bridges)+len(rep.Guests)+len(rep.Orphans) > 0 || rep.Gateway {
			t.Errorf("round %d: second gc: %+v, %v", i, rep, err)
		}
	}
	mustBridge(t, s.Env, "after", netsetup.BridgeOptions{Ports: mustPorts(t, "20000:g1:7000")})
	g := mustGuest(t, s.Env, "after", "g1", "172.18.0.1")
	serveIdentity(t, g.Netns, addr(g.IP), 7000, "after")
	if got, err := ask(s.Host, addr("172.18.255.2"), 20000, "tcp", okTimeout); err != nil || got != "after" {
		t.Errorf("forward after gc: %q, %v", got, err)
	}
}

// gc removes exactly the bridges whose owner is gone and guests whose process is gone; a
// bridge with a live owner or none, and its guests, stay and keep working.
func TestGCKeepsLiveBridges(t *testing.T) {
	t.Parallel()
	s := newChain(t, netsetup.GatewayOptions{})
	self := netsetup.Self()
	dead := deadProcess(t)
	mustBridge(t, s.Env, "live", netsetup.BridgeOptions{Owner: &self})
	mustBridge(t, s.Env, "forever", netsetup.BridgeOptions{})
	mustBridge(t, s.Env, "orphan", netsetup.BridgeOptions{Owner: &dead, Ports: mustPorts(t, "8080:x:80")})
	mustGuest(t, s.Env, "orphan", "x", "172.18.0.1")
	a := mustGuest(t, s.Env, "live", "a", "172.18.0.1")
	b := mustGuest(t, s.Env, "live", "b", "172.18.0.2")
	c := mustGuest(t, s.Env, "forever", "c", "172.18.0.1")
	proc := startIn(t, newNetns(t, "proc"))
	if _, err := netsetup.AddGuest(s.Env, "live", "proc", netsetup.GuestOptions{IP: "172.18.0.3", PID: proc.Process.Pid}); err != nil {
		t.Fatal(err)
	}
	proc.Process.Kill()
	proc.Wait()

	rep, err := netsetup.GC(s.Env)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(rep.Bridges, []string{"orphan"}) || !slices.Equal(rep.Guests, []string{"live/proc"}) || len(rep.Orphans) > 0 || rep.Gateway {
		t.Errorf("gc report %+v, want bridge orphan and guest live/proc only", rep)
	}
	bridges, _ := netsetup.Bridges(s.Env)
	var names []string
	for _, br := range bridges {
		names = append(names, br.Name)
	}
	if !slices.Equal(names, []string{"live", "forever"}) {
		t.Errorf("bridges after gc: %v", names)
	}
	if _, err := os.Stat(filepath.Join(s.Env.NetnsDir, "pontoon-br-orphan")); err == nil {
		t.Error("orphan's namespace still pinned")
	}
	serve(t, b.Netns, addr(b.IP))
	mustReach(t, a.Netns, addr(b.IP))
	serve(t, s.Upstream, sandbox.UpstreamAddr.Addr())
	mustReach(t, c.Netns, sandbox.UpstreamAddr.Addr())
	if out := inNetns(t, s.Env.GatewayNetns(), "nft", "list", "chain", "ip", "pontoon", "prerouting"); strings.Contains(out, "8080") {
		t.Errorf("orphan's port forward left:\n%s", out)
	}
}

// A `gateway up` killed at an arbitrary point leaves either a working gateway or, after gc,
// a host exactly as it was (forwarding setting included).
func TestGCAfterKilledGatewayUp(t *testing.T) {
	t.Parallel()
	for i := range 8 {
		t.Run(fmt.Sprint(i), func(t *testing.T) {
			t.Parallel()
			s := newSandbox(t)
			pristine := snapshot(t, s)
			cmd := child(t, s.Env, "gateway-up", "")
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			started, err := cmd.StdoutPipe()
			if err != nil {
				t.Fatal(err)
			}
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			if _, err := started.Read(make([]byte, 1)); err != nil {
				t.Fatalf("child did not start: %v\n%s", err, stderr.String())
			}
			time.Sleep(time.Duration(rand.IntN(60)) * time.Millisecond)
			cmd.Process.Signal(syscall.SIGKILL)
			cmd.Wait()
			rep, err := netsetup.GC(s.Env)
			if err != nil {
				t.Fatalf("gc: %v", err)
			}
			if st, _ := netsetup.Status(s.Env); st.Up {
				t.Logf("killed after the gateway was up; gc: %+v", rep)
				if err := netsetup.GatewayDown(s.Env, false); err != nil {
					t.Fatal(err)
				}
			} else {
				t.Logf("killed while creating; gc: %+v", rep)
			}
			if after := snapshot(t, s); after != pristine {
				t.Errorf("host not restored:\nbefore\n%s\nafter\n%s", pristine, after)
			}
		})
	}
}

// A `gateway down` killed halfway (here: after removing the host link, before the rest) is
// finished by gc, which leaves the host exactly as it was before up.
func TestGCAfterKilledGatewayDown(t *testing.T) {
	t.Parallel()
	s := newSandbox(t)
	pristine := snapshot(t, s)
	if _, err := netsetup.GatewayUp(s.Env, netsetup.GatewayOptions{}); err != nil {
		t.Fatal(err)
	}
	// What a down killed at that point leaves: its "removing" record, owned by a process that
	// is gone, and the objects it had not removed yet.
	killedGateway(t, s.Env, netsetup.PhaseRemoving)
	inNetns(t, s.Host, "ip", "link", "del", netsetup.HostLinkName)
	if st, _ := netsetup.Status(s.Env); st.Up {
		t.Errorf("status says up during a removal")
	}
	rep, err := netsetup.GC(s.Env)
	if err != nil || !rep.Gateway {
		t.Fatalf("gc: %+v, %v; want the gateway removed", rep, err)
	}
	if after := snapshot(t, s); after != pristine {
		t.Errorf("host not restored:\nbefore\n%s\nafter\n%s", pristine, after)
	}
	if _, err := os.Stat(s.Env.StateDir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("gc that finished a gateway down left the state directory (%v)", err)
	}
	// The recovery of `gateway up`, which removes what a killed run left first, works in
	// the state directory that removal would have taken.
	if _, err := netsetup.GatewayUp(s.Env, netsetup.GatewayOptions{}); err != nil {
		t.Fatal(err)
	}
	// What an up killed halfway leaves: its "creating" record, owned by a process that is gone.
	killedGateway(t, s.Env, netsetup.PhaseCreating)
	if _, err := netsetup.GatewayUp(s.Env, netsetup.GatewayOptions{}); err != nil {
		t.Fatalf("gateway up over a half-made one: %v", err)
	}
	if st, err := netsetup.Status(s.Env); err != nil || !st.Up {
		t.Errorf("status after up over a half-made gateway: %+v, %v; want up", st, err)
	}
	if err := netsetup.GatewayDown(s.Env, false); err != nil {
		t.Fatal(err)
	}
}

// killedGateway rewrites the gateway's record as a process killed in the given phase leaves
// it: owned by a process that is gone.
func killedGateway(t *testing.T, env netsetup.Env, phase netsetup.Phase) {
	t.Helper()
	file := filepath.Join(env.StateDir, "gateway.json")
	var g netsetup.GatewayState
	b, err := os.ReadFile(file)
	if err != nil || json.Unmarshal(b, &g) != nil {
		t.Fatalf("read gateway state: %v", err)
	}
	g.Phase, g.Creator = phase, deadProcess(t)
	b, _ = json.Marshal(g)
	if err := os.WriteFile(file, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// Whatever a killed process left in the gateway's table, gc rebuilds its port forwards from
// the records: here a bridge's record is gone while its forward and objects remain.
func TestGCRebuildsForwards(t *testing.T) {
	t.Parallel()
	s := newChain(t, netsetup.GatewayOptions{})
	mustBridge(t, s.Env, "kept", netsetup.BridgeOptions{Ports: mustPorts(t, "7100:a:80/tcp")})
	mustBridge(t, s.Env, "lost", netsetup.BridgeOptions{Ports: mustPorts(t, "7200:a:80/tcp")})
	if err := os.Remove(filepath.Join(s.Env.StateDir, "bridges", "lost.json")); err != nil {
		t.Fatal(err)
	}
	if _, err := netsetup.GC(s.Env); err != nil {
		t.Fatal(err)
	}
	out := inNetns(t, s.Env.GatewayNetns(), "nft", "list", "chain", "ip", "pontoon", "prerouting")
	if strings.Contains(out, "7200") || !strings.Contains(out, "7100") {
		t.Errorf("gateway forwards after gc, want 7100 only:\n%s", out)
	}
}

// A guest del killed after it cut the guest off (its first step sets an owned guest's port
// down, or deletes the port of a namespace pontoon did not create) but before it rewrote the
// record leaves a guest recorded as ready that nothing reaches: gc finishes the removal, and
// the name and address are free again.
func TestGCFinishesKilledGuestDel(t *testing.T) {
	t.Parallel()
	s := newChain(t, netsetup.GatewayOptions{})
	mustBridge(t, s.Env, "kd", netsetup.BridgeOptions{})
	peer := mustGuest(t, s.Env, "kd", "peer", "172.18.0.1")
	owned := mustGuest(t, s.Env, "kd", "owned", "172.18.0.2")
	other := filepath.Join(t.TempDir(), "other")
	if err := ns.New(ns.Spec{Net: other}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ns.Remove(other) })
	if _, err := netsetup.AddGuest(s.Env, "kd", "other", netsetup.GuestOptions{IP: "172.18.0.3", Netns: other}); err != nil {
		t.Fatal(err)
	}
	brNetns := s.Env.BridgeNetns("kd")
	inNetns(t, brNetns, "ip", "link", "set", owned.PortName(), "down")
	inNetns(t, brNetns, "ip", "link", "del", "g3")
	rep, err := netsetup.GC(s.Env)
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(rep.Guests)
	if want := []string{"kd/other", "kd/owned"}; !slices.Equal(rep.Guests, want) {
		t.Errorf("gc removed guests %v; want %v", rep.Guests, want)
	}
	b, err := netsetup.GetBridge(s.Env, "kd")
	if err != nil {
		t.Fatal(err)
	}
	if len(b.Guests) != 1 || b.Guests[0].Name != "peer" {
		t.Errorf("after gc the bridge records %+v; want the peer alone", b.Guests)
	}
	if ns.IsPinned(owned.Netns) {
		t.Errorf("the owned guest's namespace %s is still pinned", owned.Netns)
	}
	// (The owned guest's port, down, goes with its namespace, which the kernel releases
	// asynchronously: a second gc may still find it, as after any del.)
	if rep, err := netsetup.GC(s.Env); err != nil || len(rep.Guests) > 0 {
		t.Errorf("second gc: %+v, %v", rep, err)
	}
	again := mustGuest(t, s.Env, "kd", "owned", "172.18.0.2")
	serve(t, again.Netns, addr(again.IP))
	mustReach(t, peer.Netns, addr(again.IP))
}

// The uplink of a bridge destroyed just before goes with the bridge's namespace, which the
// kernel removes after the destroy has returned: gc does not report it as a leftover (the
// command line's case, with the destroy and gc each a process of its own, is
// TestGCAfterBridgeDestroyCommand in cmd/pontoon). An
// uplink whose far end lives on (in a namespace some process keeps) is one, and gc removes
// it and says so.
func TestGCOrphanUplinks(t *testing.T) {
	t.Parallel()
	s := newChain(t, netsetup.GatewayOptions{})
	for i := range 5 {
		name := fmt.Sprintf("gone%d", i)
		mustBridge(t, s.Env, name, netsetup.BridgeOptions{})
		mustGuest(t, s.Env, name, "a", "172.18.0.1")
		if err := netsetup.DestroyBridge(s.Env, name); err != nil {
			t.Fatal(err)
		}
		// This process's nftables connections hold the namespace until they close (a
		// command hands them to a child that does not outlive the kernel's clean-up).
		nftpool.Release()
		rep, err := netsetup.GC(s.Env)
		if err != nil {
			t.Fatal(err)
		}
		if len(rep.Orphans) > 0 || len(rep.Bridges) > 0 {
			t.Errorf("gc right after destroying %s: %+v; want nothing to collect", name, rep)
		}
	}
	far := newNetns(t, "far")
	startIn(t, far) // keeps the far end's namespace alive whatever happens to its pin
	inNetns(t, s.Env.GatewayNetns(), "ip", "link", "add", "s77", "type", "veth", "peer", "name", "x77", "netns", far)
	rep, err := netsetup.GC(s.Env)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(rep.Orphans, []string{"gateway link s77"}) {
		t.Errorf("gc report %+v; want the orphan gateway link s77", rep)
	}
	if out := inNetns(t, s.Env.GatewayNetns(), "ip", "-o", "link", "show"); strings.Contains(out, "s77") {
		t.Errorf("s77 still in the gateway:\n%s", out)
	}
}

// A `gateway down --force` killed after it has destroyed the bridges, before the gateway
// (here blocked on the write of the gateway's record: its temporary file is a FIFO nobody
// reads), used to leave the gateway up and its bridges gone, which gc took for a ready
// gateway. Its intent is recorded before the bridges go: gc finishes the removal, or, killed
// before that, nothing has changed.
func TestGCAfterKilledGatewayDownForce(t *testing.T) {
	s := newChain(t, netsetup.GatewayOptions{})
	mustBridge(t, s.Env, "b1", netsetup.BridgeOptions{})
	mustGuest(t, s.Env, "b1", "g1", "172.18.0.1")
	mustBridge(t, s.Env, "b2", netsetup.BridgeOptions{})
	fifo := filepath.Join(s.Env.StateDir, "gateway.json.tmp")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	down := child(t, s.Env, "gateway-down-force", "")
	if err := down.Start(); err != nil {
		t.Fatal(err)
	}
	// Blocked in the open of the FIFO, or done (it must not be: the record is written).
	time.Sleep(500 * time.Millisecond)
	down.Process.Kill()
	down.Wait()
	os.Remove(fifo)
	if _, err := netsetup.GC(s.Env); err != nil {
		t.Logf("gc: %v", err)
	}
	st, err := netsetup.Status(s.Env)
	if err != nil {
		t.Fatal(err)
	}
	bridges, err := netsetup.Bridges(s.Env)
	if err != nil {
		t.Fatal(err)
	}
	whole := st.Up && len(bridges) == 2
	gone := !st.Up && len(bridges) == 0 && !ns.IsPinned(s.Env.GatewayNetns())
	if !whole && !gone {
		t.Errorf("after a killed gateway down --force and gc: gateway up %v, %d bridges; want the gateway and both bridges, or nothing", st.Up, len(bridges))
	}
}
