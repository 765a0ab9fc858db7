package config

import (
	"fmt"
	"net/netip"
	"strings"

	"github.com/pontoon-dev/pontoon/netsetup"
)

// The rules that tie a table's keys together, applied once its keys are
// read (schema.go): a plain command runs something and is a guest only with
// network = "guest"; a supervise command has children; a child is a guest or
// a bridge child; the guests of one command share no address, hostname or
// host port.

const nothingToRun = `has nothing to run; add run = ["program", "arg"] or run = { shell = "..." }`

func (c *checker) project(raw map[string]any) *Project {
	p := &Project{File: c.file, Dir: c.opts.Dir, Settings: Settings{Runtime: RuntimeRunc}}
	decode(c, nil, raw, topSchema.Get(), p)
	if _, ok := raw["commands"]; !ok {
		c.errf([]string{"commands"}, noCommands)
	}
	return p
}

const noCommands = `no commands defined; add one, e.g. [commands.test] with run = ["make", "test"]`

func (c *checker) settings(path []string, v any) Settings {
	s := Settings{Runtime: RuntimeRunc}
	if t, ok := c.table(path, v, "[settings]"); ok {
		decode(c, path, t, settingsSchema.Get(), &s)
	}
	return s
}

func (c *checker) commands(path []string, v any, s Settings) []Command {
	t, ok := c.table(path, v, "[commands.NAME] tables")
	if !ok {
		return nil
	}
	names := c.keys(path, t)
	if len(names) == 0 {
		c.errf(path, noCommands)
	}
	var out []Command
	for _, name := range names {
		cp := sub(path, name)
		c.name(cp, name, "command", "test")
		if ct, ok := c.table(cp, t[name], "["+keyString(cp)+"]"); ok {
			out = append(out, c.command(cp, name, ct, s))
		}
	}
	return out
}

// newDecl starts reading table t of a command or child called name over
// the settings it inherits.
func newDecl(t map[string]any, name string, child bool, parent entity) *decl {
	d := &decl{t: t, child: child, parent: parent, entity: parent}
	d.description, d.rootSet, d.runtimeSet = "", false, false
	d.env = mergeEnv(parent.env, nil)
	d.guest = Guest{Hostname: name}
	return d
}

// guestRef returns the guest d declares, for the duplicate checks.
func (d *decl) guestRef(path []string) guestRef {
	g := d.guest
	ref := guestRef{path: path, guest: &g, hostnamePath: d.hostnamePath, portPaths: d.portPaths}
	if ref.hostnamePath == nil {
		ref.hostnamePath = path
	}
	return ref
}

// checkEntity checks that root and runtime fit together and that a rootfs
// written here exists; what is "command" or "child".
func (c *checker) checkEntity(path []string, e entity, what string) {
	if e.root.Kind == RootImage && e.runtime != RuntimeContainerd {
		switch {
		case e.rootSet:
			c.errf(sub(path, "root", "image"), `image %q needs runtime "containerd", but this %s runs with %q; set runtime = "containerd" (here or in [settings]) or use root = { rootfs = "DIR" }`,
				e.root.Image, what, e.runtime)
		case e.runtimeSet:
			c.errf(sub(path, "runtime"), `%q cannot run the image root this %s inherits; use runtime = "containerd", or give it root = "host" or { rootfs = "DIR" }`,
				e.runtime, what)
		}
	}
	if e.rootSet && e.root.Kind == RootRootfs {
		c.checkRootfs(sub(path, "root", "rootfs"), e.root.Path)
	}
}

func (c *checker) command(path []string, name string, t map[string]any, s Settings) (cmd Command) {
	before := len(c.errs)
	d := newDecl(t, name, false, entity{workdir: DefaultWorkdir, root: Root{Kind: RootHost}, runtime: s.Runtime})
	// A supervise that is not a boolean is reported; the rest is judged by
	// the command's shape.
	d.supervise = d.has("supervise") && d.has("children")
	d.network, d.netBad = NetworkHost, d.has("network")
	d.exit, d.stopTimeout, d.names = ExitAny, DefaultStopTimeout, NamesHosts
	decode(c, path, t, commandSchema.Get(), d)
	c.checkEntity(path, d.entity, "command")
	cmd = Command{
		Name:        name,
		Description: d.description,
		Env:         d.env,
		Workdir:     d.workdir,
		Root:        d.root,
		Runtime:     d.runtime,
		Supervise:   d.supervise,
		StopTimeout: d.stopTimeout,
		Init:        d.init,
		Names:       d.names,
	}
	// Read last: the schedule names the guests of the whole command.
	defer func() {
		if d.schedule != nil {
			// A mistake in the command or its children (a mistyped ip) can leave guests out:
			// the schedule is then checked on its own, not against guests that are missing.
			cmd.Schedule = c.schedule(d.schedPath, d.schedule, cmd.ScheduleGuests(), len(c.errs) == before)
		}
		if cmd.Schedule != nil && cmd.Schedule.HasDNS() {
			switch {
			case d.namesPath == nil:
				cmd.Names = NamesDNS
			case cmd.Names == NamesHosts:
				c.errf(d.namesPath, `names = "hosts" lists every guest in each guest's /etc/hosts, which resolvers read before asking the name server, so the schedule's DNS faults would reach no guest's name; write names = "dns", or remove names (a schedule with DNS faults makes it "dns")`)
			}
		}
		if d.services != nil {
			cmd.Services = c.services(d.svcPath, d.services, cmd)
		}
	}()
	if d.supervise {
		cmd.Exit = d.exit
		c.children(path, d, &cmd)
		return cmd
	}
	cmd.Run, cmd.Network = d.run, d.network
	if !d.has("run") && !d.has("children") {
		c.errf(path, nothingToRun)
	}
	if cmd.Network == NetworkGuest {
		ref := d.guestRef(path)
		cmd.Guest = ref.guest
		if !d.hasIP {
			c.errf(sub(path, "network"), `network = "guest" needs an address; add ip = %q (any of %s)`, c.first.String(), c.rangeText())
		}
		c.checkGuests([]guestRef{ref})
	}
	return cmd
}

// children reads the children of a supervise command.
func (c *checker) children(path []string, d *decl, cmd *Command) {
	cp := sub(path, "children")
	none := fmt.Sprintf(`a supervise command needs at least one child; add [%s] with run and ip = %q (or bridge = true)`,
		keyString(sub(cp, "NAME")), c.first.String())
	if !d.has("children") {
		c.errf(path, "%s", none)
		return
	}
	if d.children == nil {
		return // not a table, reported
	}
	names := c.keys(cp, d.children)
	if len(names) == 0 {
		c.errf(cp, "%s", none)
		return
	}
	parent := entity{env: cmd.Env, workdir: cmd.Workdir, root: cmd.Root, runtime: cmd.Runtime}
	var refs []guestRef
	var missingIP [][]string
	for _, name := range names {
		chp := sub(cp, name)
		c.name(chp, name, "child", "node")
		cht, ok := c.table(chp, d.children[name], "["+keyString(chp)+"]")
		if !ok {
			continue
		}
		ch, ref, missing := c.child(chp, name, cht, parent)
		cmd.Children = append(cmd.Children, ch)
		if ref != nil {
			refs = append(refs, *ref)
		}
		if missing {
			missingIP = append(missingIP, chp)
		}
	}
	used := c.checkGuests(refs)
	for _, chp := range missingIP {
		free := c.freeIP(used)
		used[free] = true
		c.errf(chp, `needs ip = %q to be a guest on the run's bridge (any of %s), or bridge = true to run in the bridge namespace`,
			free.String(), c.rangeText())
	}
}

// child reads one child. It returns the guest to check for duplicates (nil
// for a bridge child) and whether the child lacks both ip and bridge.
func (c *checker) child(path []string, name string, t map[string]any, parent entity) (Child, *guestRef, bool) {
	d := newDecl(t, name, true, parent)
	d.bridgeBad = d.has("bridge")
	decode(c, path, t, childSchema.Get(), d)
	c.checkEntity(path, d.entity, "child")
	ch := Child{Name: name, Description: d.description, Run: d.run, Env: d.env, Workdir: d.workdir, Root: d.root,
		Runtime: d.runtime, Bridge: d.bridge, Init: d.init}
	if !d.has("run") {
		c.errf(path, nothingToRun)
	}
	if d.bridge {
		return ch, nil, false
	}
	ref := d.guestRef(path)
	ch.Guest = ref.guest
	return ch, &ref, !d.hasIP && !d.bridgeBad
}

// guestRef is one guest of a command, for the duplicate checks.
type guestRef struct {
	path         []string // the command or child
	guest        *Guest
	hostnamePath []string   // where the hostname is written: the hostname key, or path when defaulted
	portPaths    [][]string // where each port is written
}

// freeIP returns the lowest guest address not in used.
func (c *checker) freeIP(used map[netip.Addr]bool) netip.Addr {
	for a := c.first; a.IsValid() && a.Compare(c.last) <= 0; a = a.Next() {
		if !used[a] {
			return a
		}
	}
	return c.first
}

type portKey struct {
	host  uint16
	proto string
}

// servedClash finds a name guest r would be served under that guest o is served under too,
// as attaching it would (netsetup.ServedClash); a hostname both have is left to checkGuests'
// own message. It returns the name, where r gives it, and what it is.
func servedClash(r, o guestRef) (name string, where []string, what string) {
	guest := func(x guestRef) netsetup.Guest {
		return netsetup.Guest{Name: x.path[len(x.path)-1], Hostname: x.guest.Hostname, Aliases: x.guest.Aliases}
	}
	name, what, _ = netsetup.ServedClash(guest(r), guest(o))
	if name == "" || strings.EqualFold(name, r.guest.Hostname) && strings.EqualFold(name, o.guest.Hostname) {
		return "", nil, ""
	}
	switch what {
	case "name":
		return name, r.path, what
	case "hostname":
		return name, r.hostnamePath, what
	}
	return name, sub(r.path, "aliases"), what
}

// checkGuests rejects addresses, hostnames and host ports that two guests
// of one command share, naming both. It returns the addresses in use.
func (c *checker) checkGuests(refs []guestRef) map[netip.Addr]bool {
	ips := map[netip.Addr]guestRef{}
	hosts := map[string]guestRef{}
	type portUse struct {
		ref  guestRef
		path []string
	}
	ports := map[portKey]portUse{}
	used := map[netip.Addr]bool{}
	for _, r := range refs {
		if r.guest.IP.IsValid() {
			used[r.guest.IP] = true
		}
	}
	for _, r := range refs {
		g := r.guest
		if g.IP.IsValid() {
			if o, dup := ips[g.IP]; dup {
				free := c.freeIP(used)
				c.errf(sub(r.path, "ip"), "%s is already used by %s (line %d); give each guest its own address, e.g. %s",
					g.IP, keyString(o.path), c.lines.line(sub(o.path, "ip")), free)
				used[free] = true
			} else {
				ips[g.IP] = r
			}
		}
		h := strings.ToLower(g.Hostname)
		if o, dup := hosts[h]; dup {
			c.errf(r.hostnamePath, "hostname %q is already used by %s (line %d); set hostname to a name no other guest of this command uses",
				g.Hostname, keyString(o.path), c.lines.line(o.hostnamePath))
		} else {
			hosts[h] = r
		}
		for _, o := range refs {
			if o.path[len(o.path)-1] == r.path[len(r.path)-1] {
				break // each pair once, from its second guest
			}
			if n, where, what := servedClash(r, o); n != "" {
				c.errf(where, "%s %q is already a name of %s (its name, hostname or an alias; names are served without regard to case); choose another %s",
					what, n, keyString(o.path), what)
			}
		}
		for i, p := range g.Ports {
			k := portKey{p.HostPort, p.Proto}
			if o, dup := ports[k]; dup {
				c.errAt(sub(r.path, "ports"), c.lines.line(r.portPaths[i]), "host port %d/%s is already forwarded to %s (line %d); pick another host port",
					p.HostPort, p.Proto, keyString(o.ref.path), c.lines.line(o.path))
			} else {
				ports[k] = portUse{r, r.portPaths[i]}
			}
		}
	}
	return used
}
