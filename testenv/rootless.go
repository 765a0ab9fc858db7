package testenv

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"runtime"
	"syscall"
	"testing"

	"github.com/pontoon-dev/pontoon/internal/testkit"
	"github.com/pontoon-dev/pontoon/internal/userns"
)

// RootlessEnv, set to "0", keeps a test binary run by a normal user in the user's own
// namespaces: New then skips instead of building the chain in a user namespace.
const RootlessEnv = "PONTOON_TESTENV_USERNS"

// A test binary that links testenv and runs as a normal user runs again, whole, as uid 0 of a
// user namespace of its own (with new mount, network and UTS namespaces), where New builds
// the chain exactly as it does for root. Re-running the whole binary from its start, rather
// than from some later point, keeps go test's view intact: the child inherits the flags
// (-test.run, -test.v, coverage, timeouts), the working directory, the environment and the
// standard streams, so the output, the exit code and coverage profiles are the child's; the
// parent only passes signals on and exits as the child did. Everything the tests create
// stays inside namespaces the user owns.
func init() {
	if !testing.Testing() || os.Geteuid() == 0 || userns.Inside() || os.Getenv(RootlessEnv) == "0" {
		return
	}
	// No trial first (userns.Available costs a process start): when the namespaces cannot be
	// made, the tests run here, and New skips, saying why.
	if code, ran := runInUserns(); ran {
		os.Exit(code)
	}
}

// runInUserns runs this binary again in a user namespace and returns the exit code to exit
// with; ran is false when the child could not be started or set up.
func runInUserns() (code int, ran bool) {
	// The child dies with the thread that started it (Pdeathsig): this goroutine's thread,
	// kept until exit.
	runtime.LockOSThread()
	cmd, err := userns.Reexec(userns.Spec{}, os.Args...)
	if err != nil {
		runtime.UnlockOSThread()
		return 0, false
	}
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	// Signals sent to this process alone (go test's SIGQUIT on a timeout, a kill by pid) must
	// reach the tests; signals from the terminal reach both, and a second one is harmless.
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGQUIT, syscall.SIGHUP)
	if err = cmd.Start(); err == nil {
		go func() {
			for s := range sigs {
				cmd.Process.Signal(s)
			}
		}()
		err = cmd.Wait()
	}
	var ee *exec.ExitError
	switch {
	case err == nil:
		return 0, true
	case errors.As(err, &ee) && ee.ExitCode() != userns.ExitSetup:
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			fmt.Fprintf(os.Stderr, "testenv: the tests in the user namespace were killed by %v\n", ws.Signal())
			return 128 + int(ws.Signal()), true
		}
		return ee.ExitCode(), true
	}
	signal.Stop(sigs)
	runtime.UnlockOSThread()
	return 0, false
}

// needPrivilege skips the test when New cannot build a chain: under -short, and for a normal
// user when user namespaces are unavailable (with the kernel's reason) or RootlessEnv keeps
// the binary out of them.
func needPrivilege(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 && !testing.Short() {
		if err := userns.Available(); err != nil {
			t.Skipf("testenv needs root or user namespaces: %v", err)
		}
		if os.Getenv(RootlessEnv) == "0" {
			t.Skipf("testenv needs root: %s=0 keeps the tests out of a user namespace", RootlessEnv)
		}
	}
	testkit.NeedRoot(t, "testenv creates network namespaces; run the test as root or as a user allowed user namespaces")
}
