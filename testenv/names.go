package testenv

import (
	"github.com/pontoon-dev/pontoon/names"
	"github.com/pontoon-dev/pontoon/partition"
)

// WithDNSNames leaves the guests out of the /etc/hosts guest processes see, so that every
// name, the guests' included, is resolved by the bridge's name server (and is subject to its
// DNS faults). By default /etc/hosts names every guest, and resolvers read it before asking
// the name server.
func WithDNSNames() Option {
	return func(c *config) error {
		c.dnsNames = true
		return nil
	}
}

// WithAliases gives the guest further names, which the bridge's name server answers for.
func WithAliases(aliases ...string) GuestOption {
	return func(c *guestConfig) { c.aliases = append(c.aliases, aliases...) }
}

// NameServer returns the bridge's name server. It runs in the test's process from New until
// the test ends; guest processes' /etc/resolv.conf points at it, and it forwards other names
// to the sandbox's upstream resolvers.
func (e *Env) NameServer() *names.Server { return e.names }

// DNSFault puts a DNS fault in force on the bridge's name server (see names.Fault: Kind,
// Names, From, Addr or Delay; Expires, when set, ends it on time) and returns it with its ID.
// It lasts until RemoveDNSFault, ClearDNSFaults, Heal or the end of the test. The test fails
// when the fault is invalid.
func (e *Env) DNSFault(f names.Fault) names.Fault {
	e.t.Helper()
	f, err := names.AddFault(e.sb.Env, e.cfg.bridge, f, partition.SourceTestenv)
	if err != nil {
		e.t.Fatalf("testenv: %v", err)
	}
	e.t.Logf("testenv: DNS fault %d: %s", f.ID, f)
	return f
}

// RemoveDNSFault removes one DNS fault by its ID.
func (e *Env) RemoveDNSFault(id int) {
	e.t.Helper()
	if err := names.RemoveFault(e.sb.Env, e.cfg.bridge, id, partition.SourceTestenv); err != nil {
		e.t.Fatalf("testenv: %v", err)
	}
}

// ClearDNSFaults removes every DNS fault; Heal does too.
func (e *Env) ClearDNSFaults() {
	e.t.Helper()
	if err := names.ClearFaults(e.sb.Env, e.cfg.bridge, partition.SourceTestenv); err != nil {
		e.t.Fatalf("testenv: %v", err)
	}
}

// DNSFaults lists the DNS faults in force.
func (e *Env) DNSFaults() []names.Fault {
	e.t.Helper()
	f, err := names.Faults(e.sb.Env, e.cfg.bridge)
	if err != nil {
		e.t.Fatalf("testenv: %v", err)
	}
	return f
}
