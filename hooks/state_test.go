package hooks

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	"github.com/opencontainers/runtime-spec/specs-go"
)

// TestReadStateMatchesJSON: the state read without reflection is encoding/json's, for the
// states engines send and for ones with fields it does not know (read by encoding/json).
func TestReadStateMatchesJSON(t *testing.T) {
	for _, doc := range []string{
		`{"ociVersion":"1.2.0","id":"c0ffee","status":"created","pid":4242,"bundle":"/run/b","annotations":{"pontoon.bridge":"b1","x":"<&>\"ü"}}`,
		`{"ociVersion":"1.0.2","id":"c1","status":"stopped","bundle":"/run/b"}`,
		`{"ociVersion":"1.0.2","id":"c2","status":"running","pid":1,"bundle":"","annotations":null}` + "\n",
		`{"ociVersion":"1.0.2","id":"c3","status":"running","pid":1,"bundle":"/b","annotations":{}} {"trailing":1}`,
		`{"ociVersion":"1.0.2","id":"c4","status":"running","pid":1,"bundle":"/b","extra":{"nested":[1,2]}}`,
		`{"id":"c5","pid":2,"annotations":{"a":"b"},"Bundle":"/case"}`,
	} {
		var want specs.State
		if err := json.NewDecoder(strings.NewReader(doc)).Decode(&want); err != nil {
			t.Fatal(err)
		}
		got, err := ReadState(strings.NewReader(doc))
		if err != nil || !reflect.DeepEqual(got, want) {
			t.Errorf("%s: read %+v, %v; encoding/json reads %+v", doc, got, err, want)
		}
	}
	for _, doc := range []string{"", `{"id":`, `{"id":""}`, `[]`, `{"pid":"x","id":"c"}`} {
		if st, err := ReadState(strings.NewReader(doc)); err == nil {
			t.Errorf("%q: read as %+v", doc, st)
		}
	}
}
