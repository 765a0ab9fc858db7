package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pontoon-dev/pontoon/internal/testkit"
	"github.com/pontoon-dev/pontoon/netsetup"
	"github.com/pontoon-dev/pontoon/netsetup/sandbox"
)

var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "pontoon-cli-test")
	if err != nil {
		panic(err)
	}
	binary = filepath.Join(dir, "pontoon")
	if out, err := exec.Command("go", "build", "-o", binary, ".").CombinedOutput(); err != nil {
		os.Stderr.Write(out)
		panic(err)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// runner runs pontoon against a sandbox's environment.
type runner struct {
	t  *testing.T
	sb *sandbox.Sandbox
}

func newCLI(t *testing.T) *runner {
	t.Helper()
	testkit.NeedRoot(t, "creates network namespaces")
	sb, err := sandbox.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := sb.Close(); err != nil {
			t.Errorf("sandbox cleanup: %v", err)
		}
	})
	return &runner{t: t, sb: sb}
}

// command is pontoon with args, set up to act on the sandbox.
func (c *runner) command(args ...string) *exec.Cmd {
	cmd := exec.Command(binary, args...)
	cmd.Env = append(os.Environ(),
		"PONTOON_HOST_NETNS="+c.sb.Env.HostNetns,
		"PONTOON_STATE_DIR="+c.sb.Env.StateDir,
		"PONTOON_NETNS_DIR="+c.sb.Env.NetnsDir,
		"PONTOON_RESOLV_CONF="+c.sb.Env.ResolvConf,
		"PONTOON_BRIDGE=",
	)
	return cmd
}

func (c *runner) run(args ...string) (stdout, stderr string, code int) {
	c.t.Helper()
	cmd := c.command(args...)
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err := cmd.Run()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		c.t.Fatalf("pontoon %v: %v", args, err)
	}
	return o.String(), e.String(), code
}

func (c *runner) ok(args ...string) string {
	c.t.Helper()
	out, errOut, code := c.run(args...)
	if code != 0 {
		c.t.Fatalf("pontoon %s: exit %d\n%s%s", strings.Join(args, " "), code, out, errOut)
	}
	return out
}

// fails checks the exit status and that stderr names what is wrong.
func (c *runner) fails(wantCode int, wantMsg string, args ...string) {
	c.t.Helper()
	out, errOut, code := c.run(args...)
	if code != wantCode || !strings.Contains(errOut, wantMsg) {
		c.t.Errorf("pontoon %s: exit %d, stderr %q (stdout %q); want exit %d mentioning %q", strings.Join(args, " "), code, errOut, out, wantCode, wantMsg)
	}
}

func stateFiles(t *testing.T, dir string) []string {
	var out []string
	filepath.Walk(dir, func(p string, info os.FileInfo, err error) error {
		if err == nil && !info.IsDir() && info.Name() != "lock" {
			out = append(out, strings.TrimPrefix(p, dir))
		}
		return nil
	})
	return out
}

func TestChainCommands(t *testing.T) {
	c := newCLI(t)
	if out := c.ok("gateway", "up", "--dry-run"); !strings.Contains(out, "ip netns add pontoon-gw") || !strings.Contains(out, "nft -f -") {
		t.Errorf("dry run printed:\n%s", out)
	}
	if f := stateFiles(t, c.sb.Env.StateDir); len(f) > 0 {
		t.Errorf("dry run wrote state: %v", f)
	}
	c.ok("gateway", "up")
	if out := c.ok("gateway", "up"); !strings.Contains(out, "already up") {
		t.Errorf("second up said %q", out)
	}
	c.fails(1, "already up with subnet 172.18.0.0/16", "gateway", "up", "--subnet", "10.77.0.0/16")
	// Flags may follow the positional arguments.
	var b netsetup.BridgeState
	if err := json.Unmarshal([]byte(c.ok("bridge", "create", "b1", "--port", "8080:a:80/udp", "--json")), &b); err != nil || b.Name != "b1" || len(b.Ports) != 1 || b.Ports[0].Proto != "udp" {
		t.Errorf("bridge create --json: %+v, %v", b, err)
	}
	c.ok("guest", "add", "b1", "a", "--ip", "172.18.0.1", "--hostname", "alpha")
	c.ok("guest", "add", "b1", "b", "--ip", "172.18.0.2")
	if out := c.ok("exec", "b1", "a", "--", "hostname"); strings.TrimSpace(out) != "alpha" {
		t.Errorf("exec hostname printed %q, want alpha", out)
	}
	if out := c.ok("exec", "b1", "b", "--", "sh", "-c", "echo $PONTOON_GUEST $PONTOON_IP"); strings.TrimSpace(out) != "b 172.18.0.2" {
		t.Errorf("exec environment: %q", out)
	}
	var bs []netsetup.BridgeState
	if err := json.Unmarshal([]byte(c.ok("bridge", "list", "--json")), &bs); err != nil || len(bs) != 1 || len(bs[0].Guests) != 2 {
		t.Errorf("bridge list --json: %+v, %v", bs, err)
	}
	var st netsetup.GatewayStatus
	if err := json.Unmarshal([]byte(c.ok("gateway", "status", "--json")), &st); err != nil || !st.Up || len(st.Bridges) != 1 {
		t.Errorf("gateway status --json: %+v, %v", st, err)
	}
	c.fails(1, "bridges still use the gateway", "gateway", "down")
	if out := c.ok("gc"); !strings.Contains(out, "nothing to collect") {
		t.Errorf("gc on a live bridge: %q", out)
	}
	c.ok("guest", "del", "b1", "b")
	c.ok("guest", "del", "b1", "b")
	c.ok("bridge", "destroy", "b1")
	c.ok("bridge", "destroy", "b1")
	c.ok("gateway", "down")
	if f := stateFiles(t, c.sb.Env.StateDir); len(f) > 0 {
		t.Errorf("state left after down: %v", f)
	}
}

func TestPartitionCommands(t *testing.T) {
	c := newCLI(t)
	c.ok("gateway", "up")
	c.ok("bridge", "create", "p")
	for i, g := range []string{"n1", "n2", "n3"} {
		c.ok("guest", "add", "p", g, "--ip", "172.18.0."+string(rune('1'+i)))
	}
	c.fails(2, "no bridge given", "partition", "isolate", "n1")
	c.fails(2, "n9", "partition", "isolate", "n9", "--bridge", "p")
	c.fails(2, "--mode", "partition", "isolate", "n1", "--bridge", "p", "--mode", "sometimes")
	c.fails(2, "exactly one group", "partition", "disjoint", "n1", "--", "n3", "--bridge", "p")
	if out := c.ok("partition", "disjoint", "n1", "n2", "--", "n3", "--bridge", "p", "--mode", "reject"); !strings.Contains(out, "4 blocked pair(s)") || !strings.Contains(out, "in effect") {
		t.Errorf("disjoint printed %q", out)
	}
	var rec struct {
		Mode    string `json:"mode"`
		Blocked []struct{ Src, Dst string }
	}
	if err := json.Unmarshal([]byte(c.ok("partition", "status", "--json", "--bridge", "p")), &rec); err != nil || rec.Mode != "reject" || len(rec.Blocked) != 4 {
		t.Errorf("status --json: %+v, %v", rec, err)
	}
	// The guests' own view agrees: n1 still reaches n2, not n3.
	if _, _, code := c.run("exec", "p", "n1", "--", "ping", "-c1", "-W1", "172.18.0.2"); code != 0 {
		t.Errorf("n1 cannot reach n2 across a disjoint that keeps them together")
	}
	if _, _, code := c.run("exec", "p", "n1", "--", "ping", "-c1", "-W1", "172.18.0.3"); code == 0 {
		t.Errorf("n1 reaches n3 across the partition")
	}
	c.ok("partition", "heal", "--bridge", "p")
	if out := c.ok("partition", "status", "--bridge", "p"); !strings.Contains(out, "fullmesh") {
		t.Errorf("status after heal: %q", out)
	}
	// Impairment verbs change the settings they name and keep the others.
	c.ok("partition", "loss", "10%", "n3", "--bridge", "p")
	c.ok("partition", "rate", "1mbit", "n3", "--bridge", "p")
	var imp struct {
		Impairments []struct {
			Guest string
			Loss  float64
			Rate  string
		}
	}
	if err := json.Unmarshal([]byte(c.ok("partition", "status", "--json", "--bridge", "p")), &imp); err != nil || len(imp.Impairments) != 1 || imp.Impairments[0].Loss != 10 || imp.Impairments[0].Rate == "" {
		t.Errorf("loss then rate on n3: %+v, %v; want one impairment with both", imp, err)
	}
	c.ok("partition", "heal", "--bridge", "p")
	// --for applies, waits and restores the state before it (here: a one-way block).
	c.ok("partition", "block", "n1", "--", "n2", "--bridge", "p")
	if out := c.ok("partition", "isolate", "n3", "--for", "300ms", "--bridge", "p"); !strings.Contains(out, "restored") {
		t.Errorf("isolate --for printed %q", out)
	}
	if err := json.Unmarshal([]byte(c.ok("partition", "status", "--json", "--bridge", "p")), &rec); err != nil || len(rec.Blocked) != 1 || rec.Blocked[0].Src != "n1" || rec.Blocked[0].Dst != "n2" {
		t.Errorf("after --for: %+v, %v; want the block n1->n2 back", rec, err)
	}
	// A --for whose process is killed is finished by the next command once it has expired.
	cmd := c.command("partition", "isolate", "n2", "--for", "400ms", "--bridge", "p")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, func() bool {
		out, _, _ := c.run("partition", "status", "--bridge", "p")
		return strings.Contains(out, "isolate n2")
	})
	cmd.Process.Kill()
	cmd.Wait()
	time.Sleep(500 * time.Millisecond)
	_, errOut, _ := c.run("partition", "status", "--bridge", "p")
	if !strings.Contains(errOut, "restored") {
		t.Errorf("status after an expired, killed --for did not restore: %q", errOut)
	}
	if err := json.Unmarshal([]byte(c.ok("partition", "status", "--json", "--bridge", "p")), &rec); err != nil || len(rec.Blocked) != 1 || rec.Blocked[0].Src != "n1" {
		t.Errorf("after the restore: %+v, %v; want the block n1->n2 back", rec, err)
	}
	c.ok("gateway", "down", "--force")
}

func waitUntil(t *testing.T, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); !cond(); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 5s")
		}
	}
}

func TestUsageErrors(t *testing.T) {
	c := newCLI(t)
	c.fails(2, "takes 1 argument", "bridge", "create")
	c.fails(2, "--subnet", "gateway", "up", "--subnet", "10.77.0.0/24")
	c.fails(2, `"ip"`, "guest", "add", "b", "g")
	c.fails(2, "HOSTPORT:GUEST:GUESTPORT", "bridge", "create", "b", "--port", "80")
	c.fails(1, "is not up", "bridge", "create", "b")
	c.fails(2, "command name", "run")
}
