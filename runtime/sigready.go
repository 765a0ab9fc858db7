package runtime

import (
	"syscall"

	"github.com/pontoon-dev/pontoon/internal/sigready"
)

// signal sends sig to p's engine process, which passes it to the container, once the
// container can take it (see sigready); signals held before go first, in order. It reports
// whether any are still held.
func (p *proc) signal(sig syscall.Signal) bool {
	if p.done || p.cmd == nil || p.cmd.Process == nil {
		return false
	}
	p.gate.Add(sig)
	return p.release()
}

// release sends p's held signals once its container can take them, and reports whether any
// are still held.
func (p *proc) release() bool {
	if p.done {
		p.gate.Drop()
	}
	return p.gate.Release(func(sig syscall.Signal) { p.cmd.Process.Signal(sig) })
}

// signalGate is the gate for the signals of container id of engine eng, whose first process
// is pontoon's init when init is set: runc and crun say its pid in their state; containerd's
// helper holds signals itself (told of init by the bundle, see containerdEngine.Command).
func signalGate(eng Engine, id string, init bool) sigready.Gate {
	oci, ok := eng.(*ociEngine)
	if !ok {
		return sigready.Gate{}
	}
	return sigready.Gate{PID: func() int { return oci.initPID(id) }, Init: init}
}
