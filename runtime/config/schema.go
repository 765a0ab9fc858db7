package config

import (
	"fmt"
	"strings"
	"time"

	"github.com/pontoon-dev/pontoon/internal/lazy"
)

// The tables of a project file, one schema each: the keys a table accepts,
// in the order "allowed here" lists them, with the kind and example that
// make their type errors and the handler that reads them. What ties keys
// together (plain or supervise, guest or bridge child) is in command.go.

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

// decl is a command or child table as its keys are read.
type decl struct {
	t      map[string]any // the table as written
	child  bool
	parent entity // the command's settings for a child; the defaults for a command
	entity        // this table's own, over parent

	run          Run
	guest        Guest      // ip, hostname and ports, when they apply
	hasIP        bool       // ip is written, valid or not
	hostnamePath []string   // where hostname is written; nil when defaulted
	portPaths    [][]string // where each of guest.Ports is written

	// Commands only.
	supervise   bool
	network     Network
	netBad      bool // network is written but invalid
	exit        Exit
	children    map[string]any // nil unless a table
	stopTimeout time.Duration
	names       Names
	namesPath   []string // where names is written; nil when defaulted
	schedule    any      // the schedule table as written, read once the guests are known
	schedPath   []string // where it is written
	services    any      // the services table as written, read once the guests are known
	svcPath     []string

	// Children only.
	bridge    bool
	bridgeBad bool // bridge is written but not a boolean
	init      *bool
}

func (d *decl) has(key string) bool {
	_, ok := d.t[key]
	return ok
}

// Fields that commands and children share.
var (
	descriptionField = field[decl]{key: "description", kind: text, example: `"what it does"`,
		read: func(c *checker, p []string, v any, d *decl) { d.description = v.(string) }}
	runField = field[decl]{key: "run", refuse: notOnSupervise,
		read: func(c *checker, p []string, v any, d *decl) { d.run = c.run(p, v) }}
	envField = field[decl]{key: "env", kind: stringTable, example: `{ NAME = "value" }`,
		read: func(c *checker, p []string, v any, d *decl) { d.env = c.env(p, v.(map[string]any), d.parent.env) }}
	workdirField = field[decl]{key: "workdir", kind: text, example: `"` + DefaultWorkdir + `"`,
		read: func(c *checker, p []string, v any, d *decl) {
			if w, ok := c.workdir(p, v.(string)); ok {
				d.workdir = w
			}
		}}
	rootField = field[decl]{key: "root",
		read: func(c *checker, p []string, v any, d *decl) {
			if r, ok := c.root(p, v); ok {
				d.root, d.rootSet = r, true
			}
		}}
	runtimeField = field[decl]{key: "runtime", kind: choice, choices: runtimes, what: "a runtime",
		read: func(c *checker, p []string, v any, d *decl) { d.runtime, d.runtimeSet = Runtime(v.(string)), true }}
	ipField = field[decl]{key: "ip", refuse: guestOnly,
		read: func(c *checker, p []string, v any, d *decl) { d.hasIP, d.guest.IP = true, c.ip(p, v) }}
	ip6Field = field[decl]{key: "ip6", refuse: guestOnly,
		read: func(c *checker, p []string, v any, d *decl) { d.guest.IP6 = c.ip6(p, v) }}
	hostnameField = field[decl]{key: "hostname", kind: text, example: `"node1"`, refuse: guestOnly,
		read: func(c *checker, p []string, v any, d *decl) {
			if h, ok := c.hostname(p, v.(string)); ok {
				d.guest.Hostname, d.hostnamePath = h, p
			}
		}}
	initField = field[decl]{key: "init", kind: flag, example: "false", refuse: notOnSupervise,
		read: func(c *checker, p []string, v any, d *decl) {
			b := v.(bool)
			d.init = &b
		}}
	portsField = field[decl]{key: "ports", refuse: guestOnly,
		read: func(c *checker, p []string, v any, d *decl) { d.guest.Ports, d.portPaths = c.ports(p, v) }}
)

// entityAliases are hints for unknown keys of commands and children that
// are not typos but names other tools use.
var entityAliases = lazy.Value[map[string]string]{Build: func() map[string]string {
	return map[string]string{
		"cmd": `"run"`, "command": `"run"`, "args": `"run"`, "argv": `"run"`, "exec": `"run"`,
		"shell": `run = { shell = "..." }`, "script": `run = { shell = "..." }`,
		"environment": `"env"`, "cwd": `"workdir"`, "dir": `"workdir"`, "chdir": `"workdir"`,
		"working_dir": `"workdir"`, "workingdir": `"workdir"`,
		"image": `root = { image = "..." }`, "rootfs": `root = { rootfs = "..." }`,
		"net": `"network"`, "address": `"ip"`, "addr": `"ip"`, "ipv4": `"ip"`, "ip_address": `"ip"`,
		"publish": `"ports"`, "expose": `"ports"`,
		"desc": `"description"`, "help": `"description"`,
		"child": `"children"`, "nodes": `"children"`, "services": `"children"`,
		"on_exit":           `"exit"`,
		"stop_grace_period": `"stop_timeout"`, "stop_grace": `"stop_timeout"`, "grace_period": `"stop_timeout"`,
		"tini": `"init"`,
	}
}}

// commandSchema is a [commands.NAME] table.
var commandSchema = lazy.Value[*schema[decl]]{Build: func() *schema[decl] {
	return &schema[decl]{
		fields: []field[decl]{
			descriptionField, runField, envField, workdirField,
			{key: "network", kind: choice, choices: networks, what: "a network mode", refuse: notOnSupervise,
				aliases: map[string]string{"bridge": "guest", "bridged": "guest", "private": "guest", "isolated": "none", "off": "none"},
				read:    func(c *checker, p []string, v any, d *decl) { d.network, d.netBad = Network(v.(string)), false }},
			ipField, ip6Field, hostnameField, aliasesField, portsField, rootField, runtimeField, initField,
			{key: "supervise", kind: flag, example: "true", first: true,
				read: func(c *checker, p []string, v any, d *decl) { d.supervise = v.(bool) }},
			{key: "exit", kind: choice, choices: exits, what: "an exit policy", refuse: onlySupervise,
				read: func(c *checker, p []string, v any, d *decl) { d.exit = Exit(v.(string)) }},
			{key: "children", refuse: onlySupervise,
				read: func(c *checker, p []string, v any, d *decl) {
					d.children, _ = c.table(p, v, "["+keyString(sub(p, "NAME"))+"] tables")
				}},
			{key: "stop_timeout", kind: duration, example: `"3s"`,
				read: func(c *checker, p []string, v any, d *decl) {
					if t, ok := c.stopTimeout(p, v.(string)); ok {
						d.stopTimeout = t
					}
				}},
			{key: "names", kind: choice, choices: namesModes, what: "a way of naming guests", refuse: guestsOnly,
				read: func(c *checker, p []string, v any, d *decl) { d.names, d.namesPath = Names(v.(string)), p }},
			{key: "schedule", read: func(c *checker, p []string, v any, d *decl) { d.schedule, d.schedPath = v, p }},
			{key: "services", read: func(c *checker, p []string, v any, d *decl) { d.services, d.svcPath = v, p }},
		},
		aliases: entityAliases.Get(),
	}
}}

// childSchema is a [commands.NAME.children.CHILD] table.
var childSchema = lazy.Value[*schema[decl]]{Build: func() *schema[decl] {
	return &schema[decl]{
		fields: []field[decl]{
			descriptionField, runField, envField, workdirField, rootField, runtimeField,
			ipField, ip6Field, hostnameField, aliasesField, portsField,
			{key: "bridge", kind: flag, example: "true", first: true,
				read: func(c *checker, p []string, v any, d *decl) { d.bridge, d.bridgeBad = v.(bool), false }},
			initField,
		},
		aliases:   entityAliases.Get(),
		misplaced: (*checker).childMisplaced,
	}
}}

// childMisplaced explains the keys of a command that a child cannot have.
func (c *checker) childMisplaced(path []string, key string) string {
	switch key {
	case "network":
		return fmt.Sprintf("a child has no network key; give it ip = %q to make it a guest on the run's bridge, or bridge = true to run it in the bridge namespace", c.first.String())
	case "supervise", "exit", "children":
		return "a child cannot supervise children of its own; define another supervise command instead"
	case "stop_timeout":
		return fmt.Sprintf("stop_timeout applies to all children of a run; set it in [%s]", keyString(path[:len(path)-2]))
	}
	return ""
}

// notOnSupervise refuses run, network and init on a supervise command: its
// children have them.
func notOnSupervise(c *checker, p []string, d *decl) (string, bool) {
	if d.child || !d.supervise {
		return "", false
	}
	k := p[len(p)-1]
	if k == "init" {
		return fmt.Sprintf("init is set on each child of a supervise command; write it in [%s]", keyString(sub(p[:len(p)-1], "children", "NAME"))), true
	}
	if k == "run" {
		return fmt.Sprintf("a supervise command has no run of its own; move it into a child, e.g. [%s]", keyString(sub(p[:len(p)-1], "children", "main"))), true
	}
	return fmt.Sprintf("a supervise command has no network of its own; set %s on a child (a child with ip is a guest on the run's bridge)", k), true
}

// guestsOnly refuses names on a plain command that is no guest: it has no guests to name.
func guestsOnly(c *checker, p []string, d *decl) (string, bool) {
	if d.supervise || d.netBad || d.network == NetworkGuest {
		return "", d.netBad
	}
	return fmt.Sprintf(`names says how a run's guests name each other; this command has network = %q and no guests; remove names, or add network = "guest"`, d.network), true
}

// onlySupervise refuses exit and children on a plain command.
func onlySupervise(c *checker, p []string, d *decl) (string, bool) {
	if d.supervise {
		return "", false
	}
	if p[len(p)-1] == "exit" {
		return "exit applies only to supervise commands; remove it, or add supervise = true and children", true
	}
	fix := ""
	if d.has("run") {
		fix = " and move run into a child"
	}
	return fmt.Sprintf("children need a supervise command; add supervise = true to [%s]%s", keyString(p[:len(p)-1]), fix), true
}

// guestOnly refuses ip, hostname and ports where there is no guest: on a
// bridge child, a supervise command, or a plain command whose network is
// not "guest".
func guestOnly(c *checker, p []string, d *decl) (string, bool) {
	k := p[len(p)-1]
	switch {
	case d.child && d.bridge:
		if k == "ip" {
			return "a child is either a guest (ip) or a bridge child (bridge = true), not both; remove ip or bridge", true
		}
		return fmt.Sprintf("a bridge child has no address of its own, so no %s; remove it, or make this child a guest with ip instead of bridge = true", k), true
	case d.child:
		return "", false
	case d.supervise:
		return notOnSupervise(c, p, d)
	case d.netBad:
		return "", true // the network error says it all
	case d.network != NetworkGuest:
		has := fmt.Sprintf("this command has network = %q", d.network)
		if !d.has("network") {
			has = fmt.Sprintf("network defaults to %q", d.network)
		}
		return fmt.Sprintf(`%s needs network = "guest" (%s); add network = "guest" or remove %s`, k, has, k), true
	}
	return "", false
}

// topSchema is the file itself.
var topSchema = lazy.Value[*schema[Project]]{Build: func() *schema[Project] {
	return &schema[Project]{
		fields: []field[Project]{
			{key: "settings", read: func(c *checker, p []string, v any, pr *Project) { pr.Settings = c.settings(p, v) }},
			{key: "commands", read: func(c *checker, p []string, v any, pr *Project) { pr.Commands = c.commands(p, v, pr.Settings) }},
		},
		misplaced: func(c *checker, path []string, key string) string {
			if commandSchema.Get().has(key) {
				return "is not a top-level key; put it inside a command table, e.g. [commands.NAME]"
			}
			return ""
		},
	}
}}

// settingsSchema is [settings].
var settingsSchema = lazy.Value[*schema[Settings]]{Build: func() *schema[Settings] {
	return &schema[Settings]{
		fields: []field[Settings]{
			{key: "runtime", kind: choice, choices: runtimes, what: "a runtime",
				read: func(c *checker, p []string, v any, s *Settings) { s.Runtime = Runtime(v.(string)) }},
			{key: "ipv4_only", kind: flag, example: "true",
				read: func(c *checker, p []string, v any, s *Settings) { s.IPv4Only = v.(bool) }},
		},
		misplaced: func(c *checker, path []string, key string) string {
			if commandSchema.Get().has(key) {
				return fmt.Sprintf("[settings] holds only runtime and ipv4_only; set %s on each command instead", key)
			}
			return ""
		},
	}
}}

// rootSchema is root = { ... }.
var rootSchema = lazy.Value[*schema[rootDecl]]{Build: func() *schema[rootDecl] {
	return &schema[rootDecl]{
		fields: []field[rootDecl]{
			{key: "rootfs", kind: text, example: `"rootfs/alpine"`,
				read: func(c *checker, p []string, v any, d *rootDecl) { c.rootfs(p, v.(string), d) }},
			{key: "image", kind: text, example: `"docker.io/library/alpine:3"`,
				read: func(c *checker, p []string, v any, d *rootDecl) { c.image(p, v.(string), d) }},
		},
		aliases: map[string]string{"img": `"image"`, "path": `"rootfs"`, "dir": `"rootfs"`, "directory": `"rootfs"`, "ref": `"image"`},
	}
}}

// runSchema is run = { ... }.
var runSchema = lazy.Value[*schema[Run]]{Build: func() *schema[Run] {
	return &schema[Run]{
		fields: []field[Run]{
			{key: "shell", kind: text, example: `"make test | tee log"`,
				read: func(c *checker, p []string, v any, r *Run) {
					if s := v.(string); strings.TrimSpace(s) != "" {
						r.Shell = s
					} else {
						c.errf(p, `is empty; write the command line /bin/sh -c should run, e.g. shell = "make test | tee log"`)
					}
				}},
		},
		aliases: map[string]string{
			"argv": `an argv list written directly: run = ["program", "arg"]`,
			"args": `an argv list written directly: run = ["program", "arg"]`,
			"cmd":  `"shell"`, "command": `"shell"`, "sh": `"shell"`, "script": `"shell"`,
		},
	}
}}
