package runtime_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/opencontainers/runtime-spec/specs-go"
	"github.com/pontoon-dev/pontoon/hooks/hooktest"
	"github.com/pontoon-dev/pontoon/netsetup"
	"github.com/pontoon-dev/pontoon/runtime"
	"github.com/pontoon-dev/pontoon/runtime/config"
)

// guestsOf returns the guests on bridge by name.
func guestsOf(t *testing.T, env netsetup.Env, bridge string) map[string]netsetup.Guest {
	t.Helper()
	bs, err := netsetup.Bridges(env)
	if err != nil {
		t.Error(err)
		return nil
	}
	out := map[string]netsetup.Guest{}
	for _, b := range bs {
		if b.Name == bridge {
			for _, g := range b.Guests {
				out[g.Name] = g
			}
		}
	}
	return out
}

// TestRunAttachesGuestsItself: with runc and crun as root, pontoon attaches a run's guests
// itself: their bundles join namespaces pontoon pinned on the bridge (named already, so the
// spec sets no hostname) and run no hook; each child still sees its own hostname and
// address, its guest records the container's process (which exec enters), and a child's
// guest leaves the bridge once its container is gone, while the others stay.
func TestRunAttachesGuestsItself(t *testing.T) {
	for _, rt := range []config.Runtime{config.RuntimeRunc, config.RuntimeCrun} {
		t.Run(string(rt), func(t *testing.T) {
			r := newRunner(t)
			if rt == config.RuntimeCrun {
				hooktest.NeedCommand(t, "crun", "crun")
				r.runtime = rt
			}
			p := project(t, `
[commands.pair]
supervise = true
exit = "all"
[commands.pair.children.quick]
run = { shell = "echo quick is $(hostname) at $PONTOON_IP" }
ip = "172.18.0.1"
hostname = "fast"
[commands.pair.children.slow]
run = { shell = "echo slow is $(hostname); until test -e /work/release; do sleep 0.05; done" }
ip = "172.18.0.2"
`)
			opt := r.options()
			opt.Runtime = rt
			opt.Started = func(s runtime.Started) {
				defer os.WriteFile(filepath.Join(p.Dir, "release"), nil, 0o644)
				for _, child := range []string{"quick", "slow"} {
					checkJoinBundle(t, r.s.Env, s.Bridge, child)
				}
				poll(t, "quick's guest to leave the bridge", func() bool {
					_, quick := guestsOf(t, r.s.Env, s.Bridge)["quick"]
					return strings.Contains(r.out.String(), "quick is") && !quick
				})
				// Recorded once the engine has created the container, as the hook records it.
				poll(t, "slow's container process on its guest", func() bool {
					g := guestsOf(t, r.s.Env, s.Bridge)["slow"]
					return g.Process != nil && g.Process.Alive()
				})
				g := guestsOf(t, r.s.Env, s.Bridge)["slow"]
				if g.Key != s.Bridge+"-slow" {
					t.Errorf("slow's guest is attached under key %q, want its container id %s-slow", g.Key, s.Bridge)
				}
				if g.Process != nil {
					if host, _ := os.Readlink("/proc/self/ns/pid"); host != "" {
						if own, _ := os.Readlink(fmt.Sprintf("/proc/%d/ns/pid", g.Process.PID)); own == host {
							t.Errorf("slow's recorded process %d is not in a pid namespace of its own: not the container's", g.Process.PID)
						}
					}
				}
			}
			if code := r.run(context.Background(), p, "pair", opt); code != 0 {
				t.Fatalf("status %d, want 0", code)
			}
			for _, want := range []string{"quick | quick is fast at 172.18.0.1", "slow  | slow is slow"} {
				if !strings.Contains(r.out.String(), want) {
					t.Errorf("output lacks %q", want)
				}
			}
			r.clean()
		})
	}
}

// checkJoinBundle checks that child's bundle joins the namespaces pontoon pinned for its
// guest and runs no hook.
func checkJoinBundle(t *testing.T, env netsetup.Env, bridge, child string) {
	t.Helper()
	paths, _ := filepath.Glob(filepath.Join(env.StateDir, "runs", "*", child, "config.json"))
	if len(paths) != 1 {
		t.Errorf("bundles of %s: %v, want one", child, paths)
		return
	}
	data, err := os.ReadFile(paths[0])
	if err != nil {
		t.Error(err)
		return
	}
	var s specs.Spec
	if err := json.Unmarshal(data, &s); err != nil {
		t.Error(err)
		return
	}
	if s.Hooks != nil || s.Hostname != "" {
		t.Errorf("bundle of %s has hooks %+v and hostname %q, want neither", child, s.Hooks, s.Hostname)
	}
	ns := map[specs.LinuxNamespaceType]string{}
	for _, n := range s.Linux.Namespaces {
		ns[n.Type] = n.Path
	}
	if want := env.GuestNetns(bridge, child); ns[specs.NetworkNamespace] != want {
		t.Errorf("bundle of %s joins network namespace %q, want %s", child, ns[specs.NetworkNamespace], want)
	}
	if uts, ok := ns[specs.UTSNamespace]; !ok || uts == "" {
		t.Errorf("bundle of %s joins no pinned UTS namespace: %+v", child, s.Linux.Namespaces)
	}
}

// TestRunAttachFailureRollsBack: a guest pontoon cannot attach (its hostname, its name
// "b-", ends with '-', which the attach refuses) fails the run before any container starts,
// with the reason, and leaves nothing behind -- no guest, bridge, container or bundle.
func TestRunAttachFailureRollsBack(t *testing.T) {
	r := newRunner(t)
	p := project(t, `
[commands.clash]
supervise = true
[commands.clash.children.a]
run = ["true"]
ip = "172.18.0.1"
[commands.clash.children.b-]
run = ["true"]
ip = "172.18.0.2"
`)
	code, err := runtime.Run(context.Background(), p, "clash", r.options())
	if err == nil || code != runtime.ExitSetupFailed || !strings.Contains(err.Error(), `hostname "b-" is invalid`) {
		t.Fatalf("Run = %d, %v; want %d and the refused name", code, err, runtime.ExitSetupFailed)
	}
	if slices.ContainsFunc(strings.Split(r.out.String(), "\n"), func(l string) bool { return strings.HasPrefix(l, "a ") || strings.HasPrefix(l, "b ") }) {
		t.Errorf("a container ran:\n%s", r.out)
	}
	r.clean()
}
