package runtime_test

import (
	"context"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/pontoon-dev/pontoon/partition"
	"github.com/pontoon-dev/pontoon/runtime"
)

// TestRunSchedule runs a command whose pontoon.toml schedules an isolation of n1 and a heal:
// n2, fetching from n1 in a loop, sees n1 answer, then stop answering, then answer again.
func TestRunSchedule(t *testing.T) {
	r := newRunner(t)
	p := project(t, `
[commands.cluster]
supervise = true

[commands.cluster.children.n1]
`+server+`
ip = "172.18.0.1"

[commands.cluster.children.n2]
ip = "172.18.0.2"
run = { shell = "get() { timeout 1 busybox wget -q -O /dev/null http://172.18.0.1:7000/; }; until get; do sleep 0.1; done; echo reached; while get; do sleep 0.1; done; echo cut; until get; do sleep 0.1; done; echo healed" }

[commands.cluster.schedule]
start = "1s"
steps = [
  { partition = "isolate n1", for = "3s" },
  { heal = true, for = "1h" },
]
`)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if code := r.run(ctx, p, "cluster", r.options()); code != 0 {
		t.Fatalf("status %d, want n2's 0", code)
	}
	out := r.out.String()
	if !regexp.MustCompile(`(?s)n2 +\| reached\n.*n2 +\| cut\n.*n2 +\| healed`).MatchString(out) {
		t.Errorf("n2 did not see n1 reached, cut, healed in order:\n%s", out)
	}
	if log := r.log.String(); !strings.Contains(log, "schedule: seed ") || strings.Contains(log, "schedule not started") {
		t.Errorf("pontoon's log does not show the schedule starting:\n%s", log)
	}
	r.clean()
}

// TestRunFailsWhenScheduleCannotRun: a schedule that names a guest --exclude left out cannot
// run as written; the children succeed, but the run must not pass for one that survived its
// faults.
func TestRunFailsWhenScheduleCannotRun(t *testing.T) {
	r := newRunner(t)
	p := project(t, `
[commands.cluster]
supervise = true

[commands.cluster.children.n1]
ip = "172.18.0.1"
run = ["sleep", "2"]

[commands.cluster.children.n2]
ip = "172.18.0.2"
run = ["sleep", "2"]

[commands.cluster.schedule]
steps = [{ partition = "isolate n2", for = "1s" }]
`)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	opt := r.options()
	opt.Exclude = []string{"n2"}
	if code := r.run(ctx, p, "cluster", opt); code != runtime.ExitSetupFailed {
		t.Errorf("status %d, want %d: the schedule could not isolate the excluded n2", code, runtime.ExitSetupFailed)
	}
	if log := r.log.String(); !strings.Contains(log, "schedule not started") {
		t.Errorf("pontoon's log does not say the schedule did not start:\n%s", log)
	}
	r.clean()
}

// TestRunRefusesScheduleKernelLacks: a schedule whose nemesis may draw a delay, on a kernel
// without netem, is refused before the run makes anything (no bridge, no container), not
// found out when the schedule starts with the containers already running.
func TestRunRefusesScheduleKernelLacks(t *testing.T) {
	if partition.CheckNetem() == nil {
		t.Skip("this kernel has netem")
	}
	r := newRunner(t)
	p := project(t, `
[commands.cluster]
supervise = true

[commands.cluster.children.n1]
ip = "172.18.0.1"
run = ["sh", "-c", "echo started"]

[commands.cluster.schedule]
nemesis = { faults = [{ partition = "isolate n1" }, { impair = "delay=100ms n1" }], fault = "1s", recovery = "1s", duration = "10s" }
`)
	code, err := runtime.Run(context.Background(), p, "cluster", r.options())
	if code != runtime.ExitSetupFailed || err == nil || !strings.Contains(err.Error(), "nemesis fault 2") || !strings.Contains(err.Error(), "netem") {
		t.Fatalf("Run = %d, %v; want %d and the nemesis fault that needs netem", code, err, runtime.ExitSetupFailed)
	}
	if strings.Contains(r.out.String(), "started") || strings.Contains(r.log.String(), "running cluster") {
		t.Errorf("the run started:\n%s\n%s", r.out, r.log)
	}
	r.clean()
}
