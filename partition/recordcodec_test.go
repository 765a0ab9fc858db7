package partition

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"reflect"
	"testing"
	"time"
)

// declined are the record's fields whose presence sends it to encoding/json.
var declined = map[string]bool{"Impairments": true, "Shaping": true, "Pending": true, "Counters": true, "Kernel": true, "Before": true}

// TestRecordCodecEveryField: a record with every field set (but those that send it to
// encoding/json) is written byte for byte as encoding/json writes it and read back equal.
// A field added to Record and not to the codec fails here.
func TestRecordCodecEveryField(t *testing.T) {
	var r Record
	v := reflect.ValueOf(&r).Elem()
	base := time.Date(2026, 12, 5, 23, 36, 19, 262348561, time.UTC)
	for i := range v.NumField() {
		f, fv := v.Type().Field(i), v.Field(i)
		if declined[f.Name] || f.Name == "Blocked" {
			continue
		}
		switch {
		case f.Type == reflect.TypeFor[time.Time]():
			fv.Set(reflect.ValueOf(base.Add(time.Duration(i) * time.Hour)))
		case f.Type.Kind() == reflect.String:
			fv.SetString(fmt.Sprintf("v%d", i))
		case f.Type.Kind() == reflect.Bool:
			fv.SetBool(true)
		case f.Type.Kind() == reflect.Int, f.Type.Kind() == reflect.Int64:
			fv.SetInt(int64(i + 1))
		case f.Type.Kind() == reflect.Uint64:
			fv.SetUint(uint64(1)<<63 + uint64(i))
		case f.Type == reflect.TypeFor[[]string]():
			fv.Set(reflect.ValueOf([]string{"a", fmt.Sprint(i)}))
		case f.Type == reflect.TypeFor[map[string]uint64]():
			fv.Set(reflect.ValueOf(map[string]uint64{"in_g1": 1, "filter": 1<<64 - 1}))
		case f.Type == reflect.TypeFor[[]Guest]():
			fv.Set(reflect.ValueOf([]Guest{{Name: "a", IP: netip.MustParseAddr("172.18.0.1"), Port: "g1"},
				{Name: "b\"", IP: netip.MustParseAddr("172.18.0.2"), IP6: netip.MustParseAddr("fd70::2"), Port: "g2", NetnsPath: "/proc/1/ns/net"}}))
		default:
			t.Fatalf("Record.%s (%s): unknown to this test and to the codec; teach both", f.Name, f.Type)
		}
	}
	r.Blocked = []BlockedPair{
		{Src: "a", Dst: "b", SrcIP: netip.MustParseAddr("172.18.0.1"), DstIP: netip.MustParseAddr("172.18.0.2"), Since: base},
		{Src: "b", Dst: "a", SrcIP: netip.MustParseAddr("172.18.0.2"), DstIP: netip.MustParseAddr("172.18.0.1"),
			SrcIP6: netip.MustParseAddr("fd70::2"), DstIP6: netip.MustParseAddr("fd70::1"), Since: base.Add(time.Second)},
	}
	checkCodec(t, r)
	// The file's own types: a field added to one must be added to the codec (and here).
	// (recordFile's Expires and Restore, of records written before Pending, and Before, of a
	// record written ahead, are encoding/json's; Guest's away is no field of the file: each
	// refresh works it out.)
	for typ, n := range map[reflect.Type]int{reflect.TypeFor[recordFile](): 7, reflect.TypeFor[blockedGroup](): 2, reflect.TypeFor[blockRow](): 2, reflect.TypeFor[Guest](): 6} {
		if typ.NumField() != n {
			t.Errorf("%s has %d fields; the codec knows %d", typ, typ.NumField(), n)
		}
	}
	// What json.Marshal refuses (a year past 9999) is left to it, which reports it.
	r.AppliedAt = time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)
	f := toFile(r)
	if _, ok := appendRecordFile(nil, &f); ok {
		t.Errorf("a record applied in year 10000 was written by the codec")
	}
}

// TestRecordCodecMatchesJSON: random records in the common form, as changes leave them.
func TestRecordCodecMatchesJSON(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	base := time.Date(2026, 12, 5, 23, 0, 0, 0, time.UTC)
	for n := range 300 {
		r := fullmeshStatus()
		r.Kind, r.Description = "isolate", fmt.Sprintf("isolate g%d", n)
		r.Mode = []Mode{ModeDrop, ModeReject}[rng.IntN(2)]
		r.Generation, r.Change = uint64(n), uint64(rng.IntN(n+1))
		r.Table = rng.IntN(2) == 0
		r.Backend = []Backend{"", BackendNetdev, BackendBridge}[rng.IntN(3)]
		if rng.IntN(2) == 0 {
			r.AppliedAt = base.Add(time.Duration(rng.Int64N(int64(time.Hour))))
			r.Marker = fmt.Sprintf("pontoon generation %d plan %x", n, rng.Uint64())
			r.Chains = map[string]uint64{}
			for i := range rng.IntN(40) {
				r.Chains[fmt.Sprintf("in_g%d", i)] = rng.Uint64()
			}
			r.CounterSets = []string{"count_drop", "count_out"}
			for i := range rng.IntN(5) {
				g := Guest{Name: fmt.Sprintf("g%d", i), IP: netip.AddrFrom4([4]byte{172, 18, 0, byte(i + 1)}), Port: fmt.Sprintf("g%d", i+1)}
				if i%2 == 0 {
					g.IP6 = netip.MustParseAddr(fmt.Sprintf("fd70::%x", i+1))
				}
				r.Guests = append(r.Guests, g)
			}
		}
		if rng.IntN(3) == 0 {
			r.Impairments = nil
		}
		guests := 2 + rng.IntN(20)
		since := []time.Time{base, base.Add(time.Millisecond), base.Add(1500 * time.Microsecond)}
		for s := range guests {
			for d := range guests {
				if s != d && rng.IntN(3) == 0 {
					p := BlockedPair{Src: fmt.Sprintf("g%d", s), Dst: fmt.Sprintf("g%d", d),
						SrcIP: netip.AddrFrom4([4]byte{172, 18, 0, byte(s + 1)}), DstIP: netip.AddrFrom4([4]byte{172, 18, 0, byte(d + 1)}),
						Since: since[rng.IntN(len(since))]}
					if s%2 == 0 {
						p.SrcIP6 = netip.MustParseAddr(fmt.Sprintf("fd70::%x", s+1))
					}
					r.Blocked = append(r.Blocked, p)
				}
			}
		}
		r.Order = nil
		if rng.IntN(2) == 0 {
			r.Order = []string{"g1", "g0"}
		}
		checkCodec(t, r)
	}
}

// TestRecordCodecStrings: names and texts that encoding/json escapes.
func TestRecordCodecStrings(t *testing.T) {
	for _, s := range []string{`a "quoted" b`, `back\slash`, "<tag> & more", "tab\there", "ünï", "\u2028", "bad \xff utf-8", ""} {
		r := fullmeshStatus()
		r.Description, r.CutError, r.Marker = s, s, s
		r.Chains = map[string]uint64{s: 1}
		r.Blocked = []BlockedPair{{Src: s, Dst: "b"}}
		checkCodec(t, r)
	}
}

// TestRecordCodecDeclines: records outside the common form, and files it does not know,
// are left to encoding/json.
func TestRecordCodecDeclines(t *testing.T) {
	base := fullmeshStatus()
	withImp := base.clone()
	withImp.Impairments = []Impairment{{Guest: "g1", Loss: 10}}
	withShaping := base.clone()
	withShaping.Shaping = []Shaping{{Device: "g1", Guest: "g1"}}
	withPending := base.clone()
	withPending.Pending = []Timed{{Change: 1, Expires: time.Now(), Parts: []string{partitionPart}, Restore: State{Mode: ModeDrop}}}
	for name, r := range map[string]Record{"impairments": withImp, "shaping": withShaping, "pending": withPending} {
		f := toFile(r)
		if _, ok := appendRecordFile(nil, &f); ok {
			t.Errorf("%s: written by the codec", name)
		}
		b, err := json.Marshal(f)
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := decodeRecordFile(b); ok {
			t.Errorf("%s: read by the codec: %s", name, b)
		}
	}
	for _, doc := range []string{`{"kind":"x","later":1}`, `{"kind":1}`, `{"kind":"x"} {}`, `{"kind":"x"`, `[]`, `{"chains":{"a":-1}}`, `{"Kind":"x"}`, `{"kind":"x"} x`, `{"kind":"x"}]`,
		// encoding/json merges a repeated key's value into the first one's.
		`{"chains":{"a":1},"chains":{"b":2}}`, `{"ips":{"a":"1.2.3.4"},"ips":{"b":"1.2.3.5"}}`,
		`{"blocked":[{"since":"2026-01-01T00:00:00Z"}],"blocked":[{"rows":[]}]}`} {
		if _, ok := decodeRecordFile([]byte(doc)); ok {
			t.Errorf("%s: read by the codec", doc)
		}
	}
}

// checkCodec writes r both ways and reads the result both ways.
func checkCodec(t *testing.T, r Record) {
	t.Helper()
	f := toFile(r)
	want, err := json.Marshal(f)
	if err != nil {
		t.Fatal(err)
	}
	got, ok := appendRecordFile(nil, &f)
	if !ok {
		t.Fatalf("declined a record in the common form: %s", want)
	}
	if string(got) != string(want) {
		t.Fatalf("written:\n%s\nencoding/json writes:\n%s", got, want)
	}
	var viaJSON recordFile
	if err := json.Unmarshal(want, &viaJSON); err != nil {
		t.Fatal(err)
	}
	viaCodec, ok := decodeRecordFile(want)
	if !ok {
		t.Fatalf("could not read %s", want)
	}
	if a, b := fromFile(viaCodec), fromFile(viaJSON); !reflect.DeepEqual(a, b) {
		t.Fatalf("read %+v\nencoding/json reads %+v\nfrom %s", a, b, want)
	}
}
