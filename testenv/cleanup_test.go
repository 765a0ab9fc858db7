package testenv_test

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/pontoon-dev/pontoon/internal/testkit"
	"github.com/pontoon-dev/pontoon/testenv"
)

// leftovers is what an Env leaves for the cleanup checks to look at.
type leftovers struct {
	Dir  string `json:"dir"`  // the sandbox directory
	PIDs []int  `json:"pids"` // processes started in guests, and their children
}

var childRE = regexp.MustCompile(`child (\d+)\n`)

// busyEnv builds an Env with everything cleanup has to undo: guests, running processes with
// children, probe servers, a partition and an impairment.
func busyEnv(t *testing.T) (*testenv.Env, leftovers) {
	env := three(t)
	var l leftovers
	l.Dir = env.Sandbox().Dir
	for _, g := range env.Guests() {
		p := g.Start(context.Background(), "sh", "-c", "echo marker-output-from-"+g.Name()+"; sleep 600 & echo child $!; wait")
		var child []string
		waitFor(t, func() bool {
			child = childRE.FindStringSubmatch(p.Output())
			return child != nil
		})
		pid, _ := strconv.Atoi(child[1])
		l.PIDs = append(l.PIDs, p.Pid(), pid)
	}
	env.MustReach("n1", "n2")
	env.MustMatch(everything)
	env.Isolate("n3")
	if err := env.Loss(50, "n1"); err != nil {
		t.Fatal(err)
	}
	return env, l
}

// checkNothingLeft fails t if anything of l survived.
func checkNothingLeft(t *testing.T, l leftovers) {
	t.Helper()
	for _, pid := range l.PIDs {
		if alive(pid) {
			t.Errorf("process %d still runs", pid)
		}
	}
	if _, err := os.Stat(l.Dir); !os.IsNotExist(err) {
		t.Errorf("sandbox directory %s still exists (%v)", l.Dir, err)
	}
	mounts, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(mounts), "\n") {
		if strings.Contains(line, l.Dir) {
			t.Errorf("still mounted: %s", line)
		}
	}
}

func TestCleanupAfterPassingTest(t *testing.T) {
	testkit.NeedRoot(t, "creates network namespaces")
	t.Parallel()
	var l leftovers
	t.Run("inner", func(t *testing.T) {
		_, l = busyEnv(t)
	})
	checkNothingLeft(t, l)
}

// TestCleanupAfterFailingTest runs a test that fails (and one that panics) in a separate test
// process, then checks that its Env left nothing behind and that the output of its processes
// was logged.
func TestCleanupAfterFailingTest(t *testing.T) {
	testkit.NeedRoot(t, "creates network namespaces")
	t.Parallel()
	for _, how := range []string{"fail", "panic"} {
		t.Run(how, func(t *testing.T) {
			t.Parallel()
			var l leftovers
			out := endBadly(t, "TestHelperEndsBadly", "TESTENV_HELPER", how, &l)
			checkNothingLeft(t, l)
			wantInOutput(t, out, "marker-output-from-n1", "marker-output-from-n3", "deliberate "+how)
		})
	}
}

// endBadly runs the test helper in a child process of this test binary, telling it through
// the environment variable envVar to end by how ("fail" or "panic"), decodes the report of
// leftovers it wrote into report, and returns its output. Cleanup must not have complained.
func endBadly(t *testing.T, helper, envVar, how string, report any, env ...string) string {
	t.Helper()
	file := filepath.Join(t.TempDir(), "leftovers.json")
	cmd := exec.Command(os.Args[0], "-test.run=^"+helper+"$", "-test.v")
	cmd.Env = append(append(os.Environ(), envVar+"="+how, "TESTENV_REPORT="+file), env...)
	out, err := cmd.CombinedOutput()
	if err == nil {
		t.Fatalf("the helper test passed; want it to %s:\n%s", how, out)
	}
	b, rerr := os.ReadFile(file)
	if rerr != nil {
		t.Fatalf("helper wrote no report (%v):\n%s", rerr, out)
	}
	if err := json.Unmarshal(b, report); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(out), "testenv: cleanup") {
		t.Errorf("cleanup reported errors:\n%s", out)
	}
	return string(out)
}

// wantInOutput checks that the helper's output (the logged output of its processes) holds
// every marker.
func wantInOutput(t *testing.T, out string, markers ...string) {
	t.Helper()
	for _, want := range markers {
		if !strings.Contains(out, want) {
			t.Errorf("helper output lacks %q:\n%s", want, out)
		}
	}
}

// TestHelperEndsBadly is run by TestCleanupAfterFailingTest in a child process.
func TestHelperEndsBadly(t *testing.T) {
	how := os.Getenv("TESTENV_HELPER")
	if how == "" {
		t.Skip("run by TestCleanupAfterFailingTest")
	}
	_, l := busyEnv(t)
	b, _ := json.Marshal(l)
	if err := os.WriteFile(os.Getenv("TESTENV_REPORT"), b, 0o644); err != nil {
		t.Fatal(err)
	}
	if how == "panic" {
		panic("deliberate panic")
	}
	t.Fatal("deliberate fail")
}
