package testenv

import (
	"net"
	"net/netip"
	"strconv"

	"github.com/pontoon-dev/pontoon/netsetup"
	"github.com/pontoon-dev/pontoon/partition"
)

// ServiceOption configures AddService.
type ServiceOption func(*netsetup.ServiceOptions)

// WithServicePorts limits a service to ports ("7000", "7000/tcp", "53/udp"); by default it
// serves every port.
func WithServicePorts(ports ...string) ServiceOption {
	return func(o *netsetup.ServiceOptions) { o.Ports = append(o.Ports, ports...) }
}

// WithServiceIP gives a service its address (in x.y.1.1-x.y.1.254) instead of the lowest free.
func WithServiceIP(ip string) ServiceOption { return func(o *netsetup.ServiceOptions) { o.IP = ip } }

// WithRandom spreads a service's connections at random instead of round-robin.
func WithRandom() ServiceOption {
	return func(o *netsetup.ServiceOptions) { o.Mode = netsetup.ModeRandom }
}

// WithSkipUnreachable spreads each client's connections only over the members the partition
// in force lets it reach.
func WithSkipUnreachable() ServiceOption {
	return func(o *netsetup.ServiceOptions) { o.SkipUnreachable = true }
}

// WithServiceIPv4Only gives a service no IPv6 address.
func WithServiceIPv4Only() ServiceOption {
	return func(o *netsetup.ServiceOptions) { o.IPv4Only = true }
}

// Service is a service address of the Env's bridge.
type Service struct {
	env *Env
	s   netsetup.Service
}

// AddService adds a service address whose connections are spread over members (guest
// names), and returns it. The test fails on bad input. Guests' /etc/hosts names it (unless
// WithDNSNames), and the bridge's name server answers for it while it exists.
func (e *Env) AddService(name string, members []string, opts ...ServiceOption) *Service {
	e.t.Helper()
	o := netsetup.ServiceOptions{Members: members}
	for _, f := range opts {
		f(&o)
	}
	s, err := partition.AddService(e.sb.Env, e.cfg.bridge, name, o)
	if err != nil {
		e.t.Fatalf("testenv: %v", err)
	}
	e.t.Logf("testenv: service %s at %s: %v", name, serviceAddrs(*s), s.Members)
	line := s.IP.String() + "\t" + name
	if s.IP6.IsValid() {
		line += "\n" + s.IP6.String() + "\t" + name
	}
	e.mu.Lock()
	err = e.addHostsLocked(line)
	e.mu.Unlock()
	if err != nil {
		e.t.Fatalf("testenv: add service %q to the guests' hosts file: %v", name, err)
	}
	return &Service{env: e, s: *s}
}

// Service returns the service called name as it is now (its members change as guests leave).
// The test fails when there is none.
func (e *Env) Service(name string) *Service {
	e.t.Helper()
	b, err := netsetup.GetBridge(e.sb.Env, e.cfg.bridge)
	if err != nil {
		e.t.Fatalf("testenv: %v", err)
	}
	s, ok := b.ServiceByName(name)
	if !ok {
		e.t.Fatalf("testenv: bridge %s has no service %q", e.cfg.bridge, name)
	}
	return &Service{env: e, s: *s}
}

// RemoveService removes a service; open connections to its members go on.
func (e *Env) RemoveService(name string) {
	e.t.Helper()
	if err := partition.RemoveService(e.sb.Env, e.cfg.bridge, name); err != nil {
		e.t.Fatalf("testenv: %v", err)
	}
}

// Services returns the bridge's services with what the kernel counted for them.
func (e *Env) Services() []partition.ServiceStatus {
	e.t.Helper()
	out, err := partition.Services(e.sb.Env, e.cfg.bridge)
	if err != nil {
		e.t.Fatalf("testenv: %v", err)
	}
	return out
}

// Name is the service's name, which the bridge's name server answers for.
func (s *Service) Name() string { return s.s.Name }

// IP is the service's IPv4 address.
func (s *Service) IP() netip.Addr { return s.s.IP }

// IP6 is the service's IPv6 address; invalid on an IPv4-only chain or service.
func (s *Service) IP6() netip.Addr { return s.s.IP6 }

// Members are the guests the service spreads connections over.
func (s *Service) Members() []string { return append([]string(nil), s.s.Members...) }

// Addr is "IP:port" of the service.
func (s *Service) Addr(port int) string { return net.JoinHostPort(s.s.IP.String(), strconv.Itoa(port)) }

// Addr6 is "[IP6]:port" of the service.
func (s *Service) Addr6(port int) string {
	return net.JoinHostPort(s.s.IP6.String(), strconv.Itoa(port))
}

// ClientAlias is the address a member sees connections of client come from.
func (s *Service) ClientAlias(client *Guest) netip.Addr {
	return s.env.cfg.plan.ClientAlias(client.IP())
}

// serviceAddrs is a service's address, and its IPv6 one when it has one.
func serviceAddrs(s netsetup.Service) string {
	if s.IP6.IsValid() {
		return s.IP.String() + " " + s.IP6.String()
	}
	return s.IP.String()
}
