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
	if out, code := pontoonCmd(t, binary, nil, "hook", "install", "--docker", "--config", config); code != 1 || !strings.Contains(out, config+": not a JSON object") {
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
