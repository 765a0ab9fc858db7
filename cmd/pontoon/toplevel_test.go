package main

import (
	"bytes"
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
	for g, build := range groups {
		for _, c := range build() {
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
	// A word that names a command builds it wherever it stands (here "list", an argument):
	// building one too many costs a little, one too few would break the command line.
	for _, c := range newAppFor([]string{"pontoon", "--state-dir", "/x", "bridge", "list"}).Commands {
		want := c.Name == "bridge" || c.Name == "list"
		if built := len(c.Subcommands) > 0 || c.Action != nil; built != want {
			t.Errorf("pontoon bridge list: %s built: %v", c.Name, built)
		}
	}
}
