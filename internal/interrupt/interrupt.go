// Package interrupt lets a command the user interrupts stop waiting for what cannot be called
// off (a flock(2), a read under another command's lock).
package interrupt

import "context"

// Wait runs f and returns its result, or ctx's error when ctx is done first. f cannot be
// called off: it goes on in the background, and late, when given, gets a result that came
// after ctx was done (to let go of a lock it took). For a process about to end: the goroutine,
// and whatever f waits on, stay until f returns.
func Wait[T any](ctx context.Context, f func() (T, error), late func(T)) (T, error) {
	if ctx.Done() == nil {
		return f()
	}
	var none T
	if err := ctx.Err(); err != nil {
		return none, err
	}
	type result struct {
		v   T
		err error
	}
	got := make(chan result, 1)
	go func() {
		v, err := f()
		got <- result{v, err}
	}()
	select {
	case r := <-got:
		return r.v, r.err
	case <-ctx.Done():
		if late != nil {
			go func() {
				if r := <-got; r.err == nil {
					late(r.v)
				}
			}()
		}
		return none, ctx.Err()
	}
}
