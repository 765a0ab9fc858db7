// Package ns is the one place in pontoon that switches a thread's namespaces.
//
// setns(2) and unshare(2) act on the calling OS thread, while Go moves goroutines between
// threads freely. Every function here therefore runs its work on a fresh goroutine that
// locks its thread and never unlocks it: when the goroutine returns, the Go runtime destroys
// the thread instead of handing a thread that sits in a foreign namespace to other code.
// Socket alone moves the calling thread and back, for one system call, where the way back
// cannot fail (socket.go).
//
// Everything else in pontoon works through namespace handles (netlink.NewHandleAt), sockets
// opened by Socket (nftables) or the functions of this package.
package ns

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sync"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// origNet keeps the network namespace the process started in open for its whole life, so
// Original can name it even after some thread has moved elsewhere. It is opened at the first
// call of Original or of a function that switches namespaces, not at start: commands that
// never switch (help, the listings) skip the open. Until the first switch, which only this
// package makes, every thread is still in the namespace the process started in. (Libraries
// that switch a thread for a moment to open a socket switch it back before anything else
// runs on it.)
var origNet struct {
	once sync.Once
	fd   int
}

func openOriginal() int {
	origNet.once.Do(func() {
		// A bare descriptor, not an os.File: opening one starts the runtime's poller.
		origNet.fd = -1
		if fd, err := unix.Open("/proc/thread-self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0); err == nil {
			origNet.fd = fd
		}
	})
	return origNet.fd
}

// Original returns a path that names the network namespace the process started in.
func Original() string {
	fd := openOriginal()
	if fd < 0 {
		return "/proc/self/ns/net"
	}
	return fmt.Sprintf("/proc/%d/fd/%d", os.Getpid(), fd)
}

// onLockedThread runs fn on a dedicated OS thread that is discarded afterwards.
func onLockedThread(fn func() error) error {
	openOriginal() // before the first switch (see origNet)
	errc := make(chan error, 1)
	go func() {
		// Never unlocked on purpose: the runtime terminates a locked thread whose goroutine
		// exits, so a namespace change can never leak to other goroutines.
		runtime.LockOSThread()
		defer func() {
			if r := recover(); r != nil {
				errc <- fmt.Errorf("panic in namespace: %v", r)
			}
		}()
		errc <- fn()
	}()
	return <-errc
}

func setns(path string, kind int) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("open namespace %s: %w", path, err)
	}
	defer f.Close()
	if err := unix.Setns(int(f.Fd()), kind); err != nil {
		return fmt.Errorf("enter namespace %s: %w", path, err)
	}
	return nil
}

// enter moves the calling (locked) thread into the network and UTS namespaces of s.
func enter(s Spec) error {
	if s.Net != "" {
		if err := setns(s.Net, unix.CLONE_NEWNET); err != nil {
			return err
		}
	}
	if s.UTS != "" {
		return setns(s.UTS, unix.CLONE_NEWUTS)
	}
	return nil
}

// Do runs fn inside the network namespace at path, on a thread of its own.
//
// fn must not start goroutines that expect to be in that namespace: they run on other
// threads. It may open sockets, which stay bound to the namespace they were created in.
func Do(path string, fn func() error) error {
	return onLockedThread(func() error {
		if err := setns(path, unix.CLONE_NEWNET); err != nil {
			return err
		}
		return fn()
	})
}

// Visit runs fn inside the network namespace at path, like Do, and then moves the thread
// back to the namespace the process started in and returns it to the runtime: it saves Do's
// creation and destruction of a thread (about 0.1 ms each, several times per guest attach).
// Only for fn that change nothing of the thread but its network namespace (reading and
// writing files, opening sockets); a thread that cannot be moved back, or whose fn panics,
// is destroyed as with Do.
func Visit(path string, fn func() error) error {
	orig := openOriginal()
	if orig < 0 {
		return Do(path, fn)
	}
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		back := false
		defer func() {
			if r := recover(); r != nil {
				errc <- fmt.Errorf("panic in namespace: %v", r)
				return
			}
			if back {
				runtime.UnlockOSThread()
			}
		}()
		if err := setns(path, unix.CLONE_NEWNET); err != nil {
			// A failed setns leaves the thread where it was.
			back = true
			errc <- err
			return
		}
		err := fn()
		back = unix.Setns(orig, unix.CLONE_NEWNET) == nil
		errc <- err
	}()
	return <-errc
}

// Spec names namespaces to create or join. An empty path means "leave as is".
type Spec struct {
	Net      string // network namespace file
	UTS      string // UTS namespace file
	Hostname string // with New: the hostname of the new UTS namespace
	// From, with New: the network namespace the new one is made in, whose
	// net.ipv4.tcp_child_ehash_entries gives the new one a TCP table of its own (the
	// creating namespace's setting is the one the kernel reads); "" is this thread's.
	From string
	// Mark, with New: the alias of the new namespace's loopback, set before the namespace
	// is pinned, so that whoever finds the pin finds the mark too.
	Mark string
}

// New creates a network namespace (and, when s.UTS is set, a UTS namespace with
// s.Hostname) and pins each by a bind mount on the given path, so it outlives this
// process. Nothing is left behind on failure.
func New(s Spec) (err error) {
	if s.Net == "" {
		return errors.New("create namespace: no path given for the network namespace")
	}
	if dir := filepath.Dir(s.Net); isSharedDir(dir) {
		if err := prepareShared(dir); err != nil {
			return fmt.Errorf("create namespace %s: %w", s.Net, err)
		}
	}
	flags := unix.CLONE_NEWNET
	if s.UTS != "" {
		flags |= unix.CLONE_NEWUTS
	}
	return onLockedThread(func() error {
		if s.From != "" {
			if err := setns(s.From, unix.CLONE_NEWNET); err != nil {
				return fmt.Errorf("create namespace %s: %w", s.Net, err)
			}
		}
		if err := unix.Unshare(flags); err != nil {
			return fmt.Errorf("unshare network namespace for %s: %w", s.Net, err)
		}
		if s.Mark != "" {
			if err := markLoopback(s.Mark); err != nil {
				return fmt.Errorf("create namespace %s: %w", s.Net, err)
			}
		}
		if s.UTS != "" && s.Hostname != "" {
			if err := unix.Sethostname([]byte(s.Hostname)); err != nil {
				return fmt.Errorf("set hostname %q: %w", s.Hostname, err)
			}
		}
		if err := pin("/proc/thread-self/ns/net", s.Net); err != nil {
			return err
		}
		if s.UTS != "" {
			if err := pin("/proc/thread-self/ns/uts", s.UTS); err != nil {
				Remove(s.Net)
				return err
			}
		}
		return nil
	})
}

func pin(src, dst string) error {
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return fmt.Errorf("pin namespace: %w", err)
	}
	f, err := os.OpenFile(dst, os.O_CREATE|os.O_EXCL|os.O_RDONLY, 0o444)
	if errors.Is(err, fs.ErrExist) && stalePin(dst) {
		f, err = os.OpenFile(dst, os.O_RDONLY, 0)
	}
	if err != nil {
		return fmt.Errorf("pin namespace at %s: %w", dst, err)
	}
	f.Close()
	if err := unix.Mount(src, dst, "", unix.MS_BIND, ""); err != nil {
		os.Remove(dst)
		return fmt.Errorf("pin namespace at %s: bind mount: %w", dst, err)
	}
	return nil
}

// stalePin reports whether path is the empty file of a pin whose namespace is gone: unpinned
// without being removed, as a process killed between the two leaves it, or a machine that
// went down with its namespace directory on disk. It holds nothing, so a new pin may take
// its place; a pin hidden under another tool's mount still holds its namespace and is not
// stale.
func stalePin(path string) bool {
	fi, err := os.Lstat(path)
	return err == nil && fi.Mode().IsRegular() && fi.Size() == 0 && !IsPinned(path) && !HiddenPin(path)
}

// Remove unpins a namespace created by New. The namespace itself goes away once no process
// and no open handle refers to it. Removing what is already gone succeeds.
func Remove(path string) error {
	if path == "" {
		return nil
	}
	if err := unix.Unmount(path, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("unpin namespace %s: %w", path, err)
	}
	err := unix.Unlink(path)
	if errors.Is(err, unix.EBUSY) {
		// Still a mount point after the unmount: a pin hidden under a bind mount of its
		// directory (see SharedDir).
		return removeHidden(path)
	}
	if err != nil && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("remove namespace file %s: %w", path, err)
	}
	return nil
}

// IsPinned reports whether path is a pinned namespace (a bind-mounted nsfs file).
func IsPinned(path string) bool {
	var st unix.Stat_t
	return pinnedStat(path, &st)
}

// pinnedStat stats path into st and reports whether it is a namespace file. Listings check
// every pin of every bridge and guest, so it takes one system call where it can: every
// namespace file lives on the kernel's one nsfs superblock, whose device the process's own
// namespace file shows.
func pinnedStat(path string, st *unix.Stat_t) bool {
	if dev, ok := nsfsDev(); ok {
		return unix.Stat(path, st) == nil && st.Dev == dev
	}
	var fs unix.Statfs_t
	return unix.Statfs(path, &fs) == nil && fs.Type == unix.NSFS_MAGIC && unix.Stat(path, st) == nil
}

var nsfsDev = sync.OnceValues(func() (uint64, bool) {
	var own unix.Stat_t
	var fs unix.Statfs_t
	const self = "/proc/self/ns/net"
	if unix.Stat(self, &own) != nil || unix.Statfs(self, &fs) != nil || fs.Type != unix.NSFS_MAGIC {
		return 0, false
	}
	return own.Dev, true
})

// Bind is a file bind-mounted over another inside a process's private mount namespace.
type Bind struct {
	Source, Target string
}

// Start starts cmd inside the namespaces of s (joining, not creating them). When binds are
// given, cmd also gets a private mount namespace in which each Source is bind-mounted on its
// Target (how a guest gets its own /etc/hosts and /etc/resolv.conf); the host's mounts are
// not changed.
func Start(s Spec, binds []Bind, cmd *exec.Cmd) error {
	return onLockedThread(func() error {
		if err := enterPrivately(s, binds); err != nil {
			return err
		}
		// fork happens on this thread, so the child inherits its namespaces.
		return cmd.Start()
	})
}

// Exec replaces the current process with argv inside the namespaces of s. It returns only
// on failure.
func Exec(s Spec, argv []string, env []string) error { return ExecWithBinds(s, nil, argv, env) }

// markLoopback sets the alias of the loopback of the calling (locked) thread's network
// namespace.
func markLoopback(mark string) error {
	h, err := netlink.NewHandle(unix.NETLINK_ROUTE)
	if err != nil {
		return fmt.Errorf("mark the namespace: %w", err)
	}
	defer h.Close()
	lo, err := h.LinkByName("lo")
	if err == nil {
		err = h.LinkSetAlias(lo, mark)
	}
	if err != nil {
		return fmt.Errorf("mark the namespace (alias of lo): %w", err)
	}
	return nil
}
