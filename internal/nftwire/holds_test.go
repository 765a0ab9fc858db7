package nftwire

import (
	"errors"
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
		table, set string
		key        []byte
		want       bool
		err        error
	}{
		{"h", "asked", []byte{172, 18, 0, 7}, true, nil},
		{"h", "asked", []byte{172, 18, 2, 87}, true, nil},
		{"h", "asked", []byte{172, 18, 2, 88}, false, nil},
		{"h", "other", []byte{172, 18, 0, 7}, false, ErrNoSet},
		{"none", "asked", []byte{172, 18, 0, 7}, false, ErrNoSet},
	} {
		got, err := c.Holds(nftables.TableFamilyBridge, tc.table, tc.set, tc.key)
		if got != tc.want || !errors.Is(err, tc.err) || (tc.err == nil && err != nil) {
			t.Errorf("Holds(%s, %s, %v) = %v, %v; want %v, %v", tc.table, tc.set, tc.key, got, err, tc.want, tc.err)
		}
	}
	c.FlushSet(set)
	if err := c.Flush(); err != nil {
		t.Fatalf("a batch after the lookups: %v", err)
	}
	if got, err := c.Holds(nftables.TableFamilyBridge, "h", "asked", []byte{172, 18, 0, 7}); got || err != nil {
		t.Errorf("after the set was flushed: %v, %v; want false, nil", got, err)
	}
}
