package netsetup_test

import (
	"errors"
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
