package statefile

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// OnWait, when set, is told once about a lock not granted within WaitNoticeAfter, with the
// processes that hold it: a command held up by another (a stopped one, one closing
// connections) says by whom, as it would otherwise just hang. It runs on its own goroutine.
var (
	OnWait          func(path string, holders []int)
	WaitNoticeAfter = time.Second
)

// flockNoting is flock, with OnWait told when the lock is not had at once and a while passes.
func flockNoting(f *os.File, path string, how int) error {
	notice := OnWait
	if notice == nil {
		return flock(f, how)
	}
	if err := flock(f, how|unix.LOCK_NB); !errors.Is(err, unix.EWOULDBLOCK) {
		return err
	}
	var done atomic.Bool
	t := time.AfterFunc(WaitNoticeAfter, func() {
		if h := Holders(f); !done.Load() {
			notice(path, h)
		}
	})
	err := flock(f, how)
	done.Store(true)
	t.Stop()
	return err
}

// Holders lists the processes that hold a lock on the file f is open on, as /proc/locks
// names them (in this process's pid namespace; 0 for one outside it), waiters left out.
func Holders(f *os.File) []int {
	var st unix.Stat_t
	if unix.Fstat(int(f.Fd()), &st) != nil {
		return nil
	}
	locks, err := os.Open("/proc/locks")
	if err != nil {
		return nil
	}
	defer locks.Close()
	// "1: FLOCK  ADVISORY  WRITE 1234 00:2d:5678 0 EOF"; a waiter's line has "->" after the
	// number.
	id := fmt.Sprintf("%02x:%02x:%d", unix.Major(uint64(st.Dev)), unix.Minor(uint64(st.Dev)), st.Ino)
	var pids []int
	sc := bufio.NewScanner(locks)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 6 || fields[1] == "->" || fields[5] != id {
			continue
		}
		if pid, err := strconv.Atoi(fields[4]); err == nil {
			pids = append(pids, pid)
		}
	}
	return pids
}
