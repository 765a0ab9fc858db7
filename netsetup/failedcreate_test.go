package netsetup_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pontoon-dev/pontoon/netsetup"
	"github.com/pontoon-dev/pontoon/netsetup/ns"
)

// A bridge create that fails, and whose rollback cannot remove the bridge's namespace, keeps
// the record (marked removing): it is what makes an attach refuse that namespace, and what gc
// finishes. Without the namespace, the record goes.
func TestFailedCreateKeepsRecordWhileNamespaceStays(t *testing.T) {
	s := newChain(t, netsetup.GatewayOptions{})
	mustBridge(t, s.Env, "b", netsetup.BridgeOptions{})
	path := s.Env.BridgeNetns("b")

	err := netsetup.DropFailedCreate(s.Env, "b")
	if err == nil || !strings.Contains(err.Error(), "could not be removed; pontoon gc removes it") {
		t.Fatalf("dropping a failed create whose namespace stays: %v, want it to say gc removes the namespace", err)
	}
	bs, err := netsetup.Bridges(s.Env)
	if err != nil {
		t.Fatal(err)
	}
	if len(bs) != 1 || bs[0].Phase != netsetup.PhaseRemoving {
		t.Fatalf("records after the failed create: %+v, want bridge b kept in phase removing", bs)
	}
	if err := netsetup.CheckNotHost(s.Env, path); !errors.Is(err, netsetup.ErrPontoonNamespace) {
		t.Fatalf("attach check of the kept bridge namespace: %v, want it refused as pontoon's own", err)
	}
	if _, err := netsetup.GC(s.Env); err != nil {
		t.Fatal(err)
	}
	if bs, err := netsetup.Bridges(s.Env); err != nil || len(bs) != 0 {
		t.Fatalf("records after gc: %v %v, want none", bs, err)
	}
	if ns.IsPinned(path) {
		t.Errorf("gc left the failed bridge's namespace pinned at %s", path)
	}

	// The rollback removed the namespace: the record goes with it.
	mustBridge(t, s.Env, "c", netsetup.BridgeOptions{})
	if err := ns.Remove(s.Env.BridgeNetns("c")); err != nil {
		t.Fatal(err)
	}
	if err := netsetup.DropFailedCreate(s.Env, "c"); err != nil {
		t.Fatalf("dropping a failed create whose namespace is gone: %v", err)
	}
	if bs, err := netsetup.Bridges(s.Env); err != nil || len(bs) != 0 {
		t.Fatalf("records after dropping the failed create: %v %v, want none", bs, err)
	}
}

// A bridge's namespace whose record is gone (removed by hand) is still refused to an attach:
// its pin names it.
func TestBridgeNamespaceWithoutRecordRefused(t *testing.T) {
	s := newChain(t, netsetup.GatewayOptions{})
	mustBridge(t, s.Env, "a", netsetup.BridgeOptions{})
	mustBridge(t, s.Env, "b", netsetup.BridgeOptions{})
	rec := filepath.Join(s.Env.StateDir, "bridges", "a.json")
	aside := filepath.Join(t.TempDir(), "a.json")
	if err := os.Rename(rec, aside); err != nil {
		t.Fatal(err)
	}
	defer os.Rename(aside, rec)
	_, err := netsetup.AddGuest(s.Env, "b", "x", netsetup.GuestOptions{IP: "172.18.0.10", Netns: s.Env.BridgeNetns("a")})
	if !errors.Is(err, netsetup.ErrPontoonNamespace) || !strings.Contains(err.Error(), `bridge "a"'s`) {
		t.Fatalf("guest add of bridge a's namespace, its record gone: %v; want it refused as bridge a's", err)
	}
}

// A bridge create with port forwards next to a record that cannot be read whole (its guests
// damaged) refuses before anything is made: it would need that record to rewrite the
// gateway's forwards, and its rollback too.
func TestCreateWithPortsRefusesUnreadableRecord(t *testing.T) {
	s := newChain(t, netsetup.GatewayOptions{})
	mustBridge(t, s.Env, "p", netsetup.BridgeOptions{})
	mustGuest(t, s.Env, "p", "g1", "172.18.0.1")
	rec := filepath.Join(s.Env.StateDir, "bridges", "p.json")
	good, err := os.ReadFile(rec)
	if err != nil {
		t.Fatal(err)
	}
	bad := strings.Replace(string(good), `"hostname":"g1"`, `"hostname":g1`, 1)
	if bad == string(good) {
		t.Fatalf("record %s has no hostname to damage:\n%s", rec, good)
	}
	if err := os.WriteFile(rec, []byte(bad), 0o600); err != nil {
		t.Fatal(err)
	}
	defer os.WriteFile(rec, good, 0o600)
	before := snapshot(t, s)
	port, err := netsetup.ParsePort("9090:x:80/tcp")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := netsetup.CreateBridge(s.Env, "c", netsetup.BridgeOptions{Ports: []netsetup.Port{port}}); err == nil || !strings.Contains(err.Error(), "p.json") {
		t.Fatalf("bridge create with a forward beside a damaged record: %v; want it refused, naming the record", err)
	}
	if after := snapshot(t, s); after != before {
		t.Errorf("the refused create changed the chain:\nbefore\n%s\nafter\n%s", before, after)
	}
}

// A bridge create that fails because another tool's namespace is pinned at the bridge's path
// keeps no record: gc must not take that namespace for the failed create's.
func TestFailedCreateOnForeignPinKeepsNoRecord(t *testing.T) {
	s := newChain(t, netsetup.GatewayOptions{})
	path := s.Env.BridgeNetns("x")
	if err := ns.New(ns.Spec{Net: path}); err != nil { // as ip netns add does
		t.Fatal(err)
	}
	t.Cleanup(func() { ns.Remove(path) })
	theirs, _ := ns.ID(path)
	if _, err := netsetup.CreateBridge(s.Env, "x", netsetup.BridgeOptions{}); err == nil {
		t.Fatal("bridge create over another tool's namespace at its path succeeded")
	}
	if bs, err := netsetup.Bridges(s.Env); err != nil || len(bs) != 0 {
		t.Fatalf("records after the failed create: %v %v; want none", bs, err)
	}
	if _, err := netsetup.GC(s.Env); err != nil {
		t.Logf("gc: %v", err)
	}
	if id, _ := ns.ID(path); id != theirs {
		t.Fatalf("the failed create and gc removed or replaced the other tool's namespace at %s", path)
	}
}
