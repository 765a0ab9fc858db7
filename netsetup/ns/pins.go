package ns

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// SharedDir is the directory iproute2 (`ip netns add`) and podman pin network namespaces in.
// The first time they pin there they turn it into a shared bind mount of itself
// (mount --bind, then mount --make-rshared), so that unmounting a pin in one mount namespace
// unmounts it in all of them. A pin made on the plain directory before that ends up under
// the new mount: its copy is what the path shows, and once that copy is unmounted the
// original stays mounted out of reach (unlink gives EBUSY, umount EINVAL) and keeps its
// namespace alive. New therefore prepares this directory exactly as iproute2 does before it
// pins there, so that a later `ip netns add` finds a shared mount and binds nothing over
// pontoon's pins. Other directories (a test's sandbox) are left plain: no other tool binds
// over them, and they need no unmounting afterwards.
var SharedDir = "/run/netns"

// isSharedDir reports whether dir is SharedDir, also through a symbolic link (/var/run).
func isSharedDir(dir string) bool {
	resolve := func(p string) string {
		if r, err := filepath.EvalSymlinks(p); err == nil {
			return r
		}
		return filepath.Clean(p)
	}
	return SharedDir != "" && resolve(dir) == resolve(SharedDir)
}

// prepareShared makes dir a shared mount the way iproute2's netns_add does: under an flock of
// the directory (so that concurrent preparers never stack bind mounts), make it rshared; when
// it is no mount point yet (EINVAL), bind it onto itself recursively first. Pins already in
// the directory are copied into the new mount by the recursive bind and stay visible.
func prepareShared(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("create namespace directory %s: %w", dir, err)
	}
	// As iproute2 does, a failing lock does not stop the preparation.
	if fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0); err == nil {
		defer unix.Close(fd)
		if unix.Flock(fd, unix.LOCK_EX) == nil {
			defer unix.Flock(fd, unix.LOCK_UN)
		}
	}
	made := false
	for {
		err := unix.Mount("", dir, "none", unix.MS_SHARED|unix.MS_REC, "")
		if err == nil {
			return nil
		}
		if !errors.Is(err, unix.EINVAL) || made {
			return fmt.Errorf("mount --make-rshared %s: %w", dir, err)
		}
		if err := unix.Mount(dir, dir, "none", unix.MS_BIND|unix.MS_REC, ""); err != nil {
			return fmt.Errorf("mount --rbind %s %s: %w", dir, dir, err)
		}
		made = true
	}
}

// MountNS returns the inode of the calling process's mount namespace (0 when unknown).
//
// This and Mounts read /proc/thread-self, not /proc/self, which follows the process's first
// thread: a goroutine of onLockedThread may run on that thread, and the runtime parks it for
// good, in whatever namespace fn left it (a private copy of the mounts, say), rather than
// end it as it ends other locked threads.
func MountNS() uint64 {
	var st unix.Stat_t
	if unix.Stat("/proc/thread-self/ns/mnt", &st) != nil {
		return 0
	}
	return st.Ino
}

// Mount is one line of /proc/self/mountinfo, the fields pontoon needs.
type Mount struct {
	ID, Parent int
	Root       string // the mounted file within its file system; for a pin, "net:[INODE]"
	Point      string // mount point, unescaped
	Shared     bool   // in a peer group: mounts and unmounts below it propagate
	FSType     string
}

// Mounts reads the calling process's mount table.
func Mounts() ([]Mount, error) {
	f, err := os.Open("/proc/thread-self/mountinfo")
	if err != nil {
		return nil, fmt.Errorf("read mount table: %w", err)
	}
	defer f.Close()
	var out []Mount
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		// ID PARENT MAJ:MIN ROOT POINT OPTIONS [OPTIONAL...] - FSTYPE SOURCE SUPEROPTS
		pre, post, ok := strings.Cut(sc.Text(), " - ")
		f, g := strings.Fields(pre), strings.Fields(post)
		if !ok || len(f) < 5 || len(g) < 1 {
			continue
		}
		id, _ := strconv.Atoi(f[0])
		parent, _ := strconv.Atoi(f[1])
		m := Mount{ID: id, Parent: parent, Root: unescapeMount(f[3]), Point: unescapeMount(f[4]), FSType: g[0]}
		for _, opt := range f[6:] {
			m.Shared = m.Shared || strings.HasPrefix(opt, "shared:")
		}
		out = append(out, m)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read mount table: %w", err)
	}
	return out, nil
}

// unescapeMount undoes mountinfo's octal escapes (\040 for a space, ...).
func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+4 <= len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// HiddenPin reports whether a namespace is pinned at path out of sight: the mount table
// holds an nsfs mount on path, but the path itself shows no namespace, because another
// tool bound the directory over it (see SharedDir).
func HiddenPin(path string) bool {
	roots, _ := pinsAt(path)
	return !IsPinned(path) && len(roots) > 0
}

// pinsAt lists what the namespace pins the mount table shows at path, seen or covered, hold:
// their roots, "net:[INODE]" for a network namespace's. ok is false when the table cannot be
// read.
func pinsAt(path string) (roots []string, ok bool) {
	ms, err := Mounts()
	if err != nil {
		return nil, false
	}
	for _, m := range ms {
		if m.Point == path && m.FSType == "nsfs" {
			roots = append(roots, m.Root)
		}
	}
	return roots, true
}

// inPrivateMounts runs fn on a thread of its own in a private copy of the mount namespace
// whose mounts propagate nowhere: unmounting there changes nothing anyone else sees.
func inPrivateMounts(fn func() error) error {
	return onLockedThread(func() error {
		// CLONE_FS: see Start.
		if err := unix.Unshare(unix.CLONE_NEWNS | unix.CLONE_FS); err != nil {
			return fmt.Errorf("unshare mount namespace: %w", err)
		}
		if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
			return fmt.Errorf("make mounts private: %w", err)
		}
		return fn()
	})
}

// liftCover unmounts, in a private mount namespace, a bind mount of dir onto itself so that
// what lies beneath shows. It refuses (returns false) when dir is no mount point or when the
// mount is something else than a bind of the same directory: lifting a real file system
// mounted there would show another directory altogether.
func liftCover(dir string) bool {
	var before, after unix.Stat_t
	if unix.Stat(dir, &before) != nil || unix.Unmount(dir, unix.MNT_DETACH) != nil {
		return false
	}
	return unix.Stat(dir, &after) == nil && after.Dev == before.Dev && after.Ino == before.Ino
}

// removeHidden removes the pin file at path when a pin hidden under a bind mount of its
// directory keeps it busy.
//
// A mount that is covered cannot be unmounted by path, and lifting the cover in pontoon's own
// mount namespace would detach every other tool's pins with it. Unlinking a file, however,
// detaches every mount on it in every mount namespace; the kernel refuses it (EBUSY) only
// while the file is a mount point in the caller's own namespace. So the file is unlinked
// from a private copy of the mount namespace after unmounting there, and only there, the
// copies of the pin and of the covering bind mounts. Nothing else of the host's mounts
// changes: the copies die with the private namespace, and the hidden original goes with the
// unlink. This works without knowing which tool bound what, and touches no other pin.
func removeHidden(path string) error {
	dir := filepath.Dir(path)
	return inPrivateMounts(func() error {
		for range 32 {
			err := unix.Unlink(path)
			if err == nil || errors.Is(err, unix.ENOENT) {
				return nil
			}
			if !errors.Is(err, unix.EBUSY) {
				return fmt.Errorf("remove namespace file %s: %w", path, err)
			}
			if unix.Unmount(path, unix.MNT_DETACH) == nil {
				continue
			}
			if !liftCover(dir) {
				break
			}
		}
		return fmt.Errorf("remove namespace file %s: %w (a namespace is mounted on it out of reach)", path, unix.EBUSY)
	})
}
