package nftwire

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/google/nftables"
)

// Holds finds an element by its key alone, in a set with timeouts (as the packet path fills
// one) and among many others, tells a missing element from a missing set, and stays usable
// for batches and lookups afterwards.
func TestHolds(t *testing.T) {
	c := scratchConn(t)
	tbl := c.AddTable(&nftables.Table{Name: "h", Family: nftables.TableFamilyBridge})
	set := &nftables.Set{Table: tbl, Name: "asked", KeyType: nftables.TypeIPAddr, Size: 1024,
		Dynamic: true, HasTimeout: true, Timeout: time.Minute}
	var elems []nftables.SetElement
	for i := range 600 {
		elems = append(elems, nftables.SetElement{Key: []byte{172, 18, byte(i >> 8), byte(i)}})
	}
	if err := c.AddSet(set, elems); err != nil {
		t.Fatal(err)
	}
	if err := c.Flush(); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		table   string
		lookups []Lookup
		want    []bool
		err     error
	}{
		{"h", []Lookup{{"asked", []byte{172, 18, 0, 7}}}, []bool{true}, nil},
		{"h", []Lookup{{"asked", []byte{172, 18, 2, 87}}, {"asked", []byte{172, 18, 2, 88}}}, []bool{true, false}, nil},
		{"h", []Lookup{{"asked", []byte{172, 18, 9, 9}}, {"asked", []byte{172, 18, 0, 1}}}, []bool{false, true}, nil},
		{"h", []Lookup{{"asked", []byte{172, 18, 0, 7}}, {"other", []byte{172, 18, 0, 7}}}, nil, ErrNoSet},
		{"none", []Lookup{{"asked", []byte{172, 18, 0, 7}}}, nil, ErrNoSet},
	} {
		got, err := c.Holds(nftables.TableFamilyBridge, tc.table, tc.lookups...)
		if fmt.Sprint(got) != fmt.Sprint(tc.want) || !errors.Is(err, tc.err) || (tc.err == nil && err != nil) {
			t.Errorf("Holds(%s, %v) = %v, %v; want %v, %v", tc.table, tc.lookups, got, err, tc.want, tc.err)
		}
	}
	c.FlushSet(set)
	if err := c.Flush(); err != nil {
		t.Fatalf("a batch after the lookups: %v", err)
	}
	if got, err := c.Holds(nftables.TableFamilyBridge, "h", Lookup{"asked", []byte{172, 18, 0, 7}}); fmt.Sprint(got) != "[false]" || err != nil {
		t.Errorf("after the set was flushed: %v, %v; want [false], nil", got, err)
	}
}
