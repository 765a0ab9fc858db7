package jsontok

import (
	"bytes"
	"encoding/json"
	"net/netip"
	"strconv"
	"time"
	"unicode/utf8"
)

// Reader reads a document value by value, straight from its bytes: encoding/json's token
// reader took three times as long as its reflection on a record of 200 guests. The first
// value of another kind than asked, or one this reader does not take exactly as
// encoding/json would, fails the reader, and every later call does nothing.
type Reader struct {
	b      []byte
	i      int
	failed bool
}

// NewReader reads data.
func NewReader(data []byte) *Reader { return &Reader{b: data} }

// Fail marks the document as not understood.
func (r *Reader) Fail() { r.failed = true }

// Done reports whether the whole document was read as asked, with nothing after it.
func (r *Reader) Done() bool {
	r.space()
	return !r.failed && r.i == len(r.b)
}

func (r *Reader) space() {
	for r.i < len(r.b) {
		switch r.b[r.i] {
		case ' ', '\t', '\n', '\r':
			r.i++
		default:
			return
		}
	}
}

// peek returns the next byte after white space: 0 at the end, and once failed.
func (r *Reader) peek() byte {
	if r.failed {
		return 0
	}
	r.space()
	if r.i == len(r.b) {
		return 0
	}
	return r.b[r.i]
}

// expect reads the byte c, or fails.
func (r *Reader) expect(c byte) bool {
	if r.peek() != c {
		r.failed = true
		return false
	}
	r.i++
	return true
}

// literal reads s (true, false, null), or fails.
func (r *Reader) literal(s string) bool {
	if r.failed || !bytes.HasPrefix(r.b[r.i:], []byte(s)) {
		r.failed = true
		return false
	}
	r.i += len(s)
	return true
}

// more reads what follows an element of a list closed by end: true after a comma.
func (r *Reader) more(end byte) bool {
	switch r.peek() {
	case ',':
		r.i++
		return true
	case end:
		r.i++
	default:
		r.failed = true
	}
	return false
}

// Object reads an object, calling each for every key; each reads the value. A key given
// twice fails the reader: encoding/json decodes the second value into the first (merging
// two objects for one field), which reading each value afresh cannot match.
func (r *Reader) Object(each func(key string)) {
	if !r.expect('{') {
		return
	}
	if r.peek() == '}' {
		r.i++
		return
	}
	var seen keySet
	for !r.failed {
		k := r.Str()
		if seen.repeated(k) || !r.expect(':') {
			r.failed = true
			return
		}
		each(k)
		if !r.more('}') {
			return
		}
	}
}

// keySet holds the keys of an object read so far: records have a dozen or two, which a
// look through an array finds faster than a map; a map takes over for larger ones.
type keySet struct {
	few  [24]string
	n    int
	many map[string]struct{}
}

// repeated adds k and reports whether it was there already.
func (s *keySet) repeated(k string) bool {
	for _, o := range s.few[:s.n] {
		if o == k {
			return true
		}
	}
	if s.n < len(s.few) {
		s.few[s.n] = k
		s.n++
		return false
	}
	if s.many == nil {
		s.many = map[string]struct{}{}
	}
	if _, ok := s.many[k]; ok {
		return true
	}
	s.many[k] = struct{}{}
	return false
}

// Array reads an array, calling each for every element (each reads it), or a null, and
// reports whether it was null.
func (r *Reader) Array(each func()) (null bool) {
	switch r.peek() {
	case 'n':
		return r.literal("null")
	case '[':
		r.i++
	default:
		r.failed = true
		return false
	}
	if r.peek() == ']' {
		r.i++
		return false
	}
	for !r.failed {
		each()
		if !r.more(']') {
			break
		}
	}
	return false
}

// Str reads a string.
func (r *Reader) Str() string {
	if !r.expect('"') {
		return ""
	}
	open := r.i - 1
	for r.i < len(r.b) {
		switch c := r.b[r.i]; {
		case c == '"':
			r.i++
			return string(r.b[open+1 : r.i-1])
		case c >= 0x20 && c < utf8.RuneSelf && c != '\\':
			r.i++
		default:
			return r.quoted(open)
		}
	}
	r.failed = true
	return ""
}

// quoted reads the rest of the string opened at b[open] through encoding/json: it owns
// escapes and text beyond ASCII (it replaces invalid UTF-8, for one).
func (r *Reader) quoted(open int) string {
	r.skipString()
	var s string
	if r.failed || json.Unmarshal(r.b[open:r.i], &s) != nil {
		r.failed = true
	}
	return s
}

// skipString passes over the rest of a string whose quote is read or at b[i].
func (r *Reader) skipString() {
	if r.i < len(r.b) && r.b[r.i] == '"' {
		r.i++
	}
	for r.i < len(r.b) {
		switch r.b[r.i] {
		case '\\':
			r.i += 2
		case '"':
			r.i++
			return
		default:
			r.i++
		}
	}
	r.i = len(r.b)
	r.failed = true
}

// plain reads a string that is its own text, without escapes: for a value encoding/json
// hands over undecoded (time.Time's UnmarshalJSON).
func (r *Reader) plain() string {
	r.space()
	open := r.i
	s := r.Str()
	if !r.failed && s != string(r.b[open+1:r.i-1]) {
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
	switch r.peek() {
	case 't':
		return r.literal("true")
	case 'f':
		r.literal("false")
		return false
	}
	r.failed = true
	return false
}

// integer returns the text of an integer. A fraction or an exponent fails the reader (at
// the next byte), as they fail encoding/json's decoding into an integer.
func (r *Reader) integer() string {
	if r.peek() == 0 {
		r.failed = true
		return ""
	}
	start := r.i
	if r.b[r.i] == '-' {
		r.i++
	}
	digits := r.i
	for r.i < len(r.b) && r.b[r.i] >= '0' && r.b[r.i] <= '9' {
		r.i++
	}
	if r.i == digits || r.b[digits] == '0' && r.i-digits > 1 {
		r.failed = true // no digits, or a leading zero: not JSON
	}
	return string(r.b[start:r.i])
}

// Uint reads an unsigned integer.
func (r *Reader) Uint() uint64 {
	v, err := strconv.ParseUint(r.integer(), 10, 64)
	if err != nil {
		r.failed = true
	}
	return v
}

// Int reads an integer.
func (r *Reader) Int() int64 {
	v, err := strconv.ParseInt(r.integer(), 10, 64)
	if err != nil {
		r.failed = true
	}
	return v
}

// Time reads a time as time.Time's MarshalJSON writes it.
func (r *Reader) Time() time.Time {
	var t time.Time
	r.check(t.UnmarshalText([]byte(r.plain())))
	return t
}

// Addr reads an address as netip.Addr's MarshalText writes it ("" is the zero Addr).
func (r *Reader) Addr() netip.Addr {
	var a netip.Addr
	r.check(a.UnmarshalText([]byte(r.Str())))
	return a
}

// Prefix reads a prefix as netip.Prefix's MarshalText writes it ("" is the zero Prefix).
// (Each of these calls its own UnmarshalText: through a type parameter, the value and its
// text would escape to the heap.)
func (r *Reader) Prefix() netip.Prefix {
	var p netip.Prefix
	r.check(p.UnmarshalText([]byte(r.Str())))
	return p
}

// check fails the reader on err.
func (r *Reader) check(err error) {
	if err != nil {
		r.failed = true
	}
}

// Value decodes the next value into v with encoding/json: for a rare part of a document
// that is not worth reading by hand.
func (r *Reader) Value(v any) {
	if r.peek() == 0 {
		r.failed = true
		return
	}
	start := r.i
	r.skip()
	// encoding/json checks the bytes it is given: only their extent matters here.
	if r.failed || json.Unmarshal(r.b[start:r.i], v) != nil {
		r.failed = true
	}
}

// Skip passes over the next value unread: only its extent is found, nothing in it is checked.
func (r *Reader) Skip() {
	if r.peek() == 0 {
		r.failed = true
		return
	}
	r.skip()
}

// skip passes over one value.
func (r *Reader) skip() {
	depth := 0
	for r.i < len(r.b) {
		c := r.b[r.i]
		switch {
		case c == '"':
			r.skipString()
		case c == '{' || c == '[':
			depth++
			r.i++
		case c == '}' || c == ']':
			if depth == 0 {
				return // the end of the enclosing list
			}
			depth--
			r.i++
		case depth == 0 && (c == ',' || c == ' ' || c == '\t' || c == '\n' || c == '\r'):
			return
		default:
			r.i++
		}
		if depth == 0 && (c == '"' || c == '}' || c == ']') {
			return
		}
	}
}
