package netsetup_test

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/pontoon-dev/pontoon/netsetup"
	"github.com/pontoon-dev/pontoon/netsetup/probe"
	"github.com/pontoon-dev/pontoon/netsetup/sandbox"
)

// TestAllBridgeSlots fills every one of the gateway's bridge slots, the most bridges the plan
// holds: each gets a slot of its own, one more is refused and leaves nothing, guests on the
// first and the last slot reach the outside through their own uplinks, a freed slot is taken
// again, and destroying them all leaves the gateway's links as they were.
//
// `make test-limits` runs it on its own (PONTOON_LIMITS=1): while it holds 2048 namespaces,
// the kernel's work for every other test slows (each sysctl lookup walks past every
// namespace's entries, and their release holds the kernel's network lock for seconds).
func TestAllBridgeSlots(t *testing.T) {
	if os.Getenv("PONTOON_LIMITS") != "1" {
		t.Skip("run by `make test-limits` (PONTOON_LIMITS=1), on its own")
	}
	s := newChain(t, netsetup.GatewayOptions{})
	gwLinks := func() string { return inNetns(t, s.Env.GatewayNetns(), "ip", "-o", "link", "show") }
	before := gwLinks()

	start := time.Now()
	bySlot := make([]string, netsetup.Slots)
	made := map[string]bool{}
	t.Cleanup(func() {
		for name := range made {
			netsetup.DestroyBridge(s.Env, name)
		}
	})
	for i := range netsetup.Slots {
		name := fmt.Sprintf("s%d", i)
		b, err := netsetup.CreateBridge(s.Env, name, netsetup.BridgeOptions{})
		if err != nil {
			t.Fatalf("bridge %d of %d: %v", i+1, netsetup.Slots, err)
		}
		made[name] = true
		if b.Slot < 0 || b.Slot >= netsetup.Slots || bySlot[b.Slot] != "" {
			t.Fatalf("bridge %s got slot %d, out of range or held by %q", name, b.Slot, bySlot[b.Slot])
		}
		bySlot[b.Slot] = name
	}

	t.Logf("%d bridges made in %v", netsetup.Slots, time.Since(start).Round(time.Millisecond))
	_, err := netsetup.CreateBridge(s.Env, "more", netsetup.BridgeOptions{})
	if !errors.Is(err, netsetup.ErrNoSlot) || !strings.Contains(err.Error(), fmt.Sprintf("all bridge slots are in use (%d)", netsetup.Slots)) {
		t.Fatalf("a bridge more than there are slots: %v", err)
	}
	if _, err := os.Stat(s.Env.BridgeNetns("more")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the refused bridge left its namespace pin: %v", err)
	}
	all, err := netsetup.Bridges(s.Env)
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != netsetup.Slots {
		t.Errorf("%d bridge records after the refusal, want %d", len(all), netsetup.Slots)
	}

	// The first and the last slot: their uplinks' /30s are the ends of the gateway's range.
	for _, slot := range []int{0, netsetup.Slots - 1} {
		g := mustGuest(t, s.Env, bySlot[slot], "g", "172.18.0.1")
		if err := probe.Ping(g.Netns, sandbox.UpstreamAddr.Addr(), okTimeout); err != nil {
			t.Errorf("a guest of slot %d does not reach the outside: %v", slot, err)
		}
	}

	// A freed slot is found again, whatever the round-robin hint says.
	freed := netsetup.Slots / 2
	if err := netsetup.DestroyBridge(s.Env, bySlot[freed]); err != nil {
		t.Fatal(err)
	}
	delete(made, bySlot[freed])
	b, err := netsetup.CreateBridge(s.Env, "again", netsetup.BridgeOptions{})
	if err != nil {
		t.Fatalf("a bridge in the one freed slot: %v", err)
	}
	made["again"] = true
	if b.Slot != freed {
		t.Errorf("the new bridge got slot %d, want the freed %d", b.Slot, freed)
	}

	start = time.Now()
	for name := range made {
		if err := netsetup.DestroyBridge(s.Env, name); err != nil {
			t.Fatalf("destroy %s: %v", name, err)
		}
		delete(made, name)
	}
	t.Logf("%d bridges destroyed in %v", netsetup.Slots, time.Since(start).Round(time.Millisecond))
	// Uplinks go with their bridges' namespaces, which the kernel releases asynchronously.
	for deadline := time.Now().Add(30 * time.Second); gwLinks() != before; time.Sleep(100 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("30s after every bridge was destroyed the gateway still has %d links, it had %d",
				strings.Count(gwLinks(), "\n"), strings.Count(before, "\n"))
		}
	}
	_, netnsDir := s.Env.Dirs()
	entries, err := os.ReadDir(netnsDir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), "pontoon-br-") || strings.HasPrefix(e.Name(), "pontoon-g-") {
			t.Errorf("namespace pin %s left after every bridge was destroyed", e.Name())
		}
	}
}
