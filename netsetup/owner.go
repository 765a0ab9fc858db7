package netsetup

import (
	"fmt"
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

// ownerMark is the loopback alias of e's namespaces (ns.Spec.Mark): its state directory,
// absolute. A directory whose name does not fit (over 240 bytes) leaves its namespaces
// unmarked, as an older pontoon's, which every gc takes for its own.
func (e Env) ownerMark() string {
	dir, err := filepath.Abs(e.stateDir())
	if err != nil {
		dir = e.stateDir()
	}
	if len(ownerPrefix+dir) > maxAlias {
		return ""
	}
	return ownerPrefix + dir
}

// othersPin returns the state directory of another pontoon whose records name the namespace
// of identity id, with links, as theirs (recorded: the identity its record there gives), or
// "" when it is not another's: unmarked, marked as e's, or marked by a directory whose
// records do not name it. The mark alone proves nothing: root in a guest can set any alias.
func (e Env) othersPin(id uint64, links []netlink.Link, recorded func(st store) uint64) string {
	for _, l := range links {
		if l.Attrs().Name != "lo" {
			continue
		}
		alias := l.Attrs().Alias
		dir, ok := strings.CutPrefix(alias, ownerPrefix)
		if !ok || alias == e.ownerMark() || !filepath.IsAbs(dir) {
			return ""
		}
		if id != 0 && recorded(store{dir: filepath.Clean(dir)}) == id {
			return filepath.Clean(dir)
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
