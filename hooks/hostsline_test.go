package hooks

import (
	"os"
	"path/filepath"
	"testing"
)

// TestAddHostsLineOnce: each of the guest's lines goes into the engine's hosts file once, also
// when an earlier start wrote some of them (the IPv4 line, before the chain had IPv6).
func TestAddHostsLineOnce(t *testing.T) {
	path := filepath.Join(t.TempDir(), "hosts")
	if err := os.WriteFile(path, []byte("127.0.0.1\tlocalhost\n172.18.0.4\tbox web\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	lines := "172.18.0.4\tbox web\nfd70:6f6e::4\tbox web\n"
	for range 2 {
		if err := addHostsLine(path, lines); err != nil {
			t.Fatal(err)
		}
	}
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if want := "127.0.0.1\tlocalhost\n172.18.0.4\tbox web\nfd70:6f6e::4\tbox web\n"; string(got) != want {
		t.Errorf("hosts file %q; want %q", got, want)
	}
}

// TestAddHostsLineTakesOwnNamesOffLoopback reproduces podman's hosts file for a container
// without a network: its name on 127.0.0.1, ahead of the guest's line, made `hostname -i`
// answer 127.0.0.1. The guest's names leave loopback lines; localhost and others stay.
func TestAddHostsLineTakesOwnNamesOffLoopback(t *testing.T) {
	path := filepath.Join(t.TempDir(), "hosts")
	engine := "# podman\n127.0.0.1\tlocalhost localhost.localdomain\n::1\tlocalhost ip6-localhost\n" +
		"127.0.0.1\t3f2a9c pa\n::1\tpa other\n10.1.2.3\textra.example\n"
	if err := os.WriteFile(path, []byte(engine), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := addHostsLine(path, "172.18.0.60\t3f2a9c pa\n"); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	want := "# podman\n127.0.0.1\tlocalhost localhost.localdomain\n::1\tlocalhost ip6-localhost\n" +
		"::1\tother\n10.1.2.3\textra.example\n172.18.0.60\t3f2a9c pa\n"
	if string(got) != want {
		t.Errorf("hosts file\n%s\nwant\n%s", got, want)
	}
}
