// Package enginetest holds the scenario every runtime engine must pass with pontoon's hook,
// and a throwaway containerd daemon for the containerd engine's tests.
package enginetest

import (
	"bytes"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/pontoon-dev/pontoon/hooks/hooktest"
	"github.com/pontoon-dev/pontoon/netsetup"
	"github.com/pontoon-dev/pontoon/netsetup/sandbox"
	"github.com/pontoon-dev/pontoon/runtime"
	"github.com/pontoon-dev/pontoon/runtime/config"
)

// Env is a sandboxed chain with a busybox root filesystem and a bundle directory.
type Env struct {
	T      *testing.T
	S      *sandbox.Sandbox
	Rootfs string
	Dir    string
	Self   string // the test binary, which acts as the hook
	Engine runtime.Engine
}

// New returns an Env for eng; everything is removed when the test ends.
func New(t *testing.T, eng runtime.Engine) *Env {
	t.Helper()
	s := hooktest.Chain(t)
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	return &Env{T: t, S: s, Rootfs: hooktest.Rootfs(t, dir), Dir: dir, Self: self, Engine: eng}
}

var ids atomic.Int64

// Guest describes a busybox container that is a guest of bridge with ip.
func (e *Env) Guest(bridge, name, ip string, args ...string) *runtime.Container {
	return &runtime.Container{
		ID:       fmt.Sprintf("pontoon-test-%d-%d-%s-%s", os.Getpid(), ids.Add(1), bridge, name),
		Name:     name,
		Args:     args,
		Root:     config.Root{Kind: config.RootRootfs, Path: e.Rootfs},
		Net:      runtime.NetGuest,
		Hostname: name,
		Guest:    &runtime.Guest{Bridge: bridge, Name: name, IP: netip.MustParseAddr(ip)},
		Pontoon:  e.Self,
		ChainEnv: e.S.Env,
	}
}

// Running is a container started in the background.
type Running struct {
	C    *runtime.Container
	Cmd  *exec.Cmd
	Out  *bytes.Buffer
	done chan struct{}
}

// Start writes c's bundle and starts it in the background; the test's end kills it.
func (e *Env) Start(c *runtime.Container) *Running {
	e.T.Helper()
	bundle := filepath.Join(e.Dir, c.ID)
	if err := runtime.WriteBundle(bundle, c); err != nil {
		e.T.Fatal(err)
	}
	r := &Running{C: c, Cmd: e.Engine.Command(c.ID, bundle, "", false), Out: &bytes.Buffer{}, done: make(chan struct{})}
	r.Cmd.Stdout, r.Cmd.Stderr = r.Out, r.Out
	r.Cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := r.Cmd.Start(); err != nil {
		e.T.Fatal(err)
	}
	go func() { r.Cmd.Wait(); close(r.done) }()
	e.T.Cleanup(func() { e.Stop(r) })
	return r
}

// Stop kills a background container and waits for its engine to finish.
func (e *Env) Stop(r *Running) {
	select {
	case <-r.done:
		return
	default:
	}
	e.Engine.Kill(r.C.ID, syscall.SIGKILL)
	select {
	case <-r.done:
	case <-time.After(10 * time.Second):
		r.Cmd.Process.Kill()
		<-r.done
		e.Engine.Delete(r.C.ID)
	}
}

// Run runs c in the foreground and returns its output and exit status.
func (e *Env) Run(c *runtime.Container) (string, int) {
	e.T.Helper()
	bundle := filepath.Join(e.Dir, c.ID)
	if err := runtime.WriteBundle(bundle, c); err != nil {
		e.T.Fatal(err)
	}
	cmd := e.Engine.Command(c.ID, bundle, "", false)
	out, err := cmd.CombinedOutput()
	if err != nil {
		if ee, ok := err.(*exec.ExitError); ok {
			return string(out), ee.ExitCode()
		}
		e.T.Fatalf("run %s: %v", c.Name, err)
	}
	return string(out), 0
}

// Serve is a busybox shell line answering HTTP on port 7000 with text.
func Serve(text string) []string {
	return []string{"/bin/sh", "-c", fmt.Sprintf("mkdir -p /tmp/w && echo %s > /tmp/w/index.html && exec httpd -f -p 7000 -h /tmp/w", text)}
}

// Fetch is a busybox shell line that GETs http://ip:7000/, retrying while the server
// starts. (busybox's wget crashes on -T, hence no timeout of its own.)
func Fetch(ip string) []string {
	return []string{"/bin/sh", "-c", fmt.Sprintf("for i in $(seq 300); do wget -q -O- http://%s:7000/ 2>/dev/null && exit 0; sleep 0.1; done; exit 1", ip)}
}

// Scenario is what every engine must do with pontoon's hook: two containers on one bridge
// reach each other by address, a container with the same address on another bridge does
// not interfere, a container whose annotations are invalid is refused with the hook's
// message and leaves nothing attached, and containers that stop are detached.
func (e *Env) Scenario() {
	t := e.T
	t.Helper()
	for _, b := range []string{"ea", "eb"} {
		if _, err := netsetup.CreateBridge(e.S.Env, b, netsetup.BridgeOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	srvA := e.Start(e.Guest("ea", "server", "172.18.0.1", Serve("pong-a")...))
	srvB := e.Start(e.Guest("eb", "server", "172.18.0.1", Serve("pong-b")...))
	for _, c := range []struct{ bridge, want string }{{"ea", "pong-a"}, {"eb", "pong-b"}} {
		out, code := e.Run(e.Guest(c.bridge, "client", "172.18.0.2", Fetch("172.18.0.1")...))
		if code != 0 || strings.TrimSpace(out) != c.want {
			t.Fatalf("client on %s: status %d, output %q; want %q\nserver output: %s%s", c.bridge, code, out, c.want, srvA.Out, srvB.Out)
		}
	}
	if got := attached(t, e.S.Env); got != "ea/server eb/server" {
		t.Fatalf("attached after the clients exited: %s", got)
	}

	bad := []struct {
		c   *runtime.Container
		msg string
	}{
		{e.Guest("nosuch", "client", "172.18.0.2", "true"), "annotation pontoon.bridge: bridge"},
		{e.Guest("ea", "client", "172.18.0.1", "true"), "annotation pontoon.ip: address 172.18.0.1 is already used by guest"},
		{e.Guest("ea", "server", "172.18.0.3", "true"), "annotation pontoon.guest: bridge"},
	}
	for _, b := range bad {
		out, code := e.Run(b.c)
		// Engines quote the hook's message in their own ways; compare unquoted text.
		if code == 0 || !strings.Contains(out, b.msg) {
			t.Fatalf("%s ran a container the hook refused: status %d, output:\n%s\nwant a message containing %q", e.Engine.Name(), code, out, b.msg)
		}
		if got := attached(t, e.S.Env); got != "ea/server eb/server" {
			t.Fatalf("attached after a refused container: %s", got)
		}
	}
	// Annotations edited into a bundle by hand: bad values never reach anything but the
	// hook's validation.
	c := e.Guest("ea", "client", "172.18.0.2", "true")
	bundle := filepath.Join(e.Dir, c.ID+"-edited")
	if err := runtime.WriteBundle(bundle, c); err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(bundle, "config.json")
	data, _ := os.ReadFile(cfg)
	data = bytes.Replace(data, []byte(`"pontoon.ip": "172.18.0.2"`), []byte(`"pontoon.ip": "$(touch /tmp/pwned)"`), 1)
	if err := os.WriteFile(cfg, data, 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := e.Engine.Command(c.ID, bundle, "", false).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "is not an IPv4 address; use the guest's fixed address") {
		t.Fatalf("%s ran a container with a bad pontoon.ip: %v\n%s", e.Engine.Name(), err, out)
	}

	e.Stop(srvA)
	e.Stop(srvB)
	if got := attached(t, e.S.Env); got != "" {
		t.Fatalf("attached after every container stopped: %s", got)
	}
}

func attached(t *testing.T, env netsetup.Env) string {
	t.Helper()
	got, err := hooktest.Attached(env)
	if err != nil {
		t.Fatal(err)
	}
	return strings.Join(got, " ")
}

// Containerd is a containerd daemon private to one test.
type Containerd struct {
	Address   string
	Namespace string
}

// StartContainerd starts Debian's containerd with its own configuration, root, state and
// socket under a temporary directory, and stops it when the test ends. The namespace is
// unique to this test process, so the runc state its shims keep never meets another's.
func StartContainerd(t *testing.T) Containerd {
	t.Helper()
	hooktest.NeedRoot(t)
	bin := hooktest.NeedCommand(t, "containerd", "containerd")
	hooktest.NeedCommand(t, "containerd-shim-runc-v2", "containerd")
	dir := t.TempDir()
	sock := filepath.Join(dir, "containerd.sock")
	// containerd 1.6's shims put their sockets in /run/containerd/s whatever the
	// configuration says; the directory goes again if this test made it.
	_, statErr := os.Stat("/run/containerd")
	if os.IsNotExist(statErr) {
		t.Cleanup(func() {
			os.Remove("/run/containerd/s")
			os.Remove("/run/containerd/runc")
			os.Remove("/run/containerd")
		})
	}
	cfg := fmt.Sprintf(`version = 2
root = %q
state = %q
disabled_plugins = ["io.containerd.grpc.v1.cri", "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs",
  "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.aufs", "io.containerd.tracing.processor.v1.otlp",
  "io.containerd.internal.v1.tracing"]
[grpc]
  address = %q
[ttrpc]
  address = %q
[debug]
  address = ""
[metrics]
  address = ""
`, filepath.Join(dir, "root"), filepath.Join(dir, "state"), sock, sock+".ttrpc")
	cfgPath := filepath.Join(dir, "config.toml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	log, err := os.Create(filepath.Join(dir, "containerd.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "--config", cfgPath)
	cmd.Stdout, cmd.Stderr = log, log
	// No Pdeathsig: it fires when the forking thread ends, and namespace switches in the
	// test end threads at random (see runtime's forker).
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); log.Close(); close(done) }()
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-done
		}
		if t.Failed() {
			data, _ := os.ReadFile(filepath.Join(dir, "containerd.log"))
			t.Logf("containerd log:\n%s", data)
		}
	})
	for i := 0; ; i++ {
		if _, err := os.Stat(sock); err == nil {
			break
		}
		select {
		case <-done:
			data, _ := os.ReadFile(filepath.Join(dir, "containerd.log"))
			t.Fatalf("containerd exited at start:\n%s", data)
		case <-time.After(20 * time.Millisecond):
		}
		if i > 500 {
			t.Fatal("containerd did not create its socket within 10s")
		}
	}
	return Containerd{Address: sock, Namespace: fmt.Sprintf("pontoon-test-%d", os.Getpid())}
}
