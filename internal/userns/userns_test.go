package userns

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func needUserns(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("-short: starts processes in new user namespaces")
	}
	if err := Available(); err != nil {
		t.Skip(err)
	}
}

func output(t *testing.T, spec Spec, name string, args ...string) string {
	t.Helper()
	cmd, err := Command(spec, name, args...)
	if err != nil {
		t.Fatal(err)
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %v: %v; output: %s", name, args, err, out)
	}
	return string(out)
}

// The caller's ids become 0, and the child's network namespace is new: only lo, and up.
func TestCommandMapsCallerToRoot(t *testing.T) {
	needUserns(t)
	got := output(t, Spec{}, "sh", "-c", "id -u; id -g; cat /proc/self/uid_map; ping -c1 -W2 127.0.0.1 >/dev/null && echo lo-up; cat /proc/net/dev | tail -n +3 | cut -d: -f1")
	f := strings.Fields(got)
	if len(f) < 5 || f[0] != "0" || f[1] != "0" || f[2] != "0" || f[3] != fmt.Sprint(os.Getuid()) || f[4] != "1" {
		t.Fatalf("want uid 0, gid 0 and the map \"0 %d 1\"; got %q", os.Getuid(), got)
	}
	if len(f) != 7 || f[5] != "lo-up" || f[6] != "lo" {
		t.Errorf("want a new network namespace with lo alone, up (127.0.0.1 answers); got %q", got)
	}
}

// Tmpfs covers a directory for the child alone; the hostname is the child's alone.
func TestCommandTmpfsAndHostname(t *testing.T) {
	needUserns(t)
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "outside"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	host, _ := os.Hostname()
	got := output(t, Spec{Tmpfs: []string{dir}, Hostname: "inner-" + host}, "sh", "-c", "ls -A "+dir+"; touch "+dir+"/inside; hostname")
	if strings.TrimSpace(got) != "inner-"+host {
		t.Errorf("want an empty covered directory and hostname inner-%s; got %q", host, got)
	}
	if _, err := os.Stat(filepath.Join(dir, "inside")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a file written under the tmpfs shows outside: %v", err)
	}
	if h, _ := os.Hostname(); h != host {
		t.Errorf("the caller's hostname changed from %q to %q", host, h)
	}
}

func TestCommandRefusesRelativeTmpfs(t *testing.T) {
	if _, err := Command(Spec{Tmpfs: []string{"run/netns"}}, "true"); err == nil || !strings.Contains(err.Error(), "Spec.Tmpfs") {
		t.Fatalf("want an error naming Spec.Tmpfs; got %v", err)
	}
}

// A re-executed binary runs its own main (here: the test below) inside, and Inside says so.
func TestReexecInside(t *testing.T) {
	if os.Getenv("USERNS_TEST_CHILD") == "1" {
		fmt.Printf("inside=%v euid=%d\n", Inside(), os.Geteuid())
		return
	}
	needUserns(t)
	if Inside() {
		t.Fatal("Inside is true in the test process itself")
	}
	cmd, err := Reexec(Spec{}, os.Args[0], "-test.run=^TestReexecInside$", "-test.v")
	if err != nil {
		t.Fatal(err)
	}
	cmd.Env = append(cmd.Env, "USERNS_TEST_CHILD=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("re-exec: %v; output: %s", err, out)
	}
	if !strings.Contains(string(out), "inside=true euid=0") {
		t.Fatalf("want the child inside as uid 0; output: %s", out)
	}
}

func TestUnavailableErrorIs(t *testing.T) {
	err := fmt.Errorf("testenv: %w", &UnavailableError{Setting: "user.max_user_namespaces=0", Fix: "raise it"})
	if !errors.Is(err, ErrUnavailable) {
		t.Fatal("errors.Is(err, ErrUnavailable) is false")
	}
	if want := "user namespaces are unavailable: user.max_user_namespaces=0; raise it"; !strings.HasSuffix(err.Error(), want) {
		t.Fatalf("got %q, want suffix %q", err, want)
	}
}

// With user.max_user_namespaces=0 (set inside a user namespace, where it limits that
// namespace alone) Available says so, and no trial child is started.
func TestAvailableNamesTheSetting(t *testing.T) {
	if os.Getenv("USERNS_TEST_LIMIT") == "1" {
		if err := os.WriteFile("/proc/sys/user/max_user_namespaces", []byte("0"), 0o644); err != nil {
			t.Fatal(err)
		}
		err := available()
		var ue *UnavailableError
		if !errors.As(err, &ue) || !errors.Is(err, ErrUnavailable) || ue.Setting != "user.max_user_namespaces=0" || !strings.Contains(ue.Fix, "sysctl") {
			t.Fatalf("Available with user.max_user_namespaces=0: %v", err)
		}
		return
	}
	needUserns(t)
	cmd, err := Reexec(Spec{}, os.Args[0], "-test.run=^TestAvailableNamesTheSetting$", "-test.v")
	if err != nil {
		t.Fatal(err)
	}
	cmd.Env = append(cmd.Env, "USERNS_TEST_LIMIT=1")
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "--- PASS: TestAvailableNamesTheSetting") {
		t.Fatalf("in a user namespace limited to none: %v; output: %s", err, out)
	}
}
