package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
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
	// Readable by everyone: TestNeedsRoot runs the binary as an ordinary user.
	if err := os.Chmod(dir, 0o755); err != nil {
		panic(err)
	}
	binary = filepath.Join(dir, "pontoon")
	for _, cmd := range []*exec.Cmd{buildCmd(binary), buildCmd(filepath.Join(dir, "pontoon-capture"), "../pontoon-capture")} {
		if out, err := cmd.CombinedOutput(); err != nil {
			os.Stderr.Write(out)
			panic(err)
		}
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
	cmd.Env = append(append(os.Environ(), c.sb.Env.Environ()...), "PONTOON_BRIDGE=")
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
	if out := c.ok("gateway", "up", "--dry-run"); out != "# gateway already up (subnet 172.18.0.0/16): nothing to do\n" {
		t.Errorf("dry run on a gateway that is up printed %q", out)
	}
	c.fails(2, "it has 172.18.0.0/16, not 10.77.0.0/16", "gateway", "up", "--subnet", "10.77.0.0/16")
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
	// /sys shows the guest's devices, as under `ip netns exec`, not the host's.
	if out := c.ok("exec", "b1", "b", "--", "cat", "/sys/class/net/eth0/address"); strings.TrimSpace(out) != netsetup.GuestMAC(netip.MustParseAddr("172.18.0.2")).String() {
		t.Errorf("exec sees eth0's address in /sys as %q, want the guest's %s", out, netsetup.GuestMAC(netip.MustParseAddr("172.18.0.2")))
	}
	var bs []netsetup.BridgeState
	if err := json.Unmarshal([]byte(c.ok("bridge", "list", "--json")), &bs); err != nil || len(bs) != 1 || len(bs[0].Guests) != 2 {
		t.Errorf("bridge list --json: %+v, %v", bs, err)
	}
	if out := c.ok("bridge", "list"); !strings.Contains(out, "172.18.0.1-2") || strings.Contains(out, "alpha") {
		t.Errorf("bridge list: %q; want one line with the address range and no guest details", out)
	}
	for _, args := range [][]string{{"bridge", "show", "b1"}, {"bridge", "list", "-v"}} {
		if out := c.ok(args...); !strings.Contains(out, "alpha") || !strings.Contains(out, "172.18.0.2") {
			t.Errorf("%s: %q; want every guest", strings.Join(args, " "), out)
		}
	}
	c.fails(1, "bridge \"b9\": no such bridge\npontoon: `pontoon bridge list` shows the bridges", "bridge", "show", "b9")
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
	// Once its 400ms are over, the state the killed --for replaced comes back.
	waitUntil(t, func() bool {
		var rec struct{ Blocked []struct{ Src, Dst string } }
		err := json.Unmarshal([]byte(c.ok("partition", "status", "--json", "--bridge", "p")), &rec)
		return err == nil && len(rec.Blocked) == 1 && rec.Blocked[0].Src == "n1" && rec.Blocked[0].Dst == "n2"
	})
	// The README's form: --bridge before the verb.
	if out := c.ok("partition", "--bridge", "p", "isolate", "n3"); !strings.Contains(out, "isolate n3") {
		t.Errorf("partition --bridge p isolate n3 printed %q", out)
	}
	if err := json.Unmarshal([]byte(c.ok("partition", "--bridge", "p", "status", "--json")), &rec); err != nil || len(rec.Blocked) != 4 {
		t.Errorf("after isolate n3: %+v, %v; want n3 cut from n1 and n2 both ways", rec, err)
	}
	// The restorer of a killed --for goes with its bridge: it neither waits out its hour nor
	// brings state back when it wakes.
	waitUntil(t, func() bool { return len(restorers(c.sb.Env.StateDir)) == 0 }) // the 400ms one
	cmd = c.command("partition", "isolate", "n1", "--for", "1h", "--bridge", "p")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// The command prints its line once its restorer runs.
	if line, err := bufio.NewReader(out).ReadString('\n'); err != nil || len(restorers(c.sb.Env.StateDir)) != 1 {
		t.Fatalf("isolate --for 1h printed %q (%v); restorers %v, want one", line, err, restorers(c.sb.Env.StateDir))
	}
	cmd.Process.Kill()
	cmd.Wait()
	// Down --force takes the bridge's name server with it, as bridge destroy does.
	c.ok("gateway", "down", "--force")
	waitUntil(t, func() bool { return len(processesOf(c.sb.Env.StateDir, "")) == 0 })
	if f := stateFiles(t, c.sb.Env.StateDir); len(f) > 0 {
		t.Errorf("state after down, once the restorer ended: %v", f)
	}
}

// restorers returns the pids of the --for restorers acting on stateDir.
func restorers(stateDir string) []string { return processesOf(stateDir, restoreVerb) }

// processesOf returns the pids of the pontoon processes acting on stateDir (restorers, name
// servers) whose command line holds word.
func processesOf(stateDir, word string) []string {
	var out []string
	dirs, _ := os.ReadDir("/proc")
	for _, d := range dirs {
		b, err := os.ReadFile(filepath.Join("/proc", d.Name(), "cmdline"))
		if err == nil && bytes.Contains(b, []byte(word)) && bytes.Contains(b, []byte(stateDir+"\x00")) {
			out = append(out, d.Name())
		}
	}
	return out
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
	c.fails(2, "needs --ip", "guest", "add", "b", "g")
	c.fails(2, "HOSTPORT:GUEST:GUESTPORT", "bridge", "create", "b", "--port", "80")
	// The library says what is wrong, the CLI what to run about it.
	c.fails(1, "the pontoon gateway is not up\npontoon: run `pontoon gateway up`", "bridge", "create", "b")
	c.fails(2, "command name", "run")
}

// TestConcurrentChangesKeepEachOther reproduces two partition commands at once undoing each
// other: each read the recorded state without the lock and applied its copy, so the later one
// silently dropped the earlier one's change. Every change is now a read-modify-write under the
// bridge's lock: whatever the order, all of them are in force at the end.
func TestConcurrentChangesKeepEachOther(t *testing.T) {
	c := newCLI(t)
	c.ok("gateway", "up")
	c.ok("bridge", "create", "cc")
	guests := []string{"n1", "n2", "n3", "n4", "n5", "n6"}
	for i, g := range guests {
		c.ok("guest", "add", "cc", g, "--ip", fmt.Sprintf("172.18.0.%d", i+1))
	}
	t.Cleanup(func() { c.ok("gateway", "down", "--force") })
	for round := range 3 {
		c.ok("partition", "heal", "--bridge", "cc")
		changes := [][]string{{"isolate", "n6"}}
		for i, g := range guests[:5] {
			changes = append(changes, []string{"loss", fmt.Sprintf("%d%%", 10+i+round), g})
		}
		var wg sync.WaitGroup
		for _, ch := range changes {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if _, stderr, code := c.run(append([]string{"partition", "--bridge", "cc"}, ch...)...); code != 0 {
					t.Errorf("partition %v: exit %d: %s", ch, code, stderr)
				}
			}()
		}
		wg.Wait()
		var rec struct {
			Blocked     []struct{ Src, Dst string }
			Impairments []struct {
				Guest string
				Loss  float64
			}
		}
		if err := json.Unmarshal([]byte(c.ok("partition", "status", "--json", "--bridge", "cc")), &rec); err != nil {
			t.Fatal(err)
		}
		if len(rec.Blocked) != 10 || len(rec.Impairments) != 5 {
			t.Fatalf("round %d: %d blocked pairs and %d impairments in force, want 10 (isolate n6) and 5 (a loss on n1-n5): %+v", round, len(rec.Blocked), len(rec.Impairments), rec)
		}
		for i, im := range rec.Impairments {
			if want := float64(10 + i + round); im.Guest != guests[i] || im.Loss != want {
				t.Errorf("round %d: impairment %d is %+v, want loss %v%% on %s", round, i, im, want, guests[i])
			}
		}
	}
}

// buildCmd builds pontoon, or the package at pkg, as `make build` does: static, without
// urfave/cli's docs.
func buildCmd(binary string, pkg ...string) *exec.Cmd {
	if len(pkg) == 0 {
		pkg = []string{"."}
	}
	cmd := exec.Command("go", "build", "-trimpath", "-tags", "urfave_cli_no_docs", "-o", binary, pkg[0])
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	return cmd
}

// snapshot is what a pontoon session may change: the host namespace's nftables ruleset and
// links, the pinned namespaces and the state files.
func (c *runner) hostSnapshot() string {
	c.t.Helper()
	var b strings.Builder
	for _, args := range [][]string{{"nft", "list", "ruleset"}, {"ip", "-br", "link", "show"}} {
		out, err := exec.Command("nsenter", append([]string{"--net=" + c.sb.Env.HostNetns}, args...)...).CombinedOutput()
		if err != nil {
			c.t.Fatalf("%v: %v\n%s", args, err, out)
		}
		if args[0] == "ip" {
			// A link's name and address, not its state: the sandbox's own uplink gains its
			// carrier when its peer comes up, whenever that is.
			var links []string
			for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
				if f := strings.Fields(l); len(f) >= 3 {
					links = append(links, f[0]+" "+f[2])
				}
			}
			out = []byte(strings.Join(links, "\n") + "\n")
		}
		b.WriteString(strings.Join(args, " ") + ":\n" + string(out))
	}
	pins, _ := os.ReadDir(c.sb.Env.NetnsDir)
	for _, p := range pins {
		b.WriteString("pin " + p.Name() + "\n")
	}
	for _, f := range stateFiles(c.t, c.sb.Env.StateDir) {
		b.WriteString("state " + f + "\n")
	}
	return b.String()
}

// TestSessionLeavesNothing runs a whole session through the command line: gateway, a bridge
// with guests, every partition kind, impairments, a --for, heal, teardown. Afterwards the
// host namespace's ruleset and links, the pinned namespaces and the state files are what they
// were before, and no pontoon process is left.
func TestSessionLeavesNothing(t *testing.T) {
	c := newCLI(t)
	before := c.hostSnapshot()
	c.ok("gateway", "up")
	c.ok("bridge", "create", "s", "--port", "8080:n1:80")
	for i := 1; i <= 5; i++ {
		c.ok("guest", "add", "s", fmt.Sprintf("n%d", i), "--ip", fmt.Sprintf("172.18.0.%d", i))
	}
	for _, args := range [][]string{
		{"isolate", "n1"}, {"disjoint", "n1", "n2", "--", "n3", "n4", "n5"}, {"split", "n1", "n2", "--", "n2", "n3"},
		{"block", "n1", "--", "n2"}, {"random-halves", "3"}, {"random-node", "3"}, {"bridge", "3"}, {"ring", "3"},
		{"loss", "5%", "n1"}, {"rate", "1mbit", "n2", "--", "n3"}, {"fullmesh"}, {"isolate", "n2", "--for", "200ms"},
	} {
		c.ok(append([]string{"partition", "--bridge", "s"}, args...)...)
	}
	c.ok("partition", "heal", "--bridge", "s")
	c.ok("guest", "del", "s", "n5")
	c.ok("bridge", "destroy", "s")
	c.ok("gateway", "down")
	if after := c.hostSnapshot(); after != before {
		t.Errorf("the session left something behind:\nbefore:\n%s\nafter:\n%s", before, after)
	}
	waitUntil(t, func() bool { return len(c.restorers()) == 0 })
}

// TestGuestAddedAgainStaysPartitioned reproduces a guest that is removed and added again
// (a container restarted by its engine): its new port was outside the partition, so the
// isolated guest reached the others again while status still said it was isolated.
func TestGuestAddedAgainStaysPartitioned(t *testing.T) {
	c := newCLI(t)
	c.ok("gateway", "up")
	c.ok("bridge", "create", "r")
	for i, g := range []string{"n1", "n2", "n3"} {
		c.ok("guest", "add", "r", g, "--ip", fmt.Sprintf("172.18.0.%d", i+1))
	}
	t.Cleanup(func() { c.ok("gateway", "down", "--force") })
	c.ok("partition", "isolate", "n1", "--bridge", "r")
	c.ok("guest", "del", "r", "n1")
	// While it is away, its pairs stay in the kernel and the record, and status says so
	// under its name, without a warning of a difference nobody made: it said "the kernel
	// blocks 4 pairs, the record 4", naming n1 by its address and its port.
	var away struct {
		Blocked []struct{ Src, Dst string }
		Kernel  struct {
			InEffect bool   `json:"in_effect"`
			Detail   string `json:"detail"`
		}
	}
	if err := json.Unmarshal([]byte(c.ok("partition", "status", "--json", "--bridge", "r")), &away); err != nil || len(away.Blocked) != 4 || !away.Kernel.InEffect {
		t.Errorf("status while n1 is away: %+v, %v", away, err)
	}
	for _, p := range away.Blocked {
		if p.Src != "n1" && p.Dst != "n1" {
			t.Errorf("status while n1 is away: pair %s -> %s does not name n1", p.Src, p.Dst)
		}
	}
	c.ok("guest", "add", "r", "n1", "--ip", "172.18.0.1")
	if _, _, code := c.run("exec", "r", "n1", "--", "ping", "-c1", "-W1", "172.18.0.2"); code == 0 {
		t.Error("n1, added again, reaches n2 across its isolation")
	}
	if _, _, code := c.run("exec", "r", "n2", "--", "ping", "-c1", "-W1", "172.18.0.3"); code != 0 {
		t.Error("n2 cannot reach n3")
	}
	var rec struct {
		Blocked []struct{ Src, Dst string }
		Kernel  struct {
			InEffect bool `json:"in_effect"`
		}
	}
	if err := json.Unmarshal([]byte(c.ok("partition", "status", "--json", "--bridge", "r")), &rec); err != nil || len(rec.Blocked) != 4 || !rec.Kernel.InEffect {
		t.Errorf("status after n1 came back: %+v, %v", rec, err)
	}
	// A guest that leaves for good takes its part of the partition along: the next change
	// does not trip over its name.
	c.ok("guest", "del", "r", "n1")
	c.ok("partition", "loss", "10%", "n2", "--bridge", "r")
}
