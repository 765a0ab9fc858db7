package netsetup_test

import (
	"strings"
	"testing"

	"github.com/pontoon-dev/pontoon/netsetup"
	"github.com/pontoon-dev/pontoon/netsetup/probe"
	"github.com/pontoon-dev/pontoon/netsetup/sandbox"
)

// A host whose firewall drops forwarded traffic by default (Docker sets the iptables FORWARD
// policy to DROP) must still let guests out, whether the policy was set before the gateway
// came up or after; and `gateway down` must leave that firewall exactly as it found it.
func TestHostForwardPolicyDrop(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name string
		// firewallFirst: the foreign firewall exists before `gateway up`, else it appears
		// between `gateway up` and the first bridge.
		firewallFirst bool
		firewall      func(t *testing.T, s *sandbox.Sandbox)
		// list returns the foreign forward chain as its owner's tool shows it.
		list func(t *testing.T, s *sandbox.Sandbox) string
	}{
		{"iptables before gateway up", true, iptablesDrop, iptablesForward},
		{"iptables after gateway up", false, iptablesDrop, iptablesForward},
		{
			name: "nft inet table after gateway up",
			firewall: func(t *testing.T, s *sandbox.Sandbox) {
				inNetns(t, s.Host, "nft", "add table inet fw; add chain inet fw fw_forward { type filter hook forward priority 10; policy drop; }; add rule inet fw fw_forward tcp dport 9999 accept")
			},
			list: func(t *testing.T, s *sandbox.Sandbox) string {
				return inNetns(t, s.Host, "nft", "list", "chain", "inet", "fw", "fw_forward")
			},
		},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			s := newSandbox(t)
			if !c.firewallFirst {
				up(t, s)
			}
			c.firewall(t, s)
			before := c.list(t, s)
			if c.firewallFirst {
				up(t, s)
			}
			mustBridge(t, s.Env, "b1", netsetup.BridgeOptions{})
			g := mustGuest(t, s.Env, "b1", "web", "172.18.0.1")
			serveWhoAmI(t, s, 7000)
			mustAnswer(t, g.Netns, sandbox.UpstreamAddr.Addr(), 7000, wanAddr)
			if err := probe.Ping(g.Netns, sandbox.UpstreamAddr.Addr(), okTimeout); err != nil {
				t.Error(err)
			}
			during := c.list(t, s)
			if strings.Count(during, `comment "pontoon"`) != 2 {
				t.Errorf("expected pontoon's two exceptions in the forward chain:\n%s", during)
			}
			// Re-asserting (gateway up again, another bridge) must not add them twice.
			if already, err := netsetup.GatewayUp(s.Env, netsetup.GatewayOptions{}); err != nil || !already {
				t.Fatalf("second gateway up: %v, %v", already, err)
			}
			mustBridge(t, s.Env, "b2", netsetup.BridgeOptions{})
			if again := c.list(t, s); again != during {
				t.Errorf("forward chain changed on re-assert:\nbefore\n%s\nafter\n%s", during, again)
			}
			if err := netsetup.GatewayDown(s.Env, true); err != nil {
				t.Fatal(err)
			}
			after := c.list(t, s)
			if strings.Contains(after, "pontoon") {
				t.Errorf("pontoon rules left after gateway down:\n%s", after)
			}
			if after != before {
				t.Errorf("forward chain not restored:\nbefore up\n%s\nafter down\n%s", before, after)
			}
		})
	}
}

// iptablesDrop sets the policy Docker sets, plus someone else's rule that must survive.
func iptablesDrop(t *testing.T, s *sandbox.Sandbox) {
	inNetns(t, s.Host, "iptables", "-P", "FORWARD", "DROP")
	inNetns(t, s.Host, "iptables", "-A", "FORWARD", "-i", "wan", "-p", "tcp", "--dport", "9999", "-j", "ACCEPT")
}

func up(t *testing.T, s *sandbox.Sandbox) {
	t.Helper()
	if _, err := netsetup.GatewayUp(s.Env, netsetup.GatewayOptions{}); err != nil {
		t.Fatal(err)
	}
}

// iptablesForward lists the FORWARD chain both as iptables shows it and as nft does, and checks
// the drop policy is there. iptables must be able to read the chain with pontoon's rules in
// it: Docker and iptables-save stop working on a chain iptables cannot parse.
func iptablesForward(t *testing.T, s *sandbox.Sandbox) string {
	t.Helper()
	ipt := inNetns(t, s.Host, "iptables", "-S", "FORWARD")
	if !strings.HasPrefix(ipt, "-P FORWARD DROP\n") {
		t.Errorf("FORWARD policy is not DROP:\n%s", ipt)
	}
	return ipt + inNetns(t, s.Host, "nft", "list", "chain", "ip", "filter", "FORWARD")
}

// With --no-firewall pontoon leaves the host's firewall alone: no table, no exception.
func TestNoFirewall(t *testing.T) {
	t.Parallel()
	s := newSandbox(t)
	inNetns(t, s.Host, "iptables", "-P", "FORWARD", "DROP")
	before := inNetns(t, s.Host, "nft", "list", "ruleset")
	if _, err := netsetup.GatewayUp(s.Env, netsetup.GatewayOptions{NoFirewall: true}); err != nil {
		t.Fatal(err)
	}
	mustBridge(t, s.Env, "b1", netsetup.BridgeOptions{})
	g := mustGuest(t, s.Env, "b1", "web", "172.18.0.1")
	if after := inNetns(t, s.Host, "nft", "list", "ruleset"); after != before {
		t.Errorf("host ruleset changed with NoFirewall:\nbefore\n%s\nafter\n%s", before, after)
	}
	// The host drops what the gateway forwards, as the administrator asked.
	serve(t, s.Upstream, sandbox.UpstreamAddr.Addr())
	mustNotReach(t, g.Netns, sandbox.UpstreamAddr.Addr())
	if err := netsetup.GatewayDown(s.Env, true); err != nil {
		t.Fatal(err)
	}
	if after := inNetns(t, s.Host, "nft", "list", "ruleset"); after != before {
		t.Errorf("host ruleset changed by down with NoFirewall:\nbefore\n%s\nafter\n%s", before, after)
	}
}
