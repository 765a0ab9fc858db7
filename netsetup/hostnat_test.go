package netsetup_test

import (
	"strings"
	"testing"

	"github.com/pontoon-dev/pontoon/netsetup"
	"github.com/pontoon-dev/pontoon/netsetup/sandbox"
)

// TestGatewayHostNATDeletedByHand: `nft delete table ip pontoon` on the host cut the guests
// off from everything beyond it, while gateway status still said up and gateway up said
// already up, leaving it so. Status names the missing table, and gateway up makes it again.
func TestGatewayHostNATDeletedByHand(t *testing.T) {
	t.Parallel()
	s := newChain(t, netsetup.GatewayOptions{})
	mustBridge(t, s.Env, "b1", netsetup.BridgeOptions{})
	g := mustGuest(t, s.Env, "b1", "a", "172.18.0.1")
	serve(t, s.Upstream, sandbox.UpstreamAddr.Addr())
	mustReach(t, g.Netns, sandbox.UpstreamAddr.Addr())
	tables := func() string {
		return inNetns(t, s.Host, "nft", "list", "table", "ip", "pontoon") + inNetns(t, s.Host, "nft", "list", "table", "ip6", "pontoon")
	}
	want := tables()
	// Emptied or edited tables carry guests' traffic no better than deleted ones.
	for _, edit := range [][]string{{"flush", "table", "ip", "pontoon"}, {"flush", "chain", "ip", "pontoon", "postrouting"},
		{"add", "rule", "ip", "pontoon", "postrouting", "ip", "saddr", "172.18.255.0/30", "drop"}} {
		inNetns(t, s.Host, append([]string{"nft"}, edit...)...)
		st, err := netsetup.Status(s.Env)
		if err != nil {
			t.Fatal(err)
		}
		if st.Up || !strings.Contains(st.Problem, "table ip pontoon") || !strings.Contains(st.Problem, "`pontoon gateway up` makes it again") {
			t.Errorf("status after nft %v: up %v, problem %q; want not up, naming table ip pontoon and saying gateway up mends it", edit, st.Up, st.Problem)
		}
		if already, err := netsetup.GatewayUp(s.Env, netsetup.GatewayOptions{}); err != nil || !already {
			t.Fatalf("gateway up after nft %v: already %v, %v", edit, already, err)
		}
		if got := tables(); got != want {
			t.Errorf("host tables after nft %v and gateway up:\n%s\nwant:\n%s", edit, got, want)
		}
		mustReach(t, g.Netns, sandbox.UpstreamAddr.Addr())
	}
	for _, deleted := range [][]string{{"ip"}, {"ip", "ip6"}} {
		for _, f := range deleted {
			inNetns(t, s.Host, "nft", "delete", "table", f, "pontoon")
		}
		st, err := netsetup.Status(s.Env)
		if err != nil {
			t.Fatal(err)
		}
		if st.Up || !strings.Contains(st.Problem, "`pontoon gateway up` makes it again") {
			t.Errorf("status without table %v pontoon: up %v, problem %q; want not up, saying gateway up makes it again", deleted, st.Up, st.Problem)
		}
		for _, f := range deleted {
			if !strings.Contains(st.Problem, "table "+f+" pontoon") {
				t.Errorf("status without table %v pontoon: problem %q; want it to name table %s pontoon", deleted, st.Problem, f)
			}
		}
		if already, err := netsetup.GatewayUp(s.Env, netsetup.GatewayOptions{}); err != nil || !already {
			t.Fatalf("gateway up without table %v pontoon: already %v, %v", deleted, already, err)
		}
		if st, err := netsetup.Status(s.Env); err != nil || !st.Up || st.Problem != "" {
			t.Errorf("status after gateway up: up %v, problem %q, %v", st.Up, st.Problem, err)
		}
		if got := tables(); got != want {
			t.Errorf("host tables after gateway up:\n%s\nwant:\n%s", got, want)
		}
		mustReach(t, g.Netns, sandbox.UpstreamAddr.Addr())
	}
}
