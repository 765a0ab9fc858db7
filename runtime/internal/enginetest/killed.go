package enginetest

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pontoon-dev/pontoon/netsetup"
	"github.com/pontoon-dev/pontoon/runtime"
	"github.com/pontoon-dev/pontoon/runtime/config"
)

// runEnv is the environment variable that makes a test binary run one command of a
// project, as `pontoon run` does, and exit (see DispatchRun).
const runEnv = "PONTOON_TEST_RUN"

// SubprocessRun is a run for StartRun.
type SubprocessRun struct {
	Project string // path of the pontoon.toml
	Command string
	Env     netsetup.Env
	Engine  runtime.EngineOptions
	Runtime config.Runtime // overrides the project's when set
}

// DispatchRun runs the command a parent test asked for with StartRun and exits; otherwise
// it returns at once. Call it from TestMain.
func DispatchRun() {
	spec := os.Getenv(runEnv)
	if spec == "" {
		return
	}
	// The run starts this binary again as the hook and the containerd helper: they must
	// not become runs themselves.
	os.Unsetenv(runEnv)
	var s SubprocessRun
	if err := json.Unmarshal([]byte(spec), &s); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	p, err := config.Load(s.Project)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	code, err := runtime.Run(context.Background(), p, s.Command, runtime.Options{
		Env: s.Env, Engine: s.Engine, Runtime: s.Runtime, Stdin: strings.NewReader(""),
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
	}
	os.Exit(code)
}

// StartRun starts the test binary (whose TestMain calls DispatchRun) as a run of s with
// its output on out. The returned channel is closed when the run has ended; the test's end
// kills it.
func StartRun(t *testing.T, s SubprocessRun, out io.Writer) (*exec.Cmd, <-chan struct{}) {
	t.Helper()
	spec, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(self)
	cmd.Env = append(os.Environ(), runEnv+"="+string(spec))
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	t.Cleanup(func() { cmd.Process.Kill(); <-done })
	return cmd, done
}

// Poll waits until cond holds; after a deadline it marks the test failed and returns
// false. Safe on any goroutine.
func Poll(t testing.TB, what string, cond func() bool) bool {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); !cond(); {
		if time.Now().After(deadline) {
			t.Errorf("timed out waiting for %s", what)
			return false
		}
		time.Sleep(20 * time.Millisecond)
	}
	return true
}

// Proc is a process seen in /proc.
type Proc struct {
	PID, PPID int
	State     string // R, S, Z...
	Args      []string
}

// Processes lists the processes of the caller's pid namespace.
func Processes() []Proc {
	var out []Proc
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		s := string(stat)
		f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
		if len(f) < 2 {
			continue
		}
		ppid, _ := strconv.Atoi(f[1])
		cmd, _ := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		out = append(out, Proc{PID: pid, PPID: ppid, State: f[0], Args: strings.Split(strings.TrimSuffix(string(cmd), "\x00"), "\x00")})
	}
	return out
}

// WithArg returns the live (not zombie) processes that have arg as an argument, or as a
// word of one (a shell script's).
func WithArg(arg string) []Proc {
	var out []Proc
	for _, p := range Processes() {
		if p.State != "Z" && slices.ContainsFunc(p.Args, func(a string) bool { return slices.Contains(strings.Fields(a), arg) }) {
			out = append(out, p)
		}
	}
	return out
}

// Sleepers is a supervise command "sleepers" of three children (guests a and b, bridge
// child c without init) that say "ready" and sleep with token as the argument, so that
// WithArg(token) finds every process of the run.
func Sleepers(token, settings string) string {
	return fmt.Sprintf(`%[2]s
[commands.sleepers]
supervise = true
[commands.sleepers.children.a]
run = ["sh", "-c", "echo ready; exec sleep %[1]s"]
ip = "172.18.0.1"
[commands.sleepers.children.b]
run = ["sh", "-c", "echo ready; exec sleep %[1]s"]
ip = "172.18.0.2"
[commands.sleepers.children.c]
run = ["sh", "-c", "echo ready; exec sleep %[1]s"]
bridge = true
init = false
`, token, settings)
}
