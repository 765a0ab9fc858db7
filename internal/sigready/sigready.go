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
// runs the container's program (Argv) and catches the signal, or has run it for Grace.
type Gate struct {
	// PID returns the host pid of the container's first process, or 0 while the engine has
	// not created it.
	PID func() int
	// Argv is the container's process as its bundle runs it.
	Argv []string

	held      []syscall.Signal
	heldSince time.Time
	runsSince time.Time
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
	if g.PID == nil || len(g.Argv) == 0 {
		return true
	}
	pid := g.PID()
	if pid <= 0 {
		return false
	}
	cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil || string(cmdline) != strings.Join(g.Argv, "\x00")+"\x00" {
		g.runsSince = time.Time{}
		return false // not created yet, still the engine's own code, or gone
	}
	if g.runsSince.IsZero() {
		g.runsSince = time.Now()
	}
	caught, err := Caught(pid)
	return err == nil && caught&(1<<(uint(sig)-1)) != 0 || time.Since(g.runsSince) >= Grace
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
