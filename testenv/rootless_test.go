package testenv_test

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/pontoon-dev/pontoon/internal/testkit"
	"github.com/pontoon-dev/pontoon/internal/userns"
	"github.com/pontoon-dev/pontoon/testenv"
)

// rootlessAccount is the unprivileged account the rootless tests run as (make test-rootless
// uses the same); PONTOON_TEST_USER names another.
func rootlessAccount() string {
	if u := os.Getenv("PONTOON_TEST_USER"); u != "" {
		return u
	}
	return "pontoon-test"
}

// scenarioEnv tells TestRootlessScenario that TestRootlessAsAccount started it, and which
// uid it must be mapped from.
const scenarioEnv = "PONTOON_ROOTLESS_SCENARIO_UID"

// TestRootlessAsAccount runs this test binary as an unprivileged account (made when missing)
// and checks that TestRootlessScenario passes there -- in a user namespace, as that account
// -- and that with testenv's user namespace turned off it skips, saying why.
func TestRootlessAsAccount(t *testing.T) {
	testkit.NeedHostRoot(t, "runs this binary as an unprivileged account")
	if err := userns.Available(); err != nil {
		t.Skip(err)
	}
	name := rootlessAccount()
	u, err := user.Lookup(name)
	if err != nil {
		out, err := exec.Command("useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", name).CombinedOutput()
		if err != nil {
			t.Skipf("needs the host's root and an account %s: useradd: %v: %s", name, err, out)
		}
		if u, err = user.Lookup(name); err != nil {
			t.Fatal(err)
		}
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	// The account needs a copy of the binary it can read, and a temporary directory of its
	// own; go test's are root's alone.
	dir, err := os.MkdirTemp("", "pontoon-rootless-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	tmp := filepath.Join(dir, "tmp")
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(tmp, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(tmp, uid, gid); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "testenv.test")
	copyFile(t, "/proc/self/exe", bin)

	run := func(extraEnv ...string) string {
		cmd := exec.Command("runuser", "-u", name, "--", bin, "-test.run=^TestRootlessScenario$", "-test.v", "-test.count=1")
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "TMPDIR="+tmp, scenarioEnv+"="+u.Uid)
		cmd.Env = append(cmd.Env, extraEnv...)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("the scenario as %s: %v; output:\n%s", name, err, out)
		}
		return string(out)
	}
	out := run()
	if !strings.Contains(out, "--- PASS: TestRootlessScenario") || strings.Contains(out, "--- SKIP") {
		t.Fatalf("the scenario did not pass as %s; output:\n%s", name, out)
	}
	out = run(testenv.RootlessEnv + "=0")
	if !strings.Contains(out, "--- SKIP: TestRootlessScenario") || !strings.Contains(out, testenv.RootlessEnv+"=0") {
		t.Fatalf("with %s=0 the scenario should skip, saying why; output:\n%s", testenv.RootlessEnv, out)
	}
}

func copyFile(t *testing.T, src, dst string) {
	t.Helper()
	in, err := os.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o755)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(out, in); err != nil {
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestRootlessScenario is what TestRootlessAsAccount runs as the unprivileged account: three
// guests, a process in one of them, a partition and a heal. Started by TestRootlessAsAccount,
// it also checks that it runs in a user namespace whose root is that account.
func TestRootlessScenario(t *testing.T) {
	env := testenv.New(t)
	if uid := os.Getenv(scenarioEnv); uid != "" {
		b, err := os.ReadFile("/proc/self/uid_map")
		if err != nil {
			t.Fatal(err)
		}
		if f := strings.Fields(string(b)); !userns.Inside() || len(f) != 3 || f[0] != "0" || f[1] != uid {
			t.Fatalf("not in a user namespace of uid %s: Inside %v, uid_map %q", uid, userns.Inside(), b)
		}
	}
	ctx := context.Background()
	for i, n := range []string{"n1", "n2", "n3"} {
		env.Guest(n, fmt.Sprintf("172.18.0.%d", i+1))
	}
	out, err := env.Lookup("n1").Run(ctx, "sh", "-c", "hostname; getent ahostsv4 n3")
	if err != nil || !strings.HasPrefix(out, "n1\n172.18.0.3 ") {
		t.Fatalf("n1's hostname and its view of n3: %q (%v)", out, err)
	}
	env.MustReach("n1", "n2")
	env.Isolate("n1")
	env.MustNotReach("n1", "n2")
	env.MustReach("n2", "n3")
	env.Heal()
	env.MustReach("n1", "n2")
}

// BenchmarkEnv times what a test pays for its network: New, three guests, a partition and a
// heal. The teardown of each Env is left to the benchmark's end, outside the timing. Run it
// as root and as a normal user (in a user namespace) to see what rootless costs.
func BenchmarkEnv(b *testing.B) {
	for b.Loop() {
		env := testenv.New(b, testenv.WithIPv4Only())
		for i, n := range []string{"n1", "n2", "n3"} {
			env.Guest(n, fmt.Sprintf("172.18.0.%d", i+1))
		}
		env.Isolate("n1")
		env.Heal()
	}
}

// In a user namespace, containerd (whose daemon is the host's) is refused with the reason;
// StartContainer skips with it.
func TestContainerdRefusedInUserNamespace(t *testing.T) {
	if !userns.Inside() {
		t.Skip("runs in a user namespace only (go test as a normal user, make test-rootless)")
	}
	env := testenv.New(t)
	env.Guest("n1", "172.18.0.1")
	_, err := env.Lookup("n1").RunContainer(context.Background(), testenv.ContainerOptions{Argv: []string{"true"}, Runtime: "containerd"})
	if err == nil || !strings.Contains(err.Error(), "needs the host's root: containerd") {
		t.Fatalf("containerd in a user namespace: got %v, want a refusal saying it needs the host's root", err)
	}
}
