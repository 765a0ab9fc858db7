package main

// The --for of partition commands: a change with a deadline, undone by the command at its end
// or by its restorer process when the command is gone.

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pontoon-dev/pontoon/internal/statefile"
	"github.com/pontoon-dev/pontoon/internal/testkit"
	"github.com/pontoon-dev/pontoon/partition"
	"golang.org/x/sys/unix"
)

// TestForSurvivesKill reproduces `partition isolate --for` killed with kill -9: the partition
// stayed in force until someone happened to run another pontoon command. Its restorer must
// lift it on time by itself; nothing here runs pontoon again before checking the kernel.
func TestForSurvivesKill(t *testing.T) {
	c := newCLI(t)
	c.ok("gateway", "up")
	c.ok("bridge", "create", "k")
	for i, g := range []string{"n1", "n2", "n3"} {
		c.ok("guest", "add", "k", g, "--ip", "172.18.0."+string(rune('1'+i)))
	}
	t.Cleanup(func() { c.ok("gateway", "down", "--force") })
	c.ok("partition", "block", "n1", "--", "n2", "--bridge", "k")
	kernel := func() partition.Record { return c.kernelRecord("k") }
	cmd := c.command("partition", "isolate", "n3", "--for", "1s", "--bridge", "k")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, func() bool { return len(kernel().Blocked) == 4 }) // isolate n3 replaces the block
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	waitUntil(t, func() bool {
		rec := kernel()
		return rec.Kernel.InEffect && len(rec.Blocked) == 1 && rec.Blocked[0].Src == "n1" && rec.Blocked[0].Dst == "n2"
	})
	// The restorer is gone once it has restored.
	waitUntil(t, func() bool { return len(c.restorers()) == 0 })
}

// TestForKilledMidChange reproduces a `--for` killed in the middle of its change: after the
// kernel had the isolation and before the record said so and the restorer started, the
// isolation stayed for good, and neither status, gc nor the log knew of it. The restorer now
// starts before the change, and the change is recorded, with its deadline, before the kernel
// gets it. Here the first write of the record blocks (its temporary file is a FIFO nobody
// reads) and the command is killed there: whatever the kernel holds must match the record
// once the --for has passed, and the restorer must be gone.
func TestForKilledMidChange(t *testing.T) {
	c := newCLI(t)
	c.bridgeOf("k", "n1", "n2")
	c.ok("partition", "loss", "1", "n2", "--bridge", "k") // a record to write over
	fifo := filepath.Join(c.sb.Env.BridgeDataDir("k"), partition.StateFile+".tmp")
	if err := unix.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := c.command("partition", "isolate", "n1", "--for", "1s", "--bridge", "k")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() }) // also when the wait below fails
	t.Cleanup(func() { os.Remove(fifo) })
	waitUntil(t, func() bool { return blockedIn(t, cmd.Process.Pid) })
	cmd.Process.Signal(syscall.SIGKILL)
	_ = cmd.Wait()
	os.Remove(fifo)
	time.Sleep(1500 * time.Millisecond) // past the --for
	waitUntil(t, func() bool { return len(c.restorers()) == 0 })
	tgt, err := partition.ForBridge(c.sb.Env, "k")
	if err != nil {
		t.Fatal(err)
	}
	rec, err := partition.Status(tgt)
	if err != nil {
		t.Fatal(err)
	}
	if !rec.Kernel.InEffect || len(rec.Blocked) != 0 || len(rec.Impairments) != 1 {
		t.Errorf("after the killed --for: %+v; want the loss alone, in effect", rec)
	}
	if _, _, code := c.run("exec", "k", "n1", "--", "ping", "-c1", "-W1", "172.18.0.2"); code != 0 {
		t.Error("n1 cannot reach n2 after the killed --for")
	}
}

// TestForKilledAtItsDeadline reproduces a --for killed at its deadline: the command ended its
// restorer, then restored, so killed in between it left the isolation with nobody to end it.
// Here its restore blocks in writing the record (a FIFO nobody reads) and it is killed there:
// the restorer must still end the change, and the record and the kernel agree afterwards.
func TestForKilledAtItsDeadline(t *testing.T) {
	c := newCLI(t)
	c.bridgeOf("k", "n1", "n2")
	cmd := c.command("partition", "isolate", "n1", "--for", "1s", "--bridge", "k")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	if !bufio.NewScanner(stdout).Scan() { // the change is made and recorded
		t.Fatal("partition isolate --for printed nothing")
	}
	fifo := filepath.Join(c.sb.Env.BridgeDataDir("k"), partition.StateFile+".tmp")
	if err := unix.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Remove(fifo) })
	waitUntil(t, func() bool { return blockedIn(t, cmd.Process.Pid) }) // its restore, at the deadline
	cmd.Process.Signal(syscall.SIGKILL)
	_ = cmd.Wait()
	os.Remove(fifo)
	tgt, err := partition.ForBridge(c.sb.Env, "k")
	if err != nil {
		t.Fatal(err)
	}
	waitUntil(t, func() bool {
		rec, err := partition.Status(tgt)
		return err == nil && len(rec.Pending) == 0 && rec.Kernel.InEffect && len(rec.Blocked) == 0
	})
	if _, _, code := c.run("exec", "k", "n1", "--", "ping", "-c1", "-W1", "172.18.0.2"); code != 0 {
		t.Error("n1 cannot reach n2 after the killed --for's deadline")
	}
	waitUntil(t, func() bool { return len(c.restorers()) == 0 })
}

// TestForOfABridgeMadeAgain: a --for whose bridge was destroyed and made again under its name
// ended, at its deadline, the new bridge's --for of the same generation.
func TestForOfABridgeMadeAgain(t *testing.T) {
	c := newCLI(t)
	c.bridgeOf("m", "n1", "n2")
	old, oldOut := c.command("partition", "isolate", "n1", "--for", "1s", "--bridge", "m"), &strings.Builder{}
	old.Stdout = oldOut
	if err := old.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { old.Process.Kill(); old.Wait() })
	tgt := func() partition.Target {
		tg, err := partition.ForBridge(c.sb.Env, "m")
		if err != nil {
			t.Fatal(err)
		}
		return tg
	}
	waitUntil(t, func() bool { rec, err := partition.Status(tgt()); return err == nil && len(rec.Blocked) == 2 })
	c.ok("bridge", "destroy", "m")
	c.ok("bridge", "create", "m")
	for i, g := range []string{"n1", "n2"} {
		c.ok("guest", "add", "m", g, "--ip", fmt.Sprintf("172.18.0.%d", i+1))
	}
	now := c.command("partition", "isolate", "n2", "--for", "30s", "--bridge", "m")
	if err := now.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { now.Process.Kill(); now.Wait() })
	waitUntil(t, func() bool { rec, err := partition.Status(tgt()); return err == nil && len(rec.Pending) == 1 })
	if err := old.Wait(); err != nil || !strings.Contains(oldOut.String(), "was destroyed") {
		t.Errorf("the old bridge's --for: %v\n%s", err, oldOut)
	}
	if rec, err := partition.Status(tgt()); err != nil || len(rec.Blocked) != 2 || len(rec.Pending) != 1 {
		t.Errorf("after the old --for's deadline: %+v, %v; want n2 still isolated, its --for pending", rec, err)
	}
}

// TestForEndsWithItsBridge: a --for in the foreground whose bridge is destroyed returns then,
// saying so, rather than at its deadline; its restorer goes too.
func TestForEndsWithItsBridge(t *testing.T) {
	c := newCLI(t)
	c.bridgeOf("d", "n1", "n2")
	cmd, out := c.command("partition", "isolate", "n1", "--for", "10m", "--bridge", "d"), &strings.Builder{}
	cmd.Stdout = out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	waitUntil(t, func() bool {
		tg, err := partition.ForBridge(c.sb.Env, "d")
		if err != nil {
			return false
		}
		rec, err := partition.Status(tg)
		return err == nil && len(rec.Blocked) == 2
	})
	c.ok("bridge", "destroy", "d")
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil || !strings.Contains(out.String(), `bridge "d" was destroyed`) {
			t.Errorf("the --for after its bridge went: %v\n%s", err, out)
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("the --for still waits for its deadline after its bridge was destroyed:\n%s", out)
	}
	waitUntil(t, func() bool { return len(c.restorers()) == 0 })
}

// TestForOvertakenByAnotherPart reproduces `isolate n1 --for 1s` followed by `loss 5 n2`: the
// loss took over the whole recorded state, so the isolation was never lifted (and the --for
// said "previous state restored"). A change made while a --for is pending now leaves it the
// parts it did not touch: the isolation ends on time and the loss stays.
func TestForOvertakenByAnotherPart(t *testing.T) {
	c := newCLI(t)
	c.bridgeOf("o", "n1", "n2")
	cmd := c.command("partition", "isolate", "n1", "--for", "1s", "--bridge", "o")
	var out strings.Builder
	cmd.Stdout = &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	tgt, err := partition.ForBridge(c.sb.Env, "o")
	if err != nil {
		t.Fatal(err)
	}
	status := func() partition.Record {
		rec, err := partition.Status(tgt)
		if err != nil {
			t.Fatal(err)
		}
		return rec
	}
	waitUntil(t, func() bool { return len(status().Blocked) == 2 })
	c.ok("partition", "loss", "5", "n2", "--bridge", "o")
	if err := cmd.Wait(); err != nil {
		t.Fatalf("isolate --for: %v\n%s", err, out.String())
	}
	rec := status()
	if !rec.Kernel.InEffect || len(rec.Blocked) != 0 || len(rec.Impairments) != 1 || rec.Impairments[0].Guest != "n2" {
		t.Errorf("after the --for: %+v; want no blocked pair and n2's loss, in effect", rec)
	}
	if !strings.Contains(out.String(), "previous state restored") {
		t.Errorf("isolate --for said %q", out.String())
	}
	// n2 keeps its 5% loss: one ping of five coming back is enough (ping exits 0 then).
	if _, _, code := c.run("exec", "o", "n1", "--", "ping", "-c5", "-i0.2", "-W1", "172.18.0.2"); code != 0 {
		t.Error("n1 cannot reach n2 after its --for ended")
	}
}

// TestForsEndOnTheirOwnTime: several --fors pending at once each end on time. A second --for
// used to restore, at its deadline, the state it found, so `isolate n1 --for 1s` then
// `loss 100 n2 --for 3s` kept n1 isolated for good after both had ended. And a --for on top of
// another of the same part gives that part back to the one beneath when it ends, here by its
// restorer alone (its command killed).
func TestForsEndOnTheirOwnTime(t *testing.T) {
	c := newCLI(t)
	c.bridgeOf("f", "n1", "n2", "n3")
	tgt, err := partition.ForBridge(c.sb.Env, "f")
	if err != nil {
		t.Fatal(err)
	}
	status := func() partition.Record {
		rec, err := partition.Status(tgt) // reads the kernel; restores nothing
		if err != nil {
			t.Fatal(err)
		}
		if !rec.Kernel.InEffect {
			t.Fatalf("the kernel does not hold what was applied: %s", rec.Kernel.Detail)
		}
		return rec
	}
	reaches := func(from, to string) bool {
		_, _, code := c.run("exec", "f", from, "--", "ping", "-c1", "-W1", to)
		return code == 0
	}
	// A path that must be open gets three tries: one ping may be lost to a loaded machine,
	// while a blocked path passes none.
	reachesSoon := func(from, to string) bool {
		for range 3 {
			if reaches(from, to) {
				return true
			}
		}
		return false
	}
	start := func(args ...string) (*exec.Cmd, *strings.Builder) {
		cmd := c.command(append(args, "--bridge", "f")...)
		var out strings.Builder
		cmd.Stdout = &out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
		return cmd, &out
	}

	// Two parts: the isolation ends first, the loss later.
	iso, isoOut := start("partition", "isolate", "n1", "--for", "1s")
	waitUntil(t, func() bool { return len(status().Blocked) == 4 })
	loss, lossOut := start("partition", "loss", "100", "n2", "--for", "3s")
	waitUntil(t, func() bool { return len(status().Impairments) == 1 })
	if out, _, _ := c.run("partition", "status", "--bridge", "f"); strings.Count(out, "restores at") != 2 ||
		!strings.Contains(out, ": partition: fullmesh") || !strings.Contains(out, ": guest n2 loss: none") {
		t.Errorf("status while both are pending:\n%s", out)
	}
	if err := iso.Wait(); err != nil || !strings.Contains(isoOut.String(), "previous state restored") {
		t.Fatalf("isolate --for: %v\n%s", err, isoOut)
	}
	if rec := status(); len(rec.Blocked) != 0 || len(rec.Impairments) != 1 {
		t.Errorf("after the isolation's end: %d blocked pairs, %d impairments; want none and n2's loss", len(rec.Blocked), len(rec.Impairments))
	}
	if !reachesSoon("n1", "172.18.0.3") {
		t.Error("after the isolation's end: n1 does not reach n3")
	}
	if reaches("n2", "172.18.0.3") {
		t.Error("after the isolation's end: n2 reaches n3; want its loss to stay")
	}
	if err := loss.Wait(); err != nil || !strings.Contains(lossOut.String(), "previous state restored") {
		t.Fatalf("loss --for: %v\n%s", err, lossOut)
	}
	if rec := status(); len(rec.Blocked) != 0 || len(rec.Impairments) != 0 || len(rec.Pending) != 0 {
		t.Errorf("after both: %+v; want fullmesh, nothing pending", rec)
	}
	if !reachesSoon("n2", "172.18.0.3") {
		t.Error("after both: n2 cannot reach n3")
	}

	// One part twice: n2's isolation lies on n1's; killed, its restorer gives n1's back.
	// n1's lasts long enough for the checks after n2's end on a loaded machine.
	under, underOut := start("partition", "isolate", "n1", "--for", "8s")
	waitUntil(t, func() bool { return len(status().Blocked) == 4 })
	top, _ := start("partition", "isolate", "n2", "--for", "1s")
	waitUntil(t, func() bool {
		b := status().Blocked
		return len(b) == 4 && (b[0].Src == "n2" || b[0].Dst == "n2")
	})
	top.Process.Signal(syscall.SIGKILL)
	_ = top.Wait()
	// The kill may land in top's own restore at its deadline, after the kernel took the
	// restored table and before the record did: status says so (the kernel holds another
	// table than recorded) until top's restorer has made the change again.
	waitUntil(t, func() bool {
		rec, err := partition.Status(tgt)
		if err != nil {
			t.Fatal(err)
		}
		b := rec.Blocked
		return rec.Kernel.InEffect && len(b) == 4 && (b[0].Src == "n1" || b[0].Dst == "n1")
	})
	if reaches("n1", "172.18.0.3") {
		t.Error("after the top --for's end: n1 reaches n3; want n1 isolated again")
	}
	if !reachesSoon("n2", "172.18.0.3") {
		t.Error("after the top --for's end: n2 does not reach n3")
	}
	if err := under.Wait(); err != nil || !strings.Contains(underOut.String(), "previous state restored") {
		t.Fatalf("the --for beneath: %v\n%s", err, underOut)
	}
	if rec := status(); len(rec.Blocked) != 0 || len(rec.Pending) != 0 {
		t.Errorf("after both: %+v; want fullmesh, nothing pending", rec)
	}

	// The same partition again, for longer: it lasts the longer, although its value did not
	// change.
	short, _ := start("partition", "isolate", "n1", "--for", "1s")
	waitUntil(t, func() bool { return len(status().Blocked) == 4 })
	long, _ := start("partition", "isolate", "n1", "--for", "3s")
	waitUntil(t, func() bool { return len(status().Pending) == 2 })
	if err := short.Wait(); err != nil {
		t.Fatal(err)
	}
	if rec := status(); len(rec.Blocked) != 4 {
		t.Errorf("after the shorter --for: %d blocked pairs; want n1 still isolated", len(rec.Blocked))
	}
	if err := long.Wait(); err != nil {
		t.Fatal(err)
	}
	if rec := status(); len(rec.Blocked) != 0 || len(rec.Pending) != 0 {
		t.Errorf("after the longer --for: %+v; want fullmesh, nothing pending", rec)
	}
	waitUntil(t, func() bool { return len(c.restorers()) == 0 })
}

// bridgeOf brings the gateway up (down again at the test's end) and makes bridge br with
// guests at 172.18.0.1, .2 and on.
// kernelRecord is the partition of bridge br as the kernel holds it: status read in this
// process, which restores nothing (an expired --for stays).
func (c *runner) kernelRecord(br string) partition.Record {
	c.t.Helper()
	tgt, err := partition.ForBridge(c.sb.Env, br)
	if err != nil {
		c.t.Fatal(err)
	}
	rec, err := partition.Status(tgt)
	if err != nil {
		c.t.Fatal(err)
	}
	return rec
}

func (c *runner) bridgeOf(br string, guests ...string) {
	c.t.Helper()
	c.ok("gateway", "up")
	c.t.Cleanup(func() { c.ok("gateway", "down", "--force") })
	c.ok("bridge", "create", br)
	for i, g := range guests {
		c.ok("guest", "add", br, g, "--ip", fmt.Sprintf("172.18.0.%d", i+1))
	}
}

// blockedIn reports whether a thread of process pid waits in openat(2): opening a FIFO
// nobody reads blocks there.
func blockedIn(t *testing.T, pid int) bool { return inSyscall(pid, unix.SYS_OPENAT) }

// inSyscall reports whether a thread of process pid waits in system call nr.
func inSyscall(pid, nr int) bool {
	prefix := strconv.Itoa(nr) + " "
	tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/syscall", pid))
	for _, f := range tasks {
		if b, err := os.ReadFile(f); err == nil && strings.HasPrefix(string(b), prefix) {
			return true
		}
	}
	return false
}

// restorers lists the --for restorers of this test's sandbox (not of anyone else on the
// machine).
func (c *runner) restorers() []int {
	c.t.Helper()
	return processesWith(c.t, restoreVerb, c.sb.Env.StateDir)
}

// processesWith lists the pids whose command line contains each of s.
func processesWith(t *testing.T, s ...string) []int {
	t.Helper()
	entries, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	var out []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/cmdline")
		if err == nil && !slices.ContainsFunc(s, func(s string) bool { return !strings.Contains(string(b), s) }) {
			out = append(out, pid)
		}
	}
	return out
}

// TestForInterruptedWaitingForTheLock: a --for on a bridge whose partition another command is
// changing (here the test holds its lock), or whose chain another command is changing (the
// state's lock, which the --for takes to read the bridge's guests), ends on Ctrl-C, saying it
// changed nothing, and changes nothing. It used to catch the Ctrl-C and wait on for as long
// as the lock was held, then make its change and undo it.
func TestForInterruptedWaitingForTheLock(t *testing.T) {
	for _, lock := range []string{"partition", "state"} {
		t.Run(lock, func(t *testing.T) {
			c := newCLI(t)
			c.bridgeOf("k", "n1", "n2")
			c.ok("partition", "loss", "1", "n2", "--bridge", "k")
			unlock, err := statefile.Lock(filepath.Join(c.sb.Env.BridgeDataDir("k"), partition.LockFile))
			if err != nil {
				t.Fatal(err)
			}
			locked := true
			defer func() {
				if locked {
					unlock()
				}
			}()
			cmd := c.command("partition", "isolate", "n1", "--for", "1m", "--bridge", "k")
			var out testkit.Buffer
			cmd.Stdout, cmd.Stderr = &out, &out
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() }) // also when a wait below fails
			partitionLock := filepath.Join(c.sb.Env.BridgeDataDir("k"), partition.LockFile)
			waitUntil(t, func() bool { return waitsForLock(t, cmd.Process.Pid, partitionLock) })
			if lock == "state" {
				// Past the partition's lock, the --for waits for the state's.
				stateLock := filepath.Join(c.sb.Env.StateDir, "lock")
				unlockState, err := statefile.Lock(stateLock)
				if err != nil {
					t.Fatal(err)
				}
				unlock()
				unlock = unlockState // the deferred release, or the one below
				waitUntil(t, func() bool { return waitsForLock(t, cmd.Process.Pid, stateLock) })
			}
			if err := cmd.Process.Signal(os.Interrupt); err != nil {
				t.Fatal(err)
			}
			done := make(chan error, 1)
			go func() { done <- cmd.Wait() }()
			select {
			case err := <-done:
				if err == nil {
					t.Errorf("the interrupted --for exited 0:\n%s", &out)
				}
			case <-time.After(10 * time.Second):
				cmd.Process.Kill()
				<-done
				t.Fatalf("the --for did not end on Ctrl-C while another command held the lock:\n%s", &out)
			}
			if !strings.Contains(out.String(), "interrupted before the change went in: nothing was changed") {
				t.Errorf("the interrupted --for said:\n%s", &out)
			}
			unlock()
			locked = false
			tgt, err := partition.ForBridge(c.sb.Env, "k")
			if err != nil {
				t.Fatal(err)
			}
			rec, err := partition.Status(tgt)
			if err != nil {
				t.Fatal(err)
			}
			if !rec.Kernel.InEffect || len(rec.Blocked) != 0 || len(rec.Impairments) != 1 || len(rec.Pending) != 0 || rec.Generation != 1 {
				t.Errorf("after the interrupted --for: %+v; want the loss alone, in effect, nothing pending, no commit since", rec)
			}
			waitUntil(t, func() bool { return len(c.restorers()) == 0 })
		})
	}
}

// waitsForLock reports whether process pid waits for the flock of the file at path
// (/proc/locks lists a waiter as "N: -> FLOCK ADVISORY WRITE PID MAJ:MIN:INODE ...").
func waitsForLock(t *testing.T, pid int, path string) bool {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return false
	}
	locks, err := os.ReadFile("/proc/locks")
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(locks), "\n") {
		f := strings.Fields(l)
		if len(f) > 6 && f[1] == "->" && f[2] == "FLOCK" && f[5] == strconv.Itoa(pid) && strings.HasSuffix(f[6], ":"+strconv.FormatUint(st.Ino, 10)) {
			return true
		}
	}
	return false
}

// TestGCEndsAForWhoseRestorerWasKilled: `--for` killed with its restorer stayed in force
// after its deadline until a partition command or status happened to read the bridge; gc
// said there was nothing to collect. gc ends it now, and says so.
func TestGCEndsAForWhoseRestorerWasKilled(t *testing.T) {
	c := newCLI(t)
	c.bridgeOf("kr", "n1", "n2", "n3")
	blocked := func() int { return len(c.kernelRecord("kr").Blocked) }
	cmd := c.command("partition", "isolate", "n3", "--for", "1s", "--bridge", "kr")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, func() bool { return blocked() == 4 && len(c.restorers()) > 0 })
	for _, pid := range c.restorers() {
		syscall.Kill(pid, syscall.SIGKILL)
	}
	cmd.Process.Signal(syscall.SIGKILL)
	_ = cmd.Wait()
	waitUntil(t, func() bool { return len(c.restorers()) == 0 })
	time.Sleep(time.Second + partition.ExpireGrace + 200*time.Millisecond) // past the deadline and its grace
	if n := blocked(); n != 4 {
		t.Fatalf("%d pairs blocked past the deadline before gc; want the isolation still there (its restorer was killed)", n)
	}
	if out := c.ok("gc"); !strings.Contains(out, "ended the expired --for of bridge kr") {
		t.Errorf("gc after a --for whose restorer was killed said:\n%s", out)
	}
	if n := blocked(); n != 0 {
		t.Errorf("%d pairs still blocked after gc; want the --for ended", n)
	}
	if out, errOut, code := c.run("exec", "kr", "n1", "--", "ping", "-c", "1", "-W", "1", "172.18.0.3"); code != 0 {
		t.Errorf("n1 does not reach n3 after gc ended the isolation:\n%s%s", out, errOut)
	}
	// A write of the record killed before its rename leaves its temporary file: gc removes it.
	tmp := filepath.Join(c.sb.Env.BridgeDataDir("kr"), partition.StateFile+".tmp")
	if err := os.WriteFile(tmp, []byte("{"), 0o600); err != nil {
		t.Fatal(err)
	}
	if out := c.ok("gc"); !strings.Contains(out, "removed "+tmp) {
		t.Errorf("gc with a partition record's temporary file left said:\n%s", out)
	}
	if _, err := os.Stat(tmp); !os.IsNotExist(err) {
		t.Errorf("%s still there after gc (%v)", tmp, err)
	}
}
