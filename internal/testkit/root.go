// Package testkit holds what every privileged test of pontoon shares.
package testkit

import (
	"os"
	"testing"
)

// NeedRoot skips the test when it cannot or should not touch the kernel: under -short (make
// unit promises tests that need no privilege, also when run as root) and when the process is
// not root. why says what the test needs root for.
func NeedRoot(tb testing.TB, why string) {
	tb.Helper()
	if testing.Short() {
		tb.Skip("-short: skips a privileged test (" + why + ")")
	}
	if os.Geteuid() != 0 {
		tb.Skip("needs root: " + why)
	}
}
