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

// TestSetElementsWhileChanging: a set read while another connection keeps adding and
// removing elements (as the packet path does to a dynamic set) lists every element that
// stayed in it all along.
func TestSetElementsWhileChanging(t *testing.T) {
	p := scratchNS(t)
	c, churn := connIn(t, p), connIn(t, p)
	tbl := c.AddTable(&nftables.Table{Name: "m", Family: nftables.TableFamilyIPv4})
	set := &nftables.Set{Table: tbl, Name: "s", KeyType: nftables.TypeIPAddr, Dynamic: true}
	var stay []nftables.SetElement
	for i := range 4000 {
		stay = append(stay, nftables.SetElement{Key: []byte{10, 1, byte(i >> 8), byte(i)}})
	}
	if err := c.AddSet(set, stay); err != nil {
		t.Fatal(err)
	}
	if err := c.Flush(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	churned := make(chan error, 1)
	go func() {
		s := &nftables.Set{Table: &nftables.Table{Name: "m", Family: nftables.TableFamilyIPv4}, Name: "s", KeyType: nftables.TypeIPAddr}
		for n := 0; ; n++ {
			select {
			case <-done:
				churned <- nil
				return
			default:
			}
			// A window of 2000 keys that moves on: one added, the oldest removed.
			add := []nftables.SetElement{{Key: []byte{10, 2, byte(n >> 8), byte(n)}}}
			if err := churn.SetAddElements(s, add); err != nil {
				churned <- err
				return
			}
			if n >= 2000 {
				m := n - 2000
				_ = churn.SetDeleteElements(s, []nftables.SetElement{{Key: []byte{10, 2, byte(m >> 8), byte(m)}}})
			}
			if err := churn.Flush(); err != nil {
				churned <- err
				return
			}
		}
	}()
	missed := 0
	for round := range 300 {
		got, err := SetElements(c.Conn, set)
		if err != nil {
			t.Fatal(err)
		}
		seen := make(map[string]bool, len(got))
		for _, el := range got {
			seen[string(el.Key)] = true
		}
		for _, el := range stay {
			if !seen[string(el.Key)] {
				missed++
				t.Errorf("read %d: %v, in the set all along, not listed (%d listed)", round, el.Key, len(got))
				break
			}
		}
	}
	close(done)
	if err := <-churned; err != nil {
		t.Fatal(err)
	}
}
