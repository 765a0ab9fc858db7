package main

import (
	"fmt"
	"io"
	"net"
	"os"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/pontoon-dev/pontoon/internal/userns"
	"github.com/pontoon-dev/pontoon/netsetup"
	"github.com/urfave/cli/v2"
	"golang.org/x/sys/unix"
)

// spaceOffEnv set to "off" keeps a user without root out of their space: commands that
// need root then say so instead.
const spaceOffEnv = "PONTOON_SPACE"

// enterSpace runs the command again inside the calling user's pontoon space (started on
// first use) and does not return when that works: the user's bridges, guests and state
// live there, out of reach of other users and of the host's root state. It returns an
// error when the command cannot run there.
func enterSpace(c *cli.Context) error {
	if c.IsSet("user") {
		return fmt.Errorf("`%s --user` %w: it links a user's space to the host; run it as root, e.g. `sudo %s --user %s`",
			c.Command.HelpName, errNeedsRoot, c.Command.HelpName, c.String("user"))
	}
	if userns.Inside() {
		return fmt.Errorf("`%s` lacks CAP_SYS_ADMIN and CAP_NET_ADMIN inside the user's pontoon space", c.Command.HelpName)
	}
	space, created, err := ensureSpace()
	if err != nil {
		return fmt.Errorf("`%s` %w, or user namespaces to run in a space of your own: %w", c.Command.HelpName, errNeedsRoot, err)
	}
	if created {
		fmt.Fprintf(os.Stderr, "pontoon: started your pontoon space (pid %d; state in %s)\n", space.PID, space.Dir)
	}
	self, err := os.Executable()
	if err != nil {
		return fmt.Errorf("find the pontoon binary to run in your space: %w", err)
	}
	wd, _ := os.Getwd()
	argv, err := space.JoinArgv(append([]string{self}, os.Args[1:]...)...)
	if err != nil {
		return err
	}
	err = unix.Exec(argv[0], argv, append(userns.RootEnviron(spaceEnviron(space, os.Environ())), userns.JoinEnviron(wd)...))
	return fmt.Errorf("join your pontoon space: exec %s: %w", argv[0], err)
}

// joinRunningSpace runs a command that needs no privilege (list) in the caller's space
// when one runs, so that it sees the user's own chain; otherwise it runs here.
func joinRunningSpace(c *cli.Context) error {
	if os.Geteuid() == 0 || os.Getenv(spaceOffEnv) == "off" || userns.Inside() {
		return nil
	}
	dir, err := userns.Dir(os.Getuid())
	if err != nil {
		return nil
	}
	if _, ok, _ := userns.Find(dir); !ok {
		return nil
	}
	return enterSpace(c)
}

// ensureSpace returns the calling user's space, starting it when none runs.
func ensureSpace() (userns.Space, bool, error) {
	dir, err := userns.Dir(os.Getuid())
	if err != nil {
		return userns.Space{}, false, err
	}
	return userns.Ensure(dir)
}

// spaceEnviron is environ with the chain's locations inside the space: its private tmpfs,
// which the host's root and other users never see. The caller's own values of them go:
// getenv takes a variable's first value, so the space's appended after would lose, and
// the chain would split between the space and wherever the caller's shell pointed.
func spaceEnviron(s userns.Space, environ []string) []string {
	var e netsetup.Env
	e.StateDir = filepath.Join(s.Run(), "state")
	e.NetnsDir = filepath.Join(s.Run(), "netns")
	set := e.Environ()
	out := slices.DeleteFunc(slices.Clone(environ), func(kv string) bool {
		k, _, _ := strings.Cut(kv, "=")
		return slices.ContainsFunc(set, func(s string) bool { return strings.HasPrefix(s, k+"=") })
	})
	return append(out, set...)
}

// userName is the calling user's login name, or the uid when it has none. In a user
// namespace it is the user outside, whose uid the namespace maps to 0: the one the host's
// root names (`gateway up --user`), not root of the space.
func userName() string {
	if uid, ok := userns.OuterUID(); ok {
		if u, err := user.LookupId(strconv.Itoa(uid)); err == nil {
			return u.Username
		}
		return strconv.Itoa(uid)
	}
	if u := os.Getenv("USER"); u != "" {
		return u
	}
	return strconv.Itoa(os.Getuid())
}

// spaceCommand shows (and starts when missing) the caller's space; the host's root runs it
// as the user to set a user up.
func spaceCommand() *cli.Command {
	return &cli.Command{
		Name:   "space",
		Usage:  usageOf("space"),
		Flags:  []cli.Flag{jsonFlag, &cli.BoolFlag{Name: "stop", Usage: "end the space and everything in it"}},
		Before: func(*cli.Context) error { return nil },
		Action: func(c *cli.Context) error {
			if os.Geteuid() == 0 && !userns.Inside() {
				return usagef("pontoon space is for users without root; as root, name the user: `pontoon gateway up --user NAME`")
			}
			if c.Bool("stop") {
				dir, err := userns.Dir(os.Getuid())
				if err != nil {
					return err
				}
				s, ok, err := userns.Find(dir)
				if err != nil || !ok {
					return err
				}
				return s.Stop()
			}
			s, _, err := ensureSpace()
			if err != nil {
				return err
			}
			if c.Bool("json") {
				return printJSON(struct {
					PID int    `json:"pid"`
					Dir string `json:"dir"`
				}{s.PID, s.Dir})
			}
			fmt.Printf("pid %d, state in %s\n", s.PID, s.Dir)
			return nil
		},
	}
}

// noteUnlinked says, in a user's space that the host's root has not linked to the host,
// how guests get beyond it.
func noteUnlinked(w io.Writer) {
	if !userns.Inside() {
		return
	}
	// This process is in the space's network namespace. (Not /proc/self/net/dev, which
	// right-aligns names in six columns: a longer one has no blank before it.)
	if linked, err := hasInterface(netsetup.UserLinkName); err != nil || linked {
		return
	}
	fmt.Fprintf(w, "pontoon: guests reach each other and your space only; for the outside, ask root for `sudo pontoon gateway up --user %s`\n", userName())
}

// hasInterface reports whether this process's network namespace has an interface named name.
func hasInterface(name string) (bool, error) {
	ifs, err := net.Interfaces()
	if err != nil {
		return false, err
	}
	return slices.ContainsFunc(ifs, func(i net.Interface) bool { return i.Name == name }), nil
}
