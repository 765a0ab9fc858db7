package runtime

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"text/tabwriter"

	"github.com/pontoon-dev/pontoon/netsetup"
	"github.com/pontoon-dev/pontoon/runtime/config"
)

// FindProject returns the path of the pontoon.toml in dir or the nearest directory above
// it, so pontoon commands work from anywhere inside a project.
func FindProject(dir string) (string, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return "", fmt.Errorf("find %s: %w", config.FileName, err)
	}
	for d := abs; ; d = filepath.Dir(d) {
		p := filepath.Join(d, config.FileName)
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
		if filepath.Dir(d) == d {
			break
		}
	}
	return "", fmt.Errorf("no %s in %s or any directory above it; create one (its format is in pontoon's README, \"Project commands\") or change into your project", config.FileName, abs)
}

// LoadProject reads and validates the project file at path. Guest addresses are checked
// against the bridge network of the running gateway's plan, or the default plan's when the
// gateway is not up.
func LoadProject(path string, env netsetup.Env) (*config.Project, error) {
	var opts config.Options
	// A user outside their space may not read the chain's state: the default plan is what a
	// run of theirs would get.
	if plan, err := netsetup.CurrentPlan(env); err == nil {
		opts.BridgeNet = plan.GuestNet()
	} else if !errors.Is(err, netsetup.ErrNoGateway) && !errors.Is(err, fs.ErrPermission) {
		return nil, err
	}
	return config.LoadOptions(path, opts)
}

// List writes `pontoon list`: one line per command with its description, a supervise
// command's children indented below it.
func List(w io.Writer, p *config.Project) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	for _, s := range p.List() {
		kind := ""
		if s.Supervise {
			kind = "(supervise)"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\n", s.Name, kind, s.Description)
		for _, c := range s.Children {
			fmt.Fprintf(tw, "  %s\t\t%s\n", c.Name, c.Description)
		}
	}
	if err := tw.Flush(); err != nil {
		return fmt.Errorf("list commands: %w", err)
	}
	return nil
}
