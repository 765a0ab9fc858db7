package main

import (
	"io"
	"testing"

	"github.com/urfave/cli/v2"
)

// TestHelpMatchesTemplates: the help pontoon writes without urfave/cli's templates is, for
// the app and every command and command group, byte for byte what the templates write.
func TestHelpMatchesTemplates(t *testing.T) {
	t.Cleanup(func() { cli.HelpPrinter = helpPrinter })
	help := func(printer func(w io.Writer, templ string, data any), argv []string) string {
		cli.HelpPrinter = printer
		p, err := parse(append(argv, "--help")...)
		if err != nil {
			t.Fatalf("%v --help: %v", argv, err)
		}
		return p.help
	}
	var paths [][]string
	var walk func(prefix []string, cmds []*cli.Command)
	walk = func(prefix []string, cmds []*cli.Command) {
		for _, c := range cmds {
			p := append(append([]string{}, prefix...), c.Name)
			paths = append(paths, p)
			walk(p, c.Subcommands)
		}
	}
	walk(nil, newApp().Commands)
	paths = append(paths, nil) // the app
	direct := 0
	for _, argv := range paths {
		want := help(templatePrinter, argv)
		got := help(helpPrinter, argv)
		if got != want {
			t.Errorf("pontoon %v --help differs from the template's.\ngot:\n%s\nwant:\n%s", argv, got, want)
		}
		if want == "" {
			t.Errorf("pontoon %v --help printed nothing", argv)
		}
		direct++
	}
	if direct < 10 {
		t.Fatalf("compared %d help texts; the command tree has more", direct)
	}
}

// BenchmarkHelp times `pontoon --help` in-process, written directly and through urfave/cli's
// templates.
func BenchmarkHelp(b *testing.B) {
	b.Cleanup(func() { cli.HelpPrinter = helpPrinter })
	for _, bc := range []struct {
		name    string
		printer func(w io.Writer, templ string, data any)
	}{{"direct", helpPrinter}, {"template", templatePrinter}} {
		b.Run(bc.name, func(b *testing.B) {
			cli.HelpPrinter = bc.printer
			for b.Loop() {
				app := newApp()
				app.Writer = io.Discard
				if err := app.Run([]string{"pontoon", "--help"}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
