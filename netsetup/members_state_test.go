package netsetup_test

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/pontoon-dev/pontoon/netsetup"
)

// TestBridgeMembersMatchRecord: what BridgeMembers reads of a bridge's record (its guests and
// services) is what the whole record says, also when the file was written by another process.
func TestBridgeMembersMatchRecord(t *testing.T) {
	s := newChain(t, netsetup.GatewayOptions{})
	env := s.Env
	mustBridge(t, env, "b", netsetup.BridgeOptions{})
	mustGuest(t, env, "b", "g1", "172.18.0.1")
	mustGuest(t, env, "b", "g2", "172.18.0.2")
	if _, err := netsetup.AddService(env, "b", "svc", netsetup.ServiceOptions{Members: []string{"g1", "g2"}, Ports: []string{"80/tcp"}}); err != nil {
		t.Fatal(err)
	}
	full, err := netsetup.GetBridge(env, "b")
	if err != nil {
		t.Fatal(err)
	}
	// Rewritten as another process would: this process's cached copy no longer counts.
	path := filepath.Join(env.StateDir, "bridges", "b.json")
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	m, err := netsetup.BridgeMembers(env, "b")
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Guests) != 2 || len(full.Guests) != 2 {
		t.Fatalf("guests: %d read, %d in the record; want 2", len(m.Guests), len(full.Guests))
	}
	for i, g := range full.Guests {
		got := m.Guests[i]
		if got.Name != g.Name || got.IP != g.IP || got.IP6 != g.IP6 || got.Netns != g.Netns || got.PortName() != g.PortName() || got.Phase != g.Phase {
			t.Errorf("guest %d: read %+v, the record has %+v", i, got, g)
		}
	}
	if len(m.Services) != 1 || m.Services[0].Name != "svc" || m.Services[0].IP != full.Services[0].IP ||
		len(m.Services[0].Members) != 2 || len(m.Services[0].Ports) != 1 {
		t.Errorf("services: read %+v, the record has %+v", m.Services, full.Services)
	}
	// Read again after another process changed the record (one guest less): the members
	// this process kept from the read before are not the answer any more.
	again := *full
	again.Guests = full.Guests[:1]
	data, err = json.Marshal(&again)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path+".new", data, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(path+".new", path); err != nil {
		t.Fatal(err)
	}
	if m, err := netsetup.BridgeMembers(env, "b"); err != nil || len(m.Guests) != 1 {
		t.Errorf("after another process dropped g2: %v, %v; want g1 alone", m, err)
	}
	if _, err := netsetup.BridgeMembers(env, "nope"); !errors.Is(err, netsetup.ErrNoBridge) {
		t.Errorf("unknown bridge: %v, want ErrNoBridge", err)
	}
}
