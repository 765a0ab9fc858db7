package partition

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
)

// TestLinger: a command that exits right after a change waited ~10 ms in its exit, for the
// kernel to free what the change replaced, because its nftables socket closed last there.
// Linger hands the socket to a child that holds it until the command is gone; a change that
// replaced nothing starts no child.
func TestLinger(t *testing.T) {
	s := newScene(t, 3, false)
	tgt := s.target()
	t.Cleanup(Release)
	removed.Store(false) // what other tests of this process committed does not count
	// A fresh table: the change adds, and replaces nothing.
	if err := Apply(tgt, State{Partition: mustIsolate(t, tgt.Guests, "a")}); err != nil {
		t.Fatal(err)
	}
	if child, _, err := startLinger(); child != nil || err != nil {
		t.Fatalf("after a change that replaced nothing: child %v, error %v; want neither", child, err)
	}
	// The next change replaces the rules and set elements of the first.
	if err := Apply(tgt, State{Partition: mustIsolate(t, tgt.Guests, "b")}); err != nil {
		t.Fatal(err)
	}
	child, w, err := startLinger()
	if err != nil || child == nil {
		t.Fatalf("after a change that replaced rules: child %v, error %v; want a child", child, err)
	}
	exited := false
	t.Cleanup(func() {
		if !exited {
			w.Close()
			_, _ = child.Wait()
		}
	})
	own := socketInode(t, tgt.NetnsPath)
	if !holdsSocket(t, child.Pid, own) {
		t.Fatalf("child %d does not hold this process's nftables socket (inode %d)", child.Pid, own)
	}
	// This process going away: the only writer of the child's stdin closes.
	w.Close()
	st, err := child.Wait()
	exited = true
	if err != nil || !st.Success() {
		t.Fatalf("child after its parent's end: %v, %v; want exit status 0", st, err)
	}
	// The socket is still this process's: the next change uses it.
	if err := Apply(tgt, State{Partition: mustIsolate(t, tgt.Guests, "c")}); err != nil {
		t.Fatalf("change after the child's exit: %v", err)
	}
}

// socketInode returns the inode of the nftables socket partition keeps open for the
// namespace at nsPath.
func socketInode(t *testing.T, nsPath string) uint64 {
	t.Helper()
	key, err := netnsKey(nsPath)
	if err != nil {
		t.Fatal(err)
	}
	nftPool.Lock()
	e := nftPool.m[key]
	nftPool.Unlock()
	if e == nil || e.raw == nil {
		t.Fatalf("no open nftables connection for %s", nsPath)
	}
	f := dupSocket(e.raw)
	if f == nil {
		t.Fatal("duplicate the nftables socket: failed")
	}
	defer f.Close()
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		t.Fatal(err)
	}
	return st.Ino
}

// holdsSocket reports whether process pid has the socket with inode ino open.
func holdsSocket(t *testing.T, pid int, ino uint64) bool {
	t.Helper()
	fds, err := filepath.Glob(fmt.Sprintf("/proc/%d/fd/*", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, fd := range fds {
		if l, err := os.Readlink(fd); err == nil && l == fmt.Sprintf("socket:[%d]", ino) {
			return true
		}
	}
	return false
}
