package testenv

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"

	"github.com/pontoon-dev/pontoon/internal/testkit"
	"github.com/pontoon-dev/pontoon/internal/userns"
	"github.com/pontoon-dev/pontoon/runtime"
	rtconfig "github.com/pontoon-dev/pontoon/runtime/config"
)

// ContainerOptions describe a container that Guest.StartContainer runs in a guest.
type ContainerOptions struct {
	// Argv is the command to run (required), looked up on the container's PATH.
	Argv []string
	// Env is NAME=value, in addition to PATH, HOME=/root and TERM.
	Env []string
	// Workdir is the working directory inside the container; empty: /work with a
	// ProjectDir, else /.
	Workdir string
	// Rootfs is a directory to use as the root filesystem (read-write). Empty, and without
	// Image: the host's system directories (/usr, /etc, /bin, /lib..., /opt) read-only with
	// a private /tmp, /root and /run, as pontoon.toml's default root.
	Rootfs string
	// Image is an image reference already in containerd's store (nothing is pulled), for
	// Runtime "containerd" only.
	Image string
	// ProjectDir, when set, is mounted read-write at /work.
	ProjectDir string
	// Runtime is the engine: "runc" (the default), "crun" or "containerd". containerd
	// needs a running daemon and the pontoon-containerd helper (see package runtime).
	Runtime string
	// Engine says where the engine keeps its state and how to reach containerd. An empty
	// RuntimeRoot is replaced by a directory of the Env, so the test's containers never
	// mix with others in `runc list`.
	Engine runtime.EngineOptions
	// Stdin is the container's stdin; nil: /dev/null.
	Stdin io.Reader
}

// Container is a container started in a guest by Guest.StartContainer.
type Container struct {
	guest *Guest
	argv  []string
	rc    *runtime.RunningContainer
	out   testkit.Buffer
	// returned is set once RunContainer handed the output to its caller: the cleanup then
	// does not log it again.
	returned atomic.Bool
}

// ContainerExitError is the error of a container that exited with a non-zero status; the
// status is 128+n for a container killed by signal n, and that of the engine (runc and crun
// 1, the containerd helper 125) when it could not run the container at all.
type ContainerExitError struct {
	ID   string
	Code int
}

func (e *ContainerExitError) Error() string {
	return fmt.Sprintf("container %s exited with status %d", e.ID, e.Code)
}

var containerCount atomic.Int64

// StartContainer starts a container in the guest with a container engine (runc unless
// opt.Runtime says otherwise) and returns it. The container shares the guest's network and
// UTS namespaces -- its address, its hostname, and every partition and impairment applied
// to it -- and sees the guest's /etc/hosts (which names every guest of the Env, also those
// added later) and /etc/resolv.conf, bind-mounted read-only. Its stdout and stderr are
// captured (Container.Output) and logged at the end of the test. It is killed when ctx is
// done, and killed and deleted -- runtime state and bundle -- when the test ends, also on
// failure or panic. The test fails when the container cannot be set up; it skips when the
// engine is not installed, and for containerd when the test runs in a user namespace.
func (g *Guest) StartContainer(ctx context.Context, opt ContainerOptions) *Container {
	t := g.env.t
	t.Helper()
	c, err := g.startContainer(ctx, opt)
	if errors.Is(err, errNoEngine) || errors.Is(err, errRootlessEngine) {
		t.Skipf("testenv: %v", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// RunContainer runs a container in the guest to completion, as StartContainer does, deletes
// it and returns its combined stdout and stderr. A non-zero exit gives an error wrapping
// *ContainerExitError. RunContainer does not fail the test and may be called from any
// goroutine while the test runs.
func (g *Guest) RunContainer(ctx context.Context, opt ContainerOptions) (string, error) {
	c, err := g.startContainer(ctx, opt)
	if err != nil {
		return "", err
	}
	err = c.Wait()
	if derr := c.rc.Delete(); derr != nil && err == nil {
		err = derr
	}
	out := c.Output()
	c.returned.Store(true)
	if err != nil {
		return out, fmt.Errorf("testenv: run container %q in guest %s: %w; output: %s", strings.Join(c.argv, " "), g.name, err, strings.TrimSpace(out))
	}
	return out, nil
}

// errNoEngine marks a container engine that is not installed, for StartContainer to skip.
var errNoEngine = errors.New("container engine not installed")

// errRootlessEngine marks an engine that cannot run containers in a user namespace, for
// StartContainer to skip.
var errRootlessEngine = errors.New("needs the host's root")

func (g *Guest) startContainer(ctx context.Context, opt ContainerOptions) (*Container, error) {
	e := g.env
	if len(opt.Argv) == 0 {
		return nil, fmt.Errorf("testenv: start container in guest %s: no command given; set ContainerOptions.Argv", g.name)
	}
	if opt.Rootfs != "" && opt.Image != "" {
		return nil, fmt.Errorf("testenv: start container in guest %s: both Rootfs %q and Image %q given; set one of them", g.name, opt.Rootfs, opt.Image)
	}
	root := rtconfig.Root{Kind: rtconfig.RootHost}
	switch {
	case opt.Rootfs != "":
		abs, err := filepath.Abs(opt.Rootfs)
		if err != nil {
			return nil, fmt.Errorf("testenv: start container in guest %s: resolve Rootfs %q: %w", g.name, opt.Rootfs, err)
		}
		root = rtconfig.Root{Kind: rtconfig.RootRootfs, Path: abs}
	case opt.Image != "":
		root = rtconfig.Root{Kind: rtconfig.RootImage, Image: opt.Image}
	}
	rt := rtconfig.Runtime(opt.Runtime)
	switch rt {
	case rtconfig.RuntimeRunc, rtconfig.RuntimeCrun, "":
		bin := string(rt)
		if bin == "" {
			bin = string(rtconfig.RuntimeRunc)
		}
		if _, err := exec.LookPath(bin); err != nil {
			return nil, fmt.Errorf("%w: %s is not installed (Debian package %s)", errNoEngine, bin, bin)
		}
	}
	if rt == rtconfig.RuntimeContainerd && userns.Inside() {
		// runc and crun run rootless in the user namespace; containerd's daemon is the host's.
		return nil, fmt.Errorf("%w: containerd's daemon runs as the host's root and cannot create containers in a user namespace; use runc or crun", errRootlessEngine)
	}
	dir := filepath.Join(e.sb.Dir, "containers")
	eng := opt.Engine
	if eng.RuntimeRoot == "" {
		eng.RuntimeRoot = filepath.Join(dir, "engine")
	}
	c := &Container{guest: g, argv: opt.Argv}
	spec := runtime.ContainerSpec{
		ID:   fmt.Sprintf("testenv-%d-%d-%s", os.Getpid(), containerCount.Add(1), g.name),
		Args: opt.Argv, Env: opt.Env, Workdir: opt.Workdir,
		Root: root, ProjectDir: opt.ProjectDir,
		Netns: g.netns, UTS: g.uts,
		HostsFile: e.hostsFile, ResolvConfFile: e.resolv,
		Runtime: rt, Stdin: opt.Stdin, Stdout: &c.out, Stderr: &c.out,
		BundleDir: filepath.Join(dir, "bundles"),
	}
	rc, err := runtime.StartContainer(ctx, spec, eng)
	if err != nil {
		return nil, fmt.Errorf("testenv: start container %q in guest %s: %w", strings.Join(opt.Argv, " "), g.name, err)
	}
	c.rc = rc
	// Registered after New's cleanup, so it runs before it: the container goes while its
	// guest's namespaces still exist.
	e.t.Cleanup(func() {
		c.rc.Kill()
		if !c.returned.Load() {
			e.t.Logf("testenv: %s; output:\n%s", c, indent(c.Output()))
		}
		if err := c.rc.Delete(); err != nil {
			e.t.Errorf("testenv: cleanup: %v", err)
		}
	})
	return c, nil
}

// ID returns the engine's container id.
func (c *Container) ID() string { return c.rc.ID() }

// Guest returns the guest the container runs in.
func (c *Container) Guest() *Guest { return c.guest }

// Wait waits for the container to exit and returns nil for exit status 0, else a
// *ContainerExitError. It may be called any number of times, from any goroutine.
func (c *Container) Wait() error {
	if code := c.rc.Wait(); code != 0 {
		return &ContainerExitError{ID: c.rc.ID(), Code: code}
	}
	return nil
}

// ExitCode returns the container's exit status once it has exited (see ContainerExitError
// for its meaning), and -1 while it runs.
func (c *Container) ExitCode() int {
	if !c.rc.Exited() {
		return -1
	}
	return c.rc.Wait()
}

// Exited reports whether the container has exited.
func (c *Container) Exited() bool { return c.rc.Exited() }

// Done returns a channel closed when the container has exited.
func (c *Container) Done() <-chan struct{} { return c.rc.Done() }

// Signal sends sig to the container's init process (its pid 1). Signalling a container that
// has exited does nothing.
func (c *Container) Signal(sig syscall.Signal) error { return c.rc.Signal(sig) }

// Kill kills every process of the container and waits until it has exited. Its runtime
// state and bundle stay until the end of the test.
func (c *Container) Kill() { c.rc.Kill() }

// Output returns what the container wrote to stdout and stderr so far, with the engine's
// own messages. Engines copy the two streams separately, so lines of one may come before
// earlier lines of the other.
func (c *Container) Output() string { return c.out.String() }

// String describes the container, e.g. `container testenv-1-1-n1 "kvnode --id 1" (runc) in
// guest n1: exit status 1`.
func (c *Container) String() string {
	s := fmt.Sprintf("container %s %q (%s) in guest %s", c.rc.ID(), strings.Join(c.argv, " "), c.rc.Engine(), c.guest.name)
	if !c.rc.Exited() {
		return s + ": running"
	}
	return fmt.Sprintf("%s: exit status %d", s, c.rc.Wait())
}
