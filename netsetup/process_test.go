package netsetup_test

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/pontoon-dev/pontoon/netsetup"
)

// Alive is true for a live process, false for one whose start time differs (its PID was
// reused) and for a zombie not yet reaped: gc took a `guest add` killed a moment before, not
// yet reaped by its shell, for alive, and said "nothing to collect".
func TestProcessAlive(t *testing.T) {
	self := netsetup.Self()
	if !self.Alive() {
		t.Fatalf("Alive() of this process %+v = false", self)
	}
	if other := (netsetup.Process{PID: self.PID, Start: self.Start + 1}); other.Alive() {
		t.Errorf("Alive() of %+v, another start time than this process's, = true", other)
	}
	if (netsetup.Process{}).Alive() {
		t.Error("Alive() of the zero Process = true")
	}
	cmd := exec.Command("true")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Wait() })
	child, err := netsetup.ProcessOf(cmd.Process.Pid)
	if err != nil {
		t.Fatal(err)
	}
	// Unreaped until Cleanup: once it exits it stays a zombie, with its pid and start time.
	deadline := time.Now().Add(10 * time.Second)
	for child.Alive() {
		if time.Now().After(deadline) {
			t.Fatalf("child %d still Alive() 10s after start; it only runs true", child.PID)
		}
		time.Sleep(time.Millisecond)
	}
	if q, err := netsetup.ProcessOf(child.PID); err != nil || q != child {
		t.Errorf("zombie child %d: ProcessOf = %+v, %v; want it still there, unreaped, when Alive says false", child.PID, q, err)
	}
}

// TestProcessAliveFromAnotherPIDNamespace: a process recorded from the host's pid namespace
// counts as alive where its pid cannot be looked up, in a pid namespace of its own with its
// own /proc (a bridge child's container): there every guest a container hook attached used
// to count as exited, and partition status --check failed. A dead one still counts as dead
// where it was recorded.
func TestProcessAliveFromAnotherPIDNamespace(t *testing.T) {
	if os.Getenv("PONTOON_TEST_PROCESS") != "" {
		return // the helper run below
	}
	self, dead := netsetup.Self(), deadProcess(t)
	if dead.Alive() || !dead.Visible() {
		t.Fatal("a dead process counts as alive, or not visible, where it was recorded")
	}
	for _, p := range []netsetup.Process{self, dead} {
		rec, _ := json.Marshal(p)
		cmd := exec.Command("unshare", "--pid", "--fork", "--mount-proc", os.Args[0], "-test.run=^TestProcessAliveHelper$")
		cmd.Env = append(os.Environ(), "PONTOON_TEST_PROCESS="+string(rec))
		if out, err := cmd.CombinedOutput(); err != nil || !strings.Contains(string(out), "alive=true visible=false") {
			t.Errorf("process %+v from another pid namespace: %v\n%s", p, err, out)
		}
	}
}

// TestProcessAliveHelper prints whether the process in PONTOON_TEST_PROCESS counts as alive.
func TestProcessAliveHelper(t *testing.T) {
	rec := os.Getenv("PONTOON_TEST_PROCESS")
	if rec == "" {
		t.Skip("run by TestProcessAliveFromAnotherPIDNamespace")
	}
	var p netsetup.Process
	if err := json.Unmarshal([]byte(rec), &p); err != nil {
		t.Fatal(err)
	}
	fmt.Printf("alive=%t visible=%t\n", p.Alive(), p.Visible())
}
