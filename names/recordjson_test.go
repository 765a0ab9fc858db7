package names

import (
	"encoding/json"
	"reflect"
	"testing"
	"time"

	"github.com/pontoon-dev/pontoon/netsetup"
)

// A server record is written as encoding/json writes it and read back as encoding/json reads
// it; a file the fast reader does not take is encoding/json's, error included.
func TestRecordJSONSame(t *testing.T) {
	full := Record{Bridge: "b<1>", Process: netsetup.Process{PID: 7, Start: 9}, Detached: true, Addr: "172.18.0.254:53",
		Started: time.Date(2026, 12, 6, 1, 2, 3, 4, time.FixedZone("x", -3600))}
	v := reflect.ValueOf(full)
	for i := range v.NumField() {
		if v.Field(i).IsZero() {
			t.Fatalf("field %s of the test record is unset", v.Type().Field(i).Name)
		}
	}
	type plain Record
	for _, r := range []Record{full, {}, {Bridge: "é\u2028", Started: time.Unix(0, 0).UTC()}} {
		want, err := json.Marshal(plain(r))
		if err != nil {
			t.Fatal(err)
		}
		got, err := r.marshal()
		if err != nil || string(got) != string(want) {
			t.Errorf("marshal: %s, %v; want %s", got, err, want)
		}
		var back, viaJSON Record
		if err := json.Unmarshal(want, &viaJSON); err != nil {
			t.Fatal(err)
		}
		if err := back.unmarshal(want); err != nil || !reflect.DeepEqual(back, viaJSON) {
			t.Errorf("unmarshal %s: %+v, %v; want %+v", want, back, err, viaJSON)
		}
	}
	for _, doc := range []string{`{"Bridge":"b"}`, `{"bridge":"b","process":null}`, `{"bridge":"b","process":{"pid":"1"}}`, `{"bridge":"b","x":1}`, `{`,
		`{"bridge":"x","process":{"pid":1},"process":{"start":2}}`} {
		var got, want Record
		gotErr, wantErr := got.unmarshal([]byte(doc)), json.Unmarshal([]byte(doc), &want)
		if (gotErr == nil) != (wantErr == nil) || !reflect.DeepEqual(got, want) {
			t.Errorf("%s: %+v, %v; want %+v, %v", doc, got, gotErr, want, wantErr)
		}
	}
	if _, err := (&Record{Started: time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)}).marshal(); err == nil {
		t.Error("a year past 9999 was written")
	}
}
