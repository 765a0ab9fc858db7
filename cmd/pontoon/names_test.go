package main

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pontoon-dev/pontoon/internal/statefile"
	"github.com/pontoon-dev/pontoon/names"
	"github.com/pontoon-dev/pontoon/netsetup"
	"github.com/pontoon-dev/pontoon/netsetup/ns"
	"github.com/pontoon-dev/pontoon/partition"
	"golang.org/x/sys/unix"
)

// lookupFrom resolves a rooted name to IPv4 addresses with Go's resolver from inside the
// network namespace at netnsPath, asking the bridge's name server at 172.18.0.254.
func lookupFrom(netnsPath, name string, timeout time.Duration) ([]string, error) {
	r := &net.Resolver{PreferGo: true, StrictErrors: true, Dial: func(ctx context.Context, network, _ string) (c net.Conn, err error) {
		err = ns.Do(netnsPath, func() error {
			c, err = (&net.Dialer{}).DialContext(ctx, network, "172.18.0.254:53")
			return err
		})
		return c, err
	}}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	ips, err := r.LookupNetIP(ctx, "ip4", name+".")
	out := make([]string, len(ips))
	for i, ip := range ips {
		out[i] = ip.String()
	}
	return out, err
}

func (c *runner) namesState(bridge string) names.State {
	c.t.Helper()
	var st []names.State
	if err := json.Unmarshal([]byte(c.ok("names", "status", bridge, "--json")), &st); err != nil || len(st) != 1 {
		c.t.Fatalf("names status --json: %v, %v", st, err)
	}
	return st[0]
}

// waitGone waits until p has exited, failing the test after a deadline.
func waitGone(t *testing.T, p netsetup.Process, what string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for p.Alive() {
		if time.Now().After(deadline) {
			t.Fatalf("%s (pid %d) is still running", what, p.PID)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// The name server's whole life through the CLI: started by bridge create in a session of
// its own, answering for guests and aliases added later, DNS faults set, listed and healed,
// restarted by gc and guest add after kill -9, and gone after destroy and after the bridge
// is removed behind its back.
func TestNamesServerLifetime(t *testing.T) {
	c := newCLI(t)
	c.ok("gateway", "up")
	t.Cleanup(func() { c.run("gateway", "down", "--force") })
	c.ok("bridge", "create", "b1")
	st := c.namesState("b1")
	if !st.Running || !st.Record.Detached {
		t.Fatalf("after bridge create: %+v; want a detached server running", st)
	}
	if sid, _ := unix.Getsid(st.Record.Process.PID); sid != st.Record.Process.PID {
		t.Errorf("the server (pid %d) is in session %d, not a session of its own", st.Record.Process.PID, sid)
	}
	c.ok("guest", "add", "b1", "n1", "--ip", "172.18.0.1", "--alias", "db", "--alias", "primary")
	c.ok("guest", "add", "b1", "n2", "--ip", "172.18.0.2")
	n2 := c.sb.Env.GuestNetns("b1", "n2")
	for _, name := range []string{"n1", "db", "primary"} {
		if got, err := lookupFrom(n2, name, 5*time.Second); err != nil || !slices.Equal(got, []string{"172.18.0.1"}) {
			t.Errorf("%s from n2: %v, %v; want 172.18.0.1", name, got, err)
		}
	}
	// A command run in a guest pontoon created gets a resolv.conf naming the name server.
	if out := c.ok("exec", "b1", "n2", "--", "getent", "ahostsv4", "primary"); !strings.HasPrefix(out, "172.18.0.1 ") {
		t.Errorf("getent primary in n2 through pontoon exec: %q", out)
	}
	c.fails(2, `alias "bad alias" is invalid`, "guest", "add", "b1", "n4", "--ip", "172.18.0.4", "--alias", "bad alias")
	c.fails(2, `alias "db" is already an alias of guest "n1"`, "guest", "add", "b1", "n4", "--ip", "172.18.0.4", "--alias", "db")
	if out := c.ok("bridge", "show", "b1"); strings.Contains(out, "n4") || !strings.Contains(out, "db,primary") {
		t.Errorf("bridge show lists a refused guest, or not n1's aliases:\n%s", out)
	}

	// Faults: set, listed, observed, healed.
	c.ok("partition", "dns", "nxdomain", "--name", "db", "--bridge", "b1")
	var de *net.DNSError
	if _, err := lookupFrom(n2, "db", 5*time.Second); !errors.As(err, &de) || !de.IsNotFound {
		t.Errorf("db from n2 under nxdomain: %v; want not found", err)
	}
	if out := c.ok("partition", "status", "--bridge", "b1"); !strings.Contains(out, "nxdomain for db") {
		t.Errorf("partition status does not list the DNS fault:\n%s", out)
	}
	var rec struct {
		DNSFaults []names.Fault `json:"dns_faults"`
	}
	if err := json.Unmarshal([]byte(c.ok("partition", "status", "--json", "--bridge", "b1")), &rec); err != nil || len(rec.DNSFaults) != 1 || rec.DNSFaults[0].Kind != names.NXDomain {
		t.Errorf("partition status --json: %+v, %v; want the nxdomain fault", rec, err)
	}
	c.ok("partition", "heal", "--bridge", "b1")
	if got, err := lookupFrom(n2, "db", 5*time.Second); err != nil || !slices.Equal(got, []string{"172.18.0.1"}) {
		t.Errorf("db from n2 after heal: %v, %v", got, err)
	}
	if out := c.ok("partition", "status", "--bridge", "b1"); strings.Contains(out, "DNS") {
		t.Errorf("partition status after heal still lists DNS faults:\n%s", out)
	}
	for _, k := range []struct {
		words []string
		check func(got []string, err error) bool
	}{
		{[]string{"servfail"}, func(_ []string, err error) bool { return errors.As(err, &de) && !de.IsNotFound && !de.IsTimeout }},
		{[]string{"drop"}, func(_ []string, err error) bool { return errors.As(err, &de) && de.IsTimeout }},
		{[]string{"delay", "50ms"}, func(got []string, err error) bool { return err == nil && slices.Equal(got, []string{"172.18.0.1"}) }},
	} {
		c.ok(append(append([]string{"partition", "dns"}, k.words...), "--name", "primary", "--from", "172.18.0.2", "--bridge", "b1")...)
		if got, err := lookupFrom(n2, "primary", time.Second); !k.check(got, err) {
			t.Errorf("primary from n2 under %v: %v, %v", k.words, got, err)
		}
		if out := c.ok("partition", "status", "--bridge", "b1"); !strings.Contains(out, k.words[0]+" ") || !strings.Contains(out, "asked by n2") {
			t.Errorf("partition status under %v:\n%s", k.words, out)
		}
		c.ok("partition", "heal", "--bridge", "b1")
	}
	c.fails(2, "unknown DNS fault", "partition", "dns", "slow", "--bridge", "b1")
	c.fails(2, `from "n9"`, "partition", "dns", "drop", "--from", "n9", "--bridge", "b1")

	// --for: in force while the command waits, gone when it returns.
	cmd := c.command("partition", "dns", "wrong", "10.9.9.9", "--name", "db", "--from", "n2", "--for", "2s", "--bridge", "b1")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		got, _ := lookupFrom(n2, "db", 5*time.Second)
		if slices.Equal(got, []string{"10.9.9.9"}) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the --for fault never showed: db is %v", got)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("partition dns --for: %v", err)
	}
	if got, err := lookupFrom(n2, "db", 5*time.Second); err != nil || !slices.Equal(got, []string{"172.18.0.1"}) {
		t.Errorf("db after the --for ended: %v, %v", got, err)
	}

	// kill -9: status says so, gc starts a new server.
	first := st.Record.Process
	if err := syscall.Kill(first.PID, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	waitGone(t, first, "the killed server")
	if st := c.namesState("b1"); st.Running || !strings.Contains(st.Problem, "killed") {
		t.Errorf("names status after kill -9: %+v; want not running, killed", st)
	}
	if out := c.ok("names", "status"); !strings.Contains(out, "NOT RUNNING") {
		t.Errorf("names status after kill -9:\n%s", out)
	}
	if out, _, code := c.run("names", "status", "--check"); code != 3 || !strings.Contains(out, "NOT RUNNING") {
		t.Errorf("names status --check after kill -9: exit %d; want 3\n%s", code, out)
	}
	if out := c.ok("gc"); !strings.Contains(out, "started the name server of bridge b1") {
		t.Errorf("gc after kill -9 printed %q", out)
	}
	st = c.namesState("b1")
	if !st.Running || st.Record.Process == first {
		t.Fatalf("after gc: %+v; want a new server", st)
	}
	c.ok("names", "status", "--check")
	if got, err := lookupFrom(n2, "primary", 5*time.Second); err != nil || !slices.Equal(got, []string{"172.18.0.1"}) {
		t.Errorf("primary after the restart: %v, %v", got, err)
	}
	// ... and so does the next guest add.
	second := st.Record.Process
	syscall.Kill(second.PID, syscall.SIGKILL)
	waitGone(t, second, "the killed server")
	if _, errOut, code := c.run("guest", "add", "b1", "n3", "--ip", "172.18.0.3"); code != 0 || !strings.Contains(errOut, "started the name server") {
		t.Errorf("guest add after kill -9: exit %d, %q", code, errOut)
	}
	third := c.namesState("b1").Record.Process
	if got, err := lookupFrom(n2, "n3", 5*time.Second); err != nil || !slices.Equal(got, []string{"172.18.0.3"}) {
		t.Errorf("n3 after guest add restarted the server: %v, %v", got, err)
	}

	// destroy stops it before it returns.
	c.ok("bridge", "destroy", "b1")
	if third.Alive() {
		t.Errorf("bridge destroy left the name server (pid %d) running", third.PID)
	}
	if f := stateFiles(t, c.sb.Env.StateDir+"/names"); len(f) > 0 {
		t.Errorf("bridge destroy left %v", f)
	}

	// gc removes a bridge whose owner died, and its server with it.
	owner := exec.Command("sleep", "8640531")
	if err := owner.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { owner.Process.Kill(); owner.Wait() })
	c.ok("bridge", "create", "b3", "--owner", strconv.Itoa(owner.Process.Pid))
	owned := c.namesState("b3").Record.Process
	owner.Process.Kill()
	owner.Wait()
	if out := c.ok("gc"); !strings.Contains(out, "removed bridge b3") {
		t.Errorf("gc after the owner died printed %q", out)
	}
	waitGone(t, owned, "the server of a bridge gc removed")

	// A bridge removed without the CLI knowing of its server (here by gateway down): the
	// server sees its record go and leaves by itself.
	c.ok("bridge", "create", "b2")
	srv := c.namesState("b2").Record.Process
	c.ok("gateway", "down", "--force")
	waitGone(t, srv, "the server of a bridge removed by gateway down")
	c.ok("gc")
	if f := stateFiles(t, c.sb.Env.StateDir+"/names"); len(f) > 0 {
		t.Errorf("gc left %v", f)
	}
	for _, p := range []netsetup.Process{first, second, third, owned, srv} {
		if p.Alive() {
			t.Errorf("name server %d still runs", p.PID)
		}
	}
}

// TestNameServerStarterKilled reproduces a `bridge create` (or a `guest add` restarting the
// server) killed after it started the name server and before it recorded it: the server ran
// on, holding the bridge's DNS address, while `names status` said none ran, and the next
// start failed with "address already in use". Here the test plays that starter: it binds the
// sockets, holds the bridge's names lock, starts the server as the starter does and releases
// the lock without recording it. The server must leave by itself, and gc start a new one.
func TestNameServerStarterKilled(t *testing.T) {
	c := newCLI(t)
	c.ok("gateway", "up")
	c.ok("bridge", "create", "b1")
	c.ok("guest", "add", "b1", "n1", "--ip", "172.18.0.1")
	t.Cleanup(func() { c.run("gateway", "down", "--force") })
	st := c.namesState("b1")
	syscall.Kill(st.Record.Process.PID, syscall.SIGKILL)
	waitGone(t, st.Record.Process, "the killed server")

	ap := net.UDPAddrFromAddrPort(netip.MustParseAddrPort(st.Record.Addr))
	var pc *net.UDPConn
	var ln *net.TCPListener
	if err := ns.Do(c.sb.Env.BridgeNetns("b1"), func() (err error) {
		if pc, err = net.ListenUDP("udp4", ap); err != nil {
			return err
		}
		ln, err = net.ListenTCP("tcp4", &net.TCPAddr{IP: ap.IP, Port: ap.Port})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	uf, _ := pc.File()
	tf, _ := ln.File()
	pc.Close()
	ln.Close()
	unlock, err := statefile.Lock(filepath.Join(c.sb.Env.StateDir, "names", "b1.lock"))
	if err != nil {
		t.Fatal(err)
	}
	srv := c.command("names", "serve", "--bridge", "b1", "--"+names.InheritFlag)
	srv.ExtraFiles = []*os.File{uf, tf}
	var stderr strings.Builder
	srv.Stderr = &stderr
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	uf.Close()
	tf.Close()
	unlock() // the starter is gone, and recorded nothing
	done := make(chan error, 1)
	go func() { done <- srv.Wait() }()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(stderr.String(), "ended without recording it") {
			t.Errorf("unrecorded server ended with %v, %q; want an error saying it was not recorded", err, stderr.String())
		}
	case <-time.After(10 * time.Second):
		srv.Process.Kill()
		<-done
		t.Fatal("a server nobody recorded still runs 10 s after its starter went")
	}
	if out := c.ok("gc"); !strings.Contains(out, "started the name server of bridge b1") {
		t.Errorf("gc after the unrecorded server left printed %q", out)
	}
	if got, err := lookupFrom(c.sb.Env.GuestNetns("b1", "n1"), "n1", 5*time.Second); err != nil || !slices.Equal(got, []string{"172.18.0.1"}) {
		t.Errorf("n1 from n1 after gc: %v, %v", got, err)
	}
	// A record write killed before its rename, of a bridge that is gone: gc removes it, so
	// that the state directory can go with the last bridge.
	tmp := filepath.Join(c.sb.Env.StateDir, "names", "gone.json"+statefile.TempSuffix)
	if err := os.WriteFile(tmp, []byte("{"), 0o600); err != nil {
		t.Fatal(err)
	}
	c.ok("gc")
	if _, err := os.Stat(tmp); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("gc left %s: %v", tmp, err)
	}
}

// TestDNSFaultsWithoutServer: status listed DNS faults as in force, with no warning, after
// the bridge's name server had been stopped (SIGTERM by someone else), when no name resolved
// at all; and `names status` said no server had ever been started.
func TestDNSFaultsWithoutServer(t *testing.T) {
	c := newCLI(t)
	c.bridgeOf("b1", "n1", "n2")
	c.ok("partition", "--bridge", "b1", "dns", "nxdomain", "--name", "n2")
	if out := c.ok("partition", "--bridge", "b1", "status"); strings.Contains(out, "WARNING") || !strings.Contains(out, "nxdomain") {
		t.Fatalf("status with the server running:\n%s", out)
	}
	st := c.namesState("b1")
	syscall.Kill(st.Record.Process.PID, syscall.SIGTERM)
	waitGone(t, st.Record.Process, "the stopped server")
	out := c.ok("partition", "--bridge", "b1", "status")
	if !strings.Contains(out, "WARNING: the DNS faults below may not be in force, nor any name served: the bridge's name server: none runs") {
		t.Errorf("status with the server stopped:\n%s", out)
	}
	if _, _, code := c.run("partition", "--bridge", "b1", "status", "--check"); code != 3 {
		t.Errorf("status --check with the server stopped: exit %d, want 3", code)
	}
	var js struct {
		DNSProblem string `json:"dns_problem"`
	}
	if err := json.Unmarshal([]byte(c.ok("partition", "--bridge", "b1", "status", "--json")), &js); err != nil || js.DNSProblem == "" {
		t.Errorf("status --json with the server stopped: dns_problem %q, %v", js.DNSProblem, err)
	}
	if out := c.ok("names", "status", "b1"); !strings.Contains(out, "never started, or stopped") {
		t.Errorf("names status with the server stopped:\n%s", out)
	}
	c.ok("gc")
	if out := c.ok("partition", "--bridge", "b1", "status"); strings.Contains(out, "WARNING") {
		t.Errorf("status after gc started the server again:\n%s", out)
	}
}

// TestStatusCheck: `status --check` fails (3) when the kernel does not hold what was applied,
// so a script can stop on it; the output is the same.
func TestStatusCheck(t *testing.T) {
	c := newCLI(t)
	c.bridgeOf("b1", "n1", "n2")
	c.ok("partition", "--bridge", "b1", "isolate", "n1")
	c.ok("partition", "--bridge", "b1", "status", "--check")
	ns := "--net=" + c.sb.Env.BridgeNetns("b1")
	family := "netdev"
	if exec.Command("nsenter", ns, "nft", "list", "table", family, partition.TableName).Run() != nil {
		family = "bridge"
	}
	if out, err := exec.Command("nsenter", ns, "nft", "add", "table", family, partition.TableName, "{ flags dormant; }").CombinedOutput(); err != nil {
		t.Fatalf("make the table dormant: %v\n%s", err, out)
	}
	for _, form := range [][]string{nil, {"--json"}, {"--dot"}} {
		out, _, code := c.run(append([]string{"partition", "--bridge", "b1", "status", "--check"}, form...)...)
		if code != 3 {
			t.Errorf("status --check %v with the table dormant: exit %d, want 3", form, code)
		}
		if form == nil && !strings.Contains(out, "WARNING: the kernel does not hold what was last applied: table "+family+" "+partition.TableName+" is dormant") {
			t.Errorf("status --check with the table dormant:\n%s", out)
		}
	}
	if _, _, code := c.run("partition", "--bridge", "b1", "status"); code != 0 {
		t.Errorf("status without --check with the table dormant: exit %d, want 0", code)
	}
	c.ok("partition", "--bridge", "b1", "isolate", "n1")
	c.ok("partition", "--bridge", "b1", "status", "--check")
	// Port security is part of what status vouches for: a guest port unlocked by hand lets
	// the guest send as anyone.
	port := "g2" // n2's, at 172.18.0.2
	if out, err := exec.Command("nsenter", ns, "bridge", "link", "set", "dev", port, "locked", "off").CombinedOutput(); err != nil {
		t.Fatalf("unlock %s: %v\n%s", port, err, out)
	}
	out, _, code := c.run("partition", "--bridge", "b1", "status", "--check")
	if want := "port " + port + " of guest n2 was unlocked by hand"; code != 3 || !strings.Contains(out, want) {
		t.Errorf("status --check with a port unlocked: exit %d, want 3 and %q:\n%s", code, want, out)
	}
}
