// Package sigready holds the signals sent to a container until its first process can take
// them.
//
// A signal sent to a container while its engine is still starting it is lost. runc and crun
// (under containerd too) queue what reaches them before the container runs and pass it on as
// soon as its first process exists, which is often the moment that process executes the
// container's program; the kernel drops every signal that PID 1 of a pid namespace has no
// handler for, and a program just executed has none yet. A stop sent as a run started
// waited the whole stop timeout, the containers running on.
package sigready

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

const (
	// Grace is how long a program that runs but has no handler for a signal gets to install
	// one: programs do so as they start. Without one after that, PID 1 would drop the
	// signal whenever it came, so it goes then.
	Grace = 100 * time.Millisecond
	// HoldAtMost bounds how long a signal is held: should an engine run the program under
	// another command line, or its process be out of sight, the signal still goes.
	HoldAtMost = 2 * time.Second
	// Poll is how often a caller tries held signals again.
	Poll = 5 * time.Millisecond
)

// Gate holds the signals for one container until its first process can take them: once it
// has left the engine's code, and has a handler for the signal (or, for pontoon's init, has
// started the program: it catches every signal before that), or has run for Grace. From then
// on the gate stays open: the program may exec another or rename itself.
type Gate struct {
	// PID returns the host pid of the container's first process, or 0 while the engine has
	// not created it.
	PID func() int
	// Init: the first process is pontoon's container init. The Go runtime installs handlers
	// for every signal as it starts, before init asks for them (signal.Notify), and a signal
	// in between would end init (exit 2) instead of reaching the program; init asks before it
	// starts the program, so its child is what says it is ready.
	Init bool

	held      []syscall.Signal
	heldSince time.Time
	runsSince time.Time
	open      bool
}

// Add holds sig behind the signals held already.
func (g *Gate) Add(sig syscall.Signal) {
	if len(g.held) == 0 {
		g.heldSince = time.Now()
	}
	g.held = append(g.held, sig)
}

// Release sends the held signals, in order, once the container can take the first, and
// reports whether any are still held.
func (g *Gate) Release(send func(syscall.Signal)) bool {
	if len(g.held) == 0 {
		return false
	}
	if !g.takes(g.held[0]) && time.Since(g.heldSince) < HoldAtMost {
		return true
	}
	for _, sig := range g.held {
		send(sig)
	}
	g.held = nil
	return false
}

// Drop forgets the held signals: the container has ended.
func (g *Gate) Drop() { g.held = nil }

func (g *Gate) takes(sig syscall.Signal) bool {
	if g.open || g.PID == nil {
		return true
	}
	switch sig {
	case syscall.SIGSTOP, syscall.SIGCONT, syscall.SIGKILL:
		return true // no handler decides what they do
	}
	pid := g.PID()
	if pid <= 0 {
		return false
	}
	cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil || engines(cmdline) {
		g.runsSince = time.Time{}
		return false // not created yet, still the engine's own code, or gone
	}
	if g.runsSince.IsZero() {
		g.runsSince = time.Now()
	}
	if g.Init {
		g.open = hasChild(pid) || time.Since(g.runsSince) >= Grace
	} else {
		caught, err := Caught(pid)
		g.open = err == nil && caught&(1<<(uint(sig)-1)) != 0 || time.Since(g.runsSince) >= Grace
	}
	return g.open
}

// engines reports whether a process's command line is a container engine's own: runc's
// init (`runc init`) or crun's clone of itself, before either executes the container's
// program.
func engines(cmdline []byte) bool {
	argv0, _, _ := strings.Cut(string(cmdline), "\x00")
	switch filepath.Base(argv0) {
	case "runc", "crun":
		return true
	}
	return false
}

// hasChild reports whether process pid has started a child, from any of its threads.
func hasChild(pid int) bool {
	tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/children", pid))
	for _, t := range tasks {
		if data, err := os.ReadFile(t); err == nil && len(bytes.TrimSpace(data)) > 0 {
			return true
		}
	}
	return false
}

// Caught is the mask of signals process pid has a handler for (SigCgt), bit n-1 for signal n.
func Caught(pid int) (uint64, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range bytes.Split(data, []byte("\n")) {
		if v, ok := bytes.CutPrefix(line, []byte("SigCgt:")); ok {
			return strconv.ParseUint(string(bytes.TrimSpace(v)), 16, 64)
		}
	}
	return 0, fmt.Errorf("no SigCgt in /proc/%d/status", pid)
}
