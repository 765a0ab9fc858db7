package sandbox

import (
	"os"
	"testing"

	"github.com/pontoon-dev/pontoon/internal/testkit"
	"golang.org/x/sys/unix"
)

// ForTest creates a sandbox under dir (a fresh tb.TempDir() when dir is empty) that is
// closed when the test ends, also when it fails. It skips the test when not run as root.
func ForTest(tb testing.TB, dir string) *Sandbox {
	tb.Helper()
	testkit.NeedRoot(tb, "creates network namespaces")
	if dir == "" {
		dir = tb.TempDir()
	}
	s, err := New(dir)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		if err := s.Close(); err != nil {
			tb.Errorf("sandbox cleanup: %v", err)
		}
	})
	return s
}

// TmpfsDir returns a fresh directory on tmpfs (/dev/shm), removed when the test ends, or
// tb.TempDir() where /dev/shm is not tmpfs. pontoon keeps its state under /run, which is
// tmpfs on a standard system; benchmarks place their sandbox here so that state writes cost
// what they cost there rather than what a disk file system charges for write-and-rename.
func TmpfsDir(tb testing.TB) string {
	tb.Helper()
	var st unix.Statfs_t
	if unix.Statfs("/dev/shm", &st) != nil || st.Type != unix.TMPFS_MAGIC {
		return tb.TempDir()
	}
	dir, err := os.MkdirTemp("/dev/shm", "pontoon-test-")
	if err != nil {
		return tb.TempDir()
	}
	tb.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}
