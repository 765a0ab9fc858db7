package partition

import (
	"bytes"
	"encoding/json"
	"net/netip"
	"slices"
	"strconv"
	"time"
)

// Every partition command reads the bridge's record and writes it back. encoding/json
// prepares each type of the record by reflection on its first use in a process, and a
// command is a new process: ~0.3 ms of a change of ~3 ms. The common records (no
// impairment, no shaping, no --for to restore) are read and written here without
// reflection; any other record, and any file this code does not recognise, goes through
// encoding/json. The bytes are encoding/json's (TestRecordCodecMatchesJSON), so either
// side reads what the other wrote.

// appendRecordFile appends f as json.Marshal would write it, and reports false (appending
// nothing) for a record outside the common form.
func appendRecordFile(b []byte, f *recordFile) ([]byte, bool) {
	r := &f.Record
	if len(r.Impairments) > 0 || len(r.Shaping) > 0 || r.Restore != nil || r.Counters != nil || r.Kernel != nil {
		return b, false
	}
	w := jsonWriter{b: b}
	w.b = append(w.b, '{')
	w.str("kind", r.Kind)
	w.str("description", r.Description)
	if len(r.Order) > 0 {
		w.strs("order", r.Order)
	}
	w.str("mode", string(r.Mode))
	w.key("cut")
	w.b = strconv.AppendBool(w.b, r.Cut)
	w.key("impairments")
	if r.Impairments == nil {
		w.b = append(w.b, "null"...)
	} else {
		w.b = append(w.b, "[]"...)
	}
	if !r.AppliedAt.IsZero() {
		w.time("applied_at", r.AppliedAt)
	}
	if r.CommitMicros != 0 {
		w.key("commit_us")
		w.b = strconv.AppendInt(w.b, r.CommitMicros, 10)
	}
	if !r.Expires.IsZero() {
		w.time("expires", r.Expires)
	}
	w.key("generation")
	w.b = strconv.AppendUint(w.b, r.Generation, 10)
	if r.Change != 0 {
		w.key("change")
		w.b = strconv.AppendUint(w.b, r.Change, 10)
	}
	if r.ClosedConnections != 0 {
		w.key("closed_connections")
		w.b = strconv.AppendInt(w.b, int64(r.ClosedConnections), 10)
	}
	if r.CutError != "" {
		w.str("cut_error", r.CutError)
	}
	if r.Backend != "" {
		w.str("backend", string(r.Backend))
	}
	w.key("table")
	w.b = strconv.AppendBool(w.b, r.Table)
	if r.Marker != "" {
		w.str("marker", r.Marker)
	}
	if len(r.Chains) > 0 {
		w.key("chains")
		w.b = append(w.b, '{')
		for i, k := range sortedKeys(r.Chains) {
			w.item(i)
			w.quote(k)
			w.b = append(w.b, ':')
			w.b = strconv.AppendUint(w.b, r.Chains[k], 10)
		}
		w.b = append(w.b, '}')
	}
	if len(r.CounterSets) > 0 {
		w.strs("counter_sets", r.CounterSets)
	}
	w.key("blocked")
	if f.Blocked == nil {
		w.b = append(w.b, "null"...)
	} else {
		w.b = append(w.b, '[')
		for i, g := range f.Blocked {
			w.item(i)
			w.b = append(w.b, '{')
			w.time("since", g.Since)
			w.key("rows")
			if g.Rows == nil {
				w.b = append(w.b, "null"...)
			} else {
				w.b = append(w.b, '[')
				for j, row := range g.Rows {
					w.item(j)
					w.b = append(w.b, '{')
					w.strs("srcs", row.Srcs)
					w.strs("dsts", row.Dsts)
					w.b = append(w.b, '}')
				}
				w.b = append(w.b, ']')
			}
			w.b = append(w.b, '}')
		}
		w.b = append(w.b, ']')
	}
	w.addrs("ips", f.IPs)
	w.addrs("ip6s", f.IP6s)
	w.b = append(w.b, '}')
	return w.b, true
}

// jsonWriter appends JSON; a member's key goes after a comma unless it opens its object.
type jsonWriter struct {
	b []byte
}

func (w *jsonWriter) key(k string) {
	if len(w.b) > 0 && w.b[len(w.b)-1] != '{' {
		w.b = append(w.b, ',')
	}
	w.quote(k)
	w.b = append(w.b, ':')
}

// item separates the elements of an array or the members of a map.
func (w *jsonWriter) item(i int) {
	if i > 0 {
		w.b = append(w.b, ',')
	}
}

func (w *jsonWriter) str(k, v string) {
	w.key(k)
	w.quote(v)
}

// strs writes a string slice; nil is null, as encoding/json has it.
func (w *jsonWriter) strs(k string, v []string) {
	w.key(k)
	if v == nil {
		w.b = append(w.b, "null"...)
		return
	}
	w.b = append(w.b, '[')
	for i, s := range v {
		w.item(i)
		w.quote(s)
	}
	w.b = append(w.b, ']')
}

func (w *jsonWriter) time(k string, t time.Time) {
	w.key(k)
	w.b = append(w.b, '"')
	w.b = t.AppendFormat(w.b, time.RFC3339Nano)
	w.b = append(w.b, '"')
}

// addrs writes a map of addresses, omitted when empty (the fields are omitempty).
func (w *jsonWriter) addrs(k string, m map[string]netip.Addr) {
	if len(m) == 0 {
		return
	}
	w.key(k)
	w.b = append(w.b, '{')
	for i, name := range sortedKeys(m) {
		w.item(i)
		w.quote(name)
		w.b = append(w.b, ':', '"')
		w.b = m[name].AppendTo(w.b)
		w.b = append(w.b, '"')
	}
	w.b = append(w.b, '}')
}

// quote appends s as a JSON string. Printable ASCII that encoding/json leaves as it is
// (it escapes <, > and & for HTML) is copied; anything else is left to encoding/json.
func (w *jsonWriter) quote(s string) {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c > 0x7e || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			q, _ := json.Marshal(s) // a string always encodes
			w.b = append(w.b, q...)
			return
		}
	}
	w.b = append(w.b, '"')
	w.b = append(w.b, s...)
	w.b = append(w.b, '"')
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// decodeRecordFile reads a record in the common form (see appendRecordFile) and reports
// false for anything else: then the caller decodes it with encoding/json, which also
// produces the error for a malformed file.
func decodeRecordFile(data []byte) (recordFile, bool) {
	var f recordFile
	r := jsonReader{d: json.NewDecoder(bytes.NewReader(data))}
	r.d.UseNumber()
	r.object(func(k string) {
		rec := &f.Record
		switch k {
		case "kind":
			rec.Kind = r.str()
		case "description":
			rec.Description = r.str()
		case "order":
			rec.Order = r.strs()
		case "mode":
			rec.Mode = Mode(r.str())
		case "cut":
			rec.Cut = r.boolean()
		case "impairments":
			// Only empty: a record with impairments is encoding/json's.
			rec.Impairments = []Impairment{}
			if r.array(r.fail) {
				rec.Impairments = nil
			}
		case "applied_at":
			rec.AppliedAt = r.time()
		case "commit_us":
			rec.CommitMicros = r.int()
		case "expires":
			rec.Expires = r.time()
		case "generation":
			rec.Generation = r.uint()
		case "change":
			rec.Change = r.uint()
		case "closed_connections":
			rec.ClosedConnections = int(r.int())
		case "cut_error":
			rec.CutError = r.str()
		case "backend":
			rec.Backend = Backend(r.str())
		case "table":
			rec.Table = r.boolean()
		case "marker":
			rec.Marker = r.str()
		case "chains":
			rec.Chains = map[string]uint64{}
			r.object(func(name string) { rec.Chains[name] = r.uint() })
		case "counter_sets":
			rec.CounterSets = r.strs()
		case "blocked":
			f.Blocked = []blockedGroup{}
			null := r.array(func() {
				var g blockedGroup
				r.object(func(k string) {
					switch k {
					case "since":
						g.Since = r.time()
					case "rows":
						g.Rows = []blockRow{}
						null := r.array(func() {
							var row blockRow
							r.object(func(k string) {
								switch k {
								case "srcs":
									row.Srcs = r.strs()
								case "dsts":
									row.Dsts = r.strs()
								default:
									r.fail()
								}
							})
							g.Rows = append(g.Rows, row)
						})
						if null {
							g.Rows = nil
						}
					default:
						r.fail()
					}
				})
				f.Blocked = append(f.Blocked, g)
			})
			if null {
				f.Blocked = nil
			}
		case "ips":
			f.IPs = r.addrs()
		case "ip6s":
			f.IP6s = r.addrs()
		default:
			r.fail() // impairments with members, shaping, restore, or unknown
		}
	})
	if _, err := r.d.Token(); err == nil || r.failed {
		return recordFile{}, false // trailing data, or something not understood
	}
	return f, true
}

// jsonReader reads the tokens of a document of a known shape; the first token of another
// kind fails it, and every later call does nothing.
type jsonReader struct {
	d      *json.Decoder
	failed bool
}

func (r *jsonReader) fail() { r.failed = true }

// next returns the next token; nil for null, and for anything once failed.
func (r *jsonReader) next() json.Token {
	if r.failed {
		return nil
	}
	t, err := r.d.Token()
	if err != nil {
		r.failed = true
		return nil
	}
	return t
}

func (r *jsonReader) delim(want json.Delim) bool {
	if d, ok := r.next().(json.Delim); !ok || d != want {
		r.fail()
		return false
	}
	return true
}

// object reads an object, calling each for every key; each reads the value.
func (r *jsonReader) object(each func(key string)) {
	if !r.delim('{') {
		return
	}
	r.members(each)
}

func (r *jsonReader) members(each func(key string)) {
	for !r.failed && r.d.More() {
		k, ok := r.next().(string)
		if !ok {
			r.fail()
			return
		}
		each(k)
	}
	r.delim('}')
}

// array reads an array, calling each for every element (each reads it), or a null, and
// reports whether it was null.
func (r *jsonReader) array(each func()) (null bool) {
	switch t := r.next().(type) {
	case nil:
		return !r.failed
	case json.Delim:
		if t != '[' {
			r.fail()
			return false
		}
	default:
		r.fail()
		return false
	}
	for !r.failed && r.d.More() {
		each()
	}
	r.delim(']')
	return false
}

func (r *jsonReader) str() string {
	s, ok := r.next().(string)
	if !ok {
		r.fail()
	}
	return s
}

// strs reads an array of strings; null is nil, as encoding/json has it.
func (r *jsonReader) strs() []string {
	out := []string{}
	if r.array(func() { out = append(out, r.str()) }) {
		return nil
	}
	return out
}

func (r *jsonReader) boolean() bool {
	v, ok := r.next().(bool)
	if !ok {
		r.fail()
	}
	return v
}

func (r *jsonReader) number() string {
	n, ok := r.next().(json.Number)
	if !ok {
		r.fail()
	}
	return string(n)
}

func (r *jsonReader) uint() uint64 {
	v, err := strconv.ParseUint(r.number(), 10, 64)
	if err != nil {
		r.fail()
	}
	return v
}

func (r *jsonReader) int() int64 {
	v, err := strconv.ParseInt(r.number(), 10, 64)
	if err != nil {
		r.fail()
	}
	return v
}

func (r *jsonReader) time() time.Time {
	var t time.Time
	if err := t.UnmarshalText([]byte(r.str())); err != nil {
		r.fail()
	}
	return t
}

func (r *jsonReader) addrs() map[string]netip.Addr {
	m := map[string]netip.Addr{}
	r.object(func(name string) {
		var a netip.Addr
		if err := a.UnmarshalText([]byte(r.str())); err != nil {
			r.fail()
		}
		m[name] = a
	})
	return m
}
