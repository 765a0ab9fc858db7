package partition

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/pontoon-dev/pontoon/internal/statefile"
	"github.com/pontoon-dev/pontoon/netsetup"
)

// CollectReport is what Collect did.
type CollectReport struct {
	// Expired names the bridges whose expired --for changes were ended: their commands and
	// restorers had all been killed.
	Expired []string `json:"expired,omitempty"`
	// Temporary lists partition records' temporary files a killed write left.
	Temporary []string `json:"temporary,omitempty"`
}

// Collect is gc's part for partitions, on every ready bridge: it ends timed changes whose
// deadline has passed (RestoreExpired; without it such a change stays in force until the next
// partition command or status reads the bridge), and removes a temporary file of the
// partition record that a write killed before its rename left, under the partition's lock,
// which every write of the record holds.
func Collect(env netsetup.Env) (CollectReport, error) {
	var rep CollectReport
	bridges, err := netsetup.Bridges(env)
	if err != nil {
		return rep, err
	}
	var errs []error
	for _, b := range bridges {
		if b.Phase != netsetup.PhaseReady || b.Problem != "" {
			continue
		}
		dir := env.BridgeDataDir(b.Name)
		tmp := filepath.Join(dir, StateFile+statefile.TempSuffix)
		if _, err := os.Stat(tmp); err == nil {
			if unlock, err := statefile.LockIfThere(filepath.Join(dir, LockFile)); err == nil && unlock != nil {
				if os.Remove(tmp) == nil {
					rep.Temporary = append(rep.Temporary, tmp)
				}
				unlock()
			}
		}
		t, err := ForBridge(env, b.Name)
		if errors.Is(err, netsetup.ErrNoBridge) {
			continue // destroyed since
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("bridge %q: %w", b.Name, err))
			continue
		}
		restored, err := RestoreExpired(t)
		if err != nil {
			errs = append(errs, fmt.Errorf("end the expired --for of bridge %q: %w", b.Name, err))
		}
		if restored {
			rep.Expired = append(rep.Expired, b.Name)
		}
	}
	return rep, errors.Join(errs...)
}
