package testenv_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pontoon-dev/pontoon/hooks/hooktest"
	"github.com/pontoon-dev/pontoon/runtime"
	"github.com/pontoon-dev/pontoon/testenv"
)

// needEngine skips the test unless it runs as root with the engine and busybox-static
// installed, and returns a busybox root filesystem.
func needEngine(t *testing.T, engine string) string {
	t.Helper()
	hooktest.NeedRoot(t)
	hooktest.NeedCommand(t, engine, engine)
	return hooktest.Rootfs(t, t.TempDir())
}

// serveHostnameHTTP is a busybox shell line answering HTTP on port 7000 with the hostname.
var serveHostnameHTTP = []string{"/bin/sh", "-c", "mkdir -p /tmp/w && hostname > /tmp/w/index.html && echo serving && exec httpd -f -p 7000 -h /tmp/w"}

// fetch is a host-root shell line that GETs http://addr:7000/ once, giving up after 2s.
func fetch(addr string) []string {
	return []string{"/bin/sh", "-c", "exec timeout 2 busybox wget -q -O- http://" + addr + ":7000/"}
}

func containerWaitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 30s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// containersScenario: containers in two guests reach each other by address and by name,
// see their guest's hostname and guests added later, are cut by a partition of the Env and
// reach each other again after Heal.
func containersScenario(t *testing.T, engine string) {
	rootfs := needEngine(t, engine)
	hooktest.NeedCommand(t, "busybox", "busybox-static")
	env := testenv.New(t)
	n1 := env.Guest("n1", "172.18.0.1")
	n2 := env.Guest("n2", "172.18.0.2", testenv.WithHostname("db"))
	ctx := context.Background()

	servers := map[string]*testenv.Container{}
	for _, g := range []*testenv.Guest{n1, n2} {
		c := g.StartContainer(ctx, testenv.ContainerOptions{Argv: serveHostnameHTTP, Rootfs: rootfs, Runtime: engine})
		servers[g.Name()] = c
		containerWaitFor(t, "server in "+g.Name()+" serving", func() bool { return strings.Contains(c.Output(), "serving") || c.Exited() })
		if c.Exited() {
			t.Fatalf("%s:\n%s", c, c.Output())
		}
	}
	// Started before n3 exists: the guests' /etc/hosts grows in place.
	watcher := n1.StartContainer(ctx, testenv.ContainerOptions{
		Argv:    []string{"/bin/sh", "-c", "until grep -q 'n3$' /etc/hosts; do sleep 0.1; done; echo saw-n3"},
		Rootfs:  rootfs,
		Runtime: engine,
	})

	// A client with the default root (the host's system directories) in each guest reaches
	// the other guest's server by address, name and hostname; "hostname" is served by the
	// server's own UTS namespace, the guest's.
	for _, c := range []struct {
		from     *testenv.Guest
		addrs    []string
		hostname string
	}{
		{n1, []string{"172.18.0.2", "n2", "db"}, "db"},
		{n2, []string{"172.18.0.1", "n1"}, "n1"},
	} {
		for _, addr := range c.addrs {
			var out string
			var err error
			// The first request may race the server's listen; retry a few times.
			for i := 0; i < 20; i++ {
				if out, err = c.from.RunContainer(ctx, testenv.ContainerOptions{Argv: fetch(addr), Runtime: engine}); err == nil {
					break
				}
				time.Sleep(100 * time.Millisecond)
			}
			if err != nil || strings.TrimSpace(out) != c.hostname {
				t.Fatalf("from %s to %s: %q, %v; want %q", c.from.Name(), addr, out, err, c.hostname)
			}
		}
	}
	out, err := n2.RunContainer(ctx, testenv.ContainerOptions{
		Argv:    []string{"/bin/sh", "-c", "hostname; ip -4 -o addr show eth0; grep -c nameserver /etc/resolv.conf"},
		Rootfs:  rootfs,
		Runtime: engine,
	})
	if err != nil || !strings.HasPrefix(out, "db\n") || !strings.Contains(out, "inet 172.18.0.2/") || !strings.HasSuffix(out, "1\n") {
		t.Errorf("container in n2 sees: %q, %v; want hostname db, address 172.18.0.2 and a nameserver", out, err)
	}

	env.Guest("n3", "172.18.0.3")
	if err := watcher.Wait(); err != nil || !strings.Contains(watcher.Output(), "saw-n3") {
		t.Errorf("%s did not see n3 in /etc/hosts: %v\n%s", watcher, err, watcher.Output())
	}

	env.Isolate("n2")
	for _, c := range []struct {
		from *testenv.Guest
		to   string
	}{{n1, "db"}, {n2, "n1"}} {
		out, err := c.from.RunContainer(ctx, testenv.ContainerOptions{Argv: fetch(c.to), Runtime: engine})
		var exit *testenv.ContainerExitError
		if !errors.As(err, &exit) {
			t.Errorf("from %s to %s across the partition: %q, %v; want the fetch to fail", c.from.Name(), c.to, out, err)
		}
	}
	env.Heal()
	for _, c := range []struct {
		from     *testenv.Guest
		to, want string
	}{{n1, "db", "db"}, {n2, "n1", "n1"}} {
		if out, err := c.from.RunContainer(ctx, testenv.ContainerOptions{Argv: fetch(c.to), Runtime: engine}); err != nil || strings.TrimSpace(out) != c.want {
			t.Errorf("from %s to %s after Heal: %q, %v; want %q", c.from.Name(), c.to, out, err, c.want)
		}
	}

	for name, c := range servers {
		if c.Exited() {
			t.Errorf("server in %s exited: %s\n%s", name, c, c.Output())
		}
	}
	servers["n1"].Kill()
	if code := servers["n1"].ExitCode(); code != 128+int(syscall.SIGKILL) {
		t.Errorf("killed server: exit code %d, want %d", code, 128+int(syscall.SIGKILL))
	}
}

func TestContainersRunc(t *testing.T) {
	t.Parallel()
	containersScenario(t, "runc")
}

func TestContainersCrun(t *testing.T) {
	t.Parallel()
	containersScenario(t, "crun")
}

// TestContainerExitAndErrors: exit codes, signals and bad options.
func TestContainerExitAndErrors(t *testing.T) {
	t.Parallel()
	rootfs := needEngine(t, "runc")
	env := testenv.New(t)
	g := env.Guest("n1", "172.18.0.1")
	ctx := context.Background()

	out, err := g.RunContainer(ctx, testenv.ContainerOptions{Argv: []string{"sh", "-c", "echo to-out; echo to-err >&2; exit 3"}, Rootfs: rootfs})
	var exit *testenv.ContainerExitError
	// The engine copies stdout and stderr separately: their lines may swap.
	if !errors.As(err, &exit) || exit.Code != 3 || !strings.Contains(out, "to-out\n") || !strings.Contains(out, "to-err\n") {
		t.Errorf("RunContainer = %q, %v; want the output and exit status 3", out, err)
	}

	c := g.StartContainer(ctx, testenv.ContainerOptions{Argv: []string{"sh", "-c", "trap 'exit 9' TERM; echo ready; while true; do sleep 0.1; done"}, Rootfs: rootfs})
	if code := c.ExitCode(); code != -1 {
		t.Errorf("ExitCode of a running container = %d, want -1", code)
	}
	containerWaitFor(t, "trap set", func() bool { return strings.Contains(c.Output(), "ready") || c.Exited() })
	if err := c.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := c.Wait(); !errors.As(err, &exit) || exit.Code != 9 || c.ExitCode() != 9 {
		t.Errorf("after SIGTERM: %v, exit code %d; want 9", err, c.ExitCode())
	}

	cctx, cancel := context.WithCancel(ctx)
	c = g.StartContainer(cctx, testenv.ContainerOptions{Argv: []string{"sleep", "600"}, Rootfs: rootfs})
	cancel()
	select {
	case <-c.Done():
	case <-time.After(30 * time.Second):
		t.Fatal("container still runs 30s after its context was cancelled")
	}

	for _, tc := range []struct {
		opt  testenv.ContainerOptions
		want string
	}{
		{testenv.ContainerOptions{}, "set ContainerOptions.Argv"},
		{testenv.ContainerOptions{Argv: []string{"true"}, Rootfs: rootfs, Image: "a:1"}, "set one of them"},
		{testenv.ContainerOptions{Argv: []string{"true"}, Image: "a:1"}, "needs runtime containerd"},
		{testenv.ContainerOptions{Argv: []string{"true"}, Runtime: "kata"}, `unknown runtime "kata"`},
	} {
		if _, err := g.RunContainer(ctx, tc.opt); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("RunContainer(%+v) = %v; want an error containing %q", tc.opt, err, tc.want)
		}
	}
}

// containerLeftovers is what an Env with containers leaves for the cleanup checks.
type containerLeftovers struct {
	EngineRoot string `json:"engine_root"`
	Sandbox    string `json:"sandbox"`
	// Marker is the sleep argument of the long-running containers, to find their
	// processes; each test has its own, as they run in parallel.
	Marker string `json:"marker"`
}

// newMarker returns a sleep argument no other test uses at the same time.
func newMarker() string { return fmt.Sprint(100000 + rand.IntN(800000)) }

// busyContainers starts, in a three-guest Env, a long-running container (sleep marker) in
// every guest and one that exits, with the engine state in engineRoot.
func busyContainers(t *testing.T, engineRoot, marker string) containerLeftovers {
	rootfs := needEngine(t, "runc")
	env := three(t)
	for _, g := range env.Guests() {
		c := g.StartContainer(context.Background(), testenv.ContainerOptions{
			Argv:   []string{"sh", "-c", "echo container-marker-from-" + g.Name() + "; sleep " + marker + " & wait"},
			Rootfs: rootfs,
			Engine: runtime.EngineOptions{RuntimeRoot: engineRoot},
		})
		containerWaitFor(t, "container started", func() bool { return strings.Contains(c.Output(), "marker") || c.Exited() })
	}
	done := env.Lookup("n1").StartContainer(context.Background(), testenv.ContainerOptions{Argv: []string{"true"}, Rootfs: rootfs, Engine: runtime.EngineOptions{RuntimeRoot: engineRoot}})
	if err := done.Wait(); err != nil {
		t.Fatal(err)
	}
	env.Isolate("n3")
	return containerLeftovers{EngineRoot: engineRoot, Sandbox: env.Sandbox().Dir, Marker: marker}
}

// checkNoContainers fails t if the engine still knows a container, a container process
// runs, or the Env's directory (bundles included) is left.
func checkNoContainers(t *testing.T, l containerLeftovers) {
	t.Helper()
	out, err := exec.Command("runc", "--root", l.EngineRoot, "list", "-q").CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != "" {
		t.Errorf("runc containers left in %s: %q %v", l.EngineRoot, out, err)
	}
	if _, err := os.Stat(l.Sandbox); !os.IsNotExist(err) {
		t.Errorf("Env directory %s (bundles included) still exists (%v)", l.Sandbox, err)
	}
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, p := range procs {
		if b, err := os.ReadFile(p); err == nil && string(b) == "sleep\x00"+l.Marker+"\x00" {
			t.Errorf("container process still runs: %s", p)
		}
	}
}

func TestContainerCleanupAfterPassingTest(t *testing.T) {
	hooktest.NeedRoot(t)
	hooktest.NeedCommand(t, "runc", "runc")
	t.Parallel()
	root := t.TempDir()
	var l containerLeftovers
	t.Run("inner", func(t *testing.T) { l = busyContainers(t, root, newMarker()) })
	if l.Sandbox == "" {
		t.Fatal("the inner test did not get as far as starting containers")
	}
	checkNoContainers(t, l)
}

// TestContainerCleanupAfterFailingTest runs a test that fails (and one that panics) with
// containers running, in a separate test process, then checks that nothing is left and that
// the containers' output was logged.
func TestContainerCleanupAfterFailingTest(t *testing.T) {
	hooktest.NeedRoot(t)
	hooktest.NeedCommand(t, "runc", "runc")
	t.Parallel()
	for _, how := range []string{"fail", "panic"} {
		t.Run(how, func(t *testing.T) {
			t.Parallel()
			var l containerLeftovers
			out := endBadly(t, "TestContainerHelperEndsBadly", "TESTENV_CONTAINER_HELPER", how, &l,
				"TESTENV_ENGINE_ROOT="+t.TempDir(), "TESTENV_MARKER="+newMarker())
			checkNoContainers(t, l)
			wantInOutput(t, out, "container-marker-from-n1", "container-marker-from-n3", "deliberate "+how)
		})
	}
}

// TestContainerHelperEndsBadly is run by TestContainerCleanupAfterFailingTest in a child
// process.
func TestContainerHelperEndsBadly(t *testing.T) {
	how := os.Getenv("TESTENV_CONTAINER_HELPER")
	if how == "" {
		t.Skip("run by TestContainerCleanupAfterFailingTest")
	}
	l := busyContainers(t, os.Getenv("TESTENV_ENGINE_ROOT"), os.Getenv("TESTENV_MARKER"))
	b, _ := json.Marshal(l)
	if err := os.WriteFile(os.Getenv("TESTENV_REPORT"), b, 0o644); err != nil {
		t.Fatal(err)
	}
	if how == "panic" {
		panic("deliberate panic")
	}
	t.Fatal("deliberate fail")
}
