package runtime

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync/atomic"
	"time"

	"github.com/pontoon-dev/pontoon/internal/userns"
	"github.com/pontoon-dev/pontoon/names"
	"github.com/pontoon-dev/pontoon/netsetup"
	"github.com/pontoon-dev/pontoon/runtime/config"
)

// Options tune Run.
type Options struct {
	// Env says where the chain lives; the zero value is the real host.
	Env netsetup.Env
	// Gateway is used when the gateway is not up and Run brings it up.
	Gateway netsetup.GatewayOptions
	// Engine says where engines keep state and how to reach containerd.
	Engine EngineOptions
	// Runtime, when set, overrides the runtime every container of the run would use.
	Runtime config.Runtime
	// Only and Exclude select a supervise command's children by name (--only, --exclude).
	Only, Exclude []string
	// Args are appended to a plain command's argv; with a shell command they become "$@".
	Args []string
	// Stdin, Stdout and Stderr are a plain command's stdio; children's output goes to Stdout
	// and Stderr line by line, each line prefixed with the child's name. Nil: os.Stdin,
	// os.Stdout, os.Stderr.
	Stdin          io.Reader
	Stdout, Stderr io.Writer
	// Log receives pontoon's own progress lines; nil: Stderr.
	Log io.Writer
	// Signals are forwarded to the containers: the first SIGINT or SIGTERM stops the run
	// (each container gets the signal, and SIGKILL after StopTimeout), a second one kills
	// every container at once. Other signals are forwarded as they are. A plain command
	// whose stdin is a terminal ignores SIGINT here: the terminal's Ctrl-C reaches its
	// container directly. Nil: no forwarding; cancelling ctx stops the run like a first
	// SIGTERM.
	Signals <-chan os.Signal
	// StopTimeout is how long containers get to exit after the stop signal; 0: the
	// command's stop_timeout, else DefaultStopTimeout.
	StopTimeout time.Duration
	// Pontoon is the pontoon binary the hooks run; empty: the running executable.
	Pontoon string
	// BundleDir holds the run's bundles (removed afterwards); empty: <state dir>/runs.
	BundleDir string
	// Started, when set, is called (on a goroutine of its own) once every container of the
	// run has been started.
	Started func(Started)
}

// Started describes a run whose containers have all been started (their processes exist;
// services inside may still be starting).
type Started struct {
	Command string
	// Bridge is the run's bridge (empty for a plain command on the host or no network) and
	// BridgeNetns its namespace.
	Bridge, BridgeNetns string
	// Guests are the addresses of the run's guests by name.
	Guests map[string]netip.Addr
}

// DefaultStopTimeout is how long containers get between the stop signal and SIGKILL when
// neither Options nor the command say.
const DefaultStopTimeout = config.DefaultStopTimeout

// ExitSetupFailed is the exit status Run returns with an error: pontoon could not run the
// command at all (as docker and podman use 125).
const ExitSetupFailed = 125

func (o *Options) defaults() error {
	if o.Stdin == nil {
		o.Stdin = os.Stdin
	}
	if o.Stdout == nil {
		o.Stdout = os.Stdout
	}
	if o.Stderr == nil {
		o.Stderr = os.Stderr
	}
	if o.Log == nil {
		o.Log = o.Stderr
	}
	if o.Pontoon == "" {
		self, err := os.Executable()
		if err != nil {
			return fmt.Errorf("find the pontoon binary for the hook: %w", err)
		}
		o.Pontoon = self
	}
	if o.BundleDir == "" {
		state, _ := o.Env.Dirs()
		o.BundleDir = filepath.Join(state, "runs")
	}
	state, _ := o.Env.Dirs()
	rootlessRuntimeRoot(state, &o.Engine)
	return nil
}

// Run runs command name of project p and returns its exit status.
//
// A supervise command gets a bridge of its own (owned by this process, so `pontoon gc`
// removes it should pontoon die), its guests and bridge children start in containers, their
// output is streamed line by line prefixed with their names, and the exit policy decides
// when the run ends: "any" stops every child once one exits and returns that child's
// status; "all" waits for every child and returns the first non-zero status. A plain command
// runs in one container with the given stdio and network (host, none or guest). The gateway
// is brought up if it is not. The bridge is always torn down before Run returns.
//
// A supervise run ended by a signal returns 128+signal unless a child's status decided it
// first; a plain command always returns its container's status. On error (nothing could be
// run) the status is ExitSetupFailed.
func Run(ctx context.Context, p *config.Project, name string, opt Options) (int, error) {
	if err := opt.defaults(); err != nil {
		return ExitSetupFailed, err
	}
	cmd, err := p.Command(name)
	if err != nil {
		return ExitSetupFailed, err
	}
	// pontoon.toml's check of the schedule knows no kernel: what this one lacks for its faults
	// (netem) is refused here, before the run makes anything.
	if cmd.Schedule != nil {
		if err := cmd.Schedule.CheckKernel(cmd.ScheduleGuests()); err != nil {
			return ExitSetupFailed, err
		}
	}
	r := &run{p: p, cmd: cmd, opt: opt, engines: map[config.Runtime]Engine{}, stopTimeout: opt.StopTimeout}
	if r.stopTimeout <= 0 {
		r.stopTimeout = cmd.StopTimeout
	}
	if r.stopTimeout <= 0 {
		r.stopTimeout = DefaultStopTimeout
	}
	defer r.teardown()
	if cmd.Supervise {
		return r.supervise(ctx)
	}
	return r.plain(ctx)
}

// run is one Run in progress.
type run struct {
	p       *config.Project
	cmd     *config.Command
	opt     Options
	plan    netsetup.Plan
	engines map[config.Runtime]Engine
	bridge  string     // the run's bridge once created
	dir     *bundleDir // the run's bundle directory once created
	forker  *forker
	exec    *execServer // serves `pontoon exec` for bridge children
	names   *names.Server
	// stopTimeout is how long containers get between the stop signal and SIGKILL.
	stopTimeout time.Duration
}

var runCounter atomic.Int64

// bridgeName names a run's bridge after its command and this process, so concurrent runs
// never collide and `pontoon bridge list` shows whose bridge it is.
func bridgeName(cmd string) string {
	if len(cmd) > 40 {
		cmd = cmd[:40]
	}
	name := fmt.Sprintf("%s-%d", cmd, os.Getpid())
	if n := runCounter.Add(1); n > 1 {
		name += fmt.Sprintf("-%d", n)
	}
	return name
}

func (r *run) logf(format string, args ...any) {
	fmt.Fprintf(r.opt.Log, "pontoon: "+format+"\n", args...)
}

func (r *run) engine(rt config.Runtime) (Engine, error) {
	if r.opt.Runtime != "" {
		rt = r.opt.Runtime
	}
	if e, ok := r.engines[rt]; ok {
		return e, nil
	}
	e, err := NewEngine(rt, r.opt.Engine)
	if err != nil {
		return nil, fmt.Errorf("command %s: %w", r.cmd.Name, err)
	}
	r.engines[rt] = e
	return e, nil
}

// ensureGateway records the chain's plan, bringing the gateway up when it is not.
func (r *run) ensureGateway() error {
	plan, err := netsetup.CurrentPlan(r.opt.Env)
	if errors.Is(err, netsetup.ErrNoGateway) {
		gw := r.opt.Gateway
		gw.IPv4Only = gw.IPv4Only || r.p.Settings.IPv4Only
		if _, upErr := netsetup.GatewayUp(r.opt.Env, gw); upErr != nil {
			who := "as root"
			if userns.Inside() {
				who = "as yourself: in your pontoon space it needs no root"
			}
			return fmt.Errorf("the pontoon gateway is not up and bringing it up failed: %w; fix that and run `pontoon gateway up` (%s)", upErr, who)
		}
		plan, err = netsetup.CurrentPlan(r.opt.Env)
		if err == nil {
			r.logf("brought the gateway up (%s); `pontoon gateway down` removes it", plan)
		}
	}
	if err != nil {
		return err
	}
	r.plan = plan
	return nil
}

func (r *run) checkIP(who string, ip netip.Addr) error {
	if _, err := r.plan.ParseGuestIP(ip.String()); err != nil {
		return fmt.Errorf("%s has ip %s, which the gateway's plan %s does not allow: %w; change the address, or bring the gateway up with a subnet that holds it", who, ip, r.plan, err)
	}
	return nil
}

func (r *run) createBridge(ports []netsetup.Port) error {
	self := netsetup.Self()
	// Only this process makes names with its pid, but a dead process with the same pid may
	// have left one behind for gc: then the next name is tried.
	for i := 0; ; i++ {
		name := bridgeName(r.cmd.Name)
		_, err := netsetup.CreateBridge(r.opt.Env, name, netsetup.BridgeOptions{Ports: ports, Owner: &self})
		if err == nil {
			r.bridge = name
			return nil
		}
		if !errors.Is(err, netsetup.ErrBridgeExists) || i == 99 {
			return err
		}
	}
}

func (r *run) bundleDir() (string, error) {
	prefix := r.bridge
	if prefix == "" {
		prefix = fmt.Sprintf("%s-%d", r.cmd.Name, os.Getpid())
	}
	dir, err := newBundleDir(r.opt.BundleDir, prefix, r.opt.Engine)
	if err != nil {
		return "", err
	}
	r.dir = dir
	return dir.path, nil
}

// teardown removes the run's bundles and bridge; it runs however Run ends.
func (r *run) teardown() {
	if r.exec != nil {
		r.exec.Close()
	}
	if r.dir != nil {
		if err := r.dir.remove(); err != nil {
			r.logf("%v", err)
		}
	}
	r.stopNames()
	if r.bridge != "" {
		if err := netsetup.DestroyBridge(r.opt.Env, r.bridge); err != nil {
			r.logf("could not remove bridge %s: %v; `pontoon gc` removes it", r.bridge, err)
		}
	}
}

// envList renders env sorted by name, after pontoon's own variables.
func envList(own [][2]string, env map[string]string) []string {
	var out []string
	for _, kv := range own {
		if kv[1] != "" {
			out = append(out, kv[0]+"="+kv[1])
		}
	}
	keys := make([]string, 0, len(env))
	for k := range env {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		out = append(out, k+"="+env[k])
	}
	return out
}

// chainEnvVars tells pontoon commands inside privileged containers where the chain lives
// when it is not the real host's, in the encoding netsetup.EnvFromEnviron reads back.
func chainEnvVars(env netsetup.Env) [][2]string {
	var out [][2]string
	for _, kv := range env.Environ() {
		k, v, _ := strings.Cut(kv, "=")
		out = append(out, [2]string{k, v})
	}
	return out
}

// supervise runs a supervise command.
func (r *run) supervise(ctx context.Context) (int, error) {
	if len(r.opt.Args) > 0 {
		return ExitSetupFailed, fmt.Errorf("command %s supervises children and takes no arguments; arguments apply to plain commands", r.cmd.Name)
	}
	children, err := r.cmd.SelectChildren(r.opt.Only, r.opt.Exclude)
	if err != nil {
		return ExitSetupFailed, err
	}
	if err := r.ensureGateway(); err != nil {
		return ExitSetupFailed, err
	}
	var ports []netsetup.Port
	// entries are the lines of every child's /etc/hosts; with names = "dns" a guest's own
	// lines (ownHosts) go into its file alone, and other guests are the name server's to answer.
	var entries []HostEntry
	ownHosts := map[string][]HostEntry{}
	var bridgeNames []string
	guests := map[string]netip.Addr{}
	for _, ch := range children {
		if _, err := r.engine(ch.Runtime); err != nil {
			return ExitSetupFailed, err
		}
		if ch.Bridge {
			bridgeNames = append(bridgeNames, ch.Name)
			continue
		}
		if err := r.checkIP(fmt.Sprintf("child %s of command %s", ch.Name, r.cmd.Name), ch.Guest.IP); err != nil {
			return ExitSetupFailed, err
		}
		guests[ch.Name] = ch.Guest.IP
		names := []string{ch.Guest.Hostname}
		if !strings.EqualFold(ch.Guest.Hostname, ch.Name) {
			names = append(names, ch.Name)
		}
		ownHosts[ch.Name] = append(ownHosts[ch.Name], HostEntry{IP: ch.Guest.IP, Names: names})
		if ip6 := r.plan.ResolveGuestIP6(ch.Guest.IP6, ch.Guest.IP); ip6.IsValid() {
			ownHosts[ch.Name] = append(ownHosts[ch.Name], HostEntry{IP: ip6, Names: names})
		}
		if r.cmd.Names != config.NamesDNS {
			entries = append(entries, ownHosts[ch.Name]...)
		}
		ports = append(ports, ch.Guest.Forwards(ch.Name)...)
	}
	if len(bridgeNames) > 0 {
		entries = append(entries, HostEntry{IP: r.plan.BridgeAddr().Addr(), Names: bridgeNames})
		if r.plan.IPv6() {
			entries = append(entries, HostEntry{IP: r.plan.BridgeAddr6().Addr(), Names: bridgeNames})
		}
	}
	if r.cmd.Names != config.NamesDNS {
		entries = append(entries, r.serviceHosts()...)
	}
	if err := r.createBridge(ports); err != nil {
		return ExitSetupFailed, err
	}
	if len(bridgeNames) > 0 {
		// Without it only `pontoon exec` from the bridge children fails, saying why.
		if srv, err := serveExec(r.opt.Env, r.bridge); err != nil {
			r.logf("%v", err)
		} else {
			r.exec = srv
		}
	}
	resolv, err := r.serveNames()
	if err != nil {
		return ExitSetupFailed, err
	}
	dir, err := r.bundleDir()
	if err != nil {
		return ExitSetupFailed, err
	}
	brNetns := r.opt.Env.BridgeNetns(r.bridge)
	var procs []*proc
	// Guests first: bridge children typically act on guests (partitions, checks).
	ordered := make([]config.Child, 0, len(children))
	for _, ch := range children {
		if !ch.Bridge {
			ordered = append(ordered, ch)
		}
	}
	for _, ch := range children {
		if ch.Bridge {
			ordered = append(ordered, ch)
		}
	}
	names := make([]string, len(ordered))
	for i, ch := range ordered {
		names[i] = ch.Name
	}
	pfx := prefixes(names)
	// Guests pontoon attaches itself (see attachesItself) are attached together, before any
	// bundle is written: their bundles name the namespaces.
	var cs, attach []*Container
	for _, ch := range ordered {
		c := &Container{
			ID:         r.bridge + "-" + ch.Name,
			Name:       ch.Name,
			Args:       ch.Run.Args(),
			Workdir:    ch.Workdir,
			Root:       ch.Root,
			ProjectDir: r.p.Dir,
			Hostname:   ch.Name,
			ResolvConf: resolv,
			Pontoon:    r.opt.Pontoon,
			ChainEnv:   r.opt.Env,
			Init:       r.initFor(ch.Name, ch.Init, ch.Root),
		}
		own := [][2]string{{"PONTOON_BRIDGE", r.bridge}}
		if ch.Bridge {
			c.Net, c.BridgeNetns, c.Privileged = NetBridge, brNetns, true
			own = append(own, [2]string{"PONTOON_IP", r.plan.BridgeAddr().Addr().String()})
			own = append(own, chainEnvVars(r.opt.Env)...)
		} else {
			c.Net, c.Hostname = NetGuest, ch.Guest.Hostname
			c.Guest = &Guest{Bridge: r.bridge, Name: ch.Name, IP: ch.Guest.IP, IP6: ch.Guest.IP6, Ports: ch.Guest.Ports, Aliases: ch.Guest.Aliases}
			own = append(own, [2]string{"PONTOON_GUEST", ch.Name}, [2]string{"PONTOON_IP", ch.Guest.IP.String()})
			if ip6 := r.plan.ResolveGuestIP6(ch.Guest.IP6, ch.Guest.IP); ip6.IsValid() {
				own = append(own, [2]string{"PONTOON_IP6", ip6.String()})
			}
		}
		c.Env = envList(own, ch.Env)
		if r.cmd.Names == config.NamesDNS {
			c.Hosts = HostsFile(c.Hostname, append(slices.Clone(ownHosts[ch.Name]), entries...))
		} else {
			c.Hosts = HostsFile(c.Hostname, entries)
		}
		eng, _ := r.engine(ch.Runtime)
		p := &proc{name: ch.Name, id: c.ID, eng: eng, bundle: filepath.Join(dir, ch.Name), image: ch.Root.Image, prefix: pfx[ch.Name]}
		if c.Net == NetGuest && attachesItself(eng) {
			attach = append(attach, c)
			p.attached = true
		}
		cs = append(cs, c)
		procs = append(procs, p)
	}
	if err := r.attachGuests(attach); err != nil {
		return ExitSetupFailed, err
	}
	for i, p := range procs {
		if err := WriteBundle(p.bundle, cs[i]); err != nil {
			return ExitSetupFailed, err
		}
		p.gate = signalGate(p.eng, p.id, cs[i].Init)
	}
	r.logf("running %s on bridge %s: %s", r.cmd.Name, r.bridge, describe(ordered))
	return r.supervisor(ctx, procs, r.cmd.Exit, Started{Command: r.cmd.Name, Bridge: r.bridge, BridgeNetns: brNetns, Guests: guests})
}

func describe(children []config.Child) string {
	var parts []string
	for _, ch := range children {
		if ch.Bridge {
			parts = append(parts, ch.Name+" (bridge)")
		} else {
			parts = append(parts, ch.Name+" "+ch.Guest.IP.String())
		}
	}
	return strings.Join(parts, ", ")
}

// plain runs a plain command in one container with the caller's stdio.
func (r *run) plain(ctx context.Context) (int, error) {
	if _, err := r.cmd.SelectChildren(r.opt.Only, r.opt.Exclude); err != nil {
		return ExitSetupFailed, err // --only or --exclude given
	}
	eng, err := r.engine(r.cmd.Runtime)
	if err != nil {
		return ExitSetupFailed, err
	}
	args := r.cmd.Run.Args()
	if r.cmd.Run.Shell != "" && len(r.opt.Args) > 0 {
		args = append(args, r.cmd.Name) // $0 of the shell; the arguments become "$@"
	}
	args = append(args, r.opt.Args...)
	c := &Container{
		Name:       r.cmd.Name,
		Args:       args,
		Workdir:    r.cmd.Workdir,
		Root:       r.cmd.Root,
		ProjectDir: r.p.Dir,
		Pontoon:    r.opt.Pontoon,
		ChainEnv:   r.opt.Env,
		Init:       r.initFor(r.cmd.Name, r.cmd.Init, r.cmd.Root),
	}
	var own [][2]string
	started := Started{Command: r.cmd.Name}
	switch r.cmd.Network {
	case config.NetworkHost, "":
		c.Net = NetHost
	case config.NetworkNone:
		c.Net, c.Hostname = NetNone, r.cmd.Name
		c.Hosts = HostsFile(c.Hostname, nil)
	case config.NetworkGuest:
		g := r.cmd.Guest
		if err := r.ensureGateway(); err != nil {
			return ExitSetupFailed, err
		}
		if err := r.checkIP("command "+r.cmd.Name, g.IP); err != nil {
			return ExitSetupFailed, err
		}
		c.Guest = &Guest{Name: r.cmd.Name, IP: g.IP, IP6: g.IP6, Ports: g.Ports, Aliases: g.Aliases}
		if err := r.createBridge(g.Forwards(r.cmd.Name)); err != nil {
			return ExitSetupFailed, err
		}
		c.Guest.Bridge = r.bridge
		c.Net, c.Hostname = NetGuest, g.Hostname
		names := []string{g.Hostname}
		if !strings.EqualFold(g.Hostname, r.cmd.Name) {
			names = append(names, r.cmd.Name)
		}
		hosts := []HostEntry{{IP: g.IP, Names: names}}
		if ip6 := r.plan.ResolveGuestIP6(g.IP6, g.IP); ip6.IsValid() {
			hosts = append(hosts, HostEntry{IP: ip6, Names: names})
		}
		c.Hosts = HostsFile(c.Hostname, hosts)
		if c.ResolvConf, err = r.serveNames(); err != nil {
			return ExitSetupFailed, err
		}
		own = [][2]string{{"PONTOON_BRIDGE", r.bridge}, {"PONTOON_GUEST", r.cmd.Name}, {"PONTOON_IP", g.IP.String()}}
		if ip6 := r.plan.ResolveGuestIP6(g.IP6, g.IP); ip6.IsValid() {
			own = append(own, [2]string{"PONTOON_IP6", ip6.String()})
		}
		started.Bridge, started.BridgeNetns = r.bridge, r.opt.Env.BridgeNetns(r.bridge)
		started.Guests = map[string]netip.Addr{r.cmd.Name: g.IP}
	default:
		return ExitSetupFailed, fmt.Errorf("command %s: unknown network %q", r.cmd.Name, r.cmd.Network)
	}
	c.Env = envList(own, r.cmd.Env)
	dir, err := r.bundleDir()
	if err != nil {
		return ExitSetupFailed, err
	}
	c.ID = filepath.Base(dir)
	p := &proc{name: r.cmd.Name, id: c.ID, eng: eng, bundle: filepath.Join(dir, "bundle"), image: r.cmd.Root.Image, plain: true}
	if c.Net == NetGuest && attachesItself(eng) {
		if err := r.attachGuests([]*Container{c}); err != nil {
			return ExitSetupFailed, err
		}
		p.attached = true
	}
	if err := WriteBundle(p.bundle, c); err != nil {
		return ExitSetupFailed, err
	}
	p.gate = signalGate(p.eng, p.id, c.Init)
	return r.supervisor(ctx, []*proc{p}, config.ExitAny, started)
}
