package sigready

import (
	"os"
	"syscall"
	"testing"
)

// TestGate: a signal waits while the container's process does not exist or runs another
// program, and goes once it runs the container's and catches the signal (this test
// process, whose Go runtime catches SIGURG), in the order sent.
func TestGate(t *testing.T) {
	var sent []syscall.Signal
	send := func(s syscall.Signal) { sent = append(sent, s) }
	pid := 0
	g := Gate{PID: func() int { return pid }, Argv: []string{"not", "this"}}
	g.Add(syscall.SIGURG)
	g.Add(syscall.SIGWINCH)
	if !g.Release(send) || len(sent) != 0 {
		t.Fatalf("sent %v before the process exists", sent)
	}
	pid = os.Getpid()
	if !g.Release(send) || len(sent) != 0 {
		t.Fatalf("sent %v while the process runs another program", sent)
	}
	g.Argv = os.Args
	if g.Release(send) || len(sent) != 2 || sent[0] != syscall.SIGURG || sent[1] != syscall.SIGWINCH {
		t.Fatalf("sent %v once the process runs the program and catches SIGURG; want [SIGURG SIGWINCH]", sent)
	}
	if (&Gate{}).Release(send) || len(sent) != 2 {
		t.Errorf("a gate with nothing held sent %v", sent[2:])
	}
}

func TestCaught(t *testing.T) {
	mask, err := Caught(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if mask&(1<<(uint(syscall.SIGURG)-1)) == 0 {
		t.Errorf("SigCgt %x lacks SIGURG, which the Go runtime catches", mask)
	}
	if mask&(1<<(uint(syscall.SIGKILL)-1)) != 0 {
		t.Errorf("SigCgt %x has SIGKILL, which nothing catches", mask)
	}
}
