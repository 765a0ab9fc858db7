package partition

import (
	"fmt"
	"testing"

	"github.com/pontoon-dev/pontoon/netsetup"
)

// BenchmarkApplyServices is BenchmarkApply on 16 dual-stack guests without services and
// with three (one skip_unreachable, whose per-client maps follow every change), so the cost
// of writing the service table in the partition's transaction shows.
func BenchmarkApplyServices(b *testing.B) {
	for _, services := range []int{0, 3} {
		b.Run(fmt.Sprintf("guests=16/services=%d", services), func(b *testing.B) {
			s := dualStackScene(b)
			tgt := s.target()
			plan := netsetup.DefaultPlan()
			plan.Subnet6 = netsetup.DefaultPlan6()
			spec := &serviceSpec{plan: plan}
			for i := range services {
				spec.services = append(spec.services, netsetup.Service{
					Name: fmt.Sprintf("s%d", i), Mode: netsetup.ModeRoundRobin,
					Members: []string{tgt.Guests[3*i].Name, tgt.Guests[3*i+1].Name, tgt.Guests[3*i+2].Name}, SkipUnreachable: i == 0,
					Ports: []netsetup.ServicePort{{Port: 7000, Proto: "tcp"}, {Port: 7000, Proto: "udp"}},
				})
				ip := plan.ServiceNet().Addr()
				for range i + 1 {
					ip = ip.Next()
				}
				spec.services[i].IP = ip
				spec.services[i].IP6 = plan.ServiceIP6(spec.services[i].IP)
			}
			if services != 0 {
				tgt.services = func() (*serviceSpec, error) { return spec, nil }
			}
			benchAlternate(b, tgt, isoAndHalves(b, tgt))
			if services != 0 {
				tgt.services = func() (*serviceSpec, error) { return &serviceSpec{plan: plan}, nil }
			}
			if err := Heal(tgt); err != nil {
				b.Fatal(err)
			}
		})
	}
}

// dualStackScene is a bench scene of 16 guests with IPv6 addresses of its own, so that
// other benchmarks' scenes stay IPv4 only.
func dualStackScene(b *testing.B) *scene {
	b.Helper()
	needRoot(b)
	benchMu.Lock()
	defer benchMu.Unlock()
	const key = -16
	if s, ok := benchScenes[key]; ok {
		return s
	}
	tb := &benchTB{TB: b}
	s := newScene(tb, 16, false)
	s.addIPv6(tb)
	benchCleanups = append(benchCleanups, tb.cleanups...)
	benchScenes[key] = s
	return s
}
