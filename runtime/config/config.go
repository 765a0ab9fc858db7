package config

import (
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/pontoon-dev/pontoon/netsetup"
	"github.com/pontoon-dev/pontoon/schedule"
)

// FileName is the name of the project file in a project's root directory.
const FileName = "pontoon.toml"

// DefaultWorkdir is the working directory inside the container when a
// command sets none; the project directory is mounted there for root "host".
const DefaultWorkdir = "/work"

// Runtime names the OCI runtime backend that runs a command's containers.
type Runtime string

// The runtimes a project file may name.
const (
	RuntimeRunc       Runtime = "runc" // the default
	RuntimeCrun       Runtime = "crun"
	RuntimeContainerd Runtime = "containerd" // the only one that can pull an image root
)

var runtimes = []string{string(RuntimeRunc), string(RuntimeCrun), string(RuntimeContainerd)}

// ParseRuntime checks a runtime name given outside a project file (a command-line override).
func ParseRuntime(s string) (Runtime, error) {
	if slices.Contains(runtimes, s) {
		return Runtime(s), nil
	}
	return "", fmt.Errorf("%q is not a runtime; use one of %s", s, strings.Join(runtimes, ", "))
}

// Network says where a plain command's container is attached.
type Network string

// The network modes of a plain command. Children of a supervise command
// have no mode of their own: each is a guest or a bridge child.
const (
	NetworkHost  Network = "host"  // the host's network namespace (the default)
	NetworkNone  Network = "none"  // a namespace with only loopback
	NetworkGuest Network = "guest" // a guest with its own address on the run's bridge
)

var networks = []string{string(NetworkNone), string(NetworkHost), string(NetworkGuest)}

// Names says where a run's guests find each other's names.
type Names string

// The ways of naming a run's guests.
const (
	// NamesHosts lists every guest of the run in each guest's /etc/hosts, beside the bridge's
	// name server (the default): names resolve without a query.
	NamesHosts Names = "hosts"
	// NamesDNS leaves the other guests (and the services) to the name server: resolvers
	// read /etc/hosts first, so only then do DNS faults reach those names.
	NamesDNS Names = "dns"
)

var namesModes = []string{string(NamesHosts), string(NamesDNS)}

// The bounds of a command's stop_timeout.
const (
	DefaultStopTimeout = 10 * time.Second
	MaxStopTimeout     = 10 * time.Minute
)

// Exit says when a supervise command's run ends.
type Exit string

// The exit policies of a supervise command.
const (
	ExitAny Exit = "any" // stop every child as soon as one exits (the default)
	ExitAll Exit = "all" // wait until every child has exited
)

var exits = []string{string(ExitAny), string(ExitAll)}

// RootKind says what a container's root filesystem is made of.
type RootKind string

// The kinds of root filesystem.
const (
	// RootHost: the host's system directories read-only, the project
	// directory read-write at /work and a private /tmp.
	RootHost RootKind = "host"
	// RootRootfs: a directory given relative to the project directory.
	RootRootfs RootKind = "rootfs"
	// RootImage: an image reference pulled by containerd.
	RootImage RootKind = "image"
)

// Root is a container's root filesystem.
type Root struct {
	Kind  RootKind
	Path  string // for RootRootfs: the directory as written in the file (see Project.Resolve)
	Image string // for RootImage: the image reference
}

// Run is what a container executes: exactly one of Argv and Shell is set.
type Run struct {
	Argv  []string // the program and its arguments, executed without a shell
	Shell string   // a command line for /bin/sh -c, written as run = { shell = "..." }
}

// Args returns the argv to execute: Argv itself, or /bin/sh -c Shell.
func (r Run) Args() []string {
	if r.Shell != "" {
		return []string{"/bin/sh", "-c", r.Shell}
	}
	return append([]string(nil), r.Argv...)
}

// Guest is a container with its own address on the run's bridge.
type Guest struct {
	IP       netip.Addr      // within GuestRange of the bridge network
	IP6      netip.Addr      // unset: the one derived from IP, or none on an IPv4-only gateway
	Hostname string          // defaults to the command's or child's name
	Aliases  []string        // further names the bridge's name server answers for the guest
	Ports    []netsetup.Port // forwards from the host, in file order; Guest empty (this guest)
}

// Command is one entry of [commands]: either a plain command (Run set,
// no Children) or a supervise command (Supervise true, Children set, no Run).
type Command struct {
	Name        string
	Description string
	// Run, Network and Guest apply to plain commands only.
	Run     Run
	Network Network
	Guest   *Guest // set exactly when Network is NetworkGuest
	// Env, Workdir, Root and Runtime are the command's own settings; for a
	// supervise command they are the defaults its children inherit.
	Env     map[string]string
	Workdir string
	Root    Root
	Runtime Runtime // resolved: the command's, else [settings], else runc
	// Supervise, Exit and Children apply to supervise commands only.
	Supervise bool
	Exit      Exit    // ExitAny unless set; empty for plain commands
	Children  []Child // in file order
	// StopTimeout is how long the containers get between the stop signal and
	// SIGKILL when the run stops (stop_timeout): DefaultStopTimeout unless set,
	// always in (0, MaxStopTimeout].
	StopTimeout time.Duration
	// Schedule, when set, is the fault schedule `pontoon run` executes on the
	// run's bridge once the guests are up ([commands.NAME.schedule]).
	Schedule *schedule.Spec
	// Services are the run's service addresses ([commands.NAME.services.SERVICE]), in file
	// order; `pontoon run` adds them once their members are attached.
	Services []Service
	// Init is a plain command's init setting, as Child.Init is a child's; nil for a
	// supervise command, whose children have their own.
	Init *bool
	// Names is where the run's guests find each other's names (names): NamesHosts unless
	// written, or NamesDNS when the schedule has DNS faults.
	Names Names
}

// Child is one container of a supervise command: a guest (Guest set) or a
// bridge child (Bridge true) running in the run's bridge namespace, which
// has no address of its own and can reach every guest.
type Child struct {
	Name        string
	Description string
	Run         Run
	Env         map[string]string // the command's env, overridden key by key by the child's
	Workdir     string            // the child's, else the command's
	Root        Root              // the child's, else the command's
	Runtime     Runtime           // the child's, else the command's
	Bridge      bool
	Guest       *Guest // set exactly when Bridge is false
	// Init runs a minimal init as the container's PID 1 that forwards signals to the
	// child's command and reaps zombies (init); nil when not written, which means true.
	Init *bool
}

// Settings are the project-wide defaults from [settings].
type Settings struct {
	Runtime Runtime // runc unless set
	// IPv4Only brings the gateway up without IPv6 when a run has to (see
	// netsetup.GatewayOptions.IPv4Only).
	IPv4Only bool
}

// Project is a validated project file.
type Project struct {
	File     string // the name the file was parsed under, used in error messages
	Dir      string // the project directory; empty if parsed without one
	Settings Settings
	Commands []Command // in file order
}

// Options tune ParseOptions.
type Options struct {
	// Dir is the project directory. When set, rootfs paths are resolved
	// against it and must name existing directories; when empty that check
	// is skipped and parsing touches no file system.
	Dir string
	// BridgeNet is the run's bridge network that guest addresses must fit;
	// DefaultBridgeNet when zero.
	BridgeNet netip.Prefix
	// Stat inspects a rootfs path; os.Stat when nil.
	Stat func(name string) (fs.FileInfo, error)
}

// Load reads and validates the project file at path, with the file's
// directory as the project directory, so rootfs paths are checked too.
// On invalid content the error is an ErrorList naming every problem.
func Load(path string) (*Project, error) { return LoadOptions(path, Options{}) }

// LoadOptions is Load with options; an empty opts.Dir means the file's directory.
func LoadOptions(path string, opts Options) (*Project, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read project file: %w", err)
	}
	if opts.Dir == "" {
		abs, err := filepath.Abs(path)
		if err != nil {
			return nil, fmt.Errorf("resolve project file %s: %w", path, err)
		}
		opts.Dir = filepath.Dir(abs)
	}
	return ParseOptions(path, data, opts)
}

// Parse validates a project file's content without touching the file
// system (rootfs existence is not checked). name is used in error messages.
// On invalid content the error is an ErrorList naming every problem.
func Parse(name string, data []byte) (*Project, error) {
	return ParseOptions(name, data, Options{})
}

// ParseOptions is Parse with a project directory, bridge network and stat
// function. It builds nothing: the returned Project is plain data, and either
// the whole file is valid or no Project is returned.
func ParseOptions(name string, data []byte, opts Options) (*Project, error) {
	return parse(name, data, opts)
}

// Command returns the command called name, or an error that suggests the
// closest name and lists the project's commands.
func (p *Project) Command(name string) (*Command, error) {
	names := make([]string, len(p.Commands))
	for i := range p.Commands {
		if p.Commands[i].Name == name {
			return &p.Commands[i], nil
		}
		names[i] = p.Commands[i].Name
	}
	return nil, fmt.Errorf("no command %q in %s%s (commands: %s)",
		name, p.File, didYouMean(name, names), strings.Join(names, ", "))
}

// Resolve returns the host path of a path written relative to the project
// directory, such as Root.Path. Absolute paths are returned unchanged.
func (p *Project) Resolve(rel string) string {
	if filepath.IsAbs(rel) {
		return filepath.Clean(rel)
	}
	return filepath.Join(p.Dir, rel)
}

// Summary is one line of `pontoon list`.
type Summary struct {
	Name        string
	Description string
	Supervise   bool
	Children    []Summary // a supervise command's children, in file order
}

// List returns the project's commands with their descriptions, in file order.
func (p *Project) List() []Summary {
	out := make([]Summary, 0, len(p.Commands))
	for _, c := range p.Commands {
		s := Summary{Name: c.Name, Description: c.Description, Supervise: c.Supervise}
		for _, ch := range c.Children {
			s.Children = append(s.Children, Summary{Name: ch.Name, Description: ch.Description})
		}
		out = append(out, s)
	}
	return out
}

// SelectChildren returns the children of a supervise command that a run
// should start: those named in only (all when only is empty), minus those
// named in exclude, in file order. Unknown names are errors that suggest the
// closest child; so is a selection that leaves nothing to run.
func (c *Command) SelectChildren(only, exclude []string) ([]Child, error) {
	if !c.Supervise {
		if len(only) > 0 || len(exclude) > 0 {
			return nil, fmt.Errorf("command %q has no children: --only and --exclude apply to supervise commands", c.Name)
		}
		return nil, nil
	}
	names := make([]string, len(c.Children))
	for i, ch := range c.Children {
		names[i] = ch.Name
	}
	var errs []string
	pick := func(flag string, list []string) map[string]bool {
		set := map[string]bool{}
		for _, n := range list {
			if !slices.Contains(names, n) {
				errs = append(errs, fmt.Sprintf("%s: command %q has no child %q%s (children: %s)",
					flag, c.Name, n, didYouMean(n, names), strings.Join(names, ", ")))
			}
			set[n] = true
		}
		return set
	}
	onlySet := pick("--only", only)
	exclSet := pick("--exclude", exclude)
	if len(errs) > 0 {
		return nil, fmt.Errorf("select children: %s", strings.Join(errs, "; "))
	}
	var out []Child
	for _, ch := range c.Children {
		if (len(only) == 0 || onlySet[ch.Name]) && !exclSet[ch.Name] {
			out = append(out, ch)
		}
	}
	if len(out) == 0 {
		// The selection as it was given: an empty list was no flag at all.
		var given []string
		if len(only) > 0 {
			given = append(given, "--only "+strings.Join(only, ","))
		}
		if len(exclude) > 0 {
			given = append(given, "--exclude "+strings.Join(exclude, ","))
		}
		return nil, fmt.Errorf("select children: %s leaves no child of command %q to run (children: %s)",
			strings.Join(given, " "), c.Name, strings.Join(names, ", "))
	}
	return out, nil
}

// Forwards returns g's ports as its bridge forwards them: to the guest
// called name (the command's or child's name).
func (g *Guest) Forwards(name string) []netsetup.Port {
	out := make([]netsetup.Port, len(g.Ports))
	for i, p := range g.Ports {
		p.Guest = name
		out[i] = p
	}
	return out
}
