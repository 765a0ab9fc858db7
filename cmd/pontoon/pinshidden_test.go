package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pontoon-dev/pontoon/netsetup"
	"github.com/pontoon-dev/pontoon/netsetup/ns"
	"golang.org/x/sys/unix"
)

// coverNetnsDir binds the sandbox's namespace directory onto itself, as a tool that does not
// look for a mount point there first does (iproute2's first `ip netns add` on a plain
// /run/netns): every pin in it is hidden. The cover goes when the test ends.
func (c *runner) coverNetnsDir() {
	c.t.Helper()
	dir := c.sb.Env.NetnsDir
	if err := unix.Mount(dir, dir, "", unix.MS_BIND, ""); err != nil {
		c.t.Fatal(err)
	}
	c.t.Cleanup(func() { unix.Unmount(dir, unix.MNT_DETACH) })
}

// bridgesWithGuests makes bridges b1..bn with guests n1 and n2 each.
func (c *runner) bridgesWithGuests(n int) {
	c.t.Helper()
	c.ok("gateway", "up")
	c.t.Cleanup(func() { c.run("gateway", "down", "--force") })
	for i := 1; i <= n; i++ {
		b := fmt.Sprintf("b%d", i)
		c.ok("bridge", "create", b)
		c.ok("guest", "add", b, "n1", "--ip", fmt.Sprintf("172.18.0.%d", 2*i-1))
		c.ok("guest", "add", b, "n2", "--ip", fmt.Sprintf("172.18.0.%d", 2*i))
	}
}

// TestGCRepinsEveryHiddenPin: with the namespace directory bound over pontoon's pins, gc
// pinned again the gateway's and one bridge's per run, failing on the others' service rules,
// and never a guest's: exec into a guest failed while status said all was well. One gc now
// pins every bridge and guest again, and exec works after it.
func TestGCRepinsEveryHiddenPin(t *testing.T) {
	c := newCLI(t)
	c.bridgesWithGuests(3)
	c.coverNetnsDir()
	if out := c.ok("bridge", "list"); !strings.Contains(out, "hidden") {
		t.Errorf("bridge list over hidden pins says nothing of them:\n%s", out)
	}
	// Status cannot read the kernel through the hidden pin: it says so and why, and does not
	// pass the record off as what the kernel enforces.
	if out, _, code := c.run("partition", "status", "--bridge", "b1", "--check"); code != 3 ||
		!strings.Contains(out, "WARNING: what the kernel holds could not be read: ") || !strings.Contains(out, "hidden under a bind mount") ||
		strings.Contains(out, "the kernel enforces now") {
		t.Errorf("partition status --check over hidden pins: exit %d\n%s\nwant exit 3 saying the kernel could not be read, and why", code, out)
	}
	out, errOut, code := c.run("gc")
	if code != 0 {
		t.Errorf("gc over hidden pins: exit %d\n%s%s", code, out, errOut)
	}
	e := c.sb.Env
	for i := 1; i <= 3; i++ {
		b := fmt.Sprintf("b%d", i)
		for _, p := range []string{e.BridgeNetns(b), e.GuestNetns(b, "n1"), e.GuestNetns(b, "n2")} {
			if !ns.IsPinned(p) {
				t.Errorf("%s is not pinned again after one gc", p)
			}
		}
		c.ok("exec", b, "n2", "--", "true")
		c.ok("partition", "status", "--bridge", b, "--check")
	}
	if out := c.ok("bridge", "list"); strings.Contains(out, "broken") {
		t.Errorf("bridge list after gc:\n%s", out)
	}
}

// TestExecRepinsHiddenGuest: exec into a guest whose pin another tool hid pins it again
// rather than fail with "invalid argument".
func TestExecRepinsHiddenGuest(t *testing.T) {
	c := newCLI(t)
	c.bridgesWithGuests(1)
	c.coverNetnsDir()
	c.ok("exec", "b1", "n1", "--", "true")
}

// TestForeignPinReported: another tool's namespace bound over a bridge's pin and a guest's
// went unnoticed by bridge list and gc, and partition status --check failed on a sysctl of
// the foreign namespace. They are reported broken, plainly, and one gc puts pontoon's
// namespaces back, the foreign one left pinned where its tool put it.
func TestForeignPinReported(t *testing.T) {
	c := newCLI(t)
	c.bridgesWithGuests(1)
	e := c.sb.Env
	foreign := filepath.Join(e.NetnsDir, "foreign1")
	if err := ns.New(ns.Spec{Net: foreign}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ns.Remove(foreign) })
	for _, p := range []string{e.BridgeNetns("b1"), e.GuestNetns("b1", "n1")} {
		if err := unix.Mount(foreign, p, "", unix.MS_BIND, ""); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { unix.Unmount(p, unix.MNT_DETACH) })
	}
	const plain = "not the one pontoon pinned"
	if out := c.ok("bridge", "list"); !strings.Contains(out, "broken") || !strings.Contains(out, plain) || !strings.Contains(out, "guest n1 of bridge b1") {
		t.Errorf("bridge list over foreign pins:\n%s", out)
	}
	if out := c.ok("bridge", "show", "b1"); !strings.Contains(out, plain) {
		t.Errorf("bridge show over foreign pins:\n%s", out)
	}
	if out, errOut, code := c.run("partition", "status", "--bridge", "b1", "--check"); code != 3 || !strings.Contains(out+errOut, plain) || strings.Contains(out+errOut, "sysctl") {
		t.Errorf("partition status --check over foreign pins: exit %d\n%s%s", code, out, errOut)
	}
	if out := c.ok("gc"); !strings.Contains(out, "repaired bridge b1") || !strings.Contains(out, "repaired guest b1/n1") {
		t.Errorf("gc over foreign pins printed %q", out)
	}
	if out := c.ok("bridge", "list"); strings.Contains(out, "broken") {
		t.Errorf("bridge list after gc:\n%s", out)
	}
	c.ok("partition", "status", "--bridge", "b1", "--check")
	if out := c.ok("exec", "b1", "n1", "--", "cat", "/sys/class/net/eth0/address"); !strings.Contains(out, ":") {
		t.Errorf("guest n1 after gc has no eth0: %q", out)
	}
	if !ns.IsPinned(foreign) {
		t.Errorf("gc unpinned the other tool's namespace %s", foreign)
	}
}

// TestTakenPinLeftAlone: a guest's pin removed outside pontoon and its path then used for
// another namespace (`ip netns del` and `ip netns add` of the same name) was taken for a
// covered pin: exec into another guest unmounted the other namespace, and gc removed it with
// the guest. It is left alone: the guest is reported gone, gc drops its record, and the other
// namespace stays pinned at the path.
func TestTakenPinLeftAlone(t *testing.T) {
	c := newCLI(t)
	c.bridgesWithGuests(1)
	e := c.sb.Env
	other := filepath.Join(t.TempDir(), "other")
	if err := ns.New(ns.Spec{Net: other}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ns.Remove(other) })
	theirs, _ := ns.ID(other)
	path := e.GuestNetns("b1", "n1")
	if err := unix.Unmount(path, unix.MNT_DETACH); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount(other, path, "", unix.MS_BIND, ""); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ns.Remove(path) })
	c.ok("exec", "b1", "n2", "--", "true")
	if id, _ := ns.ID(path); id != theirs {
		t.Fatalf("exec into n2 changed what %s pins: namespace %d, want the other one, %d", path, id, theirs)
	}
	if out := c.ok("bridge", "list"); !strings.Contains(out, "another namespace is pinned at its path now") {
		t.Errorf("bridge list with n1's path taken:\n%s", out)
	}
	// The namespace's end (and so its port's) is the kernel's to finish, shortly.
	waitUntil(t, func() bool {
		c.run("gc")
		b, err := netsetup.GetBridge(e, "b1")
		return err == nil && len(b.Guests) == 1
	})
	if id, _ := ns.ID(path); id != theirs {
		t.Errorf("gc changed what %s pins: namespace %d, want the other one, %d", path, id, theirs)
	}
	c.ok("exec", "b1", "n2", "--", "true")
}

// TestGCFinishesKilledDestroy: `bridge destroy` killed partway left a ready bridge whose
// guests' pins were gone; gc removed one guest per run, started the bridge's name server
// again and kept the bridge. The destroy is recorded first: one gc finishes it, whatever
// the moment of the kill.
func TestGCFinishesKilledDestroy(t *testing.T) {
	c := newCLI(t)
	c.ok("gateway", "up")
	t.Cleanup(func() { c.run("gateway", "down", "--force") })
	e := c.sb.Env
	untouched := 0
	delays := []time.Duration{0, time.Millisecond, 2 * time.Millisecond, 3 * time.Millisecond, 3500 * time.Microsecond, 4 * time.Millisecond, 5 * time.Millisecond, 7 * time.Millisecond, 10 * time.Millisecond}
	for i, d := range delays {
		b := fmt.Sprintf("k%d", i)
		c.ok("bridge", "create", b)
		for j := 1; j <= 4; j++ {
			c.ok("guest", "add", b, fmt.Sprintf("n%d", j), "--ip", fmt.Sprintf("172.18.0.%d", j))
		}
		cmd := c.command("bridge", "destroy", b)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(d)
		cmd.Process.Signal(unix.SIGKILL)
		cmd.Wait()
		if out, errOut, code := c.run("gc"); code != 0 || strings.Contains(out, "started the name server") {
			t.Errorf("kill after %v: gc exit %d\n%s%s", d, code, out, errOut)
		}
		left, _ := filepath.Glob(filepath.Join(e.NetnsDir, "*"+b+"*"))
		uts, _ := filepath.Glob(filepath.Join(e.StateDir, "uts", "*"+b+"*"))
		left = append(left, uts...)
		if _, err := os.Stat(filepath.Join(e.StateDir, "bridges", b+".json")); err == nil {
			// Killed before it began: the bridge must be whole, its name server running.
			untouched++
			if out := c.ok("bridge", "show", b); !strings.Contains(out, ", ready,") || strings.Contains(out, "broken") || len(left) != 9 {
				t.Errorf("kill after %v: bridge %s is neither gone nor whole after one gc:\n%s\npins %v", d, b, out, left)
			}
			if len(processesWith(t, e.StateDir, "\x00"+b+"\x00")) == 0 {
				t.Errorf("kill after %v: bridge %s left whole, without its name server", d, b)
			}
			c.ok("bridge", "destroy", b)
			continue
		}
		if len(left) > 0 {
			t.Errorf("kill after %v: pins left after one gc: %v", d, left)
		}
		if servers := processesWith(t, e.StateDir, "\x00"+b+"\x00"); len(servers) > 0 {
			t.Errorf("kill after %v: name server of %s still runs after one gc: %v", d, b, servers)
		}
	}
	t.Logf("%d of %d kills came before the destroy began", untouched, len(delays))
}

// TestDestroyBesidePartitionsAndGC: `bridge destroy` failed with "directory not empty" when a
// partition change wrote its record meanwhile, gc failed on a bridge destroyed between its
// locked pass and its partition and service checks, and a guest add cut off by the destroy
// left its pin. Run side by side, round after round,
// neither fails; partition commands on the bridge may, saying it is gone or being removed.
func TestDestroyBesidePartitionsAndGC(t *testing.T) {
	c := newCLI(t)
	c.ok("gateway", "up")
	t.Cleanup(func() { c.run("gateway", "down", "--force") })
	for round := range 25 {
		c.ok("bridge", "create", "r")
		c.ok("guest", "add", "r", "n1", "--ip", "172.18.0.1")
		c.ok("guest", "add", "r", "n2", "--ip", "172.18.0.2")
		stop := make(chan struct{})
		done := make(chan string, 2)
		loop := func(args ...string) {
			var bad []string
			for {
				select {
				case <-stop:
					done <- strings.Join(bad, "\n")
					return
				default:
				}
				out, errOut, code := c.run(args...)
				if args[0] == "gc" && code != 0 {
					bad = append(bad, fmt.Sprintf("gc: exit %d\n%s%s", code, out, errOut))
				}
			}
		}
		go loop("partition", "isolate", "n1", "--bridge", "r")
		go loop("gc")
		go func() {
			for {
				select {
				case <-stop:
					done <- ""
					return
				default:
				}
				c.run("guest", "add", "r", "n3", "--ip", "172.18.0.3")
				c.run("guest", "del", "r", "n3")
			}
		}()
		time.Sleep(time.Duration(round%5) * time.Millisecond)
		out, errOut, code := c.run("bridge", "destroy", "r")
		close(stop)
		for range 3 {
			if bad := <-done; bad != "" {
				t.Errorf("round %d: %s", round, bad)
			}
		}
		if code != 0 {
			t.Fatalf("round %d: bridge destroy beside partition changes and gc: exit %d\n%s%s", round, code, out, errOut)
		}
		// A guest add cut off by the destroy leaves no pin behind.
		if left, _ := filepath.Glob(filepath.Join(c.sb.Env.NetnsDir, "*r*")); len(left) > 0 {
			t.Fatalf("round %d: pins left after the destroy: %v", round, left)
		}
	}
}
