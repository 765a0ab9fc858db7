package hooks_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/pontoon-dev/pontoon/hooks"
)

// fakePontoon is an executable standing in for the pontoon binary.
func fakePontoon(t *testing.T) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "pontoon")
	if err := os.WriteFile(p, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

// InstallDocker on daemon.json files as administrators have them: every key and runtime
// stays, the old file is backed up, a second install changes nothing, and a file dockerd
// could not read either is refused untouched.
func TestInstallDocker(t *testing.T) {
	bin := fakePontoon(t)
	link := filepath.Join(filepath.Dir(bin), hooks.RuntimeName)
	for _, c := range []struct {
		name, before string
		want         map[string]any // the file after, decoded
	}{
		{"absent", "", map[string]any{"runtimes": map[string]any{"pontoon": map[string]any{"path": link}}}},
		{"empty", "  \n", map[string]any{"runtimes": map[string]any{"pontoon": map[string]any{"path": link}}}},
		{"keys", `{"log-level": "warn", "storage-driver": "vfs", "default-address-pools": [{"base": "10.10.0.0/16", "size": 24}], "features": {"buildkit": true}}`,
			map[string]any{"log-level": "warn", "storage-driver": "vfs", "default-address-pools": []any{map[string]any{"base": "10.10.0.0/16", "size": 24.0}},
				"features": map[string]any{"buildkit": true}, "runtimes": map[string]any{"pontoon": map[string]any{"path": link}}}},
		{"runtimes", `{"default-runtime": "runc", "runtimes": {"crun": {"path": "/usr/bin/crun", "runtimeArgs": ["--debug"]}, "pontoon": {"path": "/old/pontoon-runc"}}}`,
			map[string]any{"default-runtime": "runc", "runtimes": map[string]any{"crun": map[string]any{"path": "/usr/bin/crun", "runtimeArgs": []any{"--debug"}},
				"pontoon": map[string]any{"path": link}}}},
	} {
		t.Run(c.name, func(t *testing.T) {
			config := filepath.Join(t.TempDir(), "docker", "daemon.json")
			if c.name != "absent" {
				os.MkdirAll(filepath.Dir(config), 0o755)
				if err := os.WriteFile(config, []byte(c.before), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			res, err := hooks.InstallDocker(config, bin)
			if err != nil || !res.Changed || res.Runtime != link {
				t.Fatalf("InstallDocker = %+v, %v", res, err)
			}
			data, err := os.ReadFile(config)
			if err != nil {
				t.Fatal(err)
			}
			var got map[string]any
			if err := json.Unmarshal(data, &got); err != nil || !reflect.DeepEqual(got, c.want) {
				t.Fatalf("daemon.json after install (%v):\n%s\nwant %v", err, data, c.want)
			}
			if c.name == "absent" {
				if res.Backup != "" {
					t.Errorf("backup %q of a file that did not exist", res.Backup)
				}
			} else {
				if b, err := os.ReadFile(res.Backup); err != nil || string(b) != c.before {
					t.Errorf("backup %s: %q (%v), want the old file", res.Backup, b, err)
				}
				if fi, _ := os.Stat(config); fi.Mode().Perm() != 0o600 {
					t.Errorf("daemon.json mode %v, want the old 0600", fi.Mode().Perm())
				}
			}
			if target, err := os.Readlink(link); err != nil || target != bin {
				t.Errorf("%s -> %q (%v), want %s", link, target, err, bin)
			}
			// Again: nothing changes, not even the backup.
			os.Remove(res.Backup)
			res, err = hooks.InstallDocker(config, bin)
			if err != nil || res.Changed || res.Backup != "" {
				t.Fatalf("second InstallDocker = %+v, %v; want no change", res, err)
			}
			if again, _ := os.ReadFile(config); string(again) != string(data) {
				t.Fatalf("second install changed daemon.json:\n%s", again)
			}
		})
	}

	for _, bad := range []string{`{"log-level": "warn",}`, `["runtimes"]`, `{"runtimes": ["pontoon"]}`} {
		config := filepath.Join(t.TempDir(), "daemon.json")
		os.WriteFile(config, []byte(bad), 0o644)
		os.Remove(link)
		_, err := hooks.InstallDocker(config, bin)
		if err == nil || !strings.Contains(err.Error(), config) {
			t.Errorf("install into %s: %v, want an error naming the file", bad, err)
		}
		if data, _ := os.ReadFile(config); string(data) != bad {
			t.Errorf("refused file changed to %s", data)
		}
		if ents, _ := os.ReadDir(filepath.Dir(config)); len(ents) != 1 {
			t.Errorf("refused install left files: %v", ents)
		}
		if _, err := os.Lstat(link); err == nil {
			t.Errorf("refused install made %s", link)
		}
	}
}
