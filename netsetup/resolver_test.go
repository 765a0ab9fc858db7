package netsetup_test

import (
	"os"
	"strings"
	"testing"

	"github.com/pontoon-dev/pontoon/netsetup"
	"github.com/pontoon-dev/pontoon/netsetup/sandbox"
)

// A host whose resolver listens on loopback (systemd-resolved's 127.0.0.53) is still a
// resolver for guests: they ask the host-link address, and the host redirects to loopback.
func TestDNSViaLoopbackResolver(t *testing.T) {
	t.Parallel()
	s := newSandbox(t)
	if err := os.WriteFile(s.Env.ResolvConf, []byte("nameserver 127.0.0.53\noptions edns0 trust-ad\nsearch example.test\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	// A stand-in resolver: anything that answers on 127.0.0.53:53 of the host.
	serveIdentity(t, s.Host, addr("127.0.0.53"), 53, "answer from the host's resolver")
	if _, err := netsetup.GatewayUp(s.Env, netsetup.GatewayOptions{}); err != nil {
		t.Fatal(err)
	}
	mustBridge(t, s.Env, "b1", netsetup.BridgeOptions{})
	g := mustGuest(t, s.Env, "b1", "web", "172.18.0.1")
	mustAnswer(t, g.Netns, addr("172.18.255.1"), 53, "answer from the host's resolver")

	rc, err := netsetup.GuestResolvConf(s.Env)
	if err != nil {
		t.Fatal(err)
	}
	want := "# written by pontoon\nnameserver 172.18.255.1\noptions edns0 trust-ad\nsearch example.test\n"
	if string(rc) != want {
		t.Errorf("GuestResolvConf:\n%s\nwant\n%s", rc, want)
	}
	// The redirect covers DNS only, and only from pontoon's link.
	if got, err := ask(g.Netns, addr("172.18.255.1"), 54, "udp", failTimeout); err == nil {
		t.Errorf("port 54 of the host link answered %q", got)
	}
	if err := netsetup.GatewayDown(s.Env, true); err != nil {
		t.Fatal(err)
	}
	if out := inNetns(t, s.Host, "nft", "list", "ruleset"); strings.Contains(out, "pontoon") {
		t.Errorf("host ruleset after down:\n%s", out)
	}
	if v := strings.TrimSpace(inNetns(t, s.Host, "sysctl", "-n", "net.ipv4.conf.all.route_localnet")); v != "0" {
		t.Errorf("route_localnet changed host-wide: %s", v)
	}
}

// A host with a real (non-loopback) resolver passes it to guests, which reach it directly.
func TestDNSPassThrough(t *testing.T) {
	t.Parallel()
	s := newChain(t, netsetup.GatewayOptions{})
	serveIdentity(t, s.Upstream, sandbox.UpstreamAddr.Addr(), 53, "answer from upstream")
	mustBridge(t, s.Env, "b1", netsetup.BridgeOptions{})
	g := mustGuest(t, s.Env, "b1", "web", "172.18.0.1")
	rc, err := netsetup.GuestResolvConf(s.Env)
	if err != nil {
		t.Fatal(err)
	}
	if want := "# written by pontoon\nnameserver 198.51.100.1\n"; string(rc) != want {
		t.Errorf("GuestResolvConf:\n%s\nwant\n%s", rc, want)
	}
	mustAnswer(t, g.Netns, sandbox.UpstreamAddr.Addr(), 53, "answer from upstream")
	if out := inNetns(t, s.Host, "nft", "list", "table", "ip", "pontoon"); strings.Contains(out, "dnat") {
		t.Errorf("DNS redirect installed although the host's resolver is not on loopback:\n%s", out)
	}
}
