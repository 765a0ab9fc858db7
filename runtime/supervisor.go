package runtime

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	goruntime "runtime"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/pontoon-dev/pontoon/internal/sigready"
	"github.com/pontoon-dev/pontoon/runtime/config"
	"golang.org/x/sys/unix"
)

// proc is one container's foreground engine process.
type proc struct {
	name, id, bundle, image string
	eng                     Engine
	prefix                  string
	plain                   bool // the caller's stdio, no prefixes
	// attached: pontoon attached the container's guest itself, records the container's
	// process on it once the engine has created it (recorded is closed then, or when the
	// engine ended first) and detaches it once the engine has ended (ended), where the
	// hooks would have.
	attached        bool
	ended, recorded chan struct{}

	cmd         *exec.Cmd
	copying     sync.WaitGroup
	code        int
	exited      time.Time // when the engine process ended, before its output drained
	done        bool
	killed      bool // hard-killed: the engine may not have cleaned up
	interactive bool
	// gate holds the signals sent while the container starts (see sigready).
	gate sigready.Gate
}

func (p *proc) start(r *run, lw *lineWriter) error {
	cmd := p.eng.Command(p.id, p.bundle, p.image, p.plain)
	// Pdeathsig: should pontoon die, the engine gets SIGTERM and passes it to the
	// container (whose init passes it on), instead of leaving it running on a bridge gc
	// will remove; GC deletes whatever still runs then.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	if p.plain {
		cmd.Stdin, cmd.Stdout, cmd.Stderr = r.opt.Stdin, r.opt.Stdout, r.opt.Stderr
		if f, ok := r.opt.Stdin.(*os.File); ok && isTerminal(f) {
			// A terminal's Ctrl-C reaches the whole foreground process group, engine
			// included; pontoon must not forward it a second time.
			p.interactive = true
		} else {
			cmd.SysProcAttr.Setpgid = true
		}
	} else {
		// Children get signals from pontoon only, never twice from a terminal.
		cmd.SysProcAttr.Setpgid = true
		outR, outW, err := os.Pipe()
		if err != nil {
			return fmt.Errorf("start %s: output pipe: %w", p.name, err)
		}
		errR, errW, err := os.Pipe()
		if err != nil {
			outR.Close()
			outW.Close()
			return fmt.Errorf("start %s: output pipe: %w", p.name, err)
		}
		cmd.Stdout, cmd.Stderr = outW, errW
		defer outW.Close()
		defer errW.Close()
		p.copying.Add(2)
		go func() { defer p.copying.Done(); defer outR.Close(); lw.copyPrefixed(r.opt.Stdout, outR, p.prefix) }()
		go func() { defer p.copying.Done(); defer errR.Close(); lw.copyPrefixed(r.opt.Stderr, errR, p.prefix) }()
	}
	p.cmd = cmd
	if err := r.dir.addContainer(p.id, config.Runtime(p.eng.Name())); err != nil {
		p.dropOutput()
		return fmt.Errorf("start %s: %w", p.name, err)
	}
	if err := r.forker.start(cmd); err != nil {
		p.dropOutput()
		return fmt.Errorf("start %s with %s: %w", p.name, p.eng.Name(), err)
	}
	// Failing to record the engine only narrows what GC can do should pontoon die.
	r.dir.started(p.id, cmd.Process.Pid)
	return nil
}

// dropOutput ends the copying of an engine process that did not start: its output pipes'
// write ends are closed, so the copies read to the end.
func (p *proc) dropOutput() {
	if p.plain {
		return
	}
	p.cmd.Stdout.(*os.File).Close()
	p.cmd.Stderr.(*os.File).Close()
	p.copying.Wait()
}

// forker starts processes from one OS thread that stays alive for the whole run. The
// kernel sends Pdeathsig when the thread that forked a child exits, not the process; Go
// ends a thread whenever a goroutine locked to it returns, which is how netsetup/ns
// discards threads it moved between namespaces, so a child forked from an arbitrary thread
// would get its death signal at a random moment.
type forker struct {
	reqs chan func()
}

func newForker() *forker {
	f := &forker{reqs: make(chan func())}
	go func() {
		goruntime.LockOSThread()
		for fn := range f.reqs {
			fn()
		}
		// Back to the pool only once every child is gone.
		goruntime.UnlockOSThread()
	}()
	return f
}

func (f *forker) start(cmd *exec.Cmd) error {
	errc := make(chan error, 1)
	f.reqs <- func() { errc <- cmd.Start() }
	return <-errc
}

func (f *forker) close() { close(f.reqs) }

func isTerminal(f *os.File) bool {
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}

// wait waits for the engine process and its output, and records the exit status.
func (p *proc) wait() {
	err := p.cmd.Wait()
	p.exited = time.Now()
	p.code = exitCode(p.cmd.ProcessState, err)
	// Output ends when the container's last process is gone; a daemon that escaped the
	// container's pid namespace must not hold the run open.
	done := make(chan struct{})
	go func() { p.copying.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(2 * time.Second):
	}
}

func exitCode(ps *os.ProcessState, err error) int {
	if ps == nil {
		return ExitSetupFailed
	}
	if ws, ok := ps.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return 128 + int(ws.Signal())
	}
	return ps.ExitCode()
}

// supervisor starts procs, forwards signals, applies the exit policy and returns the
// run's status once every proc has exited.
func (r *run) supervisor(ctx context.Context, procs []*proc, policy config.Exit, started Started) (int, error) {
	lw := &lineWriter{}
	r.forker = newForker()
	defer r.forker.close()
	exits := make(chan *proc, len(procs))
	running := 0
	for i, p := range procs {
		if err := p.start(r, lw); err != nil {
			// Killing an engine midway can leave its container behind; Delete removes it.
			for _, q := range procs[:i] {
				q.cmd.Process.Kill()
			}
			for j := 0; j < running; j++ {
				<-exits
			}
			for _, q := range procs[:i] {
				q.eng.Delete(q.id)
			}
			return ExitSetupFailed, err
		}
		running++
		if p.attached {
			p.ended, p.recorded = make(chan struct{}), make(chan struct{})
			go r.recordProcess(p)
		}
		go func(p *proc) {
			p.wait()
			if p.attached {
				close(p.ended)
				<-p.recorded
				r.detachGuest(p.id)
			}
			exits <- p
		}(p)
	}
	if r.opt.Started != nil {
		// On its own goroutine: a callback that waits for services must not hold up
		// signals and exits.
		go r.opt.Started(started)
	}
	// The schedule ends, and heals, before the run's bridge goes (see the end).
	stopSchedule := r.startSchedule(started)
	r.startServices(started)
	// A plain command's status is always its container's own, signals or not.
	plain := len(procs) == 1 && procs[0].plain
	interactive := plain && procs[0].interactive
	var (
		code      int
		decided   bool
		decidedAt time.Time
		stopping  bool
		stopTimer <-chan time.Time
		killTimer <-chan time.Time
		heldTimer <-chan time.Time
		ctxDone   = ctx.Done()
	)
	signalAll := func(sig syscall.Signal) {
		if r.signalAll(procs, sig) && heldTimer == nil {
			heldTimer = time.After(sigready.Poll)
		}
	}
	stop := func(sig syscall.Signal, why string) {
		stopping = true
		if why != "" {
			r.logf("%s", why)
		}
		signalAll(sig)
		stopTimer = time.After(r.stopTimeout)
	}
	hardKill := func(why string) {
		r.logf("%s", why)
		r.stopAll(procs, syscall.SIGKILL)
		stopTimer = nil
		killTimer = time.After(5 * time.Second)
	}
	for running > 0 {
		select {
		case p := <-exits:
			running--
			p.done = true
			if plain {
				code, decided = p.code, true
				continue
			}
			if stopping {
				continue
			}
			switch {
			case policy == config.ExitAll:
				// The first to fail decides, by when it ended: reports arrive once
				// output has drained, which may be in another order.
				if p.code != 0 && (!decided || p.exited.Before(decidedAt)) {
					code, decided, decidedAt = p.code, true, p.exited
				}
				if running > 0 {
					r.logf("%s; waiting for %s", exitWords(p), strings.Join(runningNames(procs), ", "))
				} else if p.code != 0 || code != 0 {
					r.logf("%s; the run's status is %d", exitWords(p), code)
				}
			case running > 0:
				code, decided = p.code, true
				stop(syscall.SIGTERM, exitWords(p)+"; stopping the others")
			default:
				code, decided = p.code, true
			}
		case s := <-r.opt.Signals:
			sig, ok := s.(syscall.Signal)
			if !ok {
				continue
			}
			if sig == syscall.SIGINT && interactive {
				// The terminal delivered Ctrl-C to the container itself, which decides
				// what it means (an interactive shell just abandons its line).
				continue
			}
			if sig != syscall.SIGINT && sig != syscall.SIGTERM {
				signalAll(sig)
				continue
			}
			if !stopping {
				if !decided && !plain {
					code, decided = 128+int(sig), true
				}
				stop(sig, fmt.Sprintf("got %s; stopping (again to kill at once)", unix.SignalName(sig)))
			} else {
				hardKill(fmt.Sprintf("got %s again; killing every container", unix.SignalName(sig)))
			}
		case <-ctxDone:
			ctxDone = nil
			if !stopping {
				if !decided && !plain {
					code, decided = 128+int(syscall.SIGTERM), true
				}
				stop(syscall.SIGTERM, "cancelled; stopping")
			}
		case <-heldTimer:
			heldTimer = nil
			if releaseAll(procs) {
				heldTimer = time.After(sigready.Poll)
			}
		case <-stopTimer:
			hardKill(fmt.Sprintf("%s did not stop within %v of the stop signal; killing them", strings.Join(runningNames(procs), ", "), r.stopTimeout))
		case <-killTimer:
			// The engine itself does not react: end it and clean up after it.
			killTimer = nil
			for _, p := range procs {
				if !p.done && p.cmd.Process != nil {
					p.cmd.Process.Kill()
				}
			}
		}
	}
	// A run whose faults did not happen as written must not pass for one that survived them.
	if err := stopSchedule(); err != nil && code == 0 {
		r.logf("exit status %d: the fault schedule did not run as written", ExitSetupFailed)
		code = ExitSetupFailed
	}
	for _, p := range procs {
		if p.killed {
			if err := p.eng.Delete(p.id); err != nil {
				r.logf("%v", err)
			}
		}
	}
	return code, nil
}

// exitWords tells how a child ended. A status above 128 is read as the shell does, as the
// signal that ended it: runc reports a container killed by SIGKILL as status 137.
func exitWords(p *proc) string {
	if p.code > 128 && p.code < 128+65 {
		if name := unix.SignalName(syscall.Signal(p.code - 128)); name != "" {
			return fmt.Sprintf("%s exited with status %d (%s)", p.name, p.code, name)
		}
	}
	return fmt.Sprintf("%s exited with status %d", p.name, p.code)
}

// runningNames returns the names of the containers still running.
func runningNames(procs []*proc) []string {
	var out []string
	for _, p := range procs {
		if !p.done {
			out = append(out, p.name)
		}
	}
	return out
}

// signalAll sends sig to every running engine process, which passes it to its container, or
// holds it for a container that cannot take it yet; it reports whether any holds one.
func (r *run) signalAll(procs []*proc, sig syscall.Signal) bool {
	held := false
	for _, p := range procs {
		held = p.signal(sig) || held
	}
	return held
}

// releaseAll sends the signals held for containers that can take them now, and reports
// whether any are still held.
func releaseAll(procs []*proc) bool {
	held := false
	for _, p := range procs {
		held = p.release() || held
	}
	return held
}

// stopAll kills every running container through its engine (killing the engine process
// would leave the container running).
func (r *run) stopAll(procs []*proc, sig syscall.Signal) {
	var wg sync.WaitGroup
	for _, p := range procs {
		if p.done || p.cmd == nil || p.cmd.Process == nil {
			continue
		}
		p.killed = true
		wg.Add(1)
		go func(p *proc) {
			defer wg.Done()
			if err := p.eng.Kill(p.id, sig); err != nil {
				r.logf("%v", err)
			}
		}(p)
	}
	wg.Wait()
}
