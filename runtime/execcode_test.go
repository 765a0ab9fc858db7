package runtime

import (
	"fmt"
	"io/fs"
	"os/exec"
	"syscall"
	"testing"

	"github.com/pontoon-dev/pontoon/netsetup/ns"
)

// TestExecFailedCode: a command that cannot be started gets a shell's status (127 not found,
// 126 not executable); a failure to enter the guest, even one whose error is "no such file"
// or "permission denied", is pontoon's own (125).
func TestExecFailedCode(t *testing.T) {
	for _, tt := range []struct {
		err  error
		want int
	}{
		{fmt.Errorf("exec x: %w", ns.CommandError{Err: exec.ErrNotFound}), 127},
		{fmt.Errorf("exec x: %w", ns.CommandError{Err: syscall.ENOENT}), 127},
		{fmt.Errorf("exec x: %w", ns.CommandError{Err: syscall.EACCES}), 126},
		{fmt.Errorf("exec x: %w", ns.CommandError{Err: syscall.ENOEXEC}), 126},
		{fmt.Errorf("open namespace: %w", fs.ErrNotExist), ExitSetupFailed},
		{fmt.Errorf("setns: %w", syscall.EPERM), ExitSetupFailed},
	} {
		if got := execFailedCode(tt.err); got != tt.want {
			t.Errorf("%v: %d, want %d", tt.err, got, tt.want)
		}
	}
}
