package main

import (
	"bufio"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pontoon-dev/pontoon/eventlog"
	"github.com/pontoon-dev/pontoon/names"
)

// dnsEvents returns the DNS fault events of `partition log --json` as "source: what".
func (c *runner) dnsEvents(bridge string) []string {
	c.t.Helper()
	var out []string
	lines := bufio.NewScanner(strings.NewReader(c.ok("partition", "log", "--json", "--bridge", bridge)))
	for lines.Scan() {
		var e eventlog.Event
		if err := json.Unmarshal(lines.Bytes(), &e); err != nil {
			c.t.Fatalf("log --json line %q: %v", lines.Text(), err)
		}
		if e.Kind == names.EventDNS {
			out = append(out, e.Source+": "+e.What)
		}
	}
	return out
}

// dbBridge brings the gateway up with bridge b1 and its guest n1, named db too.
func (c *runner) dbBridge() {
	c.t.Helper()
	c.ok("gateway", "up")
	c.t.Cleanup(func() { c.run("gateway", "down", "--force") })
	c.ok("bridge", "create", "b1")
	c.ok("guest", "add", "b1", "n1", "--ip", "172.18.0.1", "--alias", "db")
}

// Every DNS fault change the CLI makes is in the bridge's event log, in the user's words,
// with who asked: added from the host and from a bridge child, cleared by heal, ended by
// --for's expiry and by Ctrl-C before it.
func TestDNSFaultsAreLogged(t *testing.T) {
	c := newCLI(t)
	c.dbBridge()
	c.ok("guest", "add", "b1", "n2", "--ip", "172.18.0.2")

	c.ok("partition", "dns", "nxdomain", "--name", "db", "--from", "172.18.0.2", "--bridge", "b1")
	child := c.command("partition", "dns", "wrong", "10.9.9.9", "--bridge", "b1")
	child.Env = append(child.Env, "PONTOON_BRIDGE=b1")
	if out, err := child.CombinedOutput(); err != nil {
		t.Fatalf("partition dns in a bridge child: %v\n%s", err, out)
	}
	c.ok("partition", "heal", "--bridge", "b1")
	c.ok("partition", "heal", "--bridge", "b1") // nothing left to clear: no event
	c.ok("partition", "dns", "drop", "--name", "db", "--for", "300ms", "--bridge", "b1")

	long := c.command("partition", "dns", "delay", "2s", "--name", "db", "--for", "1h", "--bridge", "b1")
	if err := long.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { long.Process.Kill(); long.Wait() })
	// Ctrl-C as soon as the fault is in force: before the command waits for it, which it must
	// still take for a Ctrl-C (clearing the fault), not die of it.
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(200 * time.Microsecond) {
		if f, err := names.Faults(c.sb.Env, "b1"); err == nil && len(f) == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the --for 1h fault never came into force")
		}
	}
	if err := long.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	if err := long.Wait(); err != nil {
		t.Fatalf("partition dns --for 1h after Ctrl-C: %v", err)
	}

	want := []string{
		"cli: dns nxdomain --name db --from n2",
		"child: dns wrong 10.9.9.9",
		"cli: dns clear",
		"cli: dns drop --name db",
		"cli: expire dns drop --name db",
		"cli: dns delay 2s --name db",
		"cli: dns remove delay 2s --name db",
	}
	if got := c.dnsEvents("b1"); !slices.Equal(got, want) {
		t.Errorf("DNS events in the log:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// TestKilledDNSForEndsInTheLog: a DNS fault whose --for is killed stops applying at its
// deadline, and the bridge's name server then drops it from the record and logs its end
// once. It used to stay in the record, its end never logged, until another DNS change.
func TestKilledDNSForEndsInTheLog(t *testing.T) {
	c := newCLI(t)
	c.dbBridge()
	short := c.command("partition", "dns", "servfail", "--name", "db", "--for", "1s", "--bridge", "b1")
	if err := short.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { short.Process.Kill(); short.Wait() })
	waitFor(t, 10*time.Second, "the --for 1s fault to come into force", func() bool {
		f, err := names.Faults(c.sb.Env, "b1")
		return err == nil && len(f) == 1
	})
	short.Process.Kill()
	short.Wait()
	want := []string{"cli: dns servfail --name db", "names: expire dns servfail --name db"}
	waitFor(t, 10*time.Second, "the name server to log the end of the killed --for's fault", func() bool {
		return slices.Equal(c.dnsEvents("b1"), want)
	})
	data, err := os.ReadFile(filepath.Join(c.sb.Env.BridgeDataDir("b1"), "dns-faults.json"))
	if err != nil || strings.Contains(string(data), "servfail") {
		t.Errorf("the faults' record after the deadline: %s, %v", data, err)
	}
	// A later change logs nothing more of it.
	c.ok("partition", "heal", "--bridge", "b1")
	if got := c.dnsEvents("b1"); !slices.Equal(got, want) {
		t.Errorf("DNS events after a heal:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}
