package testenv_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/pontoon-dev/pontoon/testenv"
)

// TestMain lets the test binary double as a tiny server for processes started in guests, so
// the tests need no tools beyond coreutils and libc's getent.
func TestMain(m *testing.M) {
	if addr := os.Getenv("TESTENV_SERVE_HOSTNAME"); addr != "" {
		serveHostname(addr)
		return
	}
	os.Exit(m.Run())
}

// serveHostname answers every TCP connection with the hostname and closes it.
func serveHostname(addr string) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Println("listening on", ln.Addr())
	host, _ := os.Hostname()
	for {
		c, err := ln.Accept()
		if err != nil {
			os.Exit(1)
		}
		fmt.Fprintln(c, host)
		c.Close()
	}
}

// startHostnameServer runs serveHostname in g on port.
func startHostnameServer(t *testing.T, g *testenv.Guest, port int) *testenv.Process {
	t.Helper()
	cmd := g.Command(context.Background(), os.Args[0])
	cmd.Env = append(os.Environ(), fmt.Sprintf("TESTENV_SERVE_HOSTNAME=:%d", port))
	p := g.StartCmd(cmd)
	waitFor(t, func() bool { return strings.Contains(p.Output(), "listening") || p.Exited() })
	if p.Exited() {
		t.Fatalf("hostname server in %s exited: %v\n%s", g, p.Wait(), p.Output())
	}
	return p
}

// three returns an Env with guests n1, n2, n3 on 172.18.0.1-3.
func three(t *testing.T, opts ...testenv.Option) *testenv.Env {
	t.Helper()
	env := testenv.New(t, opts...)
	for i, n := range []string{"n1", "n2", "n3"} {
		env.Guest(n, fmt.Sprintf("172.18.0.%d", i+1))
	}
	return env
}

func TestGuestProcessSeesHostnameHostsAndResolvConf(t *testing.T) {
	t.Parallel()
	hostBefore, _ := os.ReadFile("/etc/hosts")
	env := testenv.New(t)
	n1 := env.Guest("n1", "172.18.0.1")
	env.Guest("n2", "172.18.0.2", testenv.WithHostname("db"))
	ctx := context.Background()

	out, err := n1.Run(ctx, "uname", "-n")
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.TrimSpace(out); got != "n1" {
		t.Errorf("hostname in n1 = %q, want n1", got)
	}
	if n2 := env.Lookup("n2"); n2.Hostname() != "db" || env.Lookup("db") != n2 || env.Lookup("172.18.0.2") != n2 {
		t.Errorf("n2: hostname %q, or lookup by hostname/IP does not find it", n2.Hostname())
	}

	// getent resolves through /etc/hosts as any program would, which proves more than the
	// file's content; minimal roots (busybox) lack it, and then the file is read instead.
	if _, err := exec.LookPath("getent"); err == nil {
		for name, want := range map[string]string{"n1": "172.18.0.1", "db": "172.18.0.2", "n2": "172.18.0.2", "localhost": "127.0.0.1"} {
			out, err := n1.Run(ctx, "getent", "ahostsv4", name)
			if err != nil {
				t.Errorf("resolve %s in n1: %v", name, err)
				continue
			}
			if !strings.HasPrefix(out, want+" ") {
				t.Errorf("resolve %s in n1: got %q, want %s", name, out, want)
			}
		}
	} else if out, err := n1.Run(ctx, "cat", "/etc/hosts"); err != nil || !strings.Contains(out, "172.18.0.2\tdb n2") {
		t.Errorf("n1's /etc/hosts lacks n2 as db (%v):\n%s", err, out)
	}

	// A guest added while a process runs shows up in that process's /etc/hosts.
	p := n1.Start(ctx, "sh", "-c", "echo started; for i in $(seq 200); do grep -q '172.18.0.3.*n3' /etc/hosts && exit 0; sleep 0.05; done; exit 1")
	waitFor(t, func() bool { return strings.Contains(p.Output(), "started") })
	env.Guest("n3", "172.18.0.3")
	if err := p.Wait(); err != nil {
		t.Errorf("running process did not see n3 in its /etc/hosts: %v\n%s", err, p.Output())
	}

	out, err = n1.Run(ctx, "cat", "/etc/resolv.conf")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "nameserver 172.18.0.254") {
		t.Errorf("guest resolv.conf = %q, want the bridge's name server 172.18.0.254", out)
	}

	if hostAfter, _ := os.ReadFile("/etc/hosts"); !bytes.Equal(hostBefore, hostAfter) {
		t.Errorf("the host's /etc/hosts changed:\n%s", hostAfter)
	}
	if h, _ := os.Hostname(); h == "n1" || h == "db" {
		t.Errorf("the test process's hostname changed to %q", h)
	}
}

func TestRunReportsExitCodeAndOutput(t *testing.T) {
	t.Parallel()
	env := testenv.New(t)
	g := env.Guest("a", "172.18.0.10")
	out, err := g.Run(context.Background(), "sh", "-c", "echo to-stdout; echo to-stderr >&2; exit 3")
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 3 {
		t.Fatalf("Run error = %v, want exit status 3", err)
	}
	if !strings.Contains(out, "to-stdout") || !strings.Contains(out, "to-stderr") {
		t.Errorf("Run output = %q, want both streams", out)
	}
	if _, err := g.Run(context.Background(), "/nonexistent/binary"); err == nil {
		t.Error("Run of a missing binary succeeded")
	}
}

func TestReachabilityAndServices(t *testing.T) {
	t.Parallel()
	env := three(t)
	env.MustReach("n1", "n2")
	env.MustReach("n3", "172.18.0.1") // guests by address too
	if r := env.Probe("n2", "n3"); !r.All() {
		t.Errorf("probe n2 -> n3: %v", r)
	}
	if err := env.Delivers("n1", "n3"); err != nil {
		t.Error(err)
	}
	env.MustMatch(func(src, dst string) bool { return true })

	startHostnameServer(t, env.Lookup("n2"), 8000)
	if err := env.CanConnect("n1", "n2", 8000); err != nil {
		t.Error(err)
	}
	if err := env.CanConnect("n1", "n2", 8001); err == nil {
		t.Error("CanConnect to a port nobody listens on succeeded")
	}

	// From the test process: through the bridge namespace, and as a guest.
	for name, dial := range map[string]func(context.Context, string, string) (net.Conn, error){
		"bridge": env.DialContext,
		"n3":     env.Lookup("n3").DialContext,
	} {
		c, err := dial(context.Background(), "tcp", env.Lookup("n2").Addr(8000))
		if err != nil {
			t.Errorf("dial n2 from %s: %v", name, err)
			continue
		}
		buf := make([]byte, 64)
		n, _ := c.Read(buf)
		c.Close()
		if got := strings.TrimSpace(string(buf[:n])); got != "n2" {
			t.Errorf("hostname server in n2 answered %q to %s, want n2", got, name)
		}
	}
}

func TestStartedProcessIsKilledWithItsChildren(t *testing.T) {
	t.Parallel()
	env := testenv.New(t)
	a := env.Guest("a", "172.18.0.1")
	// A shell with a background child: Kill must take both.
	p := a.Start(context.Background(), "sh", "-c", "sleep 600 & echo child $!; wait")
	var child int
	waitFor(t, func() bool {
		_, err := fmt.Sscanf(p.Output(), "child %d", &child)
		return err == nil
	})
	p.Kill()
	if err := p.Wait(); err == nil {
		t.Error("Wait after Kill returned nil, want the kill signal")
	}
	waitFor(t, func() bool { return !alive(child) })

	// A child left behind by a process that already exited is killed too.
	q := a.Start(context.Background(), "sh", "-c", "sleep 600 >/dev/null 2>&1 & echo child $!")
	if err := q.Wait(); err != nil {
		t.Fatal(err)
	}
	if _, err := fmt.Sscanf(q.Output(), "child %d", &child); err != nil || !alive(child) {
		t.Fatalf("orphan not running: %q %v", q.Output(), err)
	}
	q.Kill()
	waitFor(t, func() bool { return !alive(child) })
}

func TestContextCancelKillsProcess(t *testing.T) {
	t.Parallel()
	env := testenv.New(t)
	g := env.Guest("a", "172.18.0.1")
	ctx, cancel := context.WithCancel(context.Background())
	p := g.Start(ctx, "sleep", "600")
	cancel()
	<-p.Done()
	if p.Wait() == nil {
		t.Error("a process killed by its context exited with status 0")
	}
}

func TestOptions(t *testing.T) {
	t.Parallel()
	env := testenv.New(t, testenv.WithSubnet("10.77.0.0/16"), testenv.WithBridge("opts"), testenv.WithProbeTimeouts(time.Second, 200*time.Millisecond))
	if got := env.Bridge().Name; got != "opts" {
		t.Errorf("bridge name = %q, want opts", got)
	}
	env.Guest("a", "10.77.0.1")
	env.Guest("b", "10.77.0.2")
	env.MustReach("a", "b")
	if got := env.BridgeAddr().String(); got != "10.77.0.254" {
		t.Errorf("bridge address = %s, want 10.77.0.254", got)
	}
}

// waitFor polls cond; the test's own deadline bounds it.
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	for !cond() {
		time.Sleep(20 * time.Millisecond)
	}
}

// alive reports whether pid runs (a zombie only waits to be reaped: it counts as dead).
func alive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i < 0 || !strings.HasPrefix(s[i+1:], " Z")
}
