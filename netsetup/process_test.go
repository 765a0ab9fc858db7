package netsetup_test

import (
	"os/exec"
	"testing"
	"time"

	"github.com/pontoon-dev/pontoon/netsetup"
)

// Running is true for a live process, false for one whose start time differs (its PID was
// reused) and for a zombie not yet reaped.
func TestProcessRunning(t *testing.T) {
	self := netsetup.Self()
	if !self.Running() {
		t.Fatalf("Running() of this process %+v = false", self)
	}
	if other := (netsetup.Process{PID: self.PID, Start: self.Start + 1}); other.Running() {
		t.Errorf("Running() of %+v, another start time than this process's, = true", other)
	}
	if (netsetup.Process{}).Running() {
		t.Error("Running() of the zero Process = true")
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
	// Unreaped until Cleanup: once it exits it stays a zombie, alive by its start time.
	deadline := time.Now().Add(10 * time.Second)
	for child.Running() {
		if time.Now().After(deadline) {
			t.Fatalf("child %d still Running() 10s after start; it only runs true", child.PID)
		}
		time.Sleep(time.Millisecond)
	}
	if !child.Alive() {
		t.Errorf("zombie child %d: Alive() = false, want true (only Running tells zombies apart)", child.PID)
	}
}
