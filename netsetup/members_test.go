package netsetup

import (
	"reflect"
	"strings"
	"testing"
)

// TestMembersFileTags: every field BridgeMembers reads has the tag of the record's own field,
// so the two cannot drift apart.
func TestMembersFileTags(t *testing.T) {
	tagOf := func(typ reflect.Type, field string) string {
		f, ok := typ.FieldByName(field)
		if !ok {
			t.Fatalf("%s has no field %s", typ, field)
		}
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		return name
	}
	check := func(view, full reflect.Type) {
		for i := range view.NumField() {
			f := view.Field(i)
			if got, want := tagOf(view, f.Name), tagOf(full, f.Name); got != want {
				t.Errorf("%s.%s: tag %q, the record's is %q", view, f.Name, got, want)
			}
		}
	}
	mf := reflect.TypeFor[membersFile]()
	check(mf, reflect.TypeFor[BridgeState]())
	g, _ := mf.FieldByName("Guests")
	check(g.Type.Elem(), reflect.TypeFor[Guest]())
}

