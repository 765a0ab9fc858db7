package testenv

import (
	"context"

	"github.com/pontoon-dev/pontoon/schedule"
)

// Schedule starts spec on the Env's bridge in the background (package schedule): steps, a
// nemesis or a flapping fault, each step logged in the bridge's event log with source
// "schedule". It fails the test at once when spec is invalid for the Env's guests, or needs
// what the kernel lacks (netem; RequireNetem skips instead). While it runs it owns the
// partition and the impairments (each step replaces the previous one); it heals the bridge
// when it ends, when Stop is called, and at the latest at t.Cleanup. The plan, with its
// seed, is logged so a failing run can be replayed (Spec.Seed).
func (e *Env) Schedule(spec schedule.Spec) *schedule.Running {
	e.t.Helper()
	t := e.Target()
	plan, err := spec.PlanFor(t.Guests)
	if err != nil {
		e.t.Fatalf("testenv: %v", err)
	}
	e.t.Logf("testenv: schedule seed %d: %d steps over %s", plan.Seed, len(plan.Steps), plan.End)
	r := schedule.Start(context.Background(), e.sb.Env, e.cfg.bridge, plan)
	e.t.Cleanup(func() {
		if err := r.Stop(); err != nil {
			e.t.Errorf("testenv: %v", err)
		}
	})
	return r
}
