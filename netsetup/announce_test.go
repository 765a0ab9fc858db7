package netsetup_test

import (
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/pontoon-dev/pontoon/netsetup"
)

// Peers that sent to an address before its guest was attached, the bridge's own stack and
// a sibling guest, learn the guest's MAC as soon as the attach returns, on both families,
// not when the kernel next asks for the address (here slowed to 30 s so that only the
// guest's own announcement can complete the entries in time).
func TestAttachCompletesWaitingNeighbours(t *testing.T) {
	t.Parallel()
	s := newChain(t, netsetup.GatewayOptions{})
	mustBridge(t, s.Env, "an", netsetup.BridgeOptions{})
	sibling := mustGuest(t, s.Env, "an", "g1", "172.18.0.1")
	peers := []struct{ netns, dev string }{{s.Env.BridgeNetns("an"), netsetup.BridgeDev}, {sibling.Netns, netsetup.GuestIfName}}
	neigh := func(netns, dev, addr string) string {
		return strings.TrimSpace(inNetns(t, netns, "ip", "neigh", "show", addr, "dev", dev))
	}
	addrs := []string{"172.18.0.5", "fd70:6f6e::5"}
	for _, p := range peers {
		for _, f := range []string{"ipv4", "ipv6"} {
			inNetns(t, p.netns, "sysctl", "-q", "-w", "net."+f+".neigh."+p.dev+".retrans_time_ms=30000")
		}
		for _, a := range addrs {
			// Nobody answers yet: the ping fails and leaves an incomplete entry behind.
			_ = exec.Command("nsenter", "--net="+p.netns, "ping", "-c1", "-W1", a).Run()
			if n := neigh(p.netns, p.dev, a); !strings.Contains(n, "INCOMPLETE") {
				t.Fatalf("before the attach the entry for %s in %s is %q; want INCOMPLETE", a, p.netns, n)
			}
		}
	}
	g := mustGuest(t, s.Env, "an", "g5", "172.18.0.5")
	if g.IP6.String() != addrs[1] {
		t.Fatalf("the guest's IPv6 address is %s; want %s", g.IP6, addrs[1])
	}
	mac := netsetup.GuestMAC(g.IP).String()
	for _, p := range peers {
		for _, a := range addrs {
			// The announcements cross the veth pairs asynchronously.
			for deadline := time.Now().Add(10 * time.Second); !strings.Contains(neigh(p.netns, p.dev, a), mac); time.Sleep(10 * time.Millisecond) {
				if time.Now().After(deadline) {
					t.Fatalf("after the attach the entry for %s in %s is %q; want it resolved to %s", a, p.netns, neigh(p.netns, p.dev, a), mac)
				}
			}
		}
	}
}
