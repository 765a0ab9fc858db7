package netsetup_test

import (
	"fmt"
	"testing"

	"github.com/pontoon-dev/pontoon/netsetup"
	"github.com/pontoon-dev/pontoon/netsetup/probe"
	"github.com/pontoon-dev/pontoon/netsetup/sandbox"
)

// benchBridge measures one bridge with n guests: create it, attach the guests with fixed
// addresses, ping from the first guest to the last, destroy it; the gateway stays, as in
// shell_chain.sh of the shared baselines.
func benchBridge(b *testing.B, n int) {
	s := benchChain(b)
	last := addr(fmt.Sprintf("172.18.0.%d", n))
	for b.Loop() {
		mustBridge(b, s.Env, "bench", netsetup.BridgeOptions{})
		var first *netsetup.Guest
		for i := 1; i <= n; i++ {
			g := mustGuest(b, s.Env, "bench", fmt.Sprintf("g%d", i), fmt.Sprintf("172.18.0.%d", i))
			if first == nil {
				first = g
			}
		}
		if err := probe.Ping(first.Netns, last, okTimeout); err != nil {
			b.Fatal(err)
		}
		if err := netsetup.DestroyBridge(s.Env, "bench"); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkBridge3Guests(b *testing.B)  { benchBridge(b, 3) }
func BenchmarkBridge10Guests(b *testing.B) { benchBridge(b, 10) }

// BenchmarkGuestAttachDetach measures one guest (a namespace pontoon creates) attached to an
// existing bridge and detached again, as cni_bridge.sh does with the CNI bridge plugin.
func BenchmarkGuestAttachDetach(b *testing.B) {
	s := benchChain(b)
	mustBridge(b, s.Env, "bench", netsetup.BridgeOptions{})
	for b.Loop() {
		mustGuest(b, s.Env, "bench", "g", "172.18.0.1")
		if err := netsetup.DelGuest(s.Env, "bench", "g"); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkForwardedGuestAttachDetach is BenchmarkGuestAttachDetach for a guest that a port
// forward of its bridge names: its arrival and its leaving each rewrite the bridge's tables.
func BenchmarkForwardedGuestAttachDetach(b *testing.B) {
	s := benchChain(b)
	mustBridge(b, s.Env, "bench", netsetup.BridgeOptions{Ports: mustPorts(b, "8080:g:80/tcp")})
	for b.Loop() {
		mustGuest(b, s.Env, "bench", "g", "172.18.0.1")
		if err := netsetup.DelGuest(s.Env, "bench", "g"); err != nil {
			b.Fatal(err)
		}
	}
}

// benchChain is a chain whose state lives on tmpfs, as /run/pontoon does on a standard system.
func benchChain(b *testing.B) *sandbox.Sandbox {
	needRoot(b)
	s := sandbox.ForTest(b, sandbox.TmpfsDir(b))
	if _, err := netsetup.GatewayUp(s.Env, netsetup.GatewayOptions{}); err != nil {
		b.Fatal(err)
	}
	return s
}

// BenchmarkAttachAt measures attaching one more guest (a namespace pontoon creates) to a
// bridge that already has n guests, and detaching it again: what a guest costs as the
// bridge fills.
func BenchmarkAttachAt(b *testing.B) {
	for _, n := range []int{10, 50, 200} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			s := benchChain(b)
			mustBridge(b, s.Env, "bench", netsetup.BridgeOptions{})
			for i := 1; i <= n; i++ {
				mustGuest(b, s.Env, "bench", fmt.Sprintf("g%d", i), fmt.Sprintf("172.18.0.%d", i))
			}
			for b.Loop() {
				mustGuest(b, s.Env, "bench", "extra", "172.18.0.250")
				if err := netsetup.DelGuest(s.Env, "bench", "extra"); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
