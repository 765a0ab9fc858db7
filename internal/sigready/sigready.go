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
	// HoldAtMost bounds how long a signal is held: a program that never takes it (no
	// handler, as PID 1, which then drops it anyway) or an engine whose process is out of
	// sight still gets it.
	HoldAtMost = 2 * time.Second
	// Poll is how often a caller tries held signals again.
	Poll = 5 * time.Millisecond
)

// Gate holds the signals for one container until its first process can take them: once it
// has left the engine's code and catches the signal or blocks it (a program that waits for
// signals with signalfd or sigwait), or, for pontoon's init, has started the program (it
// catches every signal before that). From then on the gate stays open: the program may exec
// another or rename itself.
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
		return false // not created yet, still the engine's own code, or gone
	}
	if g.Init {
		g.open = hasChild(pid)
	} else {
		caught, err := takenSignals(pid)
		g.open = err == nil && caught&(1<<(uint(sig)-1)) != 0
	}
	return g.open
}

// engines reports whether a process's command line is a container engine's own: runc's
// init (`runc init`) or crun's clone of itself, before either executes the container's
// program, or empty, as it reads while the process executes it (its handlers may still be
// the engine's then).
func engines(cmdline []byte) bool {
	if len(cmdline) == 0 {
		return true
	}
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

// takenSignals is the mask of signals process pid takes: those it has a handler for (SigCgt)
// and those it blocks (SigBlk), which the kernel keeps for it to collect; bit n-1 is signal n.
func takenSignals(pid int) (uint64, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	var mask uint64
	found := 0
	for _, line := range bytes.Split(data, []byte("\n")) {
		for _, field := range []string{"SigCgt:", "SigBlk:"} {
			if v, ok := bytes.CutPrefix(line, []byte(field)); ok {
				m, err := strconv.ParseUint(string(bytes.TrimSpace(v)), 16, 64)
				if err != nil {
					return 0, fmt.Errorf("/proc/%d/status: %s %w", pid, field, err)
				}
				mask |= m
				found++
			}
		}
	}
	if found != 2 {
		return 0, fmt.Errorf("no SigCgt and SigBlk in /proc/%d/status", pid)
	}
	return mask, nil
}
