package nftwire

import (
	"testing"

	"github.com/google/nftables"
)

// The generation a listing's answer carries counts every committed transaction of the
// namespace, one each, and nothing else: not a lookup, not a batch the kernel refused.
func TestSeenGen(t *testing.T) {
	c := scratchConn(t)
	seen := func() uint16 {
		t.Helper()
		c.ForgetGen()
		if _, ok := c.SeenGen(); ok {
			t.Fatal("a generation seen after ForgetGen")
		}
		if _, err := c.ListTables(); err != nil {
			t.Fatal(err)
		}
		g, ok := c.SeenGen()
		if !ok {
			t.Fatal("no generation seen in the answer to a listing")
		}
		return g
	}
	tbl := c.AddTable(&nftables.Table{Name: "g", Family: nftables.TableFamilyINet})
	if err := c.Flush(); err != nil {
		t.Fatal(err)
	}
	g0 := seen()
	c.AddChain(&nftables.Chain{Name: "c", Table: tbl})
	if err := c.Flush(); err != nil {
		t.Fatal(err)
	}
	g1 := seen()
	if g1 != g0+1 {
		t.Fatalf("after a commit: %d; want %d", g1, g0+1)
	}
	if _, err := c.Holds(nftables.TableFamilyINet, "g", Lookup{"none", []byte{1}}); err == nil {
		t.Fatal("a lookup in a set that does not exist succeeded")
	}
	c.AddChain(&nftables.Chain{Name: "d", Table: tbl})
	c.DelChain(&nftables.Chain{Name: "no-such-chain", Table: tbl})
	if err := c.Flush(); err == nil {
		t.Fatal("a batch deleting a chain that does not exist was committed")
	}
	if g := seen(); g != g1 {
		t.Errorf("after a lookup and a refused batch: %d; want %d", g, g1)
	}
	c.DelChain(&nftables.Chain{Name: "c", Table: tbl})
	if err := c.Flush(); err != nil {
		t.Fatal(err)
	}
	if g := seen(); g != g1+1 {
		t.Errorf("after another commit: %d; want %d", g, g1+1)
	}
}
