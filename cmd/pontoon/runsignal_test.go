package main

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestRunForwardsSignals: SIGQUIT and SIGUSR1 sent to `pontoon run` reach the children, which
// die of them here, and the run ends with their status and its bridge gone. SIGQUIT used to
// end pontoon itself with a stack dump (exit 2), leaving the bridge to gc; SIGUSR1 was lost.
func TestRunForwardsSignals(t *testing.T) {
	if _, err := exec.LookPath("runc"); err != nil {
		t.Skip("runc is not installed (Debian package runc)")
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "pontoon.toml"), []byte(`[commands.sig]
supervise = true
[commands.sig.children.a]
run = ["sh", "-c", "echo up; exec sleep 1000"]
ip = "172.18.0.1"
[commands.sig.children.b]
run = ["sh", "-c", "echo up; while true; do sleep 1; done"]
ip = "172.18.0.2"
`), 0o644); err != nil {
		t.Fatal(err)
	}
	c := newCLI(t)
	t.Cleanup(func() { c.run("gateway", "down", "--force") })
	for _, tc := range []struct {
		sig  syscall.Signal
		code int
	}{{syscall.SIGQUIT, 128 + 3}, {syscall.SIGUSR1, 128 + 10}} {
		run := c.command("run", "sig")
		run.Dir = dir
		var out bytes.Buffer
		run.Stdout, run.Stderr = &out, &out
		if err := run.Start(); err != nil {
			t.Fatal(err)
		}
		waitFor(t, 30*time.Second, "the run's children to start", func() bool { return strings.Count(out.String(), "up\n") == 2 })
		run.Process.Signal(tc.sig)
		ended := make(chan error, 1)
		go func() { ended <- run.Wait() }()
		var err error
		select {
		case err = <-ended:
		case <-time.After(30 * time.Second):
			run.Process.Kill()
			t.Fatalf("pontoon run still runs 30s after %v\n%s", tc.sig, out.String())
		}
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != tc.code {
			t.Errorf("pontoon run after %v: %v; want exit %d\n%s", tc.sig, err, tc.code, out.String())
		}
		if list := c.ok("bridge", "list"); strings.Contains(list, "sig-") {
			t.Errorf("bridge left after %v:\n%s", tc.sig, list)
		}
	}
}
