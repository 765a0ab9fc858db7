package hooks_test

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/pontoon-dev/pontoon/hooks"
)

// podmanConf is a PodmanConf whose files live under a temporary directory; files maps a
// name there (usr.conf, etc.conf, etc.conf.d/10.conf, ...) to its content.
func podmanConf(t *testing.T, files map[string]string) (hooks.PodmanConf, string) {
	dir := t.TempDir()
	for name, content := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(strings.ReplaceAll(content, "DIR", dir)), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	c := hooks.PodmanConf{Usr: filepath.Join(dir, "usr.conf"), Etc: filepath.Join(dir, "etc.conf"), Home: filepath.Join(dir, "home.conf"), Root: true}
	return c, dir
}

// The hooks.d directory podman reads, from containers.conf files merged in podman's order.
func TestPodmanHooksDir(t *testing.T) {
	// Debian's /usr/share/containers/containers.conf has hooks_dir commented out.
	debian := "[engine]\n#hooks_dir = [\n#  \"/usr/share/containers/oci/hooks.d\",\n#]\n"
	for _, c := range []struct {
		name     string
		files    map[string]string
		env      string // CONTAINERS_CONF, under the directory
		override string // CONTAINERS_CONF_OVERRIDE, under the directory
		rootless bool
		dirs     []string // "DIR" is the temporary directory
		want     string   // the directory, or the error's text
	}{
		{name: "no files", dirs: []string{hooks.PodmanDefaultHooksDir}, want: hooks.PodmanDefaultHooksDir},
		{name: "commented out", files: map[string]string{"usr.conf": debian}, dirs: []string{hooks.PodmanDefaultHooksDir}, want: hooks.PodmanDefaultHooksDir},
		{name: "etc over usr",
			files: map[string]string{"usr.conf": `[engine]` + "\n" + `hooks_dir = ["/u"]`, "etc.conf": `[engine]` + "\n" + `hooks_dir = ["/e1", "/e2"]`},
			dirs:  []string{"/e1", "/e2"}, want: "/e2"},
		{name: "drop-ins by name, append",
			files: map[string]string{
				"etc.conf":              "[engine]\nhooks_dir = [\"/e\"]\n",
				"etc.conf.d/20.conf":    "[engine]\nhooks_dir = [\"/d20\", {append=true}]\n",
				"etc.conf.d/10.conf":    "[engine]\nhooks_dir = [\"/d10\"]\n",
				"etc.conf.d/30.txt":     "[engine]\nhooks_dir = [\"/not-read\"]\n",
				"etc.conf.d/sub/a.conf": "[engine]\nhooks_dir = [\"/not-read\"]\n",
				"etc.conf.d/15.conf":    "[network]\nnetwork_backend = \"netavark\"\n",
			},
			dirs: []string{"/d10", "/d20"}, want: "/d20"},
		{name: "home last",
			files: map[string]string{"etc.conf": "[engine]\nhooks_dir = [\"/e\"]\n", "home.conf.d/a.conf": "[engine]\nhooks_dir = [\"/h\"]\n"},
			dirs:  []string{"/h"}, want: "/h"},
		{name: "CONTAINERS_CONF alone",
			files: map[string]string{"etc.conf": "[engine]\nhooks_dir = [\"/e\"]\n", "mine.conf": "[engine]\nhooks_dir = [\"DIR/m\"]\n"},
			env:   "mine.conf", dirs: []string{"DIR/m"}, want: "DIR/m"},
		{name: "CONTAINERS_CONF empty file", files: map[string]string{"etc.conf": "[engine]\nhooks_dir = [\"/e\"]\n", "mine.conf": ""},
			env: "mine.conf", dirs: []string{hooks.PodmanDefaultHooksDir}, want: hooks.PodmanDefaultHooksDir},
		{name: "CONTAINERS_CONF missing", env: "missing.conf", want: "CONTAINERS_CONF: stat DIR/missing.conf: no such file or directory"},
		{name: "override wins", files: map[string]string{"mine.conf": "[engine]\nhooks_dir = [\"/m\"]\n", "o.conf": "[engine]\nhooks_dir = [\"/o\"]\n"},
			env: "mine.conf", override: "o.conf", dirs: []string{"/o"}, want: "/o"},
		{name: "empty list, root", files: map[string]string{"etc.conf": "[engine]\nhooks_dir = []\n"}, dirs: []string{}, want: hooks.PodmanHooksDir},
		{name: "empty list, rootless", files: map[string]string{"etc.conf": "[engine]\nhooks_dir = []\n"}, rootless: true, dirs: []string{},
			want: "podman run by this user runs no hooks: hooks_dir is empty in DIR/etc.conf"},
		{name: "not TOML", files: map[string]string{"etc.conf": "[engine\n"}, want: "read podman's configuration DIR/etc.conf:"},
		{name: "not a list of directories", files: map[string]string{"etc.conf": "[engine]\nhooks_dir = [1]\n"}, want: "DIR/etc.conf: hooks_dir holds 1, not a directory"},
	} {
		t.Run(c.name, func(t *testing.T) {
			conf, dir := podmanConf(t, c.files)
			if c.env != "" {
				conf.Env = filepath.Join(dir, c.env)
			}
			if c.override != "" {
				conf.Override = filepath.Join(dir, c.override)
			}
			conf.Root = !c.rootless
			want := strings.ReplaceAll(c.want, "DIR", dir)
			got, err := conf.HooksDir()
			if err != nil {
				if !strings.Contains(err.Error(), want) {
					t.Fatalf("HooksDir: %v, want %s", err, want)
				}
			} else if got != want {
				t.Fatalf("HooksDir = %s, want %s", got, want)
			}
			if c.dirs == nil {
				return
			}
			dirs, _, err := conf.HooksDirs()
			for i := range c.dirs {
				c.dirs[i] = strings.ReplaceAll(c.dirs[i], "DIR", dir)
			}
			if err != nil || !slices.Equal(dirs, c.dirs) {
				t.Fatalf("HooksDirs = %q, %v; want %q", dirs, err, c.dirs)
			}
		})
	}
}

// This machine's own files parse, and the podman found is asked for its version without
// failing: what `hook install --podman` reads before it writes anything.
func TestPodmanHooksDirHere(t *testing.T) {
	if _, err := hooks.DetectPodmanConf().HooksDir(); err != nil {
		t.Fatal(err)
	}
}
