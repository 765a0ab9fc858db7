package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestPartitionLogBeforeAnyChange: the log of a bridge that had no partition change yet was
// refused as the log of a bridge that does not exist. It is empty, and --follow waits for
// the first change.
func TestPartitionLogBeforeAnyChange(t *testing.T) {
	c := newCLI(t)
	c.bridgeOf("b1", "n1", "n2")
	if out := c.ok("partition", "--bridge", "b1", "log"); out != "" {
		t.Errorf("log before any change printed %q; want nothing", out)
	}
	follow := c.command("partition", "--bridge", "b1", "log", "--follow")
	stdout, err := follow.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := follow.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { follow.Process.Kill(); follow.Wait() })
	printed := make(chan string)
	go func() {
		defer close(printed)
		for lines := bufio.NewScanner(stdout); lines.Scan(); {
			printed <- lines.Text()
		}
	}()
	c.ok("partition", "isolate", "n1", "--bridge", "b1")
	select {
	case line, ok := <-printed:
		if !ok || !strings.Contains(line, "isolate n1") {
			t.Errorf("log --follow printed %q (still running: %t); want the isolate", line, ok)
		}
	case <-time.After(10 * time.Second):
		t.Error("log --follow printed nothing within 10s of the first change")
	}
	follow.Process.Signal(syscall.SIGINT)
	c.fails(1, `bridge "nope" does not exist`, "partition", "--bridge", "nope", "log")
}

// TestPartitionLogFollowEndsWithItsBridge: a follower of a bridge destroyed right after a
// change prints that change, says the bridge was destroyed and ends (exit 0). It used to miss
// the change when the destroy came before its next look at the log, then wait for ever, and
// print a new bridge's events under the old one's name.
func TestPartitionLogFollowEndsWithItsBridge(t *testing.T) {
	c := newCLI(t)
	// Of a bridge that does not exist, on a host with no state: refused, and nothing made.
	before, _ := os.ReadDir(c.sb.Env.StateDir)
	c.fails(1, `bridge "nope" does not exist`, "partition", "--bridge", "nope", "log", "--follow")
	if after, _ := os.ReadDir(c.sb.Env.StateDir); len(after) != len(before) {
		t.Errorf("log --follow of no bridge left %v in the state directory (was %v)", after, before)
	}
	c.bridgeOf("b1", "n1", "n2")
	follow := c.command("partition", "--bridge", "b1", "log", "--follow")
	var out, errOut bytes.Buffer
	follow.Stdout, follow.Stderr = &out, &errOut
	if err := follow.Start(); err != nil {
		t.Fatal(err)
	}
	ended := make(chan error, 1)
	go func() { ended <- follow.Wait() }()
	t.Cleanup(func() { follow.Process.Kill() })
	logPath := filepath.Join(c.sb.Env.BridgeDataDir("b1"), "events.jsonl")
	waitFor(t, 10*time.Second, "the follower to hold the log open", func() bool {
		fds, _ := os.ReadDir(fmt.Sprintf("/proc/%d/fd", follow.Process.Pid))
		for _, fd := range fds {
			if l, _ := os.Readlink(fmt.Sprintf("/proc/%d/fd/%s", follow.Process.Pid, fd.Name())); l == logPath {
				return true
			}
		}
		return false
	})
	c.ok("partition", "isolate", "n1", "--bridge", "b1")
	c.ok("bridge", "destroy", "b1")
	c.bridgeOf("b1", "n1", "n2")
	c.ok("partition", "isolate", "n2", "--bridge", "b1")
	select {
	case err := <-ended:
		if err != nil {
			t.Errorf("log --follow ended with %v; want exit 0\n%s", err, errOut.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("log --follow still runs 10s after its bridge was destroyed")
	}
	if !strings.Contains(out.String(), "isolate n1") || strings.Contains(out.String(), "isolate n2") {
		t.Errorf("log --follow printed %q; want the destroyed bridge's isolate n1 and nothing of the new bridge", out.String())
	}
	if !strings.Contains(errOut.String(), "bridge b1 was destroyed: its log ends here") {
		t.Errorf("log --follow said %q", errOut.String())
	}
}

// TestRejoinLoggedAsTheCommandLine: the partition applied again for a guest that comes back
// through `guest add` is logged as the command line's doing, not a library's.
func TestRejoinLoggedAsTheCommandLine(t *testing.T) {
	c := newCLI(t)
	c.bridgeOf("b1", "n1", "n2")
	c.ok("partition", "isolate", "n1", "--bridge", "b1")
	c.ok("guest", "del", "b1", "n1")
	c.ok("guest", "add", "b1", "n1", "--ip", "172.18.0.1")
	lines := strings.Split(strings.TrimSpace(c.ok("partition", "log", "--json", "--bridge", "b1")), "\n")
	if last := lines[len(lines)-1]; !strings.Contains(last, `"kind":"refresh"`) || !strings.Contains(last, `"source":"cli"`) {
		t.Errorf("the last event after n1 came back: %s; want a refresh by cli", last)
	}
}

// TestArrivalKeepsADepartedGuestsPartition reproduces containers restarting in another order
// than they stopped: n2 is isolated, n1 and n3 lose what goes between them; n2 and n3 stop,
// n1 restarts and n4 joins, then n2 and n3 start again. Each arrival refreshed the partition
// for the guests there were, dropping the pairs and the loss of those away, so n2 came back
// reaching everyone while status said fullmesh. An arrival is no change: n2 keeps its pairs,
// as the README promises, and n3 its loss.
func TestArrivalKeepsADepartedGuestsPartition(t *testing.T) {
	c := newCLI(t)
	c.bridgeOf("b1", "n1", "n2", "n3")
	reaches := func(from, to string) bool {
		_, _, code := c.run("exec", "b1", from, "--", "ping", "-c", "1", "-W", "1", to)
		return code == 0
	}
	c.ok("partition", "isolate", "n2", "--bridge", "b1")
	c.ok("partition", "loss", "100", "n1", "--", "n3", "--bridge", "b1")
	// n2 and n3 stop; n1 restarts and n4 joins while they are away; then they start again.
	c.ok("guest", "del", "b1", "n2")
	c.ok("guest", "del", "b1", "n3")
	c.ok("guest", "del", "b1", "n1")
	c.ok("guest", "add", "b1", "n1", "--ip", "172.18.0.1")
	c.ok("guest", "add", "b1", "n4", "--ip", "172.18.0.4")
	c.ok("guest", "add", "b1", "n2", "--ip", "172.18.0.2")
	c.ok("guest", "add", "b1", "n3", "--ip", "172.18.0.3")
	for _, p := range [][2]string{{"n2", "172.18.0.1"}, {"n1", "172.18.0.2"}, {"n3", "172.18.0.2"}, {"n1", "172.18.0.3"}} {
		if reaches(p[0], p[1]) {
			t.Errorf("%s reaches %s after the guests came back", p[0], p[1])
		}
	}
	// n4 joined after both: no pair of the partition or the loss names it.
	for _, to := range []string{"172.18.0.1", "172.18.0.2", "172.18.0.3"} {
		if !reaches("n4", to) {
			t.Errorf("n4 does not reach %s: the test proves nothing", to)
		}
	}
	var st struct {
		Kind        string            `json:"kind"`
		Blocked     []json.RawMessage `json:"blocked"`
		Impairments []json.RawMessage `json:"impairments"`
	}
	if err := json.Unmarshal([]byte(c.ok("partition", "status", "--json", "--check", "--bridge", "b1")), &st); err != nil {
		t.Fatal(err)
	}
	if st.Kind != "isolate" || len(st.Blocked) != 4 || len(st.Impairments) != 1 {
		t.Errorf("status: %s with %d blocked pairs and %d impairments; want isolate, n2's 4 pairs and the loss", st.Kind, len(st.Blocked), len(st.Impairments))
	}
}

// TestArrivalWithAShapedGuestAway: a guest with a rate of its own, and one a pair's rate
// goes to, leave; other guests arrive, and a service loses them as members. Each refresh
// tried to shape the departed guests' gone port and namespace and failed, refusing every
// arrival. Now they arrive, the rates stay in the record, and a guest back is shaped again.
func TestArrivalWithAShapedGuestAway(t *testing.T) {
	c := newCLI(t)
	c.bridgeOf("b1", "n1", "n2", "n3")
	c.ok("service", "add", "b1", "web", "--members", "n2,n3")
	c.ok("partition", "isolate", "n1", "--bridge", "b1")
	if _, errOut, code := c.run("partition", "rate", "1mbit", "n2", "--bridge", "b1"); code != 0 {
		if strings.Contains(errOut, "not support") || strings.Contains(errOut, "kernel") {
			t.Skipf("rate: %s", errOut)
		}
		t.Fatalf("rate: exit %d\n%s", code, errOut)
	}
	c.ok("partition", "rate", "2mbit", "n1", "--", "n3", "--bridge", "b1")
	c.ok("guest", "del", "b1", "n2")
	c.ok("guest", "del", "b1", "n3")
	c.ok("guest", "add", "b1", "n4", "--ip", "172.18.0.4")
	c.ok("guest", "add", "b1", "n2", "--ip", "172.18.0.2")
	var st struct {
		Blocked     []json.RawMessage `json:"blocked"`
		Impairments []struct {
			Guest string `json:"guest"`
			Src   string `json:"src"`
			Dst   string `json:"dst"`
		} `json:"impairments"`
	}
	if err := json.Unmarshal([]byte(c.ok("partition", "status", "--json", "--check", "--bridge", "b1")), &st); err != nil {
		t.Fatal(err)
	}
	if len(st.Impairments) != 2 || len(st.Blocked) != 4 {
		t.Errorf("status after the arrivals: %d impairments, %d blocked pairs; want n2's and n1->n3's rates, and n1's 4 pairs", len(st.Impairments), len(st.Blocked))
	}
	// n2 is back: its own rate shapes its eth0 again.
	out, _, _ := c.run("exec", "b1", "n2", "--", "tc", "qdisc", "show", "dev", "eth0")
	if !strings.Contains(out, "htb") && !strings.Contains(out, "tbf") {
		t.Errorf("n2's eth0 after it came back is not shaped:\n%s", out)
	}
}

// TestStatusNamesADepartedGuest: the pairs of a guest that left are listed under its name,
// as the README says; one whose column class it shared with others was "port g1 (invalid
// IP)".
func TestStatusNamesADepartedGuest(t *testing.T) {
	c := newCLI(t)
	c.bridgeOf("b1", "n1", "n2", "n3")
	c.ok("partition", "isolate", "n2", "--bridge", "b1")
	c.ok("guest", "del", "b1", "n1")
	out := c.ok("partition", "status", "--check", "--bridge", "b1")
	if strings.Contains(out, "port g") || strings.Contains(out, "invalid IP") || !strings.Contains(out, "n1") {
		t.Errorf("status with n1 away:\n%s", out)
	}
}
