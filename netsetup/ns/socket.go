package ns

import (
	"errors"
	"os"
	"runtime"
	"sync"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// A socket belongs to the network namespace of the thread that creates it.
//
// Visit moves a goroutine locked to a thread into the namespace and back:
// the first lock makes the runtime start a thread, and the hand-off to the
// goroutine waits for the scheduler: ~0.5 ms, as much as the rest of a
// change's commit. Where the move back cannot fail, Socket moves the calling
// thread itself, for a few system calls made by a function the scheduler
// cannot interrupt: it is nosplit and makes raw system calls only (no
// preemption point), with every signal blocked (no asynchronous preemption),
// so no other goroutine runs on the thread while it is elsewhere.

// Socket opens a socket (socket(2)'s domain, typ and proto) in the network namespace at
// nsPath, for callers that pay for every fraction of a millisecond (a partition change
// opens one per command).
func Socket(nsPath string, domain, typ, proto int) (int, error) {
	if !canReturn() {
		fd := -1
		err := Visit(nsPath, func() (err error) {
			fd, err = unix.Socket(domain, typ, proto)
			return err
		})
		return fd, err
	}
	target, err := unix.Open(nsPath, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, &os.PathError{Op: "open", Path: nsPath, Err: err}
	}
	defer unix.Close(target)
	var fd int
	var errno syscall.Errno
	if !socketOnThread(target, uintptr(domain), uintptr(typ), uintptr(proto), &fd, &errno) {
		// Never expected (see canReturn); the thread stays with this goroutine
		// and goes when it ends, as with ns.Visit.
		runtime.LockOSThread()
		if fd >= 0 {
			unix.Close(fd)
		}
		return -1, errors.New("cannot return the thread to its network namespace")
	}
	if errno != 0 {
		return -1, errno
	}
	return fd, nil
}

// socketOnThread moves the calling thread into the network namespace target,
// opens the socket there (into *fd, or the error into *errno), and moves it
// back; it reports whether it is back. The namespace to return to is opened
// here too, where it is this thread's for sure (threads may differ: a thread
// whose goroutine ended in a namespace of its own may be kept). The memory it
// writes is the caller's, which no stack growth can move meanwhile (nosplit).
//
//go:nosplit
//go:norace
func socketOnThread(target int, domain, typ, proto uintptr, fd *int, errno *syscall.Errno) bool {
	*fd, *errno = -1, 0
	all, old := ^uint64(0), uint64(0)
	if _, _, e := syscall.RawSyscall6(syscall.SYS_RT_SIGPROCMASK, unix.SIG_SETMASK, uintptr(unsafe.Pointer(&all)), uintptr(unsafe.Pointer(&old)), 8, 0, 0); e != 0 {
		*errno = e
		return true
	}
	back := true
	orig, _, e := syscall.RawSyscall6(syscall.SYS_OPENAT, uintptr(atFDCWD), uintptr(unsafe.Pointer(&threadNet[0])), unix.O_RDONLY|unix.O_CLOEXEC, 0, 0, 0)
	switch {
	case e != 0:
		*errno = e
	default:
		if _, _, e := syscall.RawSyscall(unix.SYS_SETNS, uintptr(target), unix.CLONE_NEWNET, 0); e != 0 {
			*errno = e
		} else {
			r, _, e := syscall.RawSyscall(syscall.SYS_SOCKET, domain, typ, proto)
			if e != 0 {
				*errno = e
			} else {
				*fd = int(r)
			}
			back = false
			// A transient failure (memory for the thread's new set of
			// namespaces) is worth waiting out: the alternative is worse.
			for try := 0; try < 1000 && !back; try++ {
				_, _, e = syscall.RawSyscall(unix.SYS_SETNS, orig, unix.CLONE_NEWNET, 0)
				back = e == 0
				if e != syscall.ENOMEM && e != syscall.EINTR && e != syscall.EAGAIN {
					break
				}
				syscall.RawSyscall(syscall.SYS_SCHED_YIELD, 0, 0, 0)
			}
		}
		syscall.RawSyscall(syscall.SYS_CLOSE, orig, 0, 0)
	}
	syscall.RawSyscall6(syscall.SYS_RT_SIGPROCMASK, unix.SIG_SETMASK, uintptr(unsafe.Pointer(&old)), 0, 8, 0, 0)
	return back
}

// threadNet names the calling thread's network namespace, for socketOnThread's
// raw openat.
var (
	threadNet = []byte("/proc/thread-self/ns/net\x00")
	atFDCWD   = unix.AT_FDCWD
)

// canReturn reports whether a thread moved to any network namespace can always
// move back: the process is in the initial user namespace with CAP_SYS_ADMIN,
// which every namespace's owner descends from. Root of a user namespace may
// enter a bridge namespace it owns and not return to the host's.
var canReturn = sync.OnceValue(func() bool {
	var st unix.Stat_t
	if err := unix.Stat("/proc/self/ns/user", &st); err != nil || st.Ino != procUserInitIno {
		return false
	}
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capget(&hdr, &data[0]); err != nil {
		return false
	}
	return data[0].Effective&(1<<unix.CAP_SYS_ADMIN) != 0
})

// procUserInitIno is the inode number of the initial user namespace
// (PROC_USER_INIT_INO of linux/proc_ns.h).
const procUserInitIno = 0xEFFFFFFD
