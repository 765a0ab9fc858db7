package jsontok

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"reflect"
	"testing"
	"time"
)

// TestWriterMatchesJSON: what Writer appends is what json.Marshal writes for the same values.
func TestWriterMatchesJSON(t *testing.T) {
	type doc struct {
		S  string     `json:"s"`
		L  []string   `json:"l"`
		N  []string   `json:"n"`
		B  bool       `json:"b"`
		I  int64      `json:"i"`
		U  uint64     `json:"u"`
		T  time.Time  `json:"t"`
		A  netip.Addr `json:"a"`
		A0 netip.Addr `json:"a0"`
	}
	for _, s := range []string{"plain", `"q"`, `b\s`, "<&>", "tab\t", "ü", "\u2028", "\xff", ""} {
		d := doc{S: s, L: []string{s, "x"}, B: true, I: -42, U: 1<<64 - 1,
			T: time.Date(2026, 12, 5, 1, 2, 3, 400, time.FixedZone("x", 3600)), A: netip.MustParseAddr("fd70::1")}
		want, err := json.Marshal(d)
		if err != nil {
			t.Fatal(err)
		}
		w := Writer{B: []byte("{")}
		w.Str("s", d.S)
		w.Strs("l", d.L)
		w.Strs("n", d.N)
		w.Bool("b", d.B)
		w.Int("i", d.I)
		w.Uint("u", d.U)
		w.Time("t", d.T)
		w.Key("a")
		w.Addr(d.A)
		w.Key("a0")
		w.Addr(d.A0)
		w.Raw("}")
		if string(w.B) != string(want) {
			t.Errorf("wrote %s\njson.Marshal writes %s", w.B, want)
		}
		r := NewReader(want)
		var got doc
		r.Object(func(k string) {
			switch k {
			case "s":
				got.S = r.Str()
			case "l":
				got.L = r.Strs()
			case "n":
				got.N = r.Strs()
			case "b":
				got.B = r.Bool()
			case "i":
				got.I = r.Int()
			case "u":
				got.U = r.Uint()
			case "t":
				got.T = r.Time()
			case "a":
				got.A = r.Addr()
			case "a0":
				got.A0 = r.Addr()
			}
		})
		var viaJSON doc
		if err := json.Unmarshal(want, &viaJSON); err != nil {
			t.Fatal(err)
		}
		if !r.Done() || !got.T.Equal(viaJSON.T) || got.S != viaJSON.S || len(got.L) != 2 || got.N != nil || got.U != viaJSON.U || got.A != viaJSON.A || got.A0 != viaJSON.A0 || got.I != -42 || !got.B {
			t.Errorf("read %+v, encoding/json reads %+v", got, viaJSON)
		}
	}
}

// TestWriterOddValues: an address with a zone is escaped as encoding/json does; a time it
// refuses marks the writer bad.
func TestWriterOddValues(t *testing.T) {
	a := netip.MustParseAddr("fe80::1%<eth\"0>")
	want, _ := json.Marshal(a)
	w := Writer{}
	w.Addr(a)
	if string(w.B) != string(want) {
		t.Errorf("wrote %s, json.Marshal writes %s", w.B, want)
	}
	w = Writer{B: []byte("{")}
	w.Time("t", time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC))
	if !w.Bad {
		t.Errorf("a time in year 10000 was written as good: %s", w.B)
	}
}

// TestReaderRefuses: a token of another kind than asked, trailing data and bad syntax fail.
func TestReaderRefuses(t *testing.T) {
	for doc, read := range map[string]func(r *Reader){
		`{"a":1}`:           func(r *Reader) { r.Object(func(string) { r.Str() }) },
		`{"a":"x"} {}`:      func(r *Reader) { r.Object(func(string) { r.Str() }) },
		`{"a":"x"} x`:       func(r *Reader) { r.Object(func(string) { r.Str() }) },
		`{"a":"x"`:          func(r *Reader) { r.Object(func(string) { r.Str() }) },
		`["a",1]`:           func(r *Reader) { r.Strs() },
		`{"a":-1}`:          func(r *Reader) { r.Object(func(string) { r.Uint() }) },
		`{"a":"not time"}`:  func(r *Reader) { r.Object(func(string) { r.Time() }) },
		`{"a":"1.2.3"}`:     func(r *Reader) { r.Object(func(string) { r.Addr() }) },
		`{"a":"x","a":"y"}`: func(r *Reader) { r.Object(func(string) { r.Str() }) },
		`{"a":01}`:          func(r *Reader) { r.Object(func(string) { r.Int() }) },
		`{"a":-}`:           func(r *Reader) { r.Object(func(string) { r.Int() }) },
		`{"a":1.5}`:         func(r *Reader) { r.Object(func(string) { r.Int() }) },
		`{"a":1e3}`:         func(r *Reader) { r.Object(func(string) { r.Uint() }) },
		`{"a":"x",}`:        func(r *Reader) { r.Object(func(string) { r.Str() }) },
		`{"a" "x"}`:         func(r *Reader) { r.Object(func(string) { r.Str() }) },
		`{,}`:               func(r *Reader) { r.Object(func(string) { r.Str() }) },
		`["a",]`:            func(r *Reader) { r.Strs() },
		`["a" "b"]`:         func(r *Reader) { r.Strs() },
		`nul`:               func(r *Reader) { r.Strs() },
		`{"a":tru}`:         func(r *Reader) { r.Object(func(string) { r.Bool() }) },
		`{"a":truex}`:       func(r *Reader) { r.Object(func(string) { r.Bool() }) },
		`{"a":null}`:        func(r *Reader) { r.Object(func(string) { r.Str() }) },
		"{\"a\":\"x\x01\"}": func(r *Reader) { r.Object(func(string) { r.Str() }) },
		`{"a":"x`:           func(r *Reader) { r.Object(func(string) { r.Str() }) },
		`{"a":"x\`:          func(r *Reader) { r.Object(func(string) { r.Str() }) },
		// time.Time's UnmarshalJSON takes the text undecoded, so it refuses an escape.
		`{"a":"2026-01-02T03:04:05\u005a"}`: func(r *Reader) { r.Object(func(string) { r.Time() }) },
		`{"a":{"b":}}`:                      func(r *Reader) { r.Object(func(string) { var v any; r.Value(&v) }) },
		`{"a":[1,2}`:                        func(r *Reader) { r.Object(func(string) { var v any; r.Value(&v) }) },
		`{"a":"x" `:                         func(r *Reader) { r.Object(func(string) { var v any; r.Value(&v) }) },
	} {
		r := NewReader([]byte(doc))
		read(r)
		if r.Done() {
			t.Errorf("%s: read as asked", doc)
		}
	}
}

// AppendQuote writes every byte, alone and between others, as encoding/json does.
func TestAppendQuoteEveryByte(t *testing.T) {
	for c := range 256 {
		for _, s := range []string{string([]byte{byte(c)}), "g" + string([]byte{byte(c)}) + "x"} {
			want, _ := json.Marshal(s)
			if got := AppendQuote(nil, s); string(got) != string(want) {
				t.Errorf("%q: got %s, want %s", s, got, want)
			}
		}
	}
}

// Str reads what encoding/json reads: every byte raw and escaped, escapes, text beyond
// ASCII and invalid UTF-8 (which encoding/json replaces).
func TestReaderStrings(t *testing.T) {
	docs := []string{`"a\"b"`, `"\/\b\f\n\r\t\\"`, `"\u00e9\ud83d\ude00"`, `"\ud800"`, `"café"`, "\"\xff\xfe\"", `""`, `"<&>"`}
	for c := range 256 {
		docs = append(docs, "\""+string([]byte{byte(c)})+"x\"", fmt.Sprintf(`"\u%04x"`, c))
	}
	for _, doc := range docs {
		var want string
		wantErr := json.Unmarshal([]byte(doc), &want)
		r := NewReader([]byte(doc))
		got := r.Str()
		if ok := r.Done(); ok != (wantErr == nil) || ok && got != want {
			t.Errorf("%q: read %q (%v), encoding/json %q (%v)", doc, got, ok, want, wantErr)
		}
	}
}

// Value leaves a part of a document to encoding/json and reading goes on after it.
func TestReaderValue(t *testing.T) {
	doc := []byte(`{"a": {"x": [1, "}]", {"y": null}, -2.5e3], "z": "\""} , "b":"c", "n":7, "t":true}`)
	var a, want map[string]any
	var b string
	var n int64
	var tr bool
	r := NewReader(doc)
	r.Object(func(k string) {
		switch k {
		case "a":
			r.Value(&a)
		case "b":
			b = r.Str()
		case "n":
			n = r.Int()
		case "t":
			tr = r.Bool()
		}
	})
	var all struct{ A map[string]any }
	if err := json.Unmarshal(doc, &all); err != nil {
		t.Fatal(err)
	}
	want = all.A
	if !r.Done() || !reflect.DeepEqual(a, want) || b != "c" || n != 7 || !tr {
		t.Errorf("read a=%v b=%q n=%d t=%v; want a=%v", a, b, n, tr, want)
	}
}

// Skip passes over a value of any kind, strings holding brackets and quotes included, and
// the reader goes on after it; at the end of the input it fails the reader.
func TestReaderSkip(t *testing.T) {
	doc := []byte(`{"a": {"x": [1, "}]", {"y": null}, -2.5e3], "z": "\"]"}, "s": "x,}", "n": 7, "l": [[], {}], "b": "c"}`)
	var b string
	var n int64
	r := NewReader(doc)
	r.Object(func(k string) {
		switch k {
		case "b":
			b = r.Str()
		case "n":
			n = r.Int()
		default:
			r.Skip()
		}
	})
	if !r.Done() || b != "c" || n != 7 {
		t.Errorf("after skipping: b=%q n=%d done=%v; want c, 7, done", b, n, r.Done())
	}
	r = NewReader([]byte(`{"a": `))
	r.Object(func(string) { r.Skip() })
	if r.Done() {
		t.Error("a truncated document read as done")
	}
}

// A key repeated anywhere in an object fails the reader, also past the keys it keeps in an
// array.
func TestReaderRepeatedKey(t *testing.T) {
	for _, n := range []int{2, 24, 25, 26, 60} {
		for _, repeat := range []int{-1, 0, n - 2} { // the key repeated last, -1: none
			var doc []byte
			doc = append(doc, '{')
			for i := range n {
				if i > 0 {
					doc = append(doc, ',')
				}
				k := i
				if repeat >= 0 && i == n-1 {
					k = repeat
				}
				doc = fmt.Appendf(doc, `"k%d":%d`, k, i)
			}
			doc = append(doc, '}')
			r := NewReader(doc)
			r.Object(func(string) { r.Int() })
			if r.Done() != (repeat < 0) {
				t.Errorf("%d keys, the last repeating key %d: read as asked %v", n, repeat, repeat >= 0)
			}
		}
	}
}
