package nftwire

import (
	"fmt"
	"testing"

	"github.com/google/nftables"
)

func TestUnique(t *testing.T) {
	a := nftables.SetElement{Key: []byte{10, 0, 0, 1}, Val: []byte{1}}
	b := nftables.SetElement{Key: []byte{10, 0, 0, 2}, Val: []byte{2}}
	end := nftables.SetElement{Key: []byte{10, 0, 0, 1}, IntervalEnd: true}
	run := nftables.SetElement{Key: []byte{1, 2}, KeyEnd: []byte{3, 4}}
	run2 := nftables.SetElement{Key: []byte{1, 2}, KeyEnd: []byte{3, 5}}
	got := unique([]nftables.SetElement{a, b, a, end, run, b, run2, run, end})
	want := []nftables.SetElement{a, b, end, run, run2}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("unique: %v, want %v", got, want)
	}
}

// TestSetElementsWhileResizing: a hash set without a fixed size, read right after the
// transaction that filled it (while the kernel may be resizing it), lists no element twice.
func TestSetElementsWhileResizing(t *testing.T) {
	c := scratchConn(t)
	tbl := c.AddTable(&nftables.Table{Name: "r", Family: nftables.TableFamilyIPv4})
	for round := range 40 {
		set := &nftables.Set{Table: tbl, Name: fmt.Sprintf("s%d", round), KeyType: nftables.TypeIPAddr}
		var elems []nftables.SetElement
		for i := range 3000 {
			elems = append(elems, nftables.SetElement{Key: []byte{10, byte(round), byte(i >> 8), byte(i)}})
		}
		if err := c.AddSet(set, elems); err != nil {
			t.Fatal(err)
		}
		if err := c.Flush(); err != nil {
			t.Fatal(err)
		}
		got, err := SetElements(c.Conn, set)
		if err != nil {
			t.Fatal(err)
		}
		seen := map[string]bool{}
		for _, el := range got {
			if seen[string(el.Key)] {
				t.Fatalf("round %d: element %v listed twice", round, el.Key)
			}
			seen[string(el.Key)] = true
		}
		c.DelSet(set)
		if err := c.Flush(); err != nil {
			t.Fatal(err)
		}
	}
}
