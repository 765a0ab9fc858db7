package containerd_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pontoon-dev/pontoon/hooks/hooktest"
	"github.com/pontoon-dev/pontoon/internal/testkit"
	"github.com/pontoon-dev/pontoon/netsetup"
	"github.com/pontoon-dev/pontoon/runtime"
	"github.com/pontoon-dev/pontoon/runtime/config"
	"github.com/pontoon-dev/pontoon/runtime/internal/enginetest"
)

// TestStartContainerContainerd runs containers that join guests' namespaces through
// containerd: one from an image in containerd's store, one from a root directory. They
// reach each other, see their guests' hostnames, and once killed and deleted leave no
// container in containerd.
func TestStartContainerContainerd(t *testing.T) {
	d := enginetest.StartContainerd(t)
	hooktest.NeedCommand(t, "ctr", "containerd")
	s := hooktest.Chain(t)
	self, _ := os.Executable()
	dir := t.TempDir()
	const ref = "localhost/pontoon-test/busybox:1"
	rootfs := hooktest.Rootfs(t, t.TempDir())
	archive := filepath.Join(dir, "image.tar")
	ociArchive(t, rootfs, ref, archive)
	if out, err := exec.Command("ctr", "--address", d.Address, "--namespace", d.Namespace, "images", "import", archive).CombinedOutput(); err != nil {
		t.Fatalf("import image: %v\n%s", err, out)
	}
	if _, err := netsetup.CreateBridge(s.Env, "cd", netsetup.BridgeOptions{}); err != nil {
		t.Fatal(err)
	}
	var guests []*netsetup.Guest
	for _, g := range []struct{ name, ip string }{{"ga", "172.18.0.1"}, {"gb", "172.18.0.2"}} {
		ng, err := netsetup.AddGuest(s.Env, "cd", g.name, netsetup.GuestOptions{IP: g.ip})
		if err != nil {
			t.Fatal(err)
		}
		guests = append(guests, ng)
	}
	opt := runtime.EngineOptions{ContainerdAddress: d.Address, ContainerdNamespace: d.Namespace,
		ContainerdHelper: []string{self, runtime.ContainerdHelperName}, RuntimeRoot: t.TempDir()}
	bundles := t.TempDir()
	start := func(g *netsetup.Guest, root config.Root, out *testkit.Buffer, args ...string) *runtime.RunningContainer {
		c, err := runtime.StartContainer(context.Background(), runtime.ContainerSpec{
			Args: args, Root: root, Netns: g.Netns, UTS: g.UTS, Runtime: config.RuntimeContainerd,
			Hosts: []byte("172.18.0.1 ga\n172.18.0.2 gb\n"), Stdout: out, Stderr: out, BundleDir: bundles,
		}, opt)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Delete() })
		return c
	}
	srvOut, cliOut := &testkit.Buffer{}, &testkit.Buffer{}
	srv := start(guests[0], config.Root{Kind: config.RootImage, Image: ref}, srvOut, enginetest.Serve("from-image")...)
	cli := start(guests[1], config.Root{Kind: config.RootRootfs, Path: rootfs}, cliOut, "/bin/sh", "-c",
		"for i in $(seq 300); do wget -q -O- http://ga:7000/ 2>/dev/null && break; sleep 0.1; done; hostname")
	if code := cli.Wait(); code != 0 || cliOut.String() != "from-image\ngb\n" {
		t.Fatalf("client: status %d, output %q; want the server's page and hostname gb\nserver output:\n%s", code, cliOut, srvOut)
	}
	srv.Kill()
	if code := srv.Wait(); code != 128+int(syscall.SIGKILL) {
		t.Errorf("killed server exited with %d, want %d", code, 128+int(syscall.SIGKILL))
	}
	for _, c := range []*runtime.RunningContainer{srv, cli, srv} {
		if err := c.Delete(); err != nil {
			t.Fatal(err)
		}
	}
	out, err := exec.Command("ctr", "--address", d.Address, "--namespace", d.Namespace, "containers", "list", "-q").CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != "" {
		t.Errorf("containers left in containerd: %q %v", out, err)
	}
	if ents, _ := os.ReadDir(bundles); len(ents) != 0 {
		t.Errorf("bundles left: %v", ents)
	}
}

// TestSignalAtStartContainerd: SIGTERM sent as a container starts through containerd is
// never lost. Before the program starts it ends the helper, which does not start it (143);
// after, the helper passes it on once the program can take it (internal/sigready): here its
// trap's status, 7.
func TestSignalAtStartContainerd(t *testing.T) {
	d := enginetest.StartContainerd(t)
	s := hooktest.Chain(t)
	self, _ := os.Executable()
	rootfs := hooktest.Rootfs(t, t.TempDir())
	if _, err := netsetup.CreateBridge(s.Env, "cs", netsetup.BridgeOptions{}); err != nil {
		t.Fatal(err)
	}
	g, err := netsetup.AddGuest(s.Env, "cs", "ga", netsetup.GuestOptions{IP: "172.18.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	opt := runtime.EngineOptions{ContainerdAddress: d.Address, ContainerdNamespace: d.Namespace,
		ContainerdHelper: []string{self, runtime.ContainerdHelperName}, RuntimeRoot: t.TempDir()}
	bundles := t.TempDir()
	trapped := 0
	for delay := time.Duration(0); delay <= 100*time.Millisecond; delay += 10 * time.Millisecond {
		out := &testkit.Buffer{}
		c, err := runtime.StartContainer(context.Background(), runtime.ContainerSpec{
			Args: []string{"/bin/sh", "-c", "trap 'exit 7' TERM; while true; do sleep 0.1; done"},
			Root: config.Root{Kind: config.RootRootfs, Path: rootfs}, Netns: g.Netns, UTS: g.UTS,
			Runtime: config.RuntimeContainerd, Stdout: out, Stderr: out, BundleDir: bundles,
		}, opt)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Delete() })
		time.Sleep(delay)
		if err := c.Signal(syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		select {
		case <-c.Done():
		case <-time.After(30 * time.Second):
			t.Fatalf("the container still runs 30s after SIGTERM sent %v after its start; output:\n%s", delay, out)
		}
		switch code := c.Wait(); code {
		case 7:
			trapped++
		case 128 + int(syscall.SIGTERM):
		default:
			t.Errorf("status after SIGTERM sent %v after its start: %d, want 7 (its trap's) or 143 (before the helper made it); output:\n%s", delay, code, out)
		}
		if err := c.Delete(); err != nil {
			t.Fatal(err)
		}
	}
	if trapped == 0 {
		t.Error("no SIGTERM reached a container's program: all ended its helper before it made the container")
	}
	out, err := exec.Command("ctr", "--address", d.Address, "--namespace", d.Namespace, "containers", "list", "-q").CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != "" {
		t.Errorf("containers left in containerd: %q %v", out, err)
	}
}
