package testenv

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/pontoon-dev/pontoon/names"
	"github.com/pontoon-dev/pontoon/partition"
)

// WithMode sets how blocked packets are treated by the Env's partitions: partition.ModeDrop
// (the default: peers see timeouts) or partition.ModeReject (TCP peers get a reset, others an
// ICMP unreachable, so clients fail fast).
func WithMode(m partition.Mode) Option {
	return func(c *config) error {
		if _, err := partition.ParseMode(string(m)); err != nil {
			return fmt.Errorf("testenv.WithMode: %w", err)
		}
		c.mode = m
		return nil
	}
}

// WithCut makes the Env's partitions also break TCP connections that are already open across
// them (partition.State.Cut), instead of leaving them stalled until their own timeouts.
func WithCut() Option {
	return func(c *config) error { c.cut = true; return nil }
}

// pstate is the partition state the Env last applied.
type pstate struct {
	mu sync.Mutex // serializes applies, so the recorded state is the kernel's
	s  partition.State
}

// Target returns the Env's bridge as package partition sees it, with the guests that exist
// now, for calling package partition directly (e.g. partition.Status or ApplyFor).
func (e *Env) Target() partition.Target {
	t, err := e.target()
	if err != nil {
		e.t.Fatalf("testenv: %v", err)
	}
	return t
}

func (e *Env) target() (partition.Target, error) {
	t, err := partition.ForBridge(e.sb.Env, e.cfg.bridge)
	t.Source = partition.SourceTestenv
	return t, err
}

// State returns the partition, mode, cut setting and impairments the Env last applied.
func (e *Env) State() partition.State {
	e.ps.mu.Lock()
	defer e.ps.mu.Unlock()
	s := e.ps.s
	s.Impairments = slices.Clone(s.Impairments)
	return s
}

// Status returns partition's record of the bridge, including whether the kernel still
// enforces it (Record.Kernel).
func (e *Env) Status() partition.Record {
	e.t.Helper()
	r, err := partition.Status(e.Target())
	if err != nil {
		e.t.Fatalf("testenv: partition status: %v", err)
	}
	return r
}

// apply makes change's result the bridge's state, read and applied under the bridge's lock
// (partition.Update), so a change made meanwhile by a process inside the run is kept; on
// failure nothing changes.
func (e *Env) apply(change func(s *partition.State) error) error {
	e.ps.mu.Lock()
	defer e.ps.mu.Unlock()
	t, err := e.target()
	if err != nil {
		return err
	}
	rec, err := partition.Update(t, func(s partition.State) (partition.State, error) {
		s.Mode, s.Cut = e.cfg.mode, e.cfg.cut
		err := change(&s)
		return s, err
	})
	if err != nil {
		return err
	}
	e.ps.s = rec.State()
	return nil
}

// fatalOrSkip ends the test for a failed partition verb: a skip naming the missing kernel
// feature, a failure otherwise.
func (e *Env) fatalOrSkip(what string, err error) {
	e.t.Helper()
	var fe *partition.FeatureError
	if errors.As(err, &fe) {
		e.t.Skipf("testenv: %s: %v", what, err)
	}
	e.t.Fatalf("testenv: %s: %v", what, err)
}

// Partition applies p (built with package partition, e.g. a Union) and keeps the impairments.
// It fails the test on a bad partition and skips it when the kernel lacks a feature.
func (e *Env) Partition(p partition.Partition) partition.Partition {
	e.t.Helper()
	var mode partition.Mode
	if err := e.apply(func(s *partition.State) error { s.Partition, mode = p, s.Mode; return nil }); err != nil {
		e.fatalOrSkip("apply partition "+p.Description, err)
	}
	e.t.Logf("testenv: partition: %s (mode %s)", p.Description, mode)
	return p
}

// build applies the partition a constructor of package partition builds from the Env's guests.
func (e *Env) build(what string, construct func([]partition.Guest) (partition.Partition, error)) partition.Partition {
	e.t.Helper()
	t, err := e.target()
	if err != nil {
		e.t.Fatalf("testenv: %s: %v", what, err)
	}
	p, err := construct(t.Guests)
	if err != nil {
		e.t.Fatalf("testenv: %v", err)
	}
	return e.Partition(p)
}

// Isolate cuts each named guest off from every other guest (the named ones included) and
// returns the applied partition.
func (e *Env) Isolate(guests ...string) partition.Partition {
	e.t.Helper()
	return e.build("isolate", func(gs []partition.Guest) (partition.Partition, error) { return partition.Isolate(gs, guests...) })
}

// Disjoint splits the guests into groups that talk only among themselves; every guest must be
// in exactly one group.
//
//	env.Disjoint([]string{"n1", "n2"}, []string{"n3"})
func (e *Env) Disjoint(groups ...[]string) partition.Partition {
	e.t.Helper()
	return e.build("disjoint", func(gs []partition.Guest) (partition.Partition, error) { return partition.Disjoint(gs, groups) })
}

// Split lets two guests talk when some group holds both; groups may overlap, and guests in
// no group are isolated.
func (e *Env) Split(groups ...[]string) partition.Partition {
	e.t.Helper()
	return e.build("split", func(gs []partition.Guest) (partition.Partition, error) { return partition.Split(gs, groups) })
}

// Block loses packets from guest from to guest to, one way: packets from to to from still
// flow. (A round trip needs both ways, so Probe sees neither direction get through; Delivers
// tells the directions apart.) For several guests at once use
// Partition(partition.Block(...)).
func (e *Env) Block(from, to string) partition.Partition {
	e.t.Helper()
	return e.build("block", func(gs []partition.Guest) (partition.Partition, error) {
		return partition.Block(gs, []string{from}, []string{to})
	})
}

// RandomHalves cuts the guests into two random halves; the same seed on the same guests gives
// the same halves, and the returned Description names them.
func (e *Env) RandomHalves(seed int64) partition.Partition {
	e.t.Helper()
	return e.build("random-halves", func(gs []partition.Guest) (partition.Partition, error) { return partition.RandomHalves(gs, seed) })
}

// RandomNode isolates one guest chosen by seed.
func (e *Env) RandomNode(seed int64) partition.Partition {
	e.t.Helper()
	return e.build("random-node", func(gs []partition.Guest) (partition.Partition, error) { return partition.RandomNode(gs, seed) })
}

// RandomBridge cuts the guests into two random halves that share one guest, which talks to
// both (partition.BridgedHalves).
func (e *Env) RandomBridge(seed int64) partition.Partition {
	e.t.Helper()
	return e.build("bridge", func(gs []partition.Guest) (partition.Partition, error) { return partition.BridgedHalves(gs, seed) })
}

// MajoritiesRing lets each guest hear only a different majority of the guests, placed on a
// ring chosen by seed (partition.MajoritiesRing).
func (e *Env) MajoritiesRing(seed int64) partition.Partition {
	e.t.Helper()
	return e.build("majorities-ring", func(gs []partition.Guest) (partition.Partition, error) {
		return partition.MajoritiesRing(gs, seed)
	})
}

// Heal removes every partition and impairment: all guests reach each other again.
func (e *Env) Heal() {
	e.t.Helper()
	e.ps.mu.Lock()
	defer e.ps.mu.Unlock()
	t, err := e.target()
	if err == nil {
		err = partition.Heal(t)
	}
	if err == nil {
		err = names.ClearFaults(e.sb.Env, e.cfg.bridge, partition.SourceTestenv)
	}
	if err != nil {
		e.fatalOrSkip("heal", err)
	}
	e.ps.s = partition.State{Partition: partition.Fullmesh()}
	e.t.Logf("testenv: healed")
}

// SetMode changes how blocked packets are treated (see WithMode) and re-applies the current
// partition with it at once.
func (e *Env) SetMode(m partition.Mode) {
	e.t.Helper()
	if _, err := partition.ParseMode(string(m)); err != nil {
		e.t.Fatalf("testenv: %v", err)
	}
	e.ps.mu.Lock()
	e.cfg.mode = m
	e.ps.mu.Unlock()
	if err := e.apply(func(*partition.State) error { return nil }); err != nil {
		e.fatalOrSkip("set mode "+string(m), err)
	}
}

// SetCut turns cutting of open connections on or off (see WithCut) and re-applies the current
// partition with it at once.
func (e *Env) SetCut(on bool) {
	e.t.Helper()
	e.ps.mu.Lock()
	e.cfg.cut = on
	e.ps.mu.Unlock()
	if err := e.apply(func(*partition.State) error { return nil }); err != nil {
		e.fatalOrSkip("set cut", err)
	}
}

// PartitionFor applies p, waits for d or until ctx is done, then restores the state from
// before (partition.ApplyFor). It blocks meanwhile, so run it in a goroutine to act during the
// partition. If another verb changes the state in between, that state stays and the error
// matches partition.ErrSuperseded.
func (e *Env) PartitionFor(ctx context.Context, p partition.Partition, d time.Duration) error {
	e.ps.mu.Lock()
	s := e.ps.s
	s.Impairments = slices.Clone(s.Impairments)
	s.Partition, s.Mode, s.Cut = p, e.cfg.mode, e.cfg.cut
	e.ps.mu.Unlock()
	t, err := e.target()
	if err != nil {
		return err
	}
	return partition.ApplyFor(ctx, t, s, d)
}

// Impairments. They return their error rather than failing the test: what they need depends on
// the kernel (errors match partition.ErrNetemUnavailable or ErrHTBUnavailable), and a test may
// prefer to fall back. On error nothing changes.

// Loss drops percent (0-100) of the IPv4 packets each named guest sends and receives, keeping
// the guests' other impairments and the partition.
func (e *Env) Loss(percent float64, guests ...string) error {
	e.t.Helper()
	return e.impairGuests("loss", guests, func(im *partition.Impairment) { im.Loss = percent })
}

// Rate limits each named guest's bandwidth, each direction separately, to rate written as tc
// does ("1mbit", "512kbit", "10mbps"); "0bit" removes the limit. It needs HTB.
func (e *Env) Rate(rate string, guests ...string) error {
	e.t.Helper()
	r, err := partition.ParseRate(rate)
	if err != nil {
		return fmt.Errorf("testenv: %w", err)
	}
	return e.impairGuests("rate", guests, func(im *partition.Impairment) { im.Rate = r })
}

// Delay delays every packet each named guest sends and receives by d; 0 removes the delay.
// It needs netem: on a kernel without it the error matches partition.ErrNetemUnavailable (see
// RequireNetem).
func (e *Env) Delay(d time.Duration, guests ...string) error {
	e.t.Helper()
	return e.impairGuests("delay", guests, func(im *partition.Impairment) {
		im.Delay = d
		if d == 0 {
			// Jitter and reorder are meaningless without a delay and partition rejects them.
			im.Jitter, im.Reorder = 0, 0
		}
	})
}

func (e *Env) impairGuests(what string, guests []string, set func(*partition.Impairment)) error {
	e.t.Helper()
	if len(guests) == 0 {
		return fmt.Errorf("testenv: %s: no guest given; name at least one guest", what)
	}
	ims := make([]partition.Impairment, 0, len(guests))
	cur := e.State().Impairments
	for _, g := range guests {
		im := partition.Impairment{Guest: g}
		if i := slices.IndexFunc(cur, func(c partition.Impairment) bool { return c.Guest == g }); i >= 0 {
			im = cur[i]
		}
		set(&im)
		ims = append(ims, im)
	}
	if err := e.Impair(ims...); err != nil {
		return err
	}
	return nil
}

// Impair sets impairments as given (each replaces any impairment of the same guest or pair),
// keeping the others and the partition. Use it for pair impairments and for settings without
// a verb of their own (jitter, duplicate, corrupt, reorder).
func (e *Env) Impair(ims ...partition.Impairment) error {
	e.t.Helper()
	err := e.apply(func(s *partition.State) error {
		for _, im := range ims {
			im.Since = time.Time{}
			s.Impairments = slices.DeleteFunc(s.Impairments, func(c partition.Impairment) bool { return c.Target() == im.Target() })
			if !im.Empty() {
				s.Impairments = append(s.Impairments, im)
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("testenv: impair: %w", err)
	}
	for _, im := range ims {
		e.t.Logf("testenv: impairment: %s", im)
	}
	return nil
}

// ClearImpairments removes every impairment and keeps the partition.
func (e *Env) ClearImpairments() error {
	if err := e.apply(func(s *partition.State) error { s.Impairments = nil; return nil }); err != nil {
		return fmt.Errorf("testenv: clear impairments: %w", err)
	}
	return nil
}

// RequireNetem skips the test, saying why, when the kernel cannot emulate delay, jitter,
// duplication, corruption or reordering (no netem qdisc). Call it before Delay or an
// impairment with such settings when the test cannot do without them.
func (e *Env) RequireNetem() {
	e.t.Helper()
	if err := partition.CheckNetem(); err != nil {
		var fe *partition.FeatureError
		if errors.As(err, &fe) {
			e.t.Skipf("testenv: %v", err)
		}
		e.t.Fatalf("testenv: check for netem: %v", err)
	}
}
