// Package testkit holds what every privileged test of pontoon shares.
package testkit

import (
	"os"
	"testing"

	"github.com/pontoon-dev/pontoon/internal/userns"
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

// NeedHostRoot is NeedRoot for tests that need root of the host itself, not root of a user
// namespace (where a test binary of a normal user may run, see package testenv): to run
// something as another account, to change the host's own network. Its skip says "needs the
// host's root", which the rootless lane (make test-rootless) accepts as a reason.
func NeedHostRoot(tb testing.TB, why string) {
	tb.Helper()
	NeedRoot(tb, why)
	if userns.Inside() {
		tb.Skip("needs the host's root, not a user namespace's: " + why)
	}
}
