package runtime_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pontoon-dev/pontoon/hooks/hooktest"
	"github.com/pontoon-dev/pontoon/netsetup"
	"github.com/pontoon-dev/pontoon/runtime"
	"github.com/pontoon-dev/pontoon/runtime/config"
)

const namesProject = `
[commands.names]
supervise = true

[commands.names.children.db]
run = { shell = "trap 'exit 0' TERM; sleep 600 & wait" }
ip = "172.18.0.1"
aliases = ["primary", "pg.svc"]

[commands.names.children.app]
run = { shell = "until getent ahostsv4 primary; do sleep 0.1; done; getent ahostsv4 pg.svc && grep nameserver /etc/resolv.conf && echo ready; until getent ahostsv4 late; do sleep 0.1; done; exit 3" }
ip = "172.18.0.2"
`

// TestRunChildrenResolveAliases: children of a run find each other's aliases (which only
// the bridge's name server knows; /etc/hosts has names) through the resolv.conf the run
// gives them, and a guest that joins the run's bridge later resolves as soon as it is
// attached. Children start at once, so app waits for db's first alias to be there: on a
// loaded machine app's first lookup may come before db's attach.
func TestRunChildrenResolveAliases(t *testing.T) {
	for _, engine := range []config.Runtime{config.RuntimeRunc, config.RuntimeCrun} {
		t.Run(string(engine), func(t *testing.T) { runChildrenResolveAliases(t, engine) })
	}
}

func runChildrenResolveAliases(t *testing.T, engine config.Runtime) {
	r := newRunner(t)
	hooktest.NeedCommand(t, string(engine), string(engine))
	r.runtime = engine
	p := project(t, namesProject)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	done := make(chan int, 1)
	opt := r.options()
	opt.Runtime = engine
	go func() {
		code, err := runtime.Run(ctx, p, "names", opt)
		if err != nil {
			t.Errorf("run names: %v", err)
		}
		done <- code
	}()
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(r.out.String(), "ready") {
		if time.Now().After(deadline) {
			cancel()
			<-done
			t.Fatalf("app never resolved db's aliases:\n%s\n%s", r.out, r.log)
		}
		time.Sleep(20 * time.Millisecond)
	}
	out := r.out.String()
	if strings.Count(out, "172.18.0.1") < 2 || !strings.Contains(out, "nameserver 172.18.0.254") {
		t.Errorf("app's lookups:\n%s", out)
	}
	bridges, err := netsetup.Bridges(r.s.Env)
	if err != nil || len(bridges) != 1 {
		t.Fatalf("bridges of the run: %v, %v", bridges, err)
	}
	if _, err := netsetup.AddGuest(r.s.Env, bridges[0].Name, "joiner", netsetup.GuestOptions{IP: "172.18.0.9", Aliases: []string{"late"}}); err != nil {
		t.Fatal(err)
	}
	select {
	case code := <-done:
		if code != 3 {
			t.Errorf("run exited %d; want app's 3 once it resolved the late guest\n%s\n%s", code, r.out, r.log)
		}
	case <-ctx.Done():
		t.Fatalf("app never resolved the guest that joined later:\n%s\n%s", r.out, r.log)
	}
	r.clean()
}

// A bad alias in pontoon.toml is refused with its line and key.
func TestAliasesInProjectFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, config.FileName)
	bad := strings.Replace(namesProject, `"pg.svc"`, `"pg svc"`, 1)
	if err := os.WriteFile(path, []byte(bad), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := config.Load(path)
	if err == nil || !strings.Contains(err.Error(), "aliases") || !strings.Contains(err.Error(), `"pg svc" is not a valid alias`) {
		t.Errorf("Load with a bad alias: %v", err)
	}
	p := project(t, namesProject)
	for _, ch := range p.Commands[0].Children {
		if ch.Name == "db" && (ch.Guest == nil || strings.Join(ch.Guest.Aliases, " ") != "primary pg.svc") {
			t.Errorf("db's guest: %+v", ch.Guest)
		}
	}
}

// namesDNSProject's schedule fails app's lookups of db after a healed while; app reports
// what its resolver sees. Its /etc/hosts must not name db, or the fault would reach nothing.
const namesDNSProject = `
[commands.dnsfault]
supervise = true

[commands.dnsfault.children.db]
run = { shell = "trap 'exit 0' TERM; sleep 600 & wait" }
ip = "172.18.0.1"

[commands.dnsfault.children.app]
run = { shell = "grep -qw app /etc/hosts && echo own-name; grep -qw db /etc/hosts || echo db-not-in-hosts; until getent ahostsv4 db; do sleep 0.1; done; echo resolved; until ! getent ahostsv4 db; do sleep 0.1; done; echo faulted; exit 4" }
ip = "172.18.0.2"

[commands.dnsfault.schedule]
steps = [
  { heal = true, for = "5s" },
  { dns = "nxdomain --name db --from app", for = "60s" },
]
`

// TestRunScheduleDNSFaultReachesGuests: a run whose schedule has DNS faults names its guests
// by the name server alone, so the fault reaches app's resolver: db resolves while healed and
// fails once the fault is in force, and app still finds its own name in /etc/hosts.
func TestRunScheduleDNSFaultReachesGuests(t *testing.T) {
	r := newRunner(t)
	p := project(t, namesDNSProject)
	ctx, cancel := context.WithTimeout(context.Background(), 45*time.Second)
	defer cancel()
	code := r.run(ctx, p, "dnsfault", r.options())
	out := r.out.String()
	for _, want := range []string{"own-name", "db-not-in-hosts", "resolved", "faulted"} {
		if !strings.Contains(out, want) {
			t.Errorf("app did not print %q:\n%s\n%s", want, out, r.log)
		}
	}
	if code != 4 {
		t.Errorf("run exited %d, want app's 4 once its lookup of db failed\n%s\n%s", code, out, r.log)
	}
	r.clean()
}
