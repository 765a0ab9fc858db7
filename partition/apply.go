package partition

import (
	"context"
	"errors"
	"fmt"
	"os"
	"reflect"
	"slices"
	"time"

	"github.com/pontoon-dev/pontoon/internal/interrupt"
	"github.com/pontoon-dev/pontoon/internal/nftpool"
	"github.com/pontoon-dev/pontoon/internal/nftwire"
	"github.com/pontoon-dev/pontoon/netsetup"
	"github.com/pontoon-dev/pontoon/netsetup/ns"
)

func (t Target) check() error {
	if t.NetnsPath == "" {
		return errors.New("target: NetnsPath of the bridge namespace is empty")
	}
	if t.StateDir == "" {
		return errors.New("target: StateDir is empty; pass the run's state directory")
	}
	return nil
}

// Apply makes s the bridge's state: the partition, its mode and every
// impairment, replacing whatever was applied before (impairments not in s are
// removed). The partition switches in one nftables transaction. If s is
// invalid, or the kernel lacks a feature s needs (see FeatureError), nothing
// is changed. The applied state is recorded in t.StateDir for Status.
func Apply(t Target, s State) error {
	t.Sets = []string{SetsAll}
	_, err := Update(t, func(State) (State, error) { return s, nil })
	return err
}

// Update applies the state change derives from the bridge's recorded one, as
// Apply does, reading the record and applying under the bridge's lock: two
// changes at once (a CLI call, a bridge child, a test) both take effect, the
// second on top of the first, instead of one silently undoing the other. An
// error from change is returned as it is and changes nothing.
func Update(t Target, change func(State) (State, error)) (Record, error) {
	return applyWith(t, change, applyOpts{})
}

type applyOpts struct {
	// ctx, when set, calls off the wait for the state lock (a --for's Ctrl-C); once the lock
	// is held the change goes through.
	ctx     context.Context
	expires time.Time
	// restorePrev records the parts of the state the change replaces as the ones to restore
	// at expires (a Timed); they are read under the same lock as the apply, so a concurrent
	// change cannot slip between.
	restorePrev bool
	// timed, when set, makes the change instead: it ends pending timed changes (Restore,
	// RestoreExpired) and returns the state and what stays pending, or ErrSuperseded.
	timed func(cur State, pending []Timed) (State, []Timed, error)
	// onlyIfApplied returns errNothingApplied instead of applying when the
	// record holds no partition and no impairment.
	onlyIfApplied bool
	kind          string        // for the event log; derived from the change when empty
	lasts         time.Duration // the --for duration asked for, for the event log
	// repair, when set, makes the change apply only when the kernel's partition table is
	// not the record's, read under the same lock (a change in progress holds it, so only
	// one that died halfway, or an edit by hand, shows); it receives what differed.
	repair *[]string
}

var errNothingApplied = errors.New("nothing applied")

// ErrBridgeReplaced is the error of a change whose bridge was destroyed, and perhaps made
// again under its name, while the change waited for its locks: it changes nothing, on
// neither bridge. It is a netsetup.ErrNoBridge, which gc passes over.
var ErrBridgeReplaced = replacedError{}

type replacedError struct{}

func (replacedError) Error() string {
	return "the bridge was destroyed while this change waited for it (a bridge made again under its name is another): nothing was changed; run the command again to change the bridge there now"
}
func (replacedError) Unwrap() error { return netsetup.ErrNoBridge }

// sameBridge refuses a target whose bridge namespace is no longer the one it was made for.
func (t Target) sameBridge() error {
	if t.netnsID == 0 {
		return nil
	}
	if id, ok := ns.ID(t.NetnsPath); !ok || id != t.netnsID {
		return ErrBridgeReplaced
	}
	return nil
}

// guestsAndServices reads the bridge's guests (t.Guests when t has no way to read them) and
// services, given up with ctx's error when ctx is done first: the reads, which change nothing,
// then go on unwatched, for a process about to end.
func (t Target) guestsAndServices(ctx context.Context) ([]Guest, *serviceSpec, error) {
	type both struct {
		guests []Guest
		svc    *serviceSpec
	}
	r, err := interrupt.Wait(ctx, func() (r both, err error) {
		r.guests = t.Guests
		if t.guests != nil {
			if r.guests, err = t.guests(); err != nil {
				return r, err
			}
		}
		r.svc, err = t.serviceSpec()
		return r, err
	}, nil)
	return r.guests, r.svc, err
}

func applyWith(t Target, change func(State) (State, error), o applyOpts) (Record, error) {
	if err := t.check(); err != nil {
		return Record{}, err
	}
	ctx := o.ctx
	if ctx == nil {
		ctx = context.Background()
	}
	unlock, err := lockStateContext(ctx, t.StateDir)
	if err != nil {
		return Record{}, err
	}
	defer unlock()
	if err := t.sameBridge(); err != nil {
		return Record{}, err
	}
	prev, known, err := readStatus(t.StateDir)
	if err != nil {
		return Record{}, err
	}
	if prev.Before != nil {
		if prev, err = settleAhead(t, prev); err != nil {
			return Record{}, err
		}
	}
	nftpool.NoteChange(prev.AppliedAt)
	if o.onlyIfApplied && len(prev.Blocked) == 0 && len(prev.Impairments) == 0 {
		return prev, errNothingApplied
	}
	// Both read under the chain's own lock, which another command may hold as long; the
	// services from the record the guests come from.
	var svc *serviceSpec
	if t.Guests, svc, err = t.guestsAndServices(ctx); err != nil {
		return Record{}, err
	}
	// The last moment the change can be called off: nothing of it is made yet.
	if err := ctx.Err(); err != nil {
		return Record{}, err
	}
	if err := t.sameBridge(); err != nil {
		return Record{}, err
	}
	if o.restorePrev && o.lasts > 0 {
		// From now, not from the call: the waits for the locks are not the change's time.
		o.expires = time.Now().Add(o.lasts)
	}
	if o.repair != nil {
		kt, err := readKernel(t.NetnsPath)
		if err != nil {
			return Record{}, err
		}
		if *o.repair = tableProblems(t.NetnsPath, kt, prev, t.Guests); len(*o.repair) == 0 {
			return prev, errNothingApplied
		}
	}
	// A guest that left the bridge leaves the recorded state with its pairs and impairments
	// at the next change. A refresh, made by another guest's arrival, is none: it keeps them.
	guests := t.Guests
	if o.kind == EventRefresh {
		guests = withDeparted(t.Guests, prev.Guests, prev.State())
	}
	before := prev.State().For(guests)
	in := before // the change may reuse its input's slices; before must stay as it was
	in.Partition.Blocked, in.Partition.Order = slices.Clone(before.Partition.Blocked), slices.Clone(before.Partition.Order)
	in.Impairments = slices.Clone(before.Impairments)
	var s State
	var pending []Timed
	if o.timed != nil {
		s, pending, err = o.timed(in, prev.Pending)
	} else {
		s, err = change(in)
	}
	if err != nil {
		if errors.Is(err, ErrSuperseded) {
			return prev, err
		}
		return Record{}, err
	}
	switch {
	case o.timed != nil:
	case o.restorePrev:
		pending = pushTimed(prev.Pending, before, s, t.Sets, prev.Generation+1, o.expires, t.Restorer, t.What)
	case o.kind == EventRefresh:
		pending = prev.Pending
	default:
		pending = replaceTimed(prev.Pending, before, s, t.Sets)
	}
	r, err := resolveState(s, guests)
	if err != nil {
		return Record{}, err
	}
	sup, probed := supportFor(prev.Backend)
	for {
		backend := sup.backend()
		plan := r.plan(backend)
		plan.RuleSet.services = compileServices(svc, t.Guests, r.blocked, r.mode, r.cut, r.imps)
		if plan.RuleSet.needsReject() {
			need := "reject mode"
			if r.mode != ModeReject {
				need = "the resets of Cut"
			}
			if err := sup.rejectErr(backend, need); err != nil {
				if probed {
					return Record{}, err
				}
				if sup, err = probeSupport(t.NetnsPath); err != nil {
					return Record{}, fmt.Errorf("apply partition: %w", err)
				}
				probed = true
				continue
			}
		}
		if need, ok := plan.needsNetem(); ok {
			if err := checkNetem(need); err != nil {
				return Record{}, err
			}
		}
		if !plan.RuleSet.Empty() {
			plan.RuleSet.seal(prev.Generation + 1)
		}
		// A change that must be undone at a deadline is recorded, with what to restore, before
		// the kernel has it: a process killed between the kernel's commit and the record would
		// otherwise leave it in force with nothing saying to undo it (see ahead). So is one
		// that changes shaping: killed after its tc changes, it would leave qdiscs no record
		// names, which neither status nor heal would take for pontoon's.
		undo := func() {}
		have := r.shapingHere(prev.Shaping)
		ahead := o.restorePrev || !reflect.DeepEqual(prev.Shaping, plan.Shaping)
		if ahead {
			if undo, err = t.writeAhead(r, plan, prev, known, backend, pending); err != nil {
				return Record{}, err
			}
			stopAt("ahead")
		}
		if err := applyShaping(t.NetnsPath, have, plan.Shaping); err != nil {
			_ = applyShaping(t.NetnsPath, plan.Shaping, have)
			undo()
			err = fmt.Errorf("apply partition: %w", err)
			t.logChange(o.kind, prev, Record{}, o, err, nil)
			return Record{}, err
		}
		if ahead {
			stopAt("shaped")
		}
		start := time.Now()
		err := commitVerified(t.NetnsPath, plan.RuleSet, sup.families(), committed{prev.Marker, prev.Chains})
		if err != nil {
			// Shaping first, then the record: killed in between, the record still names the
			// shaping to undo.
			_ = applyShaping(t.NetnsPath, plan.Shaping, have)
			undo()
			if !probed && missingFeature(err) {
				// The guess about the kernel was wrong and the batch changed nothing:
				// ask the kernel, then build the rules for what it has.
				if sup, err = probeSupport(t.NetnsPath); err != nil {
					return Record{}, fmt.Errorf("apply partition: %w", err)
				}
				probed = true
				continue
			}
			err = fmt.Errorf("apply partition: %w", err)
			t.logChange(o.kind, prev, Record{}, o, err, nil)
			return Record{}, err
		}
		if ahead {
			stopAt("committed")
		}
		now := time.Now()
		st := newStatus(r, plan, prev, now)
		st.Backend = backend
		st.CommitMicros = now.Sub(start).Microseconds()
		st.Change, st.Pending = st.Generation, pending
		if o.kind == EventRefresh {
			st.Change = prev.change()
		}
		if s.Cut {
			// Closing connections takes a while; killed meanwhile, the record must already
			// say what the kernel holds, and keep the record it replaces so that the command
			// that settles it logs the change (logSettled).
			mid := st
			mid.Before = &prev
			if err := writeStatus(t.StateDir, mid); err != nil {
				t.logChange(o.kind, prev, st, o, err, nil)
				return st, err
			}
			stopAt("cutting")
			n, err := closeCrossing(r)
			st.ClosedConnections = n
			if err != nil {
				st.CutError = err.Error()
			}
		}
		// Stale counters only misreport; the change is in force either way.
		pruneErr := pruneCounters(t.NetnsPath, prev, &st, plan.RuleSet, guests)
		err = writeStatus(t.StateDir, st)
		t.logChange(o.kind, prev, st, o, err, pruneErr)
		return st, err
	}
}

// commitVerified commits rs and, when the kernel's answer is an error, reads
// the table back: a batch is all or nothing in the kernel, but its answer can
// be lost after the kernel committed (a receive buffer that overflowed, a
// socket error). Only a batch that really changed
// nothing is reported as an error; one whose marker is in force succeeded.
func commitVerified(nsPath string, rs RuleSet, families []Backend, prev committed) error {
	err := commitRuleSet(nsPath, rs, families, prev)
	if err == nil || missingFeature(err) {
		return err
	}
	if rs.Empty() {
		kt, rerr := readKernel(nsPath)
		if rerr != nil {
			return errors.Join(err, fmt.Errorf("and reading the table back failed: %w", rerr))
		}
		if len(kt.Present) == 0 {
			answersLost.Add(1)
			return nil
		}
		return err
	}
	var now tableNow
	rerr := nftpool.WithConn(nsPath, func(w *nftwire.Conn) (err error) { now, err = readTableNow(w, rs.Backend); return err })
	if rerr != nil {
		return errors.Join(err, fmt.Errorf("and reading the table back failed: %w", rerr))
	}
	if now.marker != rs.Marker {
		return err
	}
	// The rules are in force; only the answer, or what comes after the
	// switch (removing another family's table), went missing: finish that.
	answersLost.Add(1)
	return dropOthers(nsPath, now.others)
}

// Heal removes every partition and impairment from the bridge: the partition
// table (of either backend) and partition's qdiscs on the ports and on the
// guests' eth0. Heal
// succeeds when there is nothing to remove, including when the bridge
// namespace or a guest's namespace is already gone.
func Heal(t Target) error {
	if err := t.check(); err != nil {
		return err
	}
	if _, err := os.Stat(t.NetnsPath); errors.Is(err, os.ErrNotExist) {
		return healRecord(t)
	}
	unlock, err := lockState(t.StateDir)
	if err != nil {
		return err
	}
	defer unlock()
	prev, known, err := readStatus(t.StateDir)
	if err != nil {
		return err
	}
	nftpool.NoteChange(prev.AppliedAt)
	sup, probed := supportFor(prev.Backend)
	healed, err := t.healedServices()
	if err != nil {
		return fmt.Errorf("heal: %w", err)
	}
	start := time.Now()
	err = commitVerified(t.NetnsPath, healed, sup.families(), committed{})
	if err != nil && !probed && missingFeature(err) {
		if sup, err = probeSupport(t.NetnsPath); err != nil {
			return fmt.Errorf("heal: %w", err)
		}
		err = commitVerified(t.NetnsPath, healed, sup.families(), committed{})
	}
	if err != nil {
		err = fmt.Errorf("heal: %w", err)
		t.logChange(EventHeal, prev, Record{}, applyOpts{}, err, nil)
		return err
	}
	took := time.Since(start)
	// Without a record, or with shaping recorded, look for leftovers in the
	// kernel rather than trusting the record. A record written ahead of a commit that may
	// not have happened names the shaping before it too: the kernel may hold either.
	shaping := prev.Shaping
	if prev.Before != nil {
		shaping = append(slices.Clone(shaping), prev.Before.Shaping...)
	}
	if !known || len(shaping) > 0 {
		if err := clearShaping(t.NetnsPath, t.Guests, shaping); err != nil {
			return fmt.Errorf("heal: %w", err)
		}
	}
	return t.recordHeal(prev, took)
}

// healRecord records fullmesh for a bridge whose namespace no longer exists.
func healRecord(t Target) error {
	unlock, err := lockState(t.StateDir)
	if err != nil {
		return err
	}
	defer unlock()
	prev, _, err := readStatus(t.StateDir)
	if err != nil {
		return err
	}
	return t.recordHeal(prev, 0)
}

// recordHeal records fullmesh after prev, whose removal took took, and logs the heal.
func (t Target) recordHeal(prev Record, took time.Duration) error {
	st := fullmeshStatus()
	st.AppliedAt = time.Now()
	st.CommitMicros = took.Microseconds()
	st.Generation = prev.Generation + 1
	st.Change = st.Generation
	err := writeStatus(t.StateDir, st)
	t.logChange(EventHeal, prev, st, applyOpts{}, err, nil)
	return err
}

// Recorded returns the bridge's recorded state without asking the kernel whether it is in
// effect (Status does).
func Recorded(t Target) (State, error) {
	if err := t.check(); err != nil {
		return State{}, err
	}
	st, _, err := readStatus(t.StateDir)
	if err != nil {
		return State{}, err
	}
	return st.State(), nil
}

// UpdateUntil applies change's state like Update and records the state it
// replaced, to be restored at d from now: by Restore with the returned
// record's Generation, or by RestoreExpired from any process once d has
// passed (so a restore survives the death of the process that asked for it).
func UpdateUntil(t Target, change func(State) (State, error), d time.Duration) (Record, error) {
	return UpdateUntilContext(context.Background(), t, change, d)
}

// UpdateUntilContext is UpdateUntil, given up with ctx's error, changing nothing, when ctx is
// done before the change has the bridge's state lock (another change holds it). The given-up
// wait lingers until that lock is free (statefile.LockContext): for a command about to end.
func UpdateUntilContext(ctx context.Context, t Target, change func(State) (State, error), d time.Duration) (Record, error) {
	if d <= 0 {
		return Record{}, fmt.Errorf("apply for %s: the duration must be positive", d)
	}
	return applyWith(t, change, applyOpts{ctx: ctx, expires: time.Now().Add(d), restorePrev: true, lasts: d})
}

// Restore ends the timed change UpdateUntil made with generation gen: the parts of the state
// it changed go back to what they were (see Timed). When a change since replaced all of them,
// or they were restored already, it returns ErrSuperseded and leaves what is in force alone.
func Restore(t Target, gen uint64) error {
	if err := t.check(); err != nil {
		return err
	}
	st, _, err := readStatus(t.StateDir)
	if err != nil {
		return err
	}
	// The change of generation gen, and of t's restorer when it names one: generations
	// start again with a bridge made again under the name.
	mine := func(tc Timed) bool { return tc.Change == gen && (t.Restorer == "" || tc.Restorer == t.Restorer) }
	i := slices.IndexFunc(st.Pending, mine)
	if i < 0 {
		return ErrSuperseded
	}
	kind := EventRestore
	if !time.Now().Before(st.Pending[i].Expires) {
		kind = EventExpire
	}
	_, err = applyWith(t, nil, applyOpts{kind: kind, timed: func(cur State, pending []Timed) (State, []Timed, error) {
		if !slices.ContainsFunc(pending, mine) {
			return cur, pending, ErrSuperseded
		}
		next, left, _ := expireTimed(pending, gen, cur)
		return next.For(t.Guests), left, nil
	}})
	return err
}

// ApplyFor applies s, waits for d or until ctx is done, then restores the
// state that was applied before. If someone applied or healed in between, it
// leaves their state alone and returns ErrSuperseded. When ctx ends early it
// still restores and returns ctx.Err() (joined with any restore error). The
// record carries Expires and the state to restore, so RestoreExpired can
// finish the job if this process dies.
func ApplyFor(ctx context.Context, t Target, s State, d time.Duration) error {
	if err := t.check(); err != nil {
		return err
	}
	t.Sets = []string{SetsAll}
	st, err := UpdateUntil(t, func(State) (State, error) { return s, nil }, d)
	if err != nil {
		return err
	}
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-timer.C:
	case <-ctx.Done():
	}
	rerr := Restore(t, st.Generation)
	if rerr != nil && !errors.Is(rerr, ErrSuperseded) {
		rerr = fmt.Errorf("restore state after %s: %w", d, rerr)
	}
	if ctx.Err() != nil {
		return errors.Join(ctx.Err(), rerr)
	}
	return rerr
}

// RestoreExpired ends every timed change whose deadline has passed (see Restore): their
// restorers may have died. It reports whether it restored anything. Callers can run it at
// any time (e.g. from status).
func RestoreExpired(t Target) (bool, error) {
	if err := t.check(); err != nil {
		return false, err
	}
	st, _, err := readStatus(t.StateDir)
	if err != nil {
		return false, err
	}
	if _, _, any := expiredTimed(st.Pending, st.State(), time.Now()); !any {
		return false, nil
	}
	_, err = applyWith(t, nil, applyOpts{kind: EventExpire, timed: func(cur State, pending []Timed) (State, []Timed, error) {
		next, left, any := expiredTimed(pending, cur, time.Now())
		if !any {
			return cur, pending, ErrSuperseded
		}
		return next.For(t.Guests), left, nil
	}})
	if errors.Is(err, ErrSuperseded) {
		return false, nil
	}
	return err == nil, err
}
