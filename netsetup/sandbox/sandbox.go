// Package sandbox builds a throwaway stand-in for a host: a network namespace that plays the
// host, linked to an "upstream" namespace that plays the internet, plus private state and
// namespace directories. A pontoon chain built in a sandbox is hermetic: it never touches the
// real host's links, routes, firewall or sysctls, several can exist at once, and Close
// removes everything.
package sandbox

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"

	"github.com/pontoon-dev/pontoon/internal/kernel"
	"github.com/pontoon-dev/pontoon/netsetup"
	"github.com/pontoon-dev/pontoon/netsetup/ns"
	"github.com/vishvananda/netlink"
)

// Addresses of the sandbox's host-upstream link (TEST-NET-2, documentation space). They exist
// only inside the sandbox's own namespaces.
var (
	UpstreamAddr = netip.MustParsePrefix("198.51.100.1/24")
	HostAddr     = netip.MustParsePrefix("198.51.100.2/24")
)

// Sandbox is a stand-in host with its upstream.
type Sandbox struct {
	Dir      string // everything of the sandbox lives below it
	Host     string // path of the network namespace that plays the host
	Upstream string // path of the network namespace that plays the internet
	Env      netsetup.Env
}

// New creates a sandbox under dir (which must exist and be private to the caller).
func New(dir string) (_ *Sandbox, err error) {
	s := &Sandbox{
		Dir:      dir,
		Host:     filepath.Join(dir, "host.net"),
		Upstream: filepath.Join(dir, "upstream.net"),
	}
	s.Env = netsetup.Env{
		HostNetns:  s.Host,
		StateDir:   filepath.Join(dir, "state"),
		NetnsDir:   filepath.Join(dir, "netns"),
		ResolvConf: filepath.Join(dir, "resolv.conf"),
	}
	defer func() {
		if err != nil {
			s.Close()
		}
	}()
	if err := os.WriteFile(s.Env.ResolvConf, []byte("nameserver "+UpstreamAddr.Addr().String()+"\n"), 0o644); err != nil {
		return nil, err
	}
	for _, p := range []string{s.Host, s.Upstream} {
		if err := ns.New(ns.Spec{Net: p}); err != nil {
			return nil, err
		}
	}
	hh, err := kernel.OpenNS(s.Host)
	if err != nil {
		return nil, fmt.Errorf("sandbox: %w", err)
	}
	defer hh.Close()
	uh, err := kernel.OpenNS(s.Upstream)
	if err != nil {
		return nil, fmt.Errorf("sandbox: %w", err)
	}
	defer uh.Close()
	v := netlink.NewVeth(netlink.LinkAttrs{Name: "wan"})
	v.PeerName = "wan"
	v.PeerNamespace = netlink.NsFd(uh.Fd())
	if err := hh.LinkAdd(v); err != nil {
		return nil, fmt.Errorf("sandbox: create host-upstream link: %w", err)
	}
	for _, side := range []struct {
		h *kernel.NS
		a netip.Prefix
	}{{hh, HostAddr}, {uh, UpstreamAddr}} {
		for _, name := range []string{"lo", "wan"} {
			l, err := side.h.LinkByName(name)
			if err != nil {
				return nil, fmt.Errorf("sandbox: %w", err)
			}
			if name == "wan" {
				if err := side.h.AddrAdd(l, &netlink.Addr{IPNet: &net.IPNet{IP: side.a.Addr().AsSlice(), Mask: net.CIDRMask(side.a.Bits(), 32)}}); err != nil {
					return nil, fmt.Errorf("sandbox: address %s: %w", side.a, err)
				}
			}
			if err := side.h.LinkSetUp(l); err != nil {
				return nil, fmt.Errorf("sandbox: set %s up: %w", name, err)
			}
		}
	}
	if err := hh.RouteAdd(&netlink.Route{Gw: UpstreamAddr.Addr().AsSlice()}); err != nil {
		return nil, fmt.Errorf("sandbox: default route: %w", err)
	}
	return s, nil
}

// Close tears down the chain inside the sandbox and the sandbox itself. It is safe to call
// more than once, and after a partial New.
func (s *Sandbox) Close() error {
	var errs []error
	if _, err := os.Stat(s.Env.StateDir); err == nil {
		errs = append(errs, netsetup.GatewayDown(s.Env, true))
	}
	// Whatever a failed test left pinned goes too: unpinning the host namespace destroys
	// every link and table inside it.
	for _, dir := range []string{s.Env.NetnsDir, filepath.Join(s.Env.StateDir, "uts")} {
		ents, _ := os.ReadDir(dir)
		for _, e := range ents {
			errs = append(errs, ns.Remove(filepath.Join(dir, e.Name())))
		}
	}
	errs = append(errs, ns.Remove(s.Host), ns.Remove(s.Upstream))
	return errors.Join(errs...)
}
