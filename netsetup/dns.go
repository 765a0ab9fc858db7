package netsetup

import (
	"bufio"
	"bytes"
	"fmt"
	"net/netip"
	"os"
	"strings"
)

// resolvConf is the part of a resolv.conf pontoon cares about.
type resolvConf struct {
	servers []netip.Addr
	other   []string // search, domain and options lines, kept as they are
}

func parseResolvConf(data []byte) resolvConf {
	var rc resolvConf
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		f := strings.Fields(line)
		if len(f) == 0 || strings.HasPrefix(f[0], "#") || strings.HasPrefix(f[0], ";") {
			continue
		}
		switch f[0] {
		case "nameserver":
			if len(f) > 1 {
				if a, err := netip.ParseAddr(f[1]); err == nil {
					rc.servers = append(rc.servers, a.Unmap())
				}
			}
		case "search", "domain", "options":
			rc.other = append(rc.other, line)
		}
	}
	return rc
}

// loopbackResolver returns the IPv4 loopback resolver guests must be redirected to, when
// every nameserver of the host is on a loopback address (systemd-resolved, dnsmasq): guests
// cannot reach the host's loopback directly.
func loopbackResolver(path string) netip.Addr {
	data, err := os.ReadFile(path)
	if err != nil {
		return netip.Addr{}
	}
	rc := parseResolvConf(data)
	var v4 netip.Addr
	for _, s := range rc.servers {
		if !s.IsLoopback() {
			return netip.Addr{}
		}
		if s.Is4() && !v4.IsValid() {
			v4 = s
		}
	}
	return v4
}

// GuestResolvConf returns the resolv.conf a guest should use: the host-link address when the
// gateway redirects DNS to a loopback resolver, otherwise the host's own non-loopback servers.
func GuestResolvConf(env Env) ([]byte, error) {
	plan, g, err := readyGateway(env.store())
	if err != nil {
		return nil, err
	}
	data, err := os.ReadFile(env.resolvConf())
	if err != nil && !os.IsNotExist(err) {
		return nil, fmt.Errorf("read %s: %w", env.resolvConf(), err)
	}
	rc := parseResolvConf(data)
	var b strings.Builder
	b.WriteString("# written by pontoon\n")
	if g.DNS != "" {
		fmt.Fprintf(&b, "nameserver %s\n", plan.HostAddr().Addr())
	} else {
		for _, s := range rc.servers {
			if !s.IsLoopback() {
				fmt.Fprintf(&b, "nameserver %s\n", s)
			}
		}
	}
	for _, l := range rc.other {
		b.WriteString(l + "\n")
	}
	return []byte(b.String()), nil
}
