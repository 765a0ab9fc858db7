package main

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/gopacket/pcapgo"
	"github.com/pontoon-dev/pontoon/internal/testkit"
)

// pcapng reads a capture file back: its interfaces' names and its number of packets.
func pcapng(t *testing.T, path string) ([]string, int) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r, err := pcapgo.NewNgReader(f, pcapgo.DefaultNgReaderOptions)
	if err != nil {
		t.Fatalf("read %s: %v", path, err)
	}
	n := 0
	for {
		_, _, err := r.ReadPacketData()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("read %s: %v", path, err)
		}
		n++
	}
	var names []string
	for i := range r.NInterfaces() {
		intf, _ := r.Interface(i)
		names = append(names, intf.Name)
	}
	return names, n
}

// TestCaptureCommand runs `pontoon capture` in each of its forms: stopped by --count, by
// Ctrl-C and by --duration, and refused without touching the file.
func TestCaptureCommand(t *testing.T) {
	c := newCLI(t)
	c.ok("gateway", "up")
	c.ok("bridge", "create", "cap")
	c.ok("guest", "add", "cap", "n1", "--ip", "172.18.0.1")
	c.ok("guest", "add", "cap", "n2", "--ip", "172.18.0.2")
	dir := t.TempDir()
	ping := func() {
		t.Helper()
		if out, errOut, code := c.run("exec", "cap", "n1", "--", "ping", "-c2", "-W2", "172.18.0.2"); code != 0 {
			t.Fatalf("ping n1 -> n2: exit %d\n%s%s", code, out, errOut)
		}
	}
	// start runs a capture in the background and returns once it is recording.
	start := func(args ...string) (wait func() (string, int), signal func(os.Signal)) {
		t.Helper()
		cmd := c.command(append([]string{"capture"}, args...)...)
		var stderr testkit.Buffer
		cmd.Stderr = &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cmd.Process.Kill() })
		waitUntil(t, func() bool { return strings.Contains(stderr.String(), "capturing") })
		exited := make(chan struct{})
		go func() { cmd.Wait(); close(exited) }()
		return func() (string, int) {
				select {
				case <-exited:
				case <-time.After(time.Minute):
					t.Fatalf("pontoon capture %v did not stop:\n%s", args, stderr.String())
				}
				return stderr.String(), cmd.ProcessState.ExitCode()
			}, func(s os.Signal) {
				cmd.Process.Signal(s)
			}
	}

	t.Run("count", func(t *testing.T) {
		path := filepath.Join(dir, "count.pcapng")
		wait, _ := start("cap", "n1", "n2", "-w", path, "--count", "4")
		ping()
		out, code := wait()
		if code != 0 || !strings.Contains(out, path+": 4 packets") {
			t.Fatalf("exit %d, stderr:\n%s", code, out)
		}
		if names, n := pcapng(t, path); !slices.Equal(names, []string{"n1", "n2"}) || n != 4 {
			t.Errorf("file has interfaces %q and %d packets; want [n1 n2] and 4", names, n)
		}
	})
	t.Run("ctrl-c", func(t *testing.T) {
		path := filepath.Join(dir, "sigint.pcapng")
		wait, signal := start("cap", "-w", path)
		ping()
		signal(syscall.SIGINT)
		out, code := wait()
		if code != 0 {
			t.Fatalf("exit %d, stderr:\n%s", code, out)
		}
		// Two round trips, each request and reply seen on both ports.
		if names, n := pcapng(t, path); !slices.Equal(names, []string{"n1", "n2"}) || n < 8 {
			t.Errorf("file has interfaces %q and %d packets; want [n1 n2] and at least 8", names, n)
		}
	})
	t.Run("duration", func(t *testing.T) {
		path := filepath.Join(dir, "duration.pcapng")
		wait, _ := start("cap", "n2", "--duration", "200ms", "-w", path)
		if out, code := wait(); code != 0 {
			t.Fatalf("exit %d, stderr:\n%s", code, out)
		}
		if names, _ := pcapng(t, path); !slices.Equal(names, []string{"n2"}) {
			t.Errorf("file has interfaces %q; want [n2]", names)
		}
	})
	t.Run("refused", func(t *testing.T) {
		path := filepath.Join(dir, "kept")
		if err := os.WriteFile(path, []byte("precious"), 0o600); err != nil {
			t.Fatal(err)
		}
		c.fails(2, `unknown guest "n9"`, "capture", "cap", "n9", "-w", path)
		c.fails(2, "needs --write", "capture", "cap")
		c.fails(2, "needs a bridge", "capture", "-w", path)
		c.fails(2, "--count -1", "capture", "cap", "-w", path, "--count", "-1")
		if b, _ := os.ReadFile(path); string(b) != "precious" {
			t.Errorf("a refused capture changed %s to %q", path, b)
		}
		if left, _ := filepath.Glob(filepath.Join(dir, ".kept.*")); len(left) > 0 {
			t.Errorf("a refused capture left %q", left)
		}
	})
	c.ok("gateway", "down", "--force")
}
