// Package schedule runs a sequence of faults on a bridge: a list of steps, a random nemesis
// drawn from a set of faults with a seed, or a fault flapping on and off at a period.
//
// A Spec is what a user writes (in pontoon.toml or in a test); Spec.Plan turns it into a Plan,
// a timeline of faults with every random choice made, so the same seed always gives the same
// plan. Start executes a plan on a bridge through partition.Update, one step at a time, and
// records every step in the bridge's event log (package eventlog, source "schedule"). Each
// step's fault replaces the previous step's: a schedule owns the bridge's partition and
// impairments while it runs, and leaves the bridge healed when it ends or is stopped.
package schedule

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/pontoon-dev/pontoon/partition"
)

// Fault is what is in force during one step. The zero Fault is healed: nothing blocked,
// nothing impaired.
type Fault struct {
	// Partition is a partition in the words of the `pontoon partition` verbs: "isolate n1",
	// "disjoint n1 n2 -- n3", "block n1 -- n2", "random-halves", "ring 7". A random kind
	// written without a seed gets one from the schedule's seed.
	Partition string `json:"partition,omitempty"`
	// Impair is an impairment in the words of `pontoon partition impair`: settings, then
	// guests or SRC.. -- DST..: "loss=30% n2", "rate=1mbit delay=50ms n1 -- n2".
	Impair string `json:"impair,omitempty"`
	// Mode is how the partition treats blocked packets: drop (the default) or reject.
	Mode partition.Mode `json:"mode,omitempty"`
	// DNS is a fault of the bridge's name server in the words of `pontoon partition dns`:
	// "nxdomain --name db", "delay 2s --from n2", "wrong 10.9.9.9 --name db --from n1".
	DNS string `json:"dns,omitempty"`
}

// Healed reports the fault that blocks, impairs and falsifies nothing.
func (f Fault) Healed() bool {
	return strings.TrimSpace(f.Partition) == "" && strings.TrimSpace(f.Impair) == "" && strings.TrimSpace(f.DNS) == ""
}

// String says the fault in the CLI's words: "isolate n1 --mode reject + loss=30% n2", "heal".
func (f Fault) String() string {
	if f.Healed() {
		return "heal"
	}
	var parts []string
	if p := strings.Join(strings.Fields(f.Partition), " "); p != "" {
		if f.Mode == partition.ModeReject {
			p += " --mode reject"
		}
		parts = append(parts, p)
	}
	if im := strings.Join(strings.Fields(f.Impair), " "); im != "" {
		parts = append(parts, im)
	}
	if d := strings.Join(strings.Fields(f.DNS), " "); d != "" {
		parts = append(parts, "dns "+d)
	}
	return strings.Join(parts, " + ")
}

// kinds are the partition kinds a fault may name, with the CLI's "ring" for majorities-ring.
var kinds = []string{"isolate", "disjoint", "split", "block", "random-halves", "random-node", "bridge", "ring", "majorities-ring", "fullmesh"}

var randomKinds = []string{"random-halves", "random-node", "bridge", "ring", "majorities-ring"}

// check validates what can be known without the guests: the partition kind, the seed of a
// random kind, the impairment settings and the mode.
func (f Fault) check(path ...string) error {
	if w := strings.Fields(f.Partition); len(w) > 0 {
		if !slices.Contains(kinds, w[0]) {
			return fieldErr(append(path, "partition"), "%q is not a partition kind; use one of %s", w[0], strings.Join(kinds, ", "))
		}
		if slices.Contains(randomKinds, w[0]) && len(w) > 1 {
			if len(w) > 2 {
				return fieldErr(append(path, "partition"), "%s takes at most a seed, got %q", w[0], strings.Join(w[1:], " "))
			}
			if _, err := strconv.ParseInt(w[1], 10, 64); err != nil {
				return fieldErr(append(path, "partition"), "%s: seed %q is not an integer", w[0], w[1])
			}
		}
	} else if f.Mode != "" && f.Mode != partition.ModeDrop {
		return fieldErr(append(path, "mode"), "mode %q needs a partition; add partition = \"isolate GUEST\" or remove mode", f.Mode)
	}
	if w := strings.Fields(f.Impair); len(w) > 0 && !strings.Contains(w[0], "=") {
		return fieldErr(append(path, "impair"), "%q is not a setting; start with settings such as loss=10%%, rate=1mbit or delay=50ms, then the guests", w[0])
	}
	if _, err := partition.ParseMode(string(f.Mode)); err != nil {
		return fieldErr(append(path, "mode"), "%v", err)
	}
	if strings.TrimSpace(f.DNS) != "" {
		if _, err := parseDNS(f.DNS); err != nil {
			return fieldErr(append(path, "dns"), "%v", err)
		}
	}
	return nil
}

// State returns the partition state the fault stands for on the given guests (its DNS part
// is checked, not included). It is an error when a guest is unknown or a setting is invalid.
func (f Fault) State(guests []partition.Guest) (partition.State, error) {
	s, key, err := f.state(guests)
	if err != nil {
		return s, fmt.Errorf("%s %q: %w", key, f.field(key), err)
	}
	return s, nil
}

func (f Fault) field(key string) string {
	if key == "impair" {
		return f.Impair
	}
	if key == "mode" {
		return string(f.Mode)
	}
	if key == "dns" {
		return f.DNS
	}
	return f.Partition
}

// state is State, saying which field is wrong.
func (f Fault) state(guests []partition.Guest) (partition.State, string, error) {
	mode, err := partition.ParseMode(string(f.Mode))
	if err != nil {
		return partition.State{}, "mode", err
	}
	s := partition.State{Partition: partition.Fullmesh(), Mode: mode}
	if w := strings.Fields(f.Partition); len(w) > 0 {
		if w[0] == "ring" {
			w[0] = "majorities-ring"
		}
		if s.Partition, err = partition.ParseSpec(w, guests); err != nil {
			return partition.State{}, "partition", err
		}
	}
	if w := strings.Fields(f.Impair); len(w) > 0 {
		if s, _, err = s.Impair(w, guests); err != nil {
			return partition.State{}, "impair", err
		}
	}
	if strings.TrimSpace(f.DNS) != "" {
		if err := checkDNS(f.DNS, guests); err != nil {
			return partition.State{}, "dns", err
		}
	}
	return s, "", nil
}

// seeded returns f with a seed drawn from rng after a random kind written without one.
func (f Fault) seeded(rng *rand.Rand) Fault {
	w := strings.Fields(f.Partition)
	if len(w) == 1 && slices.Contains(randomKinds, w[0]) {
		f.Partition = w[0] + " " + strconv.FormatInt(rng.Int64N(1<<31), 10)
	}
	return f
}

// Step is one fault held for a while.
type Step struct {
	Fault
	For time.Duration `json:"for"`
}

// Nemesis draws faults at random from Faults: each is held for Fault, then the bridge is
// healed for Recovery, round after round, until a round would reach into the healed window
// at the end. The schedule lasts Duration, and its last Healed of it are guaranteed healed.
type Nemesis struct {
	Faults   []Fault
	Fault    time.Duration
	Recovery time.Duration
	Duration time.Duration
	Healed   time.Duration
}

// Flap switches one fault on for On and off (healed) for Off, Count times.
type Flap struct {
	Fault
	On, Off time.Duration
	Count   int
}

// Spec is a schedule as written: exactly one of Steps, Nemesis and Flap.
type Spec struct {
	// Start is how long to wait before the first step (for the run's programs to settle).
	Start time.Duration
	// Seed drives the nemesis and the random partitions written without a seed; 0 draws one,
	// which Plan records, so a run can be repeated exactly.
	Seed    int64
	Steps   []Step
	Nemesis *Nemesis
	Flap    *Flap
}

// HasDNS reports whether any fault of the schedule is a DNS fault.
func (s Spec) HasDNS() bool {
	dns := func(f Fault) bool { return strings.TrimSpace(f.DNS) != "" }
	for _, st := range s.Steps {
		if dns(st.Fault) {
			return true
		}
	}
	if s.Nemesis != nil && slices.ContainsFunc(s.Nemesis.Faults, dns) {
		return true
	}
	return s.Flap != nil && dns(s.Flap.Fault)
}

// FieldError is a mistake in a Spec, at the field Path names (TOML key parts, with array
// elements as "#N" counted from 1).
type FieldError struct {
	Path []string
	Msg  string
}

func fieldErr(path []string, format string, a ...any) *FieldError {
	return &FieldError{Path: slices.Clone(path), Msg: fmt.Sprintf(format, a...)}
}

// Field renders the path as a key: "steps[2].for", "nemesis.faults[1].partition".
func (e *FieldError) Field() string {
	var b strings.Builder
	for _, p := range e.Path {
		if n, ok := strings.CutPrefix(p, "#"); ok {
			b.WriteString("[" + n + "]")
			continue
		}
		if b.Len() > 0 {
			b.WriteByte('.')
		}
		b.WriteString(p)
	}
	return b.String()
}

func (e *FieldError) Error() string { return "schedule: " + e.Field() + ": " + e.Msg }

func elem(key string, i int) []string { return []string{key, "#" + strconv.Itoa(i+1)} }

// Limits of a schedule, so that what is planned can be kept.
const (
	// MinStep is the shortest a step may last: putting a fault in force takes milliseconds,
	// so a shorter step would be over before it bit, and the plan would only be late.
	MinStep = 10 * time.Millisecond
	// MaxSteps bounds a plan's steps: each is held in memory, and each is a commit.
	MaxSteps = 1_000_000
	// MaxLength bounds how long a schedule lasts, which keeps every time of a plan far
	// from what a time.Duration holds.
	MaxLength = 366 * 24 * time.Hour
)

func positive(path []string, d time.Duration, example string) error {
	if d <= 0 {
		return fieldErr(path, "%s is not a positive duration; write e.g. %s", d, example)
	}
	return stepLength(path, d, example)
}

// stepLength checks a duration a fault or a heal is held for.
func stepLength(path []string, d time.Duration, example string) error {
	if d < MinStep {
		return fieldErr(path, "%s is shorter than a fault can be switched (%s); write e.g. %s", d, MinStep, example)
	}
	if d > MaxLength {
		return fieldErr(path, "%s is longer than a schedule may last (%s)", d, MaxLength)
	}
	return nil
}

func tooLong(path []string) error {
	return fieldErr(path, "the schedule would last longer than %s; make it shorter", MaxLength)
}

func tooManySteps(path []string, n int64) error {
	return fieldErr(path, "makes %d steps, more than %d; make them fewer", n, MaxSteps)
}

// Validate checks the spec on its own, without the guests (Check adds them). It reports
// every mistake it finds, each a *FieldError (FieldErrors lists them), not only the first:
// a check that depends on a value already found wrong is skipped rather than repeated.
func (s Spec) Validate() error {
	var v validation
	v.validate(s)
	return v.err()
}

// FieldErrors lists the field errors in err, as Validate and Check join them.
func FieldErrors(err error) []*FieldError {
	var out []*FieldError
	var walk func(error)
	walk = func(e error) {
		if fe, ok := e.(*FieldError); ok {
			out = append(out, fe)
			return
		}
		if j, ok := e.(interface{ Unwrap() []error }); ok {
			for _, x := range j.Unwrap() {
				walk(x)
			}
		}
	}
	walk(err)
	return out
}

// validation gathers the errors of one Validate or Check.
type validation struct {
	errs []error
}

// ok records err and reports whether there was none.
func (v *validation) ok(err error) bool {
	if err != nil {
		v.errs = append(v.errs, err)
	}
	return err == nil
}

func (v *validation) err() error { return errors.Join(v.errs...) }

// faultFailed reports whether an error was recorded for the fault at path: at path itself or
// at one of its fault keys (not at a step's for).
func (v *validation) faultFailed(path []string) bool {
	for _, e := range v.errs {
		fe, ok := e.(*FieldError)
		if !ok || len(fe.Path) < len(path) || !slices.Equal(fe.Path[:len(path)], path) {
			continue
		}
		if len(fe.Path) == len(path) || slices.Contains([]string{"partition", "impair", "dns", "mode"}, fe.Path[len(path)]) {
			return true
		}
	}
	return false
}

// validate checks s; it reports false when s is not of exactly one form, and nothing else
// was checked.
func (v *validation) validate(s Spec) bool {
	forms := 0
	for _, set := range []bool{len(s.Steps) > 0, s.Nemesis != nil, s.Flap != nil} {
		if set {
			forms++
		}
	}
	if forms != 1 {
		return v.ok(fieldErr(nil, "give exactly one of steps, nemesis and flap (got %d)", forms))
	}
	start := true
	if s.Start < 0 {
		start = v.ok(fieldErr([]string{"start"}, "%s is negative; write e.g. start = \"2s\", or leave it out", s.Start))
	} else if s.Start > MaxLength {
		start = v.ok(tooLong([]string{"start"}))
	}
	if len(s.Steps) >= MaxSteps {
		v.ok(tooManySteps([]string{"steps"}, int64(len(s.Steps))+1))
	}
	total, long := s.Start, false
	for i, st := range s.Steps {
		p := elem("steps", i)
		if v.ok(positive(append(p, "for"), st.For, `for = "5s"`)) && start && !long {
			if st.For > MaxLength-total {
				long = !v.ok(tooLong(append(p, "for")))
			}
			total += st.For
		}
		v.ok(st.Fault.check(p...))
	}
	if s.Nemesis != nil {
		v.nemesis(s.Start, start, s.Nemesis)
	}
	if f := s.Flap; f != nil {
		if f.Fault.Healed() {
			v.ok(fieldErr([]string{"flap"}, "names no fault; give partition, impair or dns"))
		} else {
			v.ok(f.Fault.check("flap"))
		}
		on := v.ok(positive([]string{"flap", "on"}, f.On, `on = "1s"`))
		off := v.ok(positive([]string{"flap", "off"}, f.Off, `off = "1s"`))
		count := true
		if f.Count <= 0 {
			count = v.ok(fieldErr([]string{"flap", "count"}, "%d: give how many times the fault goes on, e.g. count = 5", f.Count))
		} else if f.Count >= MaxSteps/2 {
			count = v.ok(tooManySteps([]string{"flap", "count"}, 2*int64(f.Count)))
		}
		// start + count*on + (count-1)*off, kept from overflowing.
		if start && on && off && count && (f.On > MaxLength-s.Start || int64(f.Count-1) > int64((MaxLength-s.Start-f.On)/(f.On+f.Off))) {
			v.ok(tooLong([]string{"flap", "count"}))
		}
	}
	return true
}

func (v *validation) nemesis(start time.Duration, startOK bool, n *Nemesis) {
	if len(n.Faults) == 0 {
		v.ok(fieldErr([]string{"nemesis", "faults"}, `is empty; list the faults to draw from, e.g. faults = [{ partition = "random-halves" }, { impair = "loss=30%% n1" }]`))
	}
	for i, f := range n.Faults {
		p := append([]string{"nemesis"}, elem("faults", i)...)
		if f.Healed() {
			v.ok(fieldErr(p, "names no fault; give partition, impair or dns"))
		} else {
			v.ok(f.check(p...))
		}
	}
	fault := v.ok(positive([]string{"nemesis", "fault"}, n.Fault, `fault = "5s"`))
	duration := v.ok(positive([]string{"nemesis", "duration"}, n.Duration, `duration = "60s"`))
	recovery := true
	if n.Recovery < 0 {
		recovery = v.ok(fieldErr([]string{"nemesis", "recovery"}, "%s is negative; write e.g. recovery = \"3s\"", n.Recovery))
	} else if n.Recovery > 0 {
		recovery = v.ok(stepLength([]string{"nemesis", "recovery"}, n.Recovery, `recovery = "3s"`))
	}
	healed := true
	if n.Healed < 0 {
		healed = v.ok(fieldErr([]string{"nemesis", "healed"}, "%s is negative; write e.g. healed = \"10s\"", n.Healed))
	} else if n.Healed > MaxLength {
		healed = v.ok(fieldErr([]string{"nemesis", "healed"}, "%s is longer than a schedule may last (%s)", n.Healed, MaxLength))
	}
	if !fault || !duration || !recovery {
		return
	}
	// Rounds of a fault and a recovery, each two steps, fill the duration at most.
	round := n.Fault + n.Recovery
	if steps := 2*int64(n.Duration/round) + 3; steps > MaxSteps {
		v.ok(fieldErr([]string{"nemesis", "duration"}, "%s of faults of %s makes up to %d steps, more than %d; make the faults longer or the duration shorter",
			n.Duration, n.Fault, steps, MaxSteps))
		return
	}
	if startOK && healed && start+n.Fault > n.Duration-n.Healed {
		v.ok(fieldErr([]string{"nemesis", "duration"}, "%s leaves no room for one fault of %s after start %s and before the healed window of %s; make it at least %s",
			n.Duration, n.Fault, start, n.Healed, start+n.Fault+n.Healed))
	}
}

// Check validates the spec and every fault against the guests it will run on, reporting
// every mistake (see Validate). A fault already found wrong on its own is not checked
// against the guests.
func (s Spec) Check(guests []partition.Guest) error {
	var v validation
	if !v.validate(s) {
		return v.err()
	}
	check := func(path []string, f Fault) {
		if v.faultFailed(path) {
			return
		}
		if _, key, err := f.state(guests); err != nil {
			v.ok(fieldErr(append(path, key), "%v", err))
		}
	}
	for i, st := range s.Steps {
		check(elem("steps", i), st.Fault)
	}
	if s.Nemesis != nil {
		for i, f := range s.Nemesis.Faults {
			check(append([]string{"nemesis"}, elem("faults", i)...), f)
		}
	}
	if s.Flap != nil {
		check([]string{"flap"}, s.Flap.Fault)
	}
	return v.err()
}

// PlanFor is what comes before Start: it checks the spec against the guests it will run on
// (Check), lays out its plan (Plan) and checks that the kernel can do every step
// (Plan.CheckKernel).
func (s Spec) PlanFor(guests []partition.Guest) (Plan, error) {
	if err := s.Check(guests); err != nil {
		return Plan{}, err
	}
	p, err := s.Plan()
	if err == nil {
		err = p.CheckKernel(guests)
	}
	return p, err
}

// Planned is one step of a plan: the fault to put in force At after the schedule starts.
type Planned struct {
	At    time.Duration `json:"at"`
	Fault Fault         `json:"fault"`
	// Label says where the step comes from: "step 2", "nemesis round 3", "flap 4 on", "end".
	Label string `json:"label"`
}

// Plan is a schedule's timeline. Its last step heals, and the bridge stays healed from then
// until End.
type Plan struct {
	Seed  int64         `json:"seed"`
	Steps []Planned     `json:"steps"`
	End   time.Duration `json:"end"`
}

// Plan validates the spec and lays out its timeline, making every random choice from the
// seed (drawn when Spec.Seed is 0, and recorded in Plan.Seed).
func (s Spec) Plan() (Plan, error) {
	if err := s.Validate(); err != nil {
		return Plan{}, err
	}
	seed := s.Seed
	if seed == 0 {
		seed = rand.Int64N(1<<31) + 1
	}
	// PCG's output for a seed is fixed by math/rand/v2, so a seed gives the same plan on
	// every machine and Go release.
	rng := rand.New(rand.NewPCG(uint64(seed), 0x706f6e746f6f6e)) // "pontoon"
	p := Plan{Seed: seed}
	at := s.Start
	add := func(f Fault, label string) {
		p.Steps = append(p.Steps, Planned{At: at, Fault: f.seeded(rng), Label: label})
	}
	switch {
	case len(s.Steps) > 0:
		for i, st := range s.Steps {
			add(st.Fault, fmt.Sprintf("step %d", i+1))
			at += st.For
		}
	case s.Nemesis != nil:
		n := s.Nemesis
		last := n.Duration - n.Healed
		for round := 1; at+n.Fault <= last; round++ {
			add(n.Faults[rng.IntN(len(n.Faults))], fmt.Sprintf("nemesis round %d", round))
			at += n.Fault
			if at+n.Recovery+n.Fault > last {
				break // the closing heal below follows at once
			}
			if n.Recovery > 0 {
				add(Fault{}, fmt.Sprintf("nemesis round %d recovery", round))
				at += n.Recovery
			}
		}
		p.End = n.Duration
	case s.Flap != nil:
		for i := 1; i <= s.Flap.Count; i++ {
			add(s.Flap.Fault, fmt.Sprintf("flap %d on", i))
			at += s.Flap.On
			if i < s.Flap.Count {
				add(Fault{}, fmt.Sprintf("flap %d off", i))
				at += s.Flap.Off
			}
		}
	}
	add(Fault{}, "end")
	p.End = max(p.End, at)
	return p, nil
}
