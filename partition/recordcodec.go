package partition

import (
	"net/netip"

	"github.com/pontoon-dev/pontoon/internal/jsontok"
)

// Every partition command reads the bridge's record and writes it back, and encoding/json's
// preparation of the record's types on their first use in a process was ~0.3 ms of a change
// of ~3 ms (see jsontok). The common records (no impairment, no shaping, no --for
// pending) are read and written here; any other record, and any file this code does not
// recognise, goes through encoding/json. The bytes are encoding/json's
// (TestRecordCodecMatchesJSON), so either side reads what the other wrote.

// appendRecordFile appends f as json.Marshal would write it, and reports false (appending
// nothing) for a record outside the common form.
func appendRecordFile(b []byte, f *recordFile) ([]byte, bool) {
	r := &f.Record
	if f.Before != nil || len(r.Impairments) > 0 || len(r.Shaping) > 0 || len(r.Pending) > 0 || r.Counters != nil || r.Kernel != nil {
		return b, false
	}
	w := jsontok.Writer{B: append(b, '{')}
	w.Str("kind", r.Kind)
	w.Str("description", r.Description)
	if len(r.Order) > 0 {
		w.Strs("order", r.Order)
	}
	w.Str("mode", string(r.Mode))
	w.Bool("cut", r.Cut)
	w.Key("impairments")
	w.List(r.Impairments == nil, 0, nil) // only empty (see above)
	if !r.AppliedAt.IsZero() {
		w.Time("applied_at", r.AppliedAt)
	}
	if r.CommitMicros != 0 {
		w.Int("commit_us", r.CommitMicros)
	}
	w.Uint("generation", r.Generation)
	if r.Change != 0 {
		w.Uint("change", r.Change)
	}
	if r.ClosedConnections != 0 {
		w.Int("closed_connections", int64(r.ClosedConnections))
	}
	if r.CutError != "" {
		w.Str("cut_error", r.CutError)
	}
	if r.Backend != "" {
		w.Str("backend", string(r.Backend))
	}
	w.Bool("table", r.Table)
	if r.Marker != "" {
		w.Str("marker", r.Marker)
	}
	if len(r.Chains) > 0 {
		w.Object("chains", jsontok.SortedKeys(r.Chains), func(k string) { w.Uint(k, r.Chains[k]) })
	}
	if len(r.Guests) > 0 {
		w.Key("guests")
		w.List(false, len(r.Guests), func(i int) {
			g := r.Guests[i]
			w.Raw("{")
			w.Str("name", g.Name)
			w.Key("ip")
			w.Addr(g.IP)
			if g.IP6.IsValid() {
				w.Key("ip6")
				w.Addr(g.IP6)
			}
			w.Str("port", g.Port)
			if g.NetnsPath != "" {
				w.Str("netns_path", g.NetnsPath)
			}
			w.Raw("}")
		})
	}
	if len(r.CounterSets) > 0 {
		w.Strs("counter_sets", r.CounterSets)
	}
	w.Key("blocked")
	w.List(f.Blocked == nil, len(f.Blocked), func(i int) {
		g := f.Blocked[i]
		w.Raw("{")
		w.Time("since", g.Since)
		w.Key("rows")
		w.List(g.Rows == nil, len(g.Rows), func(j int) {
			w.Raw("{")
			w.Strs("srcs", g.Rows[j].Srcs)
			w.Strs("dsts", g.Rows[j].Dsts)
			w.Raw("}")
		})
		w.Raw("}")
	})
	for _, m := range []struct {
		key string
		ips map[string]netip.Addr
	}{{"ips", f.IPs}, {"ip6s", f.IP6s}} {
		if len(m.ips) > 0 { // omitempty
			w.Object(m.key, jsontok.SortedKeys(m.ips), func(name string) {
				w.Key(name)
				w.Addr(m.ips[name])
			})
		}
	}
	w.Raw("}")
	if w.Bad {
		return b, false
	}
	return w.B, true
}

// decodeRecordFile reads a record in the common form (see appendRecordFile) and reports
// false for anything else: then the caller decodes it with encoding/json, which also
// produces the error for a malformed file.
func decodeRecordFile(data []byte) (recordFile, bool) {
	var f recordFile
	rec := &f.Record
	r := jsontok.NewReader(data)
	r.Object(func(k string) {
		switch k {
		case "kind":
			rec.Kind = r.Str()
		case "description":
			rec.Description = r.Str()
		case "order":
			rec.Order = r.Strs()
		case "mode":
			rec.Mode = Mode(r.Str())
		case "cut":
			rec.Cut = r.Bool()
		case "impairments":
			// Only empty: a record with impairments is encoding/json's.
			rec.Impairments = jsontok.Slice(r, func() Impairment { r.Fail(); return Impairment{} })
		case "applied_at":
			rec.AppliedAt = r.Time()
		case "commit_us":
			rec.CommitMicros = r.Int()
		case "generation":
			rec.Generation = r.Uint()
		case "change":
			rec.Change = r.Uint()
		case "closed_connections":
			rec.ClosedConnections = int(r.Int())
		case "cut_error":
			rec.CutError = r.Str()
		case "backend":
			rec.Backend = Backend(r.Str())
		case "table":
			rec.Table = r.Bool()
		case "marker":
			rec.Marker = r.Str()
		case "chains":
			rec.Chains = map[string]uint64{}
			r.Object(func(name string) { rec.Chains[name] = r.Uint() })
		case "counter_sets":
			rec.CounterSets = r.Strs()
		case "guests":
			rec.Guests = jsontok.Slice(r, func() Guest { return readGuest(r) })
		case "blocked":
			f.Blocked = jsontok.Slice(r, func() blockedGroup { return readGroup(r) })
		case "ips":
			f.IPs = readAddrs(r)
		case "ip6s":
			f.IP6s = readAddrs(r)
		default:
			r.Fail() // impairments with members, shaping, pending --fors, a record of before them, or unknown
		}
	})
	if !r.Done() {
		return recordFile{}, false
	}
	return f, true
}

func readGroup(r *jsontok.Reader) blockedGroup {
	var g blockedGroup
	r.Object(func(k string) {
		switch k {
		case "since":
			g.Since = r.Time()
		case "rows":
			g.Rows = jsontok.Slice(r, func() blockRow { return readRow(r) })
		default:
			r.Fail()
		}
	})
	return g
}

func readRow(r *jsontok.Reader) blockRow {
	var row blockRow
	r.Object(func(k string) {
		switch k {
		case "srcs":
			row.Srcs = r.Strs()
		case "dsts":
			row.Dsts = r.Strs()
		default:
			r.Fail()
		}
	})
	return row
}

func readGuest(r *jsontok.Reader) Guest {
	var g Guest
	r.Object(func(k string) {
		switch k {
		case "name":
			g.Name = r.Str()
		case "ip":
			g.IP = r.Addr()
		case "ip6":
			g.IP6 = r.Addr()
		case "port":
			g.Port = r.Str()
		case "netns_path":
			g.NetnsPath = r.Str()
		default:
			r.Fail()
		}
	})
	return g
}

func readAddrs(r *jsontok.Reader) map[string]netip.Addr {
	m := map[string]netip.Addr{}
	r.Object(func(name string) { m[name] = r.Addr() })
	return m
}
