package cni

import (
	"bufio"
	"bytes"
	"fmt"
	"net"
	"strings"

	"github.com/containernetworking/cni/pkg/types"
	current "github.com/containernetworking/cni/pkg/types/100"
	"github.com/pontoon-dev/pontoon/internal/kernel"
	"github.com/pontoon-dev/pontoon/names"
	"github.com/pontoon-dev/pontoon/netsetup"
)

// result describes an attached guest: the container's interface first (the one the IPs
// belong to), then its port, which lives in the bridge's namespace rather than the host's.
func result(env netsetup.Env, conf *Config, plan netsetup.Plan, g *netsetup.Guest, sandbox string) (*current.Result, error) {
	gw := plan.BridgeAddr().Addr()
	addr := plan.GuestAddr(g.IP)
	res := &current.Result{
		CNIVersion: current.ImplementedSpecVersion,
		Interfaces: []*current.Interface{
			{Name: netsetup.GuestIfName, Mac: netsetup.GuestMAC(g.IP).String(), Sandbox: sandbox},
		},
		IPs: []*current.IPConfig{{
			Interface: current.Int(0),
			Address:   net.IPNet{IP: addr.Addr().AsSlice(), Mask: net.CIDRMask(addr.Bits(), 32)},
			Gateway:   gw.AsSlice(),
		}},
		Routes: []*types.Route{{Dst: net.IPNet{IP: net.IPv4zero.To4(), Mask: net.CIDRMask(0, 32)}, GW: gw.AsSlice()}},
		DNS:    conf.DNS,
	}
	// A dual-stack gateway gives the guest an IPv6 address too; an IPv4-only one gives none.
	if g.IP6.IsValid() {
		gw6 := plan.BridgeAddr6().Addr()
		res.IPs = append(res.IPs, &current.IPConfig{
			Interface: current.Int(0),
			Address:   net.IPNet{IP: g.IP6.AsSlice(), Mask: net.CIDRMask(plan.GuestNet6().Bits(), 128)},
			Gateway:   gw6.AsSlice(),
		})
		res.Routes = append(res.Routes, &types.Route{Dst: net.IPNet{IP: net.IPv6zero, Mask: net.CIDRMask(0, 128)}, GW: gw6.AsSlice()})
	}
	brNetns := env.BridgeNetns(conf.Bridge)
	port := current.Interface{Name: g.PortName(), Sandbox: brNetns}
	if mac, err := linkMAC(brNetns, port.Name); err == nil {
		port.Mac = mac
	}
	res.Interfaces = append(res.Interfaces, &port)
	if res.DNS.IsEmpty() {
		// What pontoon gives every guest of the bridge: its name server when one runs.
		rc, err := names.GuestResolvConf(env, conf.Bridge)
		if err != nil {
			return nil, fmt.Errorf("read the resolvers for the result: %w", err)
		}
		res.DNS = parseDNS(rc)
	}
	return res, nil
}

func parseDNS(rc []byte) types.DNS {
	var d types.DNS
	sc := bufio.NewScanner(bytes.NewReader(rc))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 2 {
			continue
		}
		switch f[0] {
		case "nameserver":
			d.Nameservers = append(d.Nameservers, f[1])
		case "search":
			d.Search = append(d.Search, f[1:]...)
		case "domain":
			d.Domain = f[1]
		case "options":
			d.Options = append(d.Options, f[1:]...)
		}
	}
	return d
}

func linkMAC(nsPath, name string) (string, error) {
	h, err := kernel.OpenNS(nsPath)
	if err != nil {
		return "", err
	}
	defer h.Close()
	l, err := h.LinkByName(name)
	if err != nil {
		return "", err
	}
	return l.Attrs().HardwareAddr.String(), nil
}
