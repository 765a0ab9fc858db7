package main

import (
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/urfave/cli/v2"
)

// TestFlagNamesUnchanged: every wrapped flag answers Names() as urfave/cli would, and the help
// of the app and of every command, and bash completion, are the same with and without the
// wrappers.
func TestFlagNamesUnchanged(t *testing.T) {
	app := newApp()
	app.Flags = fastNames(app.Flags)
	wrapped := 0
	check := func(where string, flags []cli.Flag) {
		for _, f := range flags {
			inner := unwrapped(f)
			if inner != f {
				wrapped++
			}
			if got, want := f.Names(), inner.Names(); !slices.Equal(got, want) {
				t.Errorf("%s: flag names %q, urfave/cli gives %q", where, got, want)
			}
			for _, n := range inner.Names() {
				if !hasName(f, n) || !hasName(inner, n) {
					t.Errorf("%s: hasName(%q) is false", where, n)
				}
			}
			if hasName(f, "no-such-flag") {
				t.Errorf("%s: hasName(no-such-flag) is true", where)
			}
			if isBool(f) != isBool(inner) {
				t.Errorf("%s: flag %q: isBool differs from the wrapped flag's", where, inner.Names())
			}
		}
	}
	check("pontoon", app.Flags)
	var paths [][]string
	var walk func(prefix []string, cmds []*cli.Command)
	walk = func(prefix []string, cmds []*cli.Command) {
		for _, c := range cmds {
			p := append(slices.Clone(prefix), c.Name)
			paths = append(paths, p)
			c.Flags = fastNames(c.Flags)
			check("pontoon "+c.FullName(), c.Flags)
			walk(p, c.Subcommands)
		}
	}
	walk(nil, app.Commands)
	if wrapped < 20 {
		t.Fatalf("only %d flags wrapped", wrapped)
	}

	t.Cleanup(func() { wrapFlagNames = true; cli.HelpPrinter = helpPrinter })
	cli.HelpPrinter = templatePrinter // the templates render each flag through its own methods
	help := func(argv []string, wrap bool) string {
		wrapFlagNames = wrap
		p, err := parse(append(slices.Clone(argv), "--help")...)
		if err != nil {
			t.Fatalf("%v --help: %v", argv, err)
		}
		return p.help
	}
	for _, argv := range append(paths, nil) {
		if got, want := help(argv, true), help(argv, false); got != want {
			t.Errorf("pontoon %v --help with wrapped flags:\n%s\nwithout:\n%s", argv, got, want)
		}
	}
}

func TestCompletionUnchanged(t *testing.T) {
	t.Cleanup(func() { wrapFlagNames = true })
	saved := os.Args
	t.Cleanup(func() { os.Args = saved })
	complete := func(argv []string, wrap bool) string {
		wrapFlagNames = wrap
		// urfave/cli's completion reads the word before the last from os.Args.
		os.Args = append([]string{"pontoon"}, argv...)
		p, err := parse(argv...)
		if err != nil {
			t.Fatalf("%v: %v", argv, err)
		}
		return p.help
	}
	for _, argv := range [][]string{
		{"--generate-bash-completion"},
		{"--g", "--generate-bash-completion"},
		{"--h", "--generate-bash-completion"},
		{"--st", "--generate-bash-completion"},
		{"bridge", "--generate-bash-completion"},
		{"partition", "isolate", "--", "--generate-bash-completion"},
	} {
		got, want := complete(argv, true), complete(argv, false)
		if got != want {
			t.Errorf("pontoon %v with wrapped flags:\n%s\nwithout:\n%s", argv, got, want)
		}
	}
	if got := complete([]string{"--h", "--generate-bash-completion"}, true); !strings.Contains(got, "--help") {
		t.Errorf("completion of --h: %q; want --help", got)
	}
	if got := complete([]string{"--g", "--generate-bash-completion"}, true); strings.Contains(got, "generate") {
		t.Errorf("completion of --g: %q; want no hidden flag", got)
	}
}
