package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pontoon-dev/pontoon/internal/statefile"
	"github.com/pontoon-dev/pontoon/internal/testkit"
	"github.com/pontoon-dev/pontoon/partition"
)

// TestNeedsRoot reproduces running pontoon as an ordinary user, which failed with whatever
// the first step met ("mkdir /run/pontoon: permission denied"): every command that works on
// the chain says that it needs root and touches nothing, while help and `pontoon list`
// (which reads only pontoon.toml) still work.
func TestNeedsRoot(t *testing.T) {
	c := newCLI(t)
	// A state directory that does not exist yet: any attempt to use it would create it.
	state := filepath.Join(t.TempDir(), "state")
	asNobody := func(args ...string) (string, int) {
		cmd := c.command(args...)
		// Without a space of its own (rootless_test.go covers that).
		cmd.Env = append(cmd.Env, "PONTOON_STATE_DIR="+state, spaceOffEnv+"=off")
		cmd.Dir = "/"
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		err := cmd.Run()
		var ee *exec.ExitError
		if err != nil && !errors.As(err, &ee) {
			t.Fatalf("run pontoon as nobody: %v", err)
		}
		return out.String(), cmd.ProcessState.ExitCode()
	}
	netnsBefore := dirNames(t, c.sb.Env.NetnsDir)
	for _, args := range [][]string{
		{"gateway", "up"},
		{"gateway", "status"},
		{"bridge", "list"},
		{"bridge", "create", "b1"},
		{"guest", "add", "b1", "g", "--ip", "172.18.0.1"},
		{"exec", "b1", "g", "--", "true"},
		{"partition", "--bridge", "b1", "isolate", "g"},
		{"gc"},
	} {
		out, code := asNobody(args...)
		if code != 1 || !strings.Contains(out, "needs root") || strings.Contains(out, "permission denied") {
			t.Errorf("pontoon %s as nobody: exit %d, %q; want exit 1 saying it needs root", strings.Join(args, " "), code, out)
		}
	}
	if _, err := os.Stat(state); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a refused command touched the state directory: %v", err)
	}
	if after := dirNames(t, c.sb.Env.NetnsDir); !slices.Equal(netnsBefore, after) {
		t.Errorf("namespaces before %v, after %v", netnsBefore, after)
	}
	if out, code := asNobody("bridge", "list", "--help"); code != 0 || !strings.Contains(out, "USAGE") {
		t.Errorf("bridge list --help as nobody: exit %d, %q", code, out)
	}
	if out, code := asNobody("list", "-C", "/nonexistent"); code != 1 || strings.Contains(out, "needs root") {
		t.Errorf("list as nobody: exit %d, %q; want it to look for pontoon.toml", code, out)
	}
}

func dirNames(t *testing.T, dir string) []string {
	t.Helper()
	es, err := os.ReadDir(dir)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Fatal(err)
	}
	var out []string
	for _, e := range es {
		out = append(out, e.Name())
	}
	return out
}

// snapshot is what a refused command must leave as it was: every state file with its
// content, the pinned namespaces, and the partition as pontoon reports it.
func (c *runner) snapshot() string {
	c.t.Helper()
	var b strings.Builder
	filepath.Walk(c.sb.Env.StateDir, func(p string, info os.FileInfo, err error) error {
		if err == nil && !info.IsDir() && info.Name() != "lock" {
			data, _ := os.ReadFile(p)
			b.WriteString(p + "\n" + string(data) + "\n")
		}
		return nil
	})
	b.WriteString(strings.Join(dirNames(c.t, c.sb.Env.NetnsDir), " ") + "\n")
	// The counters are live: what the loss drops meanwhile is no change.
	var status map[string]any
	if err := json.Unmarshal([]byte(c.ok("partition", "status", "--json", "--bridge", "b")), &status); err != nil {
		c.t.Fatal(err)
	}
	delete(status, "counters")
	js, _ := json.Marshal(status)
	b.Write(js)
	return b.String()
}

// TestBadValuesChangeNothing reproduces bad values that were taken for something else or
// failed late: `guest add --pid 0` created a fresh namespace as if --pid were not given,
// `bridge create --owner 0` made a bridge that lives for ever, `--netns` of a plain file,
// negative loss, rate, delay and durations. Each is a usage error (exit 2) that names the
// flag or value and the fix, and nothing changes.
func TestBadValuesChangeNothing(t *testing.T) {
	c := newCLI(t)
	c.ok("gateway", "up")
	c.ok("bridge", "create", "b")
	c.ok("guest", "add", "b", "n1", "--ip", "172.18.0.1")
	c.ok("guest", "add", "b", "n2", "--ip", "172.18.0.2")
	c.ok("partition", "loss", "10", "n1", "--bridge", "b")
	plain := filepath.Join(t.TempDir(), "plain")
	if err := os.WriteFile(plain, []byte("not a namespace\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	before := c.snapshot()
	for _, tt := range []struct {
		msg  []string
		args []string
	}{
		{[]string{"--pid: 0 is not a process id", "leave --pid out"}, []string{"guest", "add", "b", "g", "--ip", "172.18.0.3", "--pid", "0"}},
		{[]string{"--pid: -5 is not a process id"}, []string{"guest", "add", "b", "g", "--ip", "172.18.0.3", "--pid", "-5"}},
		{[]string{"--owner: 0 is not a process id", "leave --owner out"}, []string{"bridge", "create", "b2", "--owner", "0"}},
		{[]string{"--netns: " + plain + " is not a namespace file", "/run/netns/NAME"}, []string{"guest", "add", "b", "g", "--ip", "172.18.0.3", "--netns", plain}},
		{[]string{"not a network namespace"}, []string{"guest", "add", "b", "g", "--ip", "172.18.0.3", "--netns", "/proc/self/ns/uts"}},
		{[]string{"--netns: open /nonexistent"}, []string{"guest", "add", "b", "g", "--ip", "172.18.0.3", "--netns", "/nonexistent"}},
		{[]string{"guest add needs --ip"}, []string{"guest", "add", "b", "g"}},
		{[]string{"loss -1% is out of range", "0 to 100"}, []string{"partition", "loss", "--", "-1", "n1", "--bridge", "b"}},
		{[]string{"loss -1% is out of range"}, []string{"partition", "--bridge", "b", "loss", "-1", "n2"}},
		{[]string{"-1", "not a non-negative number"}, []string{"partition", "rate", "-1mbit", "n1", "--bridge", "b"}},
		{[]string{"delay -10ms is out of range"}, []string{"partition", "delay", "-10ms", "n1", "--bridge", "b"}},
		{[]string{"--for: -1s is not a positive duration"}, []string{"partition", "isolate", "n1", "--for", "-1s", "--bridge", "b"}},
		{[]string{"--for: -1s is not a positive duration"}, []string{"partition", "loss", "5", "n2", "--for", "-1s", "--bridge", "b"}},
		{[]string{"--stop-timeout: -1s leaves the containers no time to stop"}, []string{"run", "x", "--stop-timeout", "-1s"}},
		{[]string{`unknown verb "isolat"`, `did you mean "isolate"`}, []string{"partition", "isolat", "n1", "--bridge", "b"}},
		{[]string{"flag provided but not defined: --cut"}, []string{"partition", "loss", "5", "n1", "--cut", "--bridge", "b"}},
		// A taken name is refused as a guest's is.
		{[]string{`bridge already exists: "b"`, "pick another name"}, []string{"bridge", "create", "b"}},
		{[]string{`a guest named "n1" already exists`, "pick another name"}, []string{"guest", "add", "b", "n1", "--ip", "172.18.0.3"}},
	} {
		out, errOut, code := c.run(tt.args...)
		ok := code == 2
		for _, m := range tt.msg {
			ok = ok && strings.Contains(errOut, m)
		}
		if !ok {
			t.Errorf("pontoon %s: exit %d, stderr %q (stdout %q); want exit 2 saying %q", strings.Join(tt.args, " "), code, errOut, out, tt.msg)
		}
	}
	if after := c.snapshot(); after != before {
		t.Errorf("refused commands changed something:\nbefore:\n%s\nafter:\n%s", before, after)
	}
}

// TestRunRefusalsAreUsageErrors: an unknown command, children --only or --exclude cannot
// select, and a pontoon.toml with mistakes are refused input, as a bad flag value is: exit 2,
// before anything starts.
func TestRunRefusalsAreUsageErrors(t *testing.T) {
	c := newCLI(t)
	c.ok("gateway", "up")
	c.ok("bridge", "create", "b") // what snapshot reads
	dir := t.TempDir()
	good := filepath.Join(dir, "good")
	bad := filepath.Join(dir, "bad")
	for d, src := range map[string]string{
		good: "[commands.sup]\nsupervise = true\n[commands.sup.children.a]\nrun = [\"true\"]\nbridge = true\n[commands.plain]\nrun = [\"true\"]\n",
		bad:  "[commands.x]\nrun = [\"true\"]\nexit = \"some\"\n",
	} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(d, "pontoon.toml"), []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	before := c.snapshot()
	for _, tt := range []struct {
		msg  string
		args []string
	}{
		{`no command "zzz"`, []string{"run", "--project", good, "zzz"}},
		{`command "sup" has no child "zz"`, []string{"run", "--project", good, "sup", "--only", "zz"}},
		{"--only names no child", []string{"run", "--project", good, "sup", "--only", ""}},
		{"--only names no child", []string{"run", "--project", good, "sup", "--only", " , "}},
		{"--only and --exclude apply to supervise commands", []string{"run", "--project", good, "plain", "--exclude", "a"}},
		{"exit applies only to supervise commands", []string{"run", "--project", bad, "x"}},
		{"exit applies only to supervise commands", []string{"list", "--project", bad}},
	} {
		out, errOut, code := c.run(tt.args...)
		if code != 2 || !strings.Contains(errOut, tt.msg) {
			t.Errorf("pontoon %s: exit %d, stderr %q (stdout %q); want exit 2 saying %q", strings.Join(tt.args, " "), code, errOut, out, tt.msg)
		}
	}
	if after := c.snapshot(); after != before {
		t.Errorf("refused runs changed something:\nbefore:\n%s\nafter:\n%s", before, after)
	}
}

// TestWaitForALockSaysOnWhom: a command held up by another's lock on the bridge's partitions
// (here flock(1), as a stopped pontoon would) says which process it waits for, then goes on
// once it is let go.
func TestWaitForALockSaysOnWhom(t *testing.T) {
	c := newCLI(t)
	c.bridgeOf("b1", "n1", "n2")
	c.ok("partition", "isolate", "n1", "--bridge", "b1")
	lockPath := filepath.Join(c.sb.Env.BridgeDataDir("b1"), partition.LockFile)
	// -o: flock(1) holds the lock itself, not its sleep, so killing it lets go.
	holder := exec.Command("flock", "-o", lockPath, "sleep", "60")
	if err := holder.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { holder.Process.Kill(); holder.Wait() })
	waitFor(t, 10*time.Second, "flock(1) to hold the lock", func() bool {
		f, err := os.Open(lockPath)
		if err != nil {
			return false
		}
		defer f.Close()
		return len(statefile.Holders(f)) > 0
	})
	status := c.command("partition", "--bridge", "b1", "status")
	var out, errOut testkit.Buffer
	status.Stdout, status.Stderr = &out, &errOut
	if err := status.Start(); err != nil {
		t.Fatal(err)
	}
	ended := make(chan error, 1)
	go func() { ended <- status.Wait() }()
	t.Cleanup(func() { status.Process.Kill() })
	want := fmt.Sprintf("pontoon: waiting for pid %d (flock -o %s sleep 60), which holds the lock %s", holder.Process.Pid, lockPath, lockPath)
	waitFor(t, 10*time.Second, "status to say on whom it waits", func() bool { return strings.Contains(errOut.String(), want) })
	select {
	case err := <-ended:
		t.Fatalf("status ended (%v) while the lock was held: %s", err, out.String())
	default:
	}
	holder.Process.Kill()
	select {
	case err := <-ended:
		if err != nil {
			t.Errorf("status after the wait: %v\n%s", err, errOut.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("status still waits 10s after the lock was let go")
	}
	if !strings.Contains(out.String(), "n1") {
		t.Errorf("status after its wait printed %q; want the isolation of n1", out.String())
	}
}
