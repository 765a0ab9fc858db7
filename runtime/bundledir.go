package runtime

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/pontoon-dev/pontoon/internal/statefile"
	"github.com/pontoon-dev/pontoon/netsetup"
	"github.com/pontoon-dev/pontoon/runtime/config"
	"golang.org/x/sys/unix"
)

// recordFile is a bundle directory's run record.
const recordFile = "run.json"

// runRecord says which process owns a bundle directory and which containers it creates, so
// that GC can stop and delete them should the owner die without doing so. A container is
// recorded before its engine is started.
type runRecord struct {
	Owner      netsetup.Process    `json:"owner"`
	Engine     EngineOptions       `json:"engine"`
	Containers []recordedContainer `json:"containers,omitempty"`
}

type recordedContainer struct {
	ID      string         `json:"id"`
	Runtime config.Runtime `json:"runtime"`
	// Process is the container's foreground engine process (runc run, ...), once started.
	Process *netsetup.Process `json:"process,omitempty"`
}

// bundleDir is a directory of bundles owned by this process, with its run record.
type bundleDir struct {
	path string
	mu   sync.Mutex
	rec  runRecord
}

// newBundleDir creates a fresh directory for bundles under parent, named after prefix and
// owned by this process, after collecting those of dead owners (see GC). The directory
// appears under its name only with its record in it: it is made under a hidden name that
// says whose it is, so that one left by a process killed in between is collected too.
func newBundleDir(parent, prefix string, eng EngineOptions) (*bundleDir, error) {
	if err := os.MkdirAll(parent, 0o700); err != nil {
		return nil, fmt.Errorf("create bundle directory in %s: %w", parent, err)
	}
	// Errors stay for `pontoon gc` to report: they must not keep this run from starting.
	collectDir(parent, &GCReport{})
	self := netsetup.Self()
	tmp, err := os.MkdirTemp(parent, fmt.Sprintf("%s%d-%d-", newDirPrefix, self.PID, self.Start))
	if err != nil {
		return nil, fmt.Errorf("create bundle directory in %s: %w", parent, err)
	}
	d := &bundleDir{path: tmp, rec: runRecord{Owner: self, Engine: eng}}
	if err := d.write(); err != nil {
		os.RemoveAll(tmp)
		return nil, err
	}
	suffix := tmp[strings.LastIndexByte(tmp, '-')+1:]
	for i := 0; ; i++ {
		path := filepath.Join(parent, prefix+"-"+suffix)
		if i > 0 {
			path += fmt.Sprintf("-%d", i)
		}
		err := unix.Renameat2(unix.AT_FDCWD, tmp, unix.AT_FDCWD, path, unix.RENAME_NOREPLACE)
		if err == nil {
			d.path = path
			return d, nil
		}
		if !errors.Is(err, unix.EEXIST) || i == 99 {
			os.RemoveAll(tmp)
			return nil, fmt.Errorf("create bundle directory %s: %w", path, err)
		}
	}
}

// newDirPrefix starts the hidden name of a bundle directory being created, followed by
// its creator's pid and start time.
const newDirPrefix = ".new-"

// deadNewDir reports whether name is a bundle directory being created by a process that
// has died.
func deadNewDir(name string) bool {
	rest, ok := strings.CutPrefix(name, newDirPrefix)
	if !ok {
		return false
	}
	f := strings.SplitN(rest, "-", 3)
	if len(f) != 3 {
		return false
	}
	pid, err1 := strconv.Atoi(f[0])
	start, err2 := strconv.ParseUint(f[1], 10, 64)
	return err1 == nil && err2 == nil && !netsetup.Process{PID: pid, Start: start}.Alive()
}

// write replaces the record atomically: GC never reads half of it.
func (d *bundleDir) write() error {
	data, err := json.Marshal(d.rec)
	if err != nil {
		return fmt.Errorf("write run record in %s: %w", d.path, err)
	}
	if err := statefile.Write(filepath.Join(d.path, recordFile), data, 0o600); err != nil {
		return fmt.Errorf("write run record in %s: %w", d.path, err)
	}
	return nil
}

// addContainer records container id, run by engine rt, before its engine starts.
func (d *bundleDir) addContainer(id string, rt config.Runtime) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.rec.Containers = append(d.rec.Containers, recordedContainer{ID: id, Runtime: rt})
	return d.write()
}

// started records the engine process of container id.
func (d *bundleDir) started(id string, pid int) error {
	p, err := netsetup.ProcessOf(pid)
	if err != nil {
		return nil // already gone: nothing for GC to kill
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	for i := range d.rec.Containers {
		if d.rec.Containers[i].ID == id {
			d.rec.Containers[i].Process = &p
		}
	}
	return d.write()
}

// remove removes the directory; its containers must be gone.
func (d *bundleDir) remove() error {
	if err := os.RemoveAll(d.path); err != nil {
		return fmt.Errorf("remove bundle directory %s: %w", d.path, err)
	}
	return nil
}

// GCReport lists what GC removed.
type GCReport struct {
	// Containers are the containers stopped and deleted, as ENGINE/ID.
	Containers []string `json:"containers,omitempty"`
}

// GC stops and deletes the containers of runs (and of StartContainer) whose pontoon process
// died without doing so -- killed with SIGKILL, say -- with the runc, crun or containerd
// state they left, and removes their bundle directories. Their engine processes are killed
// first, so no container is created behind GC's back. Runs of live processes are not
// touched; GC is safe at any time. StartContainer's default directory is collected with
// the real host's chain only. Bridges are netsetup.GC's business: call this first, so
// containers stop before their network goes.
func GC(env netsetup.Env) (GCReport, error) {
	var rep GCReport
	state, _ := env.Dirs()
	errs := []error{collectDir(filepath.Join(state, "runs"), &rep)}
	if env.StateDir == "" || filepath.Clean(env.StateDir) == defaultStateDir {
		// StartContainer's default directory belongs to no chain; a sandboxed chain's gc
		// leaves it to the host's.
		errs = append(errs, collectDir(defaultContainerDir(), &rep))
	}
	return rep, errors.Join(errs...)
}

// collectDir collects the bundle directories under parent whose owner is dead.
func collectDir(parent string, rep *GCReport) error {
	ents, err := os.ReadDir(parent)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("collect runs in %s: %w", parent, err)
	}
	var errs []error
	for _, e := range ents {
		dir := filepath.Join(parent, e.Name())
		if deadNewDir(e.Name()) {
			// Its owner died before it started any container.
			if err := os.RemoveAll(dir); err != nil {
				errs = append(errs, fmt.Errorf("collect run in %s: %w", dir, err))
			}
			continue
		}
		data, err := os.ReadFile(filepath.Join(dir, recordFile))
		if err != nil {
			continue // being created, or not a run's
		}
		var rec runRecord
		if err := json.Unmarshal(data, &rec); err != nil {
			errs = append(errs, fmt.Errorf("collect run in %s: bad record: %w", dir, err))
			continue
		}
		if rec.Owner.Alive() {
			continue
		}
		if err := collectRun(rec, rep); err != nil {
			errs = append(errs, fmt.Errorf("collect run in %s: %w", dir, err))
			continue // the record stays for the next attempt
		}
		if err := os.RemoveAll(dir); err != nil {
			errs = append(errs, fmt.Errorf("collect run in %s: %w", dir, err))
		}
	}
	return errors.Join(errs...)
}

// collectRun kills the engine processes of a dead run, then deletes its containers.
func collectRun(rec runRecord, rep *GCReport) error {
	for _, c := range rec.Containers {
		if c.Process != nil {
			killProcess(*c.Process)
		}
	}
	var errs []error
	engines := map[config.Runtime]Engine{}
	for _, c := range rec.Containers {
		eng, ok := engines[c.Runtime]
		if !ok {
			var err error
			if eng, err = NewEngine(c.Runtime, rec.Engine); err != nil {
				errs = append(errs, fmt.Errorf("delete container %s: %w", c.ID, err))
				continue
			}
			engines[c.Runtime] = eng
		}
		existed, err := containerExists(eng, c.ID)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if err := eng.Delete(c.ID); err != nil {
			errs = append(errs, fmt.Errorf("delete container %s: %w", c.ID, err))
			continue
		}
		if _, ok := eng.(*ociEngine); ok {
			removeLeftCgroups(c.ID)
		}
		if existed {
			rep.Containers = append(rep.Containers, eng.Name()+"/"+c.ID)
		}
	}
	return errors.Join(errs...)
}

// cgroupRoot is where the kernel's cgroup hierarchies are mounted.
const cgroupRoot = "/sys/fs/cgroup"

// removeLeftCgroups removes the empty cgroups of container id that its engine made but never
// recorded: runc makes them, named after the id in every hierarchy (pontoon's bundles set no
// cgroupsPath), before it writes the container's state, so one killed in between leaves
// them, and `runc delete` knows nothing of them. A cgroup still holding a process is not
// removed (rmdir refuses), and one this process may not remove (a user's space) stays.
func removeLeftCgroups(id string) {
	dirs, _ := filepath.Glob(filepath.Join(cgroupRoot, "*", id))    // cgroup v1: one per controller
	for _, d := range append(dirs, filepath.Join(cgroupRoot, id)) { // v2: one
		_ = syscall.Rmdir(d)
	}
}

// containerExists reports whether the engine has state for id, so that GC reports only what
// it really removed. Engines without a cheap lookup answer true.
func containerExists(eng Engine, id string) (bool, error) {
	oci, ok := eng.(*ociEngine)
	if !ok {
		return true, nil
	}
	root := oci.root
	if root == "" {
		root = "/run/" + oci.name
	}
	_, err := os.Stat(filepath.Join(root, id))
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("look up container %s in %s: %w", id, root, err)
	}
	return true, nil
}

// killProcess kills p, if it still runs, and waits until it has exited.
func killProcess(p netsetup.Process) {
	if !p.Alive() {
		return
	}
	unix.Kill(p.PID, syscall.SIGKILL)
	for deadline := time.Now().Add(5 * time.Second); p.Alive() && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
	}
}

// defaultStateDir is the real host's state directory.
const defaultStateDir = "/run/pontoon"

// defaultContainerDir is where StartContainer keeps bundles unless told otherwise.
func defaultContainerDir() string { return filepath.Join(os.TempDir(), "pontoon-containers") }
