package hooks_test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/pontoon-dev/pontoon/hooks"
	"github.com/pontoon-dev/pontoon/hooks/hooktest"
	"github.com/pontoon-dev/pontoon/netsetup"
	"github.com/pontoon-dev/pontoon/netsetup/sandbox"
)

// podman runs podman against a private store under dir, so the test touches none of the
// host's containers or images. runc is the runtime: podman's default, crun, refuses this
// machine's hybrid cgroup layout.
type podman struct {
	t    *testing.T
	bin  string
	dir  string
	root string // the busybox root filesystem
	hook string // the hooks.d directory; "" runs podman without --hooks-dir
	// crun runs the containers instead of runc, from a mount namespace of podman's own whose
	// /sys/fs/cgroup is a plain cgroup2 mount: crun refuses this machine's hybrid layout.
	crun bool
}

// newPodman is a private podman under a temporary directory that runs pontoon's hooks.d
// entry for the chain s; every container it ran is removed when the test ends.
func newPodman(t *testing.T, bin string, s *sandbox.Sandbox) *podman {
	dir := t.TempDir()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	p := &podman{t: t, bin: bin, dir: dir, root: hooktest.Rootfs(t, dir), hook: filepath.Join(dir, "hooks.d")}
	if _, err := hooks.InstallPodman(p.hook, self, s.Env); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if out, err := p.cmd("rm", "--all", "--force", "--time", "0"); err != nil {
			t.Errorf("podman rm: %v\n%s", err, out)
		}
	})
	return p
}

func (p *podman) global() []string {
	return []string{"--root", filepath.Join(p.dir, "root"), "--runroot", filepath.Join(p.dir, "run"), "--tmpdir", filepath.Join(p.dir, "tmp"),
		"--cgroup-manager", "cgroupfs", "--events-backend", "none", "--storage-driver", "vfs"}
}

// run starts a container with the pontoon annotations and returns its combined output.
func (p *podman) run(opts []string, ann map[string]string, argv ...string) (string, error) {
	runtime := []string{"--runtime", "runc"}
	if p.crun {
		runtime = []string{"--runtime", "crun", "--cgroups", "disabled"}
	}
	args := append(append(p.global(), "run"), runtime...)
	args = append(args, "--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024",
		"--network", "none", "--tmpfs", "/tmp")
	if p.hook != "" {
		args = append(args, "--hooks-dir", p.hook)
	}
	args = append(args, opts...)
	for k, v := range ann {
		args = append(args, "--annotation", k+"="+v)
	}
	args = append(args, "--rootfs", p.root)
	args = append(args, argv...)
	cmd := exec.Command(p.bin, args...)
	if p.crun {
		cmd = exec.Command("unshare", append([]string{"--mount", "--propagation", "private", "sh", "-c",
			`mount -t tmpfs none /sys/fs/cgroup && mount -t cgroup2 none /sys/fs/cgroup && exec "$@"`, "sh", p.bin}, args...)...)
	}
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func (p *podman) cmd(args ...string) (string, error) {
	out, err := exec.Command(p.bin, append(p.global(), args...)...).CombinedOutput()
	return string(out), err
}

// serve is a shell line for busybox: answer every HTTP request on port 7000 with text.
func serve(text string) []string {
	return []string{"sh", "-c", fmt.Sprintf("mkdir -p /tmp/w && echo %s > /tmp/w/index.html && exec httpd -f -p 7000 -h /tmp/w", text)}
}

// fetch is a shell line for busybox: GET http://ip:7000/, retrying while the server starts.
func fetch(ip string) []string {
	return []string{"sh", "-c", fmt.Sprintf("for i in $(seq 300); do wget -q -O- http://%s:7000/ 2>/dev/null && exit 0; sleep 0.1; done; exit 1", ip)}
}

// TestPodman: podman runs pontoon's hook from the hooks.d entry `hook install --podman`
// writes. Two containers on one bridge reach each other; a container with the same address
// on another bridge does not interfere; bad annotations make podman refuse the container;
// poststop detaches.
func TestPodman(t *testing.T) {
	hooktest.NeedRoot(t)
	bin := hooktest.NeedCommand(t, "podman", "podman")
	hooktest.NeedCommand(t, "runc", "runc")
	s := hooktest.Chain(t)
	p := newPodman(t, bin, s)
	for _, b := range []string{"pa", "pb"} {
		if _, err := netsetup.CreateBridge(s.Env, b, netsetup.BridgeOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	prefix := fmt.Sprintf("pontoon-test-%d-", os.Getpid())
	for _, c := range []struct{ name, bridge, text string }{{"a", "pa", "pong-a"}, {"c", "pb", "pong-c"}} {
		if out, err := p.run([]string{"-d", "--name", prefix + c.name}, annotations(c.bridge, "server", "172.18.0.1"), serve(c.text)...); err != nil {
			t.Fatalf("start server on %s: %v\n%s", c.bridge, err, out)
		}
	}
	for _, c := range []struct{ bridge, want string }{{"pa", "pong-a"}, {"pb", "pong-c"}} {
		out, err := p.run([]string{"--rm"}, annotations(c.bridge, "client", "172.18.0.2"), fetch("172.18.0.1")...)
		if err != nil || strings.TrimSpace(out) != c.want {
			t.Fatalf("client on %s got %q (%v), want %q", c.bridge, out, err, c.want)
		}
	}
	// The clients ran with --rm: poststop detached them.
	if got, _ := hooktest.Attached(s.Env); strings.Join(got, " ") != "pa/server pb/server" {
		t.Fatalf("attached after the clients exited: %v", got)
	}

	bad := annotations("pa", "client", "172.18.0.300")
	out, err := p.run([]string{"--rm"}, bad, "true")
	if err == nil || !strings.Contains(out, `annotation pontoon.ip="172.18.0.300" is not an IPv4 address`) {
		t.Fatalf("podman ran a container with a bad address: %v\n%s", err, out)
	}
	taken := annotations("pa", "client", "172.18.0.1")
	out, err = p.run([]string{"--rm"}, taken, "true")
	if err == nil || !strings.Contains(out, "address 172.18.0.1 is already used") {
		t.Fatalf("podman ran a container with an address in use: %v\n%s", err, out)
	}
	// The guest's name is its address, not podman's loopback line for a container without a
	// network.
	out, err = p.run([]string{"--rm", "--hostname", "named"}, annotations("pa", "named", "172.18.0.4"), "cat", "/etc/hosts")
	if err != nil {
		t.Fatalf("podman run: %v\n%s", err, out)
	}
	for _, line := range strings.Split(out, "\n") {
		if f := strings.Fields(line); len(f) > 1 && slices.Contains(f[1:], "named") && f[0] != "172.18.0.4" && !strings.Contains(f[0], ":") {
			t.Errorf("the container's /etc/hosts maps its name to %s:\n%s", f[0], out)
		}
	}
	if !strings.Contains(out, "172.18.0.4\tnamed") {
		t.Errorf("the container's /etc/hosts lacks its own line:\n%s", out)
	}
	// pontoon.hostname is the container's hostname.
	withHost := annotations("pa", "named", "172.18.0.4")
	withHost[hooks.AnnotationHostname] = "pbhost"
	if out, err := p.run([]string{"--rm"}, withHost, "sh", "-c", "hostname; cat /etc/hostname"); err != nil || out != "pbhost\npbhost\n" {
		t.Fatalf("hostname and /etc/hostname of a container annotated pontoon.hostname=pbhost: %q (%v)", out, err)
	}
	// A guest and an address but no bridge: refused, not started off pontoon's network.
	noBridge := map[string]string{hooks.AnnotationGuest: "client", hooks.AnnotationIP: "172.18.0.3"}
	out, err = p.run([]string{"--rm"}, noBridge, "true")
	if err == nil || !strings.Contains(out, "annotation pontoon.bridge is missing") {
		t.Fatalf("podman ran a container with pontoon's annotations but no bridge: %v\n%s", err, out)
	}
	if got, _ := hooktest.Attached(s.Env); strings.Join(got, " ") != "pa/server pb/server" {
		t.Fatalf("attached after refused containers: %v", got)
	}

	if out, err := p.cmd("rm", "--force", "--time", "0", prefix+"a", prefix+"c"); err != nil {
		t.Fatalf("podman rm: %v\n%s", err, out)
	}
	if got, _ := hooktest.Attached(s.Env); len(got) != 0 {
		t.Fatalf("attached after the servers were removed: %v", got)
	}
}
