package partition

import (
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/pontoon-dev/pontoon/eventlog"
)

// Who asks for a change, as the bridge's event log names it (Target.Source).
const (
	SourceCLI      = "cli"
	SourceChild    = "child" // a pontoon command run inside a bridge child
	SourceTestenv  = "testenv"
	SourceRestorer = "restorer" // the process --for leaves behind to restore on time
	SourceSchedule = "schedule"
	SourceHook     = "hook"
	SourceLibrary  = "library"
	SourceGC       = "gc" // pontoon gc, putting a table that differs from the record right
)

// Kinds of event partition logs.
const (
	EventApply   = "apply"   // the partition, its mode or cut changed
	EventImpair  = "impair"  // only impairments changed
	EventHeal    = "heal"    // everything removed
	EventRestore = "restore" // a --for's replaced state put back before its deadline (Ctrl-C, a context ended)
	EventExpire  = "expire"  // a --for's replaced state put back because its duration passed
	EventRefresh = "refresh" // the state applied again: for a guest that (re)attached, or by gc where the kernel's table differed
)

// ProcessSource, when set, is the Source of a Target that names none: a program names itself
// for the changes other packages make on its behalf (the command line's guest add, which
// applies the partition again for a guest that comes back).
var ProcessSource string

// DefaultSource is the Source of a Target that names none: ProcessSource when set, else
// SourceChild inside a bridge child (PONTOON_BRIDGE is set there), SourceLibrary otherwise.
func DefaultSource() string {
	if ProcessSource != "" {
		return ProcessSource
	}
	if os.Getenv("PONTOON_BRIDGE") != "" {
		return SourceChild
	}
	return SourceLibrary
}

// logChange records a change that reached the kernel (err says if it then failed) in the
// bridge's event log. It runs under the bridge's lock, so events are in generation order. A
// log that cannot be written does not fail the change: the change is in force either way, and
// reporting it as failed would be false.
// countersErr says why the counters of what the change ended could not be cleared.
func (t Target) logChange(kind string, prev, st Record, o applyOpts, err, countersErr error) {
	_ = eventlog.Append(t.StateDir, t.changeEvent(kind, prev, st, o, err, countersErr))
}

// logSettled logs a change whose command was killed after its commit, before it logged it,
// once the command that finds it in force (settleAhead, whose Source the event carries) has
// written it as made: in the record's words, with its deadline.
func (t Target) logSettled(before, st Record) {
	var o applyOpts
	for _, tc := range st.Pending {
		if tc.Change == st.Change {
			o.restorePrev, o.expires, o.lasts = true, tc.Expires, tc.Expires.Sub(st.AppliedAt).Round(time.Millisecond)
		}
	}
	// A --for's own words are kept with its deadline; other changes' are not.
	t.What = ""
	if i := slices.IndexFunc(st.Pending, func(tc Timed) bool { return tc.Change == st.Change }); i >= 0 {
		t.What = st.Pending[i].What
	}
	e := t.changeEvent("", before, st, o, nil, nil)
	e.Fields["settled"] = "its command stopped after the kernel got it, before it logged it"
	_ = eventlog.Append(t.StateDir, e)
}

func (t Target) changeEvent(kind string, prev, st Record, o applyOpts, err, countersErr error) eventlog.Event {
	if kind == "" {
		kind = changeKind(prev, st)
	}
	e := eventlog.Event{Kind: kind, Source: t.Source, What: t.What, CommitUS: st.CommitMicros,
		Fields: map[string]string{}}
	if e.Source == "" {
		e.Source = DefaultSource()
	}
	if e.What == "" || kind == EventRestore || kind == EventExpire || kind == EventRefresh {
		e.What = describeChange(kind, prev, st)
	}
	if err != nil {
		e.Error = err.Error()
	} else {
		e.Time = st.AppliedAt
		e.Fields["generation"] = strconv.FormatUint(st.Generation, 10)
		e.Fields["blocked"] = strconv.Itoa(len(st.Blocked))
		e.Fields["impairments"] = strconv.Itoa(len(st.Impairments))
		if st.Kind != "" {
			e.Fields["partition"] = st.Kind
		}
		if o.restorePrev {
			e.Fields["for"] = o.lasts.String()
			e.Fields["expires"] = o.expires.UTC().Format(time.RFC3339Nano)
		}
		// What a restore or an expiry put in force is the event's words; which --fors ended
		// (by the generation of their change) is this field, as one ending under another
		// puts nothing in force yet.
		var ended []string
		for _, tc := range prev.Pending {
			if !slices.ContainsFunc(st.Pending, func(x Timed) bool { return x.Change == tc.Change }) {
				ended = append(ended, strconv.FormatUint(tc.Change, 10))
			}
		}
		if len(ended) > 0 {
			e.Fields["ended"] = strings.Join(ended, ",")
		}
		if st.Cut {
			e.Fields["closed_connections"] = strconv.Itoa(st.ClosedConnections)
		}
		if st.CutError != "" {
			e.Fields["cut_error"] = st.CutError
		}
		if countersErr != nil {
			e.Fields["counters_error"] = countersErr.Error()
		}
	}
	return e
}

// changeKind tells a change of the partition from one of impairments alone.
func changeKind(prev, st Record) string {
	if prev.Kind == st.Kind && prev.Description == st.Description && prev.Mode == st.Mode && prev.Cut == st.Cut &&
		samePairs(prev.Blocked, st.Blocked) && !slices.Equal(impStrings(prev.Impairments), impStrings(st.Impairments)) {
		return EventImpair
	}
	return EventApply
}

// describeChange says in CLI words what a change did, for events whose asker gave no words.
func describeChange(kind string, prev, st Record) string {
	switch kind {
	case EventHeal:
		return "heal"
	case EventImpair:
		return describeImpairments(prev.Impairments, st.Impairments)
	}
	w := []string{describePartition(st)}
	switch kind {
	case EventRestore, EventExpire:
		// What ended, in its asker's words where they were given, and what is back.
		head := kind
		var ended []string
		for _, tc := range prev.Pending {
			if tc.What != "" && !slices.ContainsFunc(st.Pending, func(x Timed) bool { return x.Change == tc.Change }) {
				ended = append(ended, tc.What)
			}
		}
		if len(ended) > 0 {
			head += " " + strings.Join(ended, ", ")
		}
		w = append([]string{head + ": back to"}, w...)
	case EventRefresh:
		w = append([]string{kind}, w...)
	}
	if kind == EventRestore || kind == EventExpire || kind == EventRefresh {
		if len(st.Impairments) > 0 {
			w = append(w, "with", strings.Join(impStrings(st.Impairments), ", "))
		}
	}
	return strings.Join(w, " ")
}

func describePartition(st Record) string {
	d := st.Description
	if d == "" {
		d = st.Kind
	}
	if len(st.Blocked) > 0 && st.Mode == ModeReject {
		d += " --mode reject"
	}
	if len(st.Blocked) > 0 && st.Cut {
		d += " --cut"
	}
	return d
}

// describeImpairments lists the impairments that are new or changed, and those removed.
func describeImpairments(prev, now []Impairment) string {
	before := map[string]string{}
	for _, im := range prev {
		before[im.Target()] = im.String()
	}
	var w []string
	for _, im := range now {
		s := im.String()
		if before[im.Target()] != s {
			w = append(w, s)
		}
		delete(before, im.Target())
	}
	for _, im := range prev {
		if _, gone := before[im.Target()]; gone {
			w = append(w, "no impairment of "+im.Target())
		}
	}
	return strings.Join(w, "; ")
}

func impStrings(ims []Impairment) []string {
	out := make([]string, len(ims))
	for i, im := range ims {
		out[i] = im.String()
	}
	return out
}
