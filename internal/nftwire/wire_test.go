package nftwire

import (
	"errors"
	"fmt"
	"path/filepath"
	"testing"

	"github.com/google/nftables"
	"github.com/pontoon-dev/pontoon/internal/testkit"
	"github.com/pontoon-dev/pontoon/netsetup/ns"
	"golang.org/x/sys/unix"
)

// scratchConn opens a connection in a namespace of its own, removed when the test ends.
func scratchConn(t *testing.T) *Conn {
	t.Helper()
	return connIn(t, scratchNS(t))
}

// scratchNS makes a network namespace, removed when the test ends, and returns its path.
func scratchNS(t *testing.T) string {
	t.Helper()
	testkit.NeedRoot(t, "creates a network namespace")
	p := filepath.Join(t.TempDir(), "net")
	if err := ns.New(ns.Spec{Net: p}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ns.Remove(p) })
	return p
}

// connIn opens a connection in the namespace at p, closed when the test ends.
func connIn(t *testing.T, p string) *Conn {
	t.Helper()
	fd, err := ns.Socket(p, unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, unix.NETLINK_NETFILTER)
	if err != nil {
		t.Fatal(err)
	}
	c, err := Open(fd)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func tableNames(t *testing.T, c *Conn) map[string]bool {
	t.Helper()
	tables, err := c.ListTables()
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	for _, tb := range tables {
		names[tb.Name] = true
	}
	return names
}

// TestWire: a committed batch is success and in force, with a set larger than one answer
// datagram read back whole; a batch refused in its middle, or one message of it refused,
// fails with the kernel's reason and changes nothing; a batch whose answers are lost fails
// although committed, and the connection reads the next answers right.
func TestWire(t *testing.T) {
	c := scratchConn(t)
	tbl := c.AddTable(&nftables.Table{Name: "t", Family: nftables.TableFamilyIPv4})
	// A set of fixed size: the kernel resizes a set without one in the background, and a dump
	// that spans a resize may list an element twice or miss one (the walk resumes by count).
	set := &nftables.Set{Table: tbl, Name: "s", KeyType: nftables.TypeIPAddr, Size: 4096}
	var elems []nftables.SetElement
	for i := range 4000 {
		elems = append(elems, nftables.SetElement{Key: []byte{10, 0, byte(i >> 8), byte(i)}})
	}
	if err := c.AddSet(set, elems); err != nil {
		t.Fatal(err)
	}
	if err := c.Flush(); err != nil {
		t.Fatalf("committed batch: %v", err)
	}
	got, err := c.GetSetElements(set)
	if err != nil || len(got) != len(elems) {
		t.Fatalf("set read back: %d elements, %v; want %d", len(got), err, len(elems))
	}
	seen := map[string]bool{}
	for _, el := range got {
		seen[string(el.Key)] = true
	}
	if len(seen) != len(elems) {
		t.Fatalf("set read back: %d distinct elements of %d", len(seen), len(elems))
	}

	t.Run("refused midway", func(t *testing.T) {
		SpoilBatch.Store(1)
		t.Cleanup(func() { SpoilBatch.Store(0) })
		c.AddTable(&nftables.Table{Name: "spoiled", Family: nftables.TableFamilyIPv4})
		c.AddTable(&nftables.Table{Name: "spoiled2", Family: nftables.TableFamilyIPv4})
		if err := c.Flush(); !errors.Is(err, unix.EINVAL) {
			t.Fatalf("refused batch: %v, want the kernel's EINVAL", err)
		}
		if n := tableNames(t, c); n["spoiled"] || n["spoiled2"] || !n["t"] {
			t.Errorf("tables after a refused batch: %v, want t alone", n)
		}
	})
	t.Run("message refused", func(t *testing.T) {
		c.AddTable(&nftables.Table{Name: "other", Family: nftables.TableFamilyIPv4})
		if err := c.SetDeleteElements(set, []nftables.SetElement{{Key: []byte{192, 0, 2, 1}}}); err != nil {
			t.Fatal(err)
		}
		if err := c.Flush(); !errors.Is(err, unix.ENOENT) {
			t.Fatalf("batch deleting a missing element: %v, want the kernel's ENOENT", err)
		}
		if tableNames(t, c)["other"] {
			t.Error("a batch with a refused message added a table")
		}
	})
	t.Run("answers lost", func(t *testing.T) {
		LoseAnswers.Store(true)
		t.Cleanup(func() { LoseAnswers.Store(false) })
		c.AddTable(&nftables.Table{Name: "lost", Family: nftables.TableFamilyIPv4})
		err := c.Flush()
		LoseAnswers.Store(false)
		if !errors.Is(err, unix.ENOBUFS) || errors.Is(err, errCommitted) {
			t.Fatalf("batch with its answers lost: %v, want ENOBUFS", err)
		}
		// Its answers are still queued: the next exchanges must skip them.
		if !tableNames(t, c)["lost"] {
			t.Error("the batch whose answers were lost is not in force")
		}
		for i := range 3 {
			c.AddTable(&nftables.Table{Name: fmt.Sprintf("next%d", i), Family: nftables.TableFamilyIPv4})
			if err := c.Flush(); err != nil {
				t.Fatalf("batch after lost answers: %v", err)
			}
		}
		if n := tableNames(t, c); !n["next2"] {
			t.Errorf("tables after lost answers: %v", n)
		}
	})
}
