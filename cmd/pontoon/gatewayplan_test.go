package main

import (
	"strings"
	"testing"
)

// planAdvice is the advice for a refused plan, whichever flag asked for it.
const planAdvice = "pontoon: ask for the plan it has: leave out --subnet, --subnet6 and --ipv4-only"

// TestGatewayUpKeepsRecordedPlan: `gateway up` without --subnet (--subnet6, --ipv4-only) on
// a gateway that is up keeps the plan the gateway recorded, whatever it is, and says it is
// already up; only a flag given that differs is refused.
func TestGatewayUpKeepsRecordedPlan(t *testing.T) {
	c := newCLI(t)
	c.ok("gateway", "up", "--subnet", "10.77.0.0/16")
	if out := c.ok("gateway", "up"); !strings.Contains(out, "gateway already up (subnet 10.77.0.0/16)") {
		t.Errorf("gateway up without --subnet on 10.77.0.0/16 printed %q; want it already up with 10.77.0.0/16", out)
	}
	c.ok("gateway", "up", "--subnet", "10.77.0.0/16")
	// Another plan is a refused value: exit status 2, as README's CLI section says.
	c.fails(2, "it has 10.77.0.0/16, not 172.18.0.0/16", "gateway", "up", "--subnet", "172.18.0.0/16")
	c.fails(2, planAdvice, "gateway", "up", "--subnet", "10.78.0.0/16")
	if out := c.ok("gateway", "status"); !strings.Contains(out, "10.77.0.0/16") {
		t.Errorf("gateway status after the ups: %q", out)
	}
	c.ok("gateway", "down")

	c.ok("gateway", "up", "--ipv4-only")
	if out := c.ok("gateway", "up"); !strings.Contains(out, "already up") {
		t.Errorf("gateway up without flags on an IPv4-only gateway printed %q", out)
	}
	c.ok("gateway", "up", "--ipv4-only")
	c.fails(2, "it has IPv6 none (IPv4 only), not fd70:6f6e::/48", "gateway", "up", "--subnet6", "fd70:6f6e::/48")
	c.fails(2, planAdvice, "gateway", "up", "--subnet6", "fd70:6f6e::/48")
	c.ok("gateway", "down")

	c.ok("gateway", "up", "--subnet6", "fd00:77::/48")
	// The README's IPv6 example on it.
	c.ok("bridge", "create", "b1")
	c.ok("guest", "add", "b1", "web", "--ip", "172.18.0.42", "--ip6", "fd00:77::beef")
	c.ok("exec", "b1", "web", "--", "ping", "-6", "-c1", "-W2", "fd00:77::254")
	c.ok("bridge", "destroy", "b1")
	if out := c.ok("gateway", "up", "--subnet", "172.18.0.0/16"); !strings.Contains(out, "already up") {
		t.Errorf("gateway up --subnet (the gateway's) without --subnet6 printed %q", out)
	}
	c.fails(2, "it has IPv6 fd00:77::/48, not none", "gateway", "up", "--ipv4-only")
	// No --subnet given: the advice must not tell the user to drop it (alone).
	c.fails(2, planAdvice, "gateway", "up", "--ipv4-only")
	if _, errOut, _ := c.run("gateway", "up", "--ipv4-only"); strings.Contains(errOut, "drop --subnet") {
		t.Errorf("gateway up --ipv4-only refused with advice about --subnet, which was not given: %q", errOut)
	}
	c.ok("gateway", "down")
	if out := c.ok("gateway", "up"); !strings.Contains(out, "gateway up (subnet 172.18.0.0/16") || !strings.Contains(out, "IPv6 fd70:6f6e::/48") {
		t.Errorf("a new gateway without flags printed %q; want the default plan", out)
	}
}

// TestGuestAddIPHintFollowsPlan: the example of `guest add` without --ip is an address of the
// plan in force, not the default plan's 172.18.0.1 on a gateway moved to 10.77.0.0/16.
func TestGuestAddIPHintFollowsPlan(t *testing.T) {
	c := newCLI(t)
	c.fails(2, "needs --ip, e.g. `pontoon guest add BRIDGE NAME --ip 172.18.0.1`", "guest", "add", "b", "g")
	c.ok("gateway", "up", "--subnet", "10.77.0.0/16")
	c.ok("bridge", "create", "b")
	c.fails(2, "needs --ip, e.g. `pontoon guest add BRIDGE NAME --ip 10.77.0.1`", "guest", "add", "b", "g")
	// The hint works as given.
	c.ok("guest", "add", "b", "g", "--ip", "10.77.0.1")
	c.ok("gateway", "down", "--force")
}
