package main

import (
	"os"
	"path/filepath"
	"testing"
	"time"
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
