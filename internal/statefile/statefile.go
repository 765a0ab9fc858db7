// Package statefile is pontoon's store for state files: an exclusive lock that serialises
// every read-modify-write across processes, and JSON files replaced atomically, so that a
// reader never sees half a file and a writer killed at any point leaves the old file intact
// (plus, at worst, a temporary file that the next holder of the lock may remove).
package statefile

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"

	"github.com/pontoon-dev/pontoon/internal/interrupt"
	"golang.org/x/sys/unix"
)

// TempSuffix ends the name of the temporary file Write renames into place. One seen by a
// holder of the lock was left by a writer that was killed.
const TempSuffix = ".tmp"

// Lock takes an exclusive flock on the file at path (created when missing, its directory
// too) and returns the function that releases it. The lock dies with its holder, so a killed
// process never wedges the others. A holder may remove the lock file and its directory
// (RemoveIfEmpty): one who was waiting for the lock then finds the file it locked gone, and
// one about to open it finds no directory; either locks the path afresh.
func Lock(path string) (unlock func(), err error) {
	f, err := lock(path, true, unix.LOCK_EX)
	if f == nil {
		return nil, err
	}
	// Closing the file releases the lock.
	return func() { f.Close() }, nil
}

// LockContext is Lock, given up with ctx's error when ctx is done first: a command the user
// interrupts while another holds the lock ends there. flock(2) cannot be called off, so the
// wait goes on in the background (a goroutine, its thread and an open file, until the holder
// lets go) and a lock it gets late is let go at once: for a process about to end.
func LockContext(ctx context.Context, path string) (unlock func(), err error) {
	return interrupt.Wait(ctx, func() (func(), error) { return Lock(path) }, func(unlock func()) { unlock() })
}

// LockIfThere is Lock for a reader: it creates nothing, and without a lock file at path it
// returns a nil unlock and no error (there is nothing to read either).
func LockIfThere(path string) (unlock func(), err error) {
	f, err := lock(path, false, unix.LOCK_EX)
	if f == nil {
		return nil, err
	}
	return func() { f.Close() }, nil
}

// LockShared takes a shared flock on the file at path, created when missing (its directory
// too), as Lock does an exclusive one, and returns the open file: closing it releases the
// lock. A holder that converts the lock (flock on the file's descriptor) drops it for a
// moment, in which the file may be removed (RemoveIfEmpty): Still tells whether it was.
func LockShared(path string) (*os.File, error) { return lock(path, true, unix.LOCK_SH) }

// Still reports whether f, an open lock file (LockShared), is still the file at path.
func Still(f *os.File, path string) bool {
	var held, now unix.Stat_t
	if unix.Fstat(int(f.Fd()), &held) != nil || unix.Stat(path, &now) != nil {
		return false
	}
	return now.Ino == held.Ino && now.Dev == held.Dev
}

func lock(path string, create bool, how int) (*os.File, error) {
	for tries := 0; ; tries++ {
		f, err := lockOnce(path, create, how)
		switch {
		case f != nil:
			return f, nil
		case err == nil:
			// Removed while this waited: again.
		case !create && errors.Is(err, os.ErrNotExist):
			return nil, nil
		case create && errors.Is(err, os.ErrNotExist) && tries < 100:
			// The directory went between its creation and the open.
		default:
			return nil, err
		}
	}
}

// lockOnce opens (create: creates) and locks the file at path; nil and no error when the
// file was removed or replaced while this process waited for its lock.
func lockOnce(path string, create bool, how int) (*os.File, error) {
	flag := unix.O_RDWR
	if create {
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			return nil, fmt.Errorf("create state directory %s: %w", filepath.Dir(path), err)
		}
		flag |= unix.O_CREAT
	}
	f, err := openFile(path, flag, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open state lock %s: %w", path, err)
	}
	if err := flockNoting(f, path, how); err != nil {
		f.Close()
		return nil, fmt.Errorf("lock state %s: %w", path, err)
	}
	var held, now unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &held); err != nil {
		f.Close()
		return nil, fmt.Errorf("lock state %s: %w", path, err)
	}
	if err := unix.Stat(path, &now); err != nil || now.Ino != held.Ino || now.Dev != held.Dev {
		f.Close()
		return nil, nil
	}
	return f, nil
}

// flock is flock(2) on f, again when a signal interrupts it.
func flock(f *os.File, how int) error {
	for {
		if err := unix.Flock(int(f.Fd()), how); !errors.Is(err, unix.EINTR) {
			return err
		}
	}
}

// RemoveIfEmpty removes the directory dir when nothing is left in it but empty
// subdirectories, the lock file at lockPath, which the caller holds, and side locks that
// nobody holds: whoever waits for one of these locks locks afresh (see Lock). Anything else
// in it, a side lock someone holds included, keeps the directory whole. It is a tidy-up,
// done as far as it goes: a directory that cannot be removed (a mount point, one in a
// directory this process may not change) stays.
//
// sideLocks are the names of the lock files dir may hold at its top beside its main lock,
// each guarding something that keeps no state of its own there. They must be taken with
// LockShared (or Lock), which look again once they hold the lock, so that one nobody holds
// may be removed as the main lock is.
func RemoveIfEmpty(dir, lockPath string, sideLocks ...string) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	var subdirs []string
	// The side locks stay held until they are removed: no one can take them meanwhile, and
	// whoever opened one before finds it gone once they hold it.
	var side []*os.File
	defer func() {
		for _, f := range side {
			f.Close()
		}
	}()
	for _, e := range entries {
		p := filepath.Join(dir, e.Name())
		switch {
		case p == lockPath:
		case e.IsDir():
			if sub, err := os.ReadDir(p); err != nil || len(sub) > 0 {
				return
			}
			subdirs = append(subdirs, p)
		case e.Type().IsRegular() && slices.Contains(sideLocks, e.Name()):
			f, err := openFile(p, unix.O_RDWR, 0)
			if err != nil {
				return
			}
			side = append(side, f)
			if flock(f, unix.LOCK_EX|unix.LOCK_NB) != nil || !Still(f, p) {
				return // held: in use
			}
		default:
			return
		}
	}
	for _, p := range subdirs {
		// A directory someone filled meanwhile stays, with everything above it.
		if os.Remove(p) != nil {
			return
		}
	}
	for _, f := range side {
		if os.Remove(f.Name()) != nil {
			return
		}
	}
	if os.Remove(lockPath) == nil {
		_ = os.Remove(dir)
	}
}

// Locked runs fn while holding Lock(path).
func Locked(path string, fn func() error) error {
	unlock, err := Lock(path)
	if err != nil {
		return err
	}
	defer unlock()
	return fn()
}

// LockedIfThere runs fn while holding LockIfThere(path), or without a lock when there is no
// lock file.
func LockedIfThere(path string, fn func() error) error {
	unlock, err := LockIfThere(path)
	if err != nil {
		return err
	}
	if unlock != nil {
		defer unlock()
	}
	return fn()
}

// openFile opens a file as os.OpenFile does, but never registers it with the runtime's
// poller, which cannot wait on regular files anyway: os.OpenFile tries, at four system calls
// per file, and its first call starts the poller (an epoll instance, an eventfd and a thread
// woken to watch them), which commands that touch only state files then pay at start.
func openFile(path string, flag int, perm uint32) (*os.File, error) {
	for {
		fd, err := unix.Open(path, flag|unix.O_CLOEXEC, perm)
		if err == nil {
			return os.NewFile(uintptr(fd), path), nil
		}
		if err != unix.EINTR {
			return nil, &os.PathError{Op: "open", Path: path, Err: err}
		}
	}
}

// ReadFile returns the content of the file at path, as os.ReadFile does (a missing file gives
// an error for which errors.Is(err, os.ErrNotExist) holds), in three system calls after the
// open.
func ReadFile(path string) ([]byte, error) {
	f, err := openFile(path, unix.O_RDONLY, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		return nil, &os.PathError{Op: "stat", Path: path, Err: err}
	}
	// One byte more than the size, so that a whole read ends with EOF at once; files that
	// report no size (/proc) get room for a typical one.
	b := make([]byte, 0, max(st.Size+1, 512))
	for {
		n, err := f.Read(b[len(b):cap(b)])
		b = b[:len(b)+n]
		if err == io.EOF {
			return b, nil
		}
		if err != nil {
			return nil, err
		}
		if len(b) == cap(b) {
			b = append(b, 0)[:len(b)] // grown meanwhile
		}
	}
}

// ReadJSON decodes the file at path into v. A missing file gives an error for which
// errors.Is(err, os.ErrNotExist) holds.
func ReadJSON(path string, v any) error { return ReadWith(path, jsonInto(v)) }

// ReadWith reads the file at path and decodes it with decode.
func ReadWith(path string, decode func([]byte) error) error {
	b, err := ReadFile(path)
	if err != nil {
		return err
	}
	if err := decode(b); err != nil {
		return fmt.Errorf("read state %s: %w", path, err)
	}
	return nil
}

func jsonInto(v any) func([]byte) error {
	return func(b []byte) error { return json.Unmarshal(b, v) }
}

// WriteJSON replaces the file at path atomically with v as JSON on one line, readable by its
// owner only. (Not indented: records are rewritten on every change and indenting took longer
// than encoding; `jq . FILE` shows one indented.)
func WriteJSON(path string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("write state %s: %w", path, err)
	}
	return Write(path, append(b, '\n'), 0o600)
}

// Write replaces the file at path atomically with data: written to a temporary file next to
// it, then renamed over it.
func Write(path string, data []byte, perm os.FileMode) error {
	tmp := path + TempSuffix
	f, err := openFile(tmp, unix.O_WRONLY|unix.O_CREAT|unix.O_TRUNC, uint32(perm.Perm()))
	if err != nil {
		return fmt.Errorf("write state %s: %w", path, err)
	}
	_, err = f.Write(data)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("write state %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("write state %s: %w", path, err)
	}
	return nil
}

// Version pins the version of a state file present when it was taken, so that a process
// that read or wrote a file can tell later whether it is still that version and skip
// decoding it again.
type Version struct {
	f  *os.File // kept open: the inode cannot be reused while it is
	st unix.Stat_t
}

// Pin returns the version of the file at path now.
func Pin(path string) (*Version, error) {
	f, err := openFile(path, unix.O_RDONLY, 0)
	if err != nil {
		return nil, err
	}
	v := &Version{f: f}
	if err := unix.Fstat(int(f.Fd()), &v.st); err != nil {
		f.Close()
		return nil, fmt.Errorf("stat %s: %w", path, err)
	}
	return v, nil
}

// ReadJSONPinned is ReadJSON that also returns the version it decoded, read through the
// same open file, so that the two always agree.
func ReadJSONPinned(path string, v any) (*Version, error) { return ReadPinned(path, jsonInto(v)) }

// ReadPinned is ReadWith that also pins the version read (see ReadJSONPinned).
func ReadPinned(path string, decode func([]byte) error) (*Version, error) {
	ver, err := Pin(path)
	if err != nil {
		return nil, err
	}
	// One byte more than the size: a whole read ends short of it, with EOF.
	b := make([]byte, ver.st.Size+1)
	n, err := io.ReadFull(ver.f, b)
	switch {
	case err == nil:
		// Longer than when pinned: changed in place meanwhile, so no version to vouch for it.
		ver.Close()
		return nil, ReadWith(path, decode)
	case err != io.EOF && err != io.ErrUnexpectedEOF:
		ver.Close()
		return nil, fmt.Errorf("read state %s: %w", path, err)
	}
	if err := decode(b[:n]); err != nil {
		ver.Close()
		return nil, fmt.Errorf("read state %s: %w", path, err)
	}
	return ver, nil
}

// Current reports whether the file at path is still the pinned version: Write replaces a file
// by another inode, and changes in place move its change time or its size.
func (v *Version) Current(path string) bool {
	if v == nil {
		return false
	}
	var st unix.Stat_t
	return unix.Stat(path, &st) == nil && st.Dev == v.st.Dev && st.Ino == v.st.Ino && st.Size == v.st.Size &&
		st.Ctim == v.st.Ctim && st.Mtim == v.st.Mtim
}

// Close releases the pin; a nil Version may be closed.
func (v *Version) Close() {
	if v != nil {
		v.f.Close()
	}
}
