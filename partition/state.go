package partition

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// Files partition keeps in Target.StateDir.
const (
	StateFile = "partition.json"
	LockFile  = "partition.lock"
)

// BlockedPair is one blocked ordered pair as recorded in the status.
type BlockedPair struct {
	Src   string     `json:"src"`
	Dst   string     `json:"dst"`
	SrcIP netip.Addr `json:"src_ip"`
	DstIP netip.Addr `json:"dst_ip"`
	// Since is when packets from Src to Dst started being lost (kept across
	// applies that keep the pair blocked).
	Since time.Time `json:"since"`
}

// Record is the applied state of a bridge, as persisted in StateFile and
// returned by Status.
type Record struct {
	Kind        string        `json:"kind"`
	Description string        `json:"description"`
	Mode        Mode          `json:"mode"`
	Cut         bool          `json:"cut"`
	Blocked     []BlockedPair `json:"blocked"`
	Impairments []Impairment  `json:"impairments"`
	// AppliedAt is when the last Apply or Heal committed.
	AppliedAt time.Time `json:"applied_at,omitzero"`
	// CommitMicros is how long the nftables transaction took, in
	// microseconds: the time from "old rules" to "new rules".
	CommitMicros int64 `json:"commit_us,omitempty"`
	// Expires and Restore are set by ApplyFor: at Expires, Restore is applied
	// again (by ApplyFor, or by RestoreExpired if that process died).
	Expires time.Time `json:"expires,omitzero"`
	Restore *State    `json:"restore,omitempty"`
	// Generation increases with every Apply and Heal.
	Generation uint64 `json:"generation"`
	// ClosedConnections is how many TCP sockets Cut closed actively inside
	// guests at the last apply; CutError says why that failed, if it did
	// (the passive resets are in effect regardless).
	ClosedConnections int    `json:"closed_connections,omitempty"`
	CutError          string `json:"cut_error,omitempty"`
	// Backend is the family of the partition table (netdev or bridge), tried first at the
	// next change.
	Backend Backend `json:"backend,omitempty"`
	// Table tells whether the partition table should exist in the kernel.
	Table bool `json:"table"`
	// Shaping is the traffic control that was set up.
	Shaping []Shaping `json:"shaping,omitempty"`
	// Kernel is filled by the Status function (not persisted): whether the
	// kernel still holds what was applied.
	Kernel *KernelCheck `json:"kernel,omitempty"`
}

// KernelCheck is the result of comparing the kernel with the recorded state.
type KernelCheck struct {
	InEffect bool   `json:"in_effect"`
	Detail   string `json:"detail,omitempty"`
}

// State returns what Apply would need to recreate this status.
func (st Record) State() State {
	p := Partition{Kind: st.Kind, Description: st.Description, Blocked: make([]Pair, len(st.Blocked))}
	for i, b := range st.Blocked {
		p.Blocked[i] = Pair{b.Src, b.Dst}
	}
	return State{Partition: p, Mode: st.Mode, Cut: st.Cut, Impairments: slices.Clone(st.Impairments)}
}

// clone returns a copy that shares no slice with st.
func (st Record) clone() Record {
	st.Blocked = slices.Clone(st.Blocked)
	st.Impairments = slices.Clone(st.Impairments)
	st.Shaping = slices.Clone(st.Shaping)
	if st.Restore != nil {
		r := *st.Restore
		st.Restore = &r
	}
	return st
}

func fullmeshStatus() Record {
	return Record{Kind: "fullmesh", Description: "fullmesh", Mode: ModeDrop, Blocked: []BlockedPair{}, Impairments: []Impairment{}}
}

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
	_, err := applyWith(t, s, applyOpts{})
	return err
}

type applyOpts struct {
	expires time.Time
	// restorePrev records the state being replaced as the one to restore at expires; it
	// is read under the same lock as the apply, so a concurrent change cannot slip between.
	restorePrev  bool
	ifGeneration *uint64 // apply only if the recorded generation still is this
}

func applyWith(t Target, s State, o applyOpts) (Record, error) {
	if err := t.check(); err != nil {
		return Record{}, err
	}
	r, err := resolveState(s, t.Guests)
	if err != nil {
		return Record{}, err
	}
	unlock, err := lockState(t.StateDir)
	if err != nil {
		return Record{}, err
	}
	defer unlock()
	prev, _, err := readStatus(t.StateDir)
	if err != nil {
		return Record{}, err
	}
	if o.ifGeneration != nil && prev.Generation != *o.ifGeneration {
		return prev, ErrSuperseded
	}
	sup, probed := supportFor(prev.Backend)
	for {
		backend := sup.backend()
		plan := r.plan(backend)
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
		if err := applyShaping(t.NetnsPath, prev.Shaping, plan.Shaping); err != nil {
			_ = applyShaping(t.NetnsPath, plan.Shaping, prev.Shaping)
			return Record{}, fmt.Errorf("apply partition: %w", err)
		}
		start := time.Now()
		err := commitRuleSet(t.NetnsPath, plan.RuleSet, sup.families())
		if err != nil {
			_ = applyShaping(t.NetnsPath, plan.Shaping, prev.Shaping)
			if !probed && missingFeature(err) {
				// The guess about the kernel was wrong and the batch changed nothing:
				// ask the kernel, then build the rules for what it has.
				if sup, err = probeSupport(t.NetnsPath); err != nil {
					return Record{}, fmt.Errorf("apply partition: %w", err)
				}
				probed = true
				continue
			}
			return Record{}, fmt.Errorf("apply partition: %w", err)
		}
		now := time.Now()
		st := newStatus(r, plan, prev, now)
		st.Backend = backend
		st.CommitMicros = now.Sub(start).Microseconds()
		if o.restorePrev {
			restore := prev.State()
			st.Expires, st.Restore = o.expires, &restore
		}
		if s.Cut {
			n, err := closeCrossing(r)
			st.ClosedConnections = n
			if err != nil {
				st.CutError = err.Error()
			}
		}
		if err := writeStatus(t.StateDir, st); err != nil {
			return st, err
		}
		return st, nil
	}
}

// newStatus records r as applied at now, keeping the Since of every blocked
// pair and impairment that prev already had.
func newStatus(r *resolved, plan Plan, prev Record, now time.Time) Record {
	st := Record{
		Kind: r.kind, Description: r.desc, Mode: r.mode, Cut: r.cut,
		Blocked: make([]BlockedPair, 0, len(r.blocked)), Impairments: make([]Impairment, 0, len(r.imps)),
		AppliedAt: now, Generation: prev.Generation + 1,
		Table: !plan.RuleSet.Empty(), Shaping: plan.Shaping,
	}
	if st.Kind == "" {
		st.Kind = "custom"
	}
	since := make(map[Pair]time.Time, len(prev.Blocked))
	for _, b := range prev.Blocked {
		since[Pair{b.Src, b.Dst}] = b.Since
	}
	for _, p := range r.blocked {
		b := BlockedPair{Src: p.Src, Dst: p.Dst, SrcIP: r.guest(p.Src).IP, DstIP: r.guest(p.Dst).IP, Since: now}
		if s, ok := since[p]; ok {
			b.Since = s
		}
		st.Blocked = append(st.Blocked, b)
	}
	prevImp := map[string]Impairment{}
	for _, im := range prev.Impairments {
		prevImp[im.Target()] = im
	}
	for _, im := range r.imps {
		im.Since = now
		if old, ok := prevImp[im.Target()]; ok {
			o := old
			o.Since = now
			if reflect.DeepEqual(o, im) {
				im.Since = old.Since
			}
		}
		st.Impairments = append(st.Impairments, im)
	}
	return st
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
	sup, probed := supportFor(prev.Backend)
	start := time.Now()
	err = commitRuleSet(t.NetnsPath, RuleSet{}, sup.families())
	if err != nil && !probed && missingFeature(err) {
		if sup, err = probeSupport(t.NetnsPath); err != nil {
			return fmt.Errorf("heal: %w", err)
		}
		err = commitRuleSet(t.NetnsPath, RuleSet{}, sup.families())
	}
	if err != nil {
		return fmt.Errorf("heal: %w", err)
	}
	took := time.Since(start)
	// Without a record, or with shaping recorded, look for leftovers in the
	// kernel rather than trusting the record.
	if !known || len(prev.Shaping) > 0 {
		if err := clearShaping(t.NetnsPath, t.Guests, prev.Shaping); err != nil {
			return fmt.Errorf("heal: %w", err)
		}
	}
	st := fullmeshStatus()
	st.AppliedAt = time.Now()
	st.CommitMicros = took.Microseconds()
	st.Generation = prev.Generation + 1
	return writeStatus(t.StateDir, st)
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
	st := fullmeshStatus()
	st.AppliedAt = time.Now()
	st.Generation = prev.Generation + 1
	return writeStatus(t.StateDir, st)
}

// Status returns the recorded state of the bridge (fullmesh when nothing was
// ever applied) and, when the bridge namespace is reachable, whether the
// kernel still enforces the recorded partition (Record.Kernel).
func Status(t Target) (Record, error) {
	if t.StateDir == "" {
		return Record{}, errors.New("target: StateDir is empty; pass the run's state directory")
	}
	st, _, err := readStatus(t.StateDir)
	if err != nil {
		return Record{}, err
	}
	st = st.clone()
	if t.NetnsPath != "" {
		st.Kernel = verify(t.NetnsPath, st)
	}
	return st, nil
}

// Recorded returns the bridge's recorded state without asking the kernel whether it is in
// effect (Status does): what a change that keeps part of the state starts from.
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

func verify(nsPath string, st Record) *KernelCheck {
	pairs, present, err := kernelBlocked(nsPath)
	if err != nil {
		return &KernelCheck{Detail: err.Error()}
	}
	switch {
	case len(present) > 1:
		return &KernelCheck{Detail: fmt.Sprintf("table %s exists in both the %s and the %s family; apply or heal again to keep one",
			TableName, present[0].Family(), present[1].Family())}
	case len(present) > 0 && !st.Table:
		return &KernelCheck{Detail: fmt.Sprintf("table %s %s exists but the recorded state needs none", present[0].Family(), TableName)}
	case len(present) == 0 && st.Table:
		return &KernelCheck{Detail: fmt.Sprintf("table %s is missing (in both the netdev and the bridge family)", TableName)}
	}
	want := map[AddrPair]bool{}
	for _, b := range st.Blocked {
		want[AddrPair{b.SrcIP, b.DstIP}] = true
	}
	got := map[AddrPair]bool{}
	for _, p := range pairs {
		got[p] = true
	}
	if !reflect.DeepEqual(want, got) && (len(want) > 0 || len(got) > 0) {
		return &KernelCheck{Detail: fmt.Sprintf("kernel blocks %d pairs, the record %d", len(got), len(want))}
	}
	return &KernelCheck{InEffect: true}
}

// ApplyFor applies s, waits for d or until ctx is done, then restores the
// state that was applied before. If someone applied or healed in between, it
// leaves their state alone and returns ErrSuperseded. When ctx ends early it
// still restores and returns ctx.Err() (joined with any restore error). The
// record carries Expires and the state to restore, so RestoreExpired can
// finish the job if this process dies.
func ApplyFor(ctx context.Context, t Target, s State, d time.Duration) error {
	if d <= 0 {
		return fmt.Errorf("apply for %s: the duration must be positive", d)
	}
	if err := t.check(); err != nil {
		return err
	}
	st, err := applyWith(t, s, applyOpts{expires: time.Now().Add(d), restorePrev: true})
	if err != nil {
		return err
	}
	restore := *st.Restore
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-timer.C:
	case <-ctx.Done():
	}
	gen := st.Generation
	_, rerr := applyWith(t, restore, applyOpts{ifGeneration: &gen})
	if rerr != nil && !errors.Is(rerr, ErrSuperseded) {
		rerr = fmt.Errorf("restore state after %s: %w", d, rerr)
	}
	if ctx.Err() != nil {
		return errors.Join(ctx.Err(), rerr)
	}
	return rerr
}

// RestoreExpired applies the state an ApplyFor recorded for restoring when
// its duration has passed and nothing else was applied since. It reports
// whether it restored. Callers can run it at any time (e.g. from status).
func RestoreExpired(t Target) (bool, error) {
	if err := t.check(); err != nil {
		return false, err
	}
	st, _, err := readStatus(t.StateDir)
	if err != nil {
		return false, err
	}
	if st.Restore == nil || st.Expires.IsZero() || time.Now().Before(st.Expires) {
		return false, nil
	}
	gen := st.Generation
	if _, err := applyWith(t, *st.Restore, applyOpts{ifGeneration: &gen}); err != nil {
		if errors.Is(err, ErrSuperseded) {
			return false, nil
		}
		return false, err
	}
	return true, nil
}

// recordFile is the on-disk form of a Record. Blocked pairs are grouped by
// Since and addresses are stored once per guest: a 64-guest partition has
// thousands of pairs, and one object with a timestamp per pair made reading
// and writing the record cost more than the kernel transaction.
type recordFile struct {
	Record
	Blocked []blockedGroup        `json:"blocked"`
	IPs     map[string]netip.Addr `json:"ips,omitempty"`
}

type blockedGroup struct {
	Since time.Time   `json:"since"`
	Pairs [][2]string `json:"pairs"`
}

func toFile(st Record) recordFile {
	f := recordFile{Record: st, IPs: map[string]netip.Addr{}}
	f.Record.Blocked = nil
	f.Record.Kernel = nil
	idx := map[time.Time]int{}
	for _, b := range st.Blocked {
		i, ok := idx[b.Since]
		if !ok {
			i = len(f.Blocked)
			idx[b.Since] = i
			f.Blocked = append(f.Blocked, blockedGroup{Since: b.Since})
		}
		f.Blocked[i].Pairs = append(f.Blocked[i].Pairs, [2]string{b.Src, b.Dst})
		f.IPs[b.Src], f.IPs[b.Dst] = b.SrcIP, b.DstIP
	}
	return f
}

func fromFile(f recordFile) Record {
	st := f.Record
	st.Blocked = []BlockedPair{}
	for _, g := range f.Blocked {
		for _, p := range g.Pairs {
			st.Blocked = append(st.Blocked, BlockedPair{Src: p[0], Dst: p[1], SrcIP: f.IPs[p[0]], DstIP: f.IPs[p[1]], Since: g.Since})
		}
	}
	slices.SortFunc(st.Blocked, func(a, b BlockedPair) int { return comparePairs(Pair{a.Src, a.Dst}, Pair{b.Src, b.Dst}) })
	if st.Impairments == nil {
		st.Impairments = []Impairment{}
	}
	return st
}

// lastWritten remembers the record this process wrote last, so that a
// process applying again and again (a nemesis loop) need not parse its own
// output: when the file still holds exactly those bytes, the parsed record
// is reused.
var lastWritten struct {
	sync.Mutex
	path string
	data []byte
	rec  Record
}

// readStatus reads the record; known is false when there is none yet. The
// result may share memory with a cached copy and must not be modified.
func readStatus(dir string) (st Record, known bool, err error) {
	path := filepath.Join(dir, StateFile)
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return fullmeshStatus(), false, nil
	}
	if err != nil {
		return Record{}, false, fmt.Errorf("read partition state: %w", err)
	}
	lastWritten.Lock()
	hit := lastWritten.path == path && bytes.Equal(lastWritten.data, b)
	rec := lastWritten.rec
	lastWritten.Unlock()
	if hit {
		return rec, true, nil
	}
	var f recordFile
	if err := json.Unmarshal(b, &f); err != nil {
		return Record{}, false, fmt.Errorf("parse partition state %s: %w", path, err)
	}
	return fromFile(f), true, nil
}

// writeStatus replaces the record atomically (write to a temporary file, then
// rename), so a reader never sees half of it.
func writeStatus(dir string, st Record) error {
	st.Kernel = nil
	b, err := json.Marshal(toFile(st))
	if err != nil {
		return fmt.Errorf("encode partition state: %w", err)
	}
	path := filepath.Join(dir, StateFile)
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		return fmt.Errorf("write partition state: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("write partition state: %w", err)
	}
	lastWritten.Lock()
	lastWritten.path, lastWritten.data, lastWritten.rec = path, b, st
	lastWritten.Unlock()
	return nil
}

// lockState serialises Apply and Heal on one bridge across processes.
func lockState(dir string) (func(), error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("create state dir %q: %w", dir, err)
	}
	f, err := os.OpenFile(filepath.Join(dir, LockFile), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, fmt.Errorf("open partition lock: %w", err)
	}
	for {
		err = unix.Flock(int(f.Fd()), unix.LOCK_EX)
		if !errors.Is(err, unix.EINTR) {
			break
		}
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("lock partition state in %q: %w", dir, err)
	}
	return func() { f.Close() }, nil
}

func addr4(b []byte) netip.Addr { return netip.AddrFrom4([4]byte(b)) }
