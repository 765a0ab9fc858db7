package netsetup

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/vishvananda/netlink"
)

// Two state directories may share one directory of namespace pins (PONTOON_STATE_DIR set for
// one command, a Docker daemon's environment): each sees the other's pins, which no record of
// its own accounts for, as left over from a lost record. So every namespace pontoon makes
// carries the state directory it belongs to, as the alias of its loopback device, and a pin
// another state directory's records still name is that directory's: gc, gateway down and
// gateway up leave it alone and say whose it is. A namespace without the mark (made by an
// older pontoon) counts as this directory's, as before.

const (
	// ownerPrefix starts the loopback alias that names a namespace's state directory.
	ownerPrefix = "pontoon state "
	// maxAlias is the longest alias a link takes (IFALIASZ, less its NUL).
	maxAlias = 255
)

// ownerMark is the loopback alias of e's namespaces: its state directory, absolute.
func (e Env) ownerMark() string {
	dir, err := filepath.Abs(e.stateDir())
	if err != nil {
		dir = e.stateDir()
	}
	return ownerPrefix + dir
}

// loopbackUp sets a namespace's loopback up and marks the namespace as e's.
func loopbackUp(e Env, h *handle) error {
	if err := linkUp(h, "lo"); err != nil {
		return err
	}
	mark := e.ownerMark()
	if len(mark) > maxAlias {
		return nil // unmarked, as an older pontoon's: this directory's to every gc
	}
	lo, err := h.linkByName("lo")
	if err != nil {
		return err
	}
	if err := h.LinkSetAlias(lo, mark); err != nil {
		return fmt.Errorf("mark %s as pontoon's: %w", h.path, err)
	}
	return nil
}

// othersPin returns the state directory another pontoon's records name the namespace with
// links as theirs by (record, a file under that directory), or "" when it is not another's:
// unmarked, marked as e's, or marked by a directory that no longer records it.
func (e Env) othersPin(links []netlink.Link, record func(dir string) string) string {
	for _, l := range links {
		if l.Attrs().Name != "lo" {
			continue
		}
		alias := l.Attrs().Alias
		dir, ok := strings.CutPrefix(alias, ownerPrefix)
		if !ok || alias == e.ownerMark() {
			return ""
		}
		if _, err := os.Stat(record(dir)); err == nil || !errors.Is(err, os.ErrNotExist) {
			return dir
		}
	}
	return ""
}

// OthersError is a namespace another state directory owns, which a command of this one
// leaves alone.
type OthersError struct {
	Path     string `json:"path"`
	StateDir string `json:"state_dir"`
}

func (e *OthersError) Error() string {
	return fmt.Sprintf("%s belongs to the pontoon whose state directory is %s, not this one; use --state-dir %s (or PONTOON_STATE_DIR), or a --netns-dir of this directory's own", e.Path, e.StateDir, e.StateDir)
}
