package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestGCCollectsBridgesPastARunError reproduces `pontoon gc` on a host where a dead run
// cannot be collected (its record is unreadable) and a bridge's owner has died: gc used to
// stop at the run's error and collect no bridge. Now it collects the bridge, says so, and
// then reports the run's error with a failing status.
func TestGCCollectsBridgesPastARunError(t *testing.T) {
	c := newCLI(t)
	owner := exec.Command("sleep", "8640531")
	if err := owner.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { owner.Process.Kill(); owner.Wait() })
	c.ok("gateway", "up")
	t.Cleanup(func() { c.run("gateway", "down", "--force") })
	c.ok("bridge", "create", "b1", "--owner", strconv.Itoa(owner.Process.Pid))
	owner.Process.Kill()
	owner.Wait()

	run := filepath.Join(c.sb.Env.StateDir, "runs", "broken")
	if err := os.MkdirAll(run, 0o700); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(run) })
	if err := os.WriteFile(filepath.Join(run, "run.json"), []byte("{not json"), 0o600); err != nil {
		t.Fatal(err)
	}

	out, errOut, code := c.run("gc")
	if code == 0 || !strings.Contains(errOut, "bad record") {
		t.Errorf("gc with an unreadable run: exit %d, stderr %q; want a failure naming the bad record", code, errOut)
	}
	if !strings.Contains(out, "removed bridge b1") {
		t.Errorf("gc with an unreadable run printed %q; want it to have removed the dead owner's bridge b1", out)
	}
	if list := c.ok("bridge", "list"); strings.Contains(list, "b1") {
		t.Errorf("after gc, bridge list still shows b1:\n%s", list)
	}
}

// TestGCAfterBridgeDestroyCommand: `pontoon gc` right after `pontoon bridge destroy` finds
// nothing to collect. The bridge's uplink goes with its namespace once the kernel has
// removed it, after the destroy has returned; gc reported it as an orphan it removed.
func TestGCAfterBridgeDestroyCommand(t *testing.T) {
	c := newCLI(t)
	c.ok("gateway", "up")
	t.Cleanup(func() { c.run("gateway", "down", "--force") })
	for i := range 4 {
		name := "d" + strconv.Itoa(i)
		c.ok("bridge", "create", name)
		c.ok("guest", "add", name, "a", "--ip", "172.18.0.1")
		c.ok("bridge", "destroy", name)
		if out := c.ok("gc"); strings.TrimSpace(out) != "nothing to collect" {
			t.Errorf("gc right after destroying %s printed %q; want nothing to collect", name, out)
		}
	}
}

// TestPartitionWithAnotherNetnsDir: a partition command pointed at another namespace
// directory than the bridge was made with says so, instead of status reporting that the
// kernel does not hold what was applied, and changes nothing.
func TestPartitionWithAnotherNetnsDir(t *testing.T) {
	c := newCLI(t)
	c.bridgeOf("b1", "n1", "n2")
	other := t.TempDir()
	for _, args := range [][]string{{"status"}, {"isolate", "n1"}} {
		c.fails(1, "is not there: was the bridge made with another --netns-dir", append([]string{"--netns-dir", other, "partition", "--bridge", "b1"}, args...)...)
	}
	if out := c.ok("partition", "--bridge", "b1", "status"); !strings.Contains(out, "fullmesh") || strings.Contains(out, "WARNING") {
		t.Errorf("status with the bridge's own directory:\n%s", out)
	}
}
