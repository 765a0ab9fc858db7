package hooks

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/pontoon-dev/pontoon/internal/statefile"
	"github.com/pontoon-dev/pontoon/netsetup"
)

// DockerConfig is dockerd's configuration file.
const DockerConfig = "/etc/docker/daemon.json"

// DockerRuntime is the name pontoon's runtime has in daemon.json: `docker run --runtime pontoon`.
const DockerRuntime = "pontoon"

// DockerInstall is what InstallDocker did.
type DockerInstall struct {
	Config  string // the daemon.json written (or already up to date)
	Backup  string // where the file's previous content was saved; "" when nothing was changed or there was no file
	Runtime string // the runtime's path: the RuntimeName symlink to pontoon
	Changed bool   // false: daemon.json already had the runtime
	Linked  bool   // the symlink was made (or pointed elsewhere)
}

// InstallDocker registers pontoon as the Docker runtime DockerRuntime: it makes the
// RuntimeName symlink to pontoonPath in the same directory, and sets
// "runtimes": {"pontoon": {"path": SYMLINK}} in the daemon.json at config (DockerConfig when
// empty), keeping every other key and runtime. The previous file is saved as
// config+".pontoon-backup". A file that is not a JSON object, or whose "runtimes" is not
// one, is refused and nothing is changed. Installing again changes nothing. dockerd reads
// the new runtime when it reloads its configuration (SIGHUP).
func InstallDocker(config, pontoonPath string) (DockerInstall, error) {
	if config == "" {
		config = DockerConfig
	}
	res := DockerInstall{Config: config}
	abs, err := filepath.Abs(pontoonPath)
	if err == nil {
		abs, err = filepath.EvalSymlinks(abs)
	}
	if err != nil {
		return res, fmt.Errorf("install the docker runtime: resolve %s: %w", pontoonPath, err)
	}
	if fi, err := os.Stat(abs); err != nil || fi.IsDir() || fi.Mode()&0o111 == 0 {
		return res, fmt.Errorf("install the docker runtime: %s is not an executable file; pass the path of the pontoon binary", abs)
	}
	old, err := os.ReadFile(config)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return res, fmt.Errorf("install the docker runtime: read %s: %w", config, err)
	}
	exists := err == nil
	res.Runtime = filepath.Join(filepath.Dir(abs), RuntimeName)
	updated, changed, err := addRuntime(old, res.Runtime)
	if err != nil {
		return res, netsetup.Invalid(fmt.Errorf("install the docker runtime: %s: %w; fix the file (dockerd would refuse it too) and run this again", config, err))
	}
	if res.Linked, err = linkRuntime(res.Runtime, abs); err != nil {
		return res, fmt.Errorf("install the docker runtime: %w", err)
	}
	if !changed {
		return res, nil
	}
	perm := os.FileMode(0o644)
	if exists {
		if fi, err := os.Stat(config); err == nil {
			perm = fi.Mode().Perm()
		}
		res.Backup = config + ".pontoon-backup"
		if err := statefile.Write(res.Backup, old, perm); err != nil {
			return res, fmt.Errorf("install the docker runtime: back up %s: %w", config, err)
		}
	} else if err := os.MkdirAll(filepath.Dir(config), 0o755); err != nil {
		return res, fmt.Errorf("install the docker runtime: %w", err)
	}
	if err := statefile.Write(config, updated, perm); err != nil {
		return res, fmt.Errorf("install the docker runtime: write %s: %w", config, err)
	}
	res.Changed = true
	return res, nil
}

// addRuntime returns daemon.json data with pontoon's runtime set to path, and whether that
// changed anything. Empty data is an empty configuration.
func addRuntime(data []byte, path string) ([]byte, bool, error) {
	top := map[string]json.RawMessage{}
	if len(bytes.TrimSpace(data)) > 0 {
		if err := json.Unmarshal(data, &top); err != nil {
			return nil, false, fmt.Errorf("not a JSON object: %w", err)
		}
	}
	runtimes := map[string]json.RawMessage{}
	if raw, ok := top["runtimes"]; ok && string(raw) != "null" {
		if err := json.Unmarshal(raw, &runtimes); err != nil {
			return nil, false, fmt.Errorf(`"runtimes" is not an object: %w`, err)
		}
	}
	want, _ := json.Marshal(map[string]string{"path": path})
	if have, ok := runtimes[DockerRuntime]; ok {
		var cur struct {
			Path string   `json:"path"`
			Args []string `json:"runtimeArgs"`
		}
		if json.Unmarshal(have, &cur) == nil && cur.Path == path && len(cur.Args) == 0 {
			return data, false, nil
		}
		// An older pontoon's (another directory's RuntimeName) is replaced; a runtime of
		// someone else's that happens to have the name is not.
		if filepath.Base(cur.Path) != RuntimeName {
			return nil, false, fmt.Errorf("its runtime %q is %s, which is not pontoon's; rename that runtime, or give pontoon another daemon.json with --config", DockerRuntime, have)
		}
	}
	runtimes[DockerRuntime] = want
	raw, err := json.Marshal(runtimes)
	if err != nil {
		return nil, false, err
	}
	top["runtimes"] = raw
	out, err := json.MarshalIndent(top, "", "  ")
	if err != nil {
		return nil, false, err
	}
	return append(out, '\n'), true, nil
}

// linkRuntime makes link a symlink to target, replacing an older symlink but nothing else,
// and says whether it changed it.
func linkRuntime(link, target string) (bool, error) {
	if cur, err := os.Readlink(link); err == nil {
		if cur == target {
			return false, nil
		}
	} else if fi, err := os.Lstat(link); err == nil && fi.Mode()&os.ModeSymlink == 0 {
		return false, fmt.Errorf("%s exists and is not a symlink; remove it or install pontoon elsewhere", link)
	}
	tmp := link + ".tmp"
	os.Remove(tmp)
	if err := os.Symlink(target, tmp); err != nil {
		return false, fmt.Errorf("link %s to %s: %w", link, target, err)
	}
	if err := os.Rename(tmp, link); err != nil {
		os.Remove(tmp)
		return false, fmt.Errorf("link %s to %s: %w", link, target, err)
	}
	return true, nil
}

// DockerUninstall is what UninstallDocker did.
type DockerUninstall struct {
	Config  string // the daemon.json read
	Backup  string // where the file's previous content was saved; "" when it was not changed, or put back whole
	Runtime string // the runtime's symlink removed; "" when there was none to remove
	Changed bool   // false: daemon.json had no runtime DockerRuntime
	// Restored: the file is byte for byte what it was before InstallDocker (it was not
	// edited since), or gone again when InstallDocker made it; the install's backup is gone.
	Restored bool
	// KeptLink is the runtime's symlink when it stays because DockerConfig still names it.
	KeptLink string
	// Foreign is the path of a runtime named DockerRuntime that is not pontoon's: it stays.
	Foreign string
}

// UninstallDocker undoes InstallDocker: it removes the runtime DockerRuntime from the
// daemon.json at config (DockerConfig when empty). A file not edited since the install gets
// back its content from before, byte for byte, from the install's backup, which then goes;
// a file the install made goes. An edited one keeps every other key and runtime, the
// previous file saved as config+".pontoon-uninstall-backup", and "runtimes" goes too when
// nothing else is left in it. The RuntimeName symlink that runtime named goes, unless
// DockerConfig (another file than config) still names it; a symlink not named RuntimeName
// is not pontoon's and stays.
func UninstallDocker(config string) (DockerUninstall, error) {
	if config == "" {
		config = DockerConfig
	}
	res := DockerUninstall{Config: config}
	old, err := os.ReadFile(config)
	if errors.Is(err, os.ErrNotExist) {
		return res, nil
	} else if err != nil {
		return res, fmt.Errorf("uninstall the docker runtime: read %s: %w", config, err)
	}
	updated, runtime, err := removeRuntime(old)
	if err != nil {
		return res, netsetup.Invalid(fmt.Errorf("uninstall the docker runtime: %s: %w; fix the file and run this again", config, err))
	}
	if updated != nil && filepath.Base(runtime) != RuntimeName {
		// Someone else's runtime of that name, which install refused to replace.
		res.Foreign = runtime
		if runtime == "" {
			res.Foreign = "(none)"
		}
		return res, nil
	}
	if updated != nil {
		if err := putBack(&res, old, updated, runtime); err != nil {
			return res, fmt.Errorf("uninstall the docker runtime: %w", err)
		}
		res.Changed = true
	}
	if runtime != "" && filepath.Base(runtime) == RuntimeName {
		if config != DockerConfig && namesRuntime(DockerConfig, runtime) {
			res.KeptLink = runtime
		} else if fi, err := os.Lstat(runtime); err == nil && fi.Mode()&os.ModeSymlink != 0 {
			if err := os.Remove(runtime); err != nil {
				return res, fmt.Errorf("uninstall the docker runtime: %w", err)
			}
			res.Runtime = runtime
		}
	}
	return res, nil
}

// putBack writes res.Config without pontoon's runtime (updated, from old): the install's
// backup itself when the file is what the install made of it, nothing when the install
// made the file, else updated with old saved beside it.
func putBack(res *DockerUninstall, old, updated []byte, runtime string) error {
	config := res.Config
	perm := os.FileMode(0o644)
	if fi, err := os.Stat(config); err == nil {
		perm = fi.Mode().Perm()
	}
	installBackup := config + ".pontoon-backup"
	before, err := os.ReadFile(installBackup)
	switch {
	case err == nil:
		// Not a backup that names a pontoon runtime already (an install over an earlier
		// one): putting it back would keep pontoon in the file.
		_, earlier, _ := removeRuntime(before)
		if made, _, err := addRuntime(before, runtime); err == nil && earlier == "" && bytes.Equal(made, old) {
			if err := statefile.Write(config, before, perm); err != nil {
				return fmt.Errorf("write %s: %w", config, err)
			}
			res.Restored = true
			return os.Remove(installBackup)
		}
	case errors.Is(err, os.ErrNotExist):
		if made, _, err := addRuntime(nil, runtime); err == nil && bytes.Equal(made, old) {
			res.Restored = true
			return os.Remove(config)
		}
	}
	// Not install's backup, which holds the file from before pontoon's runtime was added.
	res.Backup = config + ".pontoon-uninstall-backup"
	if err := statefile.Write(res.Backup, old, perm); err != nil {
		return fmt.Errorf("back up %s: %w", config, err)
	}
	if err := statefile.Write(config, updated, perm); err != nil {
		return fmt.Errorf("write %s: %w", config, err)
	}
	return nil
}

// namesRuntime reports whether the daemon.json at config has pontoon's runtime at path.
func namesRuntime(config, path string) bool {
	data, err := os.ReadFile(config)
	if err != nil {
		return false
	}
	_, have, err := removeRuntime(data)
	return err == nil && have == path
}

// removeRuntime returns daemon.json data without pontoon's runtime, and the path that
// runtime had; nil data when there was no such runtime.
func removeRuntime(data []byte) ([]byte, string, error) {
	top := map[string]json.RawMessage{}
	if len(bytes.TrimSpace(data)) > 0 {
		if err := json.Unmarshal(data, &top); err != nil {
			return nil, "", fmt.Errorf("not a JSON object: %w", err)
		}
	}
	raw, ok := top["runtimes"]
	if !ok || string(raw) == "null" {
		return nil, "", nil
	}
	runtimes := map[string]json.RawMessage{}
	if err := json.Unmarshal(raw, &runtimes); err != nil {
		return nil, "", fmt.Errorf(`"runtimes" is not an object: %w`, err)
	}
	have, ok := runtimes[DockerRuntime]
	if !ok {
		return nil, "", nil
	}
	var cur struct {
		Path string `json:"path"`
	}
	json.Unmarshal(have, &cur)
	delete(runtimes, DockerRuntime)
	if len(runtimes) == 0 {
		delete(top, "runtimes")
	} else {
		raw, err := json.Marshal(runtimes)
		if err != nil {
			return nil, "", err
		}
		top["runtimes"] = raw
	}
	out, err := json.MarshalIndent(top, "", "  ")
	if err != nil {
		return nil, "", err
	}
	return append(out, '\n'), cur.Path, nil
}
