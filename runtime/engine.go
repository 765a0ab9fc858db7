package runtime

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"

	"github.com/pontoon-dev/pontoon/runtime/config"
	"golang.org/x/sys/unix"
)

// Engine runs containers from bundles. Every engine is driven as a foreground process, the
// way `runc run` works: the process exits with the container's status and forwards the
// signals it receives to the container's init.
type Engine interface {
	// Name is the runtime's name as in pontoon.toml.
	Name() string
	// Command returns the foreground process that creates, starts and waits for container
	// id from bundle; image is the image reference of an image root, else empty; stdin says
	// whether the container reads the process's stdin.
	Command(id, bundle, image string, stdin bool) *exec.Cmd
	// Kill sends sig to the container's init.
	Kill(id string, sig syscall.Signal) error
	// Delete removes what is left of a container whose foreground process died before it
	// could clean up. Deleting a container that is gone succeeds.
	Delete(id string) error
}

// EngineOptions say where engines keep their state and how to reach them.
type EngineOptions struct {
	// RuntimeRoot is runc's or crun's --root (its state directory), and that of the runc
	// containerd's shim runs; empty: the runtime's default (/run/runc, /run/crun,
	// /run/containerd/runc).
	RuntimeRoot string
	// ContainerdAddress is containerd's socket; empty: $CONTAINERD_ADDRESS, else
	// /run/containerd/containerd.sock.
	ContainerdAddress string
	// ContainerdNamespace is the containerd namespace pontoon's containers live in; empty:
	// $CONTAINERD_NAMESPACE, else "pontoon".
	ContainerdNamespace string
	// ContainerdHelper is the argv prefix of the pontoon-containerd helper (see package
	// runtime/containerd); empty: pontoon-containerd next to the running binary, else on PATH.
	ContainerdHelper []string
}

// NewEngine returns the engine for runtime name, or an error saying what to install.
func NewEngine(name config.Runtime, opt EngineOptions) (Engine, error) {
	if err := rootlessEngine(name); err != nil && Rootless() {
		return nil, err
	}
	switch name {
	case config.RuntimeRunc, "":
		bin, err := lookPath("runc", "runc")
		if err != nil {
			return nil, err
		}
		return &ociEngine{name: "runc", bin: bin, root: opt.RuntimeRoot}, nil
	case config.RuntimeCrun:
		bin, err := lookPath("crun", "crun")
		if err != nil {
			return nil, err
		}
		e := &ociEngine{name: "crun", bin: bin, root: opt.RuntimeRoot}
		if !cgroup2Only() {
			// crun refuses a cgroup v1 or hybrid layout outright. Without cgroup management
			// it still needs a plain cgroup2 mount to look at, which a private mount
			// namespace provides without changing the host's mounts. The script is fixed;
			// the container's arguments reach it only as "$@".
			unshare, err := lookPath("unshare", "util-linux")
			if err != nil {
				return nil, err
			}
			e.wrap = []string{unshare, "--mount", "--propagation", "private", "--", "/bin/sh", "-c",
				`mount -t cgroup2 cgroup2 /sys/fs/cgroup && exec "$@"`, "crun", bin}
			if Rootless() {
				// Root of a user namespace may mount cgroup2 only in a cgroup namespace it owns.
				e.wrap = slices.Insert(e.wrap, 2, "--cgroup")
			}
			e.global = []string{"--cgroup-manager=disabled"}
		}
		return e, nil
	case config.RuntimeContainerd:
		return newContainerdEngine(opt)
	}
	return nil, fmt.Errorf("unknown runtime %q; use runc, crun or containerd", name)
}

// lookPath finds a runtime's program; another runtime is a way out.
func lookPath(bin, pkg string) (string, error) {
	p, err := lookTool(bin, pkg)
	if err != nil {
		return "", fmt.Errorf("%w or choose another runtime in pontoon.toml", err)
	}
	return p, nil
}

// lookTool finds a program pontoon needs whatever the runtime.
func lookTool(bin, pkg string) (string, error) {
	p, err := exec.LookPath(bin)
	if err != nil {
		return "", fmt.Errorf("%s is not installed; install it (Debian package %s)", bin, pkg)
	}
	return p, nil
}

// cgroup2Only reports whether /sys/fs/cgroup is a pure cgroup v2 hierarchy.
func cgroup2Only() bool {
	var st unix.Statfs_t
	return unix.Statfs("/sys/fs/cgroup", &st) == nil && st.Type == unix.CGROUP2_SUPER_MAGIC
}

// ociEngine drives runc or crun through their command lines.
type ociEngine struct {
	name   string
	bin    string
	root   string
	wrap   []string // runs the run command inside a wrapper (crun on a hybrid layout)
	global []string
}

func (e *ociEngine) Name() string { return e.name }

func (e *ociEngine) args(sub ...string) []string {
	var a []string
	if e.root != "" {
		a = append(a, "--root", e.root)
	}
	a = append(a, e.global...)
	return append(a, sub...)
}

func (e *ociEngine) Command(id, bundle, image string, stdin bool) *exec.Cmd {
	argv := append([]string{e.bin}, e.args("run", "--bundle", bundle, id)...)
	if len(e.wrap) > 0 {
		argv = append(append([]string(nil), e.wrap...), argv[1:]...)
	}
	return exec.Command(argv[0], argv[1:]...)
}

func (e *ociEngine) Kill(id string, sig syscall.Signal) error {
	return e.run(e.args("kill", id, strings.TrimPrefix(unix.SignalName(sig), "SIG"))...)
}

func (e *ociEngine) Delete(id string) error {
	return e.run(e.args("delete", "--force", id)...)
}

func (e *ociEngine) run(args ...string) error {
	out, err := exec.Command(e.bin, args...).CombinedOutput()
	if err != nil {
		msg := strings.TrimSpace(string(out))
		if strings.Contains(msg, "does not exist") || strings.Contains(msg, "not found") || strings.Contains(msg, "No such file") {
			return nil
		}
		return fmt.Errorf("%s %s: %w: %s", e.name, strings.Join(args, " "), err, msg)
	}
	return nil
}

// containerdEngine runs containers in containerd through the pontoon-containerd helper,
// which behaves like `runc run`. The helper is a separate binary so that pontoon itself,
// which engines start for every hook, does not carry containerd's client and its start-up
// cost.
type containerdEngine struct {
	helper    []string
	address   string
	namespace string
	runcRoot  string
}

// ContainerdHelperName is the helper binary's name.
const ContainerdHelperName = "pontoon-containerd"

func newContainerdEngine(opt EngineOptions) (Engine, error) {
	e := &containerdEngine{helper: opt.ContainerdHelper, address: opt.ContainerdAddress, namespace: opt.ContainerdNamespace, runcRoot: opt.RuntimeRoot}
	if e.address == "" {
		e.address = os.Getenv("CONTAINERD_ADDRESS")
	}
	if e.address == "" {
		e.address = "/run/containerd/containerd.sock"
	}
	if e.namespace == "" {
		e.namespace = os.Getenv("CONTAINERD_NAMESPACE")
	}
	if e.namespace == "" {
		e.namespace = "pontoon"
	}
	if len(e.helper) == 0 {
		if self, err := os.Executable(); err == nil {
			p := filepath.Join(filepath.Dir(self), ContainerdHelperName)
			if _, err := os.Stat(p); err == nil {
				e.helper = []string{p}
			}
		}
	}
	if len(e.helper) == 0 {
		p, err := exec.LookPath(ContainerdHelperName)
		if err != nil {
			return nil, fmt.Errorf("runtime containerd needs the %s helper next to pontoon or on PATH; build it with `go build -o DIR/%s ./runtime/containerd/%s`",
				ContainerdHelperName, ContainerdHelperName, ContainerdHelperName)
		}
		e.helper = []string{p}
	}
	if _, err := os.Stat(e.address); err != nil {
		return nil, fmt.Errorf("containerd socket %s: %w; start containerd, or point CONTAINERD_ADDRESS at its socket", e.address, err)
	}
	return e, nil
}

func (e *containerdEngine) Name() string { return "containerd" }

func (e *containerdEngine) argv(sub string, args ...string) []string {
	a := append(append([]string(nil), e.helper...), sub, "--address", e.address, "--namespace", e.namespace)
	return append(a, args...)
}

func (e *containerdEngine) Command(id, bundle, image string, stdin bool) *exec.Cmd {
	args := []string{"--bundle", bundle}
	if image != "" {
		args = append(args, "--image", image)
	}
	if stdin {
		args = append(args, "--stdin")
	}
	if e.runcRoot != "" {
		args = append(args, "--runc-root", e.runcRoot)
	}
	if runsInit(bundle) {
		args = append(args, "--init")
	}
	argv := e.argv("run", append(args, id)...)
	return exec.Command(argv[0], argv[1:]...)
}

func (e *containerdEngine) Kill(id string, sig syscall.Signal) error {
	argv := e.argv("kill", "--signal", strings.TrimPrefix(unix.SignalName(sig), "SIG"), id)
	if out, err := exec.Command(argv[0], argv[1:]...).CombinedOutput(); err != nil {
		return fmt.Errorf("containerd kill %s: %w: %s", id, err, strings.TrimSpace(string(out)))
	}
	return nil
}

func (e *containerdEngine) Delete(id string) error {
	argv := e.argv("delete", id)
	if out, err := exec.Command(argv[0], argv[1:]...).CombinedOutput(); err != nil {
		return fmt.Errorf("containerd delete %s: %w: %s", id, err, strings.TrimSpace(string(out)))
	}
	return nil
}

// runsInit reports whether the bundle's process is pontoon's container init, which the
// containerd helper holds signals for until it has started the program (sigready.Gate.Init).
func runsInit(bundle string) bool {
	var spec struct {
		Process *struct {
			Args []string `json:"args"`
		} `json:"process"`
	}
	data, err := os.ReadFile(filepath.Join(bundle, "config.json"))
	return err == nil && json.Unmarshal(data, &spec) == nil && spec.Process != nil &&
		len(spec.Process.Args) > 1 && spec.Process.Args[1] == InitCommand
}
