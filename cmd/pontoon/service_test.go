package main

import (
	"encoding/json"
	"os/exec"
	"strings"
	"testing"
)

// TestServiceCommands goes through the README's service commands: add, list (text and
// JSON), bridge list --json, a member leaving, bad input refused with nothing changed, rm.
func TestServiceCommands(t *testing.T) {
	c := newCLI(t)
	c.ok("gateway", "up")
	c.ok("bridge", "create", "b1")
	for i, g := range []string{"n1", "n2", "n3", "c"} {
		c.ok("guest", "add", "b1", g, "--ip", "172.18.0."+string(rune('1'+i)))
	}
	if out := c.ok("service", "add", "b1", "kv", "--members", "n1,n2", "--members", "n3", "--port", "7000", "--port", "7001/udp"); !strings.Contains(out, "service kv at 172.18.1.1 fd70:6f6e:0:1::1") {
		t.Errorf("service add printed %q", out)
	}
	c.ok("service", "add", "b1", "web", "--members", "n1", "--ip", "172.18.1.80", "--random", "--skip-unreachable", "--ipv4-only")
	list := c.ok("service", "list", "b1")
	for _, want := range []string{"kv  ", "172.18.1.1 fd70:6f6e:0:1::1", "7000/tcp,7001/udp", "round-robin", "n1=0 n2=0 n3=0", "web", "random,skip-unreachable"} {
		if !strings.Contains(list, want) {
			t.Errorf("service list lacks %q:\n%s", want, list)
		}
	}
	var bridges []struct {
		Name     string `json:"name"`
		Services []struct {
			Name    string   `json:"name"`
			IP      string   `json:"ip"`
			Members []string `json:"members"`
		} `json:"services"`
	}
	if err := json.Unmarshal([]byte(c.ok("bridge", "list", "--json")), &bridges); err != nil {
		t.Fatal(err)
	}
	if len(bridges) != 1 || len(bridges[0].Services) != 2 || bridges[0].Services[1].IP != "172.18.1.80" {
		t.Errorf("bridge list --json services: %+v", bridges)
	}

	before := c.hostSnapshot() + c.ok("bridge", "list", "--json") + c.ok("service", "list", "--json")
	for _, tc := range []struct {
		msg  string
		args []string
	}{
		{`has no guest "n9"`, []string{"service", "add", "b1", "x", "--members", "n1,n9"}},
		{`already the address of service "web"`, []string{"service", "add", "b1", "x", "--members", "n1", "--ip", "172.18.1.80"}},
		{"outside the service range", []string{"service", "add", "b1", "x", "--members", "n1", "--ip", "172.18.0.80"}},
		{`port "http" is not a port`, []string{"service", "add", "b1", "x", "--members", "n1", "--port", "http"}},
		{`already has a service "kv"`, []string{"service", "add", "b1", "kv", "--members", "n1"}},
		{`has no service "nope"`, []string{"service", "rm", "b1", "nope"}},
		{"takes a bridge and a service name", []string{"service", "add", "b1", "--members", "n1"}},
	} {
		c.fails(2, tc.msg, tc.args...)
	}
	if after := c.hostSnapshot() + c.ok("bridge", "list", "--json") + c.ok("service", "list", "--json"); after != before {
		t.Errorf("refused service commands changed something:\nbefore:\n%s\nafter:\n%s", before, after)
	}

	if st := c.ok("partition", "status", "--bridge", "b1"); !strings.Contains(st, "service kv 172.18.1.1 fd70:6f6e:0:1::1 (round-robin, ports 7000/tcp,7001/udp): n1=0 n2=0 n3=0") {
		t.Errorf("partition status lacks the service:\n%s", st)
	}
	c.ok("guest", "del", "b1", "n2")
	if list := c.ok("service", "list", "b1"); !strings.Contains(list, "n1=0 n3=0") || strings.Contains(list, "n2=") {
		t.Errorf("after n2 left, service list:\n%s", list)
	}
	if out := c.ok("service", "rm", "b1", "kv"); out != "service kv removed from bridge b1\n" {
		t.Errorf("service rm printed %q", out)
	}
	if list := c.ok("service", "list", "b1", "--json"); strings.Contains(list, `"kv"`) || !strings.Contains(list, `"web"`) {
		t.Errorf("after rm kv, service list --json:\n%s", list)
	}
	// The last service takes its table along.
	c.ok("service", "rm", "b1", "web")
	out, err := exec.Command("nsenter", "--net="+c.sb.Env.BridgeNetns("b1"), "nft", "list", "tables").CombinedOutput()
	if err != nil || strings.Contains(string(out), "pontoon_service") {
		t.Errorf("tables after the last service left: %s (%v)", out, err)
	}
}

// TestServiceNameAnyCase reproduces `service add BR WEB` next to a service "web", whose
// advice `pontoon service rm BR WEB` then failed with `no service "WEB"`: names are one name
// whatever their case, for removal as for adding, and the advice works as printed.
func TestServiceNameAnyCase(t *testing.T) {
	c := newCLI(t)
	c.ok("gateway", "up")
	c.ok("bridge", "create", "b1")
	c.ok("guest", "add", "b1", "m1", "--ip", "172.18.0.1")
	c.ok("service", "add", "b1", "web", "--members", "m1")
	c.fails(2, "already has a service \"web\" (172.18.1.1); choose another name, or remove it first with `pontoon service rm b1 web`",
		"service", "add", "b1", "WEB", "--members", "m1")
	c.ok("service", "rm", "b1", "WEB")
	if list := c.ok("service", "list", "b1", "--json"); strings.Contains(list, `"web"`) {
		t.Errorf("after rm WEB, service list --json:\n%s", list)
	}
	out, err := exec.Command("nsenter", "--net="+c.sb.Env.BridgeNetns("b1"), "nft", "list", "tables").CombinedOutput()
	if err != nil || strings.Contains(string(out), "pontoon_service") {
		t.Errorf("tables after the service left: %s (%v)", out, err)
	}
	c.ok("service", "add", "b1", "WEB", "--members", "m1")
	c.ok("service", "rm", "b1", "Web")
}
