package testenv

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/pontoon-dev/pontoon/internal/testkit"
)

// killWait bounds how long Wait waits for output pipes after the process exited, when a
// process it started escaped the kill and still holds them.
const killWait = 5 * time.Second

// Process is a process started in a guest.
type Process struct {
	guest *Guest
	cmd   *exec.Cmd
	out   testkit.Buffer
	done  chan struct{}
	err   error // valid once done is closed
}

func newProcess(g *Guest, cmd *exec.Cmd) *Process {
	p := &Process{guest: g, cmd: cmd, done: make(chan struct{})}
	cmd.Stdout = &p.out
	cmd.Stderr = &p.out
	// Its own process group, so that killing it also kills whatever it started (a shell's
	// children, a supervisor's workers).
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = p.killGroup
	cmd.WaitDelay = killWait
	return p
}

// started collects the exit status in the background, so the process is reaped even when
// nobody calls Wait.
func (p *Process) started() {
	go func() {
		p.err = p.cmd.Wait()
		close(p.done)
	}()
}

func (p *Process) killGroup() error {
	if err := syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
		return err
	}
	return nil
}

// killStrays kills what is left of the process group after its leader exited and was reaped.
// The group id is the leader's pid, which the kernel may hand to a new process once no member
// of the group is left; such a process would be a group leader itself (pid == pgid), so the
// group is only killed while no process has the leader's pid.
func (p *Process) killStrays() {
	pgid := p.cmd.Process.Pid
	if _, err := os.Stat(fmt.Sprintf("/proc/%d", pgid)); err == nil {
		return
	}
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if g, err := syscall.Getpgid(pid); err == nil && g == pgid {
			syscall.Kill(-pgid, syscall.SIGKILL)
			return
		}
	}
}

// Pid returns the process id.
func (p *Process) Pid() int { return p.cmd.Process.Pid }

// Guest returns the guest the process runs in.
func (p *Process) Guest() *Guest { return p.guest }

// Wait waits for the process to exit and returns its error as exec.Cmd.Wait does (nil for exit
// status 0). It may be called any number of times, from any goroutine.
func (p *Process) Wait() error {
	<-p.done
	return p.err
}

// Exited reports whether the process has exited.
func (p *Process) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Done returns a channel closed when the process has exited.
func (p *Process) Done() <-chan struct{} { return p.done }

// Signal sends sig to the process alone (not to the processes it started).
func (p *Process) Signal(sig os.Signal) error {
	if p.Exited() {
		return nil
	}
	return p.cmd.Process.Signal(sig)
}

// Kill kills the process and every process it started (its process group, also when the
// process itself has already exited) and waits for it to exit.
func (p *Process) Kill() {
	select {
	case <-p.done:
	default:
		p.killGroup()
		<-p.done
	}
	p.killStrays()
}

// Output returns what the process wrote to stdout and stderr so far, interleaved as written.
func (p *Process) Output() string { return p.out.String() }

// String describes the process, e.g. `"kvnode --id 1" (pid 123) in guest n1: exit status 1`.
func (p *Process) String() string {
	s := fmt.Sprintf("%q (pid %d) in guest %s", strings.Join(p.cmd.Args, " "), p.cmd.Process.Pid, p.guest.name)
	select {
	case <-p.done:
		if p.err != nil {
			return s + ": " + p.err.Error()
		}
		return s + ": exited"
	default:
		return s + ": running"
	}
}

func indent(s string) string {
	s = strings.TrimRight(s, "\n")
	if s == "" {
		return "\t(no output)"
	}
	return "\t" + strings.ReplaceAll(s, "\n", "\n\t")
}
