package hooks

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/opencontainers/runtime-spec/specs-go"
	"github.com/pontoon-dev/pontoon/internal/statefile"
	"github.com/pontoon-dev/pontoon/netsetup"
)

// PodmanHookFile is the name of pontoon's file in a hooks.d directory.
const PodmanHookFile = "pontoon.json"

// podmanHook is the hooks.d file format, version 1.0.0 (containers/common
// pkg/hooks/docs/oci-hooks.5.md).
type podmanHook struct {
	Version string     `json:"version"`
	Hook    specs.Hook `json:"hook"`
	When    struct {
		Annotations map[string]string `json:"annotations"`
	} `json:"when"`
	Stages []string `json:"stages"`
}

// podmanWhenKey selects the containers with any pontoon.* annotation (keys are regular
// expressions in hooks.d): one with pontoon.guest but no pontoon.bridge is refused with a
// word, not started off pontoon's network in silence.
const podmanWhenKey = `^pontoon\.[^/]+$`

// PodmanHook returns the hooks.d entry that runs pontoon (at the absolute path pontoonPath)
// for every container with a pontoon.* annotation, at precreate (the container's names:
// see PrepareSpec), createRuntime and poststop. One entry runs one command for every stage,
// so it runs the auto stage, which tells them apart by what it reads on stdin.
func PodmanHook(pontoonPath string, env netsetup.Env) ([]byte, error) {
	if !filepath.IsAbs(pontoonPath) {
		return nil, fmt.Errorf("hook path %q is not absolute; podman runs hooks by absolute path", pontoonPath)
	}
	h := podmanHook{
		Version: "1.0.0",
		Hook: specs.Hook{
			Path: pontoonPath,
			Args: append([]string{filepath.Base(pontoonPath)}, Args(StageAuto, env)...),
		},
		Stages: []string{"precreate", "createRuntime", "poststop"},
	}
	h.When.Annotations = map[string]string{podmanWhenKey: ".*"}
	b, err := json.MarshalIndent(h, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}

// InstallPodman writes pontoon's hooks.d entry (see PodmanHook) into dir, creating dir if
// needed, and returns the file's path. An empty dir is where the podman on this machine
// reads hooks from (DetectPodmanConf): a file anywhere else is never run, and podman starts
// the container without a word. Writing it again replaces it; the file is replaced
// atomically, so podman never reads half of it.
func InstallPodman(dir, pontoonPath string, env netsetup.Env) (string, error) {
	if dir == "" {
		d, err := DetectPodmanConf().HooksDir()
		if err != nil {
			return "", fmt.Errorf("install podman hook: %w", err)
		}
		dir = d
	}
	abs, err := filepath.Abs(pontoonPath)
	if err != nil {
		return "", fmt.Errorf("install podman hook: resolve %s: %w", pontoonPath, err)
	}
	if fi, err := os.Stat(abs); err != nil || fi.IsDir() || fi.Mode()&0o111 == 0 {
		return "", fmt.Errorf("install podman hook: %s is not an executable file; pass the path of the pontoon binary", abs)
	}
	data, err := PodmanHook(abs, env)
	if err != nil {
		return "", fmt.Errorf("install podman hook: %w", err)
	}
	if err := makeHooksDir(dir); err != nil {
		return "", fmt.Errorf("install podman hook: %w", err)
	}
	path := filepath.Join(dir, PodmanHookFile)
	if err := statefile.Write(path, data, 0o644); err != nil {
		return "", fmt.Errorf("install podman hook: %w", err)
	}
	return path, nil
}

// madeDirsFile, in a hooks.d directory, lists the directories InstallPodman made for it,
// which UninstallPodman removes again when nothing else is in them. podman reads only the
// .json files there.
const madeDirsFile = ".pontoon-made-dirs"

// makeHooksDir makes dir and the parents it lacks, noting those in madeDirsFile.
func makeHooksDir(dir string) error {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return fmt.Errorf("create %s: %w", dir, err)
	}
	var made []string
	for d := abs; ; d = filepath.Dir(d) {
		if _, err := os.Stat(d); err == nil || d == filepath.Dir(d) {
			break
		}
		made = append(made, d)
	}
	if len(made) == 0 {
		return nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("create %s: %w", dir, err)
	}
	return os.WriteFile(filepath.Join(dir, madeDirsFile), []byte(strings.Join(made, "\n")+"\n"), 0o644)
}

// UninstallPodman removes the entry InstallPodman wrote into dir (found the same way when
// empty) and returns its path; removed is false when there was none. A pontoon.json that
// is not pontoon's entry is left alone: the name may have been taken by something else.
// The directories InstallPodman made go too when nothing else is in them; any other stays,
// as other hooks may live there or the system made it.
func UninstallPodman(dir string) (path string, removed bool, err error) {
	if dir == "" {
		if dir, err = DetectPodmanConf().HooksDir(); err != nil {
			return "", false, fmt.Errorf("uninstall podman hook: %w", err)
		}
	}
	path = filepath.Join(dir, PodmanHookFile)
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return path, false, nil
	} else if err != nil {
		return path, false, fmt.Errorf("uninstall podman hook: %w", err)
	}
	if !IsPodmanHook(data) {
		return path, false, fmt.Errorf("uninstall podman hook: %s is not pontoon's hooks.d entry; left as it is", path)
	}
	if err := os.Remove(path); err != nil {
		return path, false, fmt.Errorf("uninstall podman hook: %w", err)
	}
	if list, err := os.ReadFile(filepath.Join(dir, madeDirsFile)); err == nil {
		os.Remove(filepath.Join(dir, madeDirsFile))
		for _, d := range strings.Split(strings.TrimSuffix(string(list), "\n"), "\n") {
			if filepath.IsAbs(d) {
				os.Remove(d) // only when empty: another hook's file keeps it
			}
		}
	}
	return path, true, nil
}

// IsPodmanHook reports whether data is a hooks.d entry PodmanHook made: one selected by
// pontoon's annotations (older pontoons selected pontoon.bridge alone) that runs "pontoon hook STAGE" (any stage: older pontoons
// wrote other ones).
func IsPodmanHook(data []byte) bool {
	var h podmanHook
	if json.Unmarshal(data, &h) != nil {
		return false
	}
	_, ok := h.When.Annotations[podmanWhenKey]
	if _, old := h.When.Annotations[AnnotationBridge]; old {
		ok = true
	}
	a := h.Hook.Args
	return ok && len(a) >= 3 && a[1] == "hook" && IsStage(a[2])
}
