// Command pontoon gives per-project commands isolated, reproducible container networks and
// lets tests break those networks on purpose. Each subcommand parses its flags and makes one
// library call; all the work lives in the packages.
package main

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/pontoon-dev/pontoon/hooks"
	"github.com/pontoon-dev/pontoon/internal/advice"
	"github.com/pontoon-dev/pontoon/internal/nftpool"
	"github.com/pontoon-dev/pontoon/internal/statefile"
	"github.com/pontoon-dev/pontoon/internal/userns"
	"github.com/pontoon-dev/pontoon/netsetup"
	"github.com/pontoon-dev/pontoon/partition"
	"github.com/pontoon-dev/pontoon/runtime"
	"github.com/urfave/cli/v2"
)

// usageError marks mistakes in the command line itself, which exit with status 2.
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

// usagef formats a usage error; %w keeps the cause visible to errors.Is and errors.As.
func usagef(format string, a ...any) error { return usageError{fmt.Errorf(format, a...)} }

// exitCode carries a child's exit status out of `pontoon run` and `pontoon exec`.
type exitCode int

func (e exitCode) Error() string { return fmt.Sprintf("exit status %d", int(e)) }

func main() {
	// The holder of a user's pontoon space, or a command that just joined it (see enterSpace).
	userns.DispatchHold()
	// Docker's runtime (a symlink named pontoon-runc): runs for every runc call of every
	// container, so it skips all the rest.
	if hooks.IsRuntime(os.Args[0]) {
		os.Exit(hooks.RuntimeMain(os.Args[1:], os.Environ(), os.Stderr))
	}
	// PID 1 of containers with init on: before anything else, as cheap as the hook.
	runtime.DispatchInit()
	// Engines run the hook once per container and wait for it: it bypasses the CLI framework
	// so its start-up stays as short as possible.
	if len(os.Args) > 2 && os.Args[1] == "hook" && hooks.IsStage(os.Args[2]) {
		code := hooks.Main(os.Args[2:], os.Stdin, os.Stderr)
		// The engine waits for the hook: not for the kernel's clean-up after the partition's
		// refresh, a rewritten forward or a guest's IPv6 binding (see below).
		_ = nftpool.Linger()
		os.Exit(code)
	}
	partition.ProcessSource = cliSource()
	statefile.OnWait = tellLockWait
	app := newAppFor(os.Args)
	wrapPath(app, os.Args)
	// Help goes out in one write, not one per template fragment.
	app.Writer = stdout.Get()
	err := app.Run(interspersed(app, os.Args))
	stdout.Get().Flush()
	// The kernel's clean-up after an nftables change (a partition, a forward, a guest's IPv6
	// binding) would otherwise hold up the exit; if the hand-off fails, the exit just waits
	// for it.
	_ = nftpool.Linger()
	if err == nil {
		return
	}
	var code exitCode
	if errors.As(err, &code) {
		os.Exit(int(code))
	}
	var ue usageError
	// A taken bridge name is refused input, as a taken guest name (netsetup.TakenError) is.
	advice.Exit(err, errors.As(err, &ue) || errors.Is(err, netsetup.ErrInvalid) || errors.Is(err, netsetup.ErrBridgeExists))
}

// newApp is the app with every command built, for tests; main builds newAppFor(os.Args).
func newApp() *cli.App { return newAppFor(nil) }

// newAppFor is the app for the command line argv: the commands it names are built, the others
// are only their help lines (see commandsFor).
func newAppFor(argv []string) *cli.App {
	var global []cli.Flag
	for _, s := range netsetup.EnvSettings() {
		global = append(global, &cli.StringFlag{Name: s.Flag, Usage: s.Usage, DefaultText: s.Default, EnvVars: []string{s.Var}, Hidden: s.Hidden})
	}
	app := &cli.App{
		Name:                 "pontoon",
		Usage:                "isolated container networks for project commands, and network faults for tests",
		HideHelpCommand:      true,
		EnableBashCompletion: true,
		BashComplete:         completeApp,
		Flags:                global,
		Commands:             commandsFor(argv, global),
		Action:               unknownCommand,
		OnUsageError:         onUsageError,
		// Nothing shows it; left zero, urfave/cli stats the binary for it on every start.
		Compiled: time.Unix(1, 0),
	}
	return app
}

// env builds the chain's environment from the global flags.
func env(c *cli.Context) netsetup.Env {
	// Context.String looks the global flags up through the parent contexts.
	var e netsetup.Env
	for _, s := range netsetup.EnvSettings() {
		s.Set(&e, c.String(s.Flag))
	}
	return e
}

// args checks the number of positional arguments.
func args(c *cli.Context, names ...string) ([]string, error) {
	if len(names) == 0 && c.NArg() > 0 {
		return nil, usagef("%s takes no arguments; got %q (see `%s --help`)", c.Command.HelpName, c.Args().Slice(), c.Command.HelpName)
	}
	if c.NArg() != len(names) {
		return nil, usagef("%s takes %d argument(s): %v; got %d (see `%s --help`)", c.Command.HelpName, len(names), names, c.NArg(), c.Command.HelpName)
	}
	return c.Args().Slice(), nil
}

// onUsageError makes a flag the parser rejects a usage error (exit status 2) that points to
// the command's help, instead of printing the whole help text; a duration's refusal says
// what is wrong with the value (see durationFlagError).
func onUsageError(c *cli.Context, err error, _ bool) error {
	name := "pontoon"
	if c.Command != nil && c.Command.HelpName != "" {
		name = c.Command.HelpName
	}
	return usagef("%w (see `%s --help`)", flagSpelling(durationFlagError(c, err)), name)
}

// flagSpelling writes the flag an error of the flag package names as pontoon's help does:
// --name, not -name ("invalid value ... for flag -owner", "flag provided but not defined:
// -state-dir").
func flagSpelling(err error) error {
	msg := err.Error()
	for _, lead := range []string{" for flag -", "flag provided but not defined: -", "flag needs an argument: -"} {
		// The last: a quoted value before it may hold the same words.
		i := strings.LastIndex(msg, lead)
		if i < 0 {
			continue
		}
		name := msg[i+len(lead):]
		if j := strings.IndexAny(name, ": "); j >= 0 {
			name = name[:j]
		}
		if len(name) > 1 {
			return fmt.Errorf("%s-%s", msg[:i+len(lead)], msg[i+len(lead):])
		}
	}
	return err
}

// required checks that a flag the command cannot do without was given. (urfave/cli's own
// Required reports a missing flag with an error of a type no caller can recognise.)
func required(c *cli.Context, flag, example string) error {
	if !c.IsSet(flag) {
		return usagef("%s needs --%s, e.g. `%s %s --%s %s`", c.Command.HelpName, flag, c.Command.HelpName, c.Command.ArgsUsage, flag, example)
	}
	return nil
}

// unprivileged reports whether the command touches no namespace and no state of the chain.
func unprivileged(path string) bool {
	switch path {
	case "pontoon list", // reads pontoon.toml
		"pontoon hook install", // writes a file where --dir says
		"pontoon hook uninstall":
		return true
	}
	return false
}

// setup makes every command group answer an unknown subcommand plainly, and makes every
// command that works on the chain say up front that it needs root.
func setup(c *cli.Command, path string) {
	c.OnUsageError = onUsageError
	c.HideHelpCommand = true // --help is enough; a "help" subcommand would read as a verb
	if len(c.Subcommands) > 0 {
		if c.Action == nil {
			c.Action = unknownCommand
		}
		for _, sub := range c.Subcommands {
			setup(sub, path+" "+sub.Name)
		}
		return
	}
	before := c.Before
	if !unprivileged(path) && before == nil {
		before = needRoot
	}
	// A command whose help shows no arguments takes none: one given anyway (`partition heal
	// n1`) is refused, not ignored, before anything else is checked. This is the one place
	// that checks it; actions of such commands need not.
	noArgs := c.ArgsUsage == ""
	c.Before = func(ctx *cli.Context) error {
		if noArgs {
			if _, err := args(ctx); err != nil {
				return err
			}
		}
		if before == nil {
			return nil
		}
		return before(ctx)
	}
}
