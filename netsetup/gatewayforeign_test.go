package netsetup_test

import (
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/pontoon-dev/pontoon/netsetup"
	"github.com/pontoon-dev/pontoon/netsetup/ns"
	"github.com/pontoon-dev/pontoon/netsetup/sandbox"
	"golang.org/x/sys/unix"
)

// TestGatewayForeignPin: another tool's namespace bound over the gateway's pin passed for the
// gateway: status said up while every command worked in the other namespace. The gateway's
// record keeps its namespace's identity: status says broken, and gc, as gateway up, puts the
// gateway's namespace back, the other tool's left pinned where it put it.
func TestGatewayForeignPin(t *testing.T) {
	t.Parallel()
	s := newChain(t, netsetup.GatewayOptions{})
	mustBridge(t, s.Env, "b1", netsetup.BridgeOptions{})
	g := mustGuest(t, s.Env, "b1", "a", "172.18.0.1")
	serve(t, s.Upstream, sandbox.UpstreamAddr.Addr())
	foreign := filepath.Join(t.TempDir(), "foreign")
	if err := ns.New(ns.Spec{Net: foreign}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ns.Remove(foreign) })
	gw := s.Env.GatewayNetns()
	want, _ := ns.ID(gw)
	other, _ := ns.ID(foreign)
	for _, mend := range []string{"gc", "gateway up"} {
		if err := unix.Mount(foreign, gw, "", unix.MS_BIND, ""); err != nil {
			t.Fatal(err)
		}
		st, err := netsetup.Status(s.Env)
		if err != nil {
			t.Fatal(err)
		}
		if st.Up || !strings.Contains(st.Problem, "another namespace is mounted over its pin") {
			t.Errorf("status with another namespace over the gateway's pin: up %v, problem %q", st.Up, st.Problem)
		}
		switch mend {
		case "gc":
			rep, err := netsetup.GC(s.Env)
			if err != nil || !slices.Contains(rep.Repaired, "gateway: namespace "+gw+" pinned again") {
				t.Errorf("gc over another namespace on the gateway's pin: %+v, %v", rep, err)
			}
		default:
			if already, err := netsetup.GatewayUp(s.Env, netsetup.GatewayOptions{}); err != nil || !already {
				t.Errorf("gateway up over another namespace on the gateway's pin: already %v, %v", already, err)
			}
		}
		if id, _ := ns.ID(gw); id != want {
			t.Fatalf("after %s the gateway's pin holds namespace %d, want the gateway's %d", mend, id, want)
		}
		if id, _ := ns.ID(foreign); id != other {
			t.Errorf("after %s the other tool's pin holds %d, want its own %d", mend, id, other)
		}
		if st, err := netsetup.Status(s.Env); err != nil || !st.Up {
			t.Errorf("status after %s: %+v, %v", mend, st, err)
		}
		mustReach(t, g.Netns, sandbox.UpstreamAddr.Addr())
	}
}
