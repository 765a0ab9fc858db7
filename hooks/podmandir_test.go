package hooks_test

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pontoon-dev/pontoon/hooks"
	"github.com/pontoon-dev/pontoon/hooks/hooktest"
	"github.com/pontoon-dev/pontoon/netsetup"
)

// TestPodmanInstallWherePodmanReads: `hook install --podman` without --dir puts the entry
// where podman looks by itself, so a container run without --hooks-dir, as the README
// shows, gets its eth0. An entry anywhere else is never run and podman says nothing.
func TestPodmanInstallWherePodmanReads(t *testing.T) {
	hooktest.NeedRoot(t)
	bin := hooktest.NeedCommand(t, "podman", "podman")
	hooktest.NeedCommand(t, "runc", "runc")
	s := hooktest.Chain(t)
	if _, err := netsetup.CreateBridge(s.Env, "pd", netsetup.BridgeOptions{}); err != nil {
		t.Fatal(err)
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	// Each case's containers.conf is podman's only one (CONTAINERS_CONF), so the host's
	// files decide nothing. Its network_config_dir keeps podman's network state (netavark's
	// lock) out of /etc.
	for _, c := range []struct {
		name, conf, ip string
		want           func(dir string) string // the hooks.d directory podman reads
	}{
		{"built-in default", "[network]\nnetwork_config_dir = \"DIR/net\"\n", "172.18.0.21", func(string) string { return hooks.PodmanDefaultHooksDir }},
		{"hooks_dir", "[network]\nnetwork_config_dir = \"DIR/net\"\n[engine]\nhooks_dir = [\"DIR/low\", \"DIR/high\"]\n", "172.18.0.22", func(dir string) string { return filepath.Join(dir, "high") }},
	} {
		t.Run(c.name, func(t *testing.T) {
			// Not t.TempDir: podman refuses a runroot path as long as this subtest's name.
			dir, err := os.MkdirTemp("", "pontoon-pd")
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { os.RemoveAll(dir) })
			conf := filepath.Join(dir, "containers.conf")
			if err := os.WriteFile(conf, []byte(strings.ReplaceAll(c.conf, "DIR", dir)), 0o644); err != nil {
				t.Fatal(err)
			}
			t.Setenv("CONTAINERS_CONF", conf)
			want := filepath.Join(c.want(dir), hooks.PodmanHookFile)
			claim(t, want)
			path, err := hooks.InstallPodman("", self, s.Env)
			if err != nil {
				t.Fatal(err)
			}
			if path != want {
				removeOwn(t, path, self)
				t.Errorf("installed at %s; podman reads %s", path, want)
			}

			p := &podman{t: t, bin: bin, dir: dir, root: hooktest.Rootfs(t, dir)}
			t.Cleanup(func() { p.cmd("rm", "--all", "--force", "--time", "0") })
			out, err := p.run([]string{"--rm"}, annotations("pd", "g", c.ip), "ip", "-4", "-o", "addr", "show", "dev", "eth0")
			if err != nil || !strings.Contains(out, " "+c.ip+"/") {
				t.Fatalf("podman run without --hooks-dir: %v\n%s", err, out)
			}

			if got, removed, err := hooks.UninstallPodman(""); err != nil || !removed || got != want {
				t.Fatalf("uninstall: %s, removed %v, %v; want %s removed", got, removed, err, want)
			}
			if _, err := os.Stat(want); !errors.Is(err, fs.ErrNotExist) {
				t.Fatalf("%s after uninstall: %v", want, err)
			}
		})
	}
}

// claim creates path, or skips the test when it exists: a real hooks.d may hold an entry of
// the host's own. The file, and the directories made for it, go when the test ends, also on
// failure. Until the install replaces it, it holds an entry that never applies: any podman
// on the host may read it, and would refuse every container over a file that does not parse.
func claim(t *testing.T, path string) {
	t.Helper()
	var made []string // deepest first, the order to remove them in
	for d := filepath.Dir(path); ; d = filepath.Dir(d) {
		if _, err := os.Stat(d); err == nil {
			break
		}
		made = append(made, d)
	}
	t.Cleanup(func() {
		for _, d := range made {
			os.Remove(d)
		}
	})
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
	if errors.Is(err, fs.ErrExist) {
		t.Skipf("%s exists; the test does not replace it", path)
	} else if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Remove(path) })
	_, err = f.WriteString(`{"version": "1.0.0", "hook": {"path": "/bin/true"}, "when": {"always": false}, "stages": ["prestart"]}` + "\n")
	if err := errors.Join(err, f.Close()); err != nil {
		t.Fatal(err)
	}
}

// removeOwn removes an entry installed in the wrong place, if it runs this test binary:
// one that does not was there before, and is not the test's to remove.
func removeOwn(t *testing.T, path, self string) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err == nil && hooks.IsPodmanHook(data) && strings.Contains(string(data), `"path": "`+self+`"`) {
		os.Remove(path)
	}
}
