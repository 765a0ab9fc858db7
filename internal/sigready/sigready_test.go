package sigready

import (
	"os"
	"os/exec"
	"syscall"
	"testing"
	"time"
)

func record() (*[]syscall.Signal, func(syscall.Signal)) {
	var sent []syscall.Signal
	return &sent, func(s syscall.Signal) { sent = append(sent, s) }
}

// TestGateWaitsForTheProcess: a signal waits while the container's process does not exist,
// and goes once it runs a program that catches it (this test process, whose Go runtime
// catches SIGURG), with those held behind it, in order; from then on the gate stays open.
func TestGateWaitsForTheProcess(t *testing.T) {
	sent, send := record()
	pid := 0
	g := Gate{PID: func() int { return pid }}
	g.Add(syscall.SIGURG)
	g.Add(syscall.SIGWINCH)
	if !g.Release(send) || len(*sent) != 0 {
		t.Fatalf("sent %v before the process exists", *sent)
	}
	pid = os.Getpid()
	if g.Release(send) || len(*sent) != 2 || (*sent)[0] != syscall.SIGURG || (*sent)[1] != syscall.SIGWINCH {
		t.Fatalf("sent %v once the process runs and catches SIGURG; want [SIGURG SIGWINCH]", *sent)
	}
	pid = 0 // open for good: a later signal goes at once
	g.Add(syscall.SIGUSR2)
	if g.Release(send) || len(*sent) != 3 {
		t.Errorf("a signal after the gate opened was held; sent %v", *sent)
	}
}

// TestGateWaitsForEngineCode: a process still in the engine's own code (its command line
// runc's or crun's) takes nothing yet; a program that traps the signal opens the gate for
// good; one with no handler gets it only when HoldAtMost has passed, and the gate stays shut;
// SIGSTOP and SIGCONT, which no handler decides, go at once.
func TestGateWaitsForEngineCode(t *testing.T) {
	for _, c := range []struct {
		cmdline string
		engine  bool
	}{{"", true}, {"runc\x00init\x00", true}, {"/usr/sbin/runc\x00init\x00", true}, {"/usr/bin/crun\x00--root\x00/x\x00run\x00id\x00", true},
		{"sleep\x00100\x00", false}, {"/bin/sh\x00/entrypoint.sh\x00", false}, {"postgres: checkpointer\x00", false}} {
		if got := engines([]byte(c.cmdline)); got != c.engine {
			t.Errorf("engines(%q) = %v, want %v", c.cmdline, got, c.engine)
		}
	}
	start := func(args ...string) int {
		cmd := exec.Command(args[0], args[1:]...)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
		return cmd.Process.Pid
	}
	sent, send := record()
	trapper := start("sh", "-c", "trap 'echo usr1' USR1; while :; do sleep 0.05; done")
	g := Gate{PID: func() int { return trapper }}
	g.Add(syscall.SIGUSR1)
	deadline := time.Now().Add(HoldAtMost / 2)
	for g.Release(send) && time.Now().Before(deadline) {
		time.Sleep(Poll)
	}
	if len(*sent) != 1 || !g.open {
		t.Errorf("a program that traps SIGUSR1: sent %v, gate open %v; want it sent, the gate open for good", *sent, g.open)
	}
	sleeper := start("sleep", "30") // no handler
	g = Gate{PID: func() int { return sleeper }}
	g.Add(syscall.SIGUSR1)
	time.Sleep(20 * Poll) // sleep has started
	if !g.Release(send) || len(*sent) != 1 {
		t.Fatalf("SIGUSR1 went to a program with no handler for it before HoldAtMost; sent %v", *sent)
	}
	g.heldSince = time.Now().Add(-HoldAtMost)
	if g.Release(send) || len(*sent) != 2 || g.open {
		t.Errorf("after HoldAtMost: sent %v, gate open %v; want it sent and the gate still shut", *sent, g.open)
	}
	g = Gate{PID: func() int { return 0 }}
	g.Add(syscall.SIGSTOP)
	if g.Release(send) || (*sent)[len(*sent)-1] != syscall.SIGSTOP {
		t.Errorf("SIGSTOP waited for a process that does not exist yet")
	}
}

// TestGateInit: pontoon's init catches every signal as soon as its Go runtime starts, before
// it asks for them; its gate waits for its child, the program, which init starts after.
func TestGateInit(t *testing.T) {
	sh := exec.Command("sh", "-c", "read x; sleep 30")
	in, err := sh.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := sh.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sh.Process.Kill(); sh.Wait() })
	sent, send := record()
	g := Gate{PID: func() int { return sh.Process.Pid }, Init: true}
	g.Add(syscall.SIGUSR1)
	release := func() bool { return g.Release(send) }
	for range 20 {
		if !release() {
			t.Fatalf("the signal went before init had started its program; sent %v", *sent)
		}
		time.Sleep(Poll)
	}
	in.Write([]byte("go\n"))
	deadline := time.Now().Add(5 * time.Second)
	for release() {
		if time.Now().After(deadline) {
			t.Fatal("the signal still waits 5s after init started its program")
		}
		time.Sleep(Poll)
	}
	if len(*sent) != 1 {
		t.Errorf("sent %v; want [SIGUSR1]", *sent)
	}
}

func TestTakenSignals(t *testing.T) {
	mask, err := takenSignals(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if mask&(1<<(uint(syscall.SIGURG)-1)) == 0 {
		t.Errorf("mask %x lacks SIGURG, which the Go runtime catches", mask)
	}
	if mask&(1<<(uint(syscall.SIGKILL)-1)) != 0 {
		t.Errorf("mask %x has SIGKILL, which nothing catches or blocks", mask)
	}
}
