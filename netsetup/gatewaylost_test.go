package netsetup_test

import (
	"encoding/json"
	"errors"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pontoon-dev/pontoon/netsetup"
	"github.com/pontoon-dev/pontoon/netsetup/ns"
)

// removeGatewayNetns does what `ip netns del pontoon-gw` does, and waits until the kernel
// has taken the namespace and its host link away.
func removeGatewayNetns(t *testing.T, env netsetup.Env, host string) {
	t.Helper()
	if err := ns.Remove(env.GatewayNetns()); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(5 * time.Second); strings.Contains(strings.Join(links(t, host), " "), netsetup.HostLinkName); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%s still in the host 5 s after the gateway's namespace was removed", netsetup.HostLinkName)
		}
	}
}

// TestGatewayUpOverLostNamespace: GatewayUp once trusted the gateway's record alone and
// answered "already up" over a namespace deleted by hand. Under bridges it must refuse with
// ErrGatewayLost, change nothing and name the fix that Status names too; with no bridge left
// it builds the gateway again, with the plan the record has.
func TestGatewayUpOverLostNamespace(t *testing.T) {
	t.Parallel()
	s := newSandbox(t)
	moved, _ := netsetup.ParsePlan("10.77.0.0/16")
	if _, err := netsetup.GatewayUp(s.Env, netsetup.GatewayOptions{Plan: moved, IPv4Only: true, NoFirewall: true}); err != nil {
		t.Fatal(err)
	}
	plan, err := netsetup.CurrentPlan(s.Env)
	if err != nil {
		t.Fatal(err)
	}
	mustBridge(t, s.Env, "b", netsetup.BridgeOptions{})
	mustBridge(t, s.Env, "c", netsetup.BridgeOptions{})
	removeGatewayNetns(t, s.Env, s.Host)

	const fix = "run `pontoon gateway down --force` (which destroys them), then `pontoon gateway up`"
	st, err := netsetup.Status(s.Env)
	if err != nil || st.Up || !strings.Contains(st.Problem, "is gone") || !strings.Contains(st.Problem, "bridges b, c") || !strings.Contains(st.Problem, fix) {
		t.Errorf("status over a lost gateway under bridges: up %v, problem %q, %v", st.Up, st.Problem, err)
	}
	before := snapshot(t, s)
	for _, opt := range []netsetup.GatewayOptions{{}, {Plan: moved, IPv4Only: true}} {
		already, err := netsetup.GatewayUp(s.Env, opt)
		if !errors.Is(err, netsetup.ErrGatewayLost) || errors.Is(err, netsetup.ErrInvalid) || already {
			t.Errorf("up (%+v) over a lost gateway under bridges: already %v, %v; want ErrGatewayLost, a failure, not refused input", opt, already, err)
		}
		wantErr(t, "up over a lost gateway under bridges", err, st.Problem)
	}
	unchanged(t, s, before, "up over a lost gateway under bridges", "chain")

	// The bridges gone (as down --force takes them), nothing depends on the gateway's
	// namespace: up builds it again with the recorded plan, firewall setting included.
	for _, b := range []string{"b", "c"} {
		if err := netsetup.DestroyBridge(s.Env, b); err != nil {
			t.Fatalf("destroy bridge %s over a lost gateway: %v", b, err)
		}
	}
	if st, err := netsetup.Status(s.Env); err != nil || st.Up || !strings.Contains(st.Problem, "`pontoon gateway up` builds it again") {
		t.Errorf("status over a lost gateway without bridges: up %v, problem %q, %v", st.Up, st.Problem, err)
	}
	if already, err := netsetup.GatewayUp(s.Env, netsetup.GatewayOptions{}); err != nil || already {
		t.Fatalf("up over a lost gateway without bridges: already %v, %v; want it built again", already, err)
	}
	st, err = netsetup.Status(s.Env)
	if err != nil || !st.Up || st.Problem != "" || !st.Gateway.NoFirewall {
		t.Errorf("status after the rebuild: %+v, %v; want up, firewall still left alone", st, err)
	}
	if got, err := netsetup.CurrentPlan(s.Env); err != nil || got != plan {
		t.Errorf("plan after the rebuild: %+v, %v; want %+v", got, err, plan)
	}
	mustBridge(t, s.Env, "b", netsetup.BridgeOptions{})
	g := mustGuest(t, s.Env, "b", "g", "10.77.0.1")
	serve(t, s.Host, plan.HostAddr().Addr())
	mustReach(t, g.Netns, plan.HostAddr().Addr())
	if err := netsetup.GatewayDown(s.Env, true); err != nil {
		t.Fatal(err)
	}
}

// TestDownForceOverLostGatewayWithForwards: `gateway up; bridge create w --port 9090:x:80;
// bridge create w2; ip netns del pontoon-gw; gateway down --force` failed on w: removing its
// forward opened the deleted namespace. Nothing recovered after that: gc, bridge destroy and
// gateway up all failed. The forwards go with the namespace; down --force must remove every
// bridge and leave the host as before up, and a new chain must come up. The same with the
// host link deleted instead.
func TestDownForceOverLostGatewayWithForwards(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name   string
		damage func(t *testing.T, env netsetup.Env, host string)
	}{
		{"namespace deleted", removeGatewayNetns},
		{"host link deleted", func(t *testing.T, _ netsetup.Env, host string) {
			inNetns(t, host, "ip", "link", "del", netsetup.HostLinkName)
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			s := newSandbox(t)
			pristine := snapshot(t, s)
			if _, err := netsetup.GatewayUp(s.Env, netsetup.GatewayOptions{}); err != nil {
				t.Fatal(err)
			}
			mustBridge(t, s.Env, "w", netsetup.BridgeOptions{Ports: mustPorts(t, "9090:x:80")})
			mustBridge(t, s.Env, "w2", netsetup.BridgeOptions{})
			c.damage(t, s.Env, s.Host)
			if st, err := netsetup.Status(s.Env); err != nil || st.Up || !strings.Contains(st.Problem, "gateway") {
				t.Errorf("status over the damaged gateway: up %v, problem %q, %v", st.Up, st.Problem, err)
			}
			if err := netsetup.GatewayDown(s.Env, true); err != nil {
				t.Fatalf("gateway down --force: %v", err)
			}
			if st, err := netsetup.Status(s.Env); err != nil || st.Gateway != nil || len(st.Bridges) != 0 {
				t.Errorf("status after down --force: %+v, %v; want no gateway, no bridge", st, err)
			}
			unchanged(t, s, pristine, "up, bridges, damage and down --force", "host")

			if _, err := netsetup.GatewayUp(s.Env, netsetup.GatewayOptions{}); err != nil {
				t.Fatalf("gateway up after down --force: %v", err)
			}
			mustBridge(t, s.Env, "w", netsetup.BridgeOptions{Ports: mustPorts(t, "9090:x:80")})
			if err := netsetup.GatewayDown(s.Env, true); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestRemovalsOverLostGateway: with the gateway's namespace gone, bridge destroy and gc once
// failed on a bridge with a forward, as down --force did. A removal cut short (its record
// left "removing", as a destroy that failed halfway leaves it) is reported, finished by gc
// and left out of what gc starts again; a bridge whose removal nobody asked for stays.
func TestRemovalsOverLostGateway(t *testing.T) {
	t.Parallel()
	s := newChain(t, netsetup.GatewayOptions{})
	mustBridge(t, s.Env, "w", netsetup.BridgeOptions{Ports: mustPorts(t, "9090:x:80")})
	mustBridge(t, s.Env, "v", netsetup.BridgeOptions{Ports: mustPorts(t, "9091:x:80")})
	mustBridge(t, s.Env, "w2", netsetup.BridgeOptions{})
	cutShort(t, s.Env, "v")
	if b := findBridge(t, s.Env, "v"); b == nil || !strings.Contains(b.Problem, "removal was cut short") {
		t.Errorf("bridge whose removal was cut short listed as %+v; want its problem said", b)
	}
	removeGatewayNetns(t, s.Env, s.Host)

	if err := netsetup.DestroyBridge(s.Env, "w"); err != nil {
		t.Errorf("destroy of a bridge with a forward over a lost gateway: %v", err)
	}
	rep, err := netsetup.GC(s.Env)
	// What is left of the chain needs the user's word, which gc names.
	wantErr(t, "gc over a lost gateway under bridge w2", err, "gateway down --force", "bridge w2")
	if !slices.Contains(rep.Bridges, "v") {
		t.Errorf("gc report %+v: want v, whose removal was cut short, removed", rep)
	}
	for _, name := range []string{"w", "v"} {
		if b := findBridge(t, s.Env, name); b != nil || ns.IsPinned(s.Env.BridgeNetns(name)) {
			t.Errorf("bridge %s after destroy and gc: record %+v, pinned %v", name, b, ns.IsPinned(s.Env.BridgeNetns(name)))
		}
	}
	if b := findBridge(t, s.Env, "w2"); b == nil || b.Phase != netsetup.PhaseReady {
		t.Errorf("gc over a lost gateway took bridge w2 (%+v), which only down --force may", b)
	}
	if there, err := netsetup.GatewayThere(s.Env); err != nil || there {
		t.Errorf("GatewayThere over a lost gateway: %v, %v", there, err)
	}
	if err := netsetup.GatewayDown(s.Env, true); err != nil {
		t.Fatalf("gateway down --force: %v", err)
	}
	if there, err := netsetup.GatewayThere(s.Env); err != nil || there {
		t.Errorf("GatewayThere without a gateway: %v, %v", there, err)
	}
}

// cutShort leaves a bridge's record as a removal that failed halfway leaves it.
func cutShort(t *testing.T, env netsetup.Env, name string) {
	t.Helper()
	file := env.BridgeRecordFile(name)
	var b netsetup.BridgeState
	data, err := os.ReadFile(file)
	if err != nil || netsetup.DecodeBridge(data, &b) != nil {
		t.Fatalf("read the record of bridge %s: %v", name, err)
	}
	b.Phase, b.Creator = netsetup.PhaseRemoving, netsetup.Self()
	data, _ = json.Marshal(b)
	if err := os.WriteFile(file, data, 0o600); err != nil {
		t.Fatal(err)
	}
}
