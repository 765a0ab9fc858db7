package partition

import (
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

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
	if pid, _, err := startLinger(); pid != 0 || err != nil {
		t.Fatalf("after a change that replaced nothing: child %d, error %v; want neither", pid, err)
	}
	// The next change replaces the rules and set elements of the first.
	if err := Apply(tgt, State{Partition: mustIsolate(t, tgt.Guests, "b")}); err != nil {
		t.Fatal(err)
	}
	pid, w, err := startLinger()
	if err != nil || pid == 0 {
		t.Fatalf("after a change that replaced rules: child %d, error %v; want a child", pid, err)
	}
	child, err := os.FindProcess(pid)
	if err != nil {
		t.Fatal(err)
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
	// Nothing else: a child holding this process's standard output would keep whoever reads
	// it (`out=$(pontoon partition ...)`) waiting for it.
	deadline := time.Now().Add(5 * time.Second)
	for {
		fds := openFds(t, child.Pid)
		if len(fds) == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("child %d holds %v; want only its pipe and the socket", child.Pid, fds)
		}
		time.Sleep(time.Millisecond)
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

	// A change right after another one (a heal, which removed the table) starts a child
	// although it only adds: its exit would wait for the kernel to destroy what the heal
	// removed.
	if err := Heal(tgt); err != nil {
		t.Fatal(err)
	}
	removed.Store(false)
	if err := Apply(tgt, State{Partition: mustIsolate(t, tgt.Guests, "a")}); err != nil {
		t.Fatal(err)
	}
	pid, w, err = startLinger()
	if err != nil || pid == 0 {
		t.Fatalf("after a change that followed a heal at once: child %d, error %v; want a child", pid, err)
	}
	w.Close()
	if child, err = os.FindProcess(pid); err != nil {
		t.Fatal(err)
	}
	if st, err := child.Wait(); err != nil || !st.Success() {
		t.Fatalf("second child after its parent's end: %v, %v; want exit status 0", st, err)
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

// openFds returns what the descriptors of process pid refer to.
func openFds(t *testing.T, pid int) []string {
	t.Helper()
	fds, err := filepath.Glob(fmt.Sprintf("/proc/%d/fd/*", pid))
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, fd := range fds {
		if l, err := os.Readlink(fd); err == nil {
			out = append(out, filepath.Base(fd)+" -> "+l)
		}
	}
	return out
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

func dupSocket(c syscall.Conn) *os.File {
	rc, err := c.SyscallConn()
	if err != nil {
		return nil
	}
	var f *os.File
	_ = rc.Control(func(fd uintptr) {
		if nfd, err := unix.FcntlInt(fd, unix.F_DUPFD_CLOEXEC, 0); err == nil {
			f = os.NewFile(uintptr(nfd), "nftables")
		}
	})
	return f
}
