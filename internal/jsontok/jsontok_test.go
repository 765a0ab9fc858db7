package jsontok

import (
	"encoding/json"
	"net/netip"
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
		`{"a":1}`:          func(r *Reader) { r.Object(func(string) { r.Str() }) },
		`{"a":"x"} {}`:     func(r *Reader) { r.Object(func(string) { r.Str() }) },
		`{"a":"x"} x`:      func(r *Reader) { r.Object(func(string) { r.Str() }) },
		`{"a":"x"`:         func(r *Reader) { r.Object(func(string) { r.Str() }) },
		`["a",1]`:          func(r *Reader) { r.Strs() },
		`{"a":-1}`:         func(r *Reader) { r.Object(func(string) { r.Uint() }) },
		`{"a":"not time"}`: func(r *Reader) { r.Object(func(string) { r.Time() }) },
		`{"a":"1.2.3"}`:    func(r *Reader) { r.Object(func(string) { r.Addr() }) },
	} {
		r := NewReader([]byte(doc))
		read(r)
		if r.Done() {
			t.Errorf("%s: read as asked", doc)
		}
	}
}
