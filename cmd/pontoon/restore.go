package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/pontoon-dev/pontoon/partition"
	"github.com/urfave/cli/v2"
	"golang.org/x/sys/unix"
)

// A `--for` must restore on time even when the command that set it is killed (kill -9, a
// closed terminal, a test runner's timeout). So the command leaves a restorer behind: a
// pontoon process in a session of its own that sleeps until the deadline and restores the
// recorded state unless something else was applied meanwhile. The command itself waits in
// the foreground (Ctrl-C restores at once) and, when it restores first, ends the restorer.
// The restorer acts restorerGrace after the deadline: a command alive at the deadline has
// ended it by then, and cannot kill it halfway through a restore (whose event would be lost).

// The restorer starts before the change, so that no moment is left in which the change is
// in force and nobody would undo it. The command tells it the change's generation and deadline
// on a pipe once the change is made, or that it failed; a restorer that reads the pipe's end
// without either knows its command died mid-change, and finishes what the record says: the
// change records its deadline, the state to restore and this restorer's pid before the
// kernel gets it (partition.UpdateUntil, Timed.Restorer), so the restorer finds its own
// change among the pending ones and RestoreExpired undoes it after that deadline.

// restorerGrace is how late the restorer restores when its command was killed: no other
// command ends a change before that (partition.ExpireGrace).
const restorerGrace = partition.ExpireGrace

// restorerCheck is how often a waiting restorer checks that its bridge is still there.
const restorerCheck = 250 * time.Millisecond

// restoreVerb is the hidden partition verb the restorer runs.
const restoreVerb = "restore-at"

func restoreCommand() *cli.Command {
	return &cli.Command{
		Name:   restoreVerb,
		Hidden: true,
		Usage:  "restore the state a --for replaced, at its deadline (run by --for itself)",
		Flags: []cli.Flag{
			bridgeFlag(),
			&cli.StringFlag{Name: "dir-id", Usage: "DEV:INODE of the bridge's data directory when the --for began"},
		},
		Action: func(c *cli.Context) error {
			// The terminal's signals are not for the restorer: it outlives its parent on purpose.
			signal.Ignore(syscall.SIGINT, syscall.SIGHUP, syscall.SIGTERM)
			partition.ProcessSource = partition.SourceRestorer // a settled change's event too
			name, err := bridgeName(c)
			if err != nil {
				return err
			}
			gen, at, made, err := awaitChange(os.NewFile(3, "change"))
			if err != nil || !made {
				return err // a failed change leaves nothing to undo
			}
			if gen == 0 {
				return restoreOrphan(c, name)
			}
			if !sleepWhileExists(env(c).BridgeDataDir(name), c.String("dir-id"), at.Add(restorerGrace)) {
				return nil // the bridge went, and its partition with it
			}
			t, err := targetAs(c, partition.SourceRestorer) // which finishes any other expired change too
			if err != nil {
				return err
			}
			t.Restorer = strconv.Itoa(os.Getpid())
			if err := partition.Restore(t, gen); err != nil && !errors.Is(err, partition.ErrSuperseded) {
				return err
			}
			return nil
		},
	}
}

// restoreOrphan is the restorer of a --for whose command died during the change. The change
// recorded, before the kernel got it, its deadline and this restorer (Timed.Restorer):
// without such a pending change the command died before that, and there is nothing to undo.
func restoreOrphan(c *cli.Context, bridge string) error {
	t, err := partition.ForBridge(env(c), bridge)
	if err != nil {
		return err
	}
	// A change that never reached the kernel is put right now, not at its deadline: then
	// nothing of it stays pending.
	if err := partition.Settle(t); err != nil {
		return err
	}
	pending, err := partition.Pending(t)
	if err != nil {
		return err
	}
	me := strconv.Itoa(os.Getpid())
	i := slices.IndexFunc(pending, func(tc partition.Timed) bool { return tc.Restorer == me })
	if i < 0 {
		return nil
	}
	if !sleepWhileExists(env(c).BridgeDataDir(bridge), c.String("dir-id"), pending[i].Expires.Add(restorerGrace)) {
		return nil // the bridge went, and its partition with it
	}
	_, err = targetAs(c, partition.SourceRestorer) // which ends it, with any other expired
	return err
}

// awaitChange reads what the --for's command says on f: the change's generation and deadline
// (made), that it failed (not made), or nothing before the pipe's end: the command died
// during the change (made, generation 0).
func awaitChange(f *os.File) (gen uint64, at time.Time, made bool, err error) {
	defer f.Close()
	b, err := io.ReadAll(f)
	if err != nil {
		return 0, time.Time{}, false, fmt.Errorf("read the --for's change: %w", err)
	}
	msg := strings.TrimSpace(string(b))
	switch {
	case msg == "":
		return 0, time.Time{}, true, nil
	case msg == changeFailed:
		return 0, time.Time{}, false, nil
	}
	var ns int64
	if _, err := fmt.Sscanf(msg, "%d %d", &gen, &ns); err != nil || gen == 0 {
		return 0, time.Time{}, false, fmt.Errorf("the --for's command said %q; want GENERATION DEADLINE", msg)
	}
	return gen, time.Unix(0, ns), true, nil
}

// catchStop catches Ctrl-C and SIGTERM for a --for from before its change goes in, for as
// long as the command runs: ctx is done on the first. A change still waiting for the bridge's
// lock is called off; one that has it goes in and is undone as soon as it is in. Every later
// one is caught too: ending the command on a second one (a common double press) could land
// while the change goes in or is being undone, and leave it for the whole duration.
func catchStop() (context.Context, context.CancelFunc) {
	return signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
}

// changeFailed is what a --for's command tells its restorer when the change failed.
const changeFailed = "failed"

// applyFor applies change until d has passed or Ctrl-C, then restores what it replaced.
func applyFor(c *cli.Context, t partition.Target, change func(partition.State) (partition.State, error), d time.Duration, describe func() string) error {
	// Caught from the start: a Ctrl-C while the change goes in restores it once it is in,
	// where it would otherwise end this command and leave the change to the restorer, which
	// lifts it only after the whole duration.
	ctx, stop := catchStop()
	defer stop()
	restorer, tell, err := startRestorer(c)
	if err != nil {
		return err // before any change
	}
	stopRestorer := func() {
		if restorer != nil {
			_ = restorer.Process.Kill()
			_ = restorer.Wait()
		}
	}
	defer stopRestorer()
	t.Restorer = strconv.Itoa(restorer.Process.Pid)
	rec, err := partition.UpdateUntilContext(ctx, t, change, d)
	if errors.Is(err, context.Canceled) {
		// Stopped before the change had the bridge's partition lock (another command held it).
		err = fmt.Errorf("interrupted before the change went in: nothing was changed on bridge %q", c.String("bridge"))
	}
	deadline, _ := rec.Deadline(rec.Generation)
	// The bridge's directory, which holds the change's record now: one destroyed and made
	// again under the name is not this.
	dir := env(c).BridgeDataDir(c.String("bridge"))
	dirNow, _ := dirID(dir)
	if err != nil && rec.Generation == 0 {
		fmt.Fprintln(tell, changeFailed)
		tell.Close()
		return err
	}
	if err != nil {
		// In force, but its final record could not be written: the restorer still undoes
		// it on time (from the record written ahead).
		fmt.Fprintf(tell, "%d %d\n", rec.Generation, deadline.UnixNano())
		tell.Close()
		_ = restorer.Process.Release()
		restorer = nil
		return err
	}
	_, werr := fmt.Fprintf(tell, "%d %d\n", rec.Generation, deadline.UnixNano())
	if cerr := tell.Close(); werr != nil || cerr != nil {
		// The restorer would take this for a command that died mid-change, and restore later
		// than asked (or not, had it died itself): lift the partition now.
		return errors.Join(fmt.Errorf("tell the --for restorer the change: %w", errors.Join(werr, cerr)), restoreNow(t, rec.Generation, dir, dirNow))
	}
	fmt.Printf("%s for %s (Ctrl-C restores now)\n", describe(), d)
	// A bridge destroyed meanwhile takes its partition along: nothing is left to wait for.
	gone := make(chan struct{})
	go func() {
		if !sleepWhileExists(dir, dirNow, deadline) {
			close(gone)
		}
	}()
	timer := time.NewTimer(time.Until(deadline))
	defer timer.Stop()
	select {
	case <-timer.C:
	case <-ctx.Done():
	case <-gone:
	}
	// Restore first, then end the restorer: killed in between, this command leaves the
	// restorer to restore (it acts restorerGrace after the deadline, long after this).
	err = restoreNow(t, rec.Generation, dir, dirNow)
	stopRestorer()
	return err
}

// restoreNow restores the state the --for of generation gen replaced and says which it did;
// nothing when the bridge's directory is no longer dirWas (the bridge went, its partition with
// it).
func restoreNow(t partition.Target, gen uint64, dir, dirWas string) error {
	if now, err := dirID(dir); err != nil || now != dirWas {
		fmt.Printf("not restored: bridge %q was destroyed, and its partition with it\n", filepath.Base(dir))
		return nil
	}
	err := partition.Restore(t, gen)
	if errors.Is(err, partition.ErrSuperseded) {
		// A later change replaced all this one applied (or restored it already): what is in
		// force now is that change's, which this one must not undo.
		fmt.Println("not restored: it had ended already, by its restorer (this command was held up past its deadline) or by a later change that replaced it and stays in force (see partition status)")
		return nil
	}
	if err != nil {
		return fmt.Errorf("restore the state --for replaced: %w", err)
	}
	fmt.Println("previous state restored")
	return nil
}

// startRestorer starts the process that restores, at the deadline of the change this command
// is about to make, the state it replaces, and returns it with the pipe to tell it the change
// on.
func startRestorer(c *cli.Context) (*exec.Cmd, *os.File, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, nil, fmt.Errorf("find pontoon's executable for the --for restorer: %w", err)
	}
	dir := env(c).BridgeDataDir(c.String("bridge"))
	args := append(env(c).Args(), "partition", restoreVerb, "--bridge", c.String("bridge"))
	if id, err := dirID(dir); err == nil {
		// The directory of this bridge, not of one made later under the same name.
		args = append(args, "--dir-id", id)
	}
	r, w, err := os.Pipe()
	if err != nil {
		return nil, nil, fmt.Errorf("start the --for restorer: %w", err)
	}
	defer r.Close()
	cmd := exec.Command(exe, args...)
	cmd.ExtraFiles = []*os.File{r} // fd 3
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	// It outlives the terminal: what it has to say goes next to the bridge's partition state.
	if log, err := os.OpenFile(filepath.Join(dir, "restore.log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600); err == nil {
		cmd.Stderr = log
		defer log.Close()
	}
	if err := cmd.Start(); err != nil {
		w.Close()
		return nil, nil, fmt.Errorf("start the --for restorer: %w", err)
	}
	return cmd, w, nil
}

// sleepWhileExists sleeps until deadline and reports true, or reports false once dir (a
// bridge's data directory, removed with the bridge) is gone or is another directory than id
// (DEV:INODE; empty: the one there now): a restorer whose bridge was destroyed has nothing
// left to restore, and must not wait out a long --for to find that, nor act on a bridge made
// later under the same name. It looks every restorerCheck: inotify would not tell, as the
// restorer's own log (its stderr, open in dir) keeps the directory's dentry alive past its
// removal. An error other than the directory's absence is no sign either way: it waits on.
func sleepWhileExists(dir, id string, deadline time.Time) bool {
	// Held open, the directory's inode cannot be freed, nor its number given to a directory
	// made later, while this waits (until then, the log the --for opened in it holds it).
	if fd, err := unix.Open(dir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0); err == nil {
		defer unix.Close(fd)
	}
	for {
		now, err := dirID(dir)
		switch {
		case errors.Is(err, os.ErrNotExist):
			return false
		case err == nil && id == "":
			id = now
		case err == nil && now != id:
			return false
		}
		left := time.Until(deadline)
		if left <= 0 {
			return true
		}
		time.Sleep(min(left, restorerCheck))
	}
}

// dirID names the directory at path by device and inode.
func dirID(path string) (string, error) {
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return "", err
	}
	return fmt.Sprintf("%d:%d", st.Dev, st.Ino), nil
}
