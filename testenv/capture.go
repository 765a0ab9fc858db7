package testenv

import (
	"context"
	"fmt"
	"os"

	"github.com/pontoon-dev/pontoon/capture"
)

// Capture starts recording the traffic of the guests o names (every guest when it names none)
// into a pcapng file at path, one interface per guest (package capture). The capture is
// running when Capture returns; it ends with Stop, or when o's duration or count is reached,
// and t.Cleanup stops it if the test did not. Frames the partition drops are in the file on
// their sender's interface.
func (e *Env) Capture(path string, o capture.Options) *capture.Capture {
	e.t.Helper()
	f, err := os.Create(path)
	if err != nil {
		e.t.Fatalf("testenv: capture: %v", err)
	}
	c, err := capture.Start(context.Background(), e.Target(), f, o)
	if err != nil {
		f.Close()
		e.t.Fatalf("testenv: %v", err)
	}
	// The file is complete once the capture has ended (Wait, Done); it is closed at cleanup.
	e.t.Cleanup(func() {
		_, err := c.Stop()
		if cerr := f.Close(); err == nil && cerr != nil {
			err = fmt.Errorf("close %s: %w", path, cerr)
		}
		if err != nil {
			e.t.Errorf("testenv: capture into %s: %v", path, err)
		}
	})
	return c
}
