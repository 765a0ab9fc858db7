package main

import (
	"strings"

	"github.com/urfave/cli/v2"
)

// interspersed moves flags that follow positional arguments in front of them, so that
// `pontoon bridge create NAME --port 80:a:80` works as users expect; urfave/cli stops parsing
// flags at the first positional argument. Everything after "--" is left untouched, since it
// belongs to the command being run.
func interspersed(app *cli.App, argv []string) []string {
	if len(argv) < 2 {
		return argv
	}
	out := []string{argv[0]}
	cmds := app.Commands
	flags := app.Flags
	i := 1
	// Walk down the command path, keeping global and group flags where they are.
	for i < len(argv) {
		a := argv[i]
		if strings.HasPrefix(a, "-") {
			out = append(out, a)
			if takesValue(flags, a) && i+1 < len(argv) {
				out = append(out, argv[i+1])
				i++
			}
			i++
			continue
		}
		c := findCommand(cmds, a)
		if c == nil {
			break
		}
		out = append(out, a)
		i++
		flags, cmds = c.Flags, c.Subcommands
		if len(cmds) == 0 {
			break
		}
	}
	// In partition specs "--" separates groups; everywhere else it ends pontoon's flags.
	groups := len(out) > 1 && out[1] == "partition"
	var fl, pos []string
	for ; i < len(argv); i++ {
		a := argv[i]
		if a == "--" && groups {
			pos = append(pos, a)
			continue
		}
		if a == "--" {
			pos = append(pos, argv[i:]...)
			break
		}
		if strings.HasPrefix(a, "-") && len(a) > 1 {
			fl = append(fl, a)
			if takesValue(flags, a) && i+1 < len(argv) {
				fl = append(fl, argv[i+1])
				i++
			}
			continue
		}
		pos = append(pos, a)
	}
	out = append(out, fl...)
	return append(out, pos...)
}

func findCommand(cmds []*cli.Command, name string) *cli.Command {
	for _, c := range cmds {
		if c.HasName(name) {
			return c
		}
	}
	return nil
}

// takesValue reports whether a flag word (without =value) expects the next word as its value.
func takesValue(flags []cli.Flag, word string) bool {
	if strings.Contains(word, "=") {
		return false
	}
	name := strings.TrimLeft(word, "-")
	for _, f := range flags {
		for _, n := range f.Names() {
			if n == name {
				_, isBool := f.(*cli.BoolFlag)
				return !isBool
			}
		}
	}
	return false
}
