// Package jsontok reads and writes JSON documents of a known shape without reflection.
//
// encoding/json prepares every type it meets by reflection on its first use in a process,
// and most pontoon commands are new processes that read a state file or two: that setup
// cost more than the rest of the decoding. Reader walks encoding/json's tokens instead, and
// Writer appends what json.Marshal would write for the plain values it knows. A caller
// keeps encoding/json for whatever its fast path does not cover: Reader fails on the first
// token it was not asked for, and the caller falls back.
package jsontok

import (
	"bytes"
	"encoding/json"
	"io"
	"net/netip"
	"slices"
	"strconv"
	"time"
)

// Reader reads the tokens of a document; the first token of another kind than asked fails
// it, and every later call does nothing.
type Reader struct {
	d      *json.Decoder
	failed bool
}

// NewReader reads data.
func NewReader(data []byte) *Reader {
	d := json.NewDecoder(bytes.NewReader(data))
	d.UseNumber()
	return &Reader{d: d}
}

// Fail marks the document as not understood.
func (r *Reader) Fail() { r.failed = true }

// Done reports whether the whole document was read as asked, with nothing after it.
func (r *Reader) Done() bool {
	if r.failed {
		return false
	}
	_, err := r.d.Token()
	return err == io.EOF
}

// next returns the next token; nil for null, and for anything once failed.
func (r *Reader) next() json.Token {
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

func (r *Reader) delim(want json.Delim) bool {
	if d, ok := r.next().(json.Delim); !ok || d != want {
		r.failed = true
		return false
	}
	return true
}

// Object reads an object, calling each for every key; each reads the value.
func (r *Reader) Object(each func(key string)) {
	if !r.delim('{') {
		return
	}
	for !r.failed && r.d.More() {
		k, ok := r.next().(string)
		if !ok {
			r.failed = true
			return
		}
		each(k)
	}
	r.delim('}')
}

// Array reads an array, calling each for every element (each reads it), or a null, and
// reports whether it was null.
func (r *Reader) Array(each func()) (null bool) {
	switch t := r.next().(type) {
	case nil:
		return !r.failed
	case json.Delim:
		if t != '[' {
			r.failed = true
			return false
		}
	default:
		r.failed = true
		return false
	}
	for !r.failed && r.d.More() {
		each()
	}
	r.delim(']')
	return false
}

// Str reads a string.
func (r *Reader) Str() string {
	s, ok := r.next().(string)
	if !ok {
		r.failed = true
	}
	return s
}

// Slice reads an array whose elements each reads; null is nil, and [] an empty slice, as
// encoding/json has them.
func Slice[T any](r *Reader, each func() T) []T {
	out := []T{}
	if r.Array(func() { out = append(out, each()) }) {
		return nil
	}
	return out
}

// Strs reads an array of strings (see Slice).
func (r *Reader) Strs() []string { return Slice(r, r.Str) }

// Bool reads true or false.
func (r *Reader) Bool() bool {
	v, ok := r.next().(bool)
	if !ok {
		r.failed = true
	}
	return v
}

func (r *Reader) number() string {
	n, ok := r.next().(json.Number)
	if !ok {
		r.failed = true
	}
	return string(n)
}

// Uint reads an unsigned integer.
func (r *Reader) Uint() uint64 {
	v, err := strconv.ParseUint(r.number(), 10, 64)
	if err != nil {
		r.failed = true
	}
	return v
}

// Int reads an integer.
func (r *Reader) Int() int64 {
	v, err := strconv.ParseInt(r.number(), 10, 64)
	if err != nil {
		r.failed = true
	}
	return v
}

// Time reads a time as time.Time's MarshalJSON writes it.
func (r *Reader) Time() time.Time {
	var t time.Time
	if err := t.UnmarshalText([]byte(r.Str())); err != nil {
		r.failed = true
	}
	return t
}

// Addr reads an address as netip.Addr's MarshalText writes it ("" is the zero Addr).
func (r *Reader) Addr() netip.Addr {
	var a netip.Addr
	if err := a.UnmarshalText([]byte(r.Str())); err != nil {
		r.failed = true
	}
	return a
}

// Writer appends JSON; a member's key goes after a comma unless it opens its object. Bad is
// set by a value json.Marshal refuses (a time outside years 0-9999): the caller then leaves
// the whole value to json.Marshal, which reports it.
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
	w.Key(k)
	w.B = append(w.B, '"')
	w.B = t.AppendFormat(w.B, time.RFC3339Nano)
	w.B = append(w.B, '"')
}

// Addr writes an address as netip.Addr's MarshalText does, quoted.
func (w *Writer) Addr(a netip.Addr) {
	if a.Zone() != "" {
		w.Quote(a.String()) // a zone is any text
		return
	}
	w.B = append(w.B, '"')
	w.B = a.AppendTo(w.B)
	w.B = append(w.B, '"')
}

// Quote appends s as a JSON string. Printable ASCII that encoding/json leaves as it is (it
// escapes <, > and & for HTML) is copied; anything else is left to encoding/json.
func (w *Writer) Quote(s string) {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c > 0x7e || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			q, _ := json.Marshal(s) // a string always encodes
			w.B = append(w.B, q...)
			return
		}
	}
	w.B = append(w.B, '"')
	w.B = append(w.B, s...)
	w.B = append(w.B, '"')
}
