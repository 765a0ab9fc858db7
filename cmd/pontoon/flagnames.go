package main

import (
	"slices"

	"github.com/urfave/cli/v2"
)

// urfave/cli derives a flag's names on every call of Names() by running a regular expression
// over its name and each alias, and it calls Names() for every flag of the command path each
// time it asks whether one flag is set: ~110 regexp replacements for `pontoon bridge list`,
// ~20% of the command's instructions. The wrappers below answer Names() from the fields,
// which is what the regexp returns for names without commas or spaces (pontoon has none:
// TestFlagNamesUnchanged). Everything else is the wrapped flag's own.

type boolFlag struct {
	*cli.BoolFlag
	names []string
}

type stringFlag struct {
	*cli.StringFlag
	names []string
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
// DisableDefaultText only on a *cli.BoolFlag.
func (f *boolFlag) GetDefaultText() string {
	if f.DisableDefaultText {
		return ""
	}
	return f.BoolFlag.GetDefaultText()
}

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
			flags[i] = &boolFlag{f, names}
		case *cli.StringFlag:
			flags[i] = &stringFlag{f, names}
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
