package partition

import (
	"testing"

	"github.com/pontoon-dev/pontoon/internal/nftpool"
)

// TestChangesMarkRemoval: a change that replaces rules or set elements, or comes right after
// one that did (in another process, say), leaves the kernel destroy work that the close of
// its socket would wait for: it must hand the socket to nftpool.Linger. A first change adds
// only, and a command making it exits at once.
func TestChangesMarkRemoval(t *testing.T) {
	s := newScene(t, 3, false)
	tgt := s.target()
	t.Cleanup(Release)
	Release() // what other tests of this process committed does not count
	if err := Apply(tgt, State{Partition: mustIsolate(t, tgt.Guests, "a")}); err != nil {
		t.Fatal(err)
	}
	if nftpool.Pending() {
		t.Fatal("a first change, which replaced nothing, left its socket to a lingering child")
	}
	if err := Apply(tgt, State{Partition: mustIsolate(t, tgt.Guests, "b")}); err != nil {
		t.Fatal(err)
	}
	if !nftpool.Pending() {
		t.Fatal("a change that replaced rules would close its socket at the exit")
	}
	if err := Heal(tgt); err != nil {
		t.Fatal(err)
	}
	Release()
	if err := Apply(tgt, State{Partition: mustIsolate(t, tgt.Guests, "a")}); err != nil {
		t.Fatal(err)
	}
	if !nftpool.Pending() {
		t.Fatal("a change right after a heal would wait at its exit for what the heal removed")
	}
}
