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
