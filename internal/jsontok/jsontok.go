// Package jsontok reads and writes JSON documents of a known shape without reflection.
//
// encoding/json prepares every type it meets by reflection on its first use in a process,
// and most pontoon commands are new processes that read a state file or two: that setup
// cost more than the rest of the decoding. Reader reads the bytes of a document as the
// caller asks for them, and Writer appends what json.Marshal would write for the plain
// values it knows. A caller keeps encoding/json for whatever its fast path does not cover:
// Reader fails on the first value it was not asked for, or that it does not read exactly as
// encoding/json would, and the caller falls back.
package jsontok

import (
	"encoding/json"
	"net/netip"
	"slices"
	"strconv"
	"time"
	"unicode/utf8"
)

// Writer appends JSON; a member's key goes after a comma unless it opens its object. Bad is
// set by a value json.Marshal refuses (a time outside years 0-9999, or with a zone offset of
// a day or more): the caller then leaves the whole value to json.Marshal, which reports it.
type Writer struct {
	B   []byte
	Bad bool
}

// Key starts a member of the object being written.
func (w *Writer) Key(k string) {
	if len(w.B) > 0 && w.B[len(w.B)-1] != '{' {
		w.B = append(w.B, ',')
	}
	w.Quote(k)
	w.B = append(w.B, ':')
}

// item separates the elements of an array: i is the index.
func (w *Writer) item(i int) {
	if i > 0 {
		w.B = append(w.B, ',')
	}
}

// Raw appends s as it is (a delimiter, null, a literal).
func (w *Writer) Raw(s string) { w.B = append(w.B, s...) }

// Str writes a string member.
func (w *Writer) Str(k, v string) {
	w.Key(k)
	w.Quote(v)
}

// Strs writes a string slice member; nil is null, as encoding/json has it.
func (w *Writer) Strs(k string, v []string) {
	w.Key(k)
	w.List(v == nil, len(v), func(i int) { w.Quote(v[i]) })
}

// List writes null (for a nil slice, as encoding/json has it), or an array of n elements,
// each written by each(i).
func (w *Writer) List(null bool, n int, each func(i int)) {
	if null {
		w.Raw("null")
		return
	}
	w.B = append(w.B, '[')
	for i := range n {
		w.item(i)
		each(i)
	}
	w.B = append(w.B, ']')
}

// Object writes member k: an object whose members each writes, one per key, in the order
// of keys (see SortedKeys for a map's).
func (w *Writer) Object(k string, keys []string, each func(key string)) {
	w.Key(k)
	w.Raw("{")
	for _, key := range keys {
		each(key)
	}
	w.Raw("}")
}

// SortedKeys returns m's keys in the order encoding/json writes a map's members.
func SortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// Bool writes a boolean member.
func (w *Writer) Bool(k string, v bool) {
	w.Key(k)
	w.B = strconv.AppendBool(w.B, v)
}

// Int writes an integer member.
func (w *Writer) Int(k string, v int64) {
	w.Key(k)
	w.B = strconv.AppendInt(w.B, v, 10)
}

// Uint writes an unsigned integer member.
func (w *Writer) Uint(k string, v uint64) {
	w.Key(k)
	w.B = strconv.AppendUint(w.B, v, 10)
}

// Time writes a time member as time.Time's MarshalJSON does.
func (w *Writer) Time(k string, t time.Time) {
	if y := t.Year(); y < 0 || y > 9999 {
		w.Bad = true
	}
	if _, off := t.Zone(); off <= -24*3600 || off >= 24*3600 {
		w.Bad = true // MarshalJSON's "timezone hour outside of range"
	}
	w.Key(k)
	w.B = append(w.B, '"')
	w.B = t.AppendFormat(w.B, time.RFC3339Nano)
	w.B = append(w.B, '"')
}

// Addr writes an address as netip.Addr's MarshalText does, quoted.
func (w *Writer) Addr(a netip.Addr) { w.B = AppendAddr(w.B, a) }

// Prefix writes a prefix as netip.Prefix's MarshalText does, quoted (a prefix holds no
// zone, whose text would need escaping).
func (w *Writer) Prefix(p netip.Prefix) {
	w.B = append(w.B, '"')
	w.B = p.AppendTo(w.B)
	w.B = append(w.B, '"')
}

// Quote appends s as a JSON string (see AppendQuote).
func (w *Writer) Quote(s string) { w.B = AppendQuote(w.B, s) }

// AppendAddr appends a as netip.Addr's MarshalText writes it, quoted ("" for the zero Addr).
func AppendAddr(b []byte, a netip.Addr) []byte {
	if a.Zone() != "" {
		return AppendQuote(b, a.String()) // a zone is any text
	}
	b = append(b, '"')
	b = a.AppendTo(b)
	return append(b, '"')
}

// AppendQuote appends s as encoding/json quotes it. Printable ASCII that encoding/json
// leaves as it is (it escapes <, > and & for HTML) is copied; anything else is left to
// encoding/json.
func AppendQuote(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if !unescaped[s[i]] {
			q, _ := json.Marshal(s) // a string always encodes
			return append(b, q...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}

// unescaped marks the bytes encoding/json writes as they are: one table lookup a byte, where
// a bridge record of 200 guests holds some 30,000 bytes of names and paths.
var unescaped = func() (t [256]bool) {
	for c := 0x20; c < utf8.RuneSelf; c++ {
		t[c] = c != '"' && c != '\\' && c != '<' && c != '>' && c != '&'
	}
	return t
}()
