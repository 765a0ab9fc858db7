package netsetup

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"
)

// The protocols a port forward may name.
const (
	TCP = "tcp" // the default
	UDP = "udp"
)

// The two written forms of a forward. A guest's own declarations (pontoon.toml, the
// pontoon.ports annotation) leave the guest implied; a bridge's forwards name it.
const (
	GuestPortForm  = "HOSTPORT:GUESTPORT[/tcp|/udp]"
	BridgePortForm = "HOSTPORT:GUEST:GUESTPORT[/tcp|/udp]"
)

// Port forwards HostPort (on the gateway's host-link address) to GuestPort of a guest of one
// bridge. The host connects to x.y.255.2:HostPort; the gateway DNATs it to the bridge's
// uplink and the bridge DNATs it to the guest. Both rules match only traffic arriving from the
// host side, so guests' own outbound connections to that port are never captured.
//
// Guest is empty in a guest's own declarations (ParseGuestPort), where the guest is the one
// declaring it; a bridge's forwards (ParsePort, BridgeState.Ports) always name it.
type Port struct {
	HostPort  uint16 `json:"host_port"`
	Guest     string `json:"guest"` // guest name or IP
	GuestPort uint16 `json:"guest_port"`
	Proto     string `json:"proto"` // TCP or UDP
}

// String writes p in the form it was parsed from: HOSTPORT:GUESTPORT/PROTO without a guest,
// HOSTPORT:GUEST:GUESTPORT/PROTO with one.
func (p Port) String() string {
	if p.Guest == "" {
		return fmt.Sprintf("%d:%d/%s", p.HostPort, p.GuestPort, p.Proto)
	}
	return fmt.Sprintf("%d:%s:%d/%s", p.HostPort, p.Guest, p.GuestPort, p.Proto)
}

// ParsePort parses a bridge's forward, HOSTPORT:GUEST:GUESTPORT[/tcp|/udp]; GUEST is a guest
// name or IP. The error quotes s and says how to write it.
func ParsePort(s string) (Port, error) { return parsePort(s, true) }

// ParseGuestPort parses a forward a guest declares for itself, HOSTPORT:GUESTPORT[/tcp|/udp];
// Guest is left empty. The error quotes s and says how to write it.
func ParseGuestPort(s string) (Port, error) { return parsePort(s, false) }

// parsePort is the one grammar of both forms: an optional protocol after the first '/',
// then colon-separated fields, ports 1-65535, tcp by default.
func parsePort(s string, withGuest bool) (Port, error) {
	form, example, fields := GuestPortForm, "8080:80", 2
	if withGuest {
		form, example, fields = BridgePortForm, "8080:web:80", 3
	}
	spec, proto, hasProto := strings.Cut(s, "/")
	if !hasProto {
		proto = TCP
	}
	if proto != TCP && proto != UDP {
		fix := "/tcp or /udp"
		if l := strings.ToLower(proto); l == TCP || l == UDP {
			fix = strconv.Quote(spec + "/" + l)
		}
		return Port{}, invalidf("port %q: protocol %q is not tcp or udp; write %s", s, proto, fix)
	}
	f := strings.Split(spec, ":")
	switch {
	case !withGuest && len(f) == 1:
		if _, err := portNumber(s, "port", spec, form, example); err == nil {
			suffix := ""
			if proto != TCP {
				suffix = "/" + proto
			}
			return Port{}, invalidf("port %q has no guest port; write %q (%s)", s, spec+":"+spec+suffix, form)
		}
		return Port{}, invalidf("port %q is not %s; write e.g. %q", s, form, example)
	case !withGuest && len(f) > 2:
		return Port{}, invalidf("port %q: only %s is supported (ports are forwarded on every host address); write e.g. %q", s, form, example)
	case len(f) != fields || withGuest && f[1] == "":
		return Port{}, invalidf("port %q is not %s; write e.g. %q", s, form, example)
	}
	host, err := portNumber(s, "host port", f[0], form, example)
	if err != nil {
		return Port{}, err
	}
	guest, err := portNumber(s, "guest port", f[len(f)-1], form, example)
	if err != nil {
		return Port{}, err
	}
	p := Port{HostPort: host, GuestPort: guest, Proto: proto}
	if withGuest {
		p.Guest = f[1]
		if err := checkName("port guest", p.Guest); err != nil {
			if _, ipErr := netip.ParseAddr(p.Guest); ipErr != nil {
				return Port{}, invalidf("port %q: %w", s, err)
			}
		}
	}
	return p, nil
}

// portNumber parses one port field of the forward s; what names the field.
func portNumber(s, what, field, form, example string) (uint16, error) {
	if field == "" || strings.TrimLeft(field, "0123456789") != "" {
		return 0, invalidf("port %q: %s %q is not a number; write %s, e.g. %q", s, what, field, form, example)
	}
	n, err := strconv.ParseUint(field, 10, 32)
	if err != nil || n < 1 || n > 65535 {
		return 0, invalidf("port %q: %s %s is out of range; use 1-65535", s, what, field)
	}
	return uint16(n), nil
}
