package main

import (
	"errors"
	"fmt"
	"github.com/pontoon-dev/pontoon/internal/suggest"
	"os"
	"strings"

	"github.com/urfave/cli/v2"
	"golang.org/x/sys/unix"
)

// errNeedsRoot is returned, before anything is touched, by a command that works on the
// chain when pontoon runs without the privileges for it.
var errNeedsRoot = errors.New("needs root")

// needRoot refuses to start a command that creates, enters or changes network namespaces
// (or reads pontoon's state, which is root's) without CAP_SYS_ADMIN and CAP_NET_ADMIN: it
// would otherwise fail halfway with whatever the first mkdir or setns says.
func needRoot(c *cli.Context) error {
	if privileged() {
		return nil
	}
	if os.Geteuid() != 0 && os.Getenv(spaceOffEnv) != "off" {
		// A user without root works in a space of namespaces of their own.
		return enterSpace(c)
	}
	return fmt.Errorf("`%s` %w: it works on network namespaces and on pontoon's state in /run/pontoon; run it as root, e.g. `sudo %s`",
		c.Command.HelpName, errNeedsRoot, c.Command.HelpName)
}

// privileged reports whether this process has the capabilities the chain needs. Root in
// a user namespace of its own counts: there the chain can be built too.
func privileged() bool {
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capget(&hdr, &data[0]); err != nil {
		return false
	}
	eff := uint64(data[0].Effective) | uint64(data[1].Effective)<<32
	need := uint64(1)<<unix.CAP_SYS_ADMIN | uint64(1)<<unix.CAP_NET_ADMIN
	return eff&need == need
}

// unknownCommand is the action of the app and of every command group: without an argument
// it shows the group's help, otherwise it names the subcommands that exist and suggests the
// nearest one.
func unknownCommand(c *cli.Context) error {
	root := c.Command == nil || c.Command.HelpName == c.App.HelpName
	if !c.Args().Present() {
		if root {
			return cli.ShowAppHelp(c)
		}
		return cli.ShowSubcommandHelp(c)
	}
	name := c.Args().First()
	cmds, prefix, what, help := c.App.Commands, "", "command", "pontoon"
	if !root {
		cmds, prefix, help = c.Command.Subcommands, c.Command.HelpName+": ", c.Command.HelpName
		if help == "pontoon partition" {
			what = "verb"
		}
	}
	var names []string
	for _, sc := range cmds {
		if !sc.Hidden {
			names = append(names, sc.Name)
		}
	}
	msg := fmt.Sprintf("%sunknown %s %q", prefix, what, name)
	if s := nearest(name, names); s != "" {
		msg += fmt.Sprintf("; did you mean %q?", s)
	}
	return usagef("%s\nthe %ss are: %s (`%s --help` explains them)", msg, what, strings.Join(names, ", "), help)
}

// nearest returns the name closest to word in edit distance, or the name word contains or
// is contained in (majorities-ring: ring), or "" when nothing is close.
func nearest(word string, names []string) string {
	best, bestD := "", -1
	for _, n := range names {
		d := suggest.Distance(word, n)
		if bestD < 0 || d < bestD {
			best, bestD = n, d
		}
	}
	if bestD >= 0 && bestD <= max(2, len(word)/3) {
		return best
	}
	for _, n := range names {
		if len(n) >= 3 && (strings.Contains(word, n) || strings.Contains(n, word)) {
			return n
		}
	}
	return ""
}
