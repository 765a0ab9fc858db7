package runtime_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
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

// poll is enginetest.Poll.
func poll(t *testing.T, what string, cond func() bool) bool {
	t.Helper()
	return enginetest.Poll(t, what, cond)
}

// runcList lists the containers in the runner's engine state (runc's, or crun's when the
// runner's runtime is crun).
func (r *runner) runcList() []string {
	r.t.Helper()
	bin := "runc"
	if r.runtime == config.RuntimeCrun {
		bin = "crun"
	}
	out, err := exec.Command(bin, "--root", r.runcDir, "list", "-q").CombinedOutput()
	if err != nil {
		r.t.Errorf("%s list: %v: %s", bin, err, out)
	}
	return strings.Fields(string(out))
}

// TestRunKilledLeavesNothing reproduces `kill -9` of `pontoon run` whose three children run
// `sleep`, at moments before, during and after their containers start, with runc and crun:
// today the containers and their processes outlive it. After `pontoon gc` (runtime.GC, then
// netsetup.GC) no container of the run is left in the engine's state, no process of it
// runs, and its bridge and bundles are gone. Child c runs without init, so its `sleep`
// ignores the SIGTERM its engine passes on when pontoon dies: only gc stops it.
func TestRunKilledLeavesNothing(t *testing.T) {
	r := newRunner(t)
	moments := []struct {
		name  string
		ready func(r *runner) bool
	}{
		{"before containers", func(r *runner) bool {
			ents, _ := os.ReadDir(filepath.Join(r.s.Env.StateDir, "runs"))
			return len(ents) > 0
		}},
		{"while containers start", func(r *runner) bool { return len(r.runcList()) > 0 }},
		{"after containers started", func(r *runner) bool { return len(r.runcList()) == 3 && strings.Count(r.out.String(), "ready") == 3 }},
	}
	i := 0
	for _, rt := range []config.Runtime{config.RuntimeRunc, config.RuntimeCrun} {
		for _, moment := range moments {
			i++
			t.Run(string(rt)+"/"+moment.name, func(t *testing.T) {
				if rt == config.RuntimeCrun {
					hooktest.NeedCommand(t, "crun", "crun")
				}
				r.runtime = rt
				defer func() { r.runtime = "" }()
				killRun(t, r, strconv.Itoa(8640000+i), moment.ready)
			})
		}
	}
}

// killRun starts a run of three sleeping children in a subprocess, kills it with SIGKILL
// once ready says so, runs gc and checks that nothing of the run is left.
func killRun(t *testing.T, r *runner, token string, ready func(r *runner) bool) {
	r.t = t
	r.out = &testkit.Buffer{}
	dir := t.TempDir()
	path := filepath.Join(dir, config.FileName)
	if err := os.WriteFile(path, []byte(enginetest.Sleepers(token, "")), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd, done := enginetest.StartRun(t, enginetest.SubprocessRun{Project: path, Command: "sleepers", Env: r.s.Env,
		Engine: runtime.EngineOptions{RuntimeRoot: r.runcDir}, Runtime: r.runtime}, r.out)
	if !poll(t, "the run to reach the moment", func() bool {
		select {
		case <-done:
			t.Fatalf("the run ended by itself:\n%s", r.out)
		default:
		}
		return ready(r)
	}) {
		t.FailNow()
	}
	cmd.Process.Kill()
	<-done

	rep, err := runtime.GC(r.s.Env)
	if err != nil {
		t.Fatalf("runtime.GC: %v", err)
	}
	t.Logf("runtime.GC removed %v", rep.Containers)
	if _, err := netsetup.GC(r.s.Env); err != nil {
		t.Fatalf("netsetup.GC: %v", err)
	}
	if left := r.runcList(); len(left) != 0 {
		t.Errorf("%s containers left: %v", r.runtime, left)
	}
	if left := enginetest.WithArg(token); len(left) != 0 {
		t.Errorf("processes of the run left: %+v", left)
	}
	// The engine's cgroups of the run's containers (runc names them after the container).
	if left, _ := filepath.Glob(fmt.Sprintf("/sys/fs/cgroup/*/sleepers-%d-*", cmd.Process.Pid)); len(left) != 0 {
		t.Errorf("cgroups of the run left: %v", left)
	}
	r.clean()
}

// TestRunStopsSleep reproduces SIGTERM to `pontoon run` whose child is `sleep`: as PID 1 of
// its container `sleep` ignored SIGTERM and the run waited out its stop timeout. With init
// (the default) the signal reaches `sleep`, which dies of it: the run ends with 143 and
// nothing had to be killed.
func TestRunStopsSleep(t *testing.T) {
	r := newRunner(t)
	p := project(t, `
[commands.nap]
supervise = true
[commands.nap.children.sleeper]
run = ["sh", "-c", "echo ready; exec sleep 8640100"]
ip = "172.18.0.1"
`)
	r.stopsBy(p, "nap", "the child to start", syscall.SIGTERM)
	if strings.Contains(r.log.String(), "did not stop") {
		t.Fatalf("sleep had to be killed:\n%s", r.log)
	}
	r.clean()
}

// TestRunPlainStopsSleep: a plain command's container has init too, so `sleep` as the
// command stops at SIGTERM instead of being killed after the stop timeout; a command not
// found exits 127, as a child's does.
func TestRunPlainStopsSleep(t *testing.T) {
	r := newRunner(t)
	p := project(t, `
[commands.nap]
network = "none"
run = ["sh", "-c", "echo ready; exec sleep 8640160"]

[commands.missing]
network = "none"
run = ["no-such-program-8640161"]
`)
	r.stopsBy(p, "nap", "the command to start", syscall.SIGTERM)
	if strings.Contains(r.log.String(), "did not stop") {
		t.Fatalf("sleep had to be killed:\n%s", r.log)
	}
	if code := r.run(context.Background(), p, "missing", r.options()); code != 127 {
		t.Errorf("a command not found: status %d, want 127", code)
	}
	r.clean()
}

// TestRunInterruptStopsScript reproduces Ctrl-C (SIGINT) to `pontoon run` whose child is a
// shell script waiting for `sleep`: init passed the signal to the shell alone, which waited for
// `sleep`, and the run waited out its stop timeout. As a terminal does, init now passes it to
// every process of the container: the run ends with 130, the script's next line never runs,
// and nothing had to be killed.
func TestRunInterruptStopsScript(t *testing.T) {
	r := newRunner(t)
	p := project(t, `
[commands.script]
supervise = true
[commands.script.children.waiter]
run = ["sh", "-c", "echo ready; sleep 8640150; echo after the sleep"]
ip = "172.18.0.1"
`)
	r.stopsBy(p, "script", "the child to start", syscall.SIGINT)
	if strings.Contains(r.log.String(), "did not stop") || strings.Contains(r.out.String(), "after the sleep") {
		t.Fatalf("the script did not stop with its sleep:\n%s\n%s", r.out, r.log)
	}
	r.clean()
}

// TestRunStopTimeout: a child whose script traps SIGTERM outlives the command's stop
// timeout, is killed, and pontoon names it (and only it) in the message.
func TestRunStopTimeout(t *testing.T) {
	r := newRunner(t)
	p := project(t, `
[commands.mixed]
supervise = true
stop_timeout = "300ms"
[commands.mixed.children.stubborn]
run = ["sh", "-c", "trap 'echo stubborn got TERM' TERM; echo ready; while :; do sleep 1 & wait $!; done"]
ip = "172.18.0.1"
[commands.mixed.children.polite]
run = ["sh", "-c", "echo ready; exec sleep 8640200"]
ip = "172.18.0.2"
`)
	sigs := make(chan os.Signal, 1)
	opt := r.options()
	opt.StopTimeout = 0 // the command's
	opt.Signals = sigs
	opt.Started = func(runtime.Started) {
		poll(t, "the children to start", func() bool { return strings.Count(r.out.String(), "ready") == 2 })
		sigs <- syscall.SIGTERM
	}
	if code := r.run(context.Background(), p, "mixed", opt); code != 128+int(syscall.SIGTERM) {
		t.Fatalf("status %d, want %d", code, 128+int(syscall.SIGTERM))
	}
	if !strings.Contains(r.out.String(), "stubborn got TERM") {
		t.Error("init did not pass SIGTERM to the script")
	}
	if want := "stubborn did not stop within 300ms of the stop signal; killing them"; !strings.Contains(r.log.String(), want) {
		t.Errorf("pontoon's log lacks %q:\n%s", want, r.log)
	}
	if strings.Contains(r.log.String(), "polite did not stop") || strings.Contains(r.log.String(), "polite, ") {
		t.Errorf("the log names polite, which stopped:\n%s", r.log)
	}
	r.clean()
}

// TestRunInitReapsZombies: a command leaves orphans behind, which exit once it has exec'd a
// program that never waits (`sleep`). With init they are reaped; without it (child bare)
// they stay zombies as long as the container runs, which shows what init is for.
func TestRunInitReapsZombies(t *testing.T) {
	r := newRunner(t)
	p := project(t, `
[commands.orphans]
supervise = true
[commands.orphans.children.init]
run = ["sh", "-c", "`+orphans+`; echo ready; exec sleep 8640301"]
ip = "172.18.0.1"
[commands.orphans.children.bare]
run = ["sh", "-c", "`+orphans+`; echo ready; exec sleep 8640302"]
ip = "172.18.0.2"
init = false
`)
	// zombies counts the zombie children of the process running `sleep token` and of its
	// parent (init, when there is one).
	zombies := func(token string) int {
		var ps []enginetest.Proc
		for _, q := range enginetest.WithArg(token) {
			if slices.Equal(q.Args, []string{"sleep", token}) {
				ps = append(ps, q)
			}
		}
		if len(ps) != 1 {
			return -1
		}
		n := 0
		for _, q := range enginetest.Processes() {
			if q.State == "Z" && (q.PPID == ps[0].PID || q.PPID == ps[0].PPID) {
				n++
			}
		}
		return n
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	opt := r.options()
	opt.StopTimeout = 500 * time.Millisecond // bare's sleep ignores SIGTERM
	opt.Started = func(runtime.Started) {
		defer cancel()
		poll(t, "the children to start", func() bool { return strings.Count(r.out.String(), "ready") == 2 })
		// The orphans of bare exit and are never reaped: all three show up as zombies.
		if poll(t, "bare's orphans to exit", func() bool { return zombies("8640302") == 3 }) {
			poll(t, "init's orphans to be reaped", func() bool { return zombies("8640301") == 0 })
		}
	}
	r.run(ctx, p, "orphans", opt)
	r.clean()
}

// orphans starts three processes whose parent exits at once (a subshell's background job),
// each waiting until the shell that started them has become `sleep`, then exiting.
const orphans = `for i in 1 2 3; do (sh -c 'until read c < /proc/$0/comm && [ $c = sleep ]; do :; done' $$ &); done`

// stopsBy runs command of p, sends it sig once the output says ready (what is waited for), and
// fails unless the run ends by that signal. The stop timeout is long enough that a run which
// needs it fails the test rather than passing slowly.
func (r *runner) stopsBy(p *config.Project, command, what string, sig syscall.Signal) {
	r.t.Helper()
	opt := r.options()
	opt.StopTimeout = time.Minute
	r.signalWhenReady(&opt, what, sig)
	if code := r.run(context.Background(), p, command, opt); code != 128+int(sig) {
		r.t.Fatalf("status %d, want %d", code, 128+int(sig))
	}
}

// signalWhenReady makes the run send sig, as a user would, once the output says "ready";
// also when that wait failed, so that the run ends.
func (r *runner) signalWhenReady(opt *runtime.Options, what string, sig os.Signal) {
	sigs := make(chan os.Signal, 1)
	opt.Signals = sigs
	opt.Started = func(runtime.Started) {
		poll(r.t, what, func() bool { return strings.Contains(r.out.String(), "ready") })
		sigs <- sig
	}
}
