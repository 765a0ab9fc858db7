// Command pontoon gives per-project commands isolated, reproducible container networks and
// lets tests break those networks on purpose. Each subcommand parses its flags and makes one
// library call; all the work lives in the packages.
package main

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/pontoon-dev/pontoon/hooks"
	"github.com/pontoon-dev/pontoon/netsetup"
	"github.com/urfave/cli/v2"
)

// usageError marks mistakes in the command line itself, which exit with status 2.
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func usagef(format string, a ...any) error { return usageError{fmt.Sprintf(format, a...)} }

// exitCode carries a child's exit status out of `pontoon run` and `pontoon exec`.
type exitCode int

func (e exitCode) Error() string { return fmt.Sprintf("exit status %d", int(e)) }

func main() {
	// Engines run the hook once per container and wait for it: it bypasses the CLI framework
	// so its start-up stays as short as possible.
	if len(os.Args) > 2 && os.Args[1] == "hook" && hooks.IsStage(os.Args[2]) {
		os.Exit(hooks.Main(os.Args[2:], os.Stdin, os.Stderr))
	}
	app := &cli.App{
		Name:                 "pontoon",
		Usage:                "isolated container networks for project commands, and network faults for tests",
		HideHelpCommand:      true,
		EnableBashCompletion: true,
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "state-dir", Usage: "where pontoon keeps its state", Value: "/run/pontoon", EnvVars: []string{"PONTOON_STATE_DIR"}},
			&cli.StringFlag{Name: "netns-dir", Usage: "where pontoon pins the namespaces it creates", Value: "/run/netns", EnvVars: []string{"PONTOON_NETNS_DIR"}},
			&cli.StringFlag{Name: "host-netns", Usage: "network namespace that plays the host (default: the current one)", EnvVars: []string{"PONTOON_HOST_NETNS"}, Hidden: true},
			&cli.StringFlag{Name: "resolv-conf", Usage: "the host's resolver configuration", Value: "/etc/resolv.conf", EnvVars: []string{"PONTOON_RESOLV_CONF"}, Hidden: true},
		},
		Commands: commands(),
		OnUsageError: func(c *cli.Context, err error, isSub bool) error {
			return usageError{err.Error()}
		},
	}
	err := app.Run(interspersed(app, os.Args))
	if err == nil {
		return
	}
	var code exitCode
	if errors.As(err, &code) {
		os.Exit(int(code))
	}
	fmt.Fprintf(os.Stderr, "pontoon: %v\n", err)
	var ue usageError
	if errors.As(err, &ue) || strings.HasPrefix(err.Error(), "Required flag") {
		os.Exit(2)
	}
	os.Exit(1)
}

// env builds the chain's environment from the global flags.
func env(c *cli.Context) netsetup.Env {
	// Context.String looks the global flags up through the parent contexts.
	return netsetup.Env{
		HostNetns:  c.String("host-netns"),
		StateDir:   c.String("state-dir"),
		NetnsDir:   c.String("netns-dir"),
		ResolvConf: c.String("resolv-conf"),
	}
}

// args checks the number of positional arguments.
func args(c *cli.Context, names ...string) ([]string, error) {
	if c.NArg() != len(names) {
		return nil, usagef("%s takes %d argument(s): %v; got %d (see `pontoon %s --help`)", c.Command.HelpName, len(names), names, c.NArg(), c.Command.HelpName)
	}
	return c.Args().Slice(), nil
}

func commands() []*cli.Command {
	var cmds []*cli.Command
	cmds = append(cmds, chainCommands()...)
	cmds = append(cmds, partitionCommands())
	cmds = append(cmds, projectCommands()...)
	return cmds
}
