// Package hooktest helps tests run real container engines with pontoon's hook: it lets a
// test binary act as the hook, builds a tiny busybox root filesystem, and gives each test a
// hermetic chain (netsetup/sandbox) that is removed when the test ends.
//
// A test package that hands its own binary to an engine as the hook calls Dispatch first
// thing in TestMain:
//
//	func TestMain(m *testing.M) { hooktest.Dispatch(); os.Exit(m.Run()) }
//
// The engine then runs "<test binary> hook create-runtime --state-dir ...", exactly the
// arguments it would give the pontoon binary.
package hooktest

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pontoon-dev/pontoon/hooks"
	"github.com/pontoon-dev/pontoon/internal/testkit"
	"github.com/pontoon-dev/pontoon/netsetup"
	"github.com/pontoon-dev/pontoon/netsetup/sandbox"
)

// Dispatch runs the hook and exits when the process was started as "BINARY hook ...", and
// runs Docker's runtime when it was started under the name hooks.RuntimeName; otherwise it
// returns at once.
func Dispatch() {
	if hooks.IsRuntime(os.Args[0]) {
		os.Exit(hooks.RuntimeMain(os.Args[1:], os.Environ(), os.Stderr))
	}
	if len(os.Args) > 1 && os.Args[1] == "hook" {
		os.Exit(hooks.Main(os.Args[2:], os.Stdin, os.Stderr))
	}
}

// NeedRoot skips the test unless it runs as root.
func NeedRoot(t testing.TB) {
	t.Helper()
	testkit.NeedRoot(t, "creates network namespaces and runs containers")
}

// NeedCommand returns the path of an engine binary, or skips the test naming the Debian
// package that provides it.
func NeedCommand(t testing.TB, name, pkg string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		t.Skipf("%s is not installed (Debian package %s)", name, pkg)
	}
	return p
}

// Chain returns a sandbox with its gateway up; everything in it is removed when the test
// ends, also on failure.
func Chain(t testing.TB) *sandbox.Sandbox { return ChainIn(t, "") }

// ChainIn is Chain with the sandbox under dir (a fresh temporary directory when empty).
func ChainIn(t testing.TB, dir string) *sandbox.Sandbox {
	t.Helper()
	NeedRoot(t)
	s := sandbox.ForTest(t, dir)
	if _, err := netsetup.GatewayUp(s.Env, netsetup.GatewayOptions{}); err != nil {
		t.Fatal(err)
	}
	return s
}

// Applets are the busybox commands Rootfs links into bin/.
var Applets = []string{"sh", "cat", "echo", "sleep", "ip", "ping", "nc", "wget", "httpd", "hostname", "true", "false", "ls", "mkdir", "grep", "kill", "ps", "timeout", "seq"}

// Rootfs builds a root filesystem holding only a static busybox (Debian package
// busybox-static) and its applet links under dir/rootfs, and returns its path.
func Rootfs(t testing.TB, dir string) string {
	t.Helper()
	bb := "/bin/busybox"
	if err := staticBusybox(bb); err != nil {
		t.Skipf("%v (install the Debian package busybox-static)", err)
	}
	root := filepath.Join(dir, "rootfs")
	for _, d := range []string{"bin", "etc", "tmp", "proc", "sys", "dev", "root"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	data, err := os.ReadFile(bb)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "bin", "busybox"), data, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, a := range Applets {
		if err := os.Symlink("busybox", filepath.Join(root, "bin", a)); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

// staticBusybox checks that path is a statically linked busybox: a dynamic one cannot run
// in a root filesystem without its libraries.
func staticBusybox(path string) error {
	out, err := exec.Command("ldd", path).CombinedOutput()
	if _, statErr := os.Stat(path); statErr != nil {
		return fmt.Errorf("%s not found", path)
	}
	if err == nil && !strings.Contains(string(out), "not a dynamic executable") {
		return fmt.Errorf("%s is dynamically linked", path)
	}
	return nil
}

// Attached returns "bridge/guest" for every guest attached anywhere in env.
func Attached(env netsetup.Env) ([]string, error) {
	bridges, err := netsetup.Bridges(env)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, b := range bridges {
		for _, g := range b.Guests {
			out = append(out, b.Name+"/"+g.Name)
		}
	}
	return out, nil
}

// NoBridges reports an error naming every bridge state file and pinned bridge or guest
// namespace left in env.
func NoBridges(env netsetup.Env) error {
	var left []string
	for _, dir := range []string{filepath.Join(env.StateDir, "bridges"), env.NetnsDir} {
		ents, _ := os.ReadDir(dir)
		for _, e := range ents {
			if strings.HasPrefix(e.Name(), "pontoon-gw") || e.Name() == "lock" {
				continue
			}
			left = append(left, filepath.Join(dir, e.Name()))
		}
	}
	if len(left) > 0 {
		return errors.New("left behind: " + strings.Join(left, ", "))
	}
	return nil
}
