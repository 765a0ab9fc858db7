package main

import (
	"slices"

	"github.com/urfave/cli/v2"
)

// A command line builds only the commands it names. Building every command and flag of the
// tree was ~8% of the start-up of a command that needs one; `pontoon --help`, which names
// none, shows the help lines of topLevel alone.

// groups are the functions that build pontoon's top-level commands, some several at once.
var groups = []func() []*cli.Command{
	chainCommands,
	one(partitionCommands),
	one(captureCommand),
	one(namesCommands),
	one(serviceCommand),
	projectCommands,
	one(spaceCommand),
}

func one(build func() *cli.Command) func() []*cli.Command {
	return func() []*cli.Command { return []*cli.Command{build()} }
}

// topLevel are pontoon's commands in the order help lists them: each one's help line (its
// Usage wherever it is built) and the group that builds it (TestTopLevelTable).
var topLevel = []struct {
	name, usage string
	group       int
}{
	{"gateway", "the namespace that links every bridge to the host", 0},
	{"bridge", "per-run bridges: one private guest network each", 0},
	{"guest", "attach network namespaces to a bridge with a fixed IP", 0},
	{"exec", "run a command inside a guest's namespaces", 0},
	{"gc", "remove everything left by runs whose owner process is gone (safe at any time)", 0},
	{"partition", "split, cut and degrade the network between the guests of a bridge (atomically)", 1},
	{"capture", "record the guests' traffic into a pcapng file, one interface per guest, what the partition dropped included", 2},
	{"names", "the bridges' name servers: guests find each other by name and alias", 3},
	{"service", "service addresses: one address whose connections are spread over several guests", 4},
	{"run", "run a command of the project's pontoon.toml on its own bridge", 5},
	{"list", "list the project's commands", 5},
	{"hook", "the OCI hook container engines call (create-runtime, prestart, poststop, auto)", 5},
	{"space", "show your pontoon space (namespaces of your own, for use without root), starting it if needed", 6},
}

func usageOf(name string) string {
	for _, t := range topLevel {
		if t.name == name {
			return t.usage
		}
	}
	panic("pontoon: no top-level command " + name)
}

// commandsFor returns the top-level commands, built when argv names them (nil argv: all of
// them) and otherwise only their name and help line.
func commandsFor(argv []string) []*cli.Command {
	built := make([][]*cli.Command, len(groups))
	var cmds []*cli.Command
	for _, t := range topLevel {
		if argv != nil && !slices.Contains(argv[1:], t.name) {
			cmds = append(cmds, &cli.Command{Name: t.name, Usage: t.usage})
			continue
		}
		if built[t.group] == nil {
			built[t.group] = groups[t.group]()
		}
		c := findCommand(built[t.group], t.name)
		setup(c, "pontoon "+c.Name)
		cmds = append(cmds, c)
	}
	return cmds
}
