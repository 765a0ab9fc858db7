package partition

import (
	"errors"
	"fmt"
	"reflect"
	"testing"

	"github.com/pontoon-dev/pontoon/internal/nftwire"
	"golang.org/x/sys/unix"
)

// TestBatchRefusedMidway: a batch the kernel refuses in its middle, in either
// step of a change, changes nothing: the change fails with the kernel's
// reason, and the table, the record and Status still hold what was applied
// before.
func TestBatchRefusedMidway(t *testing.T) {
	s := newScene(t, 4, false)
	tgt := s.target()
	before := mustIsolate(t, tgt.Guests, "a")
	if err := Apply(tgt, State{Partition: before}); err != nil {
		t.Fatal(err)
	}
	for step := int32(1); step <= 2; step++ {
		t.Run(fmt.Sprintf("step %d", step), func(t *testing.T) {
			rec, err := Recorded(tgt)
			if err != nil {
				t.Fatal(err)
			}
			nftwire.SpoilBatch.Store(step)
			t.Cleanup(func() { nftwire.SpoilBatch.Store(0) })
			err = Apply(tgt, State{Partition: mustIsolate(t, tgt.Guests, "b")})
			if !errors.Is(err, unix.EINVAL) {
				t.Fatalf("apply with a refused batch: %v, want the kernel's EINVAL", err)
			}
			if n := nftwire.SpoilBatch.Load(); n != 0 {
				t.Fatalf("the change sent %d batches fewer than the one to refuse", n)
			}
			after, err := Recorded(tgt)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(after.Partition.Blocked, rec.Partition.Blocked) {
				t.Errorf("record after a refused change: %v, want %v", after.Partition.Blocked, rec.Partition.Blocked)
			}
			st, err := Status(tgt)
			if err != nil {
				t.Fatal(err)
			}
			if st.Kernel == nil || !st.Kernel.InEffect || len(st.Blocked) != len(before.Blocked) {
				t.Fatalf("status after a refused change: %+v, %d pairs, want %d in effect", st.Kernel, len(st.Blocked), len(before.Blocked))
			}
			for _, b := range st.Blocked {
				if b.Src != "a" && b.Dst != "a" {
					t.Errorf("the kernel blocks %s->%s: not a's", b.Src, b.Dst)
				}
			}
		})
	}
}
