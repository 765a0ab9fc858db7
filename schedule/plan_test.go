package schedule

import (
	"errors"
	"fmt"
	"net/netip"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pontoon-dev/pontoon/partition"
)

func guests(names ...string) []partition.Guest {
	var out []partition.Guest
	for i, n := range names {
		out = append(out, partition.Guest{Name: n, IP: netip.AddrFrom4([4]byte{172, 18, 0, byte(i + 1)}), Port: fmt.Sprintf("g%d", i+1)})
	}
	return out
}

func nemesis(seed int64) Spec {
	return Spec{Seed: seed, Start: time.Second, Nemesis: &Nemesis{
		Faults:   []Fault{{Partition: "random-halves"}, {Partition: "isolate n1", Mode: partition.ModeReject}, {Impair: "loss=30% n2"}, {Partition: "ring"}},
		Fault:    3 * time.Second,
		Recovery: 2 * time.Second,
		Duration: time.Minute,
		Healed:   10 * time.Second,
	}}
}

func faults(p Plan) []string {
	var out []string
	for _, s := range p.Steps {
		out = append(out, s.Fault.String())
	}
	return out
}

func TestSameSeedSamePlan(t *testing.T) {
	a, err := nemesis(7).Plan()
	if err != nil {
		t.Fatal(err)
	}
	b, _ := nemesis(7).Plan()
	if !reflect.DeepEqual(a, b) {
		t.Fatalf("seed 7 gave two plans:\n%q\n%q", faults(a), faults(b))
	}
	c, _ := nemesis(8).Plan()
	if reflect.DeepEqual(faults(a), faults(c)) {
		t.Errorf("seeds 7 and 8 gave the same faults %q", faults(a))
	}
	// Random kinds written without a seed got one from the schedule's, so the plan alone
	// says exactly which halves were cut.
	for _, s := range a.Steps {
		w := strings.Fields(s.Fault.Partition)
		if len(w) == 1 && slices.Contains(randomKinds, w[0]) {
			t.Errorf("%s: %q has no seed of its own", s.Label, s.Fault.Partition)
		}
	}
	// A drawn seed is recorded, and planning with it again gives the same plan.
	d, _ := nemesis(0).Plan()
	if d.Seed == 0 {
		t.Fatal("no seed recorded for a plan whose seed was drawn")
	}
	e, _ := nemesis(d.Seed).Plan()
	if !reflect.DeepEqual(faults(d), faults(e)) {
		t.Errorf("replaying drawn seed %d: %q, then %q", d.Seed, faults(d), faults(e))
	}
}

// TestNemesisTimeline checks the nemesis's shape: faults of the given length alternate with
// recoveries, the first at start, and the healed window at the end is never entered.
func TestNemesisTimeline(t *testing.T) {
	spec := nemesis(7)
	n := spec.Nemesis
	p, err := spec.Plan()
	if err != nil {
		t.Fatal(err)
	}
	if p.End != n.Duration {
		t.Errorf("end %s, want the nemesis's duration %s", p.End, n.Duration)
	}
	if p.Steps[0].At != spec.Start || p.Steps[0].Fault.Healed() {
		t.Errorf("first step %+v, want a fault at start %s", p.Steps[0], spec.Start)
	}
	last := p.Steps[len(p.Steps)-1]
	if !last.Fault.Healed() || last.At > n.Duration-n.Healed {
		t.Errorf("last step %+v, want a heal no later than %s", last, n.Duration-n.Healed)
	}
	rounds := 0
	for i, s := range p.Steps[:len(p.Steps)-1] {
		next := p.Steps[i+1].At
		if s.Fault.Healed() {
			if next-s.At != n.Recovery {
				t.Errorf("%s lasts %s, want the recovery %s", s.Label, next-s.At, n.Recovery)
			}
			continue
		}
		rounds++
		if next-s.At != n.Fault {
			t.Errorf("%s lasts %s, want %s", s.Label, next-s.At, n.Fault)
		}
		if !p.Steps[i+1].Fault.Healed() {
			t.Errorf("%s is followed by another fault", s.Label)
		}
	}
	// 1s start, 5s per round, the last fault ending by 50s: 10 rounds (the last ends at 49s).
	if rounds != 10 {
		t.Errorf("%d rounds, want 10: %q", rounds, faults(p))
	}
	// Without recovery the faults follow each other directly; only the end heals.
	n.Recovery = 0
	p, _ = spec.Plan()
	for i, s := range p.Steps {
		if s.Fault.Healed() != (i == len(p.Steps)-1) || s.At != spec.Start+time.Duration(i)*n.Fault {
			t.Errorf("without recovery, step %d is %s at %s", i, s.Fault, s.At)
		}
	}
}

func TestStepsAndFlapTimeline(t *testing.T) {
	p, err := Spec{Steps: []Step{
		{Fault{Partition: "isolate n1"}, time.Second},
		{Fault{Impair: "loss=10% n2"}, 2 * time.Second},
		{Fault{}, time.Second},
		{Fault{Partition: "block n1 -- n2", Impair: "delay=20ms n3", DNS: "nxdomain --name db --from n1"}, 500 * time.Millisecond},
	}}.Plan()
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"0s isolate n1", "1s loss=10% n2", "3s heal", "4s block n1 -- n2 + delay=20ms n3 + dns nxdomain --name db --from n1", "4.5s heal"}
	var got []string
	for _, s := range p.Steps {
		got = append(got, s.At.String()+" "+s.Fault.String())
	}
	if !reflect.DeepEqual(got, want) || p.End != 4500*time.Millisecond {
		t.Errorf("steps plan %q ending at %s, want %q ending at 4.5s", got, p.End, want)
	}

	p, err = Spec{Start: time.Second, Flap: &Flap{Fault: Fault{Partition: "isolate n1"}, On: 2 * time.Second, Off: time.Second, Count: 3}}.Plan()
	if err != nil {
		t.Fatal(err)
	}
	want = []string{"1s isolate n1", "3s heal", "4s isolate n1", "6s heal", "7s isolate n1", "9s heal"}
	got = nil
	for _, s := range p.Steps {
		got = append(got, s.At.String()+" "+s.Fault.String())
	}
	if !reflect.DeepEqual(got, want) || p.End != 9*time.Second {
		t.Errorf("flap plan %q ending at %s, want %q ending at 9s", got, p.End, want)
	}
}

// TestBadSpecNamesTheField checks that every mistake is reported at its field, with a fix.
func TestBadSpecNamesTheField(t *testing.T) {
	gs := guests("n1", "n2", "n3")
	step := func(f Fault, d time.Duration) Spec {
		return Spec{Steps: []Step{{Fault{Partition: "isolate n1"}, time.Second}, {f, d}}}
	}
	for _, tc := range []struct {
		spec  Spec
		field string
		msg   string
	}{
		{Spec{}, "", "exactly one of steps, nemesis and flap"},
		{Spec{Steps: []Step{{For: time.Second}}, Flap: &Flap{}}, "", "exactly one"},
		{step(Fault{Partition: "isolate n1"}, 0), "steps[2].for", `write e.g. for = "5s"`},
		{step(Fault{Partition: "islate n1"}, time.Second), "steps[2].partition", `"islate" is not a partition kind`},
		{step(Fault{Partition: "isolate n9"}, time.Second), "steps[2].partition", `unknown guest "n9"`},
		{step(Fault{Partition: "random-halves x"}, time.Second), "steps[2].partition", `seed "x" is not an integer`},
		{step(Fault{Impair: "n2 loss=10%"}, time.Second), "steps[2].impair", `"n2" is not a setting`},
		{step(Fault{Impair: "loss=200% n2"}, time.Second), "steps[2].impair", "loss"},
		{step(Fault{Impair: "loss=10% n7"}, time.Second), "steps[2].impair", `unknown guest "n7"`},
		{step(Fault{Partition: "isolate n1", Mode: "sometimes"}, time.Second), "steps[2].mode", "use drop"},
		{step(Fault{Mode: partition.ModeReject}, time.Second), "steps[2].mode", "needs a partition"},
		{step(Fault{DNS: "slow --name db"}, time.Second), "steps[2].dns", "unknown DNS fault"},
		{step(Fault{DNS: "nxdomain --name"}, time.Second), "steps[2].dns", "--name needs a value"},
		{step(Fault{DNS: "nxdomain --as n1"}, time.Second), "steps[2].dns", "unknown flag --as"},
		{step(Fault{DNS: "servfail --from n9"}, time.Second), "steps[2].dns", `--from "n9": no such guest`},
		{Spec{Start: -time.Second, Steps: []Step{{For: time.Second}}}, "start", "negative"},
		{Spec{Nemesis: &Nemesis{Fault: time.Second, Duration: time.Minute}}, "nemesis.faults", "is empty"},
		{Spec{Nemesis: &Nemesis{Faults: []Fault{{Partition: "isolate n1"}, {}}, Fault: time.Second, Duration: time.Minute}}, "nemesis.faults[2]", "names no fault"},
		{Spec{Nemesis: &Nemesis{Faults: []Fault{{Partition: "isolate n1"}}, Duration: time.Minute}}, "nemesis.fault", "not a positive duration"},
		{Spec{Nemesis: &Nemesis{Faults: []Fault{{Partition: "isolate n1"}}, Fault: time.Second, Duration: time.Minute, Recovery: -1}}, "nemesis.recovery", "negative"},
		{Spec{Nemesis: &Nemesis{Faults: []Fault{{Partition: "isolate n1"}}, Fault: 5 * time.Second, Duration: 10 * time.Second, Healed: 8 * time.Second}}, "nemesis.duration", "make it at least 13s"},
		{Spec{Nemesis: &Nemesis{Faults: []Fault{{Partition: "isolate n9"}}, Fault: time.Second, Duration: time.Minute}}, "nemesis.faults[1].partition", `unknown guest "n9"`},
		{Spec{Flap: &Flap{On: time.Second, Off: time.Second, Count: 2}}, "flap", "names no fault"},
		{Spec{Flap: &Flap{Fault: Fault{Partition: "isolate n1"}, On: time.Second, Count: 2}}, "flap.off", "not a positive duration"},
		{Spec{Flap: &Flap{Fault: Fault{Partition: "isolate n1"}, On: time.Second, Off: time.Second}}, "flap.count", "count = 5"},
	} {
		err := tc.spec.Check(gs)
		var fe *FieldError
		if !errors.As(err, &fe) || fe.Field() != tc.field || !strings.Contains(fe.Msg, tc.msg) {
			t.Errorf("%+v: error %v; want field %q saying %q", tc.spec, err, tc.field, tc.msg)
		}
	}
	if err := nemesis(7).Check(gs); err != nil {
		t.Errorf("a good nemesis is refused: %v", err)
	}
}

// A spec with several mistakes reports each of them at once, not one per attempt; a check that
// depends on a value already refused is left out rather than repeated.
func TestBadSpecNamesEveryField(t *testing.T) {
	gs := guests("n1", "n2", "n3")
	for _, tc := range []struct {
		spec   Spec
		fields []string
	}{
		{Spec{Start: -time.Second, Steps: []Step{
			{Fault{Partition: "isolate n9"}, time.Second},
			{Fault{Impair: "loss=200% n2"}, 0},
			{Fault{Partition: "islate n1"}, time.Second},
		}}, []string{"start", "steps[2].for", "steps[3].partition", "steps[1].partition", "steps[2].impair"}},
		{Spec{Nemesis: &Nemesis{Faults: []Fault{{}, {Impair: "loss=5% n7"}}, Recovery: -1, Healed: -1}},
			[]string{"nemesis.faults[1]", "nemesis.fault", "nemesis.duration", "nemesis.recovery", "nemesis.healed", "nemesis.faults[2].impair"}},
		{Spec{Flap: &Flap{Fault: Fault{Partition: "isolate n1", Mode: "sometimes"}, Off: -time.Second}},
			[]string{"flap.mode", "flap.on", "flap.off", "flap.count"}},
	} {
		var got []string
		for _, fe := range FieldErrors(tc.spec.Check(gs)) {
			got = append(got, fe.Field())
		}
		if !slices.Equal(got, tc.fields) {
			t.Errorf("%+v: errors at %q; want %q", tc.spec, got, tc.fields)
		}
	}
}

func TestPlanForChecksTheGuests(t *testing.T) {
	gs := guests("n1", "n2", "n3")
	bad := Spec{Steps: []Step{{Fault: Fault{Partition: "isolate n9"}, For: time.Second}}}
	var fe *FieldError
	if _, err := bad.PlanFor(gs); !errors.As(err, &fe) || fe.Field() != "steps[1].partition" {
		t.Errorf("a spec naming a missing guest: error %v; want a FieldError on steps[1].partition", err)
	}
	p, err := nemesis(7).PlanFor(gs)
	if err != nil {
		t.Fatalf("a good nemesis is refused: %v", err)
	}
	want, _ := nemesis(7).Plan()
	if p.Seed != 7 || len(p.Steps) != len(want.Steps) || p.End != want.End {
		t.Errorf("plan %+v; want the one Plan lays out, %+v", p, want)
	}
}
