package main

import (
	"slices"
	"strconv"

	"github.com/urfave/cli/v2"
)

// A command line builds only the commands it names. Building every command and flag of the
// tree was ~8% of the start-up of a command that needs one; `pontoon --help`, which names
// none, shows the help lines of topLevel alone.

// groups is the number of groups; group builds the commands of one, some several at once.
// A switch, as a table of plain functions would be: wrapping the builders of one command
// into functions of a group, as a table needs, is work at every start-up.
const groups = 8

func group(i int) []*cli.Command {
	switch i {
	case 0:
		return []*cli.Command{gatewayCommand()}
	case 1:
		return chainCommands()
	case 2:
		return []*cli.Command{partitionCommands()}
	case 3:
		return []*cli.Command{captureCommand()}
	case 4:
		return []*cli.Command{namesCommands()}
	case 5:
		return []*cli.Command{serviceCommand()}
	case 6:
		return projectCommands()
	case 7:
		return []*cli.Command{spaceCommand()}
	}
	panic("pontoon: no command group " + strconv.Itoa(i))
}

// topLevel are pontoon's commands in the order help lists them: each one's help line (its
// Usage wherever it is built) and the group that builds it (TestTopLevelTable).
var topLevel = []struct {
	name, usage string
	group       int
}{
	{"gateway", "the namespace that links every bridge to the host", 0},
	{"bridge", "per-run bridges: one private guest network each", 1},
	{"guest", "attach network namespaces to a bridge with a fixed IP", 1},
	{"exec", "run a command inside a guest's namespaces", 1},
	{"gc", "remove everything left by runs whose owner process is gone (safe at any time)", 1},
	{"partition", "split, cut and degrade the network between the guests of a bridge (atomically)", 2},
	{"capture", "record the guests' traffic into a pcapng file, one interface per guest, what the partition dropped included", 3},
	{"names", "the bridges' name servers: guests find each other by name and alias", 4},
	{"service", "service addresses: one address whose connections are spread over several guests", 5},
	{"run", "run a command of the project's pontoon.toml on its own bridge", 6},
	{"list", "list the project's commands", 6},
	{"hook", "the OCI hook container engines call (create-runtime, prestart, poststop, auto)", 6},
	{"space", "show your pontoon space (namespaces of your own, for use without root), starting it if needed", 7},
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
// them) and otherwise only their name and help line. global are the app's own flags.
func commandsFor(argv []string, global []cli.Flag) []*cli.Command {
	word, known := "", false
	if argv != nil {
		word, known = commandWord(argv, global)
	}
	built := make([][]*cli.Command, groups)
	var cmds []*cli.Command
	for _, t := range topLevel {
		// Where the command line does not say its command plainly, any word that names one
		// may be it: building one too many costs a little, one too few would break it.
		named := argv == nil || known && t.name == word || !known && slices.Contains(argv[1:], t.name)
		if !named {
			cmds = append(cmds, &cli.Command{Name: t.name, Usage: t.usage})
			continue
		}
		if built[t.group] == nil {
			built[t.group] = group(t.group)
		}
		c := findCommand(built[t.group], t.name)
		setup(c, "pontoon "+c.Name)
		cmds = append(cmds, c)
	}
	return cmds
}

// commandWord is the word of argv that names its top-level command: the first that is
// neither a global flag nor a global flag's value ("" when there is none, as in `pontoon
// --help`). known is false where interspersed, which moves flags about, or urfave/cli's help
// may take another word for the command: a flag that is not global comes first, or "--", a
// global flag that takes a value ends the line, or help or completion is asked for anywhere.
func commandWord(argv []string, global []cli.Flag) (word string, known bool) {
	if last := argv[len(argv)-1]; len(argv) > 1 && isFlag(last) && defines(global, last) && takesValue(global, last) {
		return "", false
	}
	for _, a := range argv[1:] {
		if isFlag(a) {
			if n := flagName(a); n == "help" || n == "h" || a == completionFlag {
				return "", false
			}
		}
	}
	for i := 1; i < len(argv); i++ {
		a := argv[i]
		switch {
		case a == "--":
			return "", false
		case !isFlag(a):
			return a, true
		case !defines(global, a):
			return "", false
		case takesValue(global, a):
			i++ // its value
		}
	}
	return "", true
}
