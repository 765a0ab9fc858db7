package interrupt

import (
	"context"
	"errors"
	"testing"
	"time"
)

// TestWait: a wait called off returns ctx's error at once, and a result that comes later goes
// to late; one that comes first is returned, and late never sees it.
func TestWait(t *testing.T) {
	release, started := make(chan struct{}), make(chan struct{})
	lateGot := make(chan int, 1)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, err := Wait(ctx, func() (int, error) { close(started); <-release; return 7, nil }, func(v int) { lateGot <- v })
		done <- err
	}()
	<-started // called off while f waits, not before it starts (then f never runs)
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("called off: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Wait did not return when its context was done")
	}
	close(release)
	if v := <-lateGot; v != 7 {
		t.Errorf("late got %d", v)
	}

	v, err := Wait(context.Background(), func() (int, error) { return 3, nil }, func(int) { t.Error("late called for a result returned") })
	if v != 3 || err != nil {
		t.Errorf("plain wait: %d, %v", v, err)
	}
	ctx2, cancel2 := context.WithCancel(context.Background())
	defer cancel2()
	if v, err := Wait(ctx2, func() (int, error) { return 4, nil }, nil); v != 4 || err != nil {
		t.Errorf("wait with a live context: %d, %v", v, err)
	}
}
