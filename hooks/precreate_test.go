package hooks_test

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pontoon-dev/pontoon/hooks"
	"github.com/pontoon-dev/pontoon/hooks/hooktest"
	"github.com/pontoon-dev/pontoon/netsetup"
)

// specWith is a config.json with the annotations and mounts (destination to source).
func specWith(t *testing.T, ann map[string]string, mounts map[string]string) []byte {
	t.Helper()
	var ms []map[string]any
	for dest, src := range mounts {
		ms = append(ms, map[string]any{"destination": dest, "type": "bind", "source": src, "options": []string{"bind"}})
	}
	data, err := json.Marshal(map[string]any{"ociVersion": "1.0.2", "hostname": "h7", "root": map[string]string{"path": "/r"},
		"process": map[string]any{"args": []string{"true"}}, "annotations": ann, "mounts": ms})
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// resolvMounts returns the sources of the spec's /etc/resolv.conf mounts.
func resolvMounts(t *testing.T, data []byte) []string {
	t.Helper()
	var spec struct {
		Mounts []struct{ Destination, Source string }
	}
	if err := json.Unmarshal(data, &spec); err != nil {
		t.Fatalf("%v\n%s", err, data)
	}
	var srcs []string
	for _, m := range spec.Mounts {
		if m.Destination == "/etc/resolv.conf" {
			srcs = append(srcs, m.Source)
		}
	}
	return srcs
}

// TestPrepareSpec: the precreate stage gives a podman-style container (files mounted from
// its own directory) its hosts line and a resolv.conf once, however often it runs, and
// leaves alone what the user mounted, containers that do not ask for pontoon or ask wrongly,
// and configurations whose files do not come from an engine's container directory (Docker's,
// which pontoon's runtime wrapper prepares).
func TestPrepareSpec(t *testing.T) {
	hooktest.NeedRoot(t)
	s := hooktest.Chain(t)
	want, err := netsetup.GuestResolvConf(s.Env)
	if err != nil {
		t.Fatal(err)
	}
	ann := annotations("pb", "g7", "172.18.0.7")
	ann[hooks.AnnotationAliases] = "a1"

	dir := filepath.Join(t.TempDir(), "userdata")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	hosts := filepath.Join(dir, "hosts")
	if err := os.WriteFile(hosts, []byte("127.0.0.1\tlocalhost"), 0o644); err != nil {
		t.Fatal(err)
	}
	data := specWith(t, ann, map[string]string{"/etc/hosts": hosts, "/run/.containerenv": filepath.Join(dir, ".containerenv")})
	for i := 0; i < 2; i++ {
		if data, err = hooks.PrepareSpec(s.Env, data); err != nil {
			t.Fatal(err)
		}
	}
	if got, _ := os.ReadFile(hosts); string(got) != "127.0.0.1\tlocalhost\n172.18.0.7\th7 g7 a1\nfd70:6f6e::7\th7 g7 a1\n" {
		t.Errorf("hosts after two runs:\n%s", got)
	}
	rc := filepath.Join(dir, "pontoon-resolv.conf")
	if got := resolvMounts(t, data); len(got) != 1 || got[0] != rc {
		t.Errorf("resolv.conf mounts after two runs: %v", got)
	}
	if got, _ := os.ReadFile(rc); !bytes.Equal(got, want) {
		t.Errorf("resolv.conf:\n%s\nwant:\n%s", got, want)
	}

	// The user's own files win; nothing is written outside the container's directory.
	dir = filepath.Join(t.TempDir(), "userdata")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	own := filepath.Join(t.TempDir(), "userdata")
	if err := os.Mkdir(own, 0o755); err != nil {
		t.Fatal(err)
	}
	ownHosts, ownRC := filepath.Join(own, "hosts"), filepath.Join(own, "resolv.conf")
	for _, f := range []string{ownHosts, ownRC} {
		if err := os.WriteFile(f, []byte("mine\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	data = specWith(t, ann, map[string]string{"/etc/hosts": ownHosts, "/etc/resolv.conf": ownRC, "/run/.containerenv": filepath.Join(dir, ".containerenv")})
	if data, err = hooks.PrepareSpec(s.Env, data); err != nil {
		t.Fatal(err)
	}
	if got := resolvMounts(t, data); len(got) != 1 || got[0] != ownRC {
		t.Errorf("resolv.conf mounts with the user's own: %v", got)
	}
	for _, f := range []string{ownHosts, ownRC} {
		if got, _ := os.ReadFile(f); string(got) != "mine\n" {
			t.Errorf("the user's %s became %q", f, got)
		}
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Errorf("files written with the user's own mounted: %v", entries)
	}

	bad := annotations("pb", "g7", "172.18.0.300")
	docker := t.TempDir()
	for name, in := range map[string][]byte{
		"no pontoon":  specWith(t, nil, map[string]string{"/etc/hosts": hosts, "/run/.containerenv": filepath.Join(dir, ".containerenv")}),
		"bad request": specWith(t, bad, map[string]string{"/etc/hosts": hosts, "/run/.containerenv": filepath.Join(dir, ".containerenv")}),
		"no engine files": specWith(t, ann, map[string]string{
			"/etc/hosts": filepath.Join(docker, "pontoon-hosts"), "/etc/hostname": filepath.Join(docker, "hostname")}),
		"user's hosts only": specWith(t, ann, map[string]string{"/etc/hosts": hosts}),
	} {
		before, _ := os.ReadFile(hosts)
		out, err := hooks.PrepareSpec(s.Env, in)
		if err != nil || !bytes.Equal(out, in) {
			t.Errorf("%s: changed (%v):\n%s", name, err, out)
		}
		if after, _ := os.ReadFile(hosts); !bytes.Equal(after, before) {
			t.Errorf("%s: hosts became:\n%s", name, after)
		}
	}
	if entries, _ := os.ReadDir(docker); len(entries) != 0 {
		t.Errorf("files written into a directory of no engine: %v", entries)
	}
	if _, err := hooks.PrepareSpec(s.Env, []byte(`{"annotations": {"pontoon.bridge": `)); err == nil || !strings.Contains(err.Error(), "configuration") {
		t.Errorf("a broken configuration: %v", err)
	}
}
