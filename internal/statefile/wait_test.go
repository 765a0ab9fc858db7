package statefile

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestLockWaitNamesTheHolder: a lock held by another open file is waited for, and after a
// while the wait is told with the holder's pid; a lock had at once tells nothing.
func TestLockWaitNamesTheHolder(t *testing.T) {
	path := filepath.Join(t.TempDir(), "lock")
	noticed := make(chan []int, 2)
	OnWait, WaitNoticeAfter = func(p string, holders []int) {
		if p != path {
			t.Errorf("told of %s, want %s", p, path)
		}
		noticed <- holders
	}, 50*time.Millisecond
	t.Cleanup(func() { OnWait, WaitNoticeAfter = nil, time.Second })

	unlock, err := Lock(path)
	if err != nil {
		t.Fatal(err)
	}
	unlock()
	select {
	case h := <-noticed:
		t.Fatalf("a free lock was told as waited for (holders %v)", h)
	case <-time.After(200 * time.Millisecond):
	}

	// Another open file description of the lock conflicts as another process's would.
	other, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	if err := unix.Flock(int(other.Fd()), unix.LOCK_EX); err != nil {
		t.Fatal(err)
	}
	got := make(chan func(), 1)
	go func() {
		unlock, err := Lock(path)
		if err != nil {
			t.Error(err)
		}
		got <- unlock
	}()
	select {
	case h := <-noticed:
		if !slices.Contains(h, os.Getpid()) {
			t.Errorf("holders %v, want this process %d among them", h, os.Getpid())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a lock waited for was not told")
	}
	select {
	case <-got:
		t.Fatal("the lock was had while another held it")
	default:
	}
	unix.Flock(int(other.Fd()), unix.LOCK_UN)
	if unlock := <-got; unlock != nil {
		unlock()
	}
}
