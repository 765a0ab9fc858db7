package runtime_test

import (
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pontoon-dev/pontoon/internal/testkit"
	"github.com/pontoon-dev/pontoon/netsetup"
	"github.com/pontoon-dev/pontoon/runtime"
	"github.com/pontoon-dev/pontoon/runtime/config"
	"github.com/pontoon-dev/pontoon/runtime/internal/enginetest"
)

// TestRunService runs a command with a service over two servers: the client finds the
// service's name in /etc/hosts, and its fetches through the service address reach both.
// The client fetches until it has heard both (the servers start in their own time: one may
// still refuse connections when the other first answers).
func TestRunService(t *testing.T) {
	r := newRunner(t)
	p := project(t, `
[commands.cluster]
supervise = true

[commands.cluster.children.n1]
`+server+`
ip = "172.18.0.1"

[commands.cluster.children.n2]
`+server+`
ip = "172.18.0.2"

[commands.cluster.children.c]
ip = "172.18.0.3"
run = { shell = "grep -w kv /etc/hosts; get() { timeout 1 busybox wget -q -O - http://kv:7000/; }; seen=; for i in $(seq 100); do r=$(get) && echo \"$r\" && seen=\"$seen $r\"; case \"$seen\" in *n1*n2*|*n2*n1*) exit 0;; esac; sleep 0.1; done; exit 1" }

[commands.cluster.services.kv]
members = ["n1", "n2"]
ports = ["7000"]
`)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if code := r.run(ctx, p, "cluster", r.options()); code != 0 {
		t.Fatalf("status %d, want the client's 0\n%s\n%s", code, r.out.String(), r.log.String())
	}
	out := r.out.String()
	for _, want := range []string{`c +\| 172\.18\.1\.1\s+kv`, `c +\| n1\n`, `c +\| n2\n`} {
		if !regexp.MustCompile(want).MatchString(out) {
			t.Errorf("the client's output lacks %q:\n%s", want, out)
		}
	}
	if log := r.log.String(); !strings.Contains(log, "service kv at 172.18.1.1") {
		t.Errorf("pontoon's log does not show the service:\n%s", log)
	}
	r.clean()
}

// TestRunWithServicesKilled kills `pontoon run` with SIGKILL while its services are being
// added and once they are: after gc, nothing of the run is left, its services included.
func TestRunWithServicesKilled(t *testing.T) {
	r := newRunner(t)
	services := func(r *runner, done bool) bool {
		bs, _ := netsetup.Bridges(r.s.Env)
		for _, b := range bs {
			for _, s := range b.Services {
				if !done || s.Changing == nil {
					return true
				}
			}
		}
		return false
	}
	for i, moment := range []struct {
		name  string
		ready func(r *runner) bool
	}{
		{"while services are added", func(r *runner) bool { return services(r, false) }},
		{"after services are added", func(r *runner) bool { return services(r, true) }},
	} {
		t.Run(moment.name, func(t *testing.T) {
			r.t, r.out = t, &testkit.Buffer{}
			token := strconv.Itoa(8640200 + i)
			path := filepath.Join(t.TempDir(), config.FileName)
			project := enginetest.Sleepers(token, "") + "[commands.sleepers.services.kv]\nmembers = [\"a\", \"b\"]\n"
			if err := os.WriteFile(path, []byte(project), 0o644); err != nil {
				t.Fatal(err)
			}
			cmd, done := enginetest.StartRun(t, enginetest.SubprocessRun{Project: path, Command: "sleepers", Env: r.s.Env,
				Engine: runtime.EngineOptions{RuntimeRoot: r.runcDir}}, r.out)
			if !poll(t, "the run to reach the moment", func() bool {
				select {
				case <-done:
					t.Fatalf("the run ended by itself:\n%s", r.out)
				default:
				}
				return moment.ready(r)
			}) {
				t.FailNow()
			}
			cmd.Process.Kill()
			<-done
			if _, err := runtime.GC(r.s.Env); err != nil {
				t.Fatalf("runtime.GC: %v", err)
			}
			if _, err := netsetup.GC(r.s.Env); err != nil {
				t.Fatalf("netsetup.GC: %v", err)
			}
			if left := enginetest.WithArg(token); len(left) != 0 {
				t.Errorf("processes of the run left: %+v", left)
			}
			r.clean()
		})
	}
}
