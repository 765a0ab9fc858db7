package runtime

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"sort"

	"github.com/containerd/containerd/v2/pkg/cap"
	"github.com/opencontainers/runtime-spec/specs-go"
	"github.com/pontoon-dev/pontoon/hooks"
	"github.com/pontoon-dev/pontoon/netsetup"
	"github.com/pontoon-dev/pontoon/runtime/config"
)

// NetMode says which network namespace a container gets.
type NetMode string

// The network modes of a container.
const (
	NetHost   NetMode = "host"   // the host's namespace
	NetNone   NetMode = "none"   // a namespace of its own with only loopback
	NetGuest  NetMode = "guest"  // a namespace of its own that the hook attaches to a bridge
	NetBridge NetMode = "bridge" // the namespace of a bridge, shared with it
	NetJoin   NetMode = "join"   // an existing namespace given by path (a guest's), shared with it
)

// Guest is the network a guest container asks the hook for.
type Guest struct {
	Bridge string
	Name   string
	IP     netip.Addr
	IP6    netip.Addr // unset: the one derived from IP
	Ports  []netsetup.Port
	// Aliases are further names the bridge's name server answers for the guest.
	Aliases []string
}

// Container is everything pontoon needs to write an OCI bundle for one container.
type Container struct {
	// ID is the engine's container id; Name is the command's or child's name.
	ID, Name string
	Args     []string
	Env      []string // NAME=value, in addition to PATH, HOME and TERM
	Workdir  string   // inside the container; empty: /work with a ProjectDir, else /
	// Root is the root filesystem; ProjectDir is mounted read-write at /work and resolves a
	// rootfs path.
	Root       config.Root
	ProjectDir string
	Net        NetMode
	Hostname   string // empty: no UTS namespace of its own (host network)
	Guest      *Guest // for NetGuest
	// BridgeNetns is the bridge's namespace path, for NetBridge.
	BridgeNetns string
	// Netns is the path of the network namespace a NetJoin container joins.
	Netns string
	// UTS, when set, is the path of an existing UTS namespace the container joins, sharing
	// its hostname; Hostname must then be empty.
	UTS string
	// Hosts and ResolvConf, when set, are written into the bundle and bind-mounted on
	// /etc/hosts and /etc/resolv.conf.
	Hosts, ResolvConf []byte
	// HostsFile and ResolvConfFile, when set, are host files bind-mounted read-only on
	// /etc/hosts and /etc/resolv.conf instead: the container sees later changes made to
	// them in place (same inode).
	HostsFile, ResolvConfFile string
	// Init runs the command under pontoon's container init (see Init), which forwards
	// signals and reaps zombies as PID 1; it needs Pontoon, which is bind-mounted read-only
	// into the container for it.
	Init bool
	// Privileged gives the container every capability pontoon itself holds and no masked
	// paths: bridge children manage the bridge's firewall and enter its namespaces.
	Privileged bool
	// Pontoon is the pontoon binary: the hook of guests, and available to privileged
	// containers on their PATH as `pontoon`.
	Pontoon string
	// ChainEnv is where the chain lives, for the hook's flags and privileged containers'
	// mounts.
	ChainEnv netsetup.Env
}

// Paths inside a container.
const (
	// PontoonBinDir holds the pontoon binary in privileged containers, where it is on
	// PATH, and in containers with init on, which run it as PID 1.
	PontoonBinDir      = "/run/pontoon-bin"
	pontoonInContainer = PontoonBinDir + "/pontoon"
	defaultPath        = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
)

// hostSystemDirs are the host directories a "host" root shares read-only. Top-level
// symlinks among them (merged /usr) are recreated as symlinks instead.
var hostSystemDirs = []string{"/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/usr", "/etc", "/opt"}

// ociVersion is the spec version pontoon's bundles declare: it uses nothing newer, and
// crun 1.8 refuses versions it does not know.
const ociVersion = "1.0.2"

// Bundle files.
const (
	bundleConfig = "config.json"
	bundleRootfs = "rootfs"
	bundleHosts  = "hosts"
	bundleResolv = "resolv.conf"
)

// WriteBundle writes c's bundle into dir (created if needed): config.json, the empty root
// of a "host" root, and the hosts and resolv.conf files it mounts.
func WriteBundle(dir string, c *Container) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("create bundle of %s: %w", c.Name, err)
	}
	if c.Root.Kind == config.RootHost || c.Root.Kind == "" {
		if err := hostRootfs(filepath.Join(dir, bundleRootfs)); err != nil {
			return fmt.Errorf("create bundle of %s: %w", c.Name, err)
		}
	}
	for name, data := range map[string][]byte{bundleHosts: c.Hosts, bundleResolv: c.ResolvConf} {
		if data == nil {
			continue
		}
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
			return fmt.Errorf("create bundle of %s: %w", c.Name, err)
		}
	}
	spec, err := c.Spec(dir)
	if err != nil {
		return err
	}
	data, err := json.MarshalIndent(spec, "", "  ")
	if err != nil {
		return fmt.Errorf("create bundle of %s: %w", c.Name, err)
	}
	if err := os.WriteFile(filepath.Join(dir, bundleConfig), data, 0o600); err != nil {
		return fmt.Errorf("create bundle of %s: %w", c.Name, err)
	}
	return nil
}

// hostRootfs creates the root of a "host" root: an empty directory holding the host's
// top-level symlinks (/bin -> usr/bin on merged-/usr systems); the directories are mounted.
func hostRootfs(root string) error {
	if err := os.MkdirAll(root, 0o755); err != nil {
		return err
	}
	for _, d := range hostSystemDirs {
		if target, err := os.Readlink(d); err == nil {
			if err := os.Symlink(target, filepath.Join(root, d)); err != nil && !errors.Is(err, os.ErrExist) {
				return err
			}
		}
	}
	return nil
}

// processArgs is the command line of c's first process: its program, under pontoon's init
// when c has init on.
func (c *Container) processArgs() ([]string, error) {
	if !c.Init {
		return c.Args, nil
	}
	if c.Pontoon == "" {
		return nil, fmt.Errorf("container %s: init needs the pontoon binary; set Container.Pontoon or turn init off", c.Name)
	}
	return append([]string{pontoonInContainer, InitCommand, "--"}, c.Args...), nil
}

// Spec returns c's OCI runtime spec, for a bundle in dir.
func (c *Container) Spec(dir string) (*specs.Spec, error) {
	if len(c.Args) == 0 {
		return nil, fmt.Errorf("container %s: no command to run", c.Name)
	}
	workdir := c.Workdir
	if workdir == "" {
		// /work is the project directory; without one there is nothing there.
		workdir = "/"
		if c.ProjectDir != "" {
			workdir = config.DefaultWorkdir
		}
	}
	args, err := c.processArgs()
	if err != nil {
		return nil, err
	}
	s := &specs.Spec{
		Version:  ociVersion,
		Hostname: c.Hostname,
		Process: &specs.Process{
			Args: args,
			Env:  c.env(),
			Cwd:  workdir,
			User: specs.User{UID: 0, GID: 0},
			// Kept at the value runc's own default spec uses: raising a limit above the
			// caller's hard limit fails without CAP_SYS_RESOURCE.
			Rlimits: []specs.POSIXRlimit{{Type: "RLIMIT_NOFILE", Hard: 1024, Soft: 1024}},
		},
		Annotations: map[string]string{hooks.AnnotationName: c.Name},
		Linux: &specs.Linux{
			Namespaces: []specs.LinuxNamespace{{Type: specs.PIDNamespace}, {Type: specs.IPCNamespace}, {Type: specs.MountNamespace}},
		},
	}
	caps, err := c.capabilities()
	if err != nil {
		return nil, err
	}
	s.Process.Capabilities = &specs.LinuxCapabilities{Bounding: caps, Effective: caps, Permitted: caps}
	switch {
	case c.UTS != "" && c.Hostname != "":
		// The engine would set the hostname inside the joined namespace, renaming it for
		// everything else that shares it.
		return nil, fmt.Errorf("container %s: hostname %q given with the existing UTS namespace %s; give one or the other", c.Name, c.Hostname, c.UTS)
	case c.UTS != "":
		s.Linux.Namespaces = append(s.Linux.Namespaces, specs.LinuxNamespace{Type: specs.UTSNamespace, Path: c.UTS})
	case c.Hostname != "":
		s.Linux.Namespaces = append(s.Linux.Namespaces, specs.LinuxNamespace{Type: specs.UTSNamespace})
	}
	switch c.Net {
	case NetHost:
		if c.Hostname != "" || c.UTS != "" {
			return nil, fmt.Errorf("container %s: a hostname or UTS namespace needs a network other than the host's", c.Name)
		}
	case NetNone, NetGuest:
		s.Linux.Namespaces = append(s.Linux.Namespaces, specs.LinuxNamespace{Type: specs.NetworkNamespace})
	case NetBridge:
		if c.BridgeNetns == "" {
			return nil, fmt.Errorf("container %s: no bridge namespace given", c.Name)
		}
		s.Linux.Namespaces = append(s.Linux.Namespaces, specs.LinuxNamespace{Type: specs.NetworkNamespace, Path: c.BridgeNetns})
	case NetJoin:
		if c.Netns == "" {
			return nil, fmt.Errorf("container %s: no network namespace to join given", c.Name)
		}
		s.Linux.Namespaces = append(s.Linux.Namespaces, specs.LinuxNamespace{Type: specs.NetworkNamespace, Path: c.Netns})
	default:
		return nil, fmt.Errorf("container %s: unknown network mode %q", c.Name, c.Net)
	}
	if c.Net == NetGuest {
		if c.Guest == nil {
			return nil, fmt.Errorf("container %s: guest network without a guest", c.Name)
		}
		if c.Pontoon == "" {
			return nil, fmt.Errorf("container %s: no pontoon binary to run as the hook", c.Name)
		}
		req := hooks.Request{Bridge: c.Guest.Bridge, Guest: c.Guest.Name, IP: c.Guest.IP, IP6: c.Guest.IP6, Hostname: c.Hostname, Ports: c.Guest.Ports, Aliases: c.Guest.Aliases}
		for k, v := range req.Annotations() {
			s.Annotations[k] = v
		}
		// crun drops a hook's stderr unless told where to send it; the hook's one-line
		// reason for refusing a container must reach the user.
		s.Annotations["run.oci.hooks.stderr"] = "/dev/stderr"
		base := filepath.Base(c.Pontoon)
		s.Hooks = &specs.Hooks{
			CreateRuntime: []specs.Hook{{Path: c.Pontoon, Args: append([]string{base}, hooks.Args(hooks.StageCreateRuntime, c.ChainEnv)...)}},
			Poststop:      []specs.Hook{{Path: c.Pontoon, Args: append([]string{base}, hooks.Args(hooks.StagePoststop, c.ChainEnv)...)}},
		}
	}
	if !c.Privileged {
		s.Linux.MaskedPaths = []string{"/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
			"/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/sys/firmware", "/proc/scsi"}
		s.Linux.ReadonlyPaths = []string{"/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"}
		s.Linux.Resources = &specs.LinuxResources{Devices: []specs.LinuxDeviceCgroup{{Allow: false, Access: "rwm"}}}
	}
	switch c.Root.Kind {
	case config.RootHost, "":
		s.Root = &specs.Root{Path: bundleRootfs, Readonly: true}
	case config.RootRootfs:
		path := c.Root.Path
		if !filepath.IsAbs(path) {
			path = filepath.Join(c.ProjectDir, path)
		}
		s.Root = &specs.Root{Path: path}
	case config.RootImage:
		// The engine mounts the image's snapshot here.
		s.Root = &specs.Root{Path: bundleRootfs}
	default:
		return nil, fmt.Errorf("container %s: unknown root kind %q", c.Name, c.Root.Kind)
	}
	s.Mounts = c.mounts(dir)
	rootlessSpec(s)
	return s, nil
}

func (c *Container) env() []string {
	path := defaultPath
	if c.Privileged {
		path = PontoonBinDir + ":" + path
	}
	out := []string{"PATH=" + path, "HOME=/root"}
	if t := os.Getenv("TERM"); t != "" {
		out = append(out, "TERM="+t)
	}
	return append(out, c.Env...)
}

func (c *Container) mounts(dir string) []specs.Mount {
	ms := []specs.Mount{
		{Destination: "/proc", Type: "proc", Source: "proc", Options: []string{"nosuid", "noexec", "nodev"}},
		{Destination: "/dev", Type: "tmpfs", Source: "tmpfs", Options: []string{"nosuid", "strictatime", "mode=755", "size=65536k"}},
		{Destination: "/dev/pts", Type: "devpts", Source: "devpts", Options: []string{"nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"}},
		{Destination: "/dev/shm", Type: "tmpfs", Source: "shm", Options: []string{"nosuid", "noexec", "nodev", "mode=1777", "size=65536k"}},
		{Destination: "/dev/mqueue", Type: "mqueue", Source: "mqueue", Options: []string{"nosuid", "noexec", "nodev"}},
	}
	if c.Net == NetHost {
		// sysfs shows the network devices of the mounting namespace; sharing the host's
		// network, the container shares its /sys.
		ms = append(ms, specs.Mount{Destination: "/sys", Type: "bind", Source: "/sys", Options: []string{"rbind", "nosuid", "noexec", "nodev", "ro"}})
	} else {
		ms = append(ms, specs.Mount{Destination: "/sys", Type: "sysfs", Source: "sysfs", Options: []string{"nosuid", "noexec", "nodev", "ro"}})
	}
	if c.Root.Kind == config.RootHost || c.Root.Kind == "" {
		for _, d := range hostSystemDirs {
			fi, err := os.Lstat(d)
			if err != nil || !fi.IsDir() {
				continue // missing, or a symlink recreated in the root
			}
			ms = append(ms, specs.Mount{Destination: d, Type: "bind", Source: d, Options: []string{"rbind", "ro", "nosuid", "nodev"}})
		}
	}
	tmpfs := func(dst, mode string) specs.Mount {
		return specs.Mount{Destination: dst, Type: "tmpfs", Source: "tmpfs", Options: []string{"nosuid", "nodev", "mode=" + mode}}
	}
	ms = append(ms, tmpfs("/tmp", "1777"), tmpfs("/run", "755"))
	if c.Root.Kind == config.RootHost || c.Root.Kind == "" {
		ms = append(ms, tmpfs("/root", "700"))
	}
	if c.ProjectDir != "" {
		ms = append(ms, specs.Mount{Destination: config.DefaultWorkdir, Type: "bind", Source: c.ProjectDir, Options: []string{"rbind", "rw"}})
	}
	for _, f := range []struct {
		dst, file, inBundle string
		data                []byte
	}{{"/etc/hosts", c.HostsFile, bundleHosts, c.Hosts}, {"/etc/resolv.conf", c.ResolvConfFile, bundleResolv, c.ResolvConf}} {
		src := f.file
		if src == "" && f.data != nil {
			src = filepath.Join(dir, f.inBundle)
		}
		if src != "" {
			ms = append(ms, specs.Mount{Destination: f.dst, Type: "bind", Source: src, Options: []string{"bind", "ro"}})
		}
	}
	if c.Pontoon != "" && (c.Privileged || c.Init) {
		ms = append(ms, specs.Mount{Destination: pontoonInContainer, Type: "bind", Source: c.Pontoon, Options: []string{"bind", "ro"}})
	}
	if c.Privileged {
		// `pontoon partition` and friends inside a bridge child see the same chain as the
		// host: state and pinned namespaces at the same paths, and the same binary.
		state, netns := c.ChainEnv.Dirs()
		for _, d := range []string{state, netns} {
			ms = append(ms, specs.Mount{Destination: d, Type: "bind", Source: d, Options: []string{"rbind", "rw"}})
		}
	}
	return ms
}

// defaultCaps is the capability set of an unprivileged container: Docker's default.
var defaultCaps = []string{"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD", "CAP_NET_RAW",
	"CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE"}

// capabilities returns the container's capability set. A privileged container gets what
// pontoon's own bounding set holds: asking for more (CAP_SYS_RESOURCE in a restricted
// sandbox) makes the runtime fail.
func (c *Container) capabilities() ([]string, error) {
	own, err := boundingSet()
	if err != nil {
		return nil, err
	}
	// Capabilities newer than containerd's table are left out: the runtime may not know
	// their names either.
	held, _ := cap.FromBitmap(own)
	if c.Privileged {
		return held, nil
	}
	var out []string
	for _, name := range defaultCaps {
		if slices.Contains(held, name) {
			out = append(out, name)
		}
	}
	sort.Strings(out)
	return out, nil
}

func boundingSet() (uint64, error) {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0, fmt.Errorf("read own capabilities: %w", err)
	}
	defer f.Close()
	caps, err := cap.ParseProcPIDStatus(f)
	if err != nil {
		return 0, fmt.Errorf("read own capabilities from /proc/self/status: %w", err)
	}
	bnd, ok := caps[cap.Bounding]
	if !ok {
		return 0, errors.New("read own capabilities: no CapBnd in /proc/self/status")
	}
	return bnd, nil
}
