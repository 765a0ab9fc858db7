package partition

import (
	"errors"
	"os"
	"path/filepath"
	"strings"

	"github.com/pontoon-dev/pontoon/netsetup"
)

func init() {
	// gc is netsetup's, which cannot import this package.
	netsetup.PartitionDrifted = RepairTable
}

// RepairTable makes a bridge's partition table what its record says when the kernel's
// differs: a change killed between its commits leaves class maps without their rules (or the
// rules of a change it never recorded), which no later read puts right. The recorded state
// is applied again, which removes the table when the record needs none. It returns what
// differed, "" when the table was the record's (then nothing is written).
func RepairTable(env netsetup.Env, bridge string) (string, error) {
	t := bridgeTarget(env, bridge)
	t.Source = SourceGC
	if _, err := os.Stat(filepath.Join(t.StateDir, LockFile)); errors.Is(err, os.ErrNotExist) {
		// Nothing ever took the bridge's lock, so nothing was applied: only a table made
		// by hand would be there, and without one the bridge's directory is not made.
		kt, err := readKernel(t.NetnsPath)
		if err != nil || len(kt.Present) == 0 {
			return "", err
		}
	}
	var found []string
	_, err := applyWith(t, func(s State) (State, error) { return s, nil }, applyOpts{kind: EventRefresh, repair: &found})
	if errors.Is(err, errNothingApplied) {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	return strings.Join(found, "; "), nil
}
