package runtime

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	goruntime "runtime"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/pontoon-dev/pontoon/hooks"
	"github.com/pontoon-dev/pontoon/netsetup"
	"github.com/pontoon-dev/pontoon/runtime/config"
	"golang.org/x/sys/unix"
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
	// StopTimeout is how long containers get to exit after the stop signal; 0: 10s.
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

// DefaultStopTimeout is how long containers get between the stop signal and SIGKILL.
const DefaultStopTimeout = 10 * time.Second

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
	if o.StopTimeout <= 0 {
		o.StopTimeout = DefaultStopTimeout
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
	r := &run{p: p, cmd: cmd, opt: opt, engines: map[config.Runtime]Engine{}}
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
	bridge  string // the run's bridge once created
	dir     string // the run's bundle directory once created
	forker  *forker
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
		if _, upErr := netsetup.GatewayUp(r.opt.Env, r.opt.Gateway); upErr != nil {
			return fmt.Errorf("the pontoon gateway is not up and bringing it up failed: %v; fix that and run `pontoon gateway up` (as root)", upErr)
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
		return fmt.Errorf("%s has ip %s, which the gateway's plan %s does not allow: %v; change the address, or bring the gateway up with a subnet that holds it", who, ip, r.plan, err)
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

// ownerFile names the process that created a run's bundle directory.
const ownerFile = "owner.json"

func (r *run) bundleDir() (string, error) {
	prefix := r.bridge
	if prefix == "" {
		prefix = fmt.Sprintf("%s-%d", r.cmd.Name, os.Getpid())
	}
	dir, err := newBundleDir(r.opt.BundleDir, prefix)
	if err != nil {
		return "", err
	}
	r.dir = dir
	return dir, nil
}

// newBundleDir creates a fresh directory for bundles under parent, named after prefix and
// owned by this process, after removing those of dead owners.
func newBundleDir(parent, prefix string) (string, error) {
	if err := os.MkdirAll(parent, 0o700); err != nil {
		return "", fmt.Errorf("create bundle directory: %w", err)
	}
	sweepBundles(parent)
	dir, err := os.MkdirTemp(parent, prefix+"-")
	if err != nil {
		return "", fmt.Errorf("create bundle directory: %w", err)
	}
	owner, _ := json.Marshal(netsetup.Self())
	if err := os.WriteFile(filepath.Join(dir, ownerFile), owner, 0o600); err != nil {
		os.RemoveAll(dir)
		return "", fmt.Errorf("create bundle directory: %w", err)
	}
	return dir, nil
}

// sweepBundles removes the bundle directories of runs whose pontoon died without cleaning
// up (its bridge is gc's business; its bundles are this package's).
func sweepBundles(dir string) {
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		var owner netsetup.Process
		data, err := os.ReadFile(filepath.Join(dir, e.Name(), ownerFile))
		if err != nil || json.Unmarshal(data, &owner) != nil || owner.Alive() {
			continue
		}
		os.RemoveAll(filepath.Join(dir, e.Name()))
	}
}

// teardown removes the run's bundles and bridge; it runs however Run ends.
func (r *run) teardown() {
	if r.dir != "" {
		os.RemoveAll(r.dir)
	}
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
// when it is not the real host's.
func chainEnvVars(env netsetup.Env) [][2]string {
	return [][2]string{
		{"PONTOON_STATE_DIR", env.StateDir},
		{"PONTOON_NETNS_DIR", env.NetnsDir},
		{"PONTOON_HOST_NETNS", env.HostNetns},
		{"PONTOON_RESOLV_CONF", env.ResolvConf},
	}
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
	var entries []HostEntry
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
		entries = append(entries, HostEntry{IP: ch.Guest.IP, Names: names})
		for _, pt := range ch.Guest.Ports {
			ports = append(ports, netsetup.Port{HostPort: pt.Host, Guest: ch.Name, GuestPort: pt.Guest, Proto: string(pt.Proto)})
		}
	}
	if len(bridgeNames) > 0 {
		entries = append(entries, HostEntry{IP: r.plan.BridgeAddr().Addr(), Names: bridgeNames})
	}
	if err := r.createBridge(ports); err != nil {
		return ExitSetupFailed, err
	}
	resolv, err := netsetup.GuestResolvConf(r.opt.Env)
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
		}
		own := [][2]string{{"PONTOON_BRIDGE", r.bridge}}
		if ch.Bridge {
			c.Net, c.BridgeNetns, c.Privileged = NetBridge, brNetns, true
			own = append(own, [2]string{"PONTOON_IP", r.plan.BridgeAddr().Addr().String()})
			own = append(own, chainEnvVars(r.opt.Env)...)
		} else {
			c.Net, c.Hostname = NetGuest, ch.Guest.Hostname
			c.Guest = &Guest{Bridge: r.bridge, Name: ch.Name, IP: ch.Guest.IP}
			for _, pt := range ch.Guest.Ports {
				c.Guest.Ports = append(c.Guest.Ports, hooks.Port{HostPort: pt.Host, GuestPort: pt.Guest, Proto: string(pt.Proto)})
			}
			own = append(own, [2]string{"PONTOON_GUEST", ch.Name}, [2]string{"PONTOON_IP", ch.Guest.IP.String()})
		}
		c.Env = envList(own, ch.Env)
		c.Hosts = HostsFile(c.Hostname, entries)
		eng, _ := r.engine(ch.Runtime)
		bundle := filepath.Join(dir, ch.Name)
		if err := WriteBundle(bundle, c); err != nil {
			return ExitSetupFailed, err
		}
		procs = append(procs, &proc{name: ch.Name, id: c.ID, eng: eng, bundle: bundle, image: ch.Root.Image, prefix: pfx[ch.Name]})
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
	if len(r.opt.Only) > 0 || len(r.opt.Exclude) > 0 {
		return ExitSetupFailed, fmt.Errorf("command %q has no children: --only and --exclude apply to supervise commands", r.cmd.Name)
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
		var ports []netsetup.Port
		c.Guest = &Guest{Name: r.cmd.Name, IP: g.IP}
		for _, pt := range g.Ports {
			ports = append(ports, netsetup.Port{HostPort: pt.Host, Guest: r.cmd.Name, GuestPort: pt.Guest, Proto: string(pt.Proto)})
			c.Guest.Ports = append(c.Guest.Ports, hooks.Port{HostPort: pt.Host, GuestPort: pt.Guest, Proto: string(pt.Proto)})
		}
		if err := r.createBridge(ports); err != nil {
			return ExitSetupFailed, err
		}
		c.Guest.Bridge = r.bridge
		c.Net, c.Hostname = NetGuest, g.Hostname
		names := []string{g.Hostname}
		if !strings.EqualFold(g.Hostname, r.cmd.Name) {
			names = append(names, r.cmd.Name)
		}
		c.Hosts = HostsFile(c.Hostname, []HostEntry{{IP: g.IP, Names: names}})
		if c.ResolvConf, err = netsetup.GuestResolvConf(r.opt.Env); err != nil {
			return ExitSetupFailed, err
		}
		own = [][2]string{{"PONTOON_BRIDGE", r.bridge}, {"PONTOON_GUEST", r.cmd.Name}, {"PONTOON_IP", g.IP.String()}}
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
	bundle := filepath.Join(dir, "bundle")
	if err := WriteBundle(bundle, c); err != nil {
		return ExitSetupFailed, err
	}
	p := &proc{name: r.cmd.Name, id: c.ID, eng: eng, bundle: bundle, image: r.cmd.Root.Image, plain: true}
	return r.supervisor(ctx, []*proc{p}, config.ExitAny, started)
}

// proc is one container's foreground engine process.
type proc struct {
	name, id, bundle, image string
	eng                     Engine
	prefix                  string
	plain                   bool // the caller's stdio, no prefixes

	cmd         *exec.Cmd
	copying     sync.WaitGroup
	code        int
	done        bool
	killed      bool // hard-killed: the engine may not have cleaned up
	interactive bool
}

func (p *proc) start(r *run, lw *lineWriter) error {
	cmd := p.eng.Command(p.id, p.bundle, p.image, p.plain)
	// Pdeathsig: should pontoon die, the engine gets SIGTERM and passes it to the
	// container, instead of leaving it running on a bridge gc will remove.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	if p.plain {
		cmd.Stdin, cmd.Stdout, cmd.Stderr = r.opt.Stdin, r.opt.Stdout, r.opt.Stderr
		if f, ok := r.opt.Stdin.(*os.File); ok && isTerminal(f) {
			// A terminal's Ctrl-C reaches the whole foreground process group, engine
			// included; pontoon must not forward it a second time.
			p.interactive = true
		} else {
			cmd.SysProcAttr.Setpgid = true
		}
	} else {
		// Children get signals from pontoon only, never twice from a terminal.
		cmd.SysProcAttr.Setpgid = true
		outR, outW, err := os.Pipe()
		if err != nil {
			return err
		}
		errR, errW, err := os.Pipe()
		if err != nil {
			outR.Close()
			outW.Close()
			return err
		}
		cmd.Stdout, cmd.Stderr = outW, errW
		defer outW.Close()
		defer errW.Close()
		p.copying.Add(2)
		go func() { defer p.copying.Done(); defer outR.Close(); lw.copyPrefixed(r.opt.Stdout, outR, p.prefix) }()
		go func() { defer p.copying.Done(); defer errR.Close(); lw.copyPrefixed(r.opt.Stderr, errR, p.prefix) }()
	}
	p.cmd = cmd
	if err := r.forker.start(cmd); err != nil {
		if !p.plain {
			cmd.Stdout.(*os.File).Close()
			cmd.Stderr.(*os.File).Close()
			p.copying.Wait()
		}
		return fmt.Errorf("start %s with %s: %w", p.name, p.eng.Name(), err)
	}
	return nil
}

// forker starts processes from one OS thread that stays alive for the whole run. The
// kernel sends Pdeathsig when the thread that forked a child exits, not the process; Go
// ends a thread whenever a goroutine locked to it returns, which is how netsetup/ns
// discards threads it moved between namespaces, so a child forked from an arbitrary thread
// would get its death signal at a random moment.
type forker struct {
	reqs chan func()
}

func newForker() *forker {
	f := &forker{reqs: make(chan func())}
	go func() {
		goruntime.LockOSThread()
		for fn := range f.reqs {
			fn()
		}
		// Back to the pool only once every child is gone.
		goruntime.UnlockOSThread()
	}()
	return f
}

func (f *forker) start(cmd *exec.Cmd) error {
	errc := make(chan error, 1)
	f.reqs <- func() { errc <- cmd.Start() }
	return <-errc
}

func (f *forker) close() { close(f.reqs) }

func isTerminal(f *os.File) bool {
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}

// wait waits for the engine process and its output, and records the exit status.
func (p *proc) wait() {
	err := p.cmd.Wait()
	p.code = exitCode(p.cmd.ProcessState, err)
	// Output ends when the container's last process is gone; a daemon that escaped the
	// container's pid namespace must not hold the run open.
	done := make(chan struct{})
	go func() { p.copying.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(2 * time.Second):
	}
}

func exitCode(ps *os.ProcessState, err error) int {
	if ps == nil {
		return ExitSetupFailed
	}
	if ws, ok := ps.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return 128 + int(ws.Signal())
	}
	return ps.ExitCode()
}

// supervisor starts procs, forwards signals, applies the exit policy and returns the
// run's status once every proc has exited.
func (r *run) supervisor(ctx context.Context, procs []*proc, policy config.Exit, started Started) (int, error) {
	lw := &lineWriter{}
	r.forker = newForker()
	defer r.forker.close()
	exits := make(chan *proc, len(procs))
	running := 0
	for i, p := range procs {
		if err := p.start(r, lw); err != nil {
			// Killing an engine midway can leave its container behind; Delete removes it.
			for _, q := range procs[:i] {
				q.cmd.Process.Kill()
			}
			for j := 0; j < running; j++ {
				<-exits
			}
			for _, q := range procs[:i] {
				q.eng.Delete(q.id)
			}
			return ExitSetupFailed, err
		}
		running++
		go func(p *proc) { p.wait(); exits <- p }(p)
	}
	if r.opt.Started != nil {
		// On its own goroutine: a callback that waits for services must not hold up
		// signals and exits.
		go r.opt.Started(started)
	}
	// A plain command's status is always its container's own, signals or not.
	plain := len(procs) == 1 && procs[0].plain
	interactive := plain && procs[0].interactive
	var (
		code      int
		decided   bool
		stopping  bool
		stopTimer <-chan time.Time
		killTimer <-chan time.Time
		ctxDone   = ctx.Done()
	)
	stop := func(sig syscall.Signal, why string) {
		stopping = true
		if why != "" {
			r.logf("%s", why)
		}
		r.signalAll(procs, sig)
		stopTimer = time.After(r.opt.StopTimeout)
	}
	hardKill := func(why string) {
		r.logf("%s", why)
		r.stopAll(procs, syscall.SIGKILL)
		stopTimer = nil
		killTimer = time.After(5 * time.Second)
	}
	for running > 0 {
		select {
		case p := <-exits:
			running--
			p.done = true
			if plain {
				code, decided = p.code, true
				continue
			}
			if stopping {
				continue
			}
			switch {
			case policy == config.ExitAll:
				if p.code != 0 && !decided {
					code, decided = p.code, true
				}
			case running > 0:
				code, decided = p.code, true
				stop(syscall.SIGTERM, fmt.Sprintf("%s exited with status %d; stopping the others", p.name, p.code))
			default:
				code, decided = p.code, true
			}
		case s := <-r.opt.Signals:
			sig, ok := s.(syscall.Signal)
			if !ok {
				continue
			}
			if sig == syscall.SIGINT && interactive {
				// The terminal delivered Ctrl-C to the container itself, which decides
				// what it means (an interactive shell just abandons its line).
				continue
			}
			if sig != syscall.SIGINT && sig != syscall.SIGTERM {
				r.signalAll(procs, sig)
				continue
			}
			if !stopping {
				if !decided && !plain {
					code, decided = 128+int(sig), true
				}
				stop(sig, fmt.Sprintf("got %s; stopping (again to kill at once)", unix.SignalName(sig)))
			} else {
				hardKill(fmt.Sprintf("got %s again; killing every container", unix.SignalName(sig)))
			}
		case <-ctxDone:
			ctxDone = nil
			if !stopping {
				if !decided && !plain {
					code, decided = 128+int(syscall.SIGTERM), true
				}
				stop(syscall.SIGTERM, "cancelled; stopping")
			}
		case <-stopTimer:
			hardKill(fmt.Sprintf("containers still running %v after the stop signal; killing them", r.opt.StopTimeout))
		case <-killTimer:
			// The engine itself does not react: end it and clean up after it.
			killTimer = nil
			for _, p := range procs {
				if !p.done && p.cmd.Process != nil {
					p.cmd.Process.Kill()
				}
			}
		}
	}
	for _, p := range procs {
		if p.killed {
			if err := p.eng.Delete(p.id); err != nil {
				r.logf("%v", err)
			}
		}
	}
	return code, nil
}

// signalAll sends sig to every running engine process, which passes it to its container.
func (r *run) signalAll(procs []*proc, sig syscall.Signal) {
	for _, p := range procs {
		if p.done || p.cmd == nil || p.cmd.Process == nil {
			continue
		}
		p.cmd.Process.Signal(sig)
	}
}

// stopAll kills every running container through its engine (killing the engine process
// would leave the container running).
func (r *run) stopAll(procs []*proc, sig syscall.Signal) {
	var wg sync.WaitGroup
	for _, p := range procs {
		if p.done || p.cmd == nil || p.cmd.Process == nil {
			continue
		}
		p.killed = true
		wg.Add(1)
		go func(p *proc) {
			defer wg.Done()
			if err := p.eng.Kill(p.id, sig); err != nil {
				r.logf("%v", err)
			}
		}(p)
	}
	wg.Wait()
}
