package runtime

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// A signal sent to a container while its engine is still starting it is lost. runc and crun
// queue what reaches them before the container runs and pass it on as soon as its first
// process exists, which is often the moment that process executes the container's program;
// the kernel drops every signal PID 1 of a pid namespace has no handler for, and a program
// just executed has none yet. A stop at a run's start then waited the whole stop timeout,
// the children running on. So a signal is held on its proc until the container's first
// process runs the container's program and catches the signal (takes), and sent then.

// takes reports whether p's container can take sig now: its first process runs the
// container's program (p.argv) and has a handler for sig. A program that never installs one
// (init off, a program as PID 1 that does not handle it) would drop it anyway: holding it
// (holdAtMost) changes nothing for it, and the stop timeout still ends it.
func (p *proc) takes(sig syscall.Signal) bool {
	oci, ok := p.eng.(*ociEngine)
	if !ok || len(p.argv) == 0 {
		// containerd reports a task to its client once it runs its program.
		return true
	}
	pid := oci.initPID(p.id)
	if pid <= 0 {
		return false
	}
	cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil || string(cmdline) != strings.Join(p.argv, "\x00")+"\x00" {
		return false // not created yet, still the engine's own code, or gone (then p ends)
	}
	caught, err := caughtSignals(pid)
	return err == nil && caught&(1<<(uint(sig)-1)) != 0
}

// caughtSignals is the mask of signals process pid has a handler for (SigCgt).
func caughtSignals(pid int) (uint64, error) {
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

// holdAtMost bounds how long a signal is held: should an engine run the program under
// another command line, or its process be out of this one's sight, the signal still goes.
const holdAtMost = 2 * time.Second

// signal sends sig to p's engine process, which passes it to the container, or holds it
// until the container can take it (see takes); signals held before go first, in order.
func (p *proc) signal(sig syscall.Signal) {
	if p.done || p.cmd == nil || p.cmd.Process == nil {
		return
	}
	if len(p.held) == 0 {
		p.heldSince = time.Now()
	}
	p.held = append(p.held, sig)
	p.release()
}

// release sends p's held signals once its container can take the first of them, and
// reports whether any are still held.
func (p *proc) release() bool {
	if p.done {
		p.held = nil
	}
	if len(p.held) == 0 || !p.takes(p.held[0]) && time.Since(p.heldSince) < holdAtMost {
		return len(p.held) > 0
	}
	for _, sig := range p.held {
		p.cmd.Process.Signal(sig)
	}
	p.held = nil
	return false
}
