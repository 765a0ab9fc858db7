package ns

import (
	"errors"
	"fmt"
	"os/exec"
	"strings"

	"golang.org/x/sys/unix"
)

// ExecWithBinds is Exec with files bind-mounted as Start does them: in a private mount
// namespace of the new program, each Source on its Target, the host's mounts unchanged.
func ExecWithBinds(s Spec, binds []Bind, argv []string, env []string) error {
	if len(argv) == 0 {
		return errors.New("exec: no command given")
	}
	path, err := exec.LookPath(argv[0])
	if err != nil {
		return fmt.Errorf("exec %s: %w", argv[0], CommandError{err})
	}
	return onLockedThread(func() error {
		if err := enterPrivately(s, binds); err != nil {
			return err
		}
		// execve from any thread replaces the whole process and keeps this thread's namespaces.
		return fmt.Errorf("exec %s: %w", strings.Join(argv, " "), CommandError{unix.Exec(path, argv, env)})
	})
}

// CommandError is the failure of the command itself, not found or not executable, as
// distinct from the entering of its namespaces: shells give the two different statuses.
type CommandError struct{ Err error }

func (e CommandError) Error() string { return e.Err.Error() }
func (e CommandError) Unwrap() error { return e.Err }

// enterPrivately makes the calling (locked) thread join the namespaces of s in a private mount
// namespace of its own, with binds and, for a network namespace, that namespace's sysfs
// (ownSysfs). Without binds the private mount namespace is best effort, as the sysfs is.
func enterPrivately(s Spec, binds []Bind) error {
	private, err := privateBinds(binds, s.Net != "")
	if err != nil {
		return err
	}
	if err := enter(s); err != nil {
		return err
	}
	if private && s.Net != "" {
		ownSysfs()
	}
	return nil
}

// privateBinds gives the calling (locked) thread a private mount namespace with binds, and
// reports whether it did. With no binds it makes one only when wanted, and then only where it
// can; without one, nothing else changes.
func privateBinds(binds []Bind, wanted bool) (bool, error) {
	if len(binds) == 0 && !wanted {
		return false, nil
	}
	// CLONE_FS detaches this thread's root and cwd from the other threads; the kernel
	// requires it for a thread of a multi-threaded process to get a private mount namespace.
	if err := unix.Unshare(unix.CLONE_NEWNS | unix.CLONE_FS); err != nil {
		if len(binds) == 0 {
			return false, nil
		}
		return false, fmt.Errorf("unshare mount namespace: %w", err)
	}
	// Private before anything is mounted: a copy of shared mounts would pass mounts made
	// here back to the host's.
	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
		return false, fmt.Errorf("make mounts private: %w", err)
	}
	for _, b := range binds {
		if err := unix.Mount(b.Source, b.Target, "", unix.MS_BIND, ""); err != nil {
			return false, fmt.Errorf("bind %s on %s: %w", b.Source, b.Target, err)
		}
	}
	return true, nil
}

// ownSysfs mounts a sysfs of the network namespace the thread has entered over /sys, as `ip
// netns exec` does: a sysfs shows the devices of the namespace that mounted it, so without
// it /sys/class/net would list the host's. Best effort (a user namespace may forbid it):
// /sys then stays the host's, as it was.
func ownSysfs() { _ = unix.Mount("sysfs", "/sys", "sysfs", 0, "") }
