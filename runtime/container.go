package runtime

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/pontoon-dev/pontoon/internal/sigready"
	"github.com/pontoon-dev/pontoon/runtime/config"
)

// ContainerSpec describes one container that joins namespaces that already exist -- a
// guest's network namespace and, when given, its UTS namespace -- for StartContainer. The
// network is attached already, so no hook runs.
type ContainerSpec struct {
	// ID is the engine's container id, unique within the engine's state directory; empty:
	// "pontoon-<pid>-<n>". Name names the container in errors; empty: ID.
	ID, Name string
	// Args is the command to run (required); it is looked up on the container's PATH.
	Args []string
	// Env is NAME=value, in addition to PATH, HOME=/root and TERM.
	Env []string
	// Workdir is the working directory inside the container; empty: /work with a
	// ProjectDir, else /.
	Workdir string
	// Root is the root filesystem, as in pontoon.toml: the zero value or RootHost shares
	// the host's system directories read-only with a private /tmp, /root and /run;
	// RootRootfs uses a directory (a relative path is resolved against ProjectDir, else
	// the current directory); RootImage an image already in containerd's store (Runtime
	// containerd only).
	Root config.Root
	// ProjectDir, when set, is mounted read-write at /work.
	ProjectDir string
	// Netns is the path of the network namespace to join (required), e.g. a guest's.
	Netns string
	// UTS is the path of a UTS namespace to join, e.g. the guest's, whose hostname the
	// container then shares. Without it the container gets a UTS namespace of its own
	// named Hostname, else ID.
	UTS      string
	Hostname string
	// Hosts and ResolvConf are the contents of the container's /etc/hosts and
	// /etc/resolv.conf. HostsFile and ResolvConfFile name host files to bind-mount there
	// instead, whose later in-place changes the container sees. Both are mounted
	// read-only; when neither is set the root filesystem's own file stays.
	Hosts, ResolvConf         []byte
	HostsFile, ResolvConfFile string
	// Runtime is the engine: runc (the default), crun or containerd.
	Runtime config.Runtime
	// Stdin, Stdout and Stderr are the container's stdio; nil: /dev/null.
	Stdin          io.Reader
	Stdout, Stderr io.Writer
	// BundleDir is where the container's bundle directory is created; empty:
	// <os.TempDir()>/pontoon-containers. Bundle directories of processes that died without
	// deleting their containers are removed there by the next StartContainer.
	BundleDir string
}

// DefaultKillTimeout is how long RunningContainer.Kill waits for the engine to kill a
// container before it kills the engine process itself.
const DefaultKillTimeout = 10 * time.Second

// RunningContainer is a container started by StartContainer. Its methods are safe for
// concurrent use.
type RunningContainer struct {
	id, name string
	dir      string // the bundle directory, removed by Delete
	eng      Engine
	cmd      *exec.Cmd
	done     chan struct{}
	code     int // valid once done is closed

	mu      sync.Mutex
	deleted bool

	// sigMu serialises Signal, whose gate holds a signal sent while the container starts.
	sigMu sync.Mutex
	gate  sigready.Gate
}

var containerIDs atomic.Int64

// containerForker starts every engine process of StartContainer from one OS thread that
// lives as long as the process (see forker): their Pdeathsig fires only when this process
// dies.
var containerForker = sync.OnceValue(newForker)

// StartContainer writes the bundle of the container spec describes and starts it with the
// engine spec.Runtime names, in the background. The container joins spec.Netns (and
// spec.UTS); its mount, pid and IPC namespaces are its own. Cancelling ctx kills the
// container as Kill does. The container's runtime state and bundle stay until Delete, which
// the caller must call however the container ends; should this process die first, the
// engine gets SIGTERM, which it passes to the container.
func StartContainer(ctx context.Context, spec ContainerSpec, opt EngineOptions) (*RunningContainer, error) {
	id := spec.ID
	if id == "" {
		id = fmt.Sprintf("pontoon-%d-%d", os.Getpid(), containerIDs.Add(1))
	}
	name := spec.Name
	if name == "" {
		name = id
	}
	if len(spec.Args) == 0 {
		return nil, fmt.Errorf("container %s: no command to run; set ContainerSpec.Args", name)
	}
	if spec.Netns == "" {
		return nil, fmt.Errorf("container %s: no network namespace to join; set ContainerSpec.Netns to its path (a guest's)", name)
	}
	root := spec.Root
	switch root.Kind {
	case config.RootRootfs:
		if root.Path == "" {
			return nil, fmt.Errorf("container %s: rootfs root without a path; set Root.Path to the root filesystem's directory", name)
		}
		if !filepath.IsAbs(root.Path) && spec.ProjectDir == "" {
			abs, err := filepath.Abs(root.Path)
			if err != nil {
				return nil, fmt.Errorf("container %s: resolve rootfs %s: %w", name, root.Path, err)
			}
			root.Path = abs
		}
	case config.RootImage:
		if root.Image == "" {
			return nil, fmt.Errorf("container %s: image root without an image; set Root.Image to a reference in containerd's store", name)
		}
		if spec.Runtime != config.RuntimeContainerd {
			return nil, fmt.Errorf("container %s: an image root needs runtime containerd, not %q; use a host or rootfs root with runc and crun", name, runtimeName(spec.Runtime))
		}
	}
	hostname := spec.Hostname
	if hostname == "" && spec.UTS == "" {
		hostname = id
		if len(hostname) > 64 {
			hostname = hostname[:64] // the kernel's limit
		}
	}
	eng, err := NewEngine(spec.Runtime, opt)
	if err != nil {
		return nil, fmt.Errorf("container %s: %w", name, err)
	}
	parent := spec.BundleDir
	if parent == "" {
		parent = defaultContainerDir()
	}
	bd, err := newBundleDir(parent, id, opt)
	if err != nil {
		return nil, fmt.Errorf("container %s: %w", name, err)
	}
	dir := bd.path
	c := &Container{
		ID: id, Name: name, Args: spec.Args, Env: spec.Env, Workdir: spec.Workdir,
		Root: root, ProjectDir: spec.ProjectDir,
		Net: NetJoin, Netns: spec.Netns, UTS: spec.UTS, Hostname: hostname,
		Hosts: spec.Hosts, ResolvConf: spec.ResolvConf, HostsFile: spec.HostsFile, ResolvConfFile: spec.ResolvConfFile,
	}
	bundle := filepath.Join(dir, "bundle")
	if err := WriteBundle(bundle, c); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	if err := bd.addContainer(id, config.Runtime(eng.Name())); err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("container %s: %w", name, err)
	}
	cmd := eng.Command(id, bundle, root.Image, spec.Stdin != nil)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = spec.Stdin, spec.Stdout, spec.Stderr
	// Its own process group: signals meant for this process (a terminal's Ctrl-C) reach the
	// container only through Signal. Pdeathsig: see containerForker.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
	// A process that escaped the container must not hold Wait open through the output
	// pipes.
	cmd.WaitDelay = 2 * time.Second
	if err := containerForker().start(cmd); err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("start container %s with %s: %w", name, eng.Name(), err)
	}
	// Failing to record the engine only narrows what GC can do should this process die.
	bd.started(id, cmd.Process.Pid)
	r := &RunningContainer{id: id, name: name, dir: dir, eng: eng, cmd: cmd, done: make(chan struct{}),
		gate: signalGate(eng, id, c.Init)}
	go func() {
		err := cmd.Wait()
		r.code = exitCode(cmd.ProcessState, err)
		close(r.done)
	}()
	if ctx.Done() != nil {
		go func() {
			select {
			case <-ctx.Done():
				r.Kill()
			case <-r.done:
			}
		}()
	}
	return r, nil
}

func runtimeName(r config.Runtime) config.Runtime {
	if r == "" {
		return config.RuntimeRunc
	}
	return r
}

// ID returns the engine's container id.
func (r *RunningContainer) ID() string { return r.id }

// Engine returns the name of the engine running the container: runc, crun or containerd.
func (r *RunningContainer) Engine() string { return r.eng.Name() }

// Bundle returns the container's bundle directory (config.json, rootfs).
func (r *RunningContainer) Bundle() string { return filepath.Join(r.dir, "bundle") }

// Wait waits for the container to exit and returns its exit status: the container's own,
// 128+n for a container (or engine) ended by signal n, or the engine's status when the
// engine could not run the container (runc and crun 1, the containerd helper 125; their
// reason is on Stderr). It may be called any number of times, from any goroutine.
func (r *RunningContainer) Wait() int {
	<-r.done
	return r.code
}

// Done returns a channel closed when the container has exited.
func (r *RunningContainer) Done() <-chan struct{} { return r.done }

// Exited reports whether the container has exited.
func (r *RunningContainer) Exited() bool {
	select {
	case <-r.done:
		return true
	default:
		return false
	}
}

// Signal sends sig to the container's init process through its engine, which forwards the
// signals it receives; SIGKILL, which no process can forward, goes through the engine's
// kill command. A container still starting gets it once its program can take it, and
// Signal returns then (see sigready). Signalling a container that has exited does nothing.
func (r *RunningContainer) Signal(sig syscall.Signal) error {
	if r.Exited() {
		return nil
	}
	if sig == syscall.SIGKILL {
		return r.eng.Kill(r.id, sig)
	}
	r.sigMu.Lock()
	defer r.sigMu.Unlock()
	var err error
	r.gate.Add(sig)
	for r.gate.Release(func(sig syscall.Signal) { err = r.cmd.Process.Signal(sig) }) && !r.Exited() {
		time.Sleep(sigready.Poll)
	}
	if err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("signal container %s: %w", r.name, err)
	}
	return nil
}

// Kill kills the container (every process in it) and waits until it has exited. The kill is
// repeated while the engine may still be creating the container; should the engine not end
// within DefaultKillTimeout, its process is killed too and Delete removes what it left.
func (r *RunningContainer) Kill() {
	deadline := time.Now().Add(DefaultKillTimeout)
	for !r.Exited() {
		// Errors are expected while the container is being created or is already gone;
		// the loop ends on the engine's exit either way.
		r.eng.Kill(r.id, syscall.SIGKILL)
		select {
		case <-r.done:
			return
		case <-time.After(200 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			r.cmd.Process.Kill()
			<-r.done
			return
		}
	}
}

// Delete kills the container if it still runs, then removes its runtime state and its
// bundle directory. Deleting a deleted container succeeds.
func (r *RunningContainer) Delete() error {
	r.Kill()
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.deleted {
		return nil
	}
	var errs []error
	if err := r.eng.Delete(r.id); err != nil {
		errs = append(errs, fmt.Errorf("delete container %s: %w", r.name, err))
	}
	if err := os.RemoveAll(r.dir); err != nil {
		errs = append(errs, fmt.Errorf("delete container %s: remove bundle: %w", r.name, err))
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	r.deleted = true
	return nil
}
