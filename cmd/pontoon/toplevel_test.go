package main

import (
	"bytes"
	"slices"
	"testing"

	"github.com/urfave/cli/v2"
)

// TestTopLevelTable: the table lists every command the groups build, in the group it names,
// and nothing else.
func TestTopLevelTable(t *testing.T) {
	listed := map[string]int{}
	for _, e := range topLevel {
		if _, dup := listed[e.name]; dup {
			t.Errorf("%s listed twice", e.name)
		}
		listed[e.name] = e.group
	}
	n := 0
	for g := range groups {
		for _, c := range group(g) {
			n++
			if lg, ok := listed[c.Name]; !ok || lg != g {
				t.Errorf("group %d builds %q: listed %v, in group %d", g, c.Name, ok, lg)
			}
			if c.Usage != usageOf(c.Name) {
				t.Errorf("%s: usage %q, the table's is %q", c.Name, c.Usage, usageOf(c.Name))
			}
		}
	}
	if n != len(topLevel) {
		t.Errorf("the groups build %d commands, the table lists %d", n, len(topLevel))
	}
}

// TestHelpWithoutBuilding: `pontoon --help`, which builds no command, says what it says with
// every command built; a command line builds the commands it names and no other.
func TestHelpWithoutBuilding(t *testing.T) {
	lazy, err := parse("--help")
	if err != nil {
		t.Fatal(err)
	}
	app := newApp()
	var out bytes.Buffer
	app.Writer, app.ErrWriter = &out, &out
	app.ExitErrHandler = func(*cli.Context, error) {}
	if err := app.Run([]string{"pontoon", "--help"}); err != nil {
		t.Fatal(err)
	}
	if lazy.help != out.String() || lazy.help == "" {
		t.Errorf("help with nothing built:\n%s\nwith everything built:\n%s", lazy.help, out.String())
	}
	// The command's word builds its command, and no other word does (here "list", an
	// argument of bridge, is also a top-level command). Where the line does not say its
	// command plainly, each word that names one builds it.
	for _, tc := range []struct {
		argv  []string
		built []string
	}{
		{[]string{"pontoon", "--state-dir", "/x", "bridge", "list"}, []string{"bridge"}},
		{[]string{"pontoon", "--state-dir=/x", "--netns-dir", "run", "list"}, []string{"list"}},
		{[]string{"pontoon", "--frob", "bridge", "list"}, []string{"bridge", "list"}},
		{[]string{"pontoon", "--", "partition"}, []string{"partition"}},
		// interspersed moves a trailing global flag before the command, where it takes the
		// command's word as its value; help and completion may name any word.
		{[]string{"pontoon", "bridge", "list", "--state-dir"}, []string{"bridge", "list"}},
		{[]string{"pontoon", "list", "service", "--help"}, []string{"list", "service"}},
		{[]string{"pontoon", "-h", "bridge"}, []string{"bridge"}},
		{[]string{"pontoon", "gc", "--generate-bash-completion"}, []string{"gc"}},
	} {
		for _, c := range newAppFor(tc.argv).Commands {
			want := slices.Contains(tc.built, c.Name)
			if built := len(c.Subcommands) > 0 || c.Action != nil; built != want {
				t.Errorf("%v: %s built: %v", tc.argv, c.Name, built)
			}
		}
	}
}
