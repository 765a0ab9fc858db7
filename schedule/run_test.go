package schedule_test

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pontoon-dev/pontoon/eventlog"
	"github.com/pontoon-dev/pontoon/names"
	"github.com/pontoon-dev/pontoon/netsetup"
	"github.com/pontoon-dev/pontoon/netsetup/probe"
	"github.com/pontoon-dev/pontoon/partition"
	"github.com/pontoon-dev/pontoon/schedule"
	"github.com/pontoon-dev/pontoon/testenv"
)

// tolerance is how late a step may take effect. Steps are timed from the schedule's start, so
// lateness does not add up; it is generous because the machine running the tests is shared.
const tolerance = 750 * time.Millisecond

func newEnv(t *testing.T, opts ...testenv.Option) *testenv.Env {
	env := testenv.New(t, opts...)
	for i, n := range []string{"n1", "n2", "n3"} {
		env.Guest(n, fmt.Sprintf("172.18.0.%d", i+1))
	}
	return env
}

// scheduleEvents returns the schedule's start event and the events of its steps and end, as
// the bridge's event log holds them.
func scheduleEvents(t *testing.T, env *testenv.Env) (start eventlog.Event, steps []eventlog.Event, end eventlog.Event) {
	t.Helper()
	events, err := eventlog.Read(env.Target().StateDir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range events {
		// A DNS fault's own event, should the name server log one, is not a step.
		if e.Source != partition.SourceSchedule || e.Kind == "dns" {
			continue
		}
		switch {
		case e.Kind == schedule.EventKind && e.Fields[schedule.FieldPhase] == "start":
			start = e
		case e.Kind == schedule.EventKind && e.Fields[schedule.FieldPhase] == "end":
			end = e
		default:
			steps = append(steps, e)
		}
	}
	if start.Time.IsZero() || end.Time.IsZero() {
		t.Fatalf("the event log lacks the schedule's start or end:\n%v", events)
	}
	return start, steps, end
}

// checkOnTime checks that each planned step is in the log, in order, with what it put in
// force, never before its time and at most tolerance after it.
func checkOnTime(t *testing.T, plan schedule.Plan, start eventlog.Event, steps []eventlog.Event) {
	t.Helper()
	if len(steps) != len(plan.Steps) {
		t.Fatalf("%d step events for %d planned steps: %+v", len(steps), len(plan.Steps), steps)
	}
	for i, p := range plan.Steps {
		e := steps[i]
		if e.What != p.Fault.String() || e.Error != "" {
			t.Errorf("event %d is %q (error %q), want %s: %q", i, e.What, e.Error, p.Label, p.Fault)
		}
		at := e.Time.Sub(start.Time)
		if at < p.At || at > p.At+tolerance {
			t.Errorf("%s (%s) took effect at %s, planned at %s (tolerance %s)", p.Label, p.Fault, at, p.At, tolerance)
		}
	}
}

// TestStepsHappenInOrder runs a list of steps and checks from the event log that each took
// effect in order and on time, with the partition or impairment it names.
func TestStepsHappenInOrder(t *testing.T) {
	env := newEnv(t)
	spec := schedule.Spec{Start: 200 * time.Millisecond, Steps: []schedule.Step{
		{Fault: schedule.Fault{Partition: "isolate n1"}, For: 500 * time.Millisecond},
		{Fault: schedule.Fault{Impair: "loss=50% n2"}, For: 500 * time.Millisecond},
		{Fault: schedule.Fault{}, For: 300 * time.Millisecond},
		{Fault: schedule.Fault{Partition: "block n1 -- n2 n3", Mode: partition.ModeReject}, For: 500 * time.Millisecond},
	}}
	r := env.Schedule(spec)
	if err := r.Wait(); err != nil {
		t.Fatal(err)
	}
	start, steps, end := scheduleEvents(t, env)
	checkOnTime(t, r.Plan(), start, steps)
	// What each step put in force, as partition recorded it.
	for i, want := range []struct{ blocked, impairments string }{{"4", "0"}, {"0", "1"}, {"0", "0"}, {"2", "0"}, {"0", "0"}} {
		if got := steps[i].Fields; got["blocked"] != want.blocked || got["impairments"] != want.impairments {
			t.Errorf("step %d (%s): %s blocked pairs and %s impairments, want %s and %s", i+1, steps[i].What, got["blocked"], got["impairments"], want.blocked, want.impairments)
		}
	}
	if end.Fields[schedule.FieldStopped] != "" || end.Time.Sub(start.Time) < r.Plan().End {
		t.Errorf("end event %+v at %s, want a complete schedule ending after %s", end, end.Time.Sub(start.Time), r.Plan().End)
	}
	if st := env.Status(); len(st.Blocked) != 0 || len(st.Impairments) != 0 {
		t.Errorf("after the schedule: %d blocked pairs, %d impairments; want healed", len(st.Blocked), len(st.Impairments))
	}
}

// TestNemesisKeepsHealedWindow runs a short nemesis and checks from the event log that its
// faults came in order and on time, and that nothing was applied in the healed window at the
// end.
func TestNemesisKeepsHealedWindow(t *testing.T) {
	env := newEnv(t)
	spec := schedule.Spec{Seed: 7, Nemesis: &schedule.Nemesis{
		Faults:   []schedule.Fault{{Partition: "random-halves"}, {Partition: "isolate n2"}, {Impair: "loss=20% n3"}},
		Fault:    400 * time.Millisecond,
		Recovery: 200 * time.Millisecond,
		Duration: 2500 * time.Millisecond,
		Healed:   time.Second,
	}}
	r := env.Schedule(spec)
	if err := r.Wait(); err != nil {
		t.Fatal(err)
	}
	start, steps, end := scheduleEvents(t, env)
	plan := r.Plan()
	checkOnTime(t, plan, start, steps)
	faults := 0
	for _, p := range plan.Steps {
		if !p.Fault.Healed() {
			faults++
		}
	}
	if faults < 2 {
		t.Fatalf("the plan has %d faults, want at least 2: %+v", faults, plan.Steps)
	}
	last := steps[len(steps)-1]
	window := end.Time.Sub(last.Time)
	if last.What != "heal" || window < spec.Nemesis.Healed {
		t.Errorf("last step %q, followed by %s until the end; want a heal and at least %s healed", last.What, window, spec.Nemesis.Healed)
	}
	if healedFrom := last.Time.Sub(start.Time); healedFrom > spec.Nemesis.Duration-spec.Nemesis.Healed+tolerance {
		t.Errorf("healed only from %s, the window starts at %s", healedFrom, spec.Nemesis.Duration-spec.Nemesis.Healed)
	}
}

// TestStopHeals stops a flapping schedule while its fault is on: the bridge is healed and the
// end event says the schedule was stopped.
func TestStopHeals(t *testing.T) {
	env := newEnv(t)
	r := env.Schedule(schedule.Spec{Flap: &schedule.Flap{Fault: schedule.Fault{Partition: "isolate n1"}, On: time.Hour, Off: time.Second, Count: 3}})
	waitForStep(t, env, "isolate n1")
	env.MustNotReach("n1", "n2")
	if err := r.Stop(); err != nil {
		t.Fatal(err)
	}
	_, steps, end := scheduleEvents(t, env)
	if end.Fields[schedule.FieldStopped] != "true" || len(steps) != 2 || !strings.HasPrefix(steps[1].What, "heal") {
		t.Errorf("steps %+v, end %+v; want isolate, then the heal of the stop, and an end marked stopped", steps, end)
	}
	env.MustReach("n1", "n2")
}

// TestDNSStep runs a step that puts a DNS fault in force with a partition: the bridge's name
// server has the fault while the step lasts, and none once the schedule is stopped.
func TestDNSStep(t *testing.T) {
	env := newEnv(t)
	bridge := env.Bridge().Name
	r := env.Schedule(schedule.Spec{Flap: &schedule.Flap{
		Fault: schedule.Fault{Partition: "isolate n1", DNS: "nxdomain --name db --from n2"}, On: time.Hour, Off: time.Second, Count: 2}})
	var faults []names.Fault
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		var err error
		if faults, err = names.Faults(env.Sandbox().Env, bridge); err != nil {
			t.Fatal(err)
		}
		if len(faults) > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the step's DNS fault never came into force")
		}
	}
	if f := faults[0]; len(faults) != 1 || f.Kind != names.NXDomain || !slices.Equal(f.Names, []string{"db"}) || !slices.Equal(f.From, []string{"n2"}) {
		t.Errorf("DNS faults %+v, want nxdomain for db asked by n2", faults)
	}
	if err := r.Stop(); err != nil {
		t.Fatal(err)
	}
	if faults, err := names.Faults(env.Sandbox().Env, bridge); err != nil || len(faults) != 0 {
		t.Errorf("after the stop: DNS faults %+v (%v), want none", faults, err)
	}
	_, steps, _ := scheduleEvents(t, env)
	if len(steps) == 0 || steps[0].What != "isolate n1 + dns nxdomain --name db --from n2" {
		t.Errorf("step events %+v, want the first to name the partition and the DNS fault", steps)
	}
}

// TestCountersGrowOnlyWhileFaultIsOn sends n1's datagrams to n2 while a schedule's block is
// on and after the schedule healed: the kernel counts exactly those sent during the block as
// dropped, and nothing once healed, when they arrive.
func TestCountersGrowOnlyWhileFaultIsOn(t *testing.T) {
	// IPv4 only: a guest's own IPv6 chatter (listener reports, solicitations) would be
	// counted too, rightly, but not by this test's arithmetic.
	env := newEnv(t, testenv.WithIPv4Only())
	n1, n2 := env.Lookup("n1"), env.Lookup("n2")
	send := func(n int) {
		t.Helper()
		// Raw frames to n2's MAC: no ARP of n1's own goes into the count.
		fr := probe.Frame(netsetup.GuestMAC(n2.IP()), netsetup.GuestMAC(n1.IP()), probe.EtherIPv4, probe.IPv4UDP(n1.IP(), n2.IP(), 9999, "schedule"))
		for range n {
			if err := probe.SendFrames(n1.Netns(), fr); err != nil {
				t.Fatal(err)
			}
		}
	}
	r := env.Schedule(schedule.Spec{Steps: []schedule.Step{{Fault: schedule.Fault{Partition: "block n1 -- n2"}, For: time.Hour}}})
	waitForStep(t, env, "block n1 -- n2")
	if c := env.Stats(); !c.TotalBlocked().Zero() {
		t.Fatalf("counted %+v before anything was sent", c.Blocked)
	}
	send(3)
	c := env.Stats()
	if got := c.Pair("n1", "n2").Dropped.Packets; got != 3 || c.TotalBlocked().Packets != 3 {
		t.Errorf("during the block: n1->n2 dropped %d, all pairs %d; want 3 and 3", got, c.TotalBlocked().Packets)
	}
	if err := r.Stop(); err != nil {
		t.Fatal(err)
	}
	send(3)
	if err := env.Delivers("n1", "n2"); err != nil {
		t.Fatalf("after the schedule: %v", err)
	}
	if c := env.Stats(); len(c.Blocked) != 0 || !c.TotalBlocked().Zero() {
		t.Errorf("after the schedule healed: counted %+v; want nothing", c.Blocked)
	}
}

// waitForStep waits until the event log's last event is the given step.
func waitForStep(t *testing.T, env *testenv.Env, what string) {
	t.Helper()
	dir := env.Target().StateDir
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		events, _ := eventlog.Read(dir)
		if len(events) > 0 && events[len(events)-1].What == what {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("step %q is not in the log: %+v", what, events)
		}
	}
}

// TestStepFailsAfterGuestLeft removes a guest that a later step names: that step fails, the
// schedule ends there with the bridge healed, and both Wait and the log's end event say which
// step failed and why.
func TestStepFailsAfterGuestLeft(t *testing.T) {
	env := newEnv(t)
	r := env.Schedule(schedule.Spec{Steps: []schedule.Step{
		{Fault: schedule.Fault{Partition: "isolate n1"}, For: time.Hour},
	}})
	waitForStep(t, env, "isolate n1")
	env.MustNotReach("n1", "n2")
	if err := netsetup.DelGuest(env.Sandbox().Env, env.Bridge().Name, "n3"); err != nil {
		t.Fatal(err)
	}
	// A second schedule on the same bridge names n3 in its first step.
	r.Stop()
	r = schedule.Start(t.Context(), env.Sandbox().Env, env.Bridge().Name, mustPlan(t, schedule.Spec{Steps: []schedule.Step{
		{Fault: schedule.Fault{Partition: "block n1 -- n2"}, For: 200 * time.Millisecond},
		{Fault: schedule.Fault{Partition: "isolate n3"}, For: time.Hour},
	}}))
	err := r.Wait()
	if err == nil || !strings.Contains(err.Error(), "step 2 (isolate n3") || !strings.Contains(err.Error(), `unknown guest "n3"`) {
		t.Fatalf("Wait: %v; want step 2 failing on the unknown guest n3", err)
	}
	if st := env.Status(); len(st.Blocked) != 0 || len(st.Impairments) != 0 {
		t.Errorf("after the failed step: %d blocked pairs, %d impairments; want healed", len(st.Blocked), len(st.Impairments))
	}
	env.MustReach("n1", "n2")
	_, steps, end := scheduleEvents(t, env)
	if end.Error == "" || !strings.Contains(end.Error, "isolate n3") || end.Fields[schedule.FieldStopped] != "true" {
		t.Errorf("end event %+v; want it to name the failed step", end)
	}
	if last := steps[len(steps)-1]; last.What != "heal (schedule failed)" || last.Error != "" {
		t.Errorf("last step event %+v; want the heal after the failure, saying so", last)
	}
}

func mustPlan(t *testing.T, s schedule.Spec) schedule.Plan {
	t.Helper()
	p, err := s.Plan()
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// TestMissingNetemRefusedUpFront runs steps whose second needs netem on a kernel without it:
// the schedule fails before its first step, so the bridge is never touched, rather than
// running its first faults and stopping at the delay.
func TestMissingNetemRefusedUpFront(t *testing.T) {
	if err := partition.CheckNetem(); err == nil {
		t.Skip("the kernel has netem; the refusal cannot be seen here")
	}
	env := newEnv(t)
	r := schedule.Start(t.Context(), env.Sandbox().Env, env.Bridge().Name, mustPlan(t, schedule.Spec{Steps: []schedule.Step{
		{Fault: schedule.Fault{Partition: "isolate n1"}, For: time.Hour},
		{Fault: schedule.Fault{Impair: "delay=50ms n2"}, For: time.Hour},
	}}))
	select {
	case <-r.Done():
	case <-time.After(10 * time.Second):
		r.Stop()
		t.Fatal("the schedule ran on towards a step the kernel cannot do")
	}
	err := r.Wait()
	if !errors.Is(err, partition.ErrNetemUnavailable) || !strings.Contains(err.Error(), "step 2 (delay=50ms n2") {
		t.Fatalf("Wait: %v; want step 2 refused for want of netem", err)
	}
	events, err := eventlog.Read(env.Target().StateDir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range events {
		if e.Kind != schedule.EventKind {
			t.Errorf("the bridge was changed: %+v", e)
		}
	}
}
