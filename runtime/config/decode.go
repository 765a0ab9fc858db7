package config

import (
	"errors"
	"fmt"
	"github.com/pontoon-dev/pontoon/netsetup"
	"io/fs"
	"net/netip"
	"os"
	"path"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/BurntSushi/toml"
)

// The keys each table accepts, in the order "allowed here" lists them.
var (
	topKeys      = []string{"settings", "commands"}
	settingsKeys = []string{"runtime"}
	commandKeys  = []string{"description", "run", "env", "workdir", "network", "ip", "hostname", "ports", "root", "runtime", "supervise", "exit", "children"}
	childKeys    = []string{"description", "run", "env", "workdir", "root", "runtime", "ip", "hostname", "ports", "bridge"}
	rootKeys     = []string{"rootfs", "image"}
	runKeys      = []string{"shell"}
)

// Hints for unknown keys that are not typos but names other tools use.
var (
	entityAliases = map[string]string{
		"cmd": `"run"`, "command": `"run"`, "args": `"run"`, "argv": `"run"`, "exec": `"run"`,
		"shell": `run = { shell = "..." }`, "script": `run = { shell = "..." }`,
		"environment": `"env"`, "cwd": `"workdir"`, "dir": `"workdir"`, "chdir": `"workdir"`,
		"working_dir": `"workdir"`, "workingdir": `"workdir"`,
		"image": `root = { image = "..." }`, "rootfs": `root = { rootfs = "..." }`,
		"net": `"network"`, "address": `"ip"`, "addr": `"ip"`, "ipv4": `"ip"`, "ip_address": `"ip"`,
		"publish": `"ports"`, "expose": `"ports"`,
		"desc": `"description"`, "help": `"description"`,
		"child": `"children"`, "nodes": `"children"`, "services": `"children"`,
		"on_exit": `"exit"`,
	}
	rootAliases = map[string]string{"img": `"image"`, "path": `"rootfs"`, "dir": `"rootfs"`, "directory": `"rootfs"`, "ref": `"image"`}
	runAliases  = map[string]string{
		"argv": `an argv list written directly: run = ["program", "arg"]`,
		"args": `an argv list written directly: run = ["program", "arg"]`,
		"cmd":  `"shell"`, "command": `"shell"`, "sh": `"shell"`, "script": `"shell"`,
	}
	networkAliases = map[string]string{"bridge": "guest", "bridged": "guest", "private": "guest", "isolated": "none", "off": "none"}
)

// checker walks the decoded document and collects every problem.
type checker struct {
	file   string
	opts   Options
	lines  *keyLines
	order  map[string][]string // keys of each table in file order, by pathID
	errs   ErrorList
	first  netip.Addr // guest range
	last   netip.Addr
	bridge netip.Addr
}

func parse(name string, data []byte, opts Options) (*Project, error) {
	bridgeNet := opts.BridgeNet
	if !bridgeNet.IsValid() {
		bridgeNet = DefaultBridgeNet
	}
	first, last, err := GuestRange(bridgeNet)
	if err != nil {
		return nil, fmt.Errorf("parse %s: %w", name, err)
	}
	bridge, _ := BridgeAddr(bridgeNet)

	var raw map[string]any
	md, err := toml.Decode(string(data), &raw)
	if err != nil {
		return nil, ErrorList{syntaxError(name, err)}
	}
	c := &checker{
		file:   name,
		opts:   opts,
		lines:  scanKeyLines(string(data)),
		order:  keyOrder(md.Keys()),
		first:  first,
		last:   last,
		bridge: bridge,
	}
	p := c.project(raw)
	if len(c.errs) > 0 {
		c.errs.sort()
		return nil, c.errs
	}
	return p, nil
}

func syntaxError(file string, err error) *Error {
	var pe toml.ParseError
	if errors.As(err, &pe) {
		return &Error{File: file, Line: max(pe.Position.Line, 1), Key: pe.LastKey, Msg: "invalid TOML: " + pe.Message}
	}
	return &Error{File: file, Line: 1, Msg: "invalid TOML: " + err.Error()}
}

// keyOrder lists, for every table, its keys in order of first appearance.
// MetaData.Keys omits tables that only appear as part of a longer key
// ([commands.x.children.a] without [commands.x]), so each key's prefixes are
// taken into account too.
func keyOrder(keys []toml.Key) map[string][]string {
	order := map[string][]string{}
	seen := map[string]bool{}
	for _, k := range keys {
		parent := ""
		for _, part := range k {
			id := parent + "\x00" + part // pathID, built one part at a time
			if !seen[id] {
				seen[id] = true
				order[parent] = append(order[parent], part)
			}
			parent = id
		}
	}
	return order
}

// keys returns the keys of table m at path in file order.
func (c *checker) keys(path []string, m map[string]any) []string {
	var out, rest []string
	seen := make(map[string]bool, len(m))
	for _, k := range c.order[pathID(path)] {
		if _, ok := m[k]; ok && !seen[k] {
			seen[k] = true
			out = append(out, k)
		}
	}
	for k := range m {
		if !seen[k] {
			rest = append(rest, k)
		}
	}
	sort.Strings(rest)
	return append(out, rest...)
}

func sub(path []string, keys ...string) []string {
	return append(append([]string(nil), path...), keys...)
}

func keyString(path []string) string { return toml.Key(path).String() }

// errf records a problem with the key at path, on the line where it is written.
func (c *checker) errf(path []string, format string, args ...any) {
	c.errAt(path, c.lines.line(path), format, args...)
}

func (c *checker) errAt(path []string, line int, format string, args ...any) {
	c.errs = append(c.errs, &Error{File: c.file, Line: line, Key: keyString(path), Msg: fmt.Sprintf(format, args...)})
}

func (c *checker) unknownKey(path []string, allowed []string, aliases map[string]string) {
	k := path[len(path)-1]
	hint := aliases[k]
	if hint == "" {
		if s := suggest(k, allowed); s != "" {
			hint = strconv.Quote(s)
		}
	}
	if hint != "" {
		c.errf(path, "unknown key; did you mean %s?", hint)
		return
	}
	c.errf(path, "unknown key; allowed here: %s", strings.Join(allowed, ", "))
}

func typeName(v any) string {
	switch v.(type) {
	case string:
		return "a string"
	case int64:
		return "an integer"
	case float64:
		return "a float"
	case bool:
		return "a boolean"
	case []map[string]any:
		return "an array of tables"
	case []any:
		return "an array"
	case map[string]any:
		return "a table"
	}
	return "a date-time"
}

func isScalar(v any) bool {
	switch v.(type) {
	case int64, float64, bool:
		return true
	}
	return false
}

func (c *checker) table(path []string, v any, how string) (map[string]any, bool) {
	m, ok := v.(map[string]any)
	if !ok {
		c.errf(path, "must be a table, not %s; write %s", typeName(v), how)
	}
	return m, ok
}

func (c *checker) str(path []string, v any, example string) (string, bool) {
	s, ok := v.(string)
	if !ok {
		c.errf(path, "must be a string, not %s; write %s = %s", typeName(v), path[len(path)-1], example)
	}
	return s, ok
}

func (c *checker) boolean(path []string, v any) (bool, bool) {
	b, ok := v.(bool)
	if !ok {
		k := path[len(path)-1]
		if s, isStr := v.(string); isStr && (s == "true" || s == "false") {
			c.errf(path, "%q is a string; write %s = %s without quotes", s, k, s)
		} else {
			c.errf(path, "must be true or false, not %s; write %s = true", typeName(v), k)
		}
	}
	return b, ok
}

func (c *checker) oneOf(path []string, v any, allowed []string, what string, aliases map[string]string) (string, bool) {
	s, ok := v.(string)
	if !ok {
		c.errf(path, "must be a string, not %s; use %s", typeName(v), quoteList(allowed))
		return "", false
	}
	if slices.Contains(allowed, s) {
		return s, true
	}
	hint := didYouMean(s, allowed)
	if a, ok := aliases[s]; ok {
		hint = "; did you mean " + strconv.Quote(a) + "?"
	}
	c.errf(path, "%q is not a %s; use %s%s", s, what, quoteList(allowed), hint)
	return "", false
}

func (c *checker) project(raw map[string]any) *Project {
	p := &Project{File: c.file, Dir: c.opts.Dir, Settings: Settings{Runtime: RuntimeRunc}}
	for _, k := range c.keys(nil, raw) {
		if !slices.Contains(topKeys, k) {
			if slices.Contains(commandKeys, k) {
				c.errf([]string{k}, "is not a top-level key; put it inside a command table, e.g. [commands.NAME]")
			} else {
				c.unknownKey([]string{k}, topKeys, nil)
			}
		}
	}
	if v, ok := raw["settings"]; ok {
		p.Settings = c.settings([]string{"settings"}, v)
	}

	path := []string{"commands"}
	const none = `no commands defined; add one, e.g. [commands.test] with run = ["make", "test"]`
	v, ok := raw["commands"]
	if !ok {
		c.errf(path, none)
		return p
	}
	t, ok := c.table(path, v, "[commands.NAME] tables")
	if !ok {
		return p
	}
	names := c.keys(path, t)
	if len(names) == 0 {
		c.errf(path, none)
	}
	for _, name := range names {
		cp := sub(path, name)
		c.name(cp, name, "command", "test")
		if ct, ok := c.table(cp, t[name], "["+keyString(cp)+"]"); ok {
			p.Commands = append(p.Commands, c.command(cp, name, ct, p.Settings))
		}
	}
	return p
}

func (c *checker) settings(path []string, v any) Settings {
	s := Settings{Runtime: RuntimeRunc}
	t, ok := c.table(path, v, "[settings]")
	if !ok {
		return s
	}
	for _, k := range c.keys(path, t) {
		kp := sub(path, k)
		switch {
		case k == "runtime":
			if r, ok := c.oneOf(kp, t[k], runtimes, "runtime", nil); ok {
				s.Runtime = Runtime(r)
			}
		case slices.Contains(commandKeys, k):
			c.errf(kp, "[settings] holds only runtime; set %s on each command instead", k)
		default:
			c.unknownKey(kp, settingsKeys, nil)
		}
	}
	return s
}

const maxNameLen = 63 // so a name can serve as a hostname

func validName(s string) bool {
	if s == "" || len(s) > maxNameLen || s[0] == '_' || s[0] == '-' {
		return false
	}
	for i := 0; i < len(s); i++ {
		ch := s[i]
		if !(ch >= 'a' && ch <= 'z' || ch >= '0' && ch <= '9' || ch == '_' || ch == '-') {
			return false
		}
	}
	return true
}

// fixName turns s into a name validName accepts, or returns fallback.
func fixName(s, fallback string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(s) {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '_' || r == '-' {
			b.WriteRune(r)
		} else {
			b.WriteByte('-')
		}
	}
	out := strings.TrimLeft(b.String(), "-_")
	if len(out) > maxNameLen {
		out = out[:maxNameLen]
	}
	if !validName(out) {
		return fallback
	}
	return out
}

func (c *checker) name(path []string, name, what, fallback string) {
	if !validName(name) {
		c.errf(path, "%s name %q must match [a-z0-9][a-z0-9_-]* (at most %d characters); rename it, e.g. %q",
			what, name, maxNameLen, fixName(name, fallback))
	}
}

// entity holds what plain commands, supervise commands and children share.
type entity struct {
	description string
	env         map[string]string
	workdir     string
	root        Root
	runtime     Runtime
	rootSet     bool // root was written here (not inherited)
	runtimeSet  bool // runtime was written here
}

// common reads the keys every command and child accepts besides run.
// inherited holds the defaults: the command's for a child.
func (c *checker) common(path []string, t map[string]any, inherited entity, what string) entity {
	e := inherited
	e.rootSet, e.runtimeSet = false, false
	e.description = ""
	if v, ok := t["description"]; ok {
		e.description, _ = c.str(sub(path, "description"), v, `"what it does"`)
	}
	if v, ok := t["env"]; ok {
		e.env = c.env(sub(path, "env"), v, inherited.env)
	} else {
		e.env = mergeEnv(inherited.env, nil)
	}
	if v, ok := t["workdir"]; ok {
		if w, ok := c.workdir(sub(path, "workdir"), v); ok {
			e.workdir = w
		}
	}
	if v, ok := t["runtime"]; ok {
		if r, ok := c.oneOf(sub(path, "runtime"), v, runtimes, "runtime", nil); ok {
			e.runtime, e.runtimeSet = Runtime(r), true
		}
	}
	if v, ok := t["root"]; ok {
		if r, ok := c.root(sub(path, "root"), v); ok {
			e.root, e.rootSet = r, true
		}
	}

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
	return e
}

// mergeEnv returns a copy of base with over's entries added; nil if both are empty.
func mergeEnv(base, over map[string]string) map[string]string {
	if len(base) == 0 && len(over) == 0 {
		return nil
	}
	out := make(map[string]string, len(base)+len(over))
	for k, v := range base {
		out[k] = v
	}
	for k, v := range over {
		out[k] = v
	}
	return out
}

func (c *checker) command(path []string, name string, t map[string]any, s Settings) Command {
	for _, k := range c.keys(path, t) {
		if !slices.Contains(commandKeys, k) {
			c.unknownKey(sub(path, k), commandKeys, entityAliases)
		}
	}
	_, hasChildren := t["children"]
	supervise := false
	if v, ok := t["supervise"]; ok {
		if b, ok := c.boolean(sub(path, "supervise"), v); ok {
			supervise = b
		} else {
			supervise = hasChildren // judge the rest by its shape
		}
	}
	defaults := entity{workdir: DefaultWorkdir, root: Root{Kind: RootHost}, runtime: s.Runtime}
	e := c.common(path, t, defaults, "command")
	cmd := Command{
		Name:        name,
		Description: e.description,
		Env:         e.env,
		Workdir:     e.workdir,
		Root:        e.root,
		Runtime:     e.runtime,
		Supervise:   supervise,
	}
	if supervise {
		c.supervise(path, t, &cmd)
	} else {
		c.plain(path, t, &cmd)
	}
	return cmd
}

// guestRef is one guest of a command, for the duplicate checks.
type guestRef struct {
	path         []string // the command or child
	guest        *Guest
	hostnamePath []string   // where the hostname is written: the hostname key, or path when defaulted
	portPaths    [][]string // where each port is written
}

func (c *checker) plain(path []string, t map[string]any, cmd *Command) {
	cmd.Network = NetworkHost
	if _, ok := t["children"]; ok {
		fix := ""
		if _, hasRun := t["run"]; hasRun {
			fix = " and move run into a child"
		}
		c.errf(sub(path, "children"), "children need a supervise command; add supervise = true to [%s]%s", keyString(path), fix)
	}
	if _, ok := t["exit"]; ok {
		c.errf(sub(path, "exit"), "exit applies only to supervise commands; remove it, or add supervise = true and children")
	}
	if v, ok := t["run"]; ok {
		cmd.Run = c.run(sub(path, "run"), v)
	} else if _, ok := t["children"]; !ok {
		c.errf(path, `has nothing to run; add run = ["program", "arg"] or run = { shell = "..." }`)
	}

	netValid, netWritten := true, false
	if v, ok := t["network"]; ok {
		netWritten = true
		n, ok := c.oneOf(sub(path, "network"), v, networks, "network mode", networkAliases)
		if ok {
			cmd.Network = Network(n)
		}
		netValid = ok
	}
	if cmd.Network != NetworkGuest {
		if !netValid {
			return
		}
		has := fmt.Sprintf("this command has network = %q", cmd.Network)
		if !netWritten {
			has = fmt.Sprintf("network defaults to %q", cmd.Network)
		}
		for _, k := range []string{"ip", "hostname", "ports"} {
			if _, ok := t[k]; ok {
				c.errf(sub(path, k), `%s needs network = "guest" (%s); add network = "guest" or remove %s`, k, has, k)
			}
		}
		return
	}

	ref, hasIP := c.guest(path, t, cmd.Name)
	cmd.Guest = ref.guest
	if !hasIP {
		c.errf(sub(path, "network"), `network = "guest" needs an address; add ip = %q (any of %s)`, c.first.String(), c.rangeText())
	}
	c.checkGuests([]guestRef{ref})
}

// guest reads ip, hostname and ports; hostname defaults to name.
func (c *checker) guest(path []string, t map[string]any, name string) (guestRef, bool) {
	g := &Guest{Hostname: name}
	ref := guestRef{path: path, guest: g, hostnamePath: path}
	v, hasIP := t["ip"]
	if hasIP {
		g.IP = c.ip(sub(path, "ip"), v)
	}
	if v, ok := t["hostname"]; ok {
		if h, ok := c.hostname(sub(path, "hostname"), v); ok {
			g.Hostname = h
			ref.hostnamePath = sub(path, "hostname")
		}
	}
	if v, ok := t["ports"]; ok {
		g.Ports, ref.portPaths = c.ports(sub(path, "ports"), v)
	}
	return ref, hasIP
}

func (c *checker) supervise(path []string, t map[string]any, cmd *Command) {
	for _, k := range []string{"run", "network", "ip", "hostname", "ports"} {
		if _, ok := t[k]; !ok {
			continue
		}
		if k == "run" {
			c.errf(sub(path, k), "a supervise command has no run of its own; move it into a child, e.g. [%s]", keyString(sub(path, "children", "main")))
		} else {
			c.errf(sub(path, k), "a supervise command has no network of its own; set %s on a child (a child with ip is a guest on the run's bridge)", k)
		}
	}
	cmd.Exit = ExitAny
	if v, ok := t["exit"]; ok {
		if x, ok := c.oneOf(sub(path, "exit"), v, exits, "exit policy", nil); ok {
			cmd.Exit = Exit(x)
		}
	}

	cp := sub(path, "children")
	none := fmt.Sprintf(`a supervise command needs at least one child; add [%s] with run and ip = %q (or bridge = true)`,
		keyString(sub(cp, "NAME")), c.first.String())
	v, ok := t["children"]
	if !ok {
		c.errf(path, "%s", none)
		return
	}
	ct, ok := c.table(cp, v, "["+keyString(sub(cp, "NAME"))+"] tables")
	if !ok {
		return
	}
	names := c.keys(cp, ct)
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
		cht, ok := c.table(chp, ct[name], "["+keyString(chp)+"]")
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
	for _, k := range c.keys(path, t) {
		if slices.Contains(childKeys, k) {
			continue
		}
		switch k {
		case "network":
			c.errf(sub(path, k), "a child has no network key; give it ip = %q to make it a guest on the run's bridge, or bridge = true to run it in the bridge namespace", c.first.String())
		case "supervise", "exit", "children":
			c.errf(sub(path, k), "a child cannot supervise children of its own; define another supervise command instead")
		default:
			c.unknownKey(sub(path, k), childKeys, entityAliases)
		}
	}
	e := c.common(path, t, parent, "child")
	ch := Child{Name: name, Description: e.description, Env: e.env, Workdir: e.workdir, Root: e.root, Runtime: e.runtime}
	if v, ok := t["run"]; ok {
		ch.Run = c.run(sub(path, "run"), v)
	} else {
		c.errf(path, `has nothing to run; add run = ["program", "arg"] or run = { shell = "..." }`)
	}

	bridgeValid := true
	if v, ok := t["bridge"]; ok {
		ch.Bridge, bridgeValid = c.boolean(sub(path, "bridge"), v)
	}
	if ch.Bridge {
		if _, ok := t["ip"]; ok {
			c.errf(sub(path, "ip"), "a child is either a guest (ip) or a bridge child (bridge = true), not both; remove ip or bridge")
		}
		for _, k := range []string{"hostname", "ports"} {
			if _, ok := t[k]; ok {
				c.errf(sub(path, k), "a bridge child has no address of its own, so no %s; remove it, or make this child a guest with ip instead of bridge = true", k)
			}
		}
		return ch, nil, false
	}
	ref, hasIP := c.guest(path, t, name)
	ch.Guest = ref.guest
	return ch, &ref, !hasIP && bridgeValid
}

func (c *checker) rangeText() string { return c.first.String() + "-" + c.last.String() }

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
	proto Proto
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
		for i, p := range g.Ports {
			k := portKey{p.Host, p.Proto}
			if o, dup := ports[k]; dup {
				c.errAt(sub(r.path, "ports"), c.lines.line(r.portPaths[i]), "host port %d/%s is already forwarded to %s (line %d); pick another host port",
					p.Host, p.Proto, keyString(o.ref.path), c.lines.line(o.path))
			} else {
				ports[k] = portUse{r, r.portPaths[i]}
			}
		}
	}
	return used
}

func (c *checker) ip(path []string, v any) netip.Addr {
	s, ok := v.(string)
	if !ok {
		c.errf(path, "must be a string, not %s; write ip = %q (any of %s)", typeName(v), c.first.String(), c.rangeText())
		return netip.Addr{}
	}
	a, err := netip.ParseAddr(s)
	switch {
	case err != nil || !a.Is4():
		c.errf(path, "%q is not an IPv4 address; use %s", s, c.rangeText())
	case a == c.bridge:
		c.errf(path, "%s is the bridge's own address; use %s", a, c.rangeText())
	case a.Compare(c.first) < 0 || a.Compare(c.last) > 0:
		c.errf(path, "%s is outside the run's guest range; use %s", a, c.rangeText())
	default:
		return a
	}
	return netip.Addr{}
}

func (c *checker) hostname(path []string, v any) (string, bool) {
	s, ok := c.str(path, v, `"node1"`)
	if !ok {
		return "", false
	}
	if !netsetup.ValidHostname(s) {
		c.errf(path, "%q is not a valid hostname; use letters, digits, '-' and '_' (labels separated by '.', at most 64 characters), e.g. %q",
			s, fixName(s, "node1"))
		return "", false
	}
	return s, true
}

// ports reads a list of port forwards and where each is written.
func (c *checker) ports(path []string, v any) ([]Port, [][]string) {
	arr, ok := v.([]any)
	if !ok {
		if s, isStr := v.(string); isStr {
			c.errf(path, "must be a list; write ports = [%q]", s)
		} else {
			c.errf(path, `must be a list of "HOSTPORT:GUESTPORT[/tcp|/udp]" strings, not %s; write e.g. ports = ["8080:80"]`, typeName(v))
		}
		return nil, nil
	}
	var out []Port
	var paths [][]string
	for i, e := range arr {
		ep := elemPath(path, i)
		line := c.lines.line(ep)
		s, ok := e.(string)
		if !ok {
			if n, isInt := e.(int64); isInt {
				c.errAt(path, line, `port %d must be a string "HOSTPORT:GUESTPORT"; write "%d:%d"`, n, n, n)
			} else {
				c.errAt(path, line, `each port must be a string "HOSTPORT:GUESTPORT[/tcp|/udp]", not %s; write e.g. "8080:80"`, typeName(e))
			}
			continue
		}
		p, msg := parsePort(s)
		if msg != "" {
			c.errAt(path, line, "%s", msg)
			continue
		}
		out = append(out, p)
		paths = append(paths, ep)
	}
	return out, paths
}

// parsePort parses "HOST:GUEST[/tcp|/udp]"; on failure it returns a message
// that says what is wrong and how to write it.
func parsePort(s string) (Port, string) {
	const form = "HOSTPORT:GUESTPORT[/tcp|/udp]"
	spec, proto := s, string(TCP)
	if i := strings.IndexByte(s, '/'); i >= 0 {
		spec, proto = s[:i], s[i+1:]
		if proto != string(TCP) && proto != string(UDP) {
			fix := "/tcp or /udp"
			if l := strings.ToLower(proto); l == string(TCP) || l == string(UDP) {
				fix = strconv.Quote(spec + "/" + l)
			}
			return Port{}, fmt.Sprintf("%q: protocol %q is not tcp or udp; write %s", s, proto, fix)
		}
	}
	suffix := ""
	if proto != string(TCP) {
		suffix = "/" + proto
	}
	switch strings.Count(spec, ":") {
	case 0:
		if _, msg := portNumber(spec, "port"); msg == "" {
			return Port{}, fmt.Sprintf("%q has no guest port; write %q (%s)", s, spec+":"+spec+suffix, form)
		}
		return Port{}, fmt.Sprintf("%q is not %s; write e.g. \"8080:80\"", s, form)
	case 1:
	default:
		return Port{}, fmt.Sprintf("%q: only %s is supported (ports are forwarded on every host address); write e.g. \"8080:80\"", s, form)
	}
	h, g, _ := strings.Cut(spec, ":")
	host, msg := portNumber(h, "host port")
	if msg != "" {
		return Port{}, fmt.Sprintf("%q: %s", s, msg)
	}
	guest, msg := portNumber(g, "guest port")
	if msg != "" {
		return Port{}, fmt.Sprintf("%q: %s", s, msg)
	}
	return Port{Host: host, Guest: guest, Proto: Proto(proto)}, ""
}

func portNumber(s, what string) (uint16, string) {
	if s == "" || strings.TrimLeft(s, "0123456789") != "" {
		return 0, fmt.Sprintf("%s %q is not a number; write HOSTPORT:GUESTPORT[/tcp|/udp], e.g. \"8080:80\"", what, s)
	}
	n, err := strconv.ParseUint(s, 10, 32)
	if err != nil || n < 1 || n > 65535 {
		return 0, fmt.Sprintf("%s %s is out of range; use 1-65535", what, s)
	}
	return uint16(n), ""
}

func (c *checker) run(path []string, v any) Run {
	const example = `run = ["make", "test"]`
	switch x := v.(type) {
	case []any:
		if len(x) == 0 {
			c.errf(path, "is empty; give the program and its arguments, e.g. %s", example)
			return Run{}
		}
		argv := make([]string, 0, len(x))
		for i, e := range x {
			line := c.lines.line(elemPath(path, i))
			s, ok := e.(string)
			switch {
			case !ok && isScalar(e):
				c.errAt(path, line, "argument %d is %s, not a string; quote it: \"%v\"", i, typeName(e), e)
			case !ok:
				c.errAt(path, line, "argument %d is %s; every argument must be a string, e.g. %s", i, typeName(e), example)
			case i == 0 && strings.TrimSpace(s) == "":
				c.errAt(path, line, "the program (first element) is empty; name the program to run, e.g. %s", example)
			default:
				argv = append(argv, s)
			}
		}
		return Run{Argv: argv}
	case string:
		if strings.TrimSpace(x) == "" {
			c.errf(path, "is empty; give the program and its arguments, e.g. %s", example)
			return Run{}
		}
		c.errf(path, "a plain string is ambiguous; write an argv list run = [%s], or mark a shell command explicitly: run = { shell = %q }",
			quoteArgs(strings.Fields(x)), x)
	case map[string]any:
		for _, k := range c.keys(path, x) {
			if !slices.Contains(runKeys, k) {
				c.unknownKey(sub(path, k), runKeys, runAliases)
			}
		}
		sv, ok := x["shell"]
		if !ok {
			c.errf(path, `needs shell = "..." (run = { shell = "make test | tee log" }), or use an argv list %s`, example)
			return Run{}
		}
		s, ok := c.str(sub(path, "shell"), sv, `"make test | tee log"`)
		if !ok {
			return Run{}
		}
		if strings.TrimSpace(s) == "" {
			c.errf(sub(path, "shell"), `is empty; write the command line /bin/sh -c should run, e.g. shell = "make test | tee log"`)
			return Run{}
		}
		return Run{Shell: s}
	default:
		c.errf(path, `must be an argv list or { shell = "..." }, not %s; write e.g. %s`, typeName(v), example)
	}
	return Run{}
}

func quoteArgs(args []string) string {
	q := make([]string, len(args))
	for i, a := range args {
		q[i] = strconv.Quote(a)
	}
	return strings.Join(q, ", ")
}

func validEnvName(s string) bool {
	if s == "" || s[0] >= '0' && s[0] <= '9' {
		return false
	}
	for i := 0; i < len(s); i++ {
		ch := s[i]
		if !(ch >= 'a' && ch <= 'z' || ch >= 'A' && ch <= 'Z' || ch >= '0' && ch <= '9' || ch == '_') {
			return false
		}
	}
	return true
}

// env reads an env table over the inherited base.
func (c *checker) env(path []string, v any, base map[string]string) map[string]string {
	t, ok := v.(map[string]any)
	if !ok {
		c.errf(path, `must be a table of strings, not %s; write env = { NAME = "value" }`, typeName(v))
		return mergeEnv(base, nil)
	}
	own := map[string]string{}
	for _, k := range c.keys(path, t) {
		kp := sub(path, k)
		if !validEnvName(k) {
			c.errf(kp, "%q is not a valid environment variable name; use letters, digits and '_', not starting with a digit", k)
			continue
		}
		switch x := t[k].(type) {
		case string:
			own[k] = x
		case int64, float64, bool:
			c.errf(kp, "is %s; environment values are strings: write %s = \"%v\"", typeName(x), k, x)
		default:
			c.errf(kp, "must be a string, not %s; write %s = \"value\"", typeName(x), k)
		}
	}
	return mergeEnv(base, own)
}

func (c *checker) workdir(p []string, v any) (string, bool) {
	s, ok := c.str(p, v, strconv.Quote(DefaultWorkdir))
	if !ok {
		return "", false
	}
	if !strings.HasPrefix(s, "/") {
		c.errf(p, "%q must be an absolute path inside the container; write workdir = %q", s, path.Join(DefaultWorkdir, s))
		return "", false
	}
	return path.Clean(s), true
}

func (c *checker) root(p []string, v any) (Root, bool) {
	switch x := v.(type) {
	case string:
		if x == string(RootHost) {
			return Root{Kind: RootHost}, true
		}
		c.errf(p, `%q is not a root; use "host", { rootfs = %q } for a directory in the project or { image = %q } for an image`, x, x, x)
	case map[string]any:
		for _, k := range c.keys(p, x) {
			if !slices.Contains(rootKeys, k) {
				c.unknownKey(sub(p, k), rootKeys, rootAliases)
			}
		}
		rf, hasRootfs := x["rootfs"]
		im, hasImage := x["image"]
		switch {
		case hasRootfs && hasImage:
			c.errf(p, "sets both rootfs and image; keep one")
		case hasRootfs:
			s, ok := c.str(sub(p, "rootfs"), rf, `"rootfs/alpine"`)
			if !ok {
				return Root{}, false
			}
			if s == "" {
				c.errf(sub(p, "rootfs"), `is empty; name a directory relative to the project, e.g. rootfs = "rootfs/alpine"`)
				return Root{}, false
			}
			return Root{Kind: RootRootfs, Path: filepath.Clean(s)}, true
		case hasImage:
			s, ok := c.str(sub(p, "image"), im, `"docker.io/library/alpine:3"`)
			if !ok {
				return Root{}, false
			}
			if s == "" || strings.ContainsFunc(s, func(r rune) bool { return r <= ' ' }) {
				c.errf(sub(p, "image"), `%q is not an image reference; write e.g. image = "docker.io/library/alpine:3"`, s)
				return Root{}, false
			}
			return Root{Kind: RootImage, Image: s}, true
		default:
			if len(x) == 0 {
				c.errf(p, `is empty; write root = { rootfs = "DIR" } or root = { image = "REF" }, or root = "host"`)
			}
			// Otherwise only unknown keys were given, and each is reported.
		}
	default:
		c.errf(p, `must be "host", { rootfs = "DIR" } or { image = "REF" }, not %s`, typeName(v))
	}
	return Root{}, false
}

// checkRootfs makes sure a rootfs directory exists when the project
// directory is known.
func (c *checker) checkRootfs(p []string, rel string) {
	if c.opts.Dir == "" {
		return
	}
	full := rel
	if !filepath.IsAbs(rel) {
		full = filepath.Join(c.opts.Dir, rel)
	}
	stat := c.opts.Stat
	if stat == nil {
		stat = os.Stat
	}
	fi, err := stat(full)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		c.errf(p, "%q does not exist (looked for %s); create it, or fix the path, which is relative to the project directory %s", rel, full, c.opts.Dir)
	case err != nil:
		c.errf(p, "cannot check %q: %v; make sure the directory is readable", rel, err)
	case !fi.IsDir():
		c.errf(p, "%q is not a directory (%s); point rootfs at the root filesystem's directory", rel, full)
	}
}
