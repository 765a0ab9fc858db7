// Package cni is pontoon as a CNI plugin: a container runtime (containerd's CRI, CRI-O,
// nerdctl, a kubelet) attaches a pod's network namespace to a pontoon bridge as a guest, so
// partitions, impairments and status work for it as for any other guest. The plugin binary
// is cmd/pontoon-cni; everything it does lives here so that it can be tested without it.
package cni

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"reflect"
	"strings"
	"unicode"

	"github.com/containernetworking/cni/pkg/types"
	"github.com/containernetworking/cni/pkg/version"
	"github.com/pontoon-dev/pontoon/netsetup"
)

// Config is the plugin's network configuration.
type Config struct {
	types.PluginConf
	// Bridge is the pontoon bridge the containers join.
	Bridge string `json:"bridge"`
	// CreateBridge creates the bridge (and the gateway, when it is down) on the first ADD
	// that finds it missing; if that ADD fails, it removes them again unless they are in use
	// by then. Without it a missing bridge is an error. Either way an ADD starts the bridge's
	// name server when none runs, and its result names that server.
	CreateBridge bool `json:"createBridge,omitempty"`
	// Plan is the /16 of pontoon's address plan. Empty: whatever the gateway has, or the
	// default plan when the plugin brings the gateway up.
	Plan string `json:"plan,omitempty"`
	// RuntimeConfig carries the "ips" capability: a static address for this attachment.
	RuntimeConfig struct {
		IPs []string `json:"ips,omitempty"`
	} `json:"runtimeConfig,omitempty"`
	// Args carries static addresses the conventional way ("args": {"cni": {"ips": [...]}}).
	Args struct {
		CNI struct {
			IPs []string `json:"ips,omitempty"`
		} `json:"cni,omitempty"`
	} `json:"args,omitempty"`

	plan netsetup.Plan // parsed Plan, when given
}

// knownKeys are the top-level keys a configuration may carry: pontoon's own and those the
// CNI specification defines or runtimes inject. Anything else is most likely a misspelling.
var knownKeys = map[string]bool{
	"cniVersion": true, "cniVersions": true, "name": true, "type": true, "capabilities": true,
	"ipam": true, "dns": true, "prevResult": true, "runtimeConfig": true, "args": true,
	"bridge": true, "createBridge": true, "plan": true,
}

// ConfigError is bad input: Field names what to fix, a configuration key or a CNI_*
// environment variable.
type ConfigError struct {
	Field string
	Msg   string
}

func (e *ConfigError) Error() string {
	if e.envVar() {
		return fmt.Sprintf("environment variable %q: %s", e.Field, e.Msg)
	}
	return fmt.Sprintf("config field %q: %s", e.Field, e.Msg)
}

// envVar says the bad input is one of the runtime's CNI_* variables, not the configuration.
func (e *ConfigError) envVar() bool { return strings.HasPrefix(e.Field, "CNI_") }

func configErr(field, format string, a ...any) error {
	return &ConfigError{Field: field, Msg: fmt.Sprintf(format, a...)}
}

// ParseConfig decodes and checks a network configuration. Its errors are one line naming
// the field to fix.
func ParseConfig(data []byte) (*Config, error) {
	var keys map[string]json.RawMessage
	if err := json.Unmarshal(data, &keys); err != nil {
		return nil, configErr("(whole)", "not a JSON object: %v", err)
	}
	for k := range keys {
		if !knownKeys[k] && !strings.HasPrefix(k, "cni.dev/") {
			return nil, configErr(k, "unknown key; pontoon-cni takes bridge, createBridge, plan, dns and the keys of the CNI specification")
		}
	}
	var c Config
	if err := json.NewDecoder(bytes.NewReader(data)).Decode(&c); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) {
			return nil, configErr(jsonField(te.Field), "is %s, must be %s", te.Value, jsonKind(te.Type))
		}
		return nil, configErr("(whole)", "%v", err)
	}
	if c.Name == "" {
		return nil, configErr("name", "missing; give the network a name")
	}
	if c.Bridge == "" {
		return nil, configErr("bridge", "missing; name the pontoon bridge to attach to, e.g. \"bridge\": \"pods\"")
	}
	if !netsetup.ValidName(c.Bridge) {
		return nil, configErr("bridge", "%q is not a bridge name; use 1-63 letters, digits, '.', '_' or '-', starting with a letter or digit", c.Bridge)
	}
	if c.Plan != "" {
		p, err := netsetup.ParsePlan(c.Plan)
		if err != nil {
			return nil, configErr("plan", "%v", err)
		}
		c.plan = p
	}
	if c.IPAM.Type != "" {
		return nil, configErr("ipam", "pontoon-cni allocates from pontoon's plan and takes no IPAM plugin; remove ipam, or give a static address with the ips capability")
	}
	if err := version.ParsePrevResult(&c.PluginConf); err != nil {
		return nil, configErr("prevResult", "%v", err)
	}
	return &c, nil
}

func jsonKind(t reflect.Type) string {
	switch t.Kind() {
	case reflect.Slice, reflect.Array:
		return "a list"
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "true or false"
	case reflect.Map, reflect.Struct:
		return "an object"
	case reflect.Pointer:
		return jsonKind(t.Elem())
	}
	return "a number"
}

// jsonField is the configuration's key for the path encoding/json names: the names of
// embedded Go structs (types.PluginConf) are in it, and are no keys of the file.
func jsonField(path string) string {
	var keys []string
	for _, k := range strings.Split(path, ".") {
		if k != "" && !unicode.IsUpper(rune(k[0])) {
			keys = append(keys, k)
		}
	}
	return strings.Join(keys, ".")
}

// staticAddrs are the addresses an ADD asks for, each with the input it came from (a
// configuration key or "CNI_ARGS IP"), which the errors about it name.
type staticAddrs struct {
	ip4, ip6       netip.Addr // zero: not asked for
	field4, field6 string
}

// staticIPs returns the addresses asked for by the ips capability, the config's args or
// CNI_ARGS (IP=...), checked against plan; a zero Addr for a family not asked for. An IPv6
// address that is the one pontoon derives for a guest IPv4 address brings that IPv4 address
// with it, so that asking for either of a guest's usual pair gives the pair.
func (c *Config) staticIPs(plan netsetup.Plan, cniArgs string) (staticAddrs, error) {
	type source struct{ field, value string }
	var asked []source
	for _, s := range c.RuntimeConfig.IPs {
		asked = append(asked, source{"runtimeConfig.ips", s})
	}
	for _, s := range c.Args.CNI.IPs {
		asked = append(asked, source{"args.cni.ips", s})
	}
	for _, kv := range strings.Split(cniArgs, ";") {
		if k, v, ok := strings.Cut(kv, "="); ok && k == "IP" {
			for _, a := range strings.Split(v, ",") {
				asked = append(asked, source{"CNI_ARGS IP", a})
			}
		}
	}
	var st staticAddrs
	for _, s := range asked {
		// The capability passes prefixes ("10.0.0.5/24"); CNI_ARGS passes bare addresses.
		a := s.value
		v6 := strings.Contains(a, ":")
		net := plan.GuestNet()
		if v6 {
			net = plan.GuestNet6()
		}
		if p, err := netip.ParsePrefix(a); err == nil {
			if p.Bits() != net.Bits() {
				return st, configErr(s.field, "%s: the guest network is a /%d; give %s/%d or the bare address", a, net.Bits(), p.Addr(), net.Bits())
			}
			a = p.Addr().String()
		}
		if v6 {
			got, err := netip.ParseAddr(a)
			if err != nil {
				return st, configErr(s.field, "%q is not an IPv6 address; give one in %s", a, net)
			}
			if st.ip6.IsValid() && got != st.ip6 {
				return st, configErr(s.field, "asks for %s but %s was asked for already; a pontoon guest has one IPv6 address", got, st.ip6)
			}
			if !st.ip6.IsValid() { // the first input that asks for it names it
				st.ip6, st.field6 = got, s.field
			}
			continue
		}
		got, err := plan.ParseGuestIP(a)
		if err != nil {
			return st, configErr(s.field, "%v", err)
		}
		if st.ip4.IsValid() && got != st.ip4 {
			return st, configErr(s.field, "asks for %s but %s was asked for already; a pontoon guest has one address", got, st.ip4)
		}
		if !st.ip4.IsValid() {
			st.ip4, st.field4 = got, s.field
		}
	}
	if !st.ip6.IsValid() {
		return st, nil
	}
	if !st.ip4.IsValid() {
		first, last, _, _ := netsetup.GuestRange(plan.GuestNet())
		for a := first; !last.Less(a) && plan.IPv6(); a = a.Next() {
			if plan.GuestIP6(a) == st.ip6 {
				st.ip4, st.field4 = a, st.field6
			}
		}
	}
	if _, err := plan.ParseGuestIP6(st.ip6.String(), st.ip4); err != nil {
		return st, configErr(st.field6, "%v", err)
	}
	return st, nil
}
