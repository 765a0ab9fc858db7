package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// bridgeRuleset is the nftables ruleset of a bridge's namespace.
func (c *runner) bridgeRuleset(bridge string) string {
	c.t.Helper()
	out, err := exec.Command("nsenter", "--net="+c.sb.Env.BridgeNetns(bridge), "nft", "list", "ruleset").CombinedOutput()
	if err != nil {
		c.t.Fatalf("nft list ruleset: %v\n%s", err, out)
	}
	return string(out)
}

// TestServiceAddRefusesEveryBadForm refuses each bad form of service add with exit status 2,
// a message naming the field, and nothing changed: state, the bridge's ruleset and listings.
func TestServiceAddRefusesEveryBadForm(t *testing.T) {
	c := newCLI(t)
	c.ok("gateway", "up")
	c.ok("bridge", "create", "b1")
	for i, g := range []string{"n1", "n2", "n3"} {
		c.ok("guest", "add", "b1", g, "--ip", "172.18.0."+string(rune('1'+i)))
	}
	c.ok("guest", "add", "b1", "web1", "--ip", "172.18.0.9", "--alias", "www")
	c.ok("service", "add", "b1", "kv", "--members", "n1,n2", "--port", "7000")
	before := c.stateContents() + c.bridgeRuleset("b1")
	for _, tc := range []struct {
		msg  string
		args []string
	}{
		{"port", []string{"--members", "n1", "--port", "0"}},
		{"port", []string{"--members", "n1", "--port", "65536"}},
		{"port", []string{"--members", "n1", "--port", "-1"}},
		{"port", []string{"--members", "n1", "--port", "7000/"}},
		{"port", []string{"--members", "n1", "--port", "/tcp"}},
		{"port", []string{"--members", "n1", "--port", "7000-7010"}},
		{"port", []string{"--members", "n1", "--port", "7000/tcp/udp"}},
		{"given twice", []string{"--members", "n1", "--port", "7000", "--port", "7000/tcp"}},
		{"members", []string{"--members", ""}},
		{"members", []string{"--members", ","}},
		{"members", []string{"--members", "n1,n1"}},
		{"members", []string{"--members", "kv"}},
		{"members", []string{"--members", "www"}},
		{"ip", []string{"--members", "n1", "--ip", "172.18.0.80"}},
		{"ip", []string{"--members", "n1", "--ip", "172.18.1.0"}},
		{"ip", []string{"--members", "n1", "--ip", "172.18.1.255"}},
		{"ip", []string{"--members", "n1", "--ip", "172.18.2.5"}},
		{"ip", []string{"--members", "n1", "--ip", "172.18.1.1"}},
		{"ip", []string{"--members", "n1", "--ip", "fd70:6f6e:0:1::5"}},
		{"ip", []string{"--members", "n1", "--ip", "::ffff:172.18.1.7"}},
		{"ip", []string{"--members", "n1", "--ip", "172.18.1.07"}},
		{"ip", []string{"--members", "n1", "--ip", "nope"}},
	} {
		c.fails(2, tc.msg, append([]string{"service", "add", "b1", "x"}, tc.args...)...)
	}
	for _, tc := range []struct {
		msg, name string
	}{
		{"already has a service", "kv"},
		{"already has a service", "KV"},
		{"guest", "n1"},
		{"guest", "N1"},
		{"guest", "www"},
		{"service name", "a/b"},
		{"service name", "_x"},
		{"service name", ""},
		{"service name", strings.Repeat("x", 64)},
	} {
		c.fails(2, tc.msg, "service", "add", "b1", tc.name, "--members", "n1")
	}
	if after := c.stateContents() + c.bridgeRuleset("b1"); after != before {
		t.Errorf("refused service add changed something:\nbefore:\n%s\nafter:\n%s", before, after)
	}
	// A guest may not take a service's name either: the name server answers one address
	// per name.
	c.fails(2, `"kv" is already the name of service "kv"`, "guest", "add", "b1", "kv", "--ip", "172.18.0.20")
	c.fails(2, `"Kv" is already the name of service "kv"`, "guest", "add", "b1", "g20", "--ip", "172.18.0.20", "--alias", "Kv")
	c.fails(2, `"kv" is already the name of service "kv"`, "guest", "add", "b1", "g20", "--ip", "172.18.0.20", "--hostname", "kv")
	if after := c.stateContents() + c.bridgeRuleset("b1"); after != before {
		t.Errorf("refused guest add changed something:\nbefore:\n%s\nafter:\n%s", before, after)
	}
}

// stateContents is every state file with its content.
func (c *runner) stateContents() string {
	c.t.Helper()
	var b strings.Builder
	filepath.Walk(c.sb.Env.StateDir, func(p string, info os.FileInfo, err error) error {
		if err == nil && !info.IsDir() && info.Name() != "lock" {
			data, _ := os.ReadFile(p)
			b.WriteString(p + "\n" + string(data) + "\n")
		}
		return nil
	})
	return b.String()
}

// kernelServices are the service addresses the bridge's kernel balances, sorted.
func (c *runner) kernelServices(bridge string) []string {
	c.t.Helper()
	out, _ := exec.Command("nsenter", "--net="+c.sb.Env.BridgeNetns(bridge), "nft", "list", "chain", "inet", "pontoon_service", "prerouting").CombinedOutput()
	seen := map[string]bool{}
	for _, m := range regexp.MustCompile(`ip daddr (\S+) `).FindAllStringSubmatch(string(out), -1) {
		seen[m[1]] = true
	}
	return slices.Sorted(maps.Keys(seen))
}

// recordServices are the service addresses service list --json shows, sorted.
func (c *runner) recordServices(bridge string) []string {
	c.t.Helper()
	var list []struct {
		Services []struct {
			IP string `json:"ip"`
		} `json:"services"`
	}
	if err := json.Unmarshal([]byte(c.ok("service", "list", bridge, "--json")), &list); err != nil {
		c.t.Fatal(err)
	}
	var out []string
	for _, s := range list[0].Services {
		out = append(out, s.IP)
	}
	slices.Sort(out)
	return out
}

// TestServiceKilledHalfway kills service add and rm with SIGKILL at many moments: after
// pontoon gc, service list shows exactly the services whose rules the kernel has.
func TestServiceKilledHalfway(t *testing.T) {
	c := newCLI(t)
	c.ok("gateway", "up")
	c.ok("bridge", "create", "b1")
	for i, g := range []string{"n1", "n2", "n3"} {
		c.ok("guest", "add", "b1", g, "--ip", "172.18.0."+string(rune('1'+i)))
	}
	c.ok("service", "add", "b1", "kv", "--members", "n1,n2")
	record := c.sb.Env.BridgeRecordFile("b1")
	for i := range 40 {
		args := []string{"service", "add", "b1", "x", "--members", "n2,n3", "--port", "7000"}
		if strings.Contains(c.ok("service", "list", "b1"), "x  ") {
			args = []string{"service", "rm", "b1", "x"}
		}
		before, _ := os.ReadFile(record)
		cmd := c.command(args...)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		// Odd rounds kill as soon as the record changed (between the record and the rules);
		// even ones after a growing number of looks at the process.
		for n := 0; ; n++ {
			now, _ := os.ReadFile(record)
			if i%2 == 1 && !bytes.Equal(now, before) || i%2 == 0 && n >= i*5 {
				break
			}
			if _, err := os.Stat(fmt.Sprintf("/proc/%d/stat", cmd.Process.Pid)); err != nil || n > 100000 {
				break
			}
		}
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		// Until gc, the listing says when the record may not be what the kernel has.
		if rec, kern := c.recordServices("b1"), c.kernelServices("b1"); !slices.Equal(rec, kern) && !strings.Contains(c.ok("service", "list", "b1"), "(interrupted: pontoon gc finishes it)") {
			t.Errorf("round %d (%v killed): service list shows %v, the kernel balances %v, and the listing does not say so:\n%s", i, args[1], rec, kern, c.ok("service", "list", "b1"))
		}
		c.ok("gc")
		if rec, kern := c.recordServices("b1"), c.kernelServices("b1"); !slices.Equal(rec, kern) {
			t.Errorf("round %d (%v killed): service list shows %v, the kernel balances %v", i, args[1], rec, kern)
		}
	}
}

// TestServiceGCRepairsDrift makes the kernel's service rules differ from the record (a
// member removal killed before its rules followed, rules deleted by hand): pontoon gc
// writes them again from the record.
func TestServiceGCRepairsDrift(t *testing.T) {
	c := newCLI(t)
	c.ok("gateway", "up")
	c.ok("bridge", "create", "b1")
	for i, g := range []string{"n1", "n2", "n3"} {
		c.ok("guest", "add", "b1", g, "--ip", "172.18.0."+string(rune('1'+i)))
	}
	c.ok("service", "add", "b1", "kv", "--members", "n1,n2,n3")
	nft := func(args ...string) string {
		out, _ := exec.Command("nsenter", append([]string{"--net=" + c.sb.Env.BridgeNetns("b1"), "nft"}, args...)...).CombinedOutput()
		return string(out)
	}
	nft("delete", "table", "inet", "pontoon_service")
	c.ok("gc")
	if rec, kern := c.recordServices("b1"), c.kernelServices("b1"); !slices.Equal(rec, kern) || len(kern) != 1 {
		t.Errorf("after the table was deleted and gc: service list shows %v, the kernel balances %v", rec, kern)
	}
	// A member gone from the record whose rules stayed: new connections would still go to
	// its address, which the next guest may get.
	nft("add", "element", "inet", "pontoon_service", "marks", "{ 0x80010000 . 172.18.0.9 : 0x80010009 }")
	c.ok("gc")
	if m := nft("list", "map", "inet", "pontoon_service", "marks"); strings.Contains(m, "172.18.0.9") {
		t.Errorf("after gc the kernel still maps a member the record lacks:\n%s", m)
	}
	// A member that leaves and comes back does not rejoin; its address is mapped no more.
	c.ok("guest", "del", "b1", "n2")
	c.ok("guest", "add", "b1", "n2", "--ip", "172.18.0.2")
	if list := c.ok("service", "list", "b1"); !strings.Contains(list, "n1=0 n3=0") || strings.Contains(list, "n2=") {
		t.Errorf("after n2 left and came back, service list:\n%s", list)
	}
	if m := nft("list", "map", "inet", "pontoon_service", "marks"); strings.Contains(m, "172.18.0.2 ") || !strings.Contains(m, "172.18.0.3 ") {
		t.Errorf("after n2 left and came back the kernel maps:\n%s", m)
	}
	// Nothing to repair: gc changes nothing.
	before := c.stateContents() + c.bridgeRuleset("b1")
	c.ok("gc")
	if after := c.stateContents() + c.bridgeRuleset("b1"); after != before {
		t.Errorf("gc with nothing to repair changed something:\nbefore:\n%s\nafter:\n%s", before, after)
	}
}

// TestServiceBridgeDestroyed destroys a bridge with services: nothing of them is left, and a
// bridge of the same name starts without them.
func TestServiceBridgeDestroyed(t *testing.T) {
	c := newCLI(t)
	c.ok("gateway", "up")
	c.ok("bridge", "create", "b1")
	c.ok("guest", "add", "b1", "n1", "--ip", "172.18.0.1")
	c.ok("service", "add", "b1", "kv", "--members", "n1")
	c.ok("bridge", "destroy", "b1")
	c.ok("bridge", "create", "b1")
	c.ok("guest", "add", "b1", "kv", "--ip", "172.18.0.1")
	if rec, kern := c.recordServices("b1"), c.kernelServices("b1"); len(rec) != 0 || len(kern) != 0 {
		t.Errorf("after destroy and create: service list shows %v, the kernel balances %v", rec, kern)
	}
	if out := c.ok("gc"); strings.Contains(out, "service") {
		t.Errorf("gc after destroy: %s", out)
	}
}

// TestServiceConcurrentCommands adds and removes services from several processes at once:
// each gets its own address, and the kernel balances exactly the services listed.
func TestServiceConcurrentCommands(t *testing.T) {
	c := newCLI(t)
	c.ok("gateway", "up")
	c.ok("bridge", "create", "b1")
	c.ok("guest", "add", "b1", "n1", "--ip", "172.18.0.1")
	c.ok("service", "add", "b1", "gone", "--members", "n1")
	var cmds []*exec.Cmd
	for i := range 8 {
		cmds = append(cmds, c.command("service", "add", "b1", fmt.Sprintf("s%d", i), "--members", "n1"))
	}
	cmds = append(cmds, c.command("service", "rm", "b1", "gone"))
	for _, cmd := range cmds {
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
	}
	for _, cmd := range cmds {
		if err := cmd.Wait(); err != nil {
			t.Errorf("%v: %v", cmd.Args, err)
		}
	}
	rec, kern := c.recordServices("b1"), c.kernelServices("b1")
	if len(rec) != 8 || !slices.Equal(rec, kern) || len(slices.Compact(slices.Clone(rec))) != 8 {
		t.Errorf("after concurrent adds and a removal: service list shows %v, the kernel balances %v", rec, kern)
	}
}
