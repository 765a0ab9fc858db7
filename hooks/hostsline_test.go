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
