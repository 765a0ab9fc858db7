package testenv

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/pontoon-dev/pontoon/names"
	"github.com/pontoon-dev/pontoon/netsetup"
	"github.com/pontoon-dev/pontoon/netsetup/ns"
	"github.com/pontoon-dev/pontoon/netsetup/probe"
	"github.com/pontoon-dev/pontoon/netsetup/sandbox"
	"github.com/pontoon-dev/pontoon/partition"
)

// Default settings of an Env.
const (
	// DefaultBridge is the name of the Env's bridge unless WithBridge says otherwise.
	DefaultBridge = "testenv"
	// DefaultReachTimeout bounds each probe that is expected to get through (Probe,
	// Reachable, CanConnect, MustReach). It is generous so that a loaded machine does not
	// turn a working path into a failure.
	DefaultReachTimeout = 2 * time.Second
	// DefaultUnreachTimeout bounds each probe that is expected to be lost (MustNotReach and
	// the lost pairs of MustMatch). A packet that gets through on a path that should be cut
	// answers far sooner, so a short wait keeps partitioned tests fast.
	DefaultUnreachTimeout = 400 * time.Millisecond
	// HTTPTimeout bounds each request of the clients from HTTPClient.
	HTTPTimeout = 10 * time.Second
)

// Option configures New.
type Option func(*config) error

type config struct {
	plan           netsetup.Plan
	bridge         string
	reachTimeout   time.Duration
	unreachTimeout time.Duration
	mode           partition.Mode
	cut            bool
	dnsNames       bool // guests are left out of /etc/hosts (WithDNSNames)
	ipv4Only       bool // no IPv6 (WithIPv4Only)
}

// WithIPv4Only builds the chain without IPv6: guests get IPv4 addresses only, and IPv6
// between them stays dropped. By default guests have both (Guest.IP6), and partitions and
// impairments hold on both families.
func WithIPv4Only() Option {
	return func(c *config) error { c.ipv4Only = true; return nil }
}

// WithSubnet sets the /16 the chain's address plan is derived from (default 172.18.0.0/16);
// guests then take addresses in its first /24, e.g. 10.77.0.1-10.77.0.253 for 10.77.0.0/16.
// The chain lives in a sandbox, so the subnet may overlap the real host's networks.
func WithSubnet(cidr string) Option {
	return func(c *config) error {
		p, err := netsetup.ParsePlan(cidr)
		if err != nil {
			return fmt.Errorf("testenv.WithSubnet: %w", err)
		}
		c.plan = p
		return nil
	}
}

// WithBridge names the Env's bridge (default "testenv"). The name shows up in state files and
// namespace names inside the sandbox only.
func WithBridge(name string) Option {
	return func(c *config) error {
		if name == "" {
			return errors.New("testenv.WithBridge: empty bridge name; use letters, digits, '.', '_' or '-'")
		}
		c.bridge = name
		return nil
	}
}

// WithProbeTimeouts sets how long a probe waits for an answer: reach for probes expected to get
// through, unreach for probes expected to be lost. Zero keeps the default
// (DefaultReachTimeout, DefaultUnreachTimeout).
func WithProbeTimeouts(reach, unreach time.Duration) Option {
	return func(c *config) error {
		if reach < 0 || unreach < 0 {
			return fmt.Errorf("testenv.WithProbeTimeouts: negative timeout (reach %s, unreach %s); use positive durations or 0 for the default", reach, unreach)
		}
		if reach > 0 {
			c.reachTimeout = reach
		}
		if unreach > 0 {
			c.unreachTimeout = unreach
		}
		return nil
	}
}

// Env is one test's private network: a sandboxed chain with one bridge and its guests.
// Its methods are safe for concurrent use; those that fail the test must be called from the
// test's goroutine.
type Env struct {
	t      testing.TB
	cfg    config
	sb     *sandbox.Sandbox
	bridge *netsetup.BridgeState
	files  string // hosts and resolv.conf handed to guest processes
	names  *names.Server

	mu        sync.Mutex
	guests    []*Guest
	procs     []*Process
	servers   map[string]*probe.Server // echo servers by guest name and address
	sinks     map[string]*sink         // one-way delivery receivers by guest name and address
	hostsFile string
	resolv    string

	ps pstate
}

// New builds a private chain for the calling test: a sandboxed stand-in host, the gateway and
// one bridge, all removed by t.Cleanup (also when the test fails or panics). A test binary run
// by a normal user runs in a user namespace of its own (see the package documentation); New
// skips the test when neither root nor user namespaces are at hand, or the kernel lacks
// network namespaces, and fails it when the chain cannot be built.
func New(t testing.TB, opts ...Option) *Env {
	t.Helper()
	needPrivilege(t)
	if _, err := os.Stat("/proc/self/ns/net"); err != nil {
		t.Skipf("testenv: the kernel has no network namespaces: %v", err)
	}
	cfg := config{plan: netsetup.DefaultPlan(), bridge: DefaultBridge, reachTimeout: DefaultReachTimeout, unreachTimeout: DefaultUnreachTimeout, mode: partition.ModeDrop}
	for _, o := range opts {
		if err := o(&cfg); err != nil {
			t.Fatal(err)
		}
	}
	// TempDir registers its own removal first, so it runs after the Env's cleanup below and
	// fails the test if anything is still mounted there.
	dir := t.TempDir()
	sb, err := sandbox.New(dir)
	if err != nil {
		t.Fatalf("testenv: create sandbox: %v", err)
	}
	e := &Env{t: t, cfg: cfg, sb: sb, files: filepath.Join(dir, "files"), servers: map[string]*probe.Server{}, sinks: map[string]*sink{}}
	e.ps.s = partition.State{Partition: partition.Fullmesh()}
	t.Cleanup(e.cleanup)
	if _, err := netsetup.GatewayUp(sb.Env, netsetup.GatewayOptions{Plan: cfg.plan, IPv4Only: cfg.ipv4Only}); err != nil {
		t.Fatalf("testenv: gateway up: %v", err)
	}
	if e.cfg.plan, err = netsetup.CurrentPlan(sb.Env); err != nil {
		t.Fatalf("testenv: %v", err)
	}
	self := netsetup.Self()
	if e.bridge, err = netsetup.CreateBridge(sb.Env, cfg.bridge, netsetup.BridgeOptions{Owner: &self}); err != nil {
		t.Fatalf("testenv: %v", err)
	}
	if e.names, err = names.Listen(sb.Env, cfg.bridge); err != nil {
		t.Fatalf("testenv: %v", err)
	}
	if err := e.writeFiles(); err != nil {
		t.Fatalf("testenv: %v", err)
	}
	return e
}

// writeFiles prepares the /etc/hosts and /etc/resolv.conf that guest processes see.
func (e *Env) writeFiles() error {
	if err := os.MkdirAll(e.files, 0o755); err != nil {
		return fmt.Errorf("create %s: %w", e.files, err)
	}
	rc, err := names.ResolvConf(e.sb.Env)
	if err != nil {
		return fmt.Errorf("guest resolv.conf: %w", err)
	}
	e.resolv = filepath.Join(e.files, "resolv.conf")
	if err := os.WriteFile(e.resolv, rc, 0o644); err != nil {
		return fmt.Errorf("write guest resolv.conf: %w", err)
	}
	e.hostsFile = filepath.Join(e.files, "hosts")
	hosts := "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n"
	if err := os.WriteFile(e.hostsFile, []byte(hosts), 0o644); err != nil {
		return fmt.Errorf("write guest hosts file: %w", err)
	}
	return nil
}

// cleanup tears the Env down in dependency order: processes first (they hold namespaces and
// their output is wanted in the log), then probe servers, then the chain and the sandbox.
func (e *Env) cleanup() {
	e.mu.Lock()
	procs := slices.Clone(e.procs)
	servers, sinks := e.servers, e.sinks
	e.servers, e.sinks = map[string]*probe.Server{}, map[string]*sink{}
	e.mu.Unlock()
	for _, p := range procs {
		p.Kill()
	}
	// Logged unconditionally: go test shows a test's log only when it fails (or with -v),
	// and during the cleanup of a test that panicked t.Failed still reports false.
	for _, p := range procs {
		e.t.Logf("testenv: %s; output:\n%s", p, indent(p.Output()))
	}
	for _, s := range servers {
		s.Close()
	}
	for _, s := range sinks {
		s.Close()
	}
	var errs []error
	if e.names != nil {
		e.names.Close()
	}
	if e.bridge != nil {
		errs = append(errs, netsetup.DestroyBridge(e.sb.Env, e.bridge.Name))
	}
	errs = append(errs, e.sb.Close())
	if err := errors.Join(errs...); err != nil {
		e.t.Errorf("testenv: cleanup: %v", err)
	}
}

// Plan returns the chain's address plan.
func (e *Env) Plan() netsetup.Plan { return e.cfg.plan }

// Sandbox returns the sandbox the chain lives in, for tests that need netsetup directly.
func (e *Env) Sandbox() *sandbox.Sandbox { return e.sb }

// Bridge returns the bridge's current record (guests included).
func (e *Env) Bridge() *netsetup.BridgeState {
	b, err := netsetup.GetBridge(e.sb.Env, e.cfg.bridge)
	if err != nil {
		e.t.Fatalf("testenv: %v", err)
	}
	return b
}

// BridgeNetns returns the path of the bridge's network namespace.
func (e *Env) BridgeNetns() string { return e.sb.Env.BridgeNetns(e.cfg.bridge) }

// BridgeAddr returns the bridge's own address on the guest network (x.y.0.254), the source
// address guests see for Env.DialContext connections.
func (e *Env) BridgeAddr() netip.Addr { return e.cfg.plan.BridgeAddr().Addr() }

// Do runs fn inside the bridge's network namespace (see ns.Do for what fn may do).
func (e *Env) Do(fn func() error) error { return ns.Do(e.BridgeNetns(), fn) }

// DialContext connects from the bridge namespace, which reaches every guest and is not cut by
// partitions; it fits http.Transport.DialContext.
func (e *Env) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	return dialFrom(ctx, e.BridgeNetns(), network, addr)
}

// HTTPClient returns an HTTP client whose connections start in the bridge namespace (see
// DialContext). It keeps no idle connections, so every request takes the network as it is at
// that moment; it uses no proxy, and a request without an earlier context deadline gives up
// after HTTPTimeout, so a request into a partition cannot hang the test.
func (e *Env) HTTPClient() *http.Client { return httpClient(e.DialContext) }

func dialFrom(ctx context.Context, nsPath, network, addr string) (net.Conn, error) {
	var c net.Conn
	// The socket is created inside the namespace and keeps it; the dial's waiting happens on
	// Go's poller, so the context's deadline and cancellation still apply.
	err := ns.Do(nsPath, func() (err error) {
		var d net.Dialer
		c, err = d.DialContext(ctx, network, addr)
		return err
	})
	return c, err
}

func httpClient(dial func(ctx context.Context, network, addr string) (net.Conn, error)) *http.Client {
	return &http.Client{Transport: &http.Transport{
		Proxy:             nil,
		DialContext:       dial,
		DisableKeepAlives: true,
	}, Timeout: HTTPTimeout}
}
