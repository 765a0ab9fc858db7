package hooks_test

import (
	"encoding/json"
	"net/netip"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/opencontainers/runtime-spec/specs-go"
	"github.com/pontoon-dev/pontoon/hooks"
	"github.com/pontoon-dev/pontoon/hooks/hooktest"
	"github.com/pontoon-dev/pontoon/netsetup"
	"github.com/pontoon-dev/pontoon/netsetup/ns"
	"github.com/pontoon-dev/pontoon/netsetup/probe"
)

// netnsProcess starts a process in a network namespace of its own, standing in for a
// container whose engine created its namespaces, and kills it when the test ends.
func netnsProcess(t *testing.T) int {
	t.Helper()
	cmd := startNetnsProcess(t)
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	return cmd.Process.Pid
}

// startNetnsProcess starts `sleep` in a new network namespace and returns once the process
// is in it; the caller ends it.
func startNetnsProcess(t *testing.T) *exec.Cmd {
	t.Helper()
	cmd := exec.Command("unshare", "--net", "sleep", "600")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// unshare execs sleep once the namespace exists; wait for that. The reference is the
	// namespace the test started in: /proc/self names the main thread, which a namespace
	// switch may have parked in another namespace.
	self, _ := os.Readlink(ns.Original())
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		if n, err := os.Readlink("/proc/" + itoa(cmd.Process.Pid) + "/ns/net"); err == nil && n != self {
			return cmd
		}
	}
	cmd.Process.Kill()
	cmd.Wait()
	t.Fatal("unshare did not enter a new network namespace within 5s")
	return nil
}

// hostProcess starts a process in the namespace the test started in, standing in for a
// container run with the host's network.
func hostProcess(t *testing.T) int {
	t.Helper()
	cmd := exec.Command("sleep", "600")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	return cmd.Process.Pid
}

func itoa(i int) string { return strconv.Itoa(i) }

func state(id string, pid int, ann map[string]string) specs.State {
	return specs.State{Version: specs.Version, ID: id, Status: specs.StateCreating, Pid: pid, Annotations: ann}
}

func annotations(bridge, guest, ip string) map[string]string {
	return map[string]string{hooks.AnnotationBridge: bridge, hooks.AnnotationGuest: guest, hooks.AnnotationIP: ip}
}

func stdin(t *testing.T, st specs.State) *strings.Reader {
	t.Helper()
	b, err := json.Marshal(st)
	if err != nil {
		t.Fatal(err)
	}
	return strings.NewReader(string(b))
}

// TestAttachDetach attaches two namespaces through the hook's entry points, checks they
// reach each other through the bridge, and that both stages are idempotent.
func TestAttachDetach(t *testing.T) {
	s := hooktest.Chain(t)
	b, err := netsetup.CreateBridge(s.Env, "hk", netsetup.BridgeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	p1, p2 := netnsProcess(t), netnsProcess(t)
	st1 := state("c1", p1, annotations("hk", "one", "172.18.0.1"))
	st2 := state("c2", p2, annotations("hk", "two", "172.18.0.2"))
	for _, st := range []specs.State{st1, st2} {
		if err := hooks.CreateRuntime(s.Env, stdin(t, st)); err != nil {
			t.Fatal(err)
		}
	}
	// Twice is no error, and changes nothing.
	if code := hooks.Main(hooks.Args(hooks.StageCreateRuntime, s.Env)[1:], stdin(t, st1), os.Stderr); code != 0 {
		t.Fatalf("second create-runtime exited %d", code)
	}
	srv, err := probe.Serve("/proc/"+itoa(p2)+"/ns/net", netip.MustParseAddr("172.18.0.2"), probe.Port)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	if err := probe.TCP("/proc/"+itoa(p1)+"/ns/net", netip.MustParseAddr("172.18.0.2"), probe.Port, 2*time.Second); err != nil {
		t.Fatalf("guest one does not reach guest two: %v", err)
	}
	if err := probe.Ping(b.Netns(s.Env), netip.MustParseAddr("172.18.0.1"), 2*time.Second); err != nil {
		t.Fatalf("the bridge does not reach guest one: %v", err)
	}
	if got, _ := hooktest.Attached(s.Env); len(got) != 2 {
		t.Fatalf("attached: %v", got)
	}

	// auto tells poststop from the state: stopped and without pid.
	stopped := specs.State{Version: specs.Version, ID: "c1", Status: specs.StateStopped, Annotations: st1.Annotations}
	for i := 0; i < 2; i++ {
		if err := hooks.Auto(s.Env, stdin(t, stopped)); err != nil {
			t.Fatalf("poststop #%d: %v", i+1, err)
		}
	}
	if got, _ := hooktest.Attached(s.Env); len(got) != 1 || got[0] != "hk/two" {
		t.Fatalf("after poststop of c1, attached: %v", got)
	}
	if err := probe.Ping(b.Netns(s.Env), netip.MustParseAddr("172.18.0.1"), 300*time.Millisecond); err == nil {
		t.Fatal("guest one still answers after poststop")
	}
}

// TestRestartReattaches: the same container id with a new pid (a restart) replaces the old
// attachment instead of failing on its own name.
func TestRestartReattaches(t *testing.T) {
	s := hooktest.Chain(t)
	if _, err := netsetup.CreateBridge(s.Env, "hk", netsetup.BridgeOptions{}); err != nil {
		t.Fatal(err)
	}
	ann := annotations("hk", "one", "172.18.0.1")
	if err := hooks.Attach(s.Env, state("c1", netnsProcess(t), ann)); err != nil {
		t.Fatal(err)
	}
	p := netnsProcess(t)
	if err := hooks.Attach(s.Env, state("c1", p, ann)); err != nil {
		t.Fatal(err)
	}
	_, g, err := netsetup.FindGuest(s.Env, "hk", "one")
	if err != nil || g.Process == nil || g.Process.PID != p {
		t.Fatalf("guest after restart: %+v %v", g, err)
	}
}

// TestAttachRefuses covers every way a request can be wrong: the hook fails with one line
// that says what to fix, and nothing is attached.
func TestAttachRefuses(t *testing.T) {
	s := hooktest.Chain(t)
	if _, err := netsetup.CreateBridge(s.Env, "hk", netsetup.BridgeOptions{
		Ports: []netsetup.Port{{HostPort: 8080, Guest: "web", GuestPort: 80, Proto: "tcp"}},
	}); err != nil {
		t.Fatal(err)
	}
	// An existing guest that holds a name and an address.
	if err := hooks.Attach(s.Env, state("holder", netnsProcess(t), annotations("hk", "taken", "172.18.0.9"))); err != nil {
		t.Fatal(err)
	}
	pid := netnsProcess(t)
	withPorts := annotations("hk", "web", "172.18.0.3")
	withPorts[hooks.AnnotationPorts] = "9090:80"
	tests := []struct {
		name string
		pid  int
		ann  map[string]string
		msg  string
	}{
		{"no annotations", pid, nil, "annotation pontoon.bridge is missing"},
		{"bad address", pid, annotations("hk", "x", "172.18.0.999"), "is not an IPv4 address"},
		{"address outside the plan", pid, annotations("hk", "x", "10.0.0.1"), "outside the guest range"},
		{"the bridge's own address", pid, annotations("hk", "x", "172.18.0.254"), "outside the guest range"},
		{"unknown bridge", pid, annotations("nosuch", "x", "172.18.0.3"), "no such bridge; `pontoon bridge list` shows the bridges"},
		{"address in use", pid, annotations("hk", "x", "172.18.0.9"), "address 172.18.0.9 is already used by guest \"taken\""},
		{"name in use", pid, annotations("hk", "taken", "172.18.0.3"), "already has a guest \"taken\""},
		{"port not forwarded", pid, withPorts, "does not forward host port 9090/tcp"},
		{"host namespace", hostProcess(t), annotations("hk", "x", "172.18.0.3"), "shares the host's network namespace"},
		{"gone process", 1 << 22, annotations("hk", "x", "172.18.0.3"), "is gone"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stderr strings.Builder
			code := hooks.Main(hooks.Args(hooks.StageCreateRuntime, s.Env)[1:], stdin(t, state("bad", tt.pid, tt.ann)), &stderr)
			msg := stderr.String()
			if code == 0 || !strings.Contains(msg, tt.msg) || strings.Count(msg, "\n") != 1 {
				t.Fatalf("exit %d, stderr %q; want failure with one line containing %q", code, msg, tt.msg)
			}
			got, err := hooktest.Attached(s.Env)
			if err != nil || len(got) != 1 || got[0] != "hk/taken" {
				t.Fatalf("attached after a refused request: %v %v", got, err)
			}
		})
	}
	// Settings a container gave as PONTOON_* variables (Docker) are named so.
	fromEnv := annotations("hk", "x", "172.18.0.9")
	fromEnv[hooks.AnnotationSettingsFrom] = "env"
	err := hooks.Attach(s.Env, state("env", pid, fromEnv))
	if err == nil || !strings.Contains(err.Error(), "PONTOON_IP: address 172.18.0.9 is already used by guest \"taken\"") || strings.Contains(err.Error(), "annotation") {
		t.Errorf("taken address given as PONTOON_IP: %v; want it named PONTOON_IP", err)
	}
	// A forward the bridge has is accepted.
	ok := annotations("hk", "web", "172.18.0.3")
	ok[hooks.AnnotationPorts] = "8080:80/tcp"
	if err := hooks.Attach(s.Env, state("web", pid, ok)); err != nil {
		t.Fatal(err)
	}
}

// TestAttachStaleHolder: a container that died without poststop does not block its name or
// address for the next one.
func TestAttachStaleHolder(t *testing.T) {
	s := hooktest.Chain(t)
	if _, err := netsetup.CreateBridge(s.Env, "hk", netsetup.BridgeOptions{}); err != nil {
		t.Fatal(err)
	}
	cmd := startNetnsProcess(t)
	if err := hooks.Attach(s.Env, state("dead", cmd.Process.Pid, annotations("hk", "one", "172.18.0.1"))); err != nil {
		t.Fatal(err)
	}
	cmd.Process.Kill()
	cmd.Wait()
	if err := hooks.Attach(s.Env, state("alive", netnsProcess(t), annotations("hk", "one", "172.18.0.1"))); err != nil {
		t.Fatal(err)
	}
	_, g, err := netsetup.FindGuest(s.Env, "hk", "one")
	if err != nil || g.Key != "alive" {
		t.Fatalf("guest: %+v %v", g, err)
	}
}
