package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"syscall"

	"github.com/urfave/cli/v2"
)

// urfave/cli derives a flag's names on every call of Names() by running a regular expression
// over its name and each alias, and it calls Names() for every flag of the command path each
// time it asks whether one flag is set: ~110 regexp replacements for `pontoon bridge list`,
// ~20% of the command's instructions. The wrappers below answer Names() from the fields,
// which is what the regexp returns for names without commas or spaces (pontoon has none:
// TestFlagNamesUnchanged). The bool and string flags' Apply, which calls the wrapped flag's
// own Names() once per parse of every flag of the command path (the first run of the regexp
// alone is some 20 µs of a command's start), is theirs too (see below). Everything else is
// the wrapped flag's own.

type boolFlag struct {
	*cli.BoolFlag
	names []string
	// def is Value before the environment set it, which help shows as the default.
	def    bool
	defSet bool
}

type stringFlag struct {
	*cli.StringFlag
	names  []string
	def    string
	defSet bool
}

type stringSliceFlag struct {
	*cli.StringSliceFlag
	names []string
}

type intFlag struct {
	*cli.IntFlag
	names []string
}

type durationFlag struct {
	*cli.DurationFlag
	names []string
}

func (f *boolFlag) Names() []string        { return f.names }
func (f *stringFlag) Names() []string      { return f.names }
func (f *stringSliceFlag) Names() []string { return f.names }
func (f *intFlag) Names() []string         { return f.names }
func (f *durationFlag) Names() []string    { return f.names }

// wrapFlagNames is off only in the test that compares pontoon with and without the wrappers.
var wrapFlagNames = true

// fieldNames returns a flag's name and aliases from its fields, for the flag types pontoon uses.
func fieldNames(f cli.Flag) ([]string, bool) {
	var name string
	var aliases []string
	switch f := f.(type) {
	case *cli.BoolFlag:
		name, aliases = f.Name, f.Aliases
	case *cli.StringFlag:
		name, aliases = f.Name, f.Aliases
	case *cli.StringSliceFlag:
		name, aliases = f.Name, f.Aliases
	case *cli.IntFlag:
		name, aliases = f.Name, f.Aliases
	case *cli.DurationFlag:
		name, aliases = f.Name, f.Aliases
	default:
		return nil, false
	}
	return append([]string{name}, aliases...), true
}

// wrapPath wraps the flags of the app and of the commands argv names (a word that names no
// command at its level is skipped, so a flag's value costs nothing): only those are parsed.
func wrapPath(app *cli.App, argv []string) {
	app.Flags = fastNames(app.Flags)
	cmds := app.Commands
	for _, a := range argv[1:] {
		if c := findCommand(cmds, a); c != nil {
			c.Flags = fastNames(c.Flags)
			cmds = c.Subcommands
		}
	}
}

// GetDefaultText hides the default of a flag that asks for it (the help flag): help looks for
// DisableDefaultText only on a *cli.BoolFlag. Otherwise it is urfave/cli's, with the default
// Apply kept.
func (f *boolFlag) GetDefaultText() string {
	switch {
	case f.DisableDefaultText:
		return ""
	case f.DefaultText != "":
		return f.DefaultText
	case f.defSet:
		return strconv.FormatBool(f.def)
	}
	return f.BoolFlag.GetDefaultText()
}

func (f *stringFlag) GetDefaultText() string {
	if f.DefaultText != "" || !f.defSet {
		return f.StringFlag.GetDefaultText()
	}
	if f.def == "" {
		return ""
	}
	return strconv.Quote(f.def)
}

// String is the flag's line in help, through the methods above (the wrapped flag's own
// String would read its own default).
func (f *boolFlag) String() string   { return cli.FlagStringer(f) }
func (f *stringFlag) String() string { return cli.FlagStringer(f) }

// Apply is urfave/cli's (*cli.BoolFlag).Apply with the names from the fields.
func (f *boolFlag) Apply(set *flag.FlagSet) error {
	f.def, f.defSet = f.Value, true
	if val, source, found := fromEnv(f.EnvVars, f.FilePath); found {
		f.Value = false
		if val != "" {
			v, err := strconv.ParseBool(val)
			if err != nil {
				return fmt.Errorf("could not parse %q as bool value from %s for flag %s: %s", val, source, f.Name, err)
			}
			f.Value = v
		}
		f.HasBeenSet = true
	}
	count, dest := f.Count, f.Destination
	if count == nil {
		count = new(int)
	}
	// Each alias counts once more when set.
	*count -= len(f.Aliases)
	if dest == nil {
		dest = new(bool)
	}
	*dest = f.Value
	for _, name := range f.names {
		set.Var(&boolValue{dest, count}, name, f.Usage)
	}
	return nil
}

// Apply is urfave/cli's (*cli.StringFlag).Apply with the names from the fields.
func (f *stringFlag) Apply(set *flag.FlagSet) error {
	f.def, f.defSet = f.Value, true
	if val, _, found := fromEnv(f.EnvVars, f.FilePath); found {
		f.Value = val
		f.HasBeenSet = true
	}
	for _, name := range f.names {
		if f.Destination != nil {
			set.StringVar(f.Destination, name, f.Value, f.Usage)
			continue
		}
		set.String(name, f.Value, f.Usage)
	}
	return nil
}

// fromEnv is where urfave/cli takes a flag's value before the command line: the first of its
// environment variables that is set, else the first of its files that reads.
func fromEnv(vars []string, files string) (value, source string, found bool) {
	for _, v := range vars {
		v = strings.TrimSpace(v)
		if value, ok := syscall.Getenv(v); ok {
			return value, fmt.Sprintf("environment variable %q", v), true
		}
	}
	if files == "" {
		return "", "", false
	}
	for _, file := range strings.Split(files, ",") {
		if data, err := os.ReadFile(file); file != "" && err == nil {
			return string(data), fmt.Sprintf("file %q", files), true
		}
	}
	return "", "", false
}

// boolValue is urfave/cli's value of a bool flag: it counts how often it was set (Count), and
// IsBoolFlag lets the flag package take it without a value.
type boolValue struct {
	dest  *bool
	count *int
}

func (b *boolValue) Set(s string) error {
	v, err := strconv.ParseBool(s)
	if err != nil {
		return errors.New("parse error")
	}
	*b.dest = v
	*b.count++
	return nil
}

func (b *boolValue) Get() any         { return *b.dest }
func (b *boolValue) String() string   { return strconv.FormatBool(b.dest != nil && *b.dest) }
func (b *boolValue) IsBoolFlag() bool { return true }
func (b *boolValue) Count() int       { return max(*b.count, 0) }

// fastNames returns flags with each flag of a known type wrapped (see above).
func fastNames(flags []cli.Flag) []cli.Flag {
	if !wrapFlagNames {
		return flags
	}
	for i, f := range flags {
		names, ok := fieldNames(f)
		if !ok {
			continue
		}
		switch f := f.(type) {
		case *cli.BoolFlag:
			flags[i] = &boolFlag{BoolFlag: f, names: names}
		case *cli.StringFlag:
			flags[i] = &stringFlag{StringFlag: f, names: names}
		case *cli.StringSliceFlag:
			flags[i] = &stringSliceFlag{f, names}
		case *cli.IntFlag:
			flags[i] = &intFlag{f, names}
		case *cli.DurationFlag:
			flags[i] = &durationFlag{f, names}
		}
	}
	return flags
}

// hasName reports whether name is one of the flag's names, reading them from the fields
// where it knows the type, so that walking the whole command tree (see interspersed) costs
// no regexp.
func hasName(f cli.Flag, name string) bool {
	if names, ok := fieldNames(unwrapped(f)); ok {
		return slices.Contains(names, name)
	}
	return slices.Contains(f.Names(), name)
}

// isBool reports whether a flag takes no value: a *cli.BoolFlag, wrapped or not.
func isBool(f cli.Flag) bool {
	switch f.(type) {
	case *cli.BoolFlag, *boolFlag:
		return true
	}
	return false
}

func init() {
	// urfave/cli adds these to every command path it parses.
	cli.HelpFlag = fastNames([]cli.Flag{cli.HelpFlag})[0]
	cli.BashCompletionFlag = fastNames([]cli.Flag{cli.BashCompletionFlag})[0]
}

// completeApp is urfave/cli's completion of the app's words, with the hidden bool flags left
// out as it leaves them out (it recognises them only as *cli.BoolFlag).
func completeApp(c *cli.Context) {
	all := c.App.Flags
	var shown []cli.Flag
	for _, f := range all {
		if b, ok := unwrapped(f).(*cli.BoolFlag); ok && b.Hidden {
			continue
		}
		shown = append(shown, f)
	}
	c.App.Flags = shown
	defer func() { c.App.Flags = all }()
	cli.DefaultAppComplete(c)
}

// unwrapped returns the flag a wrapper holds, or f.
func unwrapped(f cli.Flag) cli.Flag {
	switch f := f.(type) {
	case *boolFlag:
		return f.BoolFlag
	case *stringFlag:
		return f.StringFlag
	case *stringSliceFlag:
		return f.StringSliceFlag
	case *intFlag:
		return f.IntFlag
	case *durationFlag:
		return f.DurationFlag
	}
	return f
}
