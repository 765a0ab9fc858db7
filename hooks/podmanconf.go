package hooks

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/BurntSushi/toml"
)

// PodmanDefaultHooksDir is the hooks_dir podman uses when no containers.conf sets one
// (containers/common's DefaultHooksDirs, the same from podman 2 to 5).
const PodmanDefaultHooksDir = "/usr/share/containers/oci/hooks.d"

// PodmanHooksDir is where podman also looks, as root, when hooks_dir is set to an empty
// list; it takes precedence over PodmanDefaultHooksDir then. pontoon installed here
// before it read containers.conf.
const PodmanHooksDir = "/etc/containers/oci/hooks.d"

// PodmanConf is what decides which containers.conf files podman reads; DetectPodmanConf
// fills it in for the podman on this machine. Tests point it at files of their own.
type PodmanConf struct {
	Usr      string // the distribution's containers.conf
	Etc      string // the administrator's; Etc+".d" holds drop-ins (*.conf, by name)
	Home     string // the user's, with Home+".d"; "" when this podman reads none
	Env      string // $CONTAINERS_CONF: when set, the only file read of the ones above
	Override string // $CONTAINERS_CONF_OVERRIDE, read last; "" when unset or this podman ignores it
	Root     bool   // podman runs as root: hooks_dir = [] then still means Usr's and Etc's defaults
}

// DetectPodmanConf is the PodmanConf of the podman in $PATH run by this user with this
// environment. The version matters: root reads its own containers.conf only from podman 5,
// and $CONTAINERS_CONF_OVERRIDE exists from 4.7. Without podman the newest rules apply.
func DetectPodmanConf() PodmanConf {
	major, minor := podmanVersion()
	c := PodmanConf{
		Usr:  "/usr/share/containers/containers.conf",
		Etc:  "/etc/containers/containers.conf",
		Env:  os.Getenv("CONTAINERS_CONF"),
		Root: os.Geteuid() == 0,
	}
	if !c.Root || major >= 5 {
		c.Home = userContainersConf()
	}
	if major > 4 || major == 4 && minor >= 7 {
		c.Override = os.Getenv("CONTAINERS_CONF_OVERRIDE")
	}
	return c
}

// podmanVersion is the version of the podman in $PATH; 99.0 when there is none.
func podmanVersion() (major, minor int) {
	out, err := exec.Command("podman", "--version").Output()
	if err != nil {
		return 99, 0
	}
	// "podman version 4.3.1"
	f := strings.Fields(string(out))
	if len(f) == 0 {
		return 99, 0
	}
	v := strings.SplitN(f[len(f)-1], ".", 3)
	major, err = strconv.Atoi(v[0])
	if err != nil {
		return 99, 0
	}
	if len(v) > 1 {
		minor, _ = strconv.Atoi(v[1])
	}
	return major, minor
}

func userContainersConf() string {
	if d := os.Getenv("XDG_CONFIG_HOME"); d != "" {
		return filepath.Join(d, "containers", "containers.conf")
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return ""
	}
	return filepath.Join(home, ".config", "containers", "containers.conf")
}

// Files lists the containers.conf files podman reads, in its order (later ones win);
// missing ones are left out.
func (c PodmanConf) Files() ([]string, error) {
	var files []string
	add := func(path string) {
		if fi, err := os.Stat(path); err == nil && !fi.IsDir() {
			files = append(files, path)
		}
	}
	if c.Env != "" {
		if _, err := os.Stat(c.Env); err != nil {
			// podman refuses to start then, so there is no directory it would read
			return nil, fmt.Errorf("CONTAINERS_CONF: %w", err)
		}
		files = append(files, c.Env)
	} else {
		add(c.Usr)
		add(c.Etc)
		dropIns, err := confDropIns(c.Etc + ".d")
		if err != nil {
			return nil, err
		}
		files = append(files, dropIns...)
		if c.Home != "" {
			add(c.Home)
			if dropIns, err = confDropIns(c.Home + ".d"); err != nil {
				return nil, err
			}
			files = append(files, dropIns...)
		}
	}
	if c.Override != "" {
		add(c.Override)
	}
	return files, nil
}

// confDropIns are the *.conf files directly in dir, by name.
func confDropIns(dir string) ([]string, error) {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	} else if err != nil {
		return nil, fmt.Errorf("read podman's configuration: %w", err)
	}
	var out []string
	for _, e := range entries {
		if !e.IsDir() && strings.HasSuffix(e.Name(), ".conf") {
			out = append(out, filepath.Join(dir, e.Name()))
		}
	}
	return out, nil
}

// HooksDirs merges hooks_dir of [engine] over the files, as podman does: a later file's
// list replaces the earlier one, unless it ends with {append=true}. It returns the
// directories in increasing precedence (a file in a later one masks the same name in an
// earlier one) and the file that set them, "" for podman's default.
func (c PodmanConf) HooksDirs() (dirs []string, from string, err error) {
	files, err := c.Files()
	if err != nil {
		return nil, "", err
	}
	dirs = []string{PodmanDefaultHooksDir}
	for _, f := range files {
		var conf struct {
			Engine struct {
				HooksDir []any `toml:"hooks_dir"`
			} `toml:"engine"`
		}
		md, err := toml.DecodeFile(f, &conf)
		if err != nil {
			return nil, "", fmt.Errorf("read podman's configuration %s: %w", f, err)
		}
		if !md.IsDefined("engine", "hooks_dir") {
			continue
		}
		var set []string
		appendTo := false
		for _, v := range conf.Engine.HooksDir {
			switch v := v.(type) {
			case string:
				set = append(set, v)
			case map[string]any:
				b, ok := v["append"].(bool)
				if !ok {
					return nil, "", fmt.Errorf("%s: hooks_dir: only {append=true} may follow the directories", f)
				}
				appendTo = b
			default:
				return nil, "", fmt.Errorf("%s: hooks_dir holds %v, not a directory", f, v)
			}
		}
		if appendTo {
			dirs = append(dirs, set...)
		} else {
			dirs = set
		}
		from = f
	}
	return dirs, from, nil
}

// HooksDir is the directory pontoon's entry goes to: the last of HooksDirs, where no other
// directory masks it.
func (c PodmanConf) HooksDir() (string, error) {
	dirs, from, err := c.HooksDirs()
	if err != nil {
		return "", err
	}
	if len(dirs) > 0 {
		return dirs[len(dirs)-1], nil
	}
	if c.Root {
		return PodmanHooksDir, nil
	}
	return "", fmt.Errorf("podman run by this user runs no hooks: hooks_dir is empty in %s; set it, or give --dir and run podman with --hooks-dir", from)
}
