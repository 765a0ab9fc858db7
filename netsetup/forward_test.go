package netsetup_test

import (
	"errors"
	"testing"

	"github.com/pontoon-dev/pontoon/netsetup"
	"github.com/pontoon-dev/pontoon/netsetup/sandbox"
)

// The host reaches guests' ports through x.y.255.2:HOSTPORT, TCP and UDP, each forward landing
// on the right bridge even when guests of both bridges share an address.
func TestPortForwards(t *testing.T) {
	t.Parallel()
	s := newChain(t, netsetup.GatewayOptions{})
	gwAddr := netsetup.DefaultPlan().GatewayAddr().Addr()
	mustBridge(t, s.Env, "b1", netsetup.BridgeOptions{Ports: mustPorts(t, "8080:web:7000/tcp", "8053:web:7000/udp")})
	mustBridge(t, s.Env, "b2", netsetup.BridgeOptions{Ports: mustPorts(t, "8081:172.18.0.10:7000/tcp", "8054:172.18.0.10:7000/udp")})
	// Guests arrive after their bridges: the forwards must follow them.
	web1 := mustGuest(t, s.Env, "b1", "web", "172.18.0.10")
	web2 := mustGuest(t, s.Env, "b2", "web", "172.18.0.10")
	serveIdentity(t, web1.Netns, addr(web1.IP), 7000, "b1/web")
	serveIdentity(t, web2.Netns, addr(web2.IP), 7000, "b2/web")
	check := func(port int, proto, want string) {
		t.Helper()
		got, err := ask(s.Host, gwAddr, port, proto, okTimeout)
		if err != nil || got != want {
			t.Errorf("host -> %s:%d/%s: got %q, %v; want %q", gwAddr, port, proto, got, err, want)
		}
	}
	check(8080, "tcp", "b1/web")
	check(8053, "udp", "b1/web")
	check(8081, "tcp", "b2/web")
	check(8054, "udp", "b2/web")
	// Only the forwarded protocol is forwarded.
	if got, err := ask(s.Host, gwAddr, 8080, "udp", failTimeout); err == nil {
		t.Errorf("8080/udp is not forwarded but answered %q", got)
	}

	// A guest that leaves takes its forward along; one that comes back gets it again.
	if err := netsetup.DelGuest(s.Env, "b1", "web"); err != nil {
		t.Fatal(err)
	}
	if got, err := ask(s.Host, gwAddr, 8080, "tcp", failTimeout); err == nil {
		t.Errorf("8080/tcp still answers (%q) after its guest left", got)
	}
	back := mustGuest(t, s.Env, "b1", "web", "172.18.0.10")
	serveIdentity(t, back.Netns, addr(back.IP), 7000, "b1/web again")
	check(8080, "tcp", "b1/web again")

	// A host port another bridge forwards is refused, naming that bridge, and nothing of the
	// new bridge is left behind.
	before := snapshot(t, s)
	_, err := netsetup.CreateBridge(s.Env, "b3", netsetup.BridgeOptions{Ports: mustPorts(t, "9000:x:1/tcp", "8081:x:1/tcp")})
	wantErr(t, "conflicting port", err, `"b3"`, "8081/tcp", `"b2"`)
	unchanged(t, s, before, "refused bridge", "chain")
	if _, err := netsetup.GetBridge(s.Env, "b3"); !errors.Is(err, netsetup.ErrNoBridge) {
		t.Errorf("GetBridge(b3) after refusal: %v, want ErrNoBridge", err)
	}
	// Same number, other protocol: no conflict. And once b2 is gone its ports are free.
	mustBridge(t, s.Env, "b4", netsetup.BridgeOptions{Ports: mustPorts(t, "8081:x:1/udp")})
	if err := netsetup.DestroyBridge(s.Env, "b2"); err != nil {
		t.Fatal(err)
	}
	if got, err := ask(s.Host, gwAddr, 8081, "tcp", failTimeout); err == nil {
		t.Errorf("8081/tcp still answers (%q) after its bridge was destroyed", got)
	}
	mustBridge(t, s.Env, "b3", netsetup.BridgeOptions{Ports: mustPorts(t, "8081:web:7000/tcp")})
	web3 := mustGuest(t, s.Env, "b3", "web", "172.18.0.10")
	serveIdentity(t, web3.Netns, addr(web3.IP), 7000, "b3/web")
	check(8081, "tcp", "b3/web")
}

// A guest's own outbound connection to a port number that is forwarded is not captured by
// the forward: it reaches the upstream server on that port. Neither is the host's.
func TestPortForwardDoesNotCaptureOutbound(t *testing.T) {
	t.Parallel()
	s := newChain(t, netsetup.GatewayOptions{})
	mustBridge(t, s.Env, "b1", netsetup.BridgeOptions{Ports: mustPorts(t, "8080:web:8080/tcp", "8080:web:8080/udp")})
	web := mustGuest(t, s.Env, "b1", "web", "172.18.0.10")
	other := mustGuest(t, s.Env, "b1", "other", "172.18.0.11")
	serveIdentity(t, web.Netns, addr(web.IP), 8080, "web")
	serveIdentity(t, s.Upstream, sandbox.UpstreamAddr.Addr(), 8080, "upstream")
	up := sandbox.UpstreamAddr.Addr()
	mustAnswer(t, s.Host, netsetup.DefaultPlan().GatewayAddr().Addr(), 8080, "web")
	for _, from := range []string{web.Netns, other.Netns, s.Host} {
		mustAnswer(t, from, up, 8080, "upstream")
	}
}
