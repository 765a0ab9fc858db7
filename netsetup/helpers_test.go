package netsetup_test

import (
	"net/netip"
	"os"
	"testing"
	"time"

	"github.com/pontoon-dev/pontoon/netsetup"
	"github.com/pontoon-dev/pontoon/netsetup/probe"
	"github.com/pontoon-dev/pontoon/netsetup/sandbox"
)

const (
	okTimeout   = 2 * time.Second
	failTimeout = 300 * time.Millisecond
)

func needRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: creates network namespaces")
	}
}

// newSandbox returns a hermetic stand-in host, removed when the test ends (also on failure).
func newSandbox(t testing.TB) *sandbox.Sandbox {
	t.Helper()
	needRoot(t)
	s, err := sandbox.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("sandbox cleanup: %v", err)
		}
	})
	return s
}

// newChain returns a sandbox with its gateway up.
func newChain(t testing.TB, opt netsetup.GatewayOptions) *sandbox.Sandbox {
	t.Helper()
	s := newSandbox(t)
	if _, err := netsetup.GatewayUp(s.Env, opt); err != nil {
		t.Fatal(err)
	}
	return s
}

func mustBridge(t testing.TB, env netsetup.Env, name string, opt netsetup.BridgeOptions) *netsetup.BridgeState {
	t.Helper()
	b, err := netsetup.CreateBridge(env, name, opt)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func mustGuest(t testing.TB, env netsetup.Env, bridge, name, ip string) *netsetup.Guest {
	t.Helper()
	g, err := netsetup.AddGuest(env, bridge, name, netsetup.GuestOptions{IP: ip})
	if err != nil {
		t.Fatal(err)
	}
	return g
}

func addr(s string) netip.Addr { return netip.MustParseAddr(s) }

func serve(t testing.TB, nsPath string, ip netip.Addr) {
	t.Helper()
	s, err := probe.Serve(nsPath, ip, probe.Port)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
}

func mustReach(t testing.TB, from string, to netip.Addr) {
	t.Helper()
	if err := probe.All(from, to, probe.Port, okTimeout); err != nil {
		t.Errorf("expected %s reachable from %s: %v", to, from, err)
	}
}

func mustNotReach(t testing.TB, from string, to netip.Addr) {
	t.Helper()
	if err := probe.TCP(from, to, probe.Port, failTimeout); err == nil {
		t.Errorf("expected no TCP path to %s from %s", to, from)
	}
	if err := probe.Ping(from, to, failTimeout); err == nil {
		t.Errorf("expected no ICMP path to %s from %s", to, from)
	}
}
