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
	"strings"
	"sync"
	"time"

	"github.com/pontoon-dev/pontoon/internal/statefile"
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
	// SrcIP6 and DstIP6 are the guests' IPv6 addresses, for guests that have one: the pair
	// is blocked on both families.
	SrcIP6 netip.Addr `json:"src_ip6,omitzero"`
	DstIP6 netip.Addr `json:"dst_ip6,omitzero"`
	// Since is when packets from Src to Dst started being lost (kept across
	// applies that keep the pair blocked).
	Since time.Time `json:"since"`
}

// Record is the applied state of a bridge, as persisted in StateFile and
// returned by Status.
type Record struct {
	Kind        string `json:"kind"`
	Description string `json:"description"`
	// Order is the partition's Order, kept so that a change on top of it
	// encodes it the same way.
	Order       []string      `json:"order,omitempty"`
	Mode        Mode          `json:"mode"`
	Cut         bool          `json:"cut"`
	Blocked     []BlockedPair `json:"blocked"`
	Impairments []Impairment  `json:"impairments"`
	// AppliedAt is when the last Apply or Heal committed.
	AppliedAt time.Time `json:"applied_at,omitzero"`
	// CommitMicros is how long the nftables transaction took, in
	// microseconds: the time from "old rules" to "new rules".
	CommitMicros int64 `json:"commit_us,omitempty"`
	// Pending are the changes with a deadline (UpdateUntil, ApplyFor, --for) still to end,
	// in the order they were made: each is undone at its deadline by Restore, or by
	// RestoreExpired if the process that made it died.
	Pending []Timed `json:"pending,omitempty"`
	// Generation increases with every commit: Apply, Heal, and a refresh for new ports.
	Generation uint64 `json:"generation"`
	// Change is the generation of the apply, heal or restore this state comes from. A
	// refresh re-applies the same state to ports that joined: a commit, not a change, so a
	// --for still restores the state it set after a guest joined.
	Change uint64 `json:"change,omitempty"`
	// Before is, in a record written ahead of its change's commit (a --for's, see
	// writeAhead), the record that change replaces: what the kernel still holds when the
	// change never reached it. The change's final record has none. (Stored in the file's
	// form: recordFile.Before.)
	Before *Record `json:"-"`
	// ClosedConnections is how many TCP sockets Cut closed actively inside
	// guests at the last apply; CutError says why that failed, if it did
	// (the passive resets are in effect regardless).
	ClosedConnections int    `json:"closed_connections,omitempty"`
	CutError          string `json:"cut_error,omitempty"`
	// Backend is the family of the partition table (netdev or bridge), tried first at the
	// next change.
	Backend Backend `json:"backend,omitempty"`
	// Table tells whether the partition table should exist in the kernel,
	// and Marker is the marker it was committed with (see RuleSet.Marker).
	Table  bool   `json:"table"`
	Marker string `json:"marker,omitempty"`
	// Chains fingerprints the chains committed with Marker (see committed).
	Chains map[string]uint64 `json:"chains,omitempty"`
	// Guests are the guests the rules were compiled for (name, addresses and port): status
	// compiles the state over them to compare the kernel's rules with, also after a guest
	// left, whose rules stay in force until the next change.
	Guests []Guest `json:"guests,omitempty"`
	// CounterSets are the counter sets the table holds (stats.go), so that a change
	// reads only those that can hold counters it ends.
	CounterSets []string `json:"counter_sets,omitempty"`
	// Shaping is the traffic control that was set up.
	Shaping []Shaping `json:"shaping,omitempty"`
	// Counters, when set (pontoon partition status sets it from Stats; not
	// persisted), is what the partition and the impairments did, per pair and
	// per impairment, as the kernel counts it.
	Counters *Counters `json:"counters,omitempty"`
	// Kernel is filled by the Status function (not persisted): whether the
	// kernel holds what was applied. Status reports Blocked, Mode and Cut as
	// the kernel has them.
	Kernel *KernelCheck `json:"kernel,omitempty"`
}

// KernelCheck is the result of comparing the kernel with the recorded state.
type KernelCheck struct {
	InEffect bool   `json:"in_effect"`
	Detail   string `json:"detail,omitempty"`
	// Unread says the kernel's tables could not be read at all (Detail says why): the
	// record's pairs are then what was last applied, not what the kernel holds.
	Unread bool `json:"unread,omitempty"`
}

// State returns what Apply would need to recreate this status.
func (st Record) State() State {
	p := Partition{Kind: st.Kind, Description: st.Description, Blocked: make([]Pair, len(st.Blocked)), Order: slices.Clone(st.Order)}
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
	st.Pending = slices.Clone(st.Pending)
	st.Guests = slices.Clone(st.Guests)
	return st
}

func fullmeshStatus() Record {
	return Record{Kind: "fullmesh", Description: "fullmesh", Mode: ModeDrop, Blocked: []BlockedPair{}, Impairments: []Impairment{}}
}

// recordFile is the on-disk form of a Record. Blocked pairs are grouped by
// Since, then by source guests that are blocked from the same destinations,
// and addresses are stored once per guest: random halves of 253 guests are
// 32,000 pairs but two rows.
type recordFile struct {
	Record
	Blocked []blockedGroup        `json:"blocked"`
	IPs     map[string]netip.Addr `json:"ips,omitempty"`
	IP6s    map[string]netip.Addr `json:"ip6s,omitempty"`
	// A record written before Pending existed holds at most one timed change, as the
	// deadline and the whole state to restore then (see legacyTimed).
	Expires time.Time `json:"expires,omitzero"`
	Restore *State    `json:"restore,omitempty"`
	// Before is Record.Before, in this form: a --for on 32,000 blocked pairs keeps two rows.
	Before *recordFile `json:"before,omitempty"`
}

type blockedGroup struct {
	Since time.Time  `json:"since"`
	Rows  []blockRow `json:"rows"`
}

// blockRow blocks every guest of Srcs from every guest of Dsts.
type blockRow struct {
	Srcs []string `json:"srcs"`
	Dsts []string `json:"dsts"`
}

func toFile(st Record) recordFile {
	f := recordFile{Record: st, IPs: map[string]netip.Addr{}, IP6s: map[string]netip.Addr{}}
	f.Record.Blocked = nil
	f.Record.Kernel = nil
	if st.Before != nil {
		b := toFile(*st.Before)
		f.Before, f.Record.Before = &b, nil
	}
	type srcKey struct {
		since time.Time
		src   string
	}
	dsts := map[srcKey][]string{}
	var keys []srcKey
	for _, b := range st.Blocked {
		k := srcKey{b.Since, b.Src}
		if _, ok := dsts[k]; !ok {
			keys = append(keys, k)
		}
		dsts[k] = append(dsts[k], b.Dst)
		f.IPs[b.Src], f.IPs[b.Dst] = b.SrcIP, b.DstIP
		if b.SrcIP6.IsValid() {
			f.IP6s[b.Src] = b.SrcIP6
		}
		if b.DstIP6.IsValid() {
			f.IP6s[b.Dst] = b.DstIP6
		}
	}
	group := map[time.Time]int{}
	row := map[string]int{} // since + destinations -> row index in its group
	for _, k := range keys {
		gi, ok := group[k.since]
		if !ok {
			gi = len(f.Blocked)
			group[k.since] = gi
			f.Blocked = append(f.Blocked, blockedGroup{Since: k.since})
		}
		id := k.since.String() + "\x00" + strings.Join(dsts[k], "\x00")
		ri, ok := row[id]
		if !ok {
			ri = len(f.Blocked[gi].Rows)
			row[id] = ri
			f.Blocked[gi].Rows = append(f.Blocked[gi].Rows, blockRow{Dsts: dsts[k]})
		}
		f.Blocked[gi].Rows[ri].Srcs = append(f.Blocked[gi].Rows[ri].Srcs, k.src)
	}
	return f
}

func fromFile(f recordFile) Record {
	st := f.Record
	st.Blocked = []BlockedPair{}
	for _, g := range f.Blocked {
		for _, r := range g.Rows {
			for _, src := range r.Srcs {
				for _, dst := range r.Dsts {
					st.Blocked = append(st.Blocked, BlockedPair{Src: src, Dst: dst, SrcIP: f.IPs[src], DstIP: f.IPs[dst],
						SrcIP6: f.IP6s[src], DstIP6: f.IP6s[dst], Since: g.Since})
				}
			}
		}
	}
	slices.SortFunc(st.Blocked, func(a, b BlockedPair) int { return comparePairs(Pair{a.Src, a.Dst}, Pair{b.Src, b.Dst}) })
	if st.Impairments == nil {
		st.Impairments = []Impairment{}
	}
	if f.Before != nil {
		b := fromFile(*f.Before)
		st.Before = &b
	}
	if f.Restore != nil && len(st.Pending) == 0 && !f.Expires.IsZero() {
		st.Pending = []Timed{legacyTimed(st.change(), f.Expires, *f.Restore, st.State())}
	}
	return st
}

// lastWritten remembers the record this process wrote or read last, so that
// a process applying again and again (a nemesis loop) need not parse its own
// output, nor a command the record it read a moment before (the check for an
// expired --for, then the change under the lock): when the file still holds
// exactly those bytes, the parsed record is reused.
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
	b, err := statefile.ReadFile(path)
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
	f, ok := decodeRecordFile(b)
	if !ok {
		if err := json.Unmarshal(b, &f); err != nil {
			return Record{}, false, fmt.Errorf("parse partition state %s: %w", path, err)
		}
	}
	rec = fromFile(f)
	lastWritten.Lock()
	lastWritten.path, lastWritten.data, lastWritten.rec = path, b, rec
	lastWritten.Unlock()
	return rec, true, nil
}

// writeStatus replaces the record atomically (write to a temporary file, then
// rename), so a reader never sees half of it.
func writeStatus(dir string, st Record) error {
	st.Kernel = nil
	f := toFile(st)
	b, ok := appendRecordFile(nil, &f)
	if !ok {
		var err error
		if b, err = json.Marshal(f); err != nil {
			return fmt.Errorf("encode partition state: %w", err)
		}
	}
	path := filepath.Join(dir, StateFile)
	if err := statefile.Write(path, b, 0o600); err != nil {
		return fmt.Errorf("write partition state: %w", err)
	}
	lastWritten.Lock()
	lastWritten.path, lastWritten.data, lastWritten.rec = path, b, st
	lastWritten.Unlock()
	return nil
}

// lockState serialises Apply and Heal on one bridge across processes.
func lockState(dir string) (func(), error) {
	return lockStateContext(context.Background(), dir)
}

// lockStateContext is lockState, given up with ctx's error when ctx is done first.
func lockStateContext(ctx context.Context, dir string) (func(), error) {
	return statefile.LockContext(ctx, filepath.Join(dir, LockFile))
}

// change is the generation of the change in force; records written before Change existed
// had one commit per change.
func (r Record) change() uint64 {
	if r.Change != 0 {
		return r.Change
	}
	return r.Generation
}

// newStatus records r as applied at now, keeping the Since of every blocked
// pair and impairment that prev already had.
func newStatus(r *resolved, plan Plan, prev Record, now time.Time) Record {
	st := Record{
		Kind: r.kind, Description: r.desc, Order: r.order, Mode: r.mode, Cut: r.cut,
		Blocked: make([]BlockedPair, 0, len(r.blocked)), Impairments: make([]Impairment, 0, len(r.imps)),
		AppliedAt: now, Generation: prev.Generation + 1,
		Table: !plan.RuleSet.Empty(), Marker: plan.RuleSet.Marker, Chains: plan.RuleSet.chainSums(), Shaping: plan.Shaping,
	}
	if st.Kind == "" {
		st.Kind = "custom"
	}
	if st.Table || len(r.imps) > 0 {
		st.Guests = slices.Clone(r.gs.list)
	}
	// Both lists are sorted by pair (normPairs, fromFile): one merge walk finds
	// the pairs that stay blocked, without hashing tens of thousands of them.
	ip := make(map[string]netip.Addr, len(r.gs.list))
	ip6 := make(map[string]netip.Addr, len(r.gs.list))
	for _, g := range r.gs.list {
		ip[g.Name], ip6[g.Name] = g.IP, g.IP6
	}
	j := 0
	for _, p := range r.blocked {
		b := BlockedPair{Src: p.Src, Dst: p.Dst, SrcIP: ip[p.Src], DstIP: ip[p.Dst], SrcIP6: ip6[p.Src], DstIP6: ip6[p.Dst], Since: now}
		for j < len(prev.Blocked) && comparePairs(Pair{prev.Blocked[j].Src, prev.Blocked[j].Dst}, p) < 0 {
			j++
		}
		if j < len(prev.Blocked) && prev.Blocked[j].Src == p.Src && prev.Blocked[j].Dst == p.Dst {
			b.Since = prev.Blocked[j].Since
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
