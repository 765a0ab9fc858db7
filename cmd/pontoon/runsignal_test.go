package main

import (
	"bufio"
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
	dir := runcProject(t, `[commands.sig]
supervise = true
[commands.sig.children.a]
run = ["sh", "-c", "echo up; exec sleep 1000"]
ip = "172.18.0.1"
[commands.sig.children.b]
run = ["sh", "-c", "echo up; while true; do sleep 1; done"]
ip = "172.18.0.2"
`)
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

// TestRunStopsWhileItsChildrenStart: SIGINT reaching `pontoon run` as its containers start
// stops them at once. It used to be passed to runc while runc was starting the container,
// which passed it on as the container's process executed its program, before that program
// could catch it: PID 1 of a pid namespace drops a signal it has no handler for, and the
// run waited its whole stop timeout (here 60s) with its children running.
func TestRunStopsWhileItsChildrenStart(t *testing.T) {
	dir := runcProject(t, `[commands.start]
supervise = true
stop_timeout = "60s"
[commands.start.children.a]
run = ["sleep", "1000"]
ip = "172.18.0.1"
[commands.start.children.b]
run = ["sleep", "1000"]
ip = "172.18.0.2"
`)
	c := newCLI(t)
	t.Cleanup(func() { c.run("gateway", "down", "--force") })
	// From the line the run logs as it starts its containers: the signal reaches runc while
	// the containers are being created, started, and just after.
	for _, after := range []time.Duration{0, time.Millisecond, 2 * time.Millisecond, 4 * time.Millisecond, 7 * time.Millisecond,
		10 * time.Millisecond, 14 * time.Millisecond, 20 * time.Millisecond, 30 * time.Millisecond, 45 * time.Millisecond} {
		run := c.command("run", "start")
		run.Dir = dir
		r, w, err := os.Pipe()
		if err != nil {
			t.Fatal(err)
		}
		run.Stdout, run.Stderr = w, w
		if err := run.Start(); err != nil {
			t.Fatal(err)
		}
		w.Close()
		starting := make(chan struct{})
		var out bytes.Buffer
		copied := make(chan struct{})
		go func() {
			defer close(copied)
			sc := bufio.NewScanner(r)
			for sc.Scan() {
				out.WriteString(sc.Text() + "\n")
				if strings.HasPrefix(sc.Text(), "pontoon: running start on bridge") {
					close(starting)
				}
			}
		}()
		ended := make(chan error, 1)
		go func() { ended <- run.Wait() }()
		select {
		case <-starting:
		case err := <-ended:
			<-copied
			t.Fatalf("pontoon run ended before starting its children: %v\n%s", err, out.String())
		case <-time.After(30 * time.Second):
			run.Process.Kill()
			t.Fatal("pontoon run did not start its children within 30s")
		}
		time.Sleep(after)
		run.Process.Signal(syscall.SIGINT)
		select {
		case err = <-ended:
		case <-time.After(20 * time.Second):
			// Well below the stop timeout: a child that took the signal stops in milliseconds.
			run.Process.Signal(syscall.SIGINT) // again: kill at once
			err = <-ended
			<-copied
			t.Fatalf("SIGINT %v after the run started its children: still running 20s later\n%s", after, out.String())
		}
		<-copied
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 130 {
			t.Errorf("SIGINT %v after the run started its children: %v; want exit 130\n%s", after, err, out.String())
		}
		if strings.Contains(out.String(), "did not stop") {
			t.Errorf("SIGINT %v after the run started its children: they did not stop\n%s", after, out.String())
		}
	}
	if list := c.ok("bridge", "list"); strings.Contains(list, "start-") {
		t.Errorf("bridge left:\n%s", list)
	}
}

// runcProject is a project directory whose pontoon.toml is toml, for a test that runs it
// with runc (skipped without).
func runcProject(t *testing.T, toml string) string {
	t.Helper()
	if _, err := exec.LookPath("runc"); err != nil {
		t.Skip("runc is not installed (Debian package runc)")
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "pontoon.toml"), []byte(toml), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}
