package netsetup_test

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/pontoon-dev/pontoon/netsetup"
)

// GuestOptions.Admit sees the plan and the bridge's record the attach works on (none for an
// unknown bridge), its refusal comes back as it is and leaves the record and the bridge's
// links as they were, and an admitted guest attaches as without it.
func TestAddGuestAdmit(t *testing.T) {
	t.Parallel()
	s := newChain(t, netsetup.GatewayOptions{})
	mustBridge(t, s.Env, "ad", netsetup.BridgeOptions{})
	first := mustGuest(t, s.Env, "ad", "first", "172.18.0.1")
	record := filepath.Join(s.Env.StateDir, "bridges", "ad.json")
	before, err := os.ReadFile(record)
	if err != nil {
		t.Fatal(err)
	}
	linksBefore := linkNames(t, mustBridgeNetns(t, s.Env, "ad"))
	proc := startIn(t, newNetns(t, "admit"))

	refused := errors.New("refused by the caller")
	var seen *netsetup.BridgeState
	_, err = netsetup.AddGuest(s.Env, "ad", "second", netsetup.GuestOptions{IP: "172.18.0.2", PID: proc.Process.Pid,
		Admit: func(plan netsetup.Plan, b *netsetup.BridgeState) error {
			seen = b
			if plan.Subnet != netsetup.DefaultPlan().Subnet {
				t.Errorf("Admit got plan %s", plan.Subnet)
			}
			return refused
		}})
	if err != refused {
		t.Fatalf("AddGuest = %v, want Admit's error as it is", err)
	}
	if seen == nil || len(seen.Guests) != 1 || seen.Guests[0].Name != "first" {
		t.Fatalf("Admit saw %+v, want the record with guest first", seen)
	}
	if after, _ := os.ReadFile(record); string(after) != string(before) {
		t.Errorf("a refused attach changed the record:\n%s", after)
	}
	if got := linkNames(t, mustBridgeNetns(t, s.Env, "ad")); !slices.Equal(got, linksBefore) {
		t.Errorf("a refused attach changed the bridge's links: %s, was %s", got, linksBefore)
	}

	called := false
	_, err = netsetup.AddGuest(s.Env, "nosuch", "x", netsetup.GuestOptions{IP: "172.18.0.2", PID: proc.Process.Pid,
		Admit: func(_ netsetup.Plan, b *netsetup.BridgeState) error {
			called = true
			if b != nil {
				t.Errorf("Admit got %+v for an unknown bridge", b)
			}
			return nil
		}})
	if !called || !errors.Is(err, netsetup.ErrNoBridge) {
		t.Errorf("unknown bridge: called %v, err %v; want Admit called and ErrNoBridge", called, err)
	}

	g, err := netsetup.AddGuest(s.Env, "ad", "second", netsetup.GuestOptions{IP: "172.18.0.2", PID: proc.Process.Pid,
		Admit: func(netsetup.Plan, *netsetup.BridgeState) error { return nil }})
	if err != nil {
		t.Fatal(err)
	}
	serve(t, first.Netns, addr("172.18.0.1"))
	mustReach(t, g.Netns, addr("172.18.0.1"))
}

func mustBridgeNetns(t *testing.T, env netsetup.Env, name string) string {
	t.Helper()
	b, err := netsetup.GetBridge(env, name)
	if err != nil {
		t.Fatal(err)
	}
	return b.Netns(env)
}
