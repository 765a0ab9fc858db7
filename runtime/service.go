package runtime

import (
	"context"
	"slices"

	"github.com/pontoon-dev/pontoon/partition"
	"github.com/pontoon-dev/pontoon/runtime/config"
)

// serviceHosts are the /etc/hosts lines of the command's services: the addresses they will
// get (config.ServiceAddrs) are known before the bridge exists.
func (r *run) serviceHosts() []HostEntry {
	var out []HostEntry
	for i, ip := range config.ServiceAddrs(r.cmd.Services, r.plan) {
		s := r.cmd.Services[i]
		out = append(out, HostEntry{IP: ip, Names: []string{s.Name}})
		if r.plan.IPv6() && !s.IPv4Only {
			out = append(out, HostEntry{IP: r.plan.ServiceIP6(ip), Names: []string{s.Name}})
		}
	}
	return out
}

// startServices adds the command's services to the run's bridge once their members are
// attached (a member must be a guest of the bridge); until then the service address refuses
// nothing and answers nothing, so clients retry as they would for a member still starting.
// A service that cannot be added is reported; the run goes on.
func (r *run) startServices(started Started) {
	if len(r.cmd.Services) == 0 || r.bridge == "" {
		return
	}
	// Those with an address of their own first: the others then get the lowest free ones,
	// the addresses serviceHosts wrote.
	ordered := slices.Clone(r.cmd.Services)
	slices.SortStableFunc(ordered, func(a, b config.Service) int {
		switch {
		case a.IP.IsValid() == b.IP.IsValid():
			return 0
		case a.IP.IsValid():
			return -1
		}
		return 1
	})
	go func() {
		bridge := func() (partition.Target, error) { return partition.ForBridge(r.opt.Env, r.bridge) }
		if _, err := waitGuests(context.Background(), bridge, started); err != nil {
			r.logf("services not added: %v", err)
			return
		}
		for _, s := range ordered {
			sv, err := partition.AddService(r.opt.Env, r.bridge, s.Name, s.Options())
			if err != nil {
				r.logf("service %s: %v", s.Name, err)
				continue
			}
			r.logf("service %s at %s over %v", sv.Name, sv.IP, sv.Members)
		}
	}()
}
