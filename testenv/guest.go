package testenv

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"slices"
	"strings"

	"github.com/pontoon-dev/pontoon/netsetup"
	"github.com/pontoon-dev/pontoon/netsetup/ns"
	"github.com/pontoon-dev/pontoon/partition"
)

// Guest is one guest of an Env: a network namespace on the bridge with a fixed address, and a
// UTS namespace with its hostname.
type Guest struct {
	env      *Env
	name     string
	ip       netip.Addr
	ip6      netip.Addr // none on an IPv4-only Env
	hostname string
	netns    string
	uts      string
	port     string // the guest's veth port in the bridge namespace
}

// GuestOption configures Env.Guest.
type GuestOption func(*guestConfig)

type guestConfig struct {
	hostname string
	aliases  []string
}

// WithHostname gives the guest a hostname other than its name. /etc/hosts of guest processes
// names the guest by both.
func WithHostname(h string) GuestOption { return func(c *guestConfig) { c.hostname = h } }

// Guest creates a guest called name with address ip (in x.y.0.1-x.y.0.253 of the plan, e.g.
// 172.18.0.1) and returns it. Its hostname is name unless WithHostname says otherwise. The
// test fails when the name or address is taken or invalid.
func (e *Env) Guest(name, ip string, opts ...GuestOption) *Guest {
	e.t.Helper()
	var c guestConfig
	for _, o := range opts {
		o(&c)
	}
	ng, err := netsetup.AddGuest(e.sb.Env, e.cfg.bridge, name, netsetup.GuestOptions{IP: ip, Hostname: c.hostname, Aliases: c.aliases})
	if err != nil {
		e.t.Fatalf("testenv: %v", err)
	}
	if err := partition.Refresh(e.sb.Env, e.cfg.bridge); err != nil {
		e.t.Fatalf("testenv: guest %s: apply the partition to its port: %v", name, err)
	}
	g := &Guest{
		env:      e,
		name:     ng.Name,
		ip:       ng.IP,
		ip6:      ng.IP6,
		hostname: ng.Hostname,
		netns:    ng.Netns,
		uts:      ng.UTS,
		port:     ng.PortName(),
	}
	names := g.hostname
	if g.hostname != g.name {
		names += " " + g.name
	}
	line := g.ip.String() + "\t" + names
	if g.ip6.IsValid() {
		line += "\n" + g.ip6.String() + "\t" + names
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if err := e.addHostsLocked(line); err != nil {
		e.t.Fatalf("testenv: add guest %q to the guests' hosts file: %v", name, err)
	}
	e.guests = append(e.guests, g)
	return g
}

// addHostsLocked appends line to the guests' /etc/hosts, unless names are left to DNS
// (WithDNSNames); e.mu is held. Appended in place (same inode): processes already running
// see it through their bind mount, and a reader never sees the file shorter than before.
func (e *Env) addHostsLocked(line string) error {
	if e.cfg.dnsNames {
		return nil
	}
	f, err := os.OpenFile(e.hostsFile, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		return err
	}
	_, err = f.WriteString(line + "\n")
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// Guests returns the Env's guests in the order they were created.
func (e *Env) Guests() []*Guest {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]*Guest(nil), e.guests...)
}

// Lookup returns the guest named ref, or whose address or hostname is ref. The test fails when
// there is none.
func (e *Env) Lookup(ref string) *Guest {
	e.t.Helper()
	g, err := e.find(ref)
	if err != nil {
		e.t.Fatal(err)
	}
	return g
}

func (e *Env) find(ref string) (*Guest, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, g := range e.guests {
		if g.name == ref {
			return g, nil
		}
	}
	for _, g := range e.guests {
		if g.ip.String() == ref || g.hostname == ref || (g.ip6.IsValid() && g.ip6.String() == ref) {
			return g, nil
		}
	}
	names := make([]string, len(e.guests))
	for i, g := range e.guests {
		names[i] = g.name
	}
	return nil, fmt.Errorf("testenv: no guest %q; the guests are [%s]", ref, strings.Join(names, " "))
}

// Name returns the guest's name.
func (g *Guest) Name() string { return g.name }

// IP returns the guest's address.
func (g *Guest) IP() netip.Addr { return g.ip }

// IP6 returns the guest's IPv6 address; none when the Env is IPv4 only (WithIPv4Only).
func (g *Guest) IP6() netip.Addr { return g.ip6 }

// Addr6 returns "[ip6]:port", the address of a service the guest runs on port over IPv6.
func (g *Guest) Addr6(port int) string {
	return netip.AddrPortFrom(g.ip6, uint16(port)).String()
}

// Addr returns "ip:port", the address of a service the guest runs on port.
func (g *Guest) Addr(port int) string {
	return netip.AddrPortFrom(g.ip, uint16(port)).String()
}

// Hostname returns the hostname processes in the guest see.
func (g *Guest) Hostname() string { return g.hostname }

// Netns returns the path of the guest's network namespace.
func (g *Guest) Netns() string { return g.netns }

// Port returns the name of the guest's veth port in the bridge namespace.
func (g *Guest) Port() string { return g.port }

// String returns the guest's name and address, e.g. "n1 (172.18.0.1)".
func (g *Guest) String() string { return g.name + " (" + g.ip.String() + ")" }

// Do runs fn inside the guest's network namespace (see ns.Do for what fn may do).
func (g *Guest) Do(fn func() error) error { return ns.Do(g.netns, fn) }

// DialContext connects as the guest: the connection starts in the guest's namespace and
// is subject to partitions and impairments. It fits http.Transport.DialContext.
func (g *Guest) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	return dialFrom(ctx, g.netns, network, addr)
}

// HTTPClient returns an HTTP client that connects as the guest (see Env.HTTPClient for its
// settings).
func (g *Guest) HTTPClient() *http.Client { return httpClient(g.DialContext) }

// Command returns an exec.Cmd for name and args (looked up as exec.Command does) to be run in
// the guest with StartCmd, for callers that need to set Env, Dir or Stdin. Stdout and Stderr
// must be left unset: the guest captures them.
func (g *Guest) Command(ctx context.Context, name string, args ...string) *exec.Cmd {
	return exec.CommandContext(ctx, name, args...)
}

// Start starts name with args (looked up as exec.Command does) in the guest and returns it.
// The process sees the guest's network, hostname, /etc/hosts and /etc/resolv.conf; its
// stdout and stderr are captured (Process.Output) and logged at the end of the test, which
// go test shows when the test fails. It is killed, with every process it started, when ctx
// is done or the test ends. The test fails when it cannot be started.
func (g *Guest) Start(ctx context.Context, name string, args ...string) *Process {
	g.env.t.Helper()
	return g.StartCmd(g.Command(ctx, name, args...))
}

// StartCmd starts cmd in the guest as Start does. cmd must come from Guest.Command or
// exec.CommandContext; its Stdout, Stderr, SysProcAttr and Cancel are set by StartCmd.
func (g *Guest) StartCmd(cmd *exec.Cmd) *Process {
	g.env.t.Helper()
	p, err := g.start(cmd)
	if err != nil {
		g.env.t.Fatal(err)
	}
	g.env.mu.Lock()
	g.env.procs = append(g.env.procs, p)
	g.env.mu.Unlock()
	return p
}

// Run runs argv in the guest to completion, as Start does, and returns its combined stdout and
// stderr; processes it left running in the background are killed. A non-zero exit gives an
// error wrapping *exec.ExitError, so errors.As can read the exit code. Run does not fail the
// test and may be called from any goroutine.
func (g *Guest) Run(ctx context.Context, argv ...string) (string, error) {
	if len(argv) == 0 {
		return "", fmt.Errorf("testenv: run in guest %s: no command given", g.name)
	}
	p, err := g.start(exec.CommandContext(ctx, argv[0], argv[1:]...))
	if err != nil {
		return "", err
	}
	e := g.env
	// Registered while it runs, so that a Run still going when the test ends is killed too.
	e.mu.Lock()
	e.procs = append(e.procs, p)
	e.mu.Unlock()
	err = p.Wait()
	p.Kill()
	e.mu.Lock()
	e.procs = slices.DeleteFunc(e.procs, func(q *Process) bool { return q == p })
	e.mu.Unlock()
	out := p.Output()
	if err != nil {
		return out, fmt.Errorf("testenv: run %q in guest %s: %w; output: %s", strings.Join(argv, " "), g.name, err, strings.TrimSpace(out))
	}
	return out, nil
}

func (g *Guest) start(cmd *exec.Cmd) (*Process, error) {
	e := g.env
	p := newProcess(g, cmd)
	binds := []ns.Bind{{Source: e.hostsFile, Target: "/etc/hosts"}, {Source: e.resolv, Target: "/etc/resolv.conf"}}
	if err := ns.Start(ns.Spec{Net: g.netns, UTS: g.uts}, binds, cmd); err != nil {
		return nil, fmt.Errorf("testenv: start %q in guest %s: %w", strings.Join(cmd.Args, " "), g.name, err)
	}
	p.started()
	return p, nil
}
