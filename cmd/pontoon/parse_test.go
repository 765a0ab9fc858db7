package main

import (
	"bytes"
	"errors"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/pontoon-dev/pontoon/hooks"
	"github.com/urfave/cli/v2"
)

// parsed is what the command line parser made of a command line.
type parsed struct {
	path   string   // the command reached, e.g. "pontoon partition isolate"
	args   []string // its positional arguments
	bridge string   // --bridge as the command saw it
	help   string   // what was printed (help texts)
}

// parse runs argv (without the binary's name) through pontoon's parser, interspersed
// included, with every action replaced by one that records what it was given. Nothing is
// executed; no privilege is needed.
func parse(argv ...string) (parsed, error) {
	argv = append([]string{"pontoon"}, argv...)
	app := newAppFor(argv)
	wrapPath(app, argv)
	var p parsed
	record := func(c *cli.Context) error {
		p.path, p.args, p.bridge = c.Command.HelpName, c.Args().Slice(), c.String("bridge")
		return nil
	}
	var walk func([]*cli.Command)
	walk = func(cmds []*cli.Command) {
		for _, c := range cmds {
			c.Before = nil
			if len(c.Subcommands) == 0 {
				c.Action = record
			}
			walk(c.Subcommands)
		}
	}
	walk(app.Commands)
	var out bytes.Buffer
	app.Writer, app.ErrWriter = &out, &out
	app.ExitErrHandler = func(*cli.Context, error) {} // report, never os.Exit
	err := app.Run(interspersed(app, argv))
	p.help = out.String()
	return p, err
}

// TestBridgeFlagBeforeOrAfterVerb reproduces `pontoon partition --bridge B isolate n1`, the
// form the README documents, which failed with "flag provided but not defined: -bridge":
// --bridge works before the verb, between verb and guests, and after the guests.
func TestBridgeFlagBeforeOrAfterVerb(t *testing.T) {
	for _, argv := range [][]string{
		{"partition", "--bridge", "B", "isolate", "n1"},
		{"partition", "--bridge=B", "isolate", "n1"},
		{"partition", "isolate", "--bridge", "B", "n1"},
		{"partition", "isolate", "n1", "--bridge", "B"},
		{"--state-dir", "/tmp/x", "partition", "--bridge", "B", "isolate", "n1", "--for", "1s"},
	} {
		p, err := parse(argv...)
		if err != nil || p.path != "pontoon partition isolate" || p.bridge != "B" || !slices.Equal(p.args, []string{"n1"}) {
			t.Errorf("pontoon %s: reached %q with args %q, --bridge %q, error %v; want isolate [n1] on bridge B", strings.Join(argv, " "), p.path, p.args, p.bridge, err)
		}
	}
	// Groups keep their separators wherever the flags are.
	p, err := parse("partition", "--bridge", "B", "disjoint", "a", "--", "b", "--mode", "reject")
	if err != nil || p.bridge != "B" || !slices.Equal(p.args, []string{"a", "--", "b"}) {
		t.Errorf("disjoint with flags before and after: %+v, %v", p, err)
	}
}

// TestArgumentForms: flags after arguments, global flags after the subcommand, negative
// numbers as arguments (so that the command can say what is wrong with them), and "--"
// ending pontoon's flags before a command's own.
func TestArgumentForms(t *testing.T) {
	tests := []struct {
		argv []string
		path string
		args []string
	}{
		{[]string{"bridge", "create", "b1", "--port", "80:a:80"}, "pontoon bridge create", []string{"b1"}},
		{[]string{"bridge", "list", "--state-dir", "/tmp/s"}, "pontoon bridge list", nil},
		// A global flag between a command and its subcommand.
		{[]string{"partition", "--bridge", "B", "--state-dir", "/tmp/s", "isolate", "n1"}, "pontoon partition isolate", []string{"n1"}},
		{[]string{"bridge", "--netns-dir", "/tmp/n", "list"}, "pontoon bridge list", nil},
		{[]string{"partition", "loss", "-1", "n1", "--bridge", "B"}, "pontoon partition loss", []string{"-1", "n1"}},
		{[]string{"partition", "loss", "--", "-1", "n1", "--bridge", "B"}, "pontoon partition loss", []string{"-1", "n1"}},
		{[]string{"partition", "delay", "-10ms", "n1"}, "pontoon partition delay", []string{"-10ms", "n1"}},
		{[]string{"exec", "b", "g", "--", "ls", "-l", "--bridge"}, "pontoon exec", []string{"b", "g", "--", "ls", "-l", "--bridge"}},
		// Without "--", the command's flags are still its own, pontoon's global ones too.
		{[]string{"exec", "b", "g", "echo", "--state-dir", "/x"}, "pontoon exec", []string{"b", "g", "--", "echo", "--state-dir", "/x"}},
		{[]string{"exec", "b", "g", "sh", "-c", "true"}, "pontoon exec", []string{"b", "g", "--", "sh", "-c", "true"}},
		{[]string{"exec", "--state-dir", "/s", "b", "g", "ls"}, "pontoon exec", []string{"b", "g", "--", "ls"}},
		{[]string{"run", "test", "--only", "a", "--", "-v"}, "pontoon run", []string{"test", "--", "-v"}},
	}
	for _, tt := range tests {
		p, err := parse(tt.argv...)
		if err != nil || p.path != tt.path || !slices.Equal(p.args, tt.args) {
			t.Errorf("pontoon %s: reached %q with args %q, error %v; want %q with %q", strings.Join(tt.argv, " "), p.path, p.args, err, tt.path, tt.args)
		}
	}
}

// TestUnknownVerb reproduces `pontoon partition majorities-ring` and `isolat`, which said
// only "No help topic": the answer names the verbs that exist and the nearest one, and is a
// usage error.
func TestUnknownVerb(t *testing.T) {
	tests := []struct {
		argv    []string
		suggest string
	}{
		{[]string{"partition", "isolat", "n1"}, `did you mean "isolate"`},
		{[]string{"partition", "majorities-ring"}, `did you mean "ring"`},
		{[]string{"partition", "--bridge", "B", "isolat", "n1"}, `did you mean "isolate"`},
		{[]string{"bridge", "lsit"}, `did you mean "list"`},
		{[]string{"gatway", "up"}, `did you mean "gateway"`},
	}
	for _, tt := range tests {
		_, err := parse(tt.argv...)
		var ue usageError
		if !errors.As(err, &ue) || !strings.Contains(err.Error(), tt.suggest) {
			t.Errorf("pontoon %s: %v; want a usage error saying %s", strings.Join(tt.argv, " "), err, tt.suggest)
		}
	}
	_, err := parse("partition", "isolat")
	for _, verb := range []string{"isolate", "disjoint", "random-halves", "bridge", "ring", "loss", "impair", "heal", "status"} {
		if err == nil || !strings.Contains(err.Error(), verb) {
			t.Errorf("unknown verb error %q does not list %s", err, verb)
		}
	}
	if _, err := parse("partition", "xyzzy"); err == nil || strings.Contains(err.Error(), "did you mean") {
		t.Errorf("a word near no verb: %v; want the verbs listed without a guess", err)
	}
}

// TestPartitionHelp: `pontoon partition --help` lists exactly the verbs that work, each by
// the name that works, and impairment verbs offer neither --mode nor --cut.
func TestPartitionHelp(t *testing.T) {
	p, err := parse("partition", "--help")
	if err != nil {
		t.Fatal(err)
	}
	var group *cli.Command
	for _, c := range newApp().Commands {
		if c.Name == "partition" {
			group = c
		}
	}
	// Verbs are listed under their category's heading, up to the next blank line.
	listed, inVerbs := 0, false
	for _, line := range strings.Split(p.help, "\n") {
		switch {
		case line == catSpec+":" || line == catImpair+":" || line == catOther+":":
			inVerbs = true
		case strings.TrimSpace(line) == "":
			inVerbs = false
		case inVerbs:
			listed++
			word := strings.Fields(line)[0]
			if _, err := parse("partition", word, "--help"); err != nil {
				t.Errorf("help lists %q, which is not a verb: %v", word, err)
			}
		}
	}
	if visible := len(group.VisibleCommands()); listed != visible {
		t.Errorf("help lists %d verbs, there are %d:\n%s", listed, visible, p.help)
	}
	if strings.Contains(p.help, "majorities-ring [SEED]") {
		t.Errorf("help offers majorities-ring, which is no verb:\n%s", p.help)
	}
	for _, verb := range []string{"loss", "rate", "delay", "impair"} {
		h, err := parse("partition", verb, "--help")
		if err != nil || strings.Contains(h.help, "--mode") || strings.Contains(h.help, "--cut") || !strings.Contains(h.help, "--for") {
			t.Errorf("partition %s --help offers --mode or --cut, or lacks --for (%v):\n%s", verb, err, h.help)
		}
		if _, err := parse("partition", verb, "5", "a", "--cut"); err == nil {
			t.Errorf("partition %s accepted --cut", verb)
		}
	}
	h, err := parse("partition", "isolate", "--help")
	if err != nil || !strings.Contains(h.help, "ECONNABORTED") {
		t.Errorf("isolate --help does not say what --cut does to open connections (%v):\n%s", err, h.help)
	}
}

// TestREADMECommands parses every command line of the README's CLI section, each
// alternative of a|b|c spelled out, with every optional flag given, and every pontoon
// command the README quotes elsewhere: the README and the command line cannot drift apart.
// And every command of the CLI is in the README's CLI section.
func TestREADMECommands(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	lines := readmeCLILines(t, string(readme))
	if len(lines) < 15 {
		t.Fatalf("found only %d command lines in the README's CLI section", len(lines))
	}
	documented := map[string]bool{}
	// Commands quoted elsewhere in the README must parse too, though they need not cover
	// the CLI.
	var quoted []string
	for _, m := range regexp.MustCompile("`pontoon ([^`]+)`").FindAllStringSubmatch(string(readme), -1) {
		quoted = append(quoted, m[1])
	}
	for _, m := range regexp.MustCompile("(?s)```sh\n(.*?)```").FindAllStringSubmatch(string(readme), -1) {
		// Shell lines: commands end at a newline, & or a pipe (" | "; a|b without spaces is a
		// choice), and comments are not arguments.
		sh := strings.ReplaceAll(m[1], " | ", "\n")
		for _, cmd := range strings.FieldsFunc(sh, func(r rune) bool { return r == '\n' || r == '&' }) {
			cmd, _, _ = strings.Cut(cmd, " #")
			if c, ok := strings.CutPrefix(strings.TrimSpace(cmd), "pontoon "); ok {
				quoted = append(quoted, c)
			}
		}
	}
	for _, line := range quoted {
		for _, argv := range expand(strings.Fields(line)) {
			if len(argv) >= 2 && argv[0] == "hook" && hooks.IsStage(argv[1]) {
				continue
			}
			if _, err := parse(argv...); err != nil {
				t.Errorf("README quotes `pontoon %s`, which does not parse: %v", strings.Join(argv, " "), err)
			}
		}
	}
	if len(quoted) < 8 {
		t.Errorf("found only %d quoted pontoon commands in the README: %q", len(quoted), quoted)
	}
	for _, line := range lines {
		for _, argv := range expand(strings.Fields(line)) {
			if len(argv) >= 2 && argv[0] == "hook" && hooks.IsStage(argv[1]) {
				if _, _, err := hooks.ParseArgs(argv[1:]); err != nil {
					t.Errorf("README: pontoon %s: %v", strings.Join(argv, " "), err)
				}
				continue
			}
			p, err := parse(argv...)
			if err != nil || p.path == "" {
				t.Errorf("README: pontoon %s: does not parse: %v", strings.Join(argv, " "), err)
				continue
			}
			documented[p.path] = true
		}
	}
	var walk func(prefix string, cmds []*cli.Command)
	walk = func(prefix string, cmds []*cli.Command) {
		for _, c := range cmds {
			if c.Hidden {
				continue
			}
			if len(c.Subcommands) > 0 {
				walk(prefix+" "+c.Name, c.Subcommands)
			} else if !documented[prefix+" "+c.Name] {
				t.Errorf("README's CLI section does not show %s %s", prefix, c.Name)
			}
		}
	}
	walk("pontoon", newApp().Commands)
}

// readmeCLILines returns the command lines of the first code block under "## CLI", each
// continuation line joined to its command and comments removed.
func readmeCLILines(t *testing.T, readme string) []string {
	_, section, ok := strings.Cut(readme, "\n## CLI\n")
	if !ok {
		t.Fatal("README has no ## CLI section")
	}
	_, block, ok := strings.Cut(section, "```\n")
	block, _, ok2 := strings.Cut(block, "```")
	if !ok || !ok2 {
		t.Fatal("README's CLI section has no code block")
	}
	var lines []string
	for _, l := range strings.Split(block, "\n") {
		l, _, _ = strings.Cut(l, "#")
		switch {
		case strings.TrimSpace(l) == "":
		case strings.HasPrefix(l, "pontoon "):
			lines = append(lines, strings.TrimPrefix(l, "pontoon "))
		case strings.HasPrefix(l, " ") && len(lines) > 0:
			lines[len(lines)-1] += " " + l
		default:
			t.Errorf("README CLI line %q neither starts a pontoon command nor continues one", l)
		}
	}
	return lines
}

// Sample values for the README's placeholders of typed flags.
var samples = map[string]string{"PID": "1", "DURATION": "5s", "CIDR": "10.77.0.0/16", "N": "10"}

// expand turns a README synopsis into command lines: brackets and "..." go, a word with
// alternatives (a|b|c) in a command's place gives one line per alternative, and a flag's
// value gets its first alternative or a sample value.
func expand(words []string) [][]string {
	var out []string
	for i, w := range words {
		w = strings.NewReplacer("[", "", "]", "", "...", "").Replace(w)
		if w == "" || w == "|" {
			continue
		}
		prev := ""
		if len(out) > 0 {
			prev = out[len(out)-1]
		}
		isValue := strings.HasPrefix(prev, "--") && !strings.HasPrefix(w, "-") && prev != "--"
		if isValue && isBoolFlag(prev) {
			isValue = false
		}
		if strings.Contains(w, "|") && !isValue && !strings.HasPrefix(w, "-") {
			var all [][]string
			for _, alt := range strings.Split(w, "|") {
				for _, rest := range expand(words[i+1:]) {
					all = append(all, append(append(slices.Clone(out), alt), rest...))
				}
			}
			return all
		}
		if isValue {
			w, _, _ = strings.Cut(w, "|")
			if s, ok := samples[w]; ok {
				w = s
			}
		}
		out = append(out, w)
	}
	return [][]string{out}
}

// isBoolFlag reports whether some command of pontoon defines word as a flag without a value.
func isBoolFlag(word string) bool {
	app := newApp()
	var found bool
	var walk func([]*cli.Command)
	walk = func(cmds []*cli.Command) {
		for _, c := range cmds {
			if defines(c.Flags, word) && !takesValue(c.Flags, word) {
				found = true
			}
			walk(c.Subcommands)
		}
	}
	walk(app.Commands)
	return found
}

// TestNoArgumentsRefused reproduces `pontoon partition heal n1`, which healed the whole
// bridge: every command whose help shows no arguments refuses one with a usage error, before
// it does anything (its action is never reached).
func TestNoArgumentsRefused(t *testing.T) {
	var walk func(path []string, cmds []*cli.Command)
	n := 0
	walk = func(path []string, cmds []*cli.Command) {
		for _, c := range cmds {
			p := append(slices.Clone(path), c.Name)
			if len(c.Subcommands) > 0 {
				walk(p, c.Subcommands)
				continue
			}
			if c.ArgsUsage != "" {
				continue
			}
			n++
			argv := append([]string{"pontoon"}, p...)
			argv = append(argv, "extra")
			app := newAppFor(argv)
			wrapPath(app, argv)
			reached := false
			var mark func([]*cli.Command)
			mark = func(cs []*cli.Command) {
				for _, c := range cs {
					if len(c.Subcommands) == 0 {
						c.Action = func(*cli.Context) error { reached = true; return nil }
					}
					mark(c.Subcommands)
				}
			}
			mark(app.Commands)
			var out bytes.Buffer
			app.Writer, app.ErrWriter = &out, &out
			app.ExitErrHandler = func(*cli.Context, error) {}
			err := app.Run(interspersed(app, argv))
			var ue usageError
			if reached || !errors.As(err, &ue) || !strings.Contains(err.Error(), `takes no arguments; got ["extra"]`) {
				t.Errorf("%s: reached its action %v, error %v; want a usage error before it", strings.Join(argv, " "), reached, err)
			}
		}
	}
	walk(nil, newApp().Commands)
	if n < 10 {
		t.Errorf("only %d commands without arguments found; the walk is broken", n)
	}
}

// TestFlagSpelling: the flag package's errors name a flag as -owner; pontoon's help and
// every other message spell it --owner.
func TestFlagSpelling(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{`invalid value "abc" for flag -owner: parse error`, `invalid value "abc" for flag --owner: parse error`},
		{"flag provided but not defined: -state-dir", "flag provided but not defined: --state-dir"},
		{"flag needs an argument: -owner", "flag needs an argument: --owner"},
		{"flag provided but not defined: -o", "flag provided but not defined: -o"},
		{"--for: not a duration", "--for: not a duration"},
		{`invalid value "x for flag -y" for flag -owner: parse error`, `invalid value "x for flag -y" for flag --owner: parse error`},
	} {
		if got := flagSpelling(errors.New(c.in)).Error(); got != c.want {
			t.Errorf("flagSpelling(%q) = %q, want %q", c.in, got, c.want)
		}
	}
	_, err := parse("bridge", "create", "b1", "--owner", "abc")
	if err == nil || !strings.Contains(err.Error(), `invalid value "abc" for flag --owner`) {
		t.Errorf("bridge create --owner abc: %v", err)
	}
}

// TestCompletionNeverRuns: the shell's completion of a word after a flag that takes a value
// (`pontoon gateway up --subnet <TAB>`) asks with the completion flag after that flag. It
// completes; it does not run the command with the completion flag taken for the value.
func TestCompletionNeverRuns(t *testing.T) {
	for _, argv := range [][]string{
		{"gateway", "up", "--subnet", completionFlag},
		{"bridge", "list", "--state-dir", completionFlag},
		{"partition", "--bridge", completionFlag},
		{"--state-dir", completionFlag},
	} {
		p, err := parse(argv...)
		if p.path != "" {
			t.Errorf("%v ran %s (%v)", argv, p.path, err)
		}
	}
	// A command line that completes nothing still runs.
	if p, err := parse("bridge", "list", "--state-dir", "/x"); err != nil || p.path != "pontoon bridge list" {
		t.Errorf("bridge list --state-dir /x: %q, %v", p.path, err)
	}
}

// TestHelpOfACommandNamedLater: `pontoon -h bridge` and `pontoon --help gateway` show the
// help of that command, as `pontoon bridge --help` does.
func TestHelpOfACommandNamedLater(t *testing.T) {
	for _, name := range []string{"bridge", "gateway", "partition", "names"} {
		later, err := parse("--help", name)
		if err != nil {
			t.Fatalf("--help %s: %v", name, err)
		}
		own, err := parse(name, "--help")
		if err != nil {
			t.Fatal(err)
		}
		if later.help != own.help || !strings.Contains(own.help, "pontoon "+name) {
			t.Errorf("--help %s:\n%s\n%s --help:\n%s", name, later.help, name, own.help)
		}
	}
}
