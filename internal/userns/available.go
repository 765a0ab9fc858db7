package userns

import (
	"errors"
	"os"
	"os/exec"
	"strings"
	"sync"
)

// ErrUnavailable is matched (errors.Is) by every error of Available.
var ErrUnavailable = errors.New("user namespaces are unavailable")

// UnavailableError says why this process cannot make a user namespace, and how to allow it.
type UnavailableError struct {
	// Setting is the kernel setting or condition in the way, e.g.
	// "user.max_user_namespaces=0" or "kernel.apparmor_restrict_unprivileged_userns=1".
	Setting string
	// Fix says what an administrator can do about it.
	Fix string
	// Err is the underlying error of the trial, when one was made.
	Err error
}

func (e *UnavailableError) Error() string {
	s := "user namespaces are unavailable: " + e.Setting
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	if e.Fix != "" {
		s += "; " + e.Fix
	}
	return s
}

// Is makes errors.Is(err, ErrUnavailable) true.
func (e *UnavailableError) Is(target error) bool { return target == ErrUnavailable }

// Unwrap returns the trial's error.
func (e *UnavailableError) Unwrap() error { return e.Err }

var (
	availOnce sync.Once
	availErr  error
)

// Available reports whether this process can start children in new user namespaces
// (Command, Reexec): nil, or an *UnavailableError naming the setting in the way. It reads
// the kernel's settings, then starts one trial child (a few milliseconds, once per process).
func Available() error {
	availOnce.Do(func() { availErr = available() })
	return availErr
}

func available() error {
	if _, err := os.Stat("/proc/self/ns/user"); err != nil {
		return &UnavailableError{Setting: "the kernel has no user namespaces (CONFIG_USER_NS)", Fix: "use a kernel built with CONFIG_USER_NS=y", Err: err}
	}
	if v, ok := sysctl("user/max_user_namespaces"); ok && v == "0" {
		return &UnavailableError{Setting: "user.max_user_namespaces=0", Fix: "allow them with sysctl -w user.max_user_namespaces=15000"}
	}
	// Debian and Ubuntu kernels before 6.x: a distribution switch for unprivileged users.
	if v, ok := sysctl("kernel/unprivileged_userns_clone"); ok && v == "0" && os.Geteuid() != 0 {
		return &UnavailableError{Setting: "kernel.unprivileged_userns_clone=0", Fix: "allow them with sysctl -w kernel.unprivileged_userns_clone=1"}
	}
	cmd, err := child(Spec{}, "/proc/self/exe", []string{"userns-probe"}, probeEnv+"=1")
	if err != nil {
		return &UnavailableError{Setting: "trial", Err: err}
	}
	if err := cmd.Run(); err != nil {
		ue := &UnavailableError{Setting: "creating one failed", Err: err}
		// Ubuntu 23.10 and later: AppArmor lets unprivileged processes create a user
		// namespace but takes every capability inside it away, unless a profile allows it.
		if v, ok := sysctl("kernel/apparmor_restrict_unprivileged_userns"); ok && v == "1" {
			ue.Setting = "kernel.apparmor_restrict_unprivileged_userns=1"
			ue.Fix = "allow them with sysctl -w kernel.apparmor_restrict_unprivileged_userns=0, or give the binary an AppArmor profile with the userns rule"
		}
		var ee *exec.ExitError
		if errors.As(err, &ee) && ee.ExitCode() == ExitSetup {
			ue.Setting = "the setup inside the new namespaces failed"
		}
		return ue
	}
	return nil
}

func sysctl(name string) (string, bool) {
	b, err := os.ReadFile("/proc/sys/" + name)
	if err != nil {
		return "", false
	}
	return strings.TrimSpace(string(b)), true
}
