package main

import (
	"encoding/json"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/pontoon-dev/pontoon/netsetup"
	"github.com/pontoon-dev/pontoon/netsetup/ns"
)

// reachesHost fails the test unless guest a of bridge b1 gets an answer from the host end of
// the host link (addr).
func (c *runner) reachesHost(addr string) {
	c.t.Helper()
	if out, errOut, code := c.run("exec", "b1", "a", "--", "ping", "-c1", "-W2", addr); code != 0 {
		c.t.Errorf("guest a cannot reach the host at %s: exit %d\n%s%s", addr, code, out, errOut)
	}
}

func (c *runner) status() netsetup.GatewayStatus {
	c.t.Helper()
	var st netsetup.GatewayStatus
	if err := json.Unmarshal([]byte(c.ok("gateway", "status", "--json")), &st); err != nil {
		c.t.Fatalf("gateway status --json: %v", err)
	}
	return st
}

// TestGatewayNetnsDeletedByHand: `ip netns del pontoon-gw` on a gateway without bridges once
// left status saying "down (run `pontoon gateway up`)" and gateway up saying "already up",
// exit 0, nothing rebuilt: the user went round in circles. Status must say what is wrong and
// gateway up build the gateway again with the plan it had.
func TestGatewayNetnsDeletedByHand(t *testing.T) {
	c := newCLI(t)
	c.ok("gateway", "up", "--subnet", "10.77.0.0/16", "--ipv4-only")
	if err := ns.Remove(c.sb.Env.GatewayNetns()); err != nil { // what `ip netns del` does
		t.Fatal(err)
	}
	out := c.ok("gateway", "status")
	if !strings.Contains(out, "gone") || !strings.Contains(out, "`pontoon gateway up` builds it again") {
		t.Errorf("gateway status over a deleted gateway namespace: %q; want it gone, rebuilt by gateway up", out)
	}
	if st := c.status(); st.Up || st.Problem == "" {
		t.Errorf("gateway status --json over a deleted gateway namespace: up %v, problem %q", st.Up, st.Problem)
	}
	out = c.ok("gateway", "up")
	if strings.Contains(out, "already up") || !strings.Contains(out, "gateway up (subnet 10.77.0.0/16") || !strings.Contains(out, "IPv4 only") {
		t.Errorf("gateway up over a deleted gateway namespace printed %q; want it built again with 10.77.0.0/16, IPv4 only", out)
	}
	if st := c.status(); !st.Up || st.Problem != "" || st.Gateway.Plan.String() != "10.77.0.0/16" || st.Gateway.Plan6.IsValid() {
		t.Errorf("gateway status after the rebuild: %+v", st)
	}
	c.ok("bridge", "create", "b1")
	c.ok("guest", "add", "b1", "a", "--ip", "10.77.0.1")
	c.reachesHost("10.77.255.1")
	if out := c.ok("gateway", "up"); !strings.Contains(out, "already up") {
		t.Errorf("gateway up on the rebuilt gateway: %q", out)
	}
	c.ok("gateway", "down", "--force")
}

// TestGatewayNetnsDeletedUnderBridges: with bridges linked to it, a gateway whose namespace
// is gone cannot be built again under them: gateway up refuses, exit 1, with the fix that
// status names too, and the fix works.
func TestGatewayNetnsDeletedUnderBridges(t *testing.T) {
	c := newCLI(t)
	c.ok("gateway", "up", "--subnet", "10.77.0.0/16")
	c.ok("bridge", "create", "b1")
	c.ok("guest", "add", "b1", "a", "--ip", "10.77.0.1")
	if err := ns.Remove(c.sb.Env.GatewayNetns()); err != nil {
		t.Fatal(err)
	}
	const fix = "`pontoon gateway down --force`"
	if out := c.ok("gateway", "status"); !strings.Contains(out, "gone") || !strings.Contains(out, fix) || !strings.Contains(out, "b1") {
		t.Errorf("gateway status over a deleted gateway namespace with bridge b1: %q; want it gone, naming b1 and %s", out, fix)
	}
	c.fails(1, fix, "gateway", "up")
	c.fails(1, "the link of bridge b1;", "gateway", "up")
	c.fails(1, fix, "gc") // it opened the deleted namespace and said only that
	c.ok("gateway", "down", "--force")
	if out := c.ok("gateway", "up"); !strings.Contains(out, "gateway up (subnet 172.18.0.0/16") {
		t.Errorf("gateway up after down --force: %q", out)
	}
	if st := c.status(); !st.Up || st.Problem != "" {
		t.Errorf("gateway status after the fix: %+v", st)
	}
	c.ok("gateway", "down")
}

// TestGatewayHostLinkDeletedByHand: the host link deleted (`ip link del pontoon0`) leaves the
// gateway's namespace and its bridges as they were: gateway up makes the link again, and
// guests reach the host again.
func TestGatewayHostLinkDeletedByHand(t *testing.T) {
	c := newCLI(t)
	c.ok("gateway", "up", "--subnet", "10.77.0.0/16")
	c.ok("bridge", "create", "b1")
	c.ok("guest", "add", "b1", "a", "--ip", "10.77.0.1")
	c.reachesHost("10.77.255.1")
	if out, err := exec.Command("nsenter", "--net="+c.sb.Env.HostNetns, "ip", "link", "del", netsetup.HostLinkName).CombinedOutput(); err != nil {
		t.Fatalf("ip link del %s: %v\n%s", netsetup.HostLinkName, err, out)
	}
	if out := c.ok("gateway", "status"); !strings.Contains(out, netsetup.HostLinkName) || !strings.Contains(out, "`pontoon gateway up` makes it again") {
		t.Errorf("gateway status without the host link: %q", out)
	}
	if st := c.status(); st.Up {
		t.Errorf("gateway status --json without the host link says up")
	}
	if out := c.ok("gateway", "up"); !strings.Contains(out, "up again") || !strings.Contains(out, "10.77.0.0/16") {
		t.Errorf("gateway up without the host link printed %q; want it up again", out)
	}
	if st := c.status(); !st.Up || st.Problem != "" {
		t.Errorf("gateway status after the repair: %+v", st)
	}
	c.reachesHost("10.77.255.1")
	c.reachesHost("fd70:6f6e:0:ffff::1")
	if out := c.ok("gateway", "up"); !strings.Contains(out, "already up") {
		t.Errorf("gateway up after the repair: %q", out)
	}
	c.ok("gateway", "down", "--force")
}

// TestDownForceOverLostGatewayWithForwards: `gateway up; bridge create w --port 9090:x:80;
// bridge create w2; ip netns del pontoon-gw; gateway down --force` failed on w's forward
// (the deleted namespace opened to remove it), after stopping every name server, and left
// nothing that recovered: gc, bridge destroy and gateway up all failed, and gc started name
// servers again for bridges without a gateway. down --force must remove everything, gc must
// start no name server for such bridges, and a new chain must come up afterwards.
func TestDownForceOverLostGatewayWithForwards(t *testing.T) {
	c := newCLI(t)
	server := func(bridge string) []string {
		return processesOf(c.sb.Env.StateDir, "names\x00serve\x00--bridge\x00"+bridge+"\x00")
	}
	c.ok("gateway", "up")
	c.ok("bridge", "create", "w", "--port", "9090:x:80")
	c.ok("bridge", "create", "w2")
	if len(server("w")) != 1 || len(server("w2")) != 1 {
		t.Fatalf("name servers after bridge create: w %v, w2 %v; want one each", server("w"), server("w2"))
	}
	if err := ns.Remove(c.sb.Env.GatewayNetns()); err != nil { // what `ip netns del` does
		t.Fatal(err)
	}
	const fix = "`pontoon gateway down --force`"
	if out := c.ok("gateway", "status"); !strings.Contains(out, "broken") || !strings.Contains(out, fix) {
		t.Errorf("gateway status over a deleted gateway namespace: %q; want broken, fixed by %s", out, fix)
	}
	// w2's server gone (killed, or stopped by a down that failed): gc must not start one
	// for a bridge whose gateway is gone.
	for _, pid := range server("w2") {
		if n, err := strconv.Atoi(pid); err == nil {
			syscall.Kill(n, syscall.SIGKILL)
		}
	}
	waitUntil(t, func() bool { return len(server("w2")) == 0 })
	c.fails(1, fix, "gc")
	if p := server("w2"); len(p) > 0 {
		t.Errorf("gc started a name server (%v) for bridge w2, whose gateway is gone", p)
	}

	c.ok("gateway", "down", "--force")
	waitUntil(t, func() bool { return len(processesOf(c.sb.Env.StateDir, "names")) == 0 })
	if f := stateFiles(t, c.sb.Env.StateDir); len(f) > 0 {
		t.Errorf("state after down --force: %v", f)
	}
	if pins, _ := os.ReadDir(c.sb.Env.NetnsDir); len(pins) > 0 {
		t.Errorf("pins after down --force: %v", pins)
	}
	c.ok("gc")
	c.ok("gateway", "up")
	c.ok("bridge", "create", "w", "--port", "9090:x:80")
	if st := c.status(); !st.Up || st.Problem != "" || len(st.Bridges) != 1 {
		t.Errorf("gateway status after the new chain: %+v", st)
	}
	c.ok("gateway", "down", "--force")
}
