package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
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

// restorerGrace is how late the restorer restores when its command was killed.
const restorerGrace = 500 * time.Millisecond

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
			&cli.Uint64Flag{Name: "generation", Usage: "the generation the --for recorded"},
			&cli.Int64Flag{Name: "at", Usage: "the deadline, in Unix nanoseconds"},
			&cli.StringFlag{Name: "dir-id", Usage: "DEV:INODE of the bridge's data directory when the --for began"},
		},
		Action: func(c *cli.Context) error {
			// The terminal's signals are not for the restorer: it outlives its parent on purpose.
			signal.Ignore(syscall.SIGINT, syscall.SIGHUP, syscall.SIGTERM)
			name, err := bridgeName(c)
			if err != nil {
				return err
			}
			if !sleepWhileExists(env(c).BridgeDataDir(name), c.String("dir-id"), time.Unix(0, c.Int64("at")).Add(restorerGrace)) {
				return nil // the bridge went, and its partition with it
			}
			t, err := targetAs(c, partition.SourceRestorer)
			if err != nil {
				return err
			}
			if err := partition.Restore(t, c.Uint64("generation")); err != nil && !errors.Is(err, partition.ErrSuperseded) {
				return err
			}
			return nil
		},
	}
}

// applyFor applies change until d has passed or Ctrl-C, then restores what it replaced.
func applyFor(c *cli.Context, t partition.Target, change func(partition.State) (partition.State, error), d time.Duration, describe func() string) error {
	rec, err := partition.UpdateUntil(t, change, d)
	if err != nil {
		return err
	}
	restorer, err := startRestorer(c, rec)
	if err != nil {
		// The partition is in force and nobody would lift it: lift it now.
		return errors.Join(err, restoreNow(t, rec.Generation))
	}
	stopRestorer := func() {
		_ = restorer.Process.Kill()
		_ = restorer.Wait()
	}
	defer stopRestorer()
	fmt.Printf("%s for %s (Ctrl-C restores now)\n", describe(), d)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	timer := time.NewTimer(time.Until(rec.Expires))
	defer timer.Stop()
	select {
	case <-timer.C:
	case <-ctx.Done():
	}
	// One restorer at a time: otherwise the restorer's restore could make this
	// one report that something else was applied.
	stopRestorer()
	if err := restoreNow(t, rec.Generation); err != nil {
		return err
	}
	fmt.Println("previous state restored")
	return nil
}

func restoreNow(t partition.Target, gen uint64) error {
	err := partition.Restore(t, gen)
	if errors.Is(err, partition.ErrSuperseded) {
		fmt.Println("something else was applied meanwhile: left in force")
		return nil
	}
	if err != nil {
		return fmt.Errorf("restore the state --for replaced: %w", err)
	}
	return nil
}

// startRestorer starts the process that restores rec's replaced state at rec.Expires.
func startRestorer(c *cli.Context, rec partition.Record) (*exec.Cmd, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("find pontoon's executable for the --for restorer: %w", err)
	}
	dir := env(c).BridgeDataDir(c.String("bridge"))
	args := append(env(c).Args(), "partition", restoreVerb, "--bridge", c.String("bridge"),
		"--generation", strconv.FormatUint(rec.Generation, 10), "--at", strconv.FormatInt(rec.Expires.UnixNano(), 10))
	if id, err := dirID(dir); err == nil {
		// The directory of this bridge, not of one made later under the same name.
		args = append(args, "--dir-id", id)
	}
	cmd := exec.Command(exe, args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	// It outlives the terminal: what it has to say goes next to the bridge's partition state.
	if log, err := os.OpenFile(filepath.Join(dir, "restore.log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600); err == nil {
		cmd.Stderr = log
		defer log.Close()
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start the --for restorer: %w", err)
	}
	return cmd, nil
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
