package main

import (
	"fmt"
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

// TestWrappedApplyUnchanged: the wrappers' own Apply parses as urfave/cli's does: values from
// the command line, the environment and files, how often a bool was given, whether a flag
// counts as set, the default help shows, and the error for a bool the environment spells
// wrong.
func TestWrappedApplyUnchanged(t *testing.T) {
	file := t.TempDir() + "/value"
	if err := os.WriteFile(file, []byte("from-file"), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PONTOON_T_STR", "from-env")
	t.Setenv("PONTOON_T_YES", "true")
	t.Setenv("PONTOON_T_EMPTY", "")
	t.Setenv("PONTOON_T_BAD", "maybe")
	flags := func() []cli.Flag {
		var dest string
		return []cli.Flag{
			&cli.StringFlag{Name: "plain", Aliases: []string{"p"}, Value: "dflt"},
			&cli.StringFlag{Name: "env", Value: "dflt", EnvVars: []string{"PONTOON_T_UNSET", "PONTOON_T_STR"}},
			&cli.StringFlag{Name: "file", FilePath: "/no/such," + file},
			&cli.StringFlag{Name: "dest", Destination: &dest, Value: "d"},
			&cli.StringFlag{Name: "shown", DefaultText: "the default", EnvVars: []string{"PONTOON_T_STR"}},
			&cli.BoolFlag{Name: "verbose", Aliases: []string{"v"}},
			&cli.BoolFlag{Name: "yes", EnvVars: []string{"PONTOON_T_YES"}},
			&cli.BoolFlag{Name: "empty", Value: true, EnvVars: []string{"PONTOON_T_EMPTY"}},
			&cli.BoolFlag{Name: "on", Value: true},
		}
	}
	run := func(wrap bool, env string, argv ...string) string {
		fs := flags()
		if env != "" {
			fs = append(fs, &cli.BoolFlag{Name: "bad", EnvVars: []string{env}})
		}
		if wrap {
			fs = fastNames(fs)
		}
		var out strings.Builder
		app := &cli.App{Name: "t", Flags: fs, Writer: &out, ErrWriter: &out, Action: func(c *cli.Context) error {
			for _, f := range fs {
				n := f.Names()[0]
				fmt.Fprintf(&out, "%s=%q set=%v", n, c.Value(n), c.IsSet(n))
				if isBool(f) {
					fmt.Fprintf(&out, " count=%d", c.Count(n))
				}
				fmt.Fprintf(&out, " default=%q\n", f.(cli.DocGenerationFlag).GetDefaultText())
			}
			return nil
		}}
		if err := app.Run(append([]string{"t"}, argv...)); err != nil {
			fmt.Fprintf(&out, "error: %v\n", err)
		}
		return out.String()
	}
	for _, c := range []struct {
		env  string
		argv []string
	}{
		{},
		{argv: []string{"--plain", "x", "-v", "-v", "--env", "cli", "--dest", "y", "--on=false"}},
		{argv: []string{"-v", "--verbose"}},
		{argv: []string{"-p=z", "--yes=false", "--empty"}},
		{env: "PONTOON_T_BAD"},
		{env: "PONTOON_T_YES", argv: []string{"--bad=false"}},
	} {
		got, want := run(true, c.env, c.argv...), run(false, c.env, c.argv...)
		if got != want {
			t.Errorf("%v %v: wrapped:\n%s\nurfave/cli's:\n%s", c.env, c.argv, got, want)
		}
		if !strings.Contains(want, "plain=") && !strings.Contains(want, "error:") {
			t.Errorf("%v %v: the action did not run: %s", c.env, c.argv, want)
		}
	}
}
