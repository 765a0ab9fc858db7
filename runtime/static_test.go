package runtime

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// staticBinary tells a static ELF from one that needs the dynamic loader, and refuses what
// is no ELF at all: it decides whether a child's root gets pontoon as its init.
func TestStaticBinary(t *testing.T) {
	busybox, err := exec.LookPath("busybox")
	if err != nil {
		t.Skip("busybox-static is not installed")
	}
	if !staticBinary(busybox) {
		t.Errorf("staticBinary(%s) = false; busybox-static has no program interpreter", busybox)
	}
	// coreutils' env is linked against the C library, so it names the loader.
	env, err := exec.LookPath("env")
	if err != nil {
		t.Fatal(err)
	}
	if staticBinary(env) {
		t.Errorf("staticBinary(%s) = true; it is linked against the C library", env)
	}
	script := filepath.Join(t.TempDir(), "script")
	if err := os.WriteFile(script, []byte("#!/bin/sh\necho hi\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{script, filepath.Join(t.TempDir(), "missing")} {
		if staticBinary(p) {
			t.Errorf("staticBinary(%s) = true for a file that is no ELF binary", p)
		}
	}
}
