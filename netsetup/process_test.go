package netsetup_test

import (
	"os/exec"
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
