// Package userns starts processes inside a user namespace of their own, in which the caller's
// uid and gid are 0, together with new mount, network and UTS namespaces. There an
// unprivileged user may do what pontoon does as root -- create and pin network namespaces,
// veths, bridges, nftables tables, tc qdiscs, net sysctls -- all of it confined to
// namespaces that user owns.
//
// Go cannot move a multi-threaded process into a new user namespace (unshare and setns of
// CLONE_NEWUSER need a single thread), so the namespaces are always made for a child, by
// clone(2) flags. What must happen inside the child before its program runs (making the
// mounts private, covering directories with tmpfs, setting the hostname) is done by this
// package's init in a re-executed copy of the current binary, which then either returns to
// that binary's main (Reexec) or execs the requested program (Command). A binary that starts
// children through this package therefore must import it, which calling it implies.
package userns

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// Environment variables between a parent and the child it started.
const (
	// MarkerEnv is set to "1" in every process started by Command or Reexec, and inherited
	// by their descendants; Inside checks it together with the uid map.
	MarkerEnv = "PONTOON_USERNS"
	// setupEnv carries the Spec (JSON) to the child's init, which removes it.
	setupEnv = "PONTOON_USERNS_SETUP"
	// execEnv carries, for Command, the program and arguments to exec after the setup
	// (JSON array), removed as well.
	execEnv = "PONTOON_USERNS_EXEC"
	// probeEnv makes the child's init exit 0 at once: Available's trial.
	probeEnv = "PONTOON_USERNS_PROBE"
)

// ExitSetup is the exit status of a child whose setup inside the new namespaces failed (its
// reason on stderr), before the program it was to run started.
const ExitSetup = 125

// Spec says what the child's new namespaces get besides the uid and gid map.
type Spec struct {
	// Tmpfs lists existing directories covered by a fresh tmpfs (mode 0755) in the child's
	// mount namespace, e.g. /run/netns, so that the child's files there are its own and
	// nobody else's are visible.
	Tmpfs []string `json:",omitempty"`
	// Hostname is the child's hostname in its new UTS namespace; empty keeps the caller's.
	Hostname string `json:",omitempty"`
}

// Command returns a command that runs name with args (looked up as exec.Command does) as uid
// and gid 0 of a new user namespace -- the caller's own uid and gid outside -- in new mount,
// network and UTS namespaces, with every mount private to it and the directories of spec
// covered; the new network namespace has its loopback up and nothing else. The caller sets
// Stdin, Stdout, Stderr and Dir as for any exec.Cmd. Env and SysProcAttr come filled in: add
// to them rather than replace them. The child is killed (Pdeathsig) when the OS thread that
// started it exits, which the Go runtime does only for a goroutine that ends while locked to
// its thread.
func Command(spec Spec, name string, args ...string) (*exec.Cmd, error) {
	path, err := exec.LookPath(name)
	if err != nil {
		return nil, fmt.Errorf("user namespace: look up %s: %w", name, err)
	}
	argv, _ := json.Marshal(append([]string{path}, args...))
	return child(spec, "/proc/self/exe", append([]string{name}, args...), execEnv+"="+string(argv))
}

// Reexec returns a command that runs the current binary again with args (args[0] is what
// the child sees as os.Args[0]) in namespaces as Command makes them. The child's main runs
// after the setup; Inside reports true there.
func Reexec(spec Spec, args ...string) (*exec.Cmd, error) {
	return child(spec, "/proc/self/exe", args)
}

// Start is a shorthand for Command(...) followed by cmd.Start; the Cmd is returned for Wait.
func Start(spec Spec, name string, args ...string) (*exec.Cmd, error) {
	cmd, err := Command(spec, name, args...)
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("user namespace: start %s: %w", name, err)
	}
	return cmd, nil
}

func child(spec Spec, path string, args []string, extraEnv ...string) (*exec.Cmd, error) {
	for _, d := range spec.Tmpfs {
		if !strings.HasPrefix(d, "/") {
			return nil, fmt.Errorf("user namespace: Spec.Tmpfs entry %q is not an absolute path; name the directory from /", d)
		}
	}
	js, err := json.Marshal(spec)
	if err != nil {
		return nil, fmt.Errorf("user namespace: encode spec: %w", err)
	}
	cmd := &exec.Cmd{Path: path, Args: args}
	cmd.Env = append(RootEnviron(os.Environ()), MarkerEnv+"=1", setupEnv+"="+string(js))
	cmd.Env = append(cmd.Env, extraEnv...)
	cmd.SysProcAttr = sysProcAttr()
	return cmd, nil
}

// sysProcAttr maps the caller's uid and gid, one id each, to 0. A single id needs no
// newuidmap: a process may map its own ids into a user namespace it creates, provided it
// gives up setgroups there (GidMappingsEnableSetgroups false), which keeps it from shedding
// supplementary groups that deny it access outside.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{
		Cloneflags:                 unix.CLONE_NEWUSER | unix.CLONE_NEWNS | unix.CLONE_NEWNET | unix.CLONE_NEWUTS,
		UidMappings:                []syscall.SysProcIDMap{{ContainerID: 0, HostID: os.Getuid(), Size: 1}},
		GidMappings:                []syscall.SysProcIDMap{{ContainerID: 0, HostID: os.Getgid(), Size: 1}},
		GidMappingsEnableSetgroups: false,
		// The child must not outlive a parent killed without the chance to stop it.
		Pdeathsig: unix.SIGKILL,
	}
}

// Inside reports whether this process runs in a user namespace made by Command or Reexec
// (or descends from such a process without leaving it): MarkerEnv is set, the process is
// uid 0, and its uid map is not the initial namespace's identity map.
func Inside() bool {
	return os.Getenv(MarkerEnv) == "1" && os.Geteuid() == 0 && Nested()
}

func init() {
	js, ok := os.LookupEnv(setupEnv)
	if !ok {
		return
	}
	os.Unsetenv(setupEnv)
	if !Nested() {
		// Not a child of Command or Reexec, which always make a user namespace: the
		// host's root run with an environment someone else left (`sudo -E`) must not
		// cover host directories or exec what the variables name. The program runs as
		// if they were not there.
		os.Unsetenv(execEnv)
		os.Unsetenv(probeEnv)
		return
	}
	if err := setup(js); err != nil {
		fmt.Fprintf(os.Stderr, "pontoon: user namespace setup: %v\n", err)
		os.Exit(ExitSetup)
	}
	if os.Getenv(probeEnv) == "1" {
		os.Exit(0)
	}
	argv, ok := os.LookupEnv(execEnv)
	if !ok {
		return
	}
	os.Unsetenv(execEnv)
	var a []string
	if err := json.Unmarshal([]byte(argv), &a); err != nil || len(a) == 0 {
		fmt.Fprintf(os.Stderr, "pontoon: user namespace: bad %s %q\n", execEnv, argv)
		os.Exit(ExitSetup)
	}
	err := unix.Exec(a[0], a, os.Environ())
	fmt.Fprintf(os.Stderr, "pontoon: user namespace: exec %s: %v\n", a[0], err)
	os.Exit(127)
}

// setup runs in the child before its program: the mount namespace is shared by all of the
// process's threads, so doing this while the Go runtime already has several is fine.
func setup(js string) error {
	var s Spec
	if err := json.Unmarshal([]byte(js), &s); err != nil {
		return fmt.Errorf("decode spec: %w", err)
	}
	// A mount namespace made in a less privileged user namespace receives the host's mount
	// events as a slave; private, nothing propagates in either direction.
	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
		return fmt.Errorf("make mounts private: %w", err)
	}
	for _, d := range s.Tmpfs {
		if err := unix.Mount("tmpfs", d, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, "mode=0755"); err != nil {
			return fmt.Errorf("mount tmpfs on %s: %w", d, err)
		}
	}
	if err := setLoopbackUp(); err != nil {
		return err
	}
	if s.Hostname != "" {
		if err := unix.Sethostname([]byte(s.Hostname)); err != nil {
			return fmt.Errorf("set hostname %q: %w", s.Hostname, err)
		}
	}
	return nil
}

// setLoopbackUp sets the new network namespace's lo up, as it is on a host: programs expect
// 127.0.0.1 and ::1 to work.
func setLoopbackUp() error {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("set lo up: %w", err)
	}
	defer unix.Close(fd)
	ifr, err := unix.NewIfreq("lo")
	if err != nil {
		return fmt.Errorf("set lo up: %w", err)
	}
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFFLAGS, ifr); err != nil {
		return fmt.Errorf("set lo up: read flags: %w", err)
	}
	ifr.SetUint16(ifr.Uint16() | unix.IFF_UP)
	if err := unix.IoctlIfreq(fd, unix.SIOCSIFFLAGS, ifr); err != nil {
		return fmt.Errorf("set lo up: %w", err)
	}
	return nil
}
