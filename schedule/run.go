package schedule

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/pontoon-dev/pontoon/eventlog"
	"github.com/pontoon-dev/pontoon/names"
	"github.com/pontoon-dev/pontoon/netsetup"
	"github.com/pontoon-dev/pontoon/partition"
)

// Event fields of the schedule's own events in the bridge's event log. Its steps are logged
// by partition itself (kind apply, impair or heal, source "schedule", what the fault).
const (
	EventKind = "schedule" // the start and the end of a schedule
	// FieldPhase is "start" or "end"; FieldSeed, FieldSteps and FieldEnd describe the plan
	// on the start event; FieldStopped is "true" on the end event of a schedule stopped
	// early.
	FieldPhase   = "phase"
	FieldSeed    = "seed"
	FieldSteps   = "steps"
	FieldEnd     = "end"
	FieldStopped = "stopped"
)

// Running is a schedule being executed.
type Running struct {
	plan   Plan
	cancel context.CancelFunc
	done   chan struct{}
	err    error
}

// Start executes plan in the background on the bridge called bridge of the chain env: each
// step at its time after Start, through partition.Update (a healing step through
// partition.Heal) and, for DNS faults, the bridge's name server (package names). partition
// logs each step with source "schedule" and the fault in What. The bridge's guests are read
// again for every step, so a guest that attached again (a restarted container) is under the
// step's fault too. The schedule ends after Plan.End, when ctx ends, or on Stop; the bridge is
// healed at the end in every case. A step that fails ends the schedule: the bridge is healed
// and Wait returns the error.
func Start(ctx context.Context, env netsetup.Env, bridge string, plan Plan) *Running {
	ctx, cancel := context.WithCancel(ctx)
	r := &Running{plan: plan, cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(r.done)
		r.err = run(ctx, &target{env: env, bridge: bridge, dns: plan.usesDNS()}, plan)
	}()
	return r
}

// target is the bridge a schedule acts on.
type target struct {
	env    netsetup.Env
	bridge string
	// dns: the plan has DNS faults, so each step sets the name server's too. A plan without
	// leaves DNS faults from elsewhere alone.
	dns bool
}

// usesDNS reports whether any step has a DNS fault.
func (p Plan) usesDNS() bool {
	for _, s := range p.Steps {
		if strings.TrimSpace(s.Fault.DNS) != "" {
			return true
		}
	}
	return false
}

// Plan returns the plan being executed.
func (r *Running) Plan() Plan { return r.plan }

// Done is closed once the schedule has ended and the bridge is healed.
func (r *Running) Done() <-chan struct{} { return r.done }

// Wait waits until the schedule has ended and returns why it failed, if it did.
func (r *Running) Wait() error {
	<-r.done
	return r.err
}

// Stop ends the schedule early, heals the bridge and waits for both.
func (r *Running) Stop() error {
	r.cancel()
	return r.Wait()
}

func run(ctx context.Context, b *target, plan Plan) (err error) {
	start := time.Now()
	t, err := b.partition()
	if err != nil {
		return err
	}
	if err := plan.CheckKernel(t.Guests); err != nil {
		return err
	}
	// The log is written only into the bridge's data directory as it is, which comes with
	// the bridge's first partition change; the start comes before, on a bridge that exists.
	if err := os.MkdirAll(t.StateDir, 0o700); err != nil {
		return fmt.Errorf("schedule: %w", err)
	}
	logPhase(t, start, "start", map[string]string{
		FieldSeed: strconv.FormatInt(plan.Seed, 10), FieldSteps: strconv.Itoa(len(plan.Steps)), FieldEnd: plan.End.String(),
	}, nil)
	stopped := false
	defer func() {
		// Healing is the one thing that must happen whatever ended the schedule.
		why := "stopped"
		if err != nil {
			why = "failed"
		}
		if herr := b.heal(stopped || err != nil, why); herr != nil {
			err = errors.Join(err, herr)
		}
		fields := map[string]string{}
		if stopped || err != nil {
			fields[FieldStopped] = "true"
		}
		logPhase(t, time.Now(), "end", fields, err)
	}()
	for i, st := range plan.Steps {
		if !sleepUntil(ctx, start.Add(st.At)) {
			stopped = true
			return nil
		}
		if err := b.apply(st); err != nil {
			return fmt.Errorf("schedule %s (%s, %d of %d): %w", st.Label, st.Fault, i+1, len(plan.Steps), err)
		}
	}
	if !sleepUntil(ctx, start.Add(plan.End)) {
		stopped = true
	}
	return nil
}

// CheckKernel reports a step that needs what the running kernel lacks (netem, for delay,
// jitter, duplicate, corrupt and reorder), so that a schedule is refused before it changes
// anything instead of failing at that step, its earlier faults done. A step whose guests
// are not all there is left to fail when it runs: they may be back by then.
func (p Plan) CheckKernel(guests []partition.Guest) error {
	faults := make([]labelled, len(p.Steps))
	for i, st := range p.Steps {
		faults[i] = labelled{st.Label, st.Fault}
	}
	return checkKernel(faults, guests)
}

// CheckKernel is Plan.CheckKernel for every fault the spec may put in force, whichever a
// seed draws: what `pontoon run` checks before it makes anything.
func (s Spec) CheckKernel(guests []partition.Guest) error {
	var faults []labelled
	for i, st := range s.Steps {
		faults = append(faults, labelled{fmt.Sprintf("step %d", i+1), st.Fault})
	}
	if s.Nemesis != nil {
		for i, f := range s.Nemesis.Faults {
			faults = append(faults, labelled{fmt.Sprintf("nemesis fault %d", i+1), f})
		}
	}
	if s.Flap != nil {
		faults = append(faults, labelled{"flap", s.Flap.Fault})
	}
	return checkKernel(faults, guests)
}

// labelled is a fault with the words that say where it comes from.
type labelled struct {
	label string
	fault Fault
}

// checkKernel refuses the first fault that needs netem when the kernel says it has none. The
// kernel is asked once. Only its answer refuses: a probe that cannot run (no root yet) says
// nothing about netem, and what stops the probe stops the run anyway, in its own words.
func checkKernel(faults []labelled, guests []partition.Guest) error {
	for _, f := range faults {
		s, err := f.fault.State(guests)
		if err != nil || !slices.ContainsFunc(s.Impairments, partition.Impairment.NeedsNetem) {
			continue
		}
		var fe *partition.FeatureError
		if err := partition.CheckNetem(); errors.As(err, &fe) {
			return fmt.Errorf("schedule %s (%s): %w", f.label, f.fault, err)
		}
		return nil
	}
	return nil
}

func (b *target) partition() (partition.Target, error) {
	t, err := partition.ForBridge(b.env, b.bridge)
	if err != nil {
		return t, fmt.Errorf("schedule: %w", err)
	}
	t.Source = partition.SourceSchedule
	return t, nil
}

// apply puts one step's fault in force, replacing the previous step's.
func (b *target) apply(st Planned) error {
	t, err := b.partition()
	if err != nil {
		return err
	}
	t.What = st.Fault.String()
	if st.Fault.Healed() {
		err = partition.Heal(t)
	} else {
		t.Sets = []string{partition.SetsAll} // a step's fault is the whole state
		_, err = partition.Update(t, func(partition.State) (partition.State, error) { return st.Fault.State(t.Guests) })
	}
	if err != nil {
		return err
	}
	return b.setDNS(st.Fault.DNS)
}

// setDNS replaces the name server's faults by the step's.
func (b *target) setDNS(words string) error {
	if !b.dns {
		return nil
	}
	if err := names.ClearFaults(b.env, b.bridge, partition.SourceSchedule); err != nil {
		return err
	}
	if strings.TrimSpace(words) == "" {
		return nil
	}
	f, err := parseDNS(words)
	if err == nil {
		_, err = names.AddFault(b.env, b.bridge, f, partition.SourceSchedule)
	}
	return err
}

// heal heals the bridge at the end of a schedule. A schedule that ran to its end is healed
// already by its last step; one stopped early or failed is healed here.
func (b *target) heal(needed bool, why string) error {
	if !needed {
		return nil
	}
	t, err := b.partition()
	if err == nil {
		t.What = "heal (schedule " + why + ")"
		err = partition.Heal(t)
	}
	if err == nil {
		err = b.setDNS("")
	}
	if err != nil {
		return fmt.Errorf("schedule: heal at the end: %w", err)
	}
	return nil
}

// logPhase records the start or the end of a schedule. A log that cannot be written does not
// stop the schedule: its faults are what matters, and partition logs those itself.
func logPhase(t partition.Target, at time.Time, phase string, fields map[string]string, err error) {
	fields[FieldPhase] = phase
	e := eventlog.Event{Time: at, Kind: EventKind, What: phase, Source: partition.SourceSchedule, Fields: fields}
	if err != nil {
		e.Error = err.Error()
	}
	_ = eventlog.Append(t.StateDir, e)
}

// sleepUntil waits until at and reports true, or false as soon as ctx ends.
func sleepUntil(ctx context.Context, at time.Time) bool {
	d := time.Until(at)
	if d <= 0 {
		return ctx.Err() == nil
	}
	tm := time.NewTimer(d)
	defer tm.Stop()
	select {
	case <-tm.C:
		return true
	case <-ctx.Done():
		return false
	}
}
