package partition

import (
	"encoding/binary"
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"slices"

	"github.com/google/nftables"
	"github.com/pontoon-dev/pontoon/internal/nftpool"
	"github.com/pontoon-dev/pontoon/internal/nftwire"
	"github.com/pontoon-dev/pontoon/netsetup"
)

func init() {
	// A guest that leaves drops out of its services' records in netsetup, which cannot
	// import this package; the rules follow here.
	netsetup.ServicesChanged = RefreshServices
	netsetup.ServicesDrifted = SyncServices
}

// AddService adds a service address to a bridge and puts its rules in force (see
// netsetup.Service): bad input changes nothing, and rules that cannot be written leave the
// record as it was.
func AddService(env netsetup.Env, bridge, name string, opt netsetup.ServiceOptions) (*netsetup.Service, error) {
	s, err := netsetup.AddService(env, bridge, name, opt)
	if err != nil {
		return nil, err
	}
	if err := RefreshServices(env, bridge); err != nil {
		undo := netsetup.PutService(env, bridge, *s, false)
		return nil, errors.Join(fmt.Errorf("add service %q to bridge %q: %w", name, bridge, err), undo, RefreshServices(env, bridge))
	}
	if err := netsetup.ServiceDone(env, bridge, name); err != nil {
		return nil, fmt.Errorf("add service %q to bridge %q: its rules are in force, but its record could not say so (pontoon gc takes it out): %w", name, bridge, err)
	}
	s.Changing = nil
	return s, nil
}

// RemoveService removes a service of a bridge and its rules; connections already open to a
// member keep going until they end.
func RemoveService(env netsetup.Env, bridge, name string) error {
	s, err := netsetup.RemoveService(env, bridge, name)
	if err != nil {
		return err
	}
	if err := RefreshServices(env, bridge); err != nil {
		undo := netsetup.PutService(env, bridge, *s, true)
		return errors.Join(fmt.Errorf("remove service %q from bridge %q: %w", name, bridge, err), undo, RefreshServices(env, bridge))
	}
	if err := netsetup.ServiceDone(env, bridge, name); err != nil {
		return fmt.Errorf("remove service %q from bridge %q: its rules are gone, but not its record (pontoon gc removes it): %w", name, bridge, err)
	}
	return nil
}

// RefreshServices writes the bridge's service table again from its record, together with
// the partition in force (applied again as it is, in the same transaction).
func RefreshServices(env netsetup.Env, bridge string) error {
	t := bridgeTarget(env, bridge)
	if err := bridgeNetfilterOff(t.NetnsPath); err != nil {
		return err
	}
	_, err := applyWith(t, func(s State) (State, error) { return s, nil }, applyOpts{kind: EventRefresh})
	return err
}

// ServiceStatus is a service with what the kernel counted for it.
type ServiceStatus struct {
	netsetup.Service
	// Flows are the connections (or UDP flows) sent to each member, in member order.
	Flows []MemberFlows `json:"flows"`
	// Stopped are the service's packets the partition dropped or rejected, per pair of
	// guests (client and member, either way); a connection refused in reject mode before a
	// member was picked counts for the client and the service (Dst is the service's name).
	Stopped []PairCounters `json:"stopped,omitempty"`
}

// MemberFlows counts what a service sent to one member.
type MemberFlows struct {
	Member      string `json:"member"`
	Connections uint64 `json:"connections"`
}

// Services returns a bridge's services with their counters.
func Services(env netsetup.Env, bridge string) ([]ServiceStatus, error) {
	b, err := netsetup.BridgeMembers(env, bridge)
	if err != nil {
		return nil, err
	}
	out := make([]ServiceStatus, len(b.Services))
	for i, s := range b.Services {
		out[i].Service = s
		out[i].Flows = []MemberFlows{}
		for _, m := range s.Members {
			out[i].Flows = append(out[i].Flows, MemberFlows{Member: m})
		}
	}
	if len(b.Services) == 0 {
		return out, nil
	}
	plan, err := netsetup.CurrentPlan(env)
	if err != nil {
		return out, err
	}
	// Packets a member sends to a client carry the client's alias.
	byAddr := map[netip.Addr]string{}
	for _, g := range b.Guests {
		byAddr[g.IP], byAddr[plan.ClientAlias(g.IP)] = g.Name, g.Name
		if g.IP6.IsValid() {
			byAddr[g.IP6], byAddr[plan.ClientAlias(g.IP6)] = g.Name, g.Name
		}
	}
	sets, err := readServiceCounters(env.BridgeNetns(bridge))
	if err != nil {
		return out, err
	}
	for i, s := range b.Services {
		mark := serviceMark(s)
		for _, name := range []string{ServiceFlows, ServiceFlows6} {
			for _, el := range sets[name] {
				if len(el.Key) < 8 || el.Counter == nil || serviceOf(nativeU32(el.Key[:4])) != mark {
					continue
				}
				a, _ := netip.AddrFromSlice(el.Key[4:])
				if j := slices.Index(s.Members, byAddr[a.Unmap()]); j >= 0 {
					out[i].Flows[j].Connections += el.Counter.Packets
				}
			}
		}
		out[i].Stopped = stoppedFor(s, sets, byAddr)
	}
	return out, nil
}

// readServiceCounters reads the counter sets of the service table; none when it has none.
func readServiceCounters(nsPath string) (map[string][]nftables.SetElement, error) {
	out := map[string][]nftables.SetElement{}
	err := nftpool.With(nsPath, func(c *nftables.Conn) error {
		t := serviceTable()
		sets, err := c.GetSets(t)
		if err != nil {
			return nil // no table: nothing counted yet
		}
		for _, s := range sets {
			if slices.Contains(filledSets, s.Name) || s.Anonymous {
				continue
			}
			els, err := nftwire.SetElements(c, s)
			if err != nil {
				return fmt.Errorf("read set %s of table inet %s: %w", s.Name, ServiceTable, err)
			}
			out[s.Name] = els
		}
		return nil
	})
	return out, err
}

func nativeU32(b []byte) uint32 {
	var v [4]byte
	copy(v[:], b)
	return binary.NativeEndian.Uint32(v[:])
}

// SyncServices writes a bridge's service rules again when the kernel's differ from its
// record (a change killed before its rules followed, rules deleted by hand): the members
// each service maps are compared, and nothing is written when they agree.
func SyncServices(env netsetup.Env, bridge string) error {
	t := bridgeTarget(env, bridge)
	guests, err := t.guests()
	if err != nil {
		return err
	}
	spec, err := t.serviceSpec()
	if err != nil {
		return err
	}
	want := map[string]bool{}
	if sr := compileServices(spec, guests, nil, ModeDrop, false, nil); !sr.empty {
		for _, name := range []string{serviceMarks, serviceMarks6} {
			for _, el := range sr.elements[name] {
				want[fmt.Sprintf("%s %x %x", name, el.Key, el.Val)] = true
			}
		}
	}
	got := map[string]bool{}
	table := false
	err = nftpool.With(t.NetnsPath, func(c *nftables.Conn) error {
		sets, err := c.GetSets(serviceTable())
		if err != nil {
			return nil // no table
		}
		table = true
		for _, s := range sets {
			if s.Name != serviceMarks && s.Name != serviceMarks6 {
				continue
			}
			els, err := nftwire.SetElements(c, s)
			if err != nil {
				return fmt.Errorf("read map %s of table inet %s: %w", s.Name, ServiceTable, err)
			}
			for _, el := range els {
				got[fmt.Sprintf("%s %x %x", s.Name, el.Key, el.Val)] = true
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	if maps.Equal(want, got) && table == (len(spec.services) > 0) {
		if !table {
			return nil
		}
		return bridgeNetfilterOff(t.NetnsPath)
	}
	return RefreshServices(env, bridge)
}
