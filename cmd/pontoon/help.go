package main

import (
	"cmp"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
	"unicode"

	"github.com/urfave/cli/v2"
)

// urfave/cli renders help by parsing eleven text templates on every call, which cost
// `pontoon --help` half a millisecond, more than the rest of the command. helpPrinter
// writes the three default topics (the app, a command, a command group) directly, byte for
// byte what the templates give (TestHelpMatchesTemplates); a command with a template of its
// own still goes through the template.
var templatePrinter = cli.HelpPrinter

func init() { cli.HelpPrinter = helpPrinter }

func helpPrinter(w io.Writer, templ string, data any) {
	// Room for the longest help (partition's, 2.5 KiB) at once: a builder that doubles its
	// way up takes a fresh span, and fresh pages, at each size class it passes through.
	var b strings.Builder
	b.Grow(4 << 10)
	app, isApp := data.(*cli.App)
	cmd, isCmd := data.(*cli.Command)
	switch {
	case templ == cli.AppHelpTemplate && isApp:
		appHelp(&b, app)
	case templ == cli.CommandHelpTemplate && isCmd:
		commandHelp(&b, cmd, false)
	case templ == cli.SubcommandHelpTemplate && isCmd:
		commandHelp(&b, cmd, true)
	default:
		templatePrinter(w, templ, data)
		return
	}
	// The templates' output goes through the same tab writer: flag and command columns.
	tw := tabwriter.NewWriter(w, 1, 8, 2, ' ', 0)
	_, _ = io.WriteString(tw, b.String())
	_ = tw.Flush()
}

func appHelp(b *strings.Builder, a *cli.App) {
	b.WriteString("NAME:\n   ")
	helpName(b, a.HelpName, a.Usage)
	b.WriteString("\n\nUSAGE:\n   ")
	if a.UsageText != "" {
		b.WriteString(wrap(a.UsageText, 3))
	} else {
		b.WriteString(a.HelpName + " ")
		if len(a.VisibleFlags()) > 0 {
			b.WriteString("[global options]")
		}
		if len(a.Commands) > 0 {
			b.WriteString(" command [command options]")
		}
		argsUsage(b, a.ArgsUsage, a.Args)
	}
	if a.Version != "" && !a.HideVersion {
		b.WriteString("\n\nVERSION:\n   " + a.Version)
	}
	if a.Description != "" {
		b.WriteString("\n\nDESCRIPTION:\n   " + wrap(a.Description, 3))
	}
	if n := len(a.Authors); n > 0 {
		b.WriteString("\n\nAUTHOR")
		if n != 1 {
			b.WriteString("S")
		}
		b.WriteString(":\n   ")
		for i, au := range a.Authors {
			if i > 0 {
				b.WriteString("\n   ")
			}
			fmt.Fprint(b, au)
		}
	}
	if len(a.VisibleCommands()) > 0 {
		b.WriteString("\n\nCOMMANDS:")
		commandCategories(b, categoriesOf(a.VisibleCommands()))
	}
	flagSection(b, "GLOBAL OPTIONS:", a.VisibleFlagCategories(), a.VisibleFlags())
	if a.Copyright != "" {
		b.WriteString("\n\nCOPYRIGHT:\n   " + wrap(a.Copyright, 3))
	}
	b.WriteString("\n")
}

// commandHelp is CommandHelpTemplate, or with group SubcommandHelpTemplate.
func commandHelp(b *strings.Builder, c *cli.Command, group bool) {
	b.WriteString("NAME:\n   ")
	helpName(b, c.HelpName, c.Usage)
	b.WriteString("\n\nUSAGE:\n   ")
	if c.UsageText != "" {
		b.WriteString(wrap(c.UsageText, 3))
	} else {
		b.WriteString(c.HelpName)
		if len(c.VisibleFlags()) > 0 {
			b.WriteString(" [command options]")
		}
		argsUsage(b, c.ArgsUsage, c.Args)
	}
	if c.Category != "" {
		b.WriteString("\n\nCATEGORY:\n   " + c.Category)
	}
	if c.Description != "" {
		b.WriteString("\n\nDESCRIPTION:\n   " + wrap(c.Description, 3))
	}
	if group && len(c.VisibleCommands()) > 0 {
		b.WriteString("\n\nCOMMANDS:")
		commandCategories(b, categoriesOf(c.VisibleCommands()))
	}
	flagSection(b, "OPTIONS:", c.VisibleFlagCategories(), c.VisibleFlags())
	b.WriteString("\n")
}

func helpName(b *strings.Builder, name, usage string) {
	b.WriteString(wrap(name, 3))
	if usage != "" {
		b.WriteString(" - " + wrap(usage, len(name)+6))
	}
}

func argsUsage(b *strings.Builder, usage string, args bool) {
	switch {
	case usage != "":
		b.WriteString(" " + usage)
	case args:
		b.WriteString(" [arguments...]")
	}
}

// category is a command category as urfave/cli's help shows it.
type category struct {
	name string
	cmds []*cli.Command
}

// categoriesOf groups visible commands by category as urfave/cli's VisibleCategories does,
// sorted by name, without its state: a command named only to be helped (`pontoon --help
// gateway`) has not been set up, and its VisibleCategories has none to read.
func categoriesOf(cmds []*cli.Command) []category {
	var cats []category
	for _, c := range cmds {
		i := slices.IndexFunc(cats, func(k category) bool { return k.name == c.Category })
		if i < 0 {
			i = len(cats)
			cats = append(cats, category{name: c.Category})
		}
		cats[i].cmds = append(cats[i].cmds, c)
	}
	slices.SortStableFunc(cats, func(x, y category) int { return categoryOrder(x.name, y.name) })
	return cats
}

// categoryOrder is urfave/cli's order of category names: letter by letter, case first
// ignored, then not.
func categoryOrder(x, y string) int {
	xr, yr := []rune(x), []rune(y)
	for i := 0; i < min(len(xr), len(yr)); i++ {
		if lx, ly := unicode.ToLower(xr[i]), unicode.ToLower(yr[i]); lx != ly {
			return cmp.Compare(lx, ly)
		}
		if xr[i] != yr[i] {
			return cmp.Compare(xr[i], yr[i])
		}
	}
	return strings.Compare(x, y)
}

// commandCategories is visibleCommandCategoryTemplate.
func commandCategories(b *strings.Builder, cats []category) {
	for _, cat := range cats {
		if cat.name != "" {
			b.WriteString("\n   " + cat.name + ":")
			for _, c := range cat.cmds {
				b.WriteString("\n     " + strings.Join(c.Names(), ", ") + "\t" + c.Usage)
			}
			continue
		}
		width := 0
		for _, c := range cat.cmds {
			width = max(width, len(strings.Join(c.Names(), ", ")))
		}
		width += 5
		for _, c := range cat.cmds {
			s := strings.Join(c.Names(), ", ")
			b.WriteString("\n   " + s + strings.Repeat(" ", max(width-len(s)-3, 0)) + wrap(c.Usage, width))
		}
	}
}

// flagSection is visibleFlagCategoryTemplate when the flags have categories, else
// visibleFlagTemplate.
func flagSection(b *strings.Builder, title string, cats []cli.VisibleFlagCategory, flags []cli.Flag) {
	if len(cats) > 0 {
		b.WriteString("\n\n" + title)
		for _, cat := range cats {
			b.WriteString("\n   ")
			if cat.Name() != "" {
				b.WriteString(cat.Name() + "\n\n   ")
			}
			fs := cat.Flags()
			for i, f := range fs {
				fmt.Fprint(b, f)
				if i == len(fs)-1 {
					b.WriteString("\n")
				} else {
					b.WriteString("\n   ")
				}
			}
		}
		return
	}
	if len(flags) > 0 {
		b.WriteString("\n\n" + title)
		for _, f := range flags {
			b.WriteString("\n   " + wrap(f.String(), 6))
		}
	}
}

// wrap is the templates' wrap at their line length of 10000: it only indents the lines
// after the first by offset.
func wrap(s string, offset int) string {
	if !strings.Contains(s, "\n") {
		return s
	}
	lines := strings.Split(s, "\n")
	pad := strings.Repeat(" ", offset)
	for i := 1; i < len(lines); i++ {
		if lines[i] != "" {
			lines[i] = pad + lines[i]
		}
	}
	return strings.Join(lines, "\n")
}
