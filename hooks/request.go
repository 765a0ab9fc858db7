package hooks

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"github.com/pontoon-dev/pontoon/internal/suggest"
	"github.com/pontoon-dev/pontoon/netsetup"
)

// The annotations the hook reads.
const (
	AnnotationBridge   = "pontoon.bridge"
	AnnotationGuest    = "pontoon.guest"
	AnnotationIP       = "pontoon.ip"
	AnnotationIP6      = "pontoon.ip6"
	AnnotationHostname = "pontoon.hostname"
	AnnotationPorts    = "pontoon.ports"
	AnnotationAliases  = "pontoon.aliases"
	// AnnotationSettingsFrom is "env" on a container whose settings pontoon read from its
	// PONTOON_* variables (PrepareBundle): the hook's messages then name those.
	AnnotationSettingsFrom = "pontoon.settings-from"
	// AnnotationName is the child's name on the containers of `pontoon run`.
	AnnotationName = "pontoon.name"
)

// EnvAnnotations are the annotations the hook reads, AnnotationBridge first, each of which a
// container may also give as an environment variable (`docker run -e PONTOON_BRIDGE=...`):
// Docker before 24 has no --annotation.
var EnvAnnotations = []string{AnnotationBridge, AnnotationGuest, AnnotationIP, AnnotationIP6, AnnotationHostname, AnnotationPorts, AnnotationAliases}

// Bounds on what the hook accepts: the container id is stored in the bridge's record as the
// guest's key, and annotations end up in records and messages.
const (
	MaxIDLen         = netsetup.MaxKeyLen
	MaxAnnotationLen = 4096
)

// checkID refuses a container id too long to record; the message does not repeat it.
func checkID(id string) error {
	if len(id) > MaxIDLen {
		return fmt.Errorf("the container id is %d bytes long; pontoon accepts ids of up to %d bytes", len(id), MaxIDLen)
	}
	return nil
}

// Request is what a container's annotations ask for, validated for shape. Whether the bridge
// exists and the address is free is checked against the state when the guest is attached.
type Request struct {
	Bridge   string
	Guest    string
	IP       netip.Addr
	IP6      netip.Addr // unset: the address derived from IP (none on an IPv4-only gateway)
	Hostname string
	Ports    []netsetup.Port // Guest empty: this container
	Aliases  []string        // further names the bridge's name server answers
}

// HasRequest reports whether annotations ask for a pontoon network at all.
func HasRequest(annotations map[string]string) bool {
	_, ok := annotations[AnnotationBridge]
	return ok
}

// ParseRequest validates the pontoon.* annotations. The error names the annotation, the bad
// value and how to fix it, on one line.
func ParseRequest(annotations map[string]string) (Request, error) {
	var r Request
	if err := unknownAnnotations(annotations); err != nil {
		return r, err
	}
	for _, key := range EnvAnnotations {
		if v := annotations[key]; len(v) > MaxAnnotationLen {
			return r, fmt.Errorf("annotation %s is %d bytes long; pontoon accepts up to %d", key, len(v), MaxAnnotationLen)
		}
	}
	get := func(key string, required bool, example string) (string, error) {
		v, ok := annotations[key]
		if !ok || v == "" {
			if required {
				return "", fmt.Errorf("annotation %s is missing; add %s=%s", key, key, example)
			}
			return "", nil
		}
		return v, nil
	}
	var err error
	if r.Bridge, err = get(AnnotationBridge, true, "NAME (a bridge shown by `pontoon bridge list`)"); err != nil {
		// Settings without a bridge: the container meant to join one, or they are stray.
		var given []string
		for _, key := range EnvAnnotations {
			if _, ok := annotations[key]; ok && key != AnnotationBridge {
				given = append(given, "annotation "+key)
			}
		}
		if len(given) > 0 {
			err = fmt.Errorf("%w, or remove %s to run the container without pontoon's network", err, strings.Join(given, ", "))
		}
		return r, err
	}
	if err := checkName(AnnotationBridge, r.Bridge, "the name of an existing bridge"); err != nil {
		return r, err
	}
	if r.Guest, err = get(AnnotationGuest, true, "NAME (this container's name on the bridge)"); err != nil {
		return r, err
	}
	if err := checkName(AnnotationGuest, r.Guest, "a name for this container on the bridge"); err != nil {
		return r, err
	}
	ip, err := get(AnnotationIP, true, "ADDRESS (e.g. 172.18.0.10)")
	if err != nil {
		return r, err
	}
	if r.IP, err = netip.ParseAddr(ip); err != nil || !r.IP.Is4() {
		return r, fmt.Errorf("annotation %s=%q is not an IPv4 address; use the guest's fixed address, e.g. 172.18.0.10", AnnotationIP, ip)
	}
	if ip6, _ := get(AnnotationIP6, false, ""); ip6 != "" {
		// Whether it lies in the plan is checked against the gateway's plan when attaching.
		if r.IP6, err = netip.ParseAddr(ip6); err != nil || !r.IP6.Is6() || r.IP6.Is4In6() || r.IP6.Zone() != "" {
			return r, fmt.Errorf("annotation %s=%q is not an IPv6 address; use the guest's IPv6 address in the plan's guest network, e.g. fd70:6f6e::10, or leave it out for the one derived from %s", AnnotationIP6, ip6, AnnotationIP)
		}
	}
	if r.Hostname, err = get(AnnotationHostname, false, ""); err != nil {
		return r, err
	}
	if r.Hostname != "" && !netsetup.ValidHostname(r.Hostname) {
		return r, fmt.Errorf("annotation %s=%q is invalid; use up to 64 characters: labels of letters, digits, '-' and '_' separated by '.'", AnnotationHostname, r.Hostname)
	}
	ports, _ := get(AnnotationPorts, false, "")
	if r.Ports, err = ParsePorts(ports); err != nil {
		return r, err
	}
	aliases, _ := get(AnnotationAliases, false, "")
	if r.Aliases, err = ParseAliases(aliases); err != nil {
		return r, err
	}
	return r, nil
}

func checkName(key, v, what string) error {
	if !netsetup.ValidName(v) {
		return fmt.Errorf("annotation %s=%q is invalid; use %s of 1-63 letters, digits, '.', '_' or '-', starting with a letter or digit", key, v, what)
	}
	return nil
}

// ParsePorts parses the pontoon.ports annotation: netsetup.GuestPortForm items separated by
// commas (spaces around items are ignored). The empty string is no ports.
func ParsePorts(s string) ([]netsetup.Port, error) {
	if strings.TrimSpace(s) == "" {
		return nil, nil
	}
	var out []netsetup.Port
	seen := map[string]bool{}
	for _, item := range strings.Split(s, ",") {
		p, err := netsetup.ParseGuestPort(strings.TrimSpace(item))
		if err != nil {
			return nil, fmt.Errorf("annotation %s: %w (forwards are separated by commas, e.g. 8080:80,5353:53/udp)", AnnotationPorts, err)
		}
		key := fmt.Sprintf("%d/%s", p.HostPort, p.Proto)
		if seen[key] {
			return nil, fmt.Errorf("annotation %s: host port %s appears twice; give each forward its own host port", AnnotationPorts, key)
		}
		seen[key] = true
		out = append(out, p)
	}
	return out, nil
}

// FormatPorts is the inverse of ParsePorts.
func FormatPorts(ports []netsetup.Port) string {
	s := make([]string, len(ports))
	for i, p := range ports {
		s[i] = p.String()
	}
	return strings.Join(s, ",")
}

// Annotations returns the annotations that ask for r; FormatPorts writes the ports.
func (r Request) Annotations() map[string]string {
	a := map[string]string{
		AnnotationBridge: r.Bridge,
		AnnotationGuest:  r.Guest,
		AnnotationIP:     r.IP.String(),
	}
	if r.IP6.IsValid() {
		a[AnnotationIP6] = r.IP6.String()
	}
	if r.Hostname != "" {
		a[AnnotationHostname] = r.Hostname
	}
	if len(r.Ports) > 0 {
		a[AnnotationPorts] = FormatPorts(r.Ports)
	}
	if len(r.Aliases) > 0 {
		a[AnnotationAliases] = strings.Join(r.Aliases, " ")
	}
	return a
}

// missingPort returns the first requested port the bridge does not forward to this guest.
func missingPort(b *netsetup.BridgeState, r Request) (netsetup.Port, bool) {
	for _, want := range r.Ports {
		found := false
		for _, have := range b.Ports {
			if have.HostPort == want.HostPort && have.GuestPort == want.GuestPort && have.Proto == want.Proto &&
				(have.Guest == r.Guest || have.Guest == r.IP.String()) {
				found = true
				break
			}
		}
		if !found {
			return want, true
		}
	}
	return netsetup.Port{}, false
}

// ParseAliases parses the pontoon.aliases annotation: names separated by commas or spaces
// (podman's --annotation splits its argument at commas, so there spaces separate). The
// empty string is no aliases.
func ParseAliases(s string) ([]string, error) {
	out := strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == ' ' || r == '\t' })
	if len(out) == 0 {
		return nil, nil
	}
	if err := netsetup.CheckAliases("annotation "+AnnotationAliases+": alias", out); err != nil {
		return nil, fmt.Errorf("%w (aliases are separated by spaces or commas, e.g. \"db primary\")", err)
	}
	return out, nil
}

// ip6Text is an IPv6 address as GuestOptions takes it: empty for the derived one.
func ip6Text(a netip.Addr) string {
	if !a.IsValid() {
		return ""
	}
	return a.String()
}

// ownAnnotation tells a key of pontoon's namespace of annotations, pontoon.NAME (pontoon.IP
// misspelled too), from one that only shares its start: pontoon.dev/team, a domain prefix
// as Kubernetes writes them.
func ownAnnotation(k string) bool {
	name, ok := strings.CutPrefix(k, "pontoon.")
	return ok && name != "" && !strings.Contains(name, "/")
}

// unknownAnnotations refuses a pontoon.* annotation pontoon does not read: a misspelled
// setting (pontoon.alias) would otherwise be dropped in silence.
func unknownAnnotations(annotations map[string]string) error {
	known := append(slices.Clone(EnvAnnotations), AnnotationSettingsFrom, AnnotationNamesError, AnnotationName)
	var unknown []string
	for k := range annotations {
		if ownAnnotation(k) && !slices.Contains(known, k) {
			unknown = append(unknown, k)
		}
	}
	if len(unknown) == 0 {
		return nil
	}
	slices.Sort(unknown)
	k := unknown[0]
	// Compared without the prefix every key shares, which would make any word close.
	var bare []string
	for _, a := range EnvAnnotations {
		bare = append(bare, strings.TrimPrefix(a, "pontoon."))
	}
	if s := suggest.Closest(strings.TrimPrefix(k, "pontoon."), bare); s != "" {
		s = "pontoon." + s
		return fmt.Errorf("annotation %s is not one pontoon reads; did you mean annotation %s?", k, s)
	}
	return fmt.Errorf("annotation %s is not one pontoon reads; remove it (pontoon reads %s)", k, strings.Join(EnvAnnotations, ", "))
}
