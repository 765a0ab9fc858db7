package netsetup

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
)

// A service is one address for a group of guests (its members): connections to it are
// spread over the members by the kernel of the bridge namespace (package partition writes
// the rules). The bridge record holds the services, so that the rules, the name server and
// listings read one source.
//
// Addresses come from two /24s of the plan that guests never use:
//
//	x.y.1.1 - x.y.1.254    service addresses (IPv6: P:1::N, N spelled as for guests)
//	x.y.2.N                what a member sees as the source of client x.y.0.N (IPv6: P:2::
//	                       and the client's last 64 bits)
//
// The second range exists because client and member share one L2 network: a member's
// reply to the client's own address would go straight to the client and bypass the bridge
// namespace, where it must be translated back to the service address. A client address of
// its own keeps every client apart (one x.y.2.N per guest x.y.0.N) without br_netfilter.

// Service modes: how new connections are spread over the members.
const (
	ModeRoundRobin = "round-robin"
	ModeRandom     = "random"
)

// Service is a service address of a bridge.
type Service struct {
	Name string     `json:"name"`
	IP   netip.Addr `json:"ip"`
	// IP6 is unset on an IPv4-only chain or for a service made IPv4 only.
	IP6 netip.Addr `json:"ip6,omitzero"`
	// Ports are the ports served; empty means every port of TCP and UDP, and ping.
	Ports []ServicePort `json:"ports,omitempty"`
	// Members are guest names, in the order connections go round.
	Members []string `json:"members"`
	Mode    string   `json:"mode"`
	// SkipUnreachable spreads a client's connections only over the members the partition in
	// force lets it reach; otherwise a cut-off member gets its share and the client sees what
	// the partition does to it.
	SkipUnreachable bool `json:"skip_unreachable,omitempty"`
	// Changing is the process adding or removing the service until its rules are in force
	// or gone; pontoon gc finishes what a killed one left: it takes out a half-added
	// service and completes a half-done removal, rules and record alike.
	Changing *Process `json:"changing,omitempty"`
	// Removing marks a service on its way out: its rules go first, then the record.
	Removing bool `json:"removing,omitempty"`
}

// ServicePort is one served port.
type ServicePort struct {
	Port  uint16 `json:"port"`
	Proto string `json:"proto"` // "tcp" or "udp"
}

func (p ServicePort) String() string { return fmt.Sprintf("%d/%s", p.Port, p.Proto) }

// ServiceOptions describe a service to add.
type ServiceOptions struct {
	// IP is the service address in x.y.1.1-x.y.1.254; empty takes the lowest free one.
	IP string
	// IPv4Only gives the service no IPv6 address on a dual-stack chain.
	IPv4Only bool
	// Ports are "PORT" or "PORT/tcp" or "PORT/udp"; none means every port.
	Ports   []string
	Members []string
	// Mode is ModeRoundRobin (default when empty) or ModeRandom.
	Mode            string
	SkipUnreachable bool
}

// ErrNoService is wrapped by errors about a service a bridge does not have.
var ErrNoService = errors.New("no such service")

// ServiceNet is the /24 of service addresses (x.y.1.0/24).
func (p Plan) ServiceNet() netip.Prefix { return netip.PrefixFrom(p.addr(1, 0), 24) }

// ServiceNet6 is the /64 of IPv6 service addresses (P:1::/64).
func (p Plan) ServiceNet6() netip.Prefix { return netip.PrefixFrom(p.addr6(1, 0), 64) }

// ClientNet is the /24 members see clients of a service from (x.y.2.0/24).
func (p Plan) ClientNet() netip.Prefix { return netip.PrefixFrom(p.addr(2, 0), 24) }

// ClientNet6 is the IPv6 /64 members see clients of a service from (P:2::/64).
func (p Plan) ClientNet6() netip.Prefix { return netip.PrefixFrom(p.addr6(2, 0), 64) }

// ServiceIP6 is the IPv6 address of the service at ip (x.y.1.N is P:1::N).
func (p Plan) ServiceIP6(ip netip.Addr) netip.Addr { return p.addr6(1, hostID6(ip.As4()[3])) }

// ClientAlias is the address a member sees client ip (IPv4 or IPv6) come from.
func (p Plan) ClientAlias(ip netip.Addr) netip.Addr {
	if ip.Is4() {
		return p.addr(2, ip.As4()[3])
	}
	a, c := ip.As16(), p.ClientNet6().Addr().As16()
	copy(a[:8], c[:8])
	return netip.AddrFrom16(a)
}

// ParseServicePort parses "7000", "7000/tcp" or "53/udp".
func ParseServicePort(s string) (ServicePort, error) {
	num, proto, found := strings.Cut(s, "/")
	if !found {
		proto = "tcp"
	}
	n, err := strconv.ParseUint(num, 10, 16)
	if err != nil || n == 0 || (proto != "tcp" && proto != "udp") {
		return ServicePort{}, invalidf("port %q is not a port; write PORT, PORT/tcp or PORT/udp with PORT in 1-65535, e.g. 7000 or 53/udp", s)
	}
	return ServicePort{Port: uint16(n), Proto: proto}, nil
}

// AddService adds a service to a bridge's record, after checking everything about it; bad
// input changes nothing. The rules follow the record when package partition applies it
// (partition.AddService does both).
func AddService(env Env, bridge, name string, opt ServiceOptions) (*Service, error) {
	if err := errors.Join(checkName("bridge", bridge), checkName("service", name)); err != nil {
		return nil, fmt.Errorf("service: %w", err)
	}
	st := env.store()
	var out Service
	err := st.locked(func() error {
		plan, _, err := readyGateway(st)
		if err != nil {
			return err
		}
		b, err := st.bridge(bridge)
		if err != nil {
			return err
		}
		if b == nil {
			return fmt.Errorf("bridge %q: %w", bridge, ErrNoBridge)
		}
		s, err := newService(plan, b, name, opt)
		if err != nil {
			return err
		}
		self := Self()
		s.Changing = &self
		b.Services = append(b.Services, s)
		out = s
		return st.writeBridge(bridge, b)
	})
	if err != nil {
		return nil, fmt.Errorf("add service %q to bridge %q: %w", name, bridge, err)
	}
	return &out, nil
}

// newService checks a service against the plan and the bridge's guests and services.
func newService(plan Plan, b *BridgeState, name string, opt ServiceOptions) (Service, error) {
	s := Service{Name: name, Mode: opt.Mode, SkipUnreachable: opt.SkipUnreachable}
	// The name server would answer the address's own name with the service's address.
	if _, err := netip.ParseAddr(name); err == nil {
		return s, invalidf("name: %q is an IP address; a name cannot be one (the name server would answer it with the service's address); choose a name such as kv", name)
	}
	for _, o := range b.Services {
		if strings.EqualFold(o.Name, name) && o.Changing != nil && !o.Changing.Alive() {
			return s, invalidf("name: bridge %q has a service %q whose add or removal was killed halfway; run `pontoon gc` first", b.Name, o.Name)
		}
		if strings.EqualFold(o.Name, name) {
			return s, invalidf("name: bridge %q already has a service %q (%s); choose another name, or remove it first with `pontoon service rm %s %s`", b.Name, o.Name, o.IP, b.Name, o.Name)
		}
	}
	for _, g := range b.Guests {
		if slices.ContainsFunc(g.Names(), func(n string) bool { return strings.EqualFold(n, name) }) {
			return s, invalidf("name: %q is already a name of guest %q, and the name server answers one address per name; choose another service name", name, g.Name)
		}
	}
	switch s.Mode {
	case "":
		s.Mode = ModeRoundRobin
	case ModeRoundRobin, ModeRandom:
	default:
		return s, invalidf("mode %q is unknown; use %q or %q", opt.Mode, ModeRoundRobin, ModeRandom)
	}
	if len(opt.Members) == 0 {
		return s, invalidf("members: none given; name the guests that serve it, e.g. --members n1,n2,n3")
	}
	guests := make([]string, 0, len(b.Guests))
	for _, g := range b.Guests {
		guests = append(guests, g.Name)
	}
	for _, m := range opt.Members {
		if !slices.Contains(guests, m) {
			return s, invalidf("members: bridge %q has no guest %q; its guests are %s", b.Name, m, strings.Join(guests, ", "))
		}
		if slices.Contains(s.Members, m) {
			return s, invalidf("members: %q is given twice; name each guest once", m)
		}
		s.Members = append(s.Members, m)
	}
	seen := map[ServicePort]bool{}
	for _, p := range opt.Ports {
		sp, err := ParseServicePort(p)
		if err != nil {
			return s, fmt.Errorf("ports: %w", err)
		}
		if seen[sp] {
			return s, invalidf("ports: %s is given twice; list each port once", sp)
		}
		seen[sp] = true
		s.Ports = append(s.Ports, sp)
	}
	ip, err := serviceIP(plan, b, opt.IP)
	if err != nil {
		return s, err
	}
	s.IP = ip
	if plan.IPv6() && !opt.IPv4Only {
		s.IP6 = plan.ServiceIP6(ip)
	}
	return s, nil
}

// serviceIP checks a given service address, or picks the lowest free one.
func serviceIP(plan Plan, b *BridgeState, given string) (netip.Addr, error) {
	n := plan.ServiceNet()
	first, last := n.Addr().Next(), plan.addr(1, 254)
	used := func(a netip.Addr) (string, bool) {
		for _, o := range b.Services {
			if o.IP == a {
				return o.Name, true
			}
		}
		return "", false
	}
	if given == "" {
		for a := first; !last.Less(a); a = a.Next() {
			if _, taken := used(a); !taken {
				return a, nil
			}
		}
		return netip.Addr{}, invalidf("ip: every service address %s-%s of bridge %q is taken; remove a service first", first, last, b.Name)
	}
	a, err := netip.ParseAddr(given)
	if err != nil || !a.Is4() {
		return netip.Addr{}, invalidf("ip %q is not an IPv4 address; use one of %s-%s, or leave it out for the lowest free one", given, first, last)
	}
	if !n.Contains(a) || a.Less(first) || last.Less(a) {
		return netip.Addr{}, invalidf("ip %s is outside the service range; use one of %s-%s (guests use %s), or leave it out", a, first, last, plan.GuestNet())
	}
	if other, taken := used(a); taken {
		return netip.Addr{}, invalidf("ip %s is already the address of service %q; choose another, or leave it out for the lowest free one", a, other)
	}
	return a, nil
}

// RemoveService marks a service of a bridge's record as on its way out (its rules go, then
// ServiceDone removes the record); an unknown service wraps ErrNoService and changes nothing.
func RemoveService(env Env, bridge, name string) (*Service, error) {
	if err := errors.Join(checkName("bridge", bridge), checkName("service", name)); err != nil {
		return nil, fmt.Errorf("service: %w", err)
	}
	st := env.store()
	var out Service
	err := st.locked(func() error {
		b, err := st.bridge(bridge)
		if err != nil {
			return err
		}
		if b == nil {
			return fmt.Errorf("bridge %q: %w", bridge, ErrNoBridge)
		}
		// A removal killed halfway is taken over.
		i := serviceIndex(b, name)
		if i < 0 {
			if len(b.Services) == 0 {
				return invalidf("bridge %q has no service %q (%w); it has no services", bridge, name, ErrNoService)
			}
			return invalidf("bridge %q has no service %q (%w); its services are %s", bridge, name, ErrNoService, strings.Join(serviceNames(b), ", "))
		}
		out = b.Services[i]
		out.Removing, out.Changing = false, nil // as it is put back when the rules cannot follow
		self := Self()
		b.Services = slices.Clone(b.Services)
		b.Services[i].Removing, b.Services[i].Changing = true, &self
		return st.writeBridge(bridge, b)
	})
	if err != nil {
		return nil, fmt.Errorf("remove service %q from bridge %q: %w", name, bridge, err)
	}
	return &out, nil
}

// ServiceDone ends an add or a removal of a service once its rules are in force or gone:
// the added service loses its Changing mark, the removed one its record.
func ServiceDone(env Env, bridge, name string) error {
	st := env.store()
	return st.locked(func() error {
		b, err := st.bridge(bridge)
		if err != nil || b == nil {
			return err
		}
		i := serviceIndex(b, name)
		if i < 0 {
			return nil
		}
		b.Services = slices.Clone(b.Services)
		if b.Services[i].Removing {
			b.Services = slices.Delete(b.Services, i, i+1)
		} else {
			b.Services[i].Changing = nil
		}
		return st.writeBridge(bridge, b)
	})
}

// dropInterrupted takes out of b the services whose add or removal was killed halfway, and
// says what it did; their rules must then follow the record.
func dropInterrupted(b *BridgeState) []string {
	var done []string
	b.Services = slices.DeleteFunc(slices.Clone(b.Services), func(s Service) bool {
		if s.Changing == nil || s.Changing.Alive() {
			return false
		}
		what := "add undone"
		if s.Removing {
			what = "removal completed"
		}
		done = append(done, fmt.Sprintf("bridge %s: service %s (%s: its command was killed halfway)", b.Name, s.Name, what))
		return true
	})
	return done
}

// PutService puts a removed service back as it was (undoing RemoveService or AddService
// when the rules could not follow); the caller checked it when it was added.
func PutService(env Env, bridge string, s Service, present bool) error {
	st := env.store()
	return st.locked(func() error {
		b, err := st.bridge(bridge)
		if err != nil || b == nil {
			return err
		}
		b.Services = slices.DeleteFunc(slices.Clone(b.Services), func(o Service) bool { return strings.EqualFold(o.Name, s.Name) })
		if present {
			b.Services = append(b.Services, s)
		}
		return st.writeBridge(bridge, b)
	})
}

// serviceClash says which service of the bridge already answers to a name of guest g (the
// name server answers one address per name); "" when none does.
func serviceClash(b *BridgeState, g Guest) string {
	for _, s := range b.Services {
		for _, n := range g.Names() {
			if strings.EqualFold(n, s.Name) {
				return fmt.Sprintf("%q is already the name of service %q at %s; choose another name, or remove the service first with `pontoon service rm %s %s`", n, s.Name, s.IP, b.Name, s.Name)
			}
		}
	}
	return ""
}

func serviceNames(b *BridgeState) []string {
	out := make([]string, len(b.Services))
	for i, s := range b.Services {
		out[i] = s.Name
	}
	return out
}

// dropMember removes a leaving guest from every service of b; it reports whether any
// service had it.
func dropMember(b *BridgeState, guest string) bool {
	changed := false
	for i, s := range b.Services {
		if j := slices.Index(s.Members, guest); j >= 0 {
			b.Services[i].Members = slices.Delete(slices.Clone(s.Members), j, j+1)
			changed = true
		}
	}
	return changed
}

// ServicesChanged, when set, is called after a guest that was a member of one of the
// bridge's services left it (the record already lacks the member), without the state lock:
// package partition sets it to rewrite the service rules, which netsetup cannot import.
var ServicesChanged func(env Env, bridge string) error

// ServicesDrifted, when set, is called by gc for each bridge, without the state lock:
// package partition sets it to write the service rules again where the kernel's differ from
// the record.
var ServicesDrifted func(env Env, bridge string) error

// servicesChanged calls ServicesChanged for each bridge in changed.
func servicesChanged(env Env, changed map[string]bool) error {
	if ServicesChanged == nil {
		return nil
	}
	var errs []error
	for b := range changed {
		if err := ServicesChanged(env, b); err != nil {
			errs = append(errs, fmt.Errorf("bridge %q: a member left a service, but its rules could not follow (`pontoon gc` writes them again): %w", b, err))
		}
	}
	return errors.Join(errs...)
}

// ServiceByName returns a bridge's service, its name in any case (see serviceIndex).
func (b *BridgeState) ServiceByName(name string) (*Service, bool) {
	if i := serviceIndex(b, name); i >= 0 {
		return &b.Services[i], true
	}
	return nil, false
}

// serviceIndex is the index of the bridge's service called name, or -1. Case does not
// count, as it does not when a service is added (and for the name server): a name given
// back in another case than the record's finds the service, not "no service".
func serviceIndex(b *BridgeState, name string) int {
	return slices.IndexFunc(b.Services, func(s Service) bool { return strings.EqualFold(s.Name, name) })
}

// leftServices holds, per state directory, the bridges a member left a service of while
// the state lock was held; the public entry points call ServicesChanged for them once the
// lock is released (the rules are written under package partition's own lock, which reads
// the record under this one).
var leftServices struct {
	sync.Mutex
	m map[string]map[string]bool
}

func noteMemberLeft(env Env, bridge string) {
	leftServices.Lock()
	defer leftServices.Unlock()
	if leftServices.m == nil {
		leftServices.m = map[string]map[string]bool{}
	}
	d := env.stateDir()
	if leftServices.m[d] == nil {
		leftServices.m[d] = map[string]bool{}
	}
	leftServices.m[d][bridge] = true
}

// syncServices rewrites the service rules of the bridges a member left; the caller does not
// hold the state lock.
func syncServices(env Env) error {
	leftServices.Lock()
	changed := leftServices.m[env.stateDir()]
	delete(leftServices.m, env.stateDir())
	leftServices.Unlock()
	return servicesChanged(env, changed)
}
