package statefile

import (
	"errors"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func TestWriteReadJSON(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "s.json")
	var v map[string]int
	if err := ReadJSON(path, &v); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("missing file: %v, want ErrNotExist", err)
	}
	if err := WriteJSON(path, map[string]int{"a": 1}); err != nil {
		t.Fatal(err)
	}
	if err := ReadJSON(path, &v); err != nil || v["a"] != 1 {
		t.Fatalf("read back %v, %v", v, err)
	}
	if _, err := os.Stat(path + TempSuffix); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("temporary file left: %v", err)
	}
	if st, _ := os.Stat(path); st.Mode().Perm() != 0o600 {
		t.Errorf("mode %v, want 0600", st.Mode().Perm())
	}
	os.WriteFile(path, []byte("{"), 0o600)
	if err := ReadJSON(path, &v); err == nil || errors.Is(err, os.ErrNotExist) {
		t.Errorf("corrupt file: %v", err)
	}
}

// Read-modify-write cycles under Locked never lose an update.
func TestLockedSerialises(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "n.json")
	lock := filepath.Join(dir, "sub", "lock")
	const n = 50
	var wg sync.WaitGroup
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := Locked(lock, func() error {
				var c int
				if err := ReadJSON(path, &c); err != nil && !errors.Is(err, os.ErrNotExist) {
					return err
				}
				return WriteJSON(path, c+1)
			})
			if err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	var c int
	if err := ReadJSON(path, &c); err != nil || c != n {
		t.Errorf("counter %d, %v; want %d", c, err, n)
	}
}

// A pinned version is current until the file is replaced or changed in place.
func TestVersion(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "s.json")
	if err := WriteJSON(path, 1); err != nil {
		t.Fatal(err)
	}
	v, err := Pin(path)
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	if !v.Current(path) {
		t.Fatal("not current right after pinning")
	}
	// The same content written again is another version.
	if err := WriteJSON(path, 1); err != nil {
		t.Fatal(err)
	}
	if v.Current(path) {
		t.Error("current after the file was replaced")
	}
	w, err := Pin(path)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if err := os.WriteFile(path, []byte("22"), 0o600); err != nil {
		t.Fatal(err)
	}
	if w.Current(path) {
		t.Error("current after the file was changed in place")
	}
	os.Remove(path)
	if w.Current(path) {
		t.Error("current after the file was removed")
	}
	var none *Version
	if none.Current(path) {
		t.Error("a nil version is current")
	}
	none.Close()
}

// ReadJSONPinned returns the content and the version it came from; a missing file is
// ErrNotExist as for ReadJSON.
func TestReadJSONPinned(t *testing.T) {
	path := filepath.Join(t.TempDir(), "s.json")
	var v map[string]int
	if _, err := ReadJSONPinned(path, &v); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("missing file: %v, want ErrNotExist", err)
	}
	if err := WriteJSON(path, map[string]int{"a": 1}); err != nil {
		t.Fatal(err)
	}
	ver, err := ReadJSONPinned(path, &v)
	if err != nil || v["a"] != 1 || !ver.Current(path) {
		t.Fatalf("read %v, %v, current %v", v, err, ver.Current(path))
	}
	ver.Close()
	os.WriteFile(path, []byte("{"), 0o600)
	if _, err := ReadJSONPinned(path, &v); err == nil || errors.Is(err, os.ErrNotExist) {
		t.Errorf("corrupt file: %v", err)
	}
}

// ReadFile reads what os.ReadFile reads: files whose size stat reports, files that report
// none (/proc), and a missing file as ErrNotExist.
func TestReadFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "f")
	if _, err := ReadFile(path); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("missing file: %v, want ErrNotExist", err)
	}
	for _, size := range []int{0, 1, 4095, 4096, 70000} {
		want := make([]byte, size)
		for i := range want {
			want[i] = byte('a' + i%26)
		}
		if err := Write(path, want, 0o600); err != nil {
			t.Fatal(err)
		}
		got, err := ReadFile(path)
		if err != nil || string(got) != string(want) {
			t.Fatalf("%d bytes: read %d bytes (%v)", size, len(got), err)
		}
	}
	want, err := os.ReadFile("/proc/self/mountinfo") // stat says 0 bytes
	if err != nil {
		t.Skip(err)
	}
	got, err := ReadFile("/proc/self/mountinfo")
	if err != nil || len(got) == 0 || len(got) < len(want)/2 {
		t.Fatalf("/proc/self/mountinfo: read %d bytes (%v), os.ReadFile %d", len(got), err, len(want))
	}
}

// TestLockAfterRemoval: the holder of the lock may remove the state directory it guards, lock
// file included (a gateway down that leaves nothing). A process that was waiting for the lock
// meanwhile must not hold a lock on the removed file, which nobody else contends for: it locks
// the path afresh, and the next one waits for it.
func TestLockAfterRemoval(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state")
	lock := filepath.Join(dir, "lock")
	unlockA, err := Lock(lock)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(dir, "bridges"), 0o700); err != nil {
		t.Fatal(err)
	}
	gotB := make(chan func())
	go func() {
		u, err := Lock(lock)
		if err != nil {
			t.Error(err)
			u = func() {}
		}
		gotB <- u
	}()
	time.Sleep(50 * time.Millisecond) // B waits on the file A holds
	RemoveIfEmpty(dir, lock)
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("directory with only an empty subdirectory and the lock left: %v", err)
	}
	unlockA()
	unlockB := <-gotB
	gotC := make(chan struct{})
	go func() {
		u, err := Lock(lock)
		if err == nil {
			u()
		}
		close(gotC)
	}()
	select {
	case <-gotC:
		t.Fatal("a third process got the lock while the second held it")
	case <-time.After(200 * time.Millisecond):
	}
	unlockB()
	<-gotC

	// Anything but empty directories and the lock keeps the directory whole.
	for _, keep := range []string{"gateway.json", "bridges/b1.json"} {
		p := filepath.Join(dir, keep)
		if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte("{}"), 0o600); err != nil {
			t.Fatal(err)
		}
		RemoveIfEmpty(dir, lock)
		if _, err := os.Stat(p); err != nil {
			t.Errorf("%s: %v", keep, err)
		}
		if _, err := os.Stat(lock); err != nil {
			t.Errorf("lock removed beside %s: %v", keep, err)
		}
		os.Remove(p)
	}
}

// TestLockIfThere: a reader's lock creates nothing, also when it waited for a holder that
// removed the state it guards.
func TestLockIfThere(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state")
	lock := filepath.Join(dir, "lock")
	if unlock, err := LockIfThere(lock); unlock != nil || err != nil {
		t.Fatalf("LockIfThere without a lock file: %v, %v; want neither a lock nor an error", unlock != nil, err)
	}
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("LockIfThere created %s (%v)", dir, err)
	}
	unlockA, err := Lock(lock)
	if err != nil {
		t.Fatal(err)
	}
	type result struct {
		locked bool
		err    error
	}
	got := make(chan result)
	go func() {
		unlock, err := LockIfThere(lock)
		if unlock != nil {
			unlock()
		}
		got <- result{unlock != nil, err}
	}()
	time.Sleep(50 * time.Millisecond) // the reader waits on the file A holds
	RemoveIfEmpty(dir, lock)
	unlockA()
	if r := <-got; r.locked || r.err != nil {
		t.Errorf("reader after the state went: locked %v, error %v; want neither", r.locked, r.err)
	}
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the reader brought %s back (%v)", dir, err)
	}
}

// TestRemoveIfEmptyTakesSideLocks: a side lock (such as pontoon-cni's) that nobody holds
// goes with the state directory as the main lock does; one that is held keeps the
// directory, lock included, and its holder keeps a lock that others contend for. A lock
// file the caller does not name as a side lock keeps the directory too.
func TestRemoveIfEmptyTakesSideLocks(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state")
	lock := filepath.Join(dir, "lock")
	const sideName = "side.lock"
	side := filepath.Join(dir, sideName)
	gone := func() bool {
		_, err := os.Stat(dir)
		return errors.Is(err, os.ErrNotExist)
	}

	// Held: everything stays.
	held, err := LockShared(side)
	if err != nil {
		t.Fatal(err)
	}
	unlock, err := Lock(lock)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(dir, "bridges"), 0o700); err != nil {
		t.Fatal(err)
	}
	RemoveIfEmpty(dir, lock, sideName)
	unlock()
	if gone() || !Still(held, side) {
		t.Fatalf("a held side lock was removed (directory gone %v, lock file still the one held %v)", gone(), Still(held, side))
	}
	if _, err := os.Stat(lock); err != nil {
		t.Fatalf("the main lock went beside a held side lock: %v", err)
	}
	// The holder's lock still excludes an exclusive one.
	f, err := os.OpenFile(side, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := flock(f, unix.LOCK_EX|unix.LOCK_NB); !errors.Is(err, unix.EWOULDBLOCK) {
		t.Fatalf("exclusive lock beside the shared holder: %v; want EWOULDBLOCK", err)
	}
	f.Close()

	// Opened, not yet locked, when the directory goes: the lock is taken afresh.
	held.Close()
	waiter, err := os.OpenFile(side, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer waiter.Close()
	if unlock, err = Lock(lock); err != nil {
		t.Fatal(err)
	}
	RemoveIfEmpty(dir, lock)
	if gone() || !Still(waiter, side) {
		t.Fatalf("a lock file not named a side lock was removed (directory gone %v)", gone())
	}
	RemoveIfEmpty(dir, lock, sideName)
	unlock()
	if !gone() {
		ents, _ := os.ReadDir(dir)
		t.Fatalf("state directory with nothing but an unheld side lock, the lock and an empty subdirectory stays: %v", ents)
	}
	if Still(waiter, side) {
		t.Fatal("the removed side lock is still at its path")
	}
	again, err := LockShared(side)
	if err != nil {
		t.Fatal(err)
	}
	defer again.Close()
	if !Still(again, side) {
		t.Fatal("LockShared after the removal holds no file at the path")
	}
}
