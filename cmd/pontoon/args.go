package main

import (
	"strings"

	"github.com/urfave/cli/v2"
)

// interspersed rewrites argv so that urfave/cli, which stops parsing flags at the first
// positional argument and only knows each command's own flags, accepts flags where users
// write them:
//   - after positional arguments: `pontoon bridge create NAME --port 80:a:80`;
//   - before the subcommand that defines them: `pontoon partition --bridge B isolate n1`;
//   - global flags after a subcommand: `pontoon bridge list --state-dir D`.
//
// A word that looks like a negative number ("-1", "-10ms") is an argument, not a flag, so that
// the command can say what is wrong with the value. Everything after "--" is left untouched,
// since it belongs to the command being run; in partition specs "--" separates groups (one
// before the first group is ignored).
func interspersed(app *cli.App, argv []string) []string {
	if len(argv) < 2 {
		return argv
	}
	// The shell's completion asks with the flag last, after the words typed so far, which may
	// end in a flag that takes a value (`pontoon gateway up --subnet <TAB>`): it must stay
	// last, where urfave/cli looks for it, and not become that flag's value, which would run
	// the command instead.
	if last := len(argv) - 1; argv[last] == completionFlag {
		return append(interspersed(app, argv[:last]), completionFlag)
	}
	// Each level of the command path keeps the words urfave/cli parses there: the
	// command's name and its flags.
	type level struct {
		flags []cli.Flag
		words []string
	}
	levels := []*level{{flags: app.Flags, words: []string{argv[0]}}}
	cur := levels[0]
	cmds := app.Commands
	// Flags given before the subcommand that defines them wait until the path is known.
	var deferred [][]string
	i := 1
	// take returns the flag word at i and its value, if it has one.
	take := func(takes bool) []string {
		if takes && i+1 < len(argv) {
			return argv[i : i+2]
		}
		return argv[i : i+1]
	}
	// owner is the deepest level of the path that defines a flag word; a flag nobody
	// defines stays with the last command, whose parser reports it.
	owner := func(word string) *level {
		for k := len(levels) - 1; k >= 0; k-- {
			if defines(levels[k].flags, word) {
				return levels[k]
			}
		}
		return cur
	}
	for i < len(argv) {
		a := argv[i]
		if isFlag(a) {
			if below := definedBelow(cmds, a); below != nil && (len(levels) > 1 || !defines(cur.flags, a)) {
				w := take(takesValue(below, a))
				deferred = append(deferred, w)
				i += len(w)
				continue
			}
			// A flag of a level above (a global one after the command's name) goes there.
			o := owner(a)
			w := take(takesValue(o.flags, a))
			o.words = append(o.words, w...)
			i += len(w)
			continue
		}
		c := findCommand(cmds, a)
		if c == nil {
			break
		}
		cur = &level{flags: c.Flags, words: []string{a}}
		levels = append(levels, cur)
		i++
		cmds = c.Subcommands
		if len(cmds) == 0 {
			break
		}
	}
	for _, w := range deferred {
		o := owner(w[0])
		o.words = append(o.words, w...)
	}

	groups := len(levels) > 1 && levels[1].words[0] == "partition"
	// exec's command starts after BRIDGE GUEST, "--" or not: its words are its own.
	execLike := len(levels) == 2 && levels[1].words[0] == "exec"
	var pos []string
	for i < len(argv) {
		a := argv[i]
		if execLike && len(pos) == 2 {
			if a != "--" {
				pos = append(pos, "--")
			}
			pos = append(pos, argv[i:]...)
			break
		}
		if a == "--" && groups && len(pos) == 0 {
			// Before the first group it can only mean "end of flags", which negative
			// numbers do not need (see below): flags may still follow the groups.
			i++
			continue
		}
		if a == "--" && !groups {
			pos = append(pos, argv[i:]...)
			break
		}
		if a == "--" || !isFlag(a) {
			pos = append(pos, a)
			i++
			continue
		}
		o := owner(a)
		w := take(takesValue(o.flags, a))
		o.words = append(o.words, w...)
		i += len(w)
	}
	// A first argument that starts with "-" (a negative number) must not be read as a flag.
	if len(pos) > 0 && pos[0] != "--" && strings.HasPrefix(pos[0], "-") {
		pos = append([]string{"--"}, pos...)
	}
	var out []string
	for _, l := range levels {
		out = append(out, l.words...)
	}
	return append(out, pos...)
}

// completionFlag is the word the shell's completion adds to a command line (urfave/cli's).
const completionFlag = "--generate-bash-completion"

// isFlag reports whether a word is a flag rather than an argument: negative numbers such as
// "-1" or "-10ms" are arguments.
func isFlag(word string) bool {
	if len(word) < 2 || word[0] != '-' || word == "--" {
		return false
	}
	c := word[1]
	return !(c >= '0' && c <= '9' || c == '.')
}

func findCommand(cmds []*cli.Command, name string) *cli.Command {
	for _, c := range cmds {
		if c.HasName(name) {
			return c
		}
	}
	return nil
}

func flagName(word string) string {
	name, _, _ := strings.Cut(strings.TrimLeft(word, "-"), "=")
	return name
}

// defines reports whether one of flags is named by the flag word.
func defines(flags []cli.Flag, word string) bool {
	name := flagName(word)
	for _, f := range flags {
		if hasName(f, name) {
			return true
		}
	}
	return false
}

// definedBelow returns the flags of the first command under cmds (depth first) that defines
// the flag word, or nil.
func definedBelow(cmds []*cli.Command, word string) []cli.Flag {
	for _, c := range cmds {
		if defines(c.Flags, word) {
			return c.Flags
		}
		if f := definedBelow(c.Subcommands, word); f != nil {
			return f
		}
	}
	return nil
}

// takesValue reports whether a flag word (without =value) expects the next word as its value.
func takesValue(flags []cli.Flag, word string) bool {
	if strings.Contains(word, "=") {
		return false
	}
	name := flagName(word)
	for _, f := range flags {
		if hasName(f, name) {
			return !isBool(f)
		}
	}
	return false
}
