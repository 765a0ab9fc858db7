package netsetup_test

import (
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/pontoon-dev/pontoon/netsetup"
)

// A peer that sent to an address before its guest was attached learns the guest's MAC as
// soon as the attach returns, not when the kernel next asks for the address (here slowed to
// 30 s so that only the guest's own announcement can complete the entry in time).
func TestAttachCompletesWaitingNeighbours(t *testing.T) {
	t.Parallel()
	s := newChain(t, netsetup.GatewayOptions{})
	mustBridge(t, s.Env, "an", netsetup.BridgeOptions{})
	brNs := s.Env.BridgeNetns("an")
	for _, f := range []string{"ipv4", "ipv6"} {
		inNetns(t, brNs, "sysctl", "-q", "-w", "net."+f+".neigh."+netsetup.BridgeDev+".retrans_time_ms=30000")
	}
	neigh := func(addr string) string {
		return strings.TrimSpace(inNetns(t, brNs, "ip", "neigh", "show", addr, "dev", netsetup.BridgeDev))
	}
	addrs := []string{"172.18.0.5", "fd70:6f6e::5"}
	for _, a := range addrs {
		// Nobody answers yet: the ping fails and leaves an incomplete entry behind.
		_ = exec.Command("nsenter", "--net="+brNs, "ping", "-c1", "-W1", a).Run()
		if n := neigh(a); !strings.Contains(n, "INCOMPLETE") {
			t.Fatalf("before the attach the bridge's entry for %s is %q; want INCOMPLETE", a, n)
		}
	}
	g := mustGuest(t, s.Env, "an", "g5", "172.18.0.5")
	if g.IP6.String() != addrs[1] {
		t.Fatalf("the guest's IPv6 address is %s; want %s", g.IP6, addrs[1])
	}
	mac := netsetup.GuestMAC(g.IP).String()
	for _, a := range addrs {
		// The announcements cross the veth pair asynchronously.
		for deadline := time.Now().Add(10 * time.Second); !strings.Contains(neigh(a), mac); time.Sleep(10 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("after the attach the bridge's entry for %s is %q; want it resolved to %s", a, neigh(a), mac)
			}
		}
	}
}
