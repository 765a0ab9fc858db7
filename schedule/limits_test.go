package schedule

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestSpecWithinLimits refuses schedules that cannot be kept or would not fit in memory or in
// a time.Duration: steps shorter than a fault can be switched, millions of steps, and lengths
// that overflow into a plan ending before it starts. Each is refused at its field, before
// anything is planned.
func TestSpecWithinLimits(t *testing.T) {
	isolate := Fault{Partition: "isolate n1"}
	for _, tc := range []struct {
		spec  Spec
		field string
		msg   string
	}{
		{Spec{Steps: []Step{{isolate, time.Second}, {Fault{}, time.Millisecond}}}, "steps[2].for", "shorter than"},
		{Spec{Flap: &Flap{Fault: isolate, On: time.Nanosecond, Off: time.Second, Count: 3}}, "flap.on", "shorter than"},
		{Spec{Flap: &Flap{Fault: isolate, On: time.Second, Off: time.Microsecond, Count: 3}}, "flap.off", "shorter than"},
		{Spec{Nemesis: &Nemesis{Faults: []Fault{isolate}, Fault: time.Millisecond, Duration: time.Minute}}, "nemesis.fault", "shorter than"},
		{Spec{Nemesis: &Nemesis{Faults: []Fault{isolate}, Fault: time.Second, Recovery: time.Millisecond, Duration: time.Minute}}, "nemesis.recovery", "shorter than"},
		{Spec{Flap: &Flap{Fault: isolate, On: 100 * time.Millisecond, Off: 100 * time.Millisecond, Count: 10_000_000}}, "flap.count", "steps"},
		{Spec{Nemesis: &Nemesis{Faults: []Fault{isolate}, Fault: 10 * time.Millisecond, Duration: 1000 * time.Hour}}, "nemesis.duration", "steps"},
		{Spec{Steps: []Step{{isolate, 200 * 24 * time.Hour}, {Fault{}, 200 * 24 * time.Hour}}}, "steps[2].for", "longer than"},
		{Spec{Steps: []Step{{isolate, 1 << 62}}}, "steps[1].for", "longer than"},
		{Spec{Flap: &Flap{Fault: isolate, On: 1000 * time.Hour, Off: 1000 * time.Hour, Count: 10}}, "flap.count", "longer than"},
		{Spec{Start: time.Hour, Nemesis: &Nemesis{Faults: []Fault{isolate}, Fault: time.Second, Duration: 1<<63 - 1}}, "nemesis.duration", "longer than"},
	} {
		p, err := tc.spec.Plan()
		var fe *FieldError
		if !errors.As(err, &fe) || fe.Field() != tc.field || !strings.Contains(fe.Msg, tc.msg) {
			n := len(p.Steps)
			t.Errorf("%+v: error %v (a plan of %d steps ending at %s); want field %q saying %q", tc.spec, err, n, p.End, tc.field, tc.msg)
		}
	}
	// The smallest steps are accepted, and a recovery of 0 means faults back to back.
	for _, s := range []Spec{
		{Flap: &Flap{Fault: isolate, On: MinStep, Off: MinStep, Count: 100}},
		{Nemesis: &Nemesis{Faults: []Fault{isolate}, Fault: MinStep, Duration: time.Second}},
		{Steps: []Step{{isolate, MinStep}, {Fault{}, 300 * 24 * time.Hour}}},
	} {
		if _, err := s.Plan(); err != nil {
			t.Errorf("%+v: %v", s, err)
		}
	}
}

// TestSeedPinsThePlan pins what seed 7 draws: the promise is the same sequence in every
// process, on every machine and Go release, so a failing run can be replayed from its seed.
func TestSeedPinsThePlan(t *testing.T) {
	p, err := nemesis(7).Plan()
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"1s loss=30% n2", "4s heal", "6s loss=30% n2", "9s heal", "11s ring 2005602287", "14s heal", "16s isolate n1 --mode reject", "19s heal"}
	var got []string
	for _, s := range p.Steps[:len(want)] {
		got = append(got, s.At.String()+" "+s.Fault.String())
	}
	if !slices.Equal(got, want) {
		t.Errorf("seed 7 plans %q, want %q", got, want)
	}
}
