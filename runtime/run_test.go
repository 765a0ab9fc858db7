package runtime_test

import (
	"context"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pontoon-dev/pontoon/hooks/hooktest"
	"github.com/pontoon-dev/pontoon/internal/testkit"
	"github.com/pontoon-dev/pontoon/netsetup"
	"github.com/pontoon-dev/pontoon/netsetup/sandbox"
	"github.com/pontoon-dev/pontoon/runtime"
	"github.com/pontoon-dev/pontoon/runtime/config"
)

// project writes pontoon.toml into a fresh project directory and loads it.
func project(t *testing.T, toml string) *config.Project {
	t.Helper()
	dir := t.TempDir()
	path := filepath.Join(dir, config.FileName)
	if err := os.WriteFile(path, []byte(toml), 0o644); err != nil {
		t.Fatal(err)
	}
	p, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// runner runs commands in a sandboxed chain with runc keeping its state privately.
type runner struct {
	t       *testing.T
	s       *sandbox.Sandbox
	runcDir string
	runtime config.Runtime // the engine whose state runcList lists; empty: runc
	out     *testkit.Buffer
	log     *testkit.Buffer
}

func newRunner(t *testing.T) *runner {
	t.Helper()
	hooktest.NeedRoot(t)
	hooktest.NeedCommand(t, "runc", "runc")
	hooktest.NeedCommand(t, "busybox", "busybox-static")
	return &runner{t: t, s: hooktest.Chain(t), runcDir: t.TempDir(), out: &testkit.Buffer{}, log: &testkit.Buffer{}}
}

func (r *runner) options() runtime.Options {
	return runtime.Options{
		Env:         r.s.Env,
		Engine:      runtime.EngineOptions{RuntimeRoot: r.runcDir},
		Stdin:       strings.NewReader(""),
		Stdout:      r.out,
		Stderr:      r.out,
		Log:         r.log,
		StopTimeout: 5 * time.Second,
	}
}

func (r *runner) run(ctx context.Context, p *config.Project, name string, opt runtime.Options) int {
	r.t.Helper()
	code, err := runtime.Run(ctx, p, name, opt)
	r.t.Logf("output of %s:\n%s\npontoon:\n%s", name, r.out, r.log)
	if err != nil {
		r.t.Fatalf("run %s: %v", name, err)
	}
	return code
}

// clean checks that a run left nothing: no bridge state or pinned namespace, no runc
// container, no bundle.
func (r *runner) clean() {
	r.t.Helper()
	if err := hooktest.NoBridges(r.s.Env); err != nil {
		r.t.Error(err)
	}
	if left := r.runcList(); len(left) != 0 {
		r.t.Errorf("containers left: %v", left)
	}
	ents, _ := os.ReadDir(filepath.Join(r.s.Env.StateDir, "runs"))
	if len(ents) != 0 {
		r.t.Errorf("bundles left: %v", ents)
	}
}

// A guest that says hello, serves its hostname over HTTP on port 7000 and exits cleanly
// on SIGTERM.
const server = `run = { shell = "echo hello from $PONTOON_GUEST $PONTOON_IP $(hostname) on $PONTOON_BRIDGE; mkdir -p /tmp/w; hostname > /tmp/w/index.html; trap 'exit 0' TERM; busybox httpd -f -p 7000 -h /tmp/w & wait" }`

const cluster = `
[commands.cluster]
supervise = true

[commands.cluster.children.n1]
` + server + `
ip = "172.18.0.1"

[commands.cluster.children.n2]
` + server + `
ip = "172.18.0.2"
hostname = "second"

[commands.cluster.children.n3]
` + server + `
ip = "172.18.0.3"

[commands.cluster.children.check]
bridge = true
run = { shell = "for n in n1 n2 n3; do until busybox wget -q -O- http://$n:7000/ 2>/dev/null; do sleep 0.1; done; done; echo all reachable; exit 3" }
`

// TestRunSupervise: three guests and a bridge child that reaches each of them by name; the
// bridge child's exit ends the run (exit "any") with its status; every line is prefixed.
func TestRunSupervise(t *testing.T) {
	r := newRunner(t)
	p := project(t, cluster)
	var started runtime.Started
	opt := r.options()
	opt.Started = func(s runtime.Started) { started = s }
	if code := r.run(context.Background(), p, "cluster", opt); code != 3 {
		t.Fatalf("status %d, want the bridge child's 3", code)
	}
	out := r.out.String()
	for _, want := range []string{
		`(?m)^n1    \| hello from n1 172\.18\.0\.1 n1 on cluster-[\d-]+$`,
		`(?m)^n2    \| hello from n2 172\.18\.0\.2 second on cluster-[\d-]+$`,
		`(?m)^n3    \| hello from n3 172\.18\.0\.3 n3 on cluster-[\d-]+$`,
		`(?m)^check \| n1$`, `(?m)^check \| second$`, `(?m)^check \| n3$`,
		`(?m)^check \| all reachable$`,
	} {
		if !regexp.MustCompile(want).MatchString(out) {
			t.Errorf("output lacks %s", want)
		}
	}
	if started.Bridge == "" || len(started.Guests) != 3 {
		t.Errorf("started: %+v", started)
	}
	r.clean()
}

// TestRunExitAll: with exit "all" every child runs to its end and the first non-zero
// status is the run's. c ends only once b's container is gone, so b's status comes first.
func TestRunExitAll(t *testing.T) {
	r := newRunner(t)
	p := project(t, `
[commands.batch]
supervise = true
exit = "all"
[commands.batch.children.a]
run = ["sh", "-c", "echo a done"]
ip = "172.18.0.1"
[commands.batch.children.b]
run = ["sh", "-c", "echo b failing; exit 5"]
ip = "172.18.0.2"
[commands.batch.children.c]
run = ["sh", "-c", "until test -e /work/release; do sleep 0.05; done; echo c done; exit 6"]
bridge = true
[commands.batch.children.d]
run = ["sh", "-c", "until test -e /work/release; do sleep 0.05; done; sh -c 'kill -KILL $$'"]
ip = "172.18.0.3"
`)
	opt := r.options()
	opt.Started = func(s runtime.Started) {
		poll(t, "b's container to go", func() bool {
			return strings.Contains(r.out.String(), "b failing") && !slices.Contains(r.runcList(), s.Bridge+"-b")
		})
		if err := os.WriteFile(filepath.Join(p.Dir, "release"), nil, 0o644); err != nil {
			t.Error(err)
		}
	}
	if code := r.run(context.Background(), p, "batch", opt); code != 5 {
		t.Fatalf("status %d, want b's 5", code)
	}
	for _, want := range []string{"a | a done", "b | b failing", "c | c done"} {
		if !strings.Contains(r.out.String(), want) {
			t.Errorf("output lacks %q", want)
		}
	}
	// Each child's end is told, a signal's by name, and the last line says the run's status.
	for _, want := range []string{"a exited with status 0; waiting for", "b exited with status 5; waiting for",
		"d exited with status 137 (SIGKILL)", "the run's status is 5"} {
		if !strings.Contains(r.log.String(), want) {
			t.Errorf("pontoon's log lacks %q:\n%s", want, r.log)
		}
	}
	r.clean()
}

// TestRunSignals: the first SIGTERM reaches every container and the run ends with 143; a
// second SIGINT kills containers that ignore the first.
func TestRunSignals(t *testing.T) {
	r := newRunner(t)
	p := project(t, `
[commands.polite]
supervise = true
[commands.polite.children.a]
run = ["sh", "-c", "trap 'echo a got TERM; exit 0' TERM; echo a ready; while :; do sleep 0.1; done"]
ip = "172.18.0.1"
[commands.polite.children.b]
run = ["sh", "-c", "trap 'echo b got TERM; exit 0' TERM; echo b ready; while :; do sleep 0.1; done"]
bridge = true

[commands.stubborn]
supervise = true
[commands.stubborn.children.a]
run = ["sh", "-c", "trap '' TERM INT; echo ignoring; while :; do sleep 0.1; done"]
ip = "172.18.0.1"
`)
	sigs := make(chan os.Signal, 2)
	opt := r.options()
	opt.Signals = sigs
	opt.Started = func(runtime.Started) {
		poll(t, "the shells to install their traps", func() bool {
			return strings.Contains(r.out.String(), "a ready") && strings.Contains(r.out.String(), "b ready")
		})
		sigs <- syscall.SIGTERM
	}
	if code := r.run(context.Background(), p, "polite", opt); code != 128+int(syscall.SIGTERM) {
		t.Fatalf("status %d, want %d", code, 128+int(syscall.SIGTERM))
	}
	for _, want := range []string{"a | a got TERM", "b | b got TERM"} {
		if !strings.Contains(r.out.String(), want) {
			t.Errorf("output lacks %q", want)
		}
	}
	r.clean()

	// Without the second signal this run would wait out a stop timeout of an hour.
	opt.StopTimeout = time.Hour
	opt.Started = func(runtime.Started) {
		poll(t, "the shell to ignore signals", func() bool { return strings.Contains(r.out.String(), "ignoring") })
		sigs <- syscall.SIGINT
		poll(t, "pontoon to pass the first signal on", func() bool { return strings.Contains(r.log.String(), "stopping (again to kill at once)") })
		sigs <- syscall.SIGINT
	}
	if code := r.run(context.Background(), p, "stubborn", opt); code != 128+int(syscall.SIGINT) {
		t.Fatalf("status %d, want %d", code, 128+int(syscall.SIGINT))
	}
	if !strings.Contains(r.log.String(), "killing every container") {
		t.Errorf("pontoon did not report the kill:\n%s", r.log)
	}
	r.clean()
}

// TestRunCancel: cancelling the context stops the run like SIGTERM.
func TestRunCancel(t *testing.T) {
	r := newRunner(t)
	p := project(t, `
[commands.forever]
supervise = true
[commands.forever.children.a]
run = ["sh", "-c", "trap 'exit 0' TERM; echo ready; while :; do sleep 0.1; done"]
ip = "172.18.0.1"
`)
	ctx, cancel := context.WithCancel(context.Background())
	opt := r.options()
	opt.Started = func(runtime.Started) {
		poll(t, "the shell to install its trap", func() bool { return strings.Contains(r.out.String(), "ready") })
		cancel()
	}
	if code := r.run(ctx, p, "forever", opt); code != 128+int(syscall.SIGTERM) {
		t.Fatalf("status %d, want %d", code, 128+int(syscall.SIGTERM))
	}
	r.clean()
}

// TestRunSelect: --only and --exclude pick children; the others never start.
func TestRunSelect(t *testing.T) {
	r := newRunner(t)
	p := project(t, cluster)
	var guests []string
	opt := r.options()
	opt.Exclude = []string{"n2"}
	opt.Started = func(s runtime.Started) {
		for g := range s.Guests {
			guests = append(guests, g)
		}
	}
	// check waits for n2 forever: stop the run from outside once the others said hello.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		defer cancel()
		poll(t, "n1 and n3 to say hello", func() bool {
			return strings.Contains(r.out.String(), "hello from n3") && strings.Contains(r.out.String(), "hello from n1")
		})
	}()
	r.run(ctx, p, "cluster", opt)
	if len(guests) != 2 || strings.Contains(r.out.String(), "hello from n2") {
		t.Fatalf("guests %v, output:\n%s", guests, r.out)
	}
	r.clean()

	if _, err := runtime.Run(context.Background(), p, "cluster", runtime.Options{Env: r.s.Env, Only: []string{"n9"}}); err == nil || !strings.Contains(err.Error(), `no child "n9"`) {
		t.Fatalf("--only n9: %v", err)
	}
}

// TestRunPlain: plain commands on no network, as a guest, and on the host's network; the
// status and output are the command's own.
func TestRunPlain(t *testing.T) {
	r := newRunner(t)
	p := project(t, `
[commands.isolated]
network = "none"
run = ["sh", "-c", "hostname; busybox ip -o link | busybox wc -l; exit 7"]

[commands.guest]
network = "guest"
ip = "172.18.0.5"
run = ["sh", "-c", "busybox ip -4 -o addr show eth0; grep tester /etc/hosts; echo args: \"$@\"", "sh"]
hostname = "tester"

[commands.host]
run = ["sh", "-c", "test -d /work && test -w /tmp && ! test -w /usr && echo host root ok"]
`)
	if code := r.run(context.Background(), p, "isolated", r.options()); code != 7 {
		t.Fatalf("status %d, want 7", code)
	}
	if out := r.out.String(); !strings.HasPrefix(out, "isolated\n1\n") {
		t.Fatalf("output %q, want the hostname and a single (loopback) link", out)
	}
	r.out = &testkit.Buffer{}
	opt := r.options()
	opt.Args = []string{"x", "y z"}
	if code := r.run(context.Background(), p, "guest", opt); code != 0 {
		t.Fatalf("status %d", code)
	}
	for _, want := range []string{"inet 172.18.0.5/24", "172.18.0.5\ttester guest", "args: x y z"} {
		if !strings.Contains(r.out.String(), want) {
			t.Errorf("output lacks %q", want)
		}
	}
	r.out = &testkit.Buffer{}
	if code := r.run(context.Background(), p, "host", r.options()); code != 0 || !strings.Contains(r.out.String(), "host root ok") {
		t.Fatalf("status %d", code)
	}
	r.clean()
}

// TestRunSetupFailure: when the bridge cannot be created (a host port another bridge
// forwards), Run fails before starting anything and leaves nothing.
func TestRunSetupFailure(t *testing.T) {
	r := newRunner(t)
	if _, err := netsetup.CreateBridge(r.s.Env, "other", netsetup.BridgeOptions{
		Ports: []netsetup.Port{{HostPort: 7001, Guest: "x", GuestPort: 1, Proto: "tcp"}},
	}); err != nil {
		t.Fatal(err)
	}
	p := project(t, `
[commands.web]
supervise = true
[commands.web.children.a]
run = ["true"]
ip = "172.18.0.1"
ports = ["7001:7000"]
`)
	code, err := runtime.Run(context.Background(), p, "web", r.options())
	if err == nil || code != runtime.ExitSetupFailed || !strings.Contains(err.Error(), "host port 7001/tcp is already forwarded") {
		t.Fatalf("Run = %d, %v", code, err)
	}
	if err := netsetup.DestroyBridge(r.s.Env, "other"); err != nil {
		t.Fatal(err)
	}
	r.clean()
}

// TestRunCrun runs the cluster with crun instead of runc.
func TestRunCrun(t *testing.T) {
	r := newRunner(t)
	hooktest.NeedCommand(t, "crun", "crun")
	p := project(t, cluster)
	opt := r.options()
	opt.Runtime = config.RuntimeCrun
	if code := r.run(context.Background(), p, "cluster", opt); code != 3 {
		t.Fatalf("status %d, want the bridge child's 3", code)
	}
	if !strings.Contains(r.out.String(), "check | all reachable") {
		t.Fatal("the bridge child did not reach every guest")
	}
	if err := hooktest.NoBridges(r.s.Env); err != nil {
		t.Error(err)
	}
}

// TestRunPlainSignal: a plain command's status is its own even when a signal stopped it.
func TestRunPlainSignal(t *testing.T) {
	r := newRunner(t)
	p := project(t, `
[commands.graceful]
network = "none"
run = ["sh", "-c", "trap 'echo bye; exit 3' TERM; echo ready; while :; do sleep 0.1; done"]
`)
	sigs := make(chan os.Signal, 1)
	opt := r.options()
	opt.Signals = sigs
	opt.Started = func(runtime.Started) {
		poll(t, "the command to start", func() bool { return strings.Contains(r.out.String(), "ready") })
		sigs <- syscall.SIGTERM
	}
	if code := r.run(context.Background(), p, "graceful", opt); code != 3 {
		t.Fatalf("status %d, want the command's own 3", code)
	}
	if !strings.Contains(r.out.String(), "bye") {
		t.Fatal("the command did not get SIGTERM")
	}
	r.clean()
}
