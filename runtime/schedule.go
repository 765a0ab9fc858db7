package runtime

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/pontoon-dev/pontoon/partition"
	"github.com/pontoon-dev/pontoon/schedule"
)

// guestsTimeout bounds the wait for the run's guests to be attached before its schedule
// starts: containers are started by then, and their hooks attach them within moments.
const guestsTimeout = 30 * time.Second

// startSchedule runs the command's fault schedule, if it has one, on the run's bridge once
// every guest of the run is attached. The returned function stops it, leaving the bridge
// healed, waits for that and says whether the schedule could not start or a step failed;
// the run calls it before its containers are gone.
func (r *run) startSchedule(started Started) (stop func() error) {
	spec := r.cmd.Schedule
	if spec == nil || r.bridge == "" {
		return func() error { return nil }
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	var failed error
	go func() {
		defer close(done)
		bridge := func() (partition.Target, error) { return partition.ForBridge(r.opt.Env, r.bridge) }
		t, err := waitGuests(ctx, bridge, started)
		var plan schedule.Plan
		if err == nil {
			// Checked again on the guests that are really there: --only and --exclude may
			// have left out one the schedule names.
			plan, err = spec.PlanFor(t.Guests)
		}
		if err != nil {
			if ctx.Err() == nil {
				failed = fmt.Errorf("schedule not started: %w", err)
				r.logf("%v", failed)
			}
			return
		}
		r.logf("schedule: seed %d, %d steps over %s (pontoon partition log --bridge %s)", plan.Seed, len(plan.Steps), plan.End, r.bridge)
		if err := schedule.Start(ctx, r.opt.Env, r.bridge, plan).Wait(); err != nil {
			failed = err
			r.logf("%v", err)
		}
	}()
	return func() error {
		cancel()
		<-done
		return failed
	}
}

// waitGuests waits until every guest of the run is attached to its bridge.
func waitGuests(ctx context.Context, bridge func() (partition.Target, error), started Started) (partition.Target, error) {
	deadline := time.Now().Add(guestsTimeout)
	for {
		t, err := bridge()
		if err != nil {
			return t, err
		}
		attached := map[string]bool{}
		for _, g := range t.Guests {
			attached[g.Name] = true
		}
		var missing []string
		for name := range started.Guests {
			if !attached[name] {
				missing = append(missing, name)
			}
		}
		if len(missing) == 0 {
			return t, nil
		}
		if time.Now().After(deadline) {
			return t, fmt.Errorf("guests %v are not attached to bridge %s after %s", missing, started.Bridge, guestsTimeout)
		}
		select {
		case <-ctx.Done():
			return t, errors.New("the run ended")
		case <-time.After(50 * time.Millisecond):
		}
	}
}
