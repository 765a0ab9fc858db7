package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// tellLockWait says on whom a command waits when a lock of pontoon's state is not had within
// a second (statefile.OnWait): a command held up by another, stopped or slow, would
// otherwise just hang without a word.
func tellLockWait(path string, holders []int) {
	var who []string
	for _, pid := range holders {
		if pid <= 0 {
			who = append(who, "a process of another pid namespace")
			continue
		}
		who = append(who, fmt.Sprintf("pid %d (%s)", pid, commandLine(pid)))
	}
	if len(who) == 0 {
		who = []string{"another process"}
	}
	fmt.Fprintf(os.Stderr, "pontoon: waiting for %s, which holds the lock %s\n", strings.Join(who, " and "), path)
}

// commandLine is a process's command line as a user would have typed it, shortened.
func commandLine(pid int) string {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil || len(raw) == 0 {
		return "gone"
	}
	args := strings.Split(strings.TrimRight(string(raw), "\x00"), "\x00")
	args[0] = filepath.Base(args[0])
	line := strings.Join(args, " ")
	if len(line) > 100 {
		line = line[:97] + "..."
	}
	return line
}
