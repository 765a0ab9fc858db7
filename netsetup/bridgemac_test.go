package netsetup_test

import (
	"strings"
	"testing"

	"github.com/pontoon-dev/pontoon/netsetup"
)

// Guests coming and going leave the bridge's MAC address alone. Guests keep it in their ARP
// cache: when the bridge took the lowest of its ports' addresses, a guest leaving could change
// it, and the others lost their gateway, and the name server on it, until the entry expired.
func TestBridgeMACStable(t *testing.T) {
	t.Parallel()
	s := newChain(t, netsetup.GatewayOptions{})
	mustBridge(t, s.Env, "bm", netsetup.BridgeOptions{})
	mac := func() string {
		f := strings.Fields(inNetns(t, s.Env.BridgeNetns("bm"), "ip", "-o", "link", "show", netsetup.BridgeDev))
		for i := range f[:len(f)-1] {
			if f[i] == "link/ether" {
				return f[i+1]
			}
		}
		t.Fatalf("no MAC address in %q", f)
		return ""
	}
	want := mac()
	for _, g := range []struct{ name, ip string }{{"g1", "172.18.0.1"}, {"g2", "172.18.0.2"}, {"g3", "172.18.0.3"}} {
		mustGuest(t, s.Env, "bm", g.name, g.ip)
		if got := mac(); got != want {
			t.Fatalf("the bridge's MAC changed from %s to %s when %s joined", want, got, g.name)
		}
	}
	for _, g := range []string{"g1", "g3"} {
		if err := netsetup.DelGuest(s.Env, "bm", g); err != nil {
			t.Fatal(err)
		}
		if got := mac(); got != want {
			t.Fatalf("the bridge's MAC changed from %s to %s when %s left", want, got, g)
		}
	}
}
