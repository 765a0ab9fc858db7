package config

import (
	"net/netip"
	"slices"
	"strings"

	"github.com/pontoon-dev/pontoon/internal/lazy"
	"github.com/pontoon-dev/pontoon/netsetup"
)

// Service is a service address of a run ([commands.NAME.services.SERVICE]): one address
// whose connections are spread over members, guests of the command (see netsetup.Service).
type Service struct {
	Name    string
	Members []string
	Ports   []string // as written; checked with netsetup.ParseServicePort
	Mode    string   // netsetup.ModeRoundRobin unless set
	// SkipUnreachable spreads a client's connections only over the members it can reach
	// under the partition in force.
	SkipUnreachable bool
	IP              netip.Addr // its address; the lowest free one when not written
	IPv4Only        bool
}

// Options returns the service as package netsetup takes it.
func (s Service) Options() netsetup.ServiceOptions {
	o := netsetup.ServiceOptions{Members: s.Members, Ports: s.Ports, Mode: s.Mode, SkipUnreachable: s.SkipUnreachable, IPv4Only: s.IPv4Only}
	if s.IP.IsValid() {
		o.IP = s.IP.String()
	}
	return o
}

type serviceDecl struct {
	s      Service
	hasIP  bool
	ipPath []string
}

var serviceSchema = lazy.Value[*schema[serviceDecl]]{Build: func() *schema[serviceDecl] {
	return &schema[serviceDecl]{
		fields: []field[serviceDecl]{
			{key: "members", read: func(c *checker, p []string, v any, d *serviceDecl) {
				d.s.Members = c.strings(p, v, `["n1", "n2", "n3"]`)
			}},
			{key: "ports", read: func(c *checker, p []string, v any, d *serviceDecl) {
				d.s.Ports = c.strings(p, v, `["7000", "53/udp"]`)
				seen := map[netsetup.ServicePort]bool{}
				for i, port := range d.s.Ports {
					sp, err := netsetup.ParseServicePort(port)
					switch {
					case err != nil:
						c.errAt(p, c.lines.line(elemPath(p, i)), "%v", err)
					case seen[sp]:
						c.errAt(p, c.lines.line(elemPath(p, i)), "%s is given twice; list each port once", sp)
					}
					seen[sp] = true
				}
			}},
			{key: "mode", kind: choice, choices: []string{netsetup.ModeRoundRobin, netsetup.ModeRandom}, what: "a balancing mode",
				aliases: map[string]string{"roundrobin": netsetup.ModeRoundRobin, "rr": netsetup.ModeRoundRobin},
				read:    func(c *checker, p []string, v any, d *serviceDecl) { d.s.Mode = v.(string) }},
			{key: "skip_unreachable", kind: flag, example: "true",
				read: func(c *checker, p []string, v any, d *serviceDecl) { d.s.SkipUnreachable = v.(bool) }},
			{key: "ip", kind: text, example: `"172.18.1.1"`,
				read: func(c *checker, p []string, v any, d *serviceDecl) {
					d.hasIP, d.ipPath = true, p
					d.s.IP = c.serviceIP(p, v.(string))
				}},
			{key: "ipv4_only", kind: flag, example: "true",
				read: func(c *checker, p []string, v any, d *serviceDecl) { d.s.IPv4Only = v.(bool) }},
		},
		aliases: map[string]string{"backends": `"members"`, "replicas": `"members"`, "port": `"ports"`, "address": `"ip"`, "strategy": `"mode"`, "policy": `"mode"`},
	}
}}

// services reads [commands.NAME.services]: each service's members must be guests of the
// command, and no two share a name or an address.
func (c *checker) services(path []string, v any, cmd Command) []Service {
	t, ok := c.table(path, v, "[commands.NAME.services.SERVICE] tables with members = [...]")
	if !ok {
		return nil
	}
	guests := map[string]bool{}
	var names []string
	for _, g := range cmd.ScheduleGuests() {
		guests[g.Name] = true
		names = append(names, g.Name)
	}
	// Every name the name server answers for a guest: its name, hostname and aliases.
	nameOf := map[string]string{}
	addNames := func(name string, g *Guest) {
		if g == nil || !g.IP.IsValid() {
			return
		}
		for _, n := range append([]string{name, g.Hostname}, g.Aliases...) {
			if n != "" {
				nameOf[strings.ToLower(n)] = name
			}
		}
	}
	addNames(cmd.Name, cmd.Guest)
	for _, ch := range cmd.Children {
		addNames(ch.Name, ch.Guest)
	}
	var out []Service
	ips := map[netip.Addr]string{}
	for _, name := range c.keys(path, t) {
		sp := sub(path, name)
		c.name(sp, name, "service", "kv")
		st, ok := c.table(sp, t[name], "["+keyString(sp)+"] with members = [...]")
		if !ok {
			continue
		}
		d := serviceDecl{s: Service{Name: name}}
		decode(c, sp, st, serviceSchema.Get(), &d)
		if _, ok := st["members"]; !ok {
			c.errf(sp, "has no members; add members = [%q], naming guests of the command", firstOr(names, "n1"))
		} else if len(d.s.Members) == 0 {
			c.errf(sub(sp, "members"), "no members given; name the guests that serve it, e.g. members = [%q]", firstOr(names, "n1"))
		}
		for i, m := range d.s.Members {
			if !guests[m] {
				c.errAt(sub(sp, "members"), c.lines.line(elemPath(sub(sp, "members"), i)), "%q is not a guest of this command; name one of %v", m, names)
			}
			if slices.Contains(d.s.Members[:i], m) {
				c.errAt(sub(sp, "members"), c.lines.line(elemPath(sub(sp, "members"), i)), "%q is named twice; name each guest once", m)
			}
		}
		if g, ok := nameOf[strings.ToLower(name)]; ok && g == name {
			c.errf(sp, "%q is already the name of a guest, and the name server answers one address per name; choose another service name", name)
		} else if ok {
			c.errf(sp, "%q is already a name of guest %q (its hostname or an alias), and the name server answers one address per name; choose another service name", name, g)
		}
		if d.hasIP && d.s.IP.IsValid() {
			if other, taken := ips[d.s.IP]; taken {
				c.errf(d.ipPath, "%s is already the address of service %q; choose another, or leave ip out", d.s.IP, other)
			}
			ips[d.s.IP] = name
		}
		out = append(out, d.s)
	}
	return out
}

func firstOr(s []string, def string) string {
	if len(s) > 0 {
		return s[0]
	}
	return def
}

// serviceIP checks a service address against the service range of the plan: the /24 after
// the guests' (x.y.1.1-x.y.1.254).
func (c *checker) serviceIP(path []string, s string) netip.Addr {
	g := c.first.As4()
	first, last := netip.AddrFrom4([4]byte{g[0], g[1], g[2] + 1, 1}), netip.AddrFrom4([4]byte{g[0], g[1], g[2] + 1, 254})
	a, err := netip.ParseAddr(s)
	if err != nil || !a.Is4() || a.Less(first) || last.Less(a) {
		c.errf(path, "%q is not a service address; use one of %s-%s, or leave ip out for the lowest free one", s, first, last)
		return netip.Addr{}
	}
	return a
}

// strings reads a list of strings.
func (c *checker) strings(path []string, v any, example string) []string {
	arr, ok := v.([]any)
	if !ok {
		c.errf(path, "must be a list of strings, not %s; write e.g. %s = %s", typeName(v), path[len(path)-1], example)
		return nil
	}
	var out []string
	for i, x := range arr {
		s, ok := x.(string)
		if !ok {
			c.errAt(path, c.lines.line(elemPath(path, i)), "each value must be a string, not %s; write e.g. %s = %s", typeName(x), path[len(path)-1], example)
			continue
		}
		out = append(out, s)
	}
	return out
}

// ServiceAddrs are the addresses a run's services get on the given plan, in file order: an
// address written, else the lowest free one (as netsetup.AddService picks them when they are
// added in that order to a bridge without services).
func ServiceAddrs(services []Service, plan netsetup.Plan) []netip.Addr {
	used := map[netip.Addr]bool{}
	for _, s := range services {
		if s.IP.IsValid() {
			used[s.IP] = true
		}
	}
	out := make([]netip.Addr, len(services))
	next := plan.ServiceNet().Addr().Next()
	for i, s := range services {
		if s.IP.IsValid() {
			out[i] = s.IP
			continue
		}
		for used[next] {
			next = next.Next()
		}
		out[i], used[next] = next, true
	}
	return out
}
