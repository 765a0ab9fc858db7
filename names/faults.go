package names

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/pontoon-dev/pontoon/eventlog"
	"github.com/pontoon-dev/pontoon/internal/statefile"
	"github.com/pontoon-dev/pontoon/netsetup"
	"github.com/pontoon-dev/pontoon/partition"
)

// EventDNS is the kind of the bridge's event-log entries for DNS faults added, removed,
// cleared and expired.
const EventDNS = "dns"

// Kind is what a DNS fault does to the queries it matches.
type Kind string

// The kinds of DNS fault.
const (
	NXDomain Kind = "nxdomain" // the name does not exist
	ServFail Kind = "servfail" // the server failed
	Wrong    Kind = "wrong"    // an A record with Fault.Addr instead of the true address
	Delay    Kind = "delay"    // the true answer, after Fault.Delay
	Drop     Kind = "drop"     // no answer at all: the resolver times out
)

// Kinds lists the kinds of DNS fault.
var Kinds = []Kind{NXDomain, ServFail, Wrong, Delay, Drop}

// Fault changes the answers of a bridge's name server to some queries.
type Fault struct {
	ID   int  `json:"id"`
	Kind Kind `json:"kind"`
	// Addr is the address a Wrong fault answers with.
	Addr netip.Addr `json:"addr,omitzero"`
	// Delay is how long a Delay fault holds the answer back.
	Delay time.Duration `json:"delay,omitempty"`
	// Names are the queried names the fault applies to (without the trailing dot, any case);
	// empty: every name, the bridge's guests' and the forwarded ones.
	Names []string `json:"names,omitempty"`
	// From are the guests (by name) whose queries the fault applies to; empty: every asker.
	From    []string  `json:"from,omitempty"`
	Since   time.Time `json:"since"`
	Expires time.Time `json:"expires,omitzero"` // zero: until removed
}

// String describes the fault in the words of `pontoon partition dns`.
func (f Fault) String() string {
	s := string(f.Kind)
	switch f.Kind {
	case Wrong:
		s += " " + f.Addr.String()
	case Delay:
		s += " " + f.Delay.String()
	}
	if len(f.Names) > 0 {
		s += " for " + strings.Join(f.Names, ",")
	} else {
		s += " for every name"
	}
	if len(f.From) > 0 {
		s += " asked by " + strings.Join(f.From, ",")
	}
	return s
}

// ParseFault reads a fault from the words of `pontoon partition dns`: KIND, then the
// address for wrong or the duration for delay. Names and askers are set by the caller.
func ParseFault(words []string) (Fault, error) {
	if len(words) == 0 {
		return Fault{}, fmt.Errorf("no DNS fault given; use one of %s", kindList())
	}
	f := Fault{Kind: Kind(strings.ToLower(words[0]))}
	want := 1
	switch f.Kind {
	case NXDomain, ServFail, Drop:
	case Wrong:
		want = 2
		if len(words) < 2 {
			return f, errors.New("wrong needs the address to answer with, e.g. `wrong 10.9.9.9`")
		}
		a, err := netip.ParseAddr(words[1])
		if err != nil || !a.Is4() {
			return f, fmt.Errorf("wrong %q: not an IPv4 address; give the address to answer with, e.g. 10.9.9.9", words[1])
		}
		f.Addr = a
	case Delay:
		want = 2
		if len(words) < 2 {
			return f, errors.New("delay needs a duration, e.g. `delay 2s`")
		}
		d, err := time.ParseDuration(words[1])
		if err != nil || d <= 0 {
			return f, fmt.Errorf("delay %q: not a positive duration; use e.g. 500ms or 2s", words[1])
		}
		f.Delay = d
	default:
		return f, fmt.Errorf("unknown DNS fault %q; use one of %s", words[0], kindList())
	}
	if len(words) > want {
		return f, fmt.Errorf("unexpected %q after %s; name the queried names with --name and the asking guests with --from", words[want], strings.Join(words[:want], " "))
	}
	return f, nil
}

func kindList() string {
	s := make([]string, len(Kinds))
	for i, k := range Kinds {
		s[i] = string(k)
	}
	return strings.Join(s, ", ")
}

// check validates a fault against the bridge: askers are turned into guest names.
func (f *Fault) check(b *netsetup.BridgeState) error {
	if _, err := ParseFault(f.words()); err != nil {
		return netsetup.Invalid(err)
	}
	for i, n := range f.Names {
		n = normalize(n)
		if !validQueryName(n) {
			return netsetup.Invalid(fmt.Errorf("name %q: not a DNS name; use labels of letters, digits, '-' and '_' separated by '.'", f.Names[i]))
		}
		f.Names[i] = n
	}
	for i, ref := range f.From {
		g := guestByRef(b, ref)
		if g == nil {
			return netsetup.Invalid(fmt.Errorf("from %q: bridge %q has no such guest; name an asking guest by name or address", ref, b.Name))
		}
		f.From[i] = g.Name
	}
	return nil
}

// Words gives the fault in the words of `pontoon partition dns`, e.g.
// "nxdomain --name db --from n2".
func (f Fault) Words() string {
	w := f.words()
	for _, n := range f.Names {
		w = append(w, "--name", n)
	}
	for _, g := range f.From {
		w = append(w, "--from", g)
	}
	return strings.Join(w, " ")
}

func (f Fault) words() []string {
	switch f.Kind {
	case Wrong:
		return []string{string(f.Kind), f.Addr.String()}
	case Delay:
		return []string{string(f.Kind), f.Delay.String()}
	}
	return []string{string(f.Kind)}
}

func validQueryName(n string) bool {
	if n == "" || len(n) > 253 {
		return false
	}
	for _, l := range strings.Split(n, ".") {
		if l == "" || len(l) > 63 {
			return false
		}
		for _, c := range l {
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
				return false
			}
		}
	}
	return true
}

// normalize is how names are compared: lower case, no trailing dot.
func normalize(n string) string { return strings.ToLower(strings.TrimSuffix(n, ".")) }

func guestByRef(b *netsetup.BridgeState, ref string) *netsetup.Guest {
	for i, g := range b.Guests {
		if g.Name == ref || g.IP.String() == ref {
			return &b.Guests[i]
		}
	}
	return nil
}

// faultSet is the file of a bridge's DNS faults.
type faultSet struct {
	NextID int     `json:"next_id"`
	Faults []Fault `json:"faults,omitempty"`
	// expired are the faults updateFaults dropped because their time was up, so that the
	// --for that set one can still tell what ended; updateFaults logs the end of those the
	// change leaves in it.
	expired []Fault
}

func faultFile(env netsetup.Env, bridge string) string {
	return filepath.Join(env.BridgeDataDir(bridge), "dns-faults.json")
}

// updateFaults changes a bridge's faults under the bridge data directory's lock (change nil:
// none, see endOnly); expired faults are dropped on the way. The event change returns, if any, is logged as done by
// source (partition.DefaultSource when empty) once the change is written, under the lock so
// that events are in the order of the changes. A log that cannot be written does not fail
// the change: the change is in force either way.
func updateFaults(env netsetup.Env, bridge, source string, change func(b *netsetup.BridgeState, fs *faultSet) (*eventlog.Event, error)) error {
	if err := checkBridge(bridge); err != nil {
		return err
	}
	b, err := netsetup.GetBridge(env, bridge)
	if err != nil {
		return err
	}
	dir := env.BridgeDataDir(bridge)
	lockPath := filepath.Join(dir, "dns-faults.lock")
	// A nil change only ends what is there (EndExpired): a bridge destroyed meanwhile must
	// not get its directory, lock or record back.
	endOnly := change == nil
	locked := statefile.Locked
	if endOnly {
		locked, change = statefile.LockedIfThere, func(*netsetup.BridgeState, *faultSet) (*eventlog.Event, error) { return nil, nil }
	} else if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("create data directory of bridge %q: %w", bridge, err)
	}
	return locked(lockPath, func() error {
		var fs faultSet
		if err := statefile.ReadJSON(faultFile(env, bridge), &fs); endOnly && errors.Is(err, os.ErrNotExist) {
			return nil
		} else if err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
		now := time.Now()
		fs.Faults = slices.DeleteFunc(fs.Faults, func(f Fault) bool {
			if f.expired(now) {
				fs.expired = append(fs.expired, f)
			}
			return f.expired(now)
		})
		e, err := change(b, &fs)
		if err != nil {
			return err
		}
		start := time.Now()
		if err := statefile.WriteJSON(faultFile(env, bridge), &fs); err != nil {
			return err
		}
		if source == "" {
			source = partition.DefaultSource()
		}
		// Faults whose time ran out with no one there to end them (their --for killed)
		// ended before this change: logged first, once, by whoever drops them.
		for _, f := range fs.expired {
			_ = eventlog.Append(dir, eventlog.Event{Kind: EventDNS, Source: source, What: "expire dns " + f.Words(),
				Fields: map[string]string{"id": strconv.Itoa(f.ID), "expires": f.Expires.UTC().Format(time.RFC3339Nano)}})
		}
		if e != nil {
			e.Kind, e.Source, e.CommitUS = EventDNS, source, time.Since(start).Microseconds()
			_ = eventlog.Append(dir, *e)
		}
		return nil
	})
}

// EndExpired drops the bridge's faults whose time ran out and logs their end: the bridge's
// name server does when a fault's deadline passes, so that one whose --for was killed still
// ends in the log on time.
func EndExpired(env netsetup.Env, bridge, source string) error {
	return updateFaults(env, bridge, source, nil)
}

func (f Fault) expired(now time.Time) bool { return !f.Expires.IsZero() && !now.Before(f.Expires) }

// AddFault puts a DNS fault in force on a bridge's name server, on top of those already
// there (the newest matching fault decides), and returns it with its ID. The server sees
// it at its next query. Bad input changes nothing. The bridge's event log names source
// (partition.Source*; empty: partition.DefaultSource) as the asker.
func AddFault(env netsetup.Env, bridge string, f Fault, source string) (Fault, error) {
	f.Names = slices.Clone(f.Names)
	f.From = slices.Clone(f.From)
	// A fault the bridge refuses is refused before its data directory and lock are made: a
	// refused command leaves nothing behind. (It is checked again under the lock.)
	if b, err := netsetup.GetBridge(env, bridge); err == nil && b != nil {
		if err := f.check(b); err != nil {
			return f, fmt.Errorf("add DNS fault to bridge %q: %w", bridge, err)
		}
	}
	err := updateFaults(env, bridge, source, func(b *netsetup.BridgeState, fs *faultSet) (*eventlog.Event, error) {
		if err := f.check(b); err != nil {
			return nil, err
		}
		fs.NextID++
		f.ID = fs.NextID
		if f.Since.IsZero() {
			f.Since = time.Now().UTC()
		}
		fs.Faults = append(fs.Faults, f)
		e := &eventlog.Event{What: "dns " + f.Words(), Fields: map[string]string{"id": strconv.Itoa(f.ID)}}
		if !f.Expires.IsZero() {
			e.Fields["expires"] = f.Expires.UTC().Format(time.RFC3339Nano)
		}
		return e, nil
	})
	if err != nil {
		return f, fmt.Errorf("add DNS fault to bridge %q: %w", bridge, err)
	}
	return f, nil
}

// RemoveFault removes one fault by ID; removing one that is gone succeeds (and logs nothing).
func RemoveFault(env netsetup.Env, bridge string, id int, source string) error {
	if err := removeFault(env, bridge, id, source, false); err != nil {
		return fmt.Errorf("remove DNS fault %d of bridge %q: %w", id, bridge, err)
	}
	return nil
}

// ExpireFault is RemoveFault for a fault whose duration passed: the event log says it
// expired. It logs the fault even when its Expires already dropped it.
func ExpireFault(env netsetup.Env, bridge string, id int, source string) error {
	if err := removeFault(env, bridge, id, source, true); err != nil {
		return fmt.Errorf("end expired DNS fault %d of bridge %q: %w", id, bridge, err)
	}
	return nil
}

func removeFault(env netsetup.Env, bridge string, id int, source string, expire bool) error {
	return updateFaults(env, bridge, source, func(_ *netsetup.BridgeState, fs *faultSet) (*eventlog.Event, error) {
		is := func(f Fault) bool { return f.ID == id }
		i := slices.IndexFunc(fs.Faults, is)
		var gone Fault
		switch {
		case i >= 0:
			gone = fs.Faults[i]
			fs.Faults = slices.Delete(fs.Faults, i, i+1)
		case expire && slices.ContainsFunc(fs.expired, is):
			// Its end is this change's event, not one of updateFaults' own.
			j := slices.IndexFunc(fs.expired, is)
			gone = fs.expired[j]
			fs.expired = slices.Delete(fs.expired, j, j+1)
		default:
			return nil, nil
		}
		what := "dns remove " + gone.Words()
		if expire {
			what = "expire dns " + gone.Words()
		}
		return &eventlog.Event{What: what, Fields: map[string]string{"id": strconv.Itoa(id)}}, nil
	})
}

// ClearFaults removes every DNS fault of a bridge; the event log hears of it only when there
// were faults to remove.
func ClearFaults(env netsetup.Env, bridge, source string) error {
	if _, err := os.Stat(faultFile(env, bridge)); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	err := updateFaults(env, bridge, source, func(_ *netsetup.BridgeState, fs *faultSet) (*eventlog.Event, error) {
		if len(fs.Faults) == 0 {
			return nil, nil
		}
		removed := make([]string, len(fs.Faults))
		for i, f := range fs.Faults {
			removed[i] = f.Words()
		}
		fs.Faults = nil
		return &eventlog.Event{What: "dns clear", Fields: map[string]string{"removed": strings.Join(removed, "; ")}}, nil
	})
	if err != nil {
		return fmt.Errorf("remove DNS faults of bridge %q: %w", bridge, err)
	}
	return nil
}

// Faults lists the DNS faults in force on a bridge, oldest first.
func Faults(env netsetup.Env, bridge string) ([]Fault, error) {
	if err := checkBridge(bridge); err != nil {
		return nil, err
	}
	var fs faultSet
	if err := statefile.ReadJSON(faultFile(env, bridge), &fs); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, nil
		}
		return nil, err
	}
	now := time.Now()
	return slices.DeleteFunc(fs.Faults, func(f Fault) bool { return f.expired(now) }), nil
}

// match returns the newest fault in force for a query of name from guest, or nil.
func match(faults []Fault, name, from string, now time.Time) *Fault {
	for i := len(faults) - 1; i >= 0; i-- {
		f := &faults[i]
		if f.expired(now) {
			continue
		}
		if len(f.Names) > 0 && !slices.Contains(f.Names, name) {
			continue
		}
		if len(f.From) > 0 && !slices.Contains(f.From, from) {
			continue
		}
		return f
	}
	return nil
}
