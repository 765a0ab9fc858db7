package main

import (
	"net/netip"
	"os/exec"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pontoon-dev/pontoon/netsetup"
)

// TestRootlessUserLinkFollowsPlan: a linked user who moves their plan (gateway down, up with
// another --subnet) keeps their port forwards answering on the link, without root: their
// `gateway up` points the space's end of the link at the new gateway. Root's next
// `gateway up --user` without --subnet keeps the user's plan and the link.
func TestRootlessUserLinkFollowsPlan(t *testing.T) {
	a := rootlessAccount(t, devUser)
	c := newCLI(t)
	c.ok("gateway", "up", "--user", a.name)
	t.Cleanup(func() { c.run("gateway", "down", "--user", a.name, "--force") })
	links, err := netsetup.UserLinks(c.sb.Env)
	if err != nil || len(links) != 1 {
		t.Fatalf("user links after up: %v, %v", links, err)
	}
	l := links[0]
	addr := l.SpaceAddr().Addr().String()

	a.ok("/", "gateway", "down", "--force")
	a.ok("/", "gateway", "up", "--subnet", "10.77.0.0/16")
	a.ok("/", "bridge", "create", "ub3", "--port", "19002:x2:8080")
	a.ok("/", "guest", "add", "ub3", "x2", "--ip", "10.77.0.2")
	listener := a.command("/", "exec", "ub3", "x2", "--", "sh", "-c", "while true; do echo hello-from-moved | busybox nc -l -p 8080; done")
	if err := listener.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { listener.Process.Signal(syscall.SIGTERM); listener.Wait() })
	reaches := func() bool {
		o, _ := exec.Command("nsenter", "--net="+c.sb.Host, "busybox", "nc", "-w", "1", addr, "19002").CombinedOutput()
		return strings.Contains(string(o), "hello-from-moved")
	}
	waitFor(t, 30*time.Second, "the forward of the moved plan to answer on the link", reaches)

	out := c.ok("gateway", "up", "--user", a.name)
	if !strings.Contains(out, "already linked") {
		t.Errorf("root's second gateway up --user printed %q; want the link kept", out)
	}
	links, err = netsetup.UserLinks(c.sb.Env)
	if err != nil || len(links) != 1 || links[0].Link != l.Link || links[0].Gateway != netip.MustParseAddr("10.77.255.2") {
		t.Errorf("user links after root's second up: %+v, %v; want %s to 10.77.255.2", links, err, l.Link)
	}
	if out := a.ok("/", "gateway", "status"); !strings.Contains(out, "10.77.0.0/16") {
		t.Errorf("the user's gateway after root's second up: %q; want 10.77.0.0/16 kept", out)
	}
	waitFor(t, 10*time.Second, "the forward to answer after root's second up", reaches)
}

// TestRootlessRunLinkNote: a user's `pontoon run` says the space is unlinked only when it is,
// and names the user as root must (their login name, also when USER is unset), not root of
// the space.
func TestRootlessRunLinkNote(t *testing.T) {
	a := rootlessAccount(t, devUser)
	c := newCLI(t)
	dir := projectDir(t, `
[commands.hello]
supervise = true
exit = "any"
[commands.hello.children.a]
run = ["true"]
ip = "172.18.0.1"
`)
	const note = "guests reach each other and your space only"
	run := func() string {
		cmd := a.command(dir, "run", "hello")
		cmd.Env = slices.DeleteFunc(cmd.Env, func(kv string) bool { return strings.HasPrefix(kv, "USER=") })
		out, code := runCmd(t, cmd)
		if code != 0 {
			t.Fatalf("run hello as %s: exit %d\n%s", a.name, code, out)
		}
		return out
	}
	if out := run(); !strings.Contains(out, note) || !strings.Contains(out, "`sudo pontoon gateway up --user "+a.name+"`") {
		t.Errorf("run in an unlinked space, USER unset, printed\n%s\nwant the note naming %s", out, a.name)
	}
	c.ok("gateway", "up", "--user", a.name)
	t.Cleanup(func() { c.run("gateway", "down", "--user", a.name, "--force") })
	if out := run(); strings.Contains(out, note) {
		t.Errorf("run in a linked space printed\n%s\nwant no note", out)
	}
}

// TestRootlessNoGatewayAdvice: in a space the user brings the gateway up themselves; the
// advice for a bridge made before it says so, not "as root".
func TestRootlessNoGatewayAdvice(t *testing.T) {
	a := rootlessAccount(t, devUser)
	a.stopSpace()
	out, code := a.run("/", "bridge", "create", "nb")
	if code != 1 || !strings.Contains(out, "run `pontoon gateway up` first (as yourself") || strings.Contains(out, "as root") {
		t.Errorf("bridge create before gateway up as %s: exit %d\n%s\nwant exit 1 and the advice to run gateway up as oneself", a.name, code, out)
	}
}
