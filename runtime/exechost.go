package runtime

import (
	"bytes"
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"syscall"

	"golang.org/x/sys/unix"
)

// execVisible runs argv in every namespace of the container process pid through nsenter,
// as a child rather than by replacing the caller: nsenter forks to enter the pid namespace
// and passes no signal on, so a `kill` of the caller would otherwise reach nsenter and leave
// the command running in the container. The caller relays what only it receives to the
// command and returns the command's status.
func execVisible(pid int, argv []string) (int, error) {
	cmd, err := nsenterCommand(pid, argv, os.Getenv("TERM"))
	if err != nil {
		return ExitSetupFailed, err
	}
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	// Caught, not ignored: an ignored signal would stay ignored in the command.
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGQUIT, syscall.SIGTERM, syscall.SIGHUP)
	defer signal.Stop(sigs)
	if err := cmd.Start(); err != nil {
		return ExitSetupFailed, fmt.Errorf("start nsenter: %w", err)
	}
	// The command shares the caller's process group, so a terminal's Ctrl-C and Ctrl-\ reach
	// it directly; passing those on as well would deliver them twice.
	fromTerminal := inForeground()
	done := make(chan struct{})
	go func() {
		for {
			select {
			case s := <-sigs:
				sig := s.(syscall.Signal)
				if fromTerminal && (sig == syscall.SIGINT || sig == syscall.SIGQUIT) {
					continue
				}
				signalChildOf(cmd.Process.Pid, sig)
			case <-done:
				return
			}
		}
	}()
	err = cmd.Wait()
	close(done)
	return exitCode(cmd.ProcessState, err), nil
}

// inForeground tells whether the caller's process group owns its terminal, where keyboard
// signals go to the whole group.
func inForeground() bool {
	pgrp, err := unix.IoctlGetInt(0, unix.TIOCGPGRP)
	return err == nil && pgrp == syscall.Getpgrp()
}

// signalChildOf delivers sig to the process nsenter (parent) forked, or to nsenter itself
// before it has forked: it then exits with the command's status or dies of its signal.
func signalChildOf(parent int, sig syscall.Signal) {
	entries, _ := os.ReadDir("/proc")
	sent := false
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == parent {
			continue
		}
		if ppid, ok := parentOf(pid); ok && ppid == parent && syscall.Kill(pid, sig) == nil {
			sent = true
		}
	}
	if !sent {
		syscall.Kill(parent, sig)
	}
}

// parentOf reads the parent pid from /proc/PID/stat, after the command name, which may
// itself hold spaces and parentheses.
func parentOf(pid int) (int, bool) {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, false
	}
	i := bytes.LastIndexByte(data, ')')
	if i < 0 {
		return 0, false
	}
	f := bytes.Fields(data[i+1:])
	if len(f) < 2 {
		return 0, false
	}
	ppid, err := strconv.Atoi(string(f[1]))
	return ppid, err == nil
}
