package runtime_test

import (
	"context"
	"net/netip"
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
)

// TestStartContainerErrors: bad specs are refused before anything is created, naming the
// field to fix.
func TestStartContainerErrors(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		name string
		spec runtime.ContainerSpec
		want string
	}{
		{"no args", runtime.ContainerSpec{Netns: "/x"}, "set ContainerSpec.Args"},
		{"no netns", runtime.ContainerSpec{Args: []string{"true"}}, "set ContainerSpec.Netns"},
		{"rootfs without path", runtime.ContainerSpec{Args: []string{"true"}, Netns: "/x", Root: config.Root{Kind: config.RootRootfs}}, "set Root.Path"},
		{"image without reference", runtime.ContainerSpec{Args: []string{"true"}, Netns: "/x", Runtime: config.RuntimeContainerd, Root: config.Root{Kind: config.RootImage}}, "set Root.Image"},
		{"image with runc", runtime.ContainerSpec{Args: []string{"true"}, Netns: "/x", Root: config.Root{Kind: config.RootImage, Image: "a:1"}}, `needs runtime containerd, not "runc"`},
		{"unknown runtime", runtime.ContainerSpec{Args: []string{"true"}, Netns: "/x", Runtime: "kata"}, `unknown runtime "kata"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.spec.BundleDir = dir
			c, err := runtime.StartContainer(context.Background(), tc.spec, runtime.EngineOptions{})
			if err == nil {
				c.Delete()
				t.Fatalf("StartContainer succeeded; want an error containing %q", tc.want)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err = %v; want it to contain %q", err, tc.want)
			}
		})
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Errorf("refused specs left bundles: %v", ents)
	}
}

// TestJoinSpec: a container joining a guest's namespaces asks the engine to join them by
// path and never to set a hostname in a namespace it shares.
func TestJoinSpec(t *testing.T) {
	c := &runtime.Container{Name: "c", Args: []string{"true"}, Net: runtime.NetJoin, Netns: "/run/netns/g", UTS: "/run/netns/g-uts",
		HostsFile: "/srv/hosts", ResolvConfFile: "/srv/resolv.conf", Hosts: []byte("ignored")}
	s, err := c.Spec("/b")
	if err != nil {
		t.Fatal(err)
	}
	joined := map[string]string{}
	for _, n := range s.Linux.Namespaces {
		joined[string(n.Type)] = n.Path
	}
	if joined["network"] != "/run/netns/g" || joined["uts"] != "/run/netns/g-uts" || s.Hostname != "" {
		t.Errorf("namespaces %v, hostname %q; want network and uts joined by path, no hostname", joined, s.Hostname)
	}
	mounts := map[string]string{}
	for _, m := range s.Mounts {
		mounts[m.Destination] = m.Source + " " + strings.Join(m.Options, ",")
	}
	if mounts["/etc/hosts"] != "/srv/hosts bind,ro" || mounts["/etc/resolv.conf"] != "/srv/resolv.conf bind,ro" {
		t.Errorf("hosts mount %q, resolv.conf mount %q; want the given files bound read-only", mounts["/etc/hosts"], mounts["/etc/resolv.conf"])
	}
	for _, bad := range []runtime.Container{
		{Name: "c", Args: []string{"true"}, Net: runtime.NetJoin, UTS: "/u", Hostname: "h", Netns: "/n"},
		{Name: "c", Args: []string{"true"}, Net: runtime.NetJoin},
		{Name: "c", Args: []string{"true"}, Net: runtime.NetHost, UTS: "/u"},
	} {
		if _, err := bad.Spec("/b"); err == nil {
			t.Errorf("Spec of %+v succeeded; want an error", bad)
		}
	}
}

// guestScene is a sandboxed chain with one bridge and guests "ga" (hostname alpha,
// 172.18.0.1) and "gb" (172.18.0.2), a busybox root filesystem, the /etc/hosts naming both
// guests, and private engine state and bundle directories.
type guestScene struct {
	t                     *testing.T
	env                   netsetup.Env
	ga, gb                *netsetup.Guest
	rootfs, hosts, resolv string
	engineRoot, bundleDir string
	runtime               config.Runtime
}

func newGuestScene(t *testing.T, rt config.Runtime) *guestScene {
	t.Helper()
	hooktest.NeedRoot(t)
	hooktest.NeedCommand(t, string(rt), string(rt))
	s := hooktest.Chain(t)
	if _, err := netsetup.CreateBridge(s.Env, "cb", netsetup.BridgeOptions{}); err != nil {
		t.Fatal(err)
	}
	g := &guestScene{t: t, env: s.Env, runtime: rt, engineRoot: t.TempDir(), bundleDir: t.TempDir()}
	var err error
	if g.ga, err = netsetup.AddGuest(s.Env, "cb", "ga", netsetup.GuestOptions{IP: "172.18.0.1", Hostname: "alpha"}); err != nil {
		t.Fatal(err)
	}
	if g.gb, err = netsetup.AddGuest(s.Env, "cb", "gb", netsetup.GuestOptions{IP: "172.18.0.2"}); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	g.rootfs = hooktest.Rootfs(t, dir)
	g.hosts = filepath.Join(dir, "hosts")
	hosts := runtime.HostsFile("", []runtime.HostEntry{
		{IP: netip.MustParseAddr("172.18.0.1"), Names: []string{"alpha", "ga"}},
		{IP: netip.MustParseAddr("172.18.0.2"), Names: []string{"gb"}},
	})
	if err := os.WriteFile(g.hosts, hosts, 0o644); err != nil {
		t.Fatal(err)
	}
	rc, err := netsetup.GuestResolvConf(s.Env)
	if err != nil {
		t.Fatal(err)
	}
	g.resolv = filepath.Join(dir, "resolv.conf")
	if err := os.WriteFile(g.resolv, rc, 0o644); err != nil {
		t.Fatal(err)
	}
	// Registered after the chain's removal, so it runs before it: containers go first.
	t.Cleanup(g.checkClean)
	return g
}

// spec describes a busybox container in guest g running args.
func (g *guestScene) spec(guest *netsetup.Guest, out *testkit.Buffer, args ...string) runtime.ContainerSpec {
	return runtime.ContainerSpec{
		Name: guest.Name, Args: args,
		Root:  config.Root{Kind: config.RootRootfs, Path: g.rootfs},
		Netns: guest.Netns, UTS: guest.UTS,
		HostsFile: g.hosts, ResolvConfFile: g.resolv,
		Runtime: g.runtime, Stdout: out, Stderr: out, BundleDir: g.bundleDir,
	}
}

func (g *guestScene) start(spec runtime.ContainerSpec) *runtime.RunningContainer {
	g.t.Helper()
	c, err := runtime.StartContainer(context.Background(), spec, runtime.EngineOptions{RuntimeRoot: g.engineRoot})
	if err != nil {
		g.t.Fatal(err)
	}
	g.t.Cleanup(func() {
		if err := c.Delete(); err != nil {
			g.t.Error(err)
		}
	})
	return c
}

// checkClean fails the test if the engine still knows a container or a bundle is left.
func (g *guestScene) checkClean() {
	out, err := exec.Command(string(g.runtime), "--root", g.engineRoot, "list", "-q").CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != "" {
		g.t.Errorf("%s containers left: %q %v", g.runtime, out, err)
	}
	if ents, _ := os.ReadDir(g.bundleDir); len(ents) != 0 {
		g.t.Errorf("bundles left in %s: %v", g.bundleDir, ents)
	}
}

// scenario: a server in ga and a client in gb reach each other by address and by name, the
// server sees its guest's hostname and the client the chain's resolv.conf; killed and
// deleted containers leave nothing, and deleting twice succeeds.
func (g *guestScene) scenario() {
	t := g.t
	srvOut, cliOut := &testkit.Buffer{}, &testkit.Buffer{}
	srv := g.start(g.spec(g.ga, srvOut, "/bin/sh", "-c", "mkdir -p /tmp/w && hostname > /tmp/w/index.html && echo serving && exec httpd -f -p 7000 -h /tmp/w"))
	cli := g.start(g.spec(g.gb, cliOut, "/bin/sh", "-c", `
		for i in $(seq 300); do wget -q -O- http://172.18.0.1:7000/ 2>/dev/null && break; sleep 0.1; done
		echo by-name $(wget -q -O- http://alpha:7000/) $(wget -q -O- http://ga:7000/)
		echo self $(hostname)
		grep -c nameserver /etc/resolv.conf
		ip -4 -o addr show eth0`))
	if code := cli.Wait(); code != 0 {
		t.Fatalf("client exited with %d; output:\n%s\nserver output:\n%s", code, cliOut, srvOut)
	}
	out := cliOut.String()
	for _, want := range []string{"alpha\n", "by-name alpha alpha\n", "self gb\n", "1\n", "inet 172.18.0.2/"} {
		if !strings.Contains(out, want) {
			t.Errorf("client output lacks %q:\n%s", want, out)
		}
	}
	if err := cli.Delete(); err != nil {
		t.Fatal(err)
	}
	if err := cli.Delete(); err != nil {
		t.Errorf("second Delete: %v", err)
	}
	if srv.Exited() {
		t.Fatalf("server exited early with %d:\n%s", srv.Wait(), srvOut)
	}
	srv.Kill()
	if code := srv.Wait(); code != 128+int(syscall.SIGKILL) {
		t.Errorf("killed server exited with %d; want %d", code, 128+int(syscall.SIGKILL))
	}
	if err := srv.Delete(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(srv.Bundle()); !os.IsNotExist(err) {
		t.Errorf("bundle %s still there after Delete (%v)", srv.Bundle(), err)
	}
	g.checkClean()
}

func TestStartContainerRunc(t *testing.T) {
	newGuestScene(t, config.RuntimeRunc).scenario()
}

func TestStartContainerCrun(t *testing.T) {
	newGuestScene(t, config.RuntimeCrun).scenario()
}

// TestStartContainerLifecycle: a signal reaches the container's init, a container killed at
// once (while its engine may still be creating it) and one whose context is cancelled end
// and leave nothing.
func TestStartContainerLifecycle(t *testing.T) {
	g := newGuestScene(t, config.RuntimeRunc)
	out := &testkit.Buffer{}
	c := g.start(g.spec(g.ga, out, "/bin/sh", "-c", "trap 'exit 7' TERM; echo ready; while true; do sleep 0.1; done"))
	waitUntil(t, func() bool { return strings.Contains(out.String(), "ready") || c.Exited() })
	if err := c.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code := c.Wait(); code != 7 {
		t.Errorf("status after SIGTERM %d, want 7; output:\n%s", code, out)
	}
	if err := c.Delete(); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		c := g.start(g.spec(g.ga, &testkit.Buffer{}, "sleep", "600"))
		c.Kill()
		if !c.Exited() {
			t.Fatal("Kill returned before the container exited")
		}
		if err := c.Delete(); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	spec := g.spec(g.gb, &testkit.Buffer{}, "sleep", "600")
	c, err := runtime.StartContainer(ctx, spec, runtime.EngineOptions{RuntimeRoot: g.engineRoot})
	if err != nil {
		t.Fatal(err)
	}
	cancel()
	select {
	case <-c.Done():
	case <-time.After(30 * time.Second):
		t.Fatal("the container still runs 30s after its context was cancelled")
	}
	if err := c.Delete(); err != nil {
		t.Fatal(err)
	}
	g.checkClean()
}

// TestStartContainerHostRoot: the default root shares the host's system directories
// read-only, mounts the project directory read-write at /work (the working directory),
// gives a private /tmp, passes the environment, and names the container's own UTS
// namespace after Hostname.
func TestStartContainerHostRoot(t *testing.T) {
	g := newGuestScene(t, config.RuntimeRunc)
	hooktest.NeedCommand(t, "busybox", "busybox-static")
	project := t.TempDir()
	if err := os.WriteFile(filepath.Join(project, "in"), []byte("from-project\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	marker := filepath.Join(os.TempDir(), "pontoon-container-test-marker")
	os.WriteFile(marker, nil, 0o644)
	defer os.Remove(marker)
	out := &testkit.Buffer{}
	spec := runtime.ContainerSpec{
		Args: []string{"/bin/sh", "-c", `cat in; echo written > out; pwd; busybox hostname; echo "$GREETING"
			touch /usr/pontoon-x 2>/dev/null && echo usr-writable
			test -e ` + marker + ` && echo host-tmp-visible
			grep -q alpha /etc/hosts && echo hosts-bound
			busybox ip -4 -o addr show eth0`},
		Env:        []string{"GREETING=hello there"},
		ProjectDir: project,
		Netns:      g.ga.Netns,
		Hostname:   "box",
		HostsFile:  g.hosts,
		Stdout:     out, Stderr: out, BundleDir: g.bundleDir,
	}
	c, err := runtime.StartContainer(context.Background(), spec, runtime.EngineOptions{RuntimeRoot: g.engineRoot})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Delete()
	if code := c.Wait(); code != 0 {
		t.Fatalf("status %d; output:\n%s", code, out)
	}
	got := out.String()
	for _, want := range []string{"from-project\n/work\nbox\nhello there\n", "hosts-bound\n", "inet 172.18.0.1/"} {
		if !strings.Contains(got, want) {
			t.Errorf("output lacks %q:\n%s", want, got)
		}
	}
	for _, bad := range []string{"usr-writable", "host-tmp-visible"} {
		if strings.Contains(got, bad) {
			t.Errorf("output has %q:\n%s", bad, got)
		}
	}
	if data, err := os.ReadFile(filepath.Join(project, "out")); err != nil || string(data) != "written\n" {
		t.Errorf("project file written in the container: %q, %v", data, err)
	}
	if err := c.Delete(); err != nil {
		t.Fatal(err)
	}
	g.checkClean()
}

func waitUntil(t *testing.T, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); !cond(); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 30s")
		}
	}
}

// signalAtStart: SIGTERM sent right after StartContainer returns, while the engine is still
// starting the container, reaches its program once that program traps it. Passed on at
// once, it came as the program was executed, before its trap, and PID 1 dropped it.
func (g *guestScene) signalAtStart() {
	t := g.t
	for i := 0; i < 5; i++ {
		out := &testkit.Buffer{}
		c := g.start(g.spec(g.ga, out, "/bin/sh", "-c", "trap 'exit 7' TERM; while true; do sleep 0.1; done"))
		if err := c.Signal(syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		select {
		case <-c.Done():
		case <-time.After(30 * time.Second):
			t.Fatalf("the container still runs 30s after SIGTERM sent as it started; output:\n%s", out)
		}
		if code := c.Wait(); code != 7 {
			t.Errorf("status after SIGTERM sent as it started: %d, want 7 (its trap's); output:\n%s", code, out)
		}
		if err := c.Delete(); err != nil {
			t.Fatal(err)
		}
	}
}

func TestSignalAtStartRunc(t *testing.T) { newGuestScene(t, config.RuntimeRunc).signalAtStart() }

func TestSignalAtStartCrun(t *testing.T) { newGuestScene(t, config.RuntimeCrun).signalAtStart() }
