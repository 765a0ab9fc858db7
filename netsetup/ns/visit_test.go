package ns

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pontoon-dev/pontoon/internal/testkit"
	"golang.org/x/sys/unix"
)

func nsInode(t *testing.T, path string) uint64 {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		t.Fatal(err)
	}
	return st.Ino
}

// threadsIn lists the process's threads in the network namespace with inode ino.
func threadsIn(t *testing.T, ino uint64) []string {
	t.Helper()
	tasks, err := os.ReadDir("/proc/self/task")
	if err != nil {
		t.Fatal(err)
	}
	var in []string
	for _, task := range tasks {
		var st unix.Stat_t
		if unix.Stat(fmt.Sprintf("/proc/self/task/%s/ns/net", task.Name()), &st) == nil && st.Ino == ino {
			in = append(in, task.Name())
		}
	}
	return in
}

// Visit runs fn in the namespace it names, and no thread of the process stays there
// afterwards: the thread that visited came back before the runtime could reuse it.
func TestVisitComesBack(t *testing.T) {
	testkit.NeedRoot(t, "creates a network namespace")
	dir := t.TempDir()
	path := filepath.Join(dir, "visited")
	// Made by another process: a thread of this one that made it (New's) could stay in it
	// (the runtime keeps the main thread rather than end it).
	if err := os.WriteFile(path, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("unshare", "--net="+path, "true").CombinedOutput(); err != nil {
		t.Fatalf("unshare --net=%s: %v: %s", path, err, out)
	}
	t.Cleanup(func() { Remove(path) })
	visited := nsInode(t, path)
	for i := 0; i < 20; i++ {
		var inside uint64
		if err := Visit(path, func() error {
			inside = nsInode(t, "/proc/thread-self/ns/net")
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		if inside != visited {
			t.Fatalf("fn ran in namespace %d, not in the visited one (%d)", inside, visited)
		}
	}
	if in := threadsIn(t, visited); len(in) > 0 {
		t.Errorf("threads %v are still in the visited namespace", in)
	}

	// fn's error comes back as it is; a namespace that cannot be entered is an error too.
	boom := errors.New("boom")
	if err := Visit(path, func() error { return boom }); !errors.Is(err, boom) {
		t.Errorf("Visit returned %v, want fn's error", err)
	}
	if err := Visit(filepath.Join(dir, "missing"), func() error { return nil }); err == nil || !strings.Contains(err.Error(), "missing") {
		t.Errorf("Visit of a missing namespace returned %v", err)
	}
	if err := Visit(path, func() error { panic("in fn") }); err == nil || !strings.Contains(err.Error(), "panic") {
		t.Errorf("Visit with a panicking fn returned %v", err)
	}
}

// A pin's empty file left behind without its namespace (a process killed between unpinning
// and removing it, a reboot with the directory on disk) does not block a new pin there,
// while a live pin does.
func TestNewOverStalePin(t *testing.T) {
	testkit.NeedRoot(t, "creates a network namespace")
	path := filepath.Join(t.TempDir(), "pin")
	if err := os.WriteFile(path, nil, 0o444); err != nil {
		t.Fatal(err)
	}
	if err := New(Spec{Net: path}); err != nil {
		t.Fatalf("New over a stale pin file: %v", err)
	}
	t.Cleanup(func() { Remove(path) })
	if !IsPinned(path) {
		t.Fatal("the namespace is not pinned")
	}
	first := nsInode(t, path)
	if err := New(Spec{Net: path}); err == nil || !errors.Is(err, os.ErrExist) {
		t.Fatalf("New over a live pin: %v, want it refused (file exists)", err)
	}
	if !IsPinned(path) || nsInode(t, path) != first {
		t.Error("the refused New changed the live pin")
	}
}
