package nftpool

import (
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/google/nftables"
	"github.com/pontoon-dev/pontoon/internal/nftwire"
	"github.com/pontoon-dev/pontoon/internal/testkit"
	"github.com/pontoon-dev/pontoon/netsetup/ns"
	"golang.org/x/sys/unix"
)

// scratchNS pins a fresh network namespace for the test.
func scratchNS(t *testing.T) string {
	t.Helper()
	testkit.NeedRoot(t, "creates network namespaces")
	p := filepath.Join(t.TempDir(), "net")
	if err := ns.New(ns.Spec{Net: p}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { Release(); ns.Remove(p) })
	return p
}

// change commits a table with one chain (add) or removes that chain (remove).
func change(t *testing.T, nsPath string, remove bool) {
	t.Helper()
	err := With(nsPath, func(c *nftables.Conn) error {
		tbl := c.AddTable(&nftables.Table{Name: "scratch", Family: nftables.TableFamilyINet})
		ch := &nftables.Chain{Name: "c", Table: tbl}
		c.AddChain(ch)
		if remove {
			c.DelChain(ch)
		}
		return nftwire.Flush(c)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestLinger: a command that exits right after a change waited ~10 ms in its exit, for the
// kernel to free what the change replaced, because its nftables socket closed last there.
// Linger hands the socket to a child that holds it until the command is gone; a change that
// replaced nothing starts no child.
func TestLinger(t *testing.T) {
	p := scratchNS(t)
	Release() // what other tests of this process committed does not count
	change(t, p, false)
	if pid, _, err := startLinger(); pid != 0 || err != nil || Pending() {
		t.Fatalf("after a change that removed nothing: child %d, error %v, pending %v; want none", pid, err, Pending())
	}
	MarkRemoved()
	change(t, p, true)
	if !Pending() {
		t.Fatal("after a change that removed a chain: nothing pending")
	}
	pid, w, err := startLinger()
	if err != nil || pid == 0 {
		t.Fatalf("after a change that removed a chain: child %d, error %v; want a child", pid, err)
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
	own := socketInode(t, p)
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
	change(t, p, false)
	if socketInode(t, p) != own {
		t.Error("the change after the child's exit opened another socket")
	}

	// Release closes the sockets: nothing is left to hand over, whatever was removed.
	Release()
	if Pending() {
		t.Error("pending after Release")
	}
	// A change made by another process a moment ago may still be on the destroy list,
	// although this one only adds: its socket goes to a child too. An older one does not
	// count.
	NoteChange(time.Now().Add(-2 * recentChange))
	change(t, p, false)
	if Pending() {
		t.Error("pending after a change long ago")
	}
	NoteChange(time.Now())
	pid, w, err = startLinger()
	if err != nil || pid == 0 {
		t.Fatalf("after another process's change a moment ago: child %d, error %v; want a child", pid, err)
	}
	w.Close()
	if child, err = os.FindProcess(pid); err != nil {
		t.Fatal(err)
	}
	if st, err := child.Wait(); err != nil || !st.Success() {
		t.Fatalf("second child after its parent's end: %v, %v; want exit status 0", st, err)
	}
}

// socketInode returns the inode of the nftables socket the pool keeps open for the
// namespace at nsPath.
func socketInode(t *testing.T, nsPath string) uint64 {
	t.Helper()
	key, err := netnsKey(nsPath)
	if err != nil {
		t.Fatal(err)
	}
	pool.Lock()
	e := pool.m[key]
	pool.Unlock()
	if e == nil || e.conn == nil {
		t.Fatalf("no open nftables connection for %s", nsPath)
	}
	f := dupSocket(e.conn.File())
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
