package userns

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// TestSpaceAliveNotZombie: a holder that was killed but not yet reaped (its parent, maybe an
// init that reaps late, has not waited for it) is no space: its namespaces are gone, and a
// command that tried to join them would fail instead of starting a new space.
func TestSpaceAliveNotZombie(t *testing.T) {
	cmd := exec.Command("sleep", "600")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Wait()
	st, err := startTime(cmd.Process.Pid)
	if err != nil {
		t.Fatal(err)
	}
	s := Space{PID: cmd.Process.Pid, Start: st}
	if !s.Alive() {
		t.Fatalf("a running holder (pid %d) is not alive", s.PID)
	}
	cmd.Process.Kill()
	deadline := time.Now().Add(10 * time.Second)
	for {
		b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/stat", s.PID))
		if f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:])); len(f) > 0 && f[0] == "Z" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("pid %d did not become a zombie: %s", s.PID, b)
		}
		time.Sleep(5 * time.Millisecond)
	}
	if s.Alive() {
		t.Errorf("a killed, unreaped holder (pid %d) counts as alive", s.PID)
	}
}

// TestSetupOnlyInNewUserns: the setup variables act only in a child that Command or Reexec
// made, in a user namespace of its own. A process of the initial user namespace -- the
// host's root running pontoon with an environment someone else left, `sudo -E` say -- must
// not cover host directories, make the host's mounts private or exec what they name. (Run
// in a mount namespace of its own, so that a failure changes nothing of the host.)
func TestSetupOnlyInNewUserns(t *testing.T) {
	if os.Geteuid() != 0 || Inside() {
		t.Skip("needs the host's root: the variables are harmless without privilege")
	}
	dir := t.TempDir()
	if err := os.WriteFile(dir+"/outside", nil, 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("unshare", "--mount", "--propagation", "private", os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), setupEnv+`={"Tmpfs":["`+dir+`"]}`, execEnv+`=["/bin/ls","-A","`+dir+`"]`)
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "PASS") || strings.Contains(string(out), "user namespace setup") {
		t.Errorf("with %s set in the initial user namespace: %v, output %q; want the program's own run (PASS), no setup and no exec", setupEnv, err, out)
	}
}
