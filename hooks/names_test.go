package hooks_test

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/pontoon-dev/pontoon/hooks"
	"github.com/pontoon-dev/pontoon/hooks/hooktest"
	"github.com/pontoon-dev/pontoon/names"
	"github.com/pontoon-dev/pontoon/netsetup"
	"github.com/pontoon-dev/pontoon/netsetup/ns"
	"github.com/pontoon-dev/pontoon/netsetup/sandbox"
)

// getentIn resolves name with the C library's resolver in a process of the guest, whose
// /etc/resolv.conf is rc.
func getentIn(t *testing.T, g *netsetup.Guest, rc, name string) (string, error) {
	t.Helper()
	cmd := exec.Command("getent", "ahostsv4", name)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := ns.Start(g.Namespaces(), []ns.Bind{{Source: rc, Target: "/etc/resolv.conf"}}, cmd); err != nil {
		return "", err
	}
	err := cmd.Wait()
	f := strings.Fields(out.String())
	if err != nil || len(f) == 0 {
		return "", fmt.Errorf("getent %s: %v: %s", name, err, out.String())
	}
	return f[0], nil
}

// TestNamesAcrossEngines: a podman container attached by the hook, with aliases from its
// annotation, and a guest added by `guest add` find each other by name and alias through
// the bridge's name server, and the container's names go when it does.
func TestNamesAcrossEngines(t *testing.T) {
	hooktest.NeedRoot(t)
	bin := hooktest.NeedCommand(t, "podman", "podman")
	hooktest.NeedCommand(t, "runc", "runc")
	if _, err := exec.LookPath("getent"); err != nil {
		t.Skip("getent (libc-bin) is not installed")
	}
	s := hooktest.Chain(t)
	p := newPodman(t, bin, s)
	dir := p.dir
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("busybox", filepath.Join(p.root, "bin", "nslookup")); err != nil {
		t.Fatal(err)
	}
	if _, err := netsetup.CreateBridge(s.Env, "nb", netsetup.BridgeOptions{}); err != nil {
		t.Fatal(err)
	}
	// The sandbox's upstream resolver knows no names: names the bridge does not know fail
	// at once instead of waiting for a resolver that is not there.
	var pc net.PacketConn
	if err := ns.Do(s.Upstream, func() (err error) {
		pc, err = net.ListenPacket("udp4", sandbox.UpstreamAddr.Addr().String()+":53")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	up := &dns.Server{PacketConn: pc, Handler: dns.HandlerFunc(func(w dns.ResponseWriter, q *dns.Msg) {
		_ = w.WriteMsg(new(dns.Msg).SetRcode(q, dns.RcodeNameError))
	})}
	go func() { _ = up.ActivateAndServe() }()
	t.Cleanup(func() { _ = up.Shutdown() })
	srv, err := names.Listen(s.Env, "nb")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Close)
	g1, err := netsetup.AddGuest(s.Env, "nb", "g1", netsetup.GuestOptions{IP: "172.18.0.1", Aliases: []string{"gadd"}})
	if err != nil {
		t.Fatal(err)
	}
	rc, err := names.ResolvConf(s.Env)
	if err != nil {
		t.Fatal(err)
	}
	rcFile := filepath.Join(dir, "resolv.conf")
	if err := os.WriteFile(rcFile, rc, 0o644); err != nil {
		t.Fatal(err)
	}

	hostFiles := map[string][]byte{}
	for _, f := range []string{"/etc/resolv.conf", "/etc/hosts"} {
		hostFiles[f], _ = os.ReadFile(f)
	}

	ann := annotations("nb", "p1", "172.18.0.2")
	ann[hooks.AnnotationAliases] = "web www.svc"
	name := fmt.Sprintf("pontoon-test-%d-p1", os.Getpid())
	// The container asks for g1 by name and alias, then waits to be asked about. Its image
	// has no resolv.conf and podman mounts none with --network none: the hook's precreate
	// stage mounts one naming the bridge's name server.
	script := "nslookup g1 && nslookup gadd && cat /etc/hosts && echo resolved && sleep 600"
	if out, err := p.run([]string{"-d", "--name", name}, ann, "sh", "-c", script); err != nil {
		t.Fatalf("start p1: %v\n%s", err, out)
	}
	var logs string
	for deadline := time.Now().Add(30 * time.Second); !strings.Contains(logs, "resolved"); time.Sleep(50 * time.Millisecond) {
		logs, _ = p.cmd("logs", name)
		if time.Now().After(deadline) {
			t.Fatalf("p1 did not resolve g1 and gadd:\n%s", logs)
		}
	}
	if strings.Count(logs, "172.18.0.1") < 2 {
		t.Errorf("p1's lookups of g1 and gadd:\n%s", logs)
	}
	if !hasHostsLine(logs, "172.18.0.2", "p1", "web", "www.svc") || !hasHostsLine(logs, "fd70:6f6e::2", "p1", "web", "www.svc") {
		t.Errorf("p1's /etc/hosts lacks the line 172.18.0.2 p1 web www.svc or fd70:6f6e::2 p1 web www.svc:\n%s", logs)
	}

	// A resolv.conf the user mounts wins over pontoon's.
	own := filepath.Join(dir, "own-resolv.conf")
	if err := os.WriteFile(own, []byte("nameserver 192.0.2.53\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := p.run([]string{"--rm", "-v", own + ":/etc/resolv.conf:ro"}, annotations("nb", "p3", "172.18.0.4"), "cat", "/etc/resolv.conf"); err != nil || out != "nameserver 192.0.2.53\n" {
		t.Errorf("p3 with its own resolv.conf read %q (%v), want the user's", out, err)
	}
	for _, n := range []string{"p1", "web", "www.svc"} {
		if got, err := getentIn(t, g1, rcFile, n); err != nil || got != "172.18.0.2" {
			t.Errorf("g1 resolving %s: %q, %v; want 172.18.0.2", n, got, err)
		}
	}
	// A precreate that fails (here: the host's resolv.conf, as the hook is told it, cannot be
	// read) refuses the container with pontoon's message, though podman drops precreate's
	// own, and attaches nothing.
	broken := s.Env
	broken.ResolvConf = dir
	q := *p
	q.hook = filepath.Join(dir, "hooks-broken.d")
	if _, err := hooks.InstallPodman(q.hook, self, broken); err != nil {
		t.Fatal(err)
	}
	if out, err := q.run([]string{"--rm"}, annotations("nb", "p4", "172.18.0.5"), "true"); err == nil || !strings.Contains(out, "give it its names: write the container's resolv.conf: read "+dir) {
		t.Errorf("podman ran a container whose resolv.conf could not be written: %v\n%s", err, out)
	}
	if got, _ := hooktest.Attached(s.Env); strings.Join(got, " ") != "nb/g1 nb/p1" {
		t.Errorf("attached after a refused container: %v", got)
	}

	if _, err := exec.LookPath("crun"); err == nil {
		// The names come from the configuration podman hands the runtime: crun gets them too.
		c := *p
		c.crun = true
		out, err := c.run([]string{"--rm"}, annotations("nb", "p5", "172.18.0.6"), "sh", "-c", "nslookup gadd && cat /etc/hosts")
		if err != nil || !strings.Contains(out, "172.18.0.1") || !hasHostsLine(out, "172.18.0.6", "p5") {
			t.Errorf("p5 under crun: %v\n%s", err, out)
		}
	}

	bad := annotations("nb", "p2", "172.18.0.3")
	bad[hooks.AnnotationAliases] = "ok no/t"
	if out, err := p.run([]string{"--rm"}, bad, "true"); err == nil || !strings.Contains(out, `annotation pontoon.aliases: alias "no/t" is invalid`) {
		t.Errorf("podman ran a container with a bad alias: %v\n%s", err, out)
	}
	if out, err := p.cmd("rm", "--force", "--time", "0", name); err != nil {
		t.Fatalf("podman rm: %v\n%s", err, out)
	}
	for _, n := range []string{"p1", "web"} {
		if got, err := getentIn(t, g1, rcFile, n); err == nil {
			t.Errorf("g1 still resolves %s to %s after p1 was removed", n, got)
		}
	}
	if got, _ := hooktest.Attached(s.Env); strings.Join(got, " ") != "nb/g1" {
		t.Errorf("attached after the containers were removed: %v", got)
	}
	if mi, err := os.ReadFile("/proc/self/mountinfo"); err != nil || bytes.Contains(mi, []byte("pontoon-resolv.conf")) {
		t.Errorf("a resolv.conf of pontoon is still mounted (%v):\n%s", err, mi)
	}
	for f, want := range hostFiles {
		if got, _ := os.ReadFile(f); !bytes.Equal(got, want) {
			t.Errorf("the host's %s changed:\n%s\nwas:\n%s", f, got, want)
		}
	}
}

// hasHostsLine reports whether the hosts file text has a line for ip with every one of names.
func hasHostsLine(text, ip string, names ...string) bool {
	for _, line := range strings.Split(text, "\n") {
		f := strings.Fields(line)
		if len(f) == 0 || f[0] != ip {
			continue
		}
		all := true
		for _, n := range names {
			all = all && slices.Contains(f[1:], n)
		}
		if all {
			return true
		}
	}
	return false
}
