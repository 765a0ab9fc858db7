package hooks

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	"github.com/pontoon-dev/pontoon/netsetup"
)

// The annotations the hook reads.
const (
	AnnotationBridge   = "pontoon.bridge"
	AnnotationGuest    = "pontoon.guest"
	AnnotationIP       = "pontoon.ip"
	AnnotationHostname = "pontoon.hostname"
	AnnotationPorts    = "pontoon.ports"
)

// Port is a forward a container expects from its bridge: HostPort on the gateway to
// GuestPort of this container.
type Port struct {
	HostPort  uint16
	GuestPort uint16
	Proto     string // "tcp" or "udp"
}

// String formats p as in the pontoon.ports annotation.
func (p Port) String() string { return fmt.Sprintf("%d:%d/%s", p.HostPort, p.GuestPort, p.Proto) }

// Request is what a container's annotations ask for, validated for shape. Whether the bridge
// exists and the address is free is checked against the state when the guest is attached.
type Request struct {
	Bridge   string
	Guest    string
	IP       netip.Addr
	Hostname string
	Ports    []Port
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
	return r, nil
}

func checkName(key, v, what string) error {
	if !netsetup.ValidName(v) {
		return fmt.Errorf("annotation %s=%q is invalid; use %s of 1-63 letters, digits, '.', '_' or '-', starting with a letter or digit", key, v, what)
	}
	return nil
}

// ParsePorts parses the pontoon.ports annotation: "HOSTPORT:GUESTPORT[/tcp|/udp]" items
// separated by commas (spaces around items are ignored). The empty string is no ports.
func ParsePorts(s string) ([]Port, error) {
	if strings.TrimSpace(s) == "" {
		return nil, nil
	}
	const form = "use HOSTPORT:GUESTPORT[/tcp|/udp] separated by commas, e.g. 8080:80,5353:53/udp"
	var out []Port
	seen := map[string]bool{}
	for _, item := range strings.Split(s, ",") {
		item = strings.TrimSpace(item)
		spec, proto, hasProto := strings.Cut(item, "/")
		if !hasProto {
			proto = "tcp"
		}
		if proto != "tcp" && proto != "udp" {
			return nil, fmt.Errorf("annotation %s: %q has protocol %q; %s", AnnotationPorts, item, proto, form)
		}
		h, g, ok := strings.Cut(spec, ":")
		if !ok {
			return nil, fmt.Errorf("annotation %s: %q is not HOSTPORT:GUESTPORT; %s", AnnotationPorts, item, form)
		}
		hp, err1 := portNumber(h)
		gp, err2 := portNumber(g)
		if err1 != nil || err2 != nil {
			return nil, fmt.Errorf("annotation %s: %q needs port numbers in 1-65535; %s", AnnotationPorts, item, form)
		}
		p := Port{HostPort: hp, GuestPort: gp, Proto: proto}
		key := fmt.Sprintf("%d/%s", hp, proto)
		if seen[key] {
			return nil, fmt.Errorf("annotation %s: host port %s appears twice; give each forward its own host port", AnnotationPorts, key)
		}
		seen[key] = true
		out = append(out, p)
	}
	return out, nil
}

func portNumber(s string) (uint16, error) {
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 || n > 65535 {
		return 0, fmt.Errorf("%q is not a port number", s)
	}
	return uint16(n), nil
}

// FormatPorts is the inverse of ParsePorts.
func FormatPorts(ports []Port) string {
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
	if r.Hostname != "" {
		a[AnnotationHostname] = r.Hostname
	}
	if len(r.Ports) > 0 {
		a[AnnotationPorts] = FormatPorts(r.Ports)
	}
	return a
}

// missingPort returns the first requested port the bridge does not forward to this guest.
func missingPort(b *netsetup.BridgeState, r Request) (Port, bool) {
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
	return Port{}, false
}
