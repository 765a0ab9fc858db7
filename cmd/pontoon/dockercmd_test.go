package main

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// pontoonCmd runs the built pontoon (argv[0] given) with args and extra environment.
func pontoonCmd(t *testing.T, path string, env []string, args ...string) (string, int) {
	t.Helper()
	cmd := exec.Command(path, args...)
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return string(out), ee.ExitCode()
	} else if err != nil {
		t.Fatalf("%s %v: %v", path, args, err)
	}
	return string(out), 0
}

// `hook install --docker` as the README shows it, and the runtime it registers: the
// pontoon-runc name hands runc's commands to runc.
func TestHookInstallDocker(t *testing.T) {
	config := filepath.Join(t.TempDir(), "daemon.json")
	if err := os.WriteFile(config, []byte(`{"log-level": "warn"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	runtime := filepath.Join(filepath.Dir(binary), "pontoon-runc")
	out, code := pontoonCmd(t, binary, nil, "hook", "install", "--docker", "--config", config)
	if code != 0 || !strings.Contains(out, "added to "+config) || !strings.Contains(out, "kill -HUP $(pidof dockerd)") ||
		!strings.Contains(out, config+".pontoon-backup") || !strings.Contains(out, "--runtime pontoon") {
		t.Fatalf("hook install --docker: exit %d\n%s", code, out)
	}
	data, _ := os.ReadFile(config)
	if !strings.Contains(string(data), `"log-level": "warn"`) || !strings.Contains(string(data), `"path": "`+runtime+`"`) {
		t.Fatalf("daemon.json after install:\n%s", data)
	}
	out, code = pontoonCmd(t, binary, []string{"PONTOON_STATE_DIR=/srv/pontoon"}, "hook", "install", "--docker", "--config", config)
	if code != 0 || !strings.Contains(out, "nothing changed") || !strings.Contains(out, "start dockerd with PONTOON_STATE_DIR=/srv/pontoon") {
		t.Fatalf("second hook install --docker: exit %d\n%s", code, out)
	}

	os.WriteFile(config, []byte(`{"runtimes": `), 0o644)
	if out, code := pontoonCmd(t, binary, nil, "hook", "install", "--docker", "--config", config); code != 2 || !strings.Contains(out, config+": not a JSON object") {
		t.Errorf("install into a broken daemon.json: exit %d\n%s", code, out)
	}
	for _, args := range [][]string{{"--docker", "--podman"}, {}, {"--docker", "--dir", "/tmp"}} {
		if out, code := pontoonCmd(t, binary, nil, append([]string{"hook", "install"}, args...)...); code != 2 {
			t.Errorf("hook install %v: exit %d, want 2 (usage)\n%s", args, code, out)
		}
	}

	if _, err := exec.LookPath("runc"); err != nil {
		t.Skip("runc is not installed (Debian package runc)")
	}
	want, _ := exec.Command("runc", "--version").CombinedOutput()
	if out, code := pontoonCmd(t, runtime, nil, "--version"); code != 0 || out != string(want) {
		t.Errorf("pontoon-runc --version: exit %d\n%s\nwant runc's\n%s", code, out, want)
	}
}

// `hook install --podman` writes where podman's containers.conf says, and says where;
// `hook uninstall --podman` removes that file and nothing else.
func TestHookInstallPodman(t *testing.T) {
	dir := t.TempDir()
	conf := filepath.Join(dir, "containers.conf")
	if err := os.WriteFile(conf, []byte("[engine]\nhooks_dir = [\""+dir+"/low\", \""+dir+"/high\"]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	env := []string{"CONTAINERS_CONF=" + conf}
	entry := filepath.Join(dir, "high", "pontoon.json")
	out, code := pontoonCmd(t, binary, env, "hook", "install", "--podman")
	if code != 0 || !strings.Contains(out, "podman hook installed at "+entry+";") || strings.Contains(out, "--hooks-dir") {
		t.Fatalf("hook install --podman: exit %d\n%s", code, out)
	}
	if data, err := os.ReadFile(entry); err != nil || !strings.Contains(string(data), `"path": "`+binary+`"`) {
		t.Fatalf("%s: %v\n%s", entry, err, data)
	}
	// A directory podman does not read is the user's choice, but not a silent one.
	other := filepath.Join(dir, "other")
	out, code = pontoonCmd(t, binary, env, "hook", "install", "--podman", "--dir", other)
	if code != 0 || !strings.Contains(out, "podman reads it only if "+other+" is in hooks_dir of containers.conf, or with --hooks-dir "+other) {
		t.Fatalf("hook install --podman --dir: exit %d\n%s", code, out)
	}

	out, code = pontoonCmd(t, binary, env, "hook", "uninstall", "--podman")
	if code != 0 || out != "podman hook removed from "+entry+"\n" {
		t.Fatalf("hook uninstall --podman: exit %d\n%s", code, out)
	}
	if _, err := os.Stat(entry); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("%s after uninstall: %v", entry, err)
	}
	// The install made the directory: the uninstall takes it away again.
	if _, err := os.Stat(filepath.Dir(entry)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the hooks directory the install made, after uninstall: %v", err)
	}
	if _, err := os.Stat(filepath.Join(other, "pontoon.json")); err != nil {
		t.Fatalf("uninstall without --dir touched --dir's entry: %v", err)
	}
	out, code = pontoonCmd(t, binary, env, "hook", "uninstall", "--podman")
	if code != 0 || !strings.Contains(out, "no podman hook at "+entry+"; nothing changed") {
		t.Fatalf("second hook uninstall --podman: exit %d\n%s", code, out)
	}
	if out, code = pontoonCmd(t, binary, env, "hook", "uninstall", "--podman", "--dir", other); code != 0 {
		t.Fatalf("hook uninstall --podman --dir: exit %d\n%s", code, out)
	}
	foreign := filepath.Join(other, "pontoon.json")
	os.MkdirAll(other, 0o755)
	os.WriteFile(foreign, []byte(`{"version": "1.0.0"}`), 0o644)
	if out, code = pontoonCmd(t, binary, env, "hook", "uninstall", "--podman", "--dir", other); code != 1 || !strings.Contains(out, "is not pontoon's hooks.d entry") {
		t.Fatalf("uninstall of a foreign pontoon.json: exit %d\n%s", code, out)
	}
	if _, err := os.Stat(foreign); err != nil {
		t.Fatalf("a foreign pontoon.json was removed: %v", err)
	}
	for _, args := range [][]string{{"--docker", "--podman"}, {}, {"--docker", "--dir", "/tmp"}, {"--podman", "--config", "/tmp/x.json"}} {
		for _, verb := range []string{"install", "uninstall"} {
			if out, code := pontoonCmd(t, binary, env, append([]string{"hook", verb}, args...)...); code != 2 {
				t.Errorf("hook %s %v: exit %d, want 2 (usage)\n%s", verb, args, code, out)
			}
		}
	}
}

// `hook uninstall --docker` takes out the runtime install added, and its symlink, and
// leaves the rest of daemon.json as it was.
func TestHookUninstallDocker(t *testing.T) {
	config := filepath.Join(t.TempDir(), "daemon.json")
	if err := os.WriteFile(config, []byte(`{"log-level": "warn", "runtimes": {"other": {"path": "/usr/bin/other"}}}`), 0o644); err != nil {
		t.Fatal(err)
	}
	runtime := filepath.Join(filepath.Dir(binary), "pontoon-runc")
	if out, code := pontoonCmd(t, binary, nil, "hook", "install", "--docker", "--config", config); code != 0 {
		t.Fatalf("hook install --docker: exit %d\n%s", code, out)
	}
	out, code := pontoonCmd(t, binary, nil, "hook", "uninstall", "--docker", "--config", config)
	if code != 0 || !strings.Contains(out, `docker runtime "pontoon" removed: `+config+" is back as it was before hook install") || !strings.Contains(out, "removed the runtime's symlink "+runtime) ||
		!strings.Contains(out, "kill -HUP $(pidof dockerd)") {
		t.Fatalf("hook uninstall --docker: exit %d\n%s", code, out)
	}
	data, _ := os.ReadFile(config)
	if s := string(data); !strings.Contains(s, `"log-level": "warn"`) || !strings.Contains(s, `"other"`) || strings.Contains(s, `"pontoon"`) {
		t.Fatalf("daemon.json after uninstall:\n%s", data)
	}
	if _, err := os.Lstat(runtime); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("%s after uninstall: %v", runtime, err)
	}
	// Not edited since the install: the file is back byte for byte, and no backup is left.
	if string(data) != `{"log-level": "warn", "runtimes": {"other": {"path": "/usr/bin/other"}}}` {
		t.Errorf("daemon.json after install and uninstall:\n%s\n%s", data, out)
	}
	if ents, _ := os.ReadDir(filepath.Dir(config)); len(ents) != 1 {
		t.Errorf("files beside daemon.json after install and uninstall: %v", ents)
	}
	out, code = pontoonCmd(t, binary, nil, "hook", "uninstall", "--docker", "--config", config)
	if code != 0 || !strings.Contains(out, "nothing changed") {
		t.Fatalf("second hook uninstall --docker: exit %d\n%s", code, out)
	}

	// Edited since the install: pontoon's runtime goes, and with nothing else in "runtimes"
	// the key too; the edited file is kept beside it.
	os.WriteFile(config, []byte(`{"log-level": "warn"}`), 0o644)
	pontoonCmd(t, binary, nil, "hook", "install", "--docker", "--config", config)
	edited, _ := os.ReadFile(config)
	os.WriteFile(config, append(edited[:len(edited)-2], []byte(",\n  \"debug\": true\n}\n")...), 0o644)
	if out, code := pontoonCmd(t, binary, nil, "hook", "uninstall", "--docker", "--config", config); code != 0 {
		t.Fatalf("hook uninstall --docker: exit %d\n%s", code, out)
	}
	if data, _ := os.ReadFile(config); strings.TrimSpace(string(data)) != "{\n  \"debug\": true,\n  \"log-level\": \"warn\"\n}" {
		t.Fatalf("daemon.json after uninstall:\n%s", data)
	}
	if data, _ := os.ReadFile(config + ".pontoon-uninstall-backup"); !strings.Contains(string(data), `"pontoon"`) || !strings.Contains(string(data), `"debug"`) {
		t.Errorf("uninstall's backup:\n%s", data)
	}

	// No file before the install: none after the uninstall.
	fresh := filepath.Join(t.TempDir(), "daemon.json")
	pontoonCmd(t, binary, nil, "hook", "install", "--docker", "--config", fresh)
	if out, code := pontoonCmd(t, binary, nil, "hook", "uninstall", "--docker", "--config", fresh); code != 0 || !strings.Contains(out, "is gone again") {
		t.Fatalf("hook uninstall --docker of a file install made: exit %d\n%s", code, out)
	}
	if ents, _ := os.ReadDir(filepath.Dir(fresh)); len(ents) != 0 {
		t.Errorf("files left by install and uninstall where there was none: %v", ents)
	}

	// A runtime named pontoon that is not pontoon's is refused, and stays.
	theirs := `{"runtimes": {"pontoon": {"path": "/usr/bin/other"}}}`
	os.WriteFile(config, []byte(theirs), 0o644)
	if out, code := pontoonCmd(t, binary, nil, "hook", "install", "--docker", "--config", config); code != 2 || !strings.Contains(out, "which is not pontoon's") {
		t.Fatalf("hook install --docker over another runtime named pontoon: exit %d\n%s", code, out)
	}
	if data, _ := os.ReadFile(config); string(data) != theirs {
		t.Fatalf("daemon.json after a refused install:\n%s", data)
	}
	if out, code := pontoonCmd(t, binary, nil, "hook", "uninstall", "--docker", "--config", config); code != 0 || !strings.Contains(out, "is not pontoon's") {
		t.Fatalf("hook uninstall --docker of another runtime named pontoon: exit %d\n%s", code, out)
	}
	if data, _ := os.ReadFile(config); string(data) != theirs {
		t.Fatalf("daemon.json after uninstall with another runtime named pontoon:\n%s", data)
	}

	// Installed from two places, one after the other: the uninstall takes pontoon out, and
	// does not put back the first install's file, which names pontoon too.
	twice := filepath.Join(t.TempDir(), "daemon.json")
	os.WriteFile(twice, []byte(`{"runtimes": {"pontoon": {"path": "/opt/old/pontoon-runc"}}}`), 0o644)
	pontoonCmd(t, binary, nil, "hook", "install", "--docker", "--config", twice)
	if out, code := pontoonCmd(t, binary, nil, "hook", "uninstall", "--docker", "--config", twice); code != 0 {
		t.Fatalf("hook uninstall --docker after two installs: exit %d\n%s", code, out)
	}
	if data, _ := os.ReadFile(twice); strings.Contains(string(data), "pontoon") {
		t.Fatalf("daemon.json after uninstalling two installs still names pontoon:\n%s", data)
	}
}
