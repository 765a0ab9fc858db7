package netsetup

import (
	"strings"
)

// EnvSetting is one field of Env as a command-line flag and as a process environment
// variable spell it. The pontoon CLI's global flags, the OCI hook's arguments and the
// environment handed to pontoon inside bridge children are all built from EnvSettings, so
// they cannot disagree on a name.
type EnvSetting struct {
	// Flag is the flag's name without dashes, e.g. "state-dir".
	Flag string
	// Var is the environment variable, e.g. "PONTOON_STATE_DIR".
	Var string
	// Default says, for help texts, what an empty field means.
	Default string
	// Usage is the flag's one-line help.
	Usage string
	// Hidden settings point pontoon at a sandboxed chain (tests, bridge children); help
	// texts for people may leave them out.
	Hidden bool
	field  func(*Env) *string
}

// Get returns the setting's field of e (empty: the default).
func (s EnvSetting) Get(e Env) string { return *s.field(&e) }

// Set stores v in the setting's field of e.
func (s EnvSetting) Set(e *Env, v string) { *s.field(e) = v }

// EnvSettings returns every string field of Env, in a fixed order.
func EnvSettings() []EnvSetting {
	var zero Env
	return []EnvSetting{
		{Flag: "state-dir", Var: "PONTOON_STATE_DIR", Default: zero.stateDir(), Usage: "where pontoon keeps its state",
			field: func(e *Env) *string { return &e.StateDir }},
		{Flag: "netns-dir", Var: "PONTOON_NETNS_DIR", Default: zero.netnsDir(), Usage: "where pontoon pins the namespaces it creates",
			field: func(e *Env) *string { return &e.NetnsDir }},
		{Flag: "host-netns", Var: "PONTOON_HOST_NETNS", Default: "the network namespace pontoon starts in", Usage: "the network namespace that plays the host",
			Hidden: true, field: func(e *Env) *string { return &e.HostNetns }},
		{Flag: "resolv-conf", Var: "PONTOON_RESOLV_CONF", Default: zero.resolvConf(), Usage: "the host's resolver configuration",
			Hidden: true, field: func(e *Env) *string { return &e.ResolvConf }},
	}
}

// EnvFromEnviron returns the Env that environ (KEY=VALUE strings, as os.Environ returns
// them) selects. A variable that is absent or empty leaves its field empty, i.e. at its
// default; the last occurrence of a variable wins, as in exec.
func EnvFromEnviron(environ []string) Env {
	var e Env
	vars := map[string]string{}
	for _, kv := range environ {
		if k, v, ok := strings.Cut(kv, "="); ok {
			vars[k] = v
		}
	}
	for _, s := range EnvSettings() {
		s.Set(&e, vars[s.Var])
	}
	return e
}

// Environ returns the KEY=VALUE strings that select e in another pontoon process
// (EnvFromEnviron reads them back), leaving out the fields at their defaults.
func (e Env) Environ() []string {
	var out []string
	for _, s := range EnvSettings() {
		if v := s.Get(e); v != "" {
			out = append(out, s.Var+"="+v)
		}
	}
	return out
}

// Args returns the flags that select e on a pontoon command line ("--state-dir", DIR, ...),
// leaving out the fields at their defaults.
func (e Env) Args() []string {
	var out []string
	for _, s := range EnvSettings() {
		if v := s.Get(e); v != "" {
			out = append(out, "--"+s.Flag, v)
		}
	}
	return out
}
