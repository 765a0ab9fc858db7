package main

import (
	"bufio"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestPartitionLogBeforeAnyChange: the log of a bridge that had no partition change yet was
// refused as the log of a bridge that does not exist. It is empty, and --follow waits for
// the first change.
func TestPartitionLogBeforeAnyChange(t *testing.T) {
	c := newCLI(t)
	c.bridgeOf("b1", "n1", "n2")
	if out := c.ok("partition", "--bridge", "b1", "log"); out != "" {
		t.Errorf("log before any change printed %q; want nothing", out)
	}
	follow := c.command("partition", "--bridge", "b1", "log", "--follow")
	stdout, err := follow.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := follow.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { follow.Process.Kill(); follow.Wait() })
	printed := make(chan string)
	go func() {
		defer close(printed)
		for lines := bufio.NewScanner(stdout); lines.Scan(); {
			printed <- lines.Text()
		}
	}()
	c.ok("partition", "isolate", "n1", "--bridge", "b1")
	select {
	case line, ok := <-printed:
		if !ok || !strings.Contains(line, "isolate n1") {
			t.Errorf("log --follow printed %q (still running: %t); want the isolate", line, ok)
		}
	case <-time.After(10 * time.Second):
		t.Error("log --follow printed nothing within 10s of the first change")
	}
	follow.Process.Signal(syscall.SIGINT)
	c.fails(1, `bridge "nope" does not exist`, "partition", "--bridge", "nope", "log")
}
