package netsetup

import (
	"fmt"
	"io"
)

// step is one change to the kernel, described by the equivalent shell command so that
// --dry-run can print it and errors can say which change failed. A description that is costly
// to build (a whole nftables table as text) is given as text instead of show, and built only
// when it is printed.
type step struct {
	show string
	text func() string
	do   func() error
	undo func() error
}

// describe returns the step's shell command.
func (s step) describe() string {
	if s.show == "" && s.text != nil {
		return s.text()
	}
	return s.show
}

// runner applies steps in order and can undo the ones that succeeded, so a failure halfway
// through a setup leaves nothing behind.
type runner struct {
	dry  io.Writer
	done []step
}

func (r *runner) run(steps ...step) error {
	for _, s := range steps {
		if s.do == nil {
			continue // a step the configuration leaves out
		}
		if r.dry != nil {
			fmt.Fprintln(r.dry, s.describe())
			continue
		}
		if err := s.do(); err != nil {
			return fmt.Errorf("%s: %w", s.describe(), err)
		}
		r.done = append(r.done, s)
	}
	return nil
}

// rollback undoes every applied step, newest first. Undo errors are ignored on purpose: the
// original error is what the user must see, and gc removes anything an undo could not.
func (r *runner) rollback() {
	for i := len(r.done) - 1; i >= 0; i-- {
		if u := r.done[i].undo; u != nil {
			_ = u()
		}
	}
	r.done = nil
}
