package netsetup

import (
	"errors"
	"fmt"
	"maps"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/pontoon-dev/pontoon/internal/statefile"
	"github.com/pontoon-dev/pontoon/netsetup/ns"
	"github.com/vishvananda/netlink"
)

// GCReport lists what gc removed.
type GCReport struct {
	Gateway bool     `json:"gateway,omitempty"`
	Bridges []string `json:"bridges,omitempty"`
	Guests  []string `json:"guests,omitempty"`
	Orphans []string `json:"orphans,omitempty"`
	// Broken lists bridges removed because their namespace was gone (deleted by hand).
	Broken []string `json:"broken,omitempty"`
	// Repaired lists what gc put right instead of removing: namespace pins that another
	// tool had hidden, pinned again.
	Repaired []string `json:"repaired,omitempty"`
	// Kept lists pins at a bridge's or guest's path that no record accounts for and whose
	// namespace does not show it is pontoon's: another tool's, or pontoon's own with its
	// links gone. gc leaves them; their owner removes them.
	Kept []string `json:"kept,omitempty"`
	// Others lists pins another state directory's records name (see othersPin): gc leaves
	// them to that directory's pontoon.
	Others []OthersError `json:"others,omitempty"`
}

// repairBridge handles a ready bridge whose namespaces have a problem: pins another tool hid
// or covered are pinned again (mendPins); a bridge whose namespace is gone is destroyed (its
// guests and uplink went with the namespace). It reports whether the bridge was destroyed.
// The caller holds the state lock.
func repairBridge(env Env, b *BridgeState, rep *GCReport) (destroyed bool, err error) {
	p := env.BridgeNetns(b.Name)
	if !gonePin(p, b.NetnsID) || env.elsewhere(b, p, ns.MountNS()) {
		done, err := mendPins(env, b)
		rep.Repaired = append(rep.Repaired, done...)
		return false, err
	}
	if err := destroyBridge(env, b); err != nil {
		return false, err
	}
	// Whatever keeps the lost namespace alive (or its slow release) must not keep the
	// uplink's name taken: it is deleted now rather than left to the namespace's end.
	if gwH, err := openHandle(env.GatewayNetns()); err == nil {
		err = delLink(gwH, slotLink(b.Slot))
		gwH.Close()
		if err != nil {
			return true, err
		}
	}
	rep.Broken = append(rep.Broken, b.Name)
	return true, nil
}

// GC removes whatever belongs to dead owners: bridges whose owner process is gone, bridges
// and a gateway whose creator died halfway through creating them, a gateway whose removal
// was killed halfway, bridges whose removal failed or was killed halfway, guests whose
// attached process is gone or whose `guest add` was killed halfway, and kernel objects or
// pins no state record accounts for. It also puts right what was done outside pontoon: a
// gateway or bridge pin hidden by another tool's bind mount is pinned again, and a bridge
// whose namespace was deleted is removed (GCReport.Repaired and Broken). A bridge whose owner or creator is alive is left alone unless its namespace is
// gone, when nothing of it is left to use; GC is safe to run at any time.
func GC(env Env) (GCReport, error) {
	var rep GCReport
	var kept []string // bridges left, whose service rules are checked once the lock is released
	st := env.store()
	err := st.locked(func() error {
		g, err := st.gateway()
		if err != nil {
			return err
		}
		if g != nil && g.Phase != PhaseReady && !g.Creator.Alive() {
			bridges, err := st.bridges()
			if err != nil {
				return err
			}
			for _, b := range bridges {
				if err := destroyBridge(env, b); err != nil {
					return err
				}
				rep.Bridges = append(rep.Bridges, b.Name)
			}
			if err := gatewayDown(env, g); err != nil {
				return err
			}
			rep.Gateway = true
			g = nil
		}
		if g != nil && g.Phase == PhaseReady {
			if mendable(env.GatewayNetns(), g.NetnsID) {
				if err := ns.Mend(env.GatewayNetns(), g.NetnsID); err != nil {
					return err
				}
				rep.Repaired = append(rep.Repaired, "gateway: namespace "+env.GatewayNetns()+" pinned again")
			}
		}
		bridges, err := st.bridges()
		if err != nil {
			return err
		}
		live := map[string]*BridgeState{}
		released := map[string]bool{} // uplinks of bridges destroyed now, vanishing on their own
		var errs []error              // of single bridges: one bridge's problem keeps no other from being seen to
		for _, b := range bridges {
			gone, err := collectBridge(env, st, b, &rep)
			if err != nil {
				errs = append(errs, err)
			}
			if gone {
				released[slotLink(b.Slot)] = true
				continue
			}
			live[b.Name] = b
			if b.Phase == PhaseReady && b.Problem == "" {
				kept = append(kept, b.Name)
			}
		}
		orphans, err := sweepOrphans(env, g, live, released, &rep)
		rep.Orphans = orphans
		if err != nil {
			errs = append(errs, err)
		}
		if g != nil && g.Phase == PhaseReady && !gonePin(env.GatewayNetns(), g.NetnsID) {
			// Port forwards are rebuilt from the records, whatever a killed process left
			// in the gateway's and the bridges' tables; not into another tool's namespace
			// pinned where the gateway's was.
			errs = append(errs, rebuildForwards(env, st))
		} else if g == nil && len(errs) == 0 {
			// No gateway: nor an empty skeleton of state (see GatewayDown).
			st.removeIfEmpty()
		}
		return errors.Join(errs...)
	})
	errs := []error{err, syncServices(env)}
	// The partition first: applying it again writes the service rules too.
	if PartitionDrifted != nil {
		for _, b := range kept {
			what, err := PartitionDrifted(env, b)
			if errors.Is(err, ErrNoBridge) {
				continue // destroyed since the lock was released: nothing of it to repair
			}
			if err != nil {
				errs = append(errs, fmt.Errorf("bridge %q: partition table: %w", b, err))
			} else if what != "" {
				rep.Repaired = append(rep.Repaired, fmt.Sprintf("bridge %s: partition table made the record's again (%s)", b, what))
			}
		}
	}
	if ServicesDrifted != nil {
		for _, b := range kept {
			if err := ServicesDrifted(env, b); err != nil && !errors.Is(err, ErrNoBridge) {
				errs = append(errs, fmt.Errorf("bridge %q: service rules: %w", b, err))
			}
		}
	}
	return rep, errors.Join(errs...)
}

// PartitionDrifted, when set, is called by gc for each ready bridge, without the state lock:
// package partition sets it to make the bridge's partition table the record's again where
// the kernel's differs, and to say what differed ("" when nothing did).
var PartitionDrifted func(env Env, bridge string) (string, error)

// rebuildForwards rebuilds the port forwards of the ready bridges, and the gateway's, from
// the records; a bridge whose namespace pontoon cannot reach is left out. The caller holds
// the state lock.
func rebuildForwards(env Env, st store) error {
	plan, _, err := readyGateway(st)
	if err != nil {
		return err
	}
	left, err := st.bridges()
	if err != nil {
		return err
	}
	var errs []error
	for _, b := range left {
		if b.Phase != PhaseReady || len(b.Ports) == 0 || env.bridgeProblem(b, ns.MountNS()) != "" {
			continue
		}
		if err := rebuildBridgeTable(env, plan, b); err != nil {
			errs = append(errs, fmt.Errorf("bridge %q: %w", b.Name, err))
		}
	}
	return errors.Join(append(errs, syncGatewayTable(env, plan, left))...)
}

// collectBridge is GC's work on one bridge: it destroys a bridge whose owner or creator is
// gone or whose destroy was cut short, repairs its namespaces, and drops its guests that are
// dead or whose add or del was killed halfway. It reports whether the bridge is gone; a
// bridge it could not see to is left with its problem in b.Problem. The caller holds the
// state lock.
func collectBridge(env Env, st store, b *BridgeState, rep *GCReport) (gone bool, err error) {
	// A bridge in phase removing is one the user asked to destroy.
	if b.abandoned() || b.Phase == PhaseRemoving {
		if err := destroyBridge(env, b); err != nil {
			return false, err
		}
		rep.Bridges = append(rep.Bridges, b.Name)
		return true, nil
	}
	if env.findProblems(b); len(pinProblems(b)) > 0 {
		destroyed, err := repairBridge(env, b, rep)
		if destroyed {
			return true, err
		}
		env.findProblems(b)
		if err != nil {
			return false, err
		}
	}
	if done := dropInterrupted(b); len(done) > 0 {
		if err := st.writeBridge(b.Name, b); err != nil {
			return false, err
		}
		noteMemberLeft(env, b.Name)
		rep.Repaired = append(rep.Repaired, done...)
	}
	detached, err := detachedGuests(env, b)
	if err != nil {
		return false, fmt.Errorf("bridge %q: %w", b.Name, err)
	}
	for _, gu := range b.Guests {
		if gu.addKilled() || gu.processGone() || detached[gu.Name] {
			if err := dropGuest(env, b.Name, gu.Name); err != nil {
				return false, err
			}
			rep.Guests = append(rep.Guests, b.Name+"/"+gu.Name)
		}
	}
	// Last, and only as far as it goes: a table damaged by hand (the check says so) must not
	// keep gc from what it removes.
	if b, err := st.bridge(b.Name); err == nil && b != nil {
		_ = rebindOwnIP6(env, st, b)
	}
	return false, nil
}

// A pin of a bridge's or guest's name that no record accounts for is pontoon's to remove only
// when its namespace shows it is pontoon's: the path alone does not say, as another tool may
// pin a namespace of its own there (`ip netns del` and `ip netns add` of the name), and that
// stays. An empty file, its namespace gone, is anyone's leftover.

// guestsPin: a guest's namespace has an eth0 with a guest's MAC (while its bridge is there:
// guests are swept first). Its UTS pin in pontoon's state directory says nothing of what is
// pinned at the guest's path now.
func (e Env) guestsPin(p string) (bool, string) {
	guest, bridge := splitGuestKey(strings.TrimPrefix(filepath.Base(p), guestNetnsPrefix))
	return e.pinIs(p, func(l netlink.Link) bool { return l.Attrs().Name == GuestIfName && isGuestMAC(l.Attrs().HardwareAddr) },
		func(st store) uint64 {
			if b, _ := st.bridge(bridge); b != nil {
				for _, g := range b.Guests {
					if g.Name == guest {
						return g.NetnsID
					}
				}
			}
			return 0
		})
}

// gatewaysPin: the gateway's namespace has its uplink, or a bridge's slot link.
func (e Env) gatewaysPin(p string) (bool, string) {
	return e.pinIs(p, func(l netlink.Link) bool { return l.Attrs().Name == UplinkName || isSlotLink(l.Attrs().Name) },
		func(st store) uint64 {
			if g, _ := st.gateway(); g != nil {
				return g.NetnsID
			}
			return 0
		})
}

// bridgesPin: a bridge's namespace has its br0 bridge, or its uplink.
func (e Env) bridgesPin(p string) (bool, string) {
	bridge := strings.TrimPrefix(filepath.Base(p), bridgeNetnsPrefix)
	return e.pinIs(p, func(l netlink.Link) bool {
		return l.Attrs().Name == UplinkName || (l.Attrs().Name == BridgeDev && l.Type() == "bridge")
	}, func(st store) uint64 {
		if b, _ := st.bridge(bridge); b != nil {
			return b.NetnsID
		}
		return 0
	})
}

// pinIs reports whether the namespace pinned at p is this pontoon's, one of whose links is
// (a path with nothing pinned is: there is nothing of another's to keep), or else the state
// directory of the pontoon whose it is (othersPin; recorded reads its identity from a
// store's records).
func (e Env) pinIs(p string, is func(netlink.Link) bool, recorded func(st store) uint64) (ours bool, other string) {
	if !ns.IsPinned(p) {
		return true, ""
	}
	h, err := openHandle(p)
	if err != nil {
		return false, ""
	}
	defer h.Close()
	links, err := h.LinkList()
	if err != nil {
		return false, ""
	}
	id, _ := ns.ID(p)
	if other := e.othersPin(id, links, recorded); other != "" {
		return false, other
	}
	return slices.ContainsFunc(links, is), ""
}

// sweepOrphans removes pinned namespaces and gateway uplinks that no record accounts for: a
// record is written before its objects, so these can only be left by a record removed while
// its objects could not be (or by a hand-edited state directory).
// Pins it cannot tell for pontoon's go to kept.
func sweepOrphans(env Env, g *GatewayState, live map[string]*BridgeState, released map[string]bool, rep *GCReport) ([]string, error) {
	keep := func(p string, ours bool, other string) bool {
		switch {
		case other != "":
			rep.Others = append(rep.Others, OthersError{Path: p, StateDir: other})
		case !ours:
			rep.Kept = append(rep.Kept, p)
		}
		return !ours
	}
	var out []string
	var errs []error
	// Every state write happens under the lock gc holds, so a temporary file of a write
	// seen now was left by a process killed between writing and renaming it.
	for _, dir := range []string{env.stateDir(), filepath.Join(env.stateDir(), "bridges")} {
		tmps, _ := filepath.Glob(filepath.Join(dir, "*"+statefile.TempSuffix))
		for _, p := range tmps {
			if err := os.Remove(p); err != nil {
				errs = append(errs, err)
				continue
			}
			out = append(out, p)
		}
	}
	owned := map[string]bool{}
	slots := map[string]bool{}
	for _, b := range live {
		owned[env.BridgeNetns(b.Name)] = true
		slots[slotLink(b.Slot)] = true
		for _, gu := range b.Guests {
			owned[gu.Netns] = true
			owned[gu.UTS] = true
		}
	}
	// Guests first: a guest's eth0, which tells its namespace is pontoon's, goes with its
	// bridge's namespace.
	dirs := []struct {
		dir, prefix string
		ours        func(string) (bool, string)
	}{
		{env.netnsDir(), guestNetnsPrefix, env.guestsPin},
		{env.netnsDir(), bridgeNetnsPrefix, env.bridgesPin},
		{filepath.Join(env.stateDir(), "uts"), "", func(string) (bool, string) { return true, "" }}, // pontoon's own directory
	}
	for _, d := range dirs {
		ents, _ := os.ReadDir(d.dir)
		for _, e := range ents {
			p := filepath.Join(d.dir, e.Name())
			if !strings.HasPrefix(e.Name(), d.prefix) || owned[p] {
				continue
			}
			if ours, other := d.ours(p); keep(p, ours, other) {
				continue
			}
			if err := ns.Remove(p); err != nil {
				errs = append(errs, err)
				continue
			}
			out = append(out, p)
		}
	}
	// Ports of deleted guests whose namespace a process kept alive: set down at delete time,
	// removed here.
	for _, b := range live {
		n, err := sweepPorts(env, b)
		out = append(out, n...)
		if err != nil {
			errs = append(errs, err)
		}
	}
	if g == nil {
		// No gateway record: a pinned gateway or host link is left over from a lost record;
		// another tool's namespace at the gateway's path is not.
		// Another's gateway keeps its host link and firewall table too: they have one name
		// on a host.
		gw := env.GatewayNetns()
		ours, other := env.gatewaysPin(gw)
		if ns.IsPinned(gw) && keep(gw, ours, other) || !ns.IsPinned(gw) && !exists(gw) {
			return out, errors.Join(errs...)
		}
		if err := gatewayDown(env, &GatewayState{}); err != nil {
			errs = append(errs, err)
		} else {
			out = append(out, env.GatewayNetns())
		}
		return out, errors.Join(errs...)
	}
	// By identity: another tool's namespace at the gateway's path is not the gateway.
	if env.gatewayDamage(g.NetnsID) == gatewayGone {
		// Nothing of the gateway to sweep; what is left of its bridges needs the user's word.
		return out, errors.Join(append(errs, fmt.Errorf("the gateway is broken: %s", env.gatewayProblem(gatewayGone, liveList(live))))...)
	}
	h, err := openHandle(env.GatewayNetns())
	if err != nil {
		return out, errors.Join(append(errs, err)...)
	}
	defer h.Close()
	links, err := listLinks(h)
	if err != nil {
		return out, errors.Join(append(errs, err)...)
	}
	var orphans []string
	for _, l := range links {
		name := l.Attrs().Name
		if isSlotLink(name) && !slots[name] && !released[name] {
			orphans = append(orphans, name)
		}
	}
	// The uplink of a bridge destroyed just before goes with the bridge's namespace, which
	// the kernel removes after the destroy has returned: gc gives it a moment to go rather
	// than report the destroy's own work as a leftover.
	if orphans, err = stillThere(h, orphans, orphanGrace); err != nil {
		errs = append(errs, err)
	}
	for _, name := range orphans {
		if err := delLink(h, name); err != nil {
			errs = append(errs, err)
			continue
		}
		out = append(out, "gateway link "+name)
	}
	return out, errors.Join(errs...)
}

// orphanGrace is how long gc waits for orphan uplinks whose bridge namespace still lives to
// go: the last process to hold it (a command's lingering nftables connections) lets go of it
// some milliseconds after the destroy has returned, and the kernel's last references (sockets
// freed after an RCU grace period) may take far longer on a loaded machine. Only a real
// orphan, a rare leftover of a killed command, waits this long.
const orphanGrace = 2 * time.Second

// stillThere returns those of names that are links of h whose other end's namespace lives,
// after at most grace, as soon as there is none: a link whose other end's namespace the
// kernel is removing (kernel.NS.PeerGoing) goes by itself, however long the kernel takes.
func stillThere(h *handle, names []string, grace time.Duration) ([]string, error) {
	deadline := time.Now().Add(grace)
	for {
		links, err := listLinks(h)
		if err != nil {
			return names, err
		}
		byName := make(map[string]netlink.Link, len(links))
		for _, l := range links {
			byName[l.Attrs().Name] = l
		}
		names = slices.DeleteFunc(names, func(n string) bool {
			l, ok := byName[n]
			return !ok || h.PeerGoing(l)
		})
		if len(names) == 0 || !time.Now().Before(deadline) {
			return names, nil
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func sweepPorts(env Env, b *BridgeState) ([]string, error) {
	h, err := openHandle(env.BridgeNetns(b.Name))
	if err != nil {
		return nil, nil // a bridge still being created may have no namespace yet
	}
	defer h.Close()
	links, err := listLinks(h)
	if err != nil {
		return nil, err
	}
	inUse := map[string]bool{}
	for _, g := range b.Guests {
		inUse[g.PortName()] = true
	}
	var out []string
	var errs []error
	for _, l := range links {
		name := l.Attrs().Name
		if len(name) < 2 || name[0] != 'g' || name[1] < '0' || name[1] > '9' || inUse[name] {
			continue
		}
		if err := delLink(h, name); err != nil {
			errs = append(errs, err)
			continue
		}
		out = append(out, fmt.Sprintf("bridge %s port %s", b.Name, name))
	}
	return out, errors.Join(errs...)
}

// detachedGuests names the ready guests of a ready bridge whose port is gone or set down.
// Only a guest del does either, before it rewrites the record: such a guest is one whose
// del was killed halfway, recorded but cut off, and gc finishes its removal.
// DetachedGuests names the ready guests of b whose port is gone from the bridge, or down:
// their namespace has ended (a namespace's end takes its veth, and so the port, along).
func DetachedGuests(env Env, b *BridgeState) (map[string]bool, error) { return detachedGuests(env, b) }

func detachedGuests(env Env, b *BridgeState) (map[string]bool, error) {
	if b.Phase != PhaseReady || len(b.Guests) == 0 {
		return nil, nil
	}
	h, err := openHandle(env.BridgeNetns(b.Name))
	if err != nil {
		return nil, nil // repairBridge has seen to a namespace that is gone
	}
	defer h.Close()
	links, err := listLinks(h)
	if err != nil {
		return nil, err
	}
	up := map[string]bool{}
	for _, l := range links {
		up[l.Attrs().Name] = l.Attrs().Flags&net.FlagUp != 0
	}
	out := map[string]bool{}
	for _, g := range b.Guests {
		if g.Phase == PhaseReady && !up[g.PortName()] {
			out[g.Name] = true
		}
	}
	return out, nil
}

// listLinks lists a namespace's links (the handle retries an interrupted dump).
func listLinks(h *handle) ([]netlink.Link, error) {
	links, err := h.LinkList()
	if err != nil {
		return nil, fmt.Errorf("list links: %w", err)
	}
	return links, nil
}

// liveList is live's bridges, by name.
func liveList(live map[string]*BridgeState) []*BridgeState {
	out := make([]*BridgeState, 0, len(live))
	for _, name := range slices.Sorted(maps.Keys(live)) {
		out = append(out, live[name])
	}
	return out
}
