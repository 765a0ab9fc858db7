package main

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pontoon-dev/pontoon/internal/testkit"
	"github.com/pontoon-dev/pontoon/internal/userns"
	"github.com/pontoon-dev/pontoon/netsetup"
)

// holders returns the running (not zombie) space holders of uid, by pid, with their
// parent's pid.
func holders(uid int) map[int]int {
	out := map[int]int{}
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		st, err := os.Stat("/proc/" + e.Name())
		if err != nil || st.Sys().(*syscall.Stat_t).Uid != uint32(uid) {
			continue
		}
		cmdline, _ := os.ReadFile("/proc/" + e.Name() + "/cmdline")
		if !strings.HasPrefix(string(cmdline), "pontoon-space\x00") {
			continue
		}
		stat, _ := os.ReadFile("/proc/" + e.Name() + "/stat")
		f := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+1:]))
		if len(f) < 2 || f[0] == "Z" || f[0] == "X" {
			continue
		}
		ppid, _ := strconv.Atoi(f[1])
		out[pid] = ppid
	}
	return out
}

// TestRootlessKillDuringSpaceStart: the first command, killed (kill -9) while it starts the
// space, leaves no holder behind that no record names: every later command would start
// another, and nothing (gc, space --stop) would find the orphan.
func TestRootlessKillDuringSpaceStart(t *testing.T) {
	a := rootlessAccount(t, devUser)
	a.stopSpace()
	// Orphans of a failed run are ended here: nothing else would find them.
	t.Cleanup(func() {
		for pid := range holders(a.uid) {
			syscall.Kill(pid, syscall.SIGKILL)
		}
	})
	for i := range 5 {
		cmd := a.command("/", "bridge", "list")
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		// Killed as soon as its holder exists: before the holder is ready and recorded.
		deadline := time.Now().Add(10 * time.Second)
		for {
			found := false
			for _, ppid := range holders(a.uid) {
				found = found || ppid == cmd.Process.Pid
			}
			if found || time.Now().After(deadline) {
				break
			}
		}
		cmd.Process.Kill()
		cmd.Wait()
		dir := a.dir()
		waitFor(t, 10*time.Second, "only a recorded holder to run", func() bool {
			s, ok, _ := findSpace(dir)
			for pid := range holders(a.uid) {
				if !ok || pid != s {
					return false
				}
			}
			return true
		})
		// The next command works, in one space.
		a.ok("/", "bridge", "list")
		if got := len(holders(a.uid)); got != 1 {
			t.Fatalf("round %d: %d holders after the next command; want 1", i, got)
		}
		a.stopSpace()
	}
}

// dir is the account's pontoon directory.
func (a *account) dir() string {
	if _, err := os.Stat(fmt.Sprintf("/run/user/%d", a.uid)); err == nil {
		return fmt.Sprintf("/run/user/%d/pontoon", a.uid)
	}
	return fmt.Sprintf("/tmp/pontoon-%d", a.uid)
}

// findSpace returns the pid of the live holder recorded in dir.
func findSpace(dir string) (int, bool, error) {
	if _, err := os.Stat(filepath.Join(dir, "space.json")); err != nil {
		return 0, false, nil
	}
	s, ok, err := userns.Find(dir)
	return s.PID, ok, err
}

// TestRootlessUserLinkReadsAsUser: `gateway up --user` learns the user's gateway as the
// user. Read by the host's root through the holder's /proc/PID/root, a symlink the user put
// in their state resolves against the host's root, where it names a file only root may read
// (and which the user hid under a mount of their own, so that their commands still work).
func TestRootlessUserLinkReadsAsUser(t *testing.T) {
	a := rootlessAccount(t, devUser)
	c := newCLI(t)
	a.ok("/", "gateway", "up")
	secret, err := os.MkdirTemp("", "pontoon-root-only-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(secret) })
	if err := os.WriteFile(filepath.Join(secret, "gateway.json"), []byte(`{"plan":"10.55.0.0/16","phase":"ready","creator":{"pid":1,"start":1},"created":"2026-01-01T00:00:00Z"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	s := a.space()
	state := filepath.Join(s.Run(), "state")
	join, err := s.JoinArgv("/bin/sh", "-c", fmt.Sprintf("mount -t tmpfs tmpfs %[1]s && cp %[2]s/gateway.json %[1]s/ && ln -s %[1]s/gateway.json %[2]s/gw.new && mv -T %[2]s/gw.new %[2]s/gateway.json", secret, state))
	if err != nil {
		t.Fatal(err)
	}
	cmd := a.command("/")
	cmd.Path, cmd.Args = join[0], join
	if out, code := runCmd(t, cmd); code != 0 {
		t.Fatalf("plant the symlink as %s: exit %d: %s", a.name, code, out)
	}
	stdout, stderr, code := c.run("gateway", "up", "--user", a.name)
	out := stdout + stderr
	t.Cleanup(func() { c.run("gateway", "down", "--user", a.name, "--force") })
	rules, _ := exec.Command("nsenter", "--net="+s.Namespace("net"), "nft", "list", "ruleset").CombinedOutput()
	if strings.Contains(out, "10.55") || strings.Contains(string(rules), "10.55") {
		t.Errorf("root's file reached the user: up exit %d, %q; the space's ruleset:\n%s", code, out, rules)
	}
	if code == 0 && !strings.Contains(string(rules), "dnat to 172.18.255.2") {
		t.Errorf("up succeeded, but the space's DNAT is not to the user's gateway:\n%s", rules)
	}
}

// TestRootlessHostileStateDir: another user who made /tmp/pontoon-UID first (a symlink to a
// directory of theirs, or a directory of theirs open to all) neither gets the user's files
// nor keeps the user from pontoon: the user's commands, and root's `gateway up --user`, use
// a private directory of the user's instead, and the planted one stays as it was.
func TestRootlessHostileStateDir(t *testing.T) {
	a := rootlessAccount(t, devUser)
	b := rootlessAccount(t, devUser2)
	c := newCLI(t)
	a.stopSpace()
	planted := fmt.Sprintf("/tmp/pontoon-%d", a.uid)
	bDir, err := os.MkdirTemp("", "pontoon-planted-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(bDir); os.RemoveAll(planted) })
	for _, plant := range []struct {
		what string
		make func() error
	}{
		{"a symlink to a directory of another user", func() error {
			if err := os.Chown(bDir, b.uid, b.gid); err != nil {
				return err
			}
			if err := os.Symlink(bDir, planted); err != nil {
				return err
			}
			return os.Lchown(planted, b.uid, b.gid)
		}},
		{"a directory of another user, open to all", func() error {
			if err := os.Mkdir(planted, 0o777); err != nil {
				return err
			}
			if err := os.Chmod(planted, 0o777); err != nil {
				return err
			}
			return os.Chown(planted, b.uid, b.gid)
		}},
	} {
		if err := plant.make(); err != nil {
			t.Fatalf("plant %s: %v", plant.what, err)
		}
		var sp struct {
			PID int    `json:"pid"`
			Dir string `json:"dir"`
		}
		out, code := a.run("/", "space", "--json")
		if code != 0 || json.Unmarshal([]byte(out), &sp) != nil {
			t.Errorf("with %s at %s: pontoon space as %s: exit %d, %s", plant.what, planted, a.name, code, out)
		} else {
			if st, err := os.Lstat(sp.Dir); err != nil || !st.IsDir() || st.Mode().Perm() != 0o700 || st.Sys().(*syscall.Stat_t).Uid != uint32(a.uid) {
				t.Errorf("with %s: the space's directory %s: %v, %v; want %s's own, mode 0700", plant.what, sp.Dir, st.Mode(), err, a.name)
			}
			out := c.ok("gateway", "up", "--user", a.name)
			if !strings.Contains(out, "linked user "+a.name) {
				t.Errorf("with %s: gateway up --user printed %q", plant.what, out)
			}
			c.ok("gateway", "down", "--user", a.name, "--force")
			a.run("/", "space", "--stop")
			os.RemoveAll(sp.Dir)
		}
		if ents, _ := os.ReadDir(bDir); len(ents) != 0 {
			t.Errorf("with %s: files of %s appeared in %s's directory: %v", plant.what, a.name, b.name, ents)
		}
		if ents, _ := os.ReadDir(planted); len(ents) != 0 {
			t.Errorf("with %s: files of %s appeared in it: %v", plant.what, a.name, ents)
		}
		os.Remove(planted)
	}
}

// userProcs returns the running (not zombie) processes of uid, as "PID ARGS".
func userProcs(uid int) []string {
	var out []string
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		st, err := os.Stat("/proc/" + e.Name())
		if err != nil || st.Sys().(*syscall.Stat_t).Uid != uint32(uid) {
			continue
		}
		stat, _ := os.ReadFile("/proc/" + e.Name() + "/stat")
		if f := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+1:])); len(f) == 0 || f[0] == "Z" || f[0] == "X" {
			continue
		}
		cmdline, _ := os.ReadFile("/proc/" + e.Name() + "/cmdline")
		out = append(out, e.Name()+" "+strings.ReplaceAll(string(cmdline), "\x00", " "))
	}
	return out
}

// TestRootlessStopEndsEverything: `space --stop` (and so `gateway down --user`) ends the
// space with everything in it, as the README says: a run inside, its containers and its
// bridge's processes too, not the holder alone. Left running they would hold the old
// namespaces where no later command (gc included) can find them. The run here started the
// space itself, as a user's first `pontoon run` does.
func TestRootlessStopEndsEverything(t *testing.T) {
	a := rootlessAccount(t, devUser)
	a.stopSpace()
	dir := projectDir(t, threeChildren)
	_, done, _ := a.startRun(dir, "idle")
	a.bridgeOf("idle", 3)
	a.ok("/", "space", "--stop")
	var left []string
	waitFor(t, 15*time.Second, "every process of the space to end", func() bool {
		left = userProcs(a.uid)
		return len(left) == 0
	})
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Errorf("the run outlived its space; processes of %s: %v", a.name, left)
	}
	if out := a.ok("/", "bridge", "list"); !strings.Contains(out, "no bridges") {
		t.Errorf("bridge list in the next space: %q", out)
	}
}

// TestRootlessGCAfterKillUnreaped: a run killed with kill -9 is dead for gc at once, even
// while its parent has not yet waited for it (a shell busy elsewhere, or an init that
// reaps late): gc removes its bridge instead of keeping it -- and restarting its name
// server -- for a process that has exited.
func TestRootlessGCAfterKillUnreaped(t *testing.T) {
	a := rootlessAccount(t, devUser)
	dir := projectDir(t, threeChildren)
	a.ok(dir, "gateway", "up")
	cmd := a.command(dir, "run", "idle")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	reaped := false
	t.Cleanup(func() {
		if !reaped {
			cmd.Process.Kill()
			cmd.Wait()
		}
	})
	bridge := a.bridgeOf("idle", 3)
	cmd.Process.Kill()
	waitFor(t, 10*time.Second, "the run to exit", func() bool {
		b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/stat", cmd.Process.Pid))
		f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
		return len(f) > 0 && f[0] == "Z"
	})
	out := a.ok("/", "gc")
	if !strings.Contains(out, "removed bridge "+bridge) {
		t.Errorf("gc as %s right after kill -9 printed %q; want it to remove bridge %s", a.name, out, bridge)
	}
	cmd.Wait()
	reaped = true
	if out := a.ok("/", "bridge", "list"); strings.Contains(out, bridge) {
		t.Errorf("bridge %s left after gc:\n%s", bridge, out)
	}
}

// TestRootlessStopWithZombie: a process of the space that has exited but is not yet reaped
// (its parent is busy, or an init that reaps late) keeps its user namespace until reaped;
// `space --stop` does not take it for a process still running, and ends at once.
func TestRootlessStopWithZombie(t *testing.T) {
	a := rootlessAccount(t, devUser)
	s := a.space()
	join, err := s.JoinArgv("/bin/true")
	if err != nil {
		t.Fatal(err)
	}
	cmd := a.command("/")
	cmd.Path, cmd.Args = join[0], join
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Wait()
	waitFor(t, 10*time.Second, "the joined process to exit", func() bool {
		b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/stat", cmd.Process.Pid))
		f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
		return len(f) > 0 && f[0] == "Z"
	})
	if out, code := a.run("/", "space", "--stop"); code != 0 {
		t.Errorf("space --stop with an unreaped process of the space: exit %d, %s", code, out)
	}
	if s.Alive() {
		t.Errorf("the space (pid %d) outlived space --stop", s.PID)
	}
}

// TestRootlessEnvStaysInSpace: PONTOON_STATE_DIR and PONTOON_NETNS_DIR left in a user's
// environment (from a root workflow, say) do not move the space's chain out of the space's
// private tmpfs: commands with and without them see the same chain, and the directory named
// stays empty.
func TestRootlessEnvStaysInSpace(t *testing.T) {
	a := rootlessAccount(t, devUser)
	// In /tmp itself: t.TempDir's parent is root's alone.
	elsewhere, err := os.MkdirTemp("", "pontoon-elsewhere-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(elsewhere) })
	if err := os.Chown(elsewhere, a.uid, a.gid); err != nil {
		t.Fatal(err)
	}
	cmd := a.command("/", "gateway", "up")
	cmd.Env = append(cmd.Env, "PONTOON_STATE_DIR="+elsewhere, "PONTOON_NETNS_DIR="+elsewhere)
	if out, code := runCmd(t, cmd); code != 0 {
		t.Fatalf("gateway up as %s with PONTOON_STATE_DIR set: exit %d: %s", a.name, code, out)
	}
	if ents, _ := os.ReadDir(elsewhere); len(ents) != 0 {
		t.Errorf("the space's chain went to %s: %v", elsewhere, ents)
	}
	if out := a.ok("/", "gateway", "status"); !strings.Contains(out, "172.18") {
		t.Errorf("gateway status without the variables: %q; want the gateway that up made", out)
	}
}

// TestRootlessHolderSurvivesPkill: the holder runs as sleep(1), so a user's `pkill sleep`
// (SIGTERM), a hangup or a Ctrl-C of the group would end it and split the user's chain: runs
// going on in the old namespaces, later commands in a new space. Only `space --stop` ends it.
func TestRootlessHolderSurvivesPkill(t *testing.T) {
	a := rootlessAccount(t, devUser)
	s := a.space()
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGHUP, syscall.SIGINT} {
		if err := syscall.Kill(s.PID, sig); err != nil {
			t.Fatal(err)
		}
	}
	a.ok("/", "bridge", "list")
	if got := a.space(); got.PID != s.PID || !s.Alive() {
		t.Errorf("after SIGTERM, SIGHUP and SIGINT the space is pid %d; it was %d", got.PID, s.PID)
	}
	a.ok("/", "space", "--stop")
	if s.Alive() {
		t.Errorf("space --stop left the holder %d", s.PID)
	}
}

// TestRootlessRootLeavesUserAlone: root's own gc and root's own `gateway down`, while a
// user's linked run goes on, leave the user's link, rules and run alone: the host still
// reaches the user's port forward, and forwarding stays on for it.
func TestRootlessRootLeavesUserAlone(t *testing.T) {
	a := rootlessAccount(t, devUser)
	c := newCLI(t)
	c.ok("gateway", "up")
	c.ok("gateway", "up", "--user", a.name)
	t.Cleanup(func() { c.run("gateway", "down", "--user", a.name, "--force") })
	links, err := netsetup.UserLinks(c.sb.Env)
	if err != nil || len(links) != 1 {
		t.Fatalf("user links: %v, %v", links, err)
	}
	addr := links[0].SpaceAddr().Addr().String()
	dir := projectDir(t, `
[commands.web]
supervise = true
[commands.web.children.web]
run.shell = "while true; do echo hello-from-web | busybox nc -l -p 7000; done"
ip = "172.18.0.5"
ports = ["7001:7000"]
`)
	a.startRun(dir, "web")
	bridge := a.bridgeOf("web", 1)
	reaches := func() bool {
		o, _ := exec.Command("nsenter", "--net="+c.sb.Host, "busybox", "nc", "-w", "1", addr, "7001").CombinedOutput()
		return strings.Contains(string(o), "hello-from-web")
	}
	waitFor(t, 30*time.Second, "the user's forward to answer from the host", reaches)
	if out := c.ok("gc"); strings.Contains(out, a.name) || strings.Contains(out, bridge) {
		t.Errorf("root's gc touched the user's link or bridge: %q", out)
	}
	c.ok("gateway", "down")
	if links, err := netsetup.UserLinks(c.sb.Env); err != nil || len(links) != 1 {
		t.Errorf("user links after root's gc and gateway down: %v, %v", links, err)
	}
	if fwd, _ := exec.Command("nsenter", "--net="+c.sb.Host, "cat", "/proc/sys/net/ipv4/ip_forward").Output(); strings.TrimSpace(string(fwd)) != "1" {
		t.Errorf("root's gateway down turned forwarding off under a user link: %q", fwd)
	}
	waitFor(t, 10*time.Second, "the user's forward to answer after root's gc and gateway down", reaches)
	if out := a.ok("/", "bridge", "list"); !strings.Contains(out, bridge) {
		t.Errorf("the user's bridge is gone:\n%s", out)
	}
}

// TestRootlessUserLinksConcurrent: `gateway up --user` for two users at once links both,
// each with a /30 of its own.
func TestRootlessUserLinksConcurrent(t *testing.T) {
	a := rootlessAccount(t, devUser)
	b := rootlessAccount(t, devUser2)
	c := newCLI(t)
	var cmds []*exec.Cmd
	var outs []*testkit.Buffer
	for _, u := range []*account{a, b} {
		t.Cleanup(func() { c.run("gateway", "down", "--user", u.name, "--force") })
		cmd := c.command("gateway", "up", "--user", u.name)
		out := &testkit.Buffer{}
		cmd.Stdout, cmd.Stderr = out, out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		cmds, outs = append(cmds, cmd), append(outs, out)
	}
	for i, cmd := range cmds {
		if err := cmd.Wait(); err != nil {
			t.Errorf("gateway up --user #%d: %v\n%s", i, err, outs[i])
		}
	}
	links, err := netsetup.UserLinks(c.sb.Env)
	if err != nil || len(links) != 2 || links[0].Link.Overlaps(links[1].Link) {
		t.Fatalf("links after two concurrent ups: %+v, %v; want two apart", links, err)
	}
	for _, l := range links {
		if out, err := exec.Command("nsenter", "--net="+c.sb.Host, "ping", "-c1", "-W2", l.SpaceAddr().Addr().String()).CombinedOutput(); err != nil {
			t.Errorf("the host cannot reach %s's link at %s: %v\n%s", l.User, l.SpaceAddr().Addr(), err, out)
		}
	}
}
