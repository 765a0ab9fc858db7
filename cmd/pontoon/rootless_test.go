package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pontoon-dev/pontoon/internal/testkit"
	"github.com/pontoon-dev/pontoon/internal/userns"
	"github.com/pontoon-dev/pontoon/netsetup"
	"github.com/pontoon-dev/pontoon/netsetup/sandbox"
)

// The accounts the rootless tests run pontoon as: ordinary users, made when missing.
const (
	devUser  = "pontoon-dev"
	devUser2 = "pontoon-dev2"
)

// account is an unprivileged user that runs the test's pontoon binary.
type account struct {
	t        *testing.T
	name     string
	uid, gid int
}

// rootlessAccount returns the account name, creating it when missing, and makes sure its
// space is stopped and its files removed when the test ends. It skips when the account's
// processes cannot make user namespaces.
func rootlessAccount(t *testing.T, name string) *account {
	t.Helper()
	testkit.NeedHostRoot(t, "creates an unprivileged account and runs pontoon as it")
	u, err := user.Lookup(name)
	if err != nil {
		if out, err := exec.Command("useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", name).CombinedOutput(); err != nil {
			// A concurrent test may have made it first.
			if u, err = user.Lookup(name); err != nil {
				t.Fatalf("useradd %s: %v: %s", name, err, out)
			}
		}
		if u, err = user.Lookup(name); err != nil {
			t.Fatal(err)
		}
	}
	a := &account{t: t, name: name}
	a.uid, _ = strconv.Atoi(u.Uid)
	a.gid, _ = strconv.Atoi(u.Gid)
	t.Cleanup(a.stopSpace)
	if out, code := a.run("/", "space", "--json"); code != 0 {
		if strings.Contains(out, userns.ErrUnavailable.Error()) {
			t.Skipf("user %s cannot make user namespaces: %s", name, out)
		}
		t.Fatalf("pontoon space as %s: exit %d: %s", name, code, out)
	}
	return a
}

// command is the test's pontoon binary with args, run as the account in dir, with an
// environment of its own (nothing of the test process's PONTOON_ settings).
func (a *account) command(dir string, args ...string) *exec.Cmd {
	cmd := exec.Command(binary, args...)
	cmd.Dir = dir
	cmd.Env = []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "USER=" + a.name, "HOME=/nonexistent"}
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(a.uid), Gid: uint32(a.gid), Groups: []uint32{}}}
	return cmd
}

// run runs pontoon as the account and returns its combined output and exit status.
func (a *account) run(dir string, args ...string) (string, int) {
	a.t.Helper()
	return runCmd(a.t, a.command(dir, args...))
}

func (a *account) ok(dir string, args ...string) string {
	a.t.Helper()
	out, code := a.run(dir, args...)
	if code != 0 {
		a.t.Fatalf("pontoon %s as %s: exit %d\n%s", strings.Join(args, " "), a.name, code, out)
	}
	return out
}

func runCmd(t *testing.T, cmd *exec.Cmd) (string, int) {
	t.Helper()
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		t.Fatalf("%v: %v", cmd.Args, err)
	}
	return out.String(), cmd.ProcessState.ExitCode()
}

// space returns the account's running space.
func (a *account) space() userns.Space {
	a.t.Helper()
	var s struct {
		PID int    `json:"pid"`
		Dir string `json:"dir"`
	}
	if err := json.Unmarshal([]byte(a.ok("/", "space", "--json")), &s); err != nil {
		a.t.Fatal(err)
	}
	sp, ok, err := userns.Find(s.Dir)
	if err != nil || !ok {
		a.t.Fatalf("space of %s recorded in %s: %v, %v", a.name, s.Dir, ok, err)
	}
	return sp
}

// stopSpace collects what the account left and ends its space; the holder's exit takes
// every namespace in it along.
func (a *account) stopSpace() {
	dir := fmt.Sprintf("/tmp/pontoon-%d", a.uid)
	if _, err := os.Stat(fmt.Sprintf("/run/user/%d", a.uid)); err == nil {
		dir = fmt.Sprintf("/run/user/%d/pontoon", a.uid)
	}
	s, ok, _ := userns.Find(dir)
	if ok {
		runCmd(a.t, a.command("/", "gc"))
		runCmd(a.t, a.command("/", "space", "--stop"))
		waitFor(a.t, 10*time.Second, "the space holder to exit", func() bool { return !s.Alive() })
	}
	os.RemoveAll(dir)
}

func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// projectDir writes toml as the pontoon.toml of a directory every account can read.
func projectDir(t *testing.T, toml string) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "pontoon-rootless")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "pontoon.toml"), []byte(toml), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

// hostTables lists pontoon's nftables tables on the host. (Not the whole ruleset: other
// tests and Docker change the host's rules while these run.)
func hostTables(t *testing.T) []string {
	t.Helper()
	out, err := exec.Command("nft", "list", "tables").CombinedOutput()
	if err != nil {
		t.Fatalf("nft list tables: %v: %s", err, out)
	}
	var own []string
	for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if f := strings.Fields(l); len(f) == 3 && strings.HasPrefix(f[2], "pontoon") {
			own = append(own, l)
		}
	}
	return own
}

// added returns what after has and before has not.
func added(before, after []string) []string {
	var out []string
	for _, a := range after {
		if !slices.Contains(before, a) {
			out = append(out, a)
		}
	}
	return out
}

// waitUntil polls until `pontoon ARGS` as the account prints want.
func (a *account) waitUntil(dir, want string, args ...string) string {
	a.t.Helper()
	var out string
	waitFor(a.t, 30*time.Second, fmt.Sprintf("`pontoon %s` as %s to print %q", strings.Join(args, " "), a.name, want), func() bool {
		out, _ = a.run(dir, args...)
		return strings.Contains(out, want)
	})
	return out
}

// bridgeOf returns the bridge of the account's run of command, once it has guests guests.
func (a *account) bridgeOf(command string, guests int) string {
	a.t.Helper()
	var name string
	waitFor(a.t, 30*time.Second, fmt.Sprintf("a bridge of %s's run of %s with %d guests", a.name, command, guests), func() bool {
		out, code := a.run("/", "bridge", "list", "--json")
		if code != 0 {
			return false
		}
		var bs []netsetup.BridgeState
		if json.Unmarshal([]byte(out), &bs) != nil {
			return false
		}
		for _, b := range bs {
			if strings.HasPrefix(b.Name, command+"-") && b.Phase == netsetup.PhaseReady && len(b.Guests) == guests {
				name = b.Name
				return true
			}
		}
		return false
	})
	return name
}

// startRun starts `pontoon run command` as the account; the test's end kills it.
func (a *account) startRun(dir, command string) (*exec.Cmd, <-chan struct{}, *testkit.Buffer) {
	a.t.Helper()
	cmd := a.command(dir, "run", command)
	out := &testkit.Buffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		a.t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	a.t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			cmd.Process.Kill()
			<-done
		}
	})
	return cmd, done, out
}

const threeChildren = `
[commands.trio]
supervise = true
exit = "any"
[commands.trio.children.a]
run.shell = "ping -c1 -W2 b && ping -c1 -W2 c && echo A-REACHES-B-AND-C"
ip = "172.18.0.1"
[commands.trio.children.b]
run = ["sleep", "60"]
ip = "172.18.0.2"
[commands.trio.children.c]
run = ["sleep", "60"]
ip = "172.18.0.3"

[commands.chaos]
supervise = true
exit = "any"
[commands.chaos.children.a]
run = ["sleep", "60"]
ip = "172.18.0.1"
[commands.chaos.children.b]
run = ["sleep", "60"]
ip = "172.18.0.2"
[commands.chaos.children.c]
run = ["sleep", "60"]
ip = "172.18.0.3"
[commands.chaos.children.driver]
bridge = true
run.shell = """
reach() { pontoon exec $PONTOON_BRIDGE b -- ping -c1 -W1 $1 >/dev/null 2>&1; }
n=0; until reach a && reach c; do n=$((n+1)); [ $n -lt 100 ] || exit 3; sleep 0.1; done
echo BEFORE-OK
pontoon partition isolate a || exit 4
reach a && echo B-REACHES-A || echo B-CUT-FROM-A
reach c && echo B-REACHES-C || echo B-CUT-FROM-C
"""

[commands.idle]
supervise = true
[commands.idle.children.a]
run = ["sleep", "600"]
ip = "172.18.0.1"
[commands.idle.children.b]
run = ["sleep", "600"]
ip = "172.18.0.2"
[commands.idle.children.c]
run = ["sleep", "600"]
ip = "172.18.0.3"
`

// TestRootlessRun runs a three-child project and a partition from a bridge child as an
// ordinary user: the children reach each other by name in rootless runc containers, the
// partition cuts exactly the isolated child off, and the host's firewall is untouched.
func TestRootlessRun(t *testing.T) {
	a := rootlessAccount(t, devUser)
	dir := projectDir(t, threeChildren)
	before := hostTables(t)
	netnsBefore := dirNames(t, "/run/netns")

	out, code := a.run(dir, "run", "trio")
	if code != 0 || !strings.Contains(out, "A-REACHES-B-AND-C") {
		t.Fatalf("run trio as %s: exit %d\n%s", a.name, code, out)
	}
	// crun runs rootless as well; containerd's daemon is root's, and is refused plainly.
	if out, code := a.run(dir, "run", "trio", "--runtime", "crun"); code != 0 || !strings.Contains(out, "A-REACHES-B-AND-C") {
		t.Errorf("run trio --runtime crun as %s: exit %d\n%s", a.name, code, out)
	}
	if out, code := a.run(dir, "run", "trio", "--runtime", "containerd"); code == 0 || !strings.Contains(out, "use runc or crun") {
		t.Errorf("run trio --runtime containerd as %s: exit %d, %q; want a refusal naming runc or crun", a.name, code, out)
	}
	out, code = a.run(dir, "run", "chaos")
	for _, want := range []string{"BEFORE-OK", "B-CUT-FROM-A", "B-REACHES-C"} {
		if code != 0 || !strings.Contains(out, want) {
			t.Errorf("run chaos as %s: exit %d, want %s in\n%s", a.name, code, want, out)
		}
	}
	if a := added(before, hostTables(t)); len(a) > 0 {
		t.Errorf("a user's runs added tables to the host: %v", a)
	}
	for _, n := range added(netnsBefore, dirNames(t, "/run/netns")) {
		if strings.HasPrefix(n, "pontoon-br-trio-") || strings.HasPrefix(n, "pontoon-br-chaos-") {
			t.Errorf("a user's run pinned %s in the host's /run/netns", n)
		}
	}
}

// spaceSnapshot lists what a space holds: its pinned namespaces, its state files and the
// user's processes. The host's root reads the space's private tmpfs through the holder.
func spaceSnapshot(t *testing.T, a *account, s userns.Space) []string {
	t.Helper()
	root := filepath.Join(fmt.Sprintf("/proc/%d/root", s.PID), s.Run())
	var out []string
	filepath.Walk(root, func(p string, info os.FileInfo, err error) error {
		// The slot cursor stays by design: the next bridge takes the next slot.
		if err == nil && !info.IsDir() && info.Name() != "lock" && info.Name() != "next-slot" {
			out = append(out, "file "+strings.TrimPrefix(p, root))
		}
		return nil
	})
	procs, _ := exec.Command("ps", "-o", "pid=,args=", "-u", strconv.Itoa(a.uid)).Output()
	for _, l := range strings.Split(strings.TrimSpace(string(procs)), "\n") {
		// Exited, reaped whenever init gets to it: nothing is left of a zombie but its pid.
		if l != "" && !strings.HasSuffix(l, "<defunct>") {
			out = append(out, "process "+strings.TrimSpace(l))
		}
	}
	return out
}

// TestRootlessKillAndGC kills a user's run with SIGKILL while its containers run; the
// user's own `pontoon gc` then leaves the space as it was before the run.
func TestRootlessKillAndGC(t *testing.T) {
	a := rootlessAccount(t, devUser)
	dir := projectDir(t, threeChildren)
	a.ok(dir, "gateway", "up")
	s := a.space()
	before := spaceSnapshot(t, a, s)

	run, done, _ := a.startRun(dir, "idle")
	bridge := a.bridgeOf("idle", 3)
	if during := spaceSnapshot(t, a, s); slices.Equal(during, before) {
		t.Fatalf("the run left no trace in the snapshot: %v", during)
	}
	if err := run.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	<-done
	out := a.ok("/", "gc")
	if !strings.Contains(out, "removed bridge "+bridge) {
		t.Errorf("gc as %s printed %q; want it to remove bridge %s", a.name, out, bridge)
	}
	var after []string
	deadline := time.Now().Add(10 * time.Second)
	for after = spaceSnapshot(t, a, s); !slices.Equal(after, before) && time.Now().Before(deadline); after = spaceSnapshot(t, a, s) {
		time.Sleep(20 * time.Millisecond)
	}
	if !slices.Equal(after, before) {
		t.Errorf("after kill -9 and gc the space differs:\nbefore:\n%s\nafter:\n%s", strings.Join(before, "\n"), strings.Join(after, "\n"))
	}
}

// TestRootlessRefusals: one user cannot see, partition, exec into or join another user's
// space, nor reach root's bridges; only the host's root links a user's space.
func TestRootlessRefusals(t *testing.T) {
	a := rootlessAccount(t, devUser)
	b := rootlessAccount(t, devUser2)
	dir := projectDir(t, threeChildren)
	hostBefore := hostTables(t)
	a.startRun(dir, "idle")
	bridge := a.bridgeOf("idle", 3)

	if out := b.ok("/", "bridge", "list"); strings.Contains(out, bridge) {
		t.Errorf("user %s sees user %s's bridge %s:\n%s", b.name, a.name, bridge, out)
	}
	for _, args := range [][]string{
		{"partition", "--bridge", bridge, "isolate", "a"},
		{"exec", bridge, "a", "--", "true"},
		{"bridge", "show", bridge},
	} {
		if out, code := b.run("/", args...); code == 0 || !strings.Contains(out, "no such bridge") {
			t.Errorf("pontoon %s as %s: exit %d, %q; want a refusal naming no such bridge", strings.Join(args, " "), b.name, code, out)
		}
	}
	// Joining A's namespaces directly needs CAP_SYS_ADMIN over A's user namespace.
	sa := a.space()
	join, err := sa.JoinArgv("/bin/true")
	if err != nil {
		t.Fatal(err)
	}
	cmd := b.command("/")
	cmd.Path, cmd.Args = join[0], join
	// Refused at the open of A's namespace files (ptrace access), else at setns.
	if out, code := runCmd(t, cmd); code == 0 || !strings.Contains(out, "Permission denied") && !strings.Contains(out, "Operation not permitted") {
		t.Errorf("user %s joined user %s's space: exit %d, %q", b.name, a.name, code, out)
	}
	// A's chain state is A's alone.
	if out, code := b.run("/", "--state-dir", filepath.Join(sa.Run(), "state"), "bridge", "list"); code == 0 || strings.Contains(out, bridge) {
		t.Errorf("user %s read user %s's state: exit %d, %q", b.name, a.name, code, out)
	}
	// Deleting what does not exist succeeds (as any delete of what is gone) and leaves A's
	// bridge alone.
	b.ok("/", "guest", "del", bridge, "a")
	b.ok("/", "bridge", "destroy", bridge)
	if out := a.ok("/", "bridge", "list", "-v"); !strings.Contains(out, bridge) || !strings.Contains(out, "172.18.0.1") || !strings.Contains(out, "172.18.0.3") {
		t.Errorf("A's bridge changed:\n%s", out)
	}
	if out := a.ok("/", "partition", "--bridge", bridge, "status"); strings.Contains(out, "blocked pair") {
		t.Errorf("A's bridge was partitioned: %s", out)
	}

	// Root's chain: state and namespaces under directories only root can enter.
	c := newCLI(t)
	c.ok("gateway", "up")
	c.ok("bridge", "create", "rb")
	c.ok("guest", "add", "rb", "g", "--ip", "172.18.0.9")
	rootEnv := c.sb.Env
	for _, args := range [][]string{
		{"--state-dir", rootEnv.StateDir, "--netns-dir", rootEnv.NetnsDir, "bridge", "list"},
		{"--state-dir", rootEnv.StateDir, "--netns-dir", rootEnv.NetnsDir, "partition", "--bridge", "rb", "isolate", "g"},
		{"--state-dir", rootEnv.StateDir, "--netns-dir", rootEnv.NetnsDir, "bridge", "destroy", "rb"},
	} {
		if out, code := a.run("/", args...); code == 0 {
			t.Errorf("pontoon %s as %s on root's chain: exit 0, %q", strings.Join(args, " "), a.name, out)
		}
	}
	nsenter := b.command("/")
	nsenter.Path, nsenter.Args = "/usr/bin/nsenter", []string{"nsenter", "--net=" + rootEnv.BridgeNetns("rb"), "true"}
	if out, code := runCmd(t, nsenter); code == 0 {
		t.Errorf("user %s entered root's bridge namespace: %q", b.name, out)
	}
	if out := c.ok("bridge", "show", "rb"); !strings.Contains(out, "172.18.0.9") {
		t.Errorf("root's bridge changed: %s", out)
	}
	if out := c.ok("partition", "--bridge", "rb", "status"); strings.Contains(out, "blocked pair") {
		t.Errorf("root's bridge was partitioned: %s", out)
	}

	// Linking a space to the host is root's.
	for _, args := range [][]string{{"gateway", "up", "--user", b.name}, {"gateway", "down", "--user", a.name}} {
		if out, code := a.run("/", args...); code != 1 || !strings.Contains(out, "needs root") {
			t.Errorf("pontoon %s as %s: exit %d, %q; want exit 1 saying it needs root", strings.Join(args, " "), a.name, code, out)
		}
	}
	// Nor can a user point their chain at the host's network namespace.
	elsewhere := projectDir(t, "")
	if err := os.Chown(elsewhere, a.uid, a.gid); err != nil {
		t.Fatal(err)
	}
	if out, code := a.run("/", "--host-netns", "/proc/1/ns/net", "--state-dir", elsewhere, "--netns-dir", elsewhere, "gateway", "up"); code == 0 || !strings.Contains(out, "/proc/1/ns/net") {
		t.Errorf("gateway up as %s with the host's namespace as its host: exit %d, %q; want a refusal naming /proc/1/ns/net", a.name, code, out)
	}
	if a := added(hostBefore, hostTables(t)); len(a) > 0 {
		t.Errorf("users added tables to the host: %v", a)
	}
}

// TestRootlessUserLink links a user's space to a sandboxed host with `gateway up --user`:
// the user's guest reaches the sandbox's upstream through the link, the host reaches the
// user's port forward at the space's link address, and `gateway down --user` removes the
// link, its rules and the space.
func TestRootlessUserLink(t *testing.T) {
	a := rootlessAccount(t, devUser)
	c := newCLI(t)
	// The host drops forwarded traffic by policy, as Docker's FORWARD chain does.
	if out, err := exec.Command("nsenter", "--net="+c.sb.Host, "nft", "add table ip filter; add chain ip filter FORWARD { type filter hook forward priority 0; policy drop; }").CombinedOutput(); err != nil {
		t.Fatalf("add a drop chain to the host: %v: %s", err, out)
	}
	out := c.ok("gateway", "up", "--user", a.name)
	var l netsetup.UserLink
	links, err := netsetup.UserLinks(c.sb.Env)
	if err != nil || len(links) != 1 {
		t.Fatalf("user links after up: %v, %v (up printed %q)", links, err, out)
	}
	l = links[0]
	if out := c.ok("gateway", "up", "--user", a.name); !strings.Contains(out, "already linked") {
		t.Errorf("second up printed %q", out)
	}
	dir := projectDir(t, fmt.Sprintf(`
[commands.web]
supervise = true
[commands.web.children.web]
run.shell = "while true; do echo hello-from-web | busybox nc -l -p 7000; done"
ip = "172.18.0.5"
ports = ["7001:7000"]
[commands.web.children.out]
run.shell = "ping -c1 -W2 %s && echo OUTSIDE-OK; sleep 600"
ip = "172.18.0.6"
`, sandbox.UpstreamAddr.Addr()))
	_, _, runOut := a.startRun(dir, "web")
	var got string
	waitFor(t, 30*time.Second, "the port forward to answer from the host", func() bool {
		cmd := exec.Command("nsenter", "--net="+c.sb.Host, "busybox", "nc", "-w", "1", l.SpaceAddr().Addr().String(), "7001")
		o, _ := cmd.CombinedOutput()
		got = string(o)
		return strings.Contains(got, "hello-from-web")
	})
	waitFor(t, 30*time.Second, "the guest to reach the upstream through the link", func() bool { return strings.Contains(runOut.String(), "OUTSIDE-OK") })

	// A second user's link: the host reaches it, the first user's guest does not.
	b := rootlessAccount(t, devUser2)
	c.ok("gateway", "up", "--user", b.name)
	var lb netsetup.UserLink
	if links, err := netsetup.UserLinks(c.sb.Env); err == nil {
		for _, x := range links {
			if x.User == b.name {
				lb = x
			}
		}
	}
	if !lb.Link.IsValid() {
		t.Fatalf("no link of %s after up", b.name)
	}
	bAddr := lb.SpaceAddr().Addr().String()
	if out, err := exec.Command("nsenter", "--net="+c.sb.Host, "ping", "-c1", "-W2", bAddr).CombinedOutput(); err != nil {
		t.Fatalf("the host cannot reach %s's link at %s: %v\n%s", b.name, bAddr, err, out)
	}
	bridge := a.bridgeOf("web", 2)
	if out, code := a.run(dir, "exec", bridge, "out", "--", "ping", "-c1", "-W1", sandbox.UpstreamAddr.Addr().String()); code != 0 {
		t.Fatalf("%s's guest cannot reach the upstream: exit %d\n%s", a.name, code, out)
	}
	if out, code := a.run(dir, "exec", bridge, "out", "--", "ping", "-c1", "-W1", bAddr); code == 0 {
		t.Errorf("%s's guest reaches %s's link at %s:\n%s", a.name, b.name, bAddr, out)
	}
	c.ok("gateway", "down", "--user", b.name, "--force")

	// Without --force, a's bridge refuses the down, which leaves a's link: its guest still
	// reaches out.
	c.fails(1, "nothing was changed", "gateway", "down", "--user", a.name)
	if out, code := a.run(dir, "exec", bridge, "out", "--", "ping", "-c1", "-W1", sandbox.UpstreamAddr.Addr().String()); code != 0 {
		t.Errorf("%s's guest cannot reach the upstream after a refused down: exit %d\n%s", a.name, code, out)
	}
	if out := c.ok("gateway", "down", "--user", a.name, "--force"); !strings.Contains(out, "removed user "+a.name) {
		t.Errorf("gateway down --user --force says: %q", out)
	}
	if links, err := netsetup.UserLinks(c.sb.Env); err != nil || len(links) != 0 {
		t.Errorf("user links after down: %v, %v", links, err)
	}
	if out, err := exec.Command("nsenter", "--net="+c.sb.Host, "ip", "-br", "link").CombinedOutput(); err != nil || strings.Contains(string(out), l.HostIf()) {
		t.Errorf("host links after down: %v\n%s", err, out)
	}
	if out, _ := exec.Command("nsenter", "--net="+c.sb.Host, "nft", "list", "ruleset").CombinedOutput(); strings.Contains(string(out), "pontoon-users") {
		t.Errorf("the user-link table is left after down:\n%s", out)
	}
	waitFor(t, 10*time.Second, "the space to end", func() bool { return !l.Space.Alive() })
}

// TestRootlessConcurrentStart: commands that find no space and start at once end up in one
// space (the start is serialised), and all of them see the same chain.
func TestRootlessConcurrentStart(t *testing.T) {
	a := rootlessAccount(t, devUser)
	a.stopSpace()
	const n = 6
	cmds := make([]*exec.Cmd, n)
	outs := make([]*testkit.Buffer, n)
	for i := range cmds {
		cmds[i] = a.command("/", "gateway", "up")
		outs[i] = &testkit.Buffer{}
		cmds[i].Stdout, cmds[i].Stderr = outs[i], outs[i]
		if err := cmds[i].Start(); err != nil {
			t.Fatal(err)
		}
	}
	started := 0
	for i, cmd := range cmds {
		if err := cmd.Wait(); err != nil {
			t.Errorf("gateway up #%d as %s: %v\n%s", i, a.name, err, outs[i])
		}
		started += strings.Count(outs[i].String(), "started your pontoon space")
	}
	if started != 1 {
		t.Errorf("%d commands started a space; want 1", started)
	}
	procs, _ := exec.Command("ps", "-o", "args=", "-u", strconv.Itoa(a.uid)).Output()
	if got := strings.Count(string(procs), "pontoon-space"); got != 1 {
		t.Errorf("%d space holders run for %s; want 1:\n%s", got, a.name, procs)
	}
}
