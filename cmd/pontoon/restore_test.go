package main

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/pontoon-dev/pontoon/partition"
)

// TestSleepWhileExists: a restorer's wait ends without restoring when its bridge's
// directory goes, or is replaced by a later bridge's, and restores at its deadline otherwise.
func TestSleepWhileExists(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "b1")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	id, err := dirID(dir)
	if err != nil {
		t.Fatal(err)
	}
	// The --for's log, open in the directory while the restorer runs, as it is its stderr:
	// the removed directory's inode number cannot come back meanwhile.
	pin := func() {
		f, err := os.Create(filepath.Join(dir, "restore.log"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { f.Close() })
	}
	pin()
	if !sleepWhileExists(dir, id, time.Now().Add(restorerCheck/2)) {
		t.Errorf("the directory is still there: the restorer must restore at its deadline")
	}
	wait := func(what string, change func()) {
		t.Helper()
		done := make(chan bool, 1)
		go func() { done <- sleepWhileExists(dir, id, time.Now().Add(time.Hour)) }()
		change()
		select {
		case restore := <-done:
			if restore {
				t.Errorf("%s: the restorer would restore", what)
			}
		case <-time.After(time.Minute):
			t.Fatalf("%s: still waiting for its hour", what)
		}
	}
	// Replaced: destroyed and created again under the same name.
	wait("replaced", func() {
		if err := os.RemoveAll(dir); err != nil {
			t.Fatal(err)
		}
		if err := os.Mkdir(dir, 0o700); err != nil {
			t.Fatal(err)
		}
	})
	// Replaced before the restorer first looked.
	if sleepWhileExists(dir, id, time.Now().Add(time.Hour)) {
		t.Errorf("a directory made after the --for began was taken for its bridge's")
	}
	// Gone.
	id, _ = dirID(dir)
	pin()
	wait("gone", func() {
		if err := os.RemoveAll(dir); err != nil {
			t.Fatal(err)
		}
	})
}

// TestForCtrlCAsSoonAsInForce: a Ctrl-C that comes as soon as a --for's change is written,
// before the command starts waiting, restores it once it is in: the command used to die of
// it there, leaving the change to its restorer, an hour later.
func TestForCtrlCAsSoonAsInForce(t *testing.T) {
	c := newCLI(t)
	c.bridgeOf("q", "n1", "n2")
	tg, err := partition.ForBridge(c.sb.Env, "q")
	if err != nil {
		t.Fatal(err)
	}
	record := filepath.Join(tg.StateDir, partition.StateFile)
	for round := range 5 {
		c.ok("partition", "heal", "--bridge", "q")
		healed, _ := os.ReadFile(record)
		cmd := c.command("partition", "isolate", "n1", "--for", "1h", "--bridge", "q")
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(100 * time.Microsecond) {
			if b, err := os.ReadFile(record); err == nil && !bytes.Equal(b, healed) {
				break
			}
			if time.Now().After(deadline) {
				cmd.Process.Kill()
				cmd.Wait()
				t.Fatal("the --for's change was never written")
			}
		}
		if err := cmd.Process.Signal(os.Interrupt); err != nil {
			t.Fatal(err)
		}
		if err := cmd.Wait(); err != nil {
			t.Fatalf("round %d: isolate --for 1h after a Ctrl-C as soon as its change was written: %v", round, err)
		}
		if rec, err := partition.Status(tg); err != nil || len(rec.Blocked) != 0 {
			t.Fatalf("round %d: after the Ctrl-C: %d pairs blocked (%v); want the partition lifted", round, len(rec.Blocked), err)
		}
	}
	waitUntil(t, func() bool { return len(c.restorers()) == 0 })
}
