package netsetup

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/pontoon-dev/pontoon/netsetup/ns"
	"github.com/vishvananda/netlink"
)

// GCReport lists what gc removed.
type GCReport struct {
	Gateway bool     `json:"gateway,omitempty"`
	Bridges []string `json:"bridges,omitempty"`
	Guests  []string `json:"guests,omitempty"`
	Orphans []string `json:"orphans,omitempty"`
}

// GC removes whatever belongs to dead owners: bridges whose owner process is gone, bridges
// and a gateway whose creator died halfway through creating them, a gateway whose removal
// was killed halfway, guests whose attached
// process is gone, and kernel objects or pins no state record accounts for. It never touches a
// bridge whose owner or creator is alive, and is safe to run at any time.
func GC(env Env) (GCReport, error) {
	var rep GCReport
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
		bridges, err := st.bridges()
		if err != nil {
			return err
		}
		live := map[string]*BridgeState{}
		released := map[string]bool{} // uplinks of bridges destroyed now, vanishing on their own
		for _, b := range bridges {
			dead := (b.Phase == PhaseCreating && !b.Creator.Alive()) || (b.Owner != nil && !b.Owner.Alive())
			if dead {
				if err := destroyBridge(env, b); err != nil {
					return err
				}
				rep.Bridges = append(rep.Bridges, b.Name)
				released[slotLink(b.Slot)] = true
				continue
			}
			live[b.Name] = b
			for _, gu := range b.Guests {
				if gu.Process != nil && !gu.Process.Alive() {
					if err := dropGuest(env, b.Name, gu.Name); err != nil {
						return err
					}
					rep.Guests = append(rep.Guests, b.Name+"/"+gu.Name)
				}
			}
		}
		orphans, err := sweepOrphans(env, g, live, released)
		rep.Orphans = orphans
		if err != nil {
			return err
		}
		if g != nil && g.Phase == PhaseReady {
			// Port forwards are rebuilt from the records, whatever a killed process left
			// in the gateway's and the bridges' tables.
			plan, _, err := readyGateway(st)
			if err != nil {
				return err
			}
			left, err := st.bridges()
			if err != nil {
				return err
			}
			for _, b := range left {
				if b.Phase != PhaseReady || len(b.Ports) == 0 {
					continue
				}
				if err := rebuildBridgeTable(env, plan, b); err != nil {
					return err
				}
			}
			return syncGatewayTable(env, plan, left)
		}
		return nil
	})
	return rep, err
}

// sweepOrphans removes pinned namespaces and gateway uplinks that no record accounts for: a
// record is written before its objects, so these can only be left by a record removed while
// its objects could not be (or by a hand-edited state directory).
func sweepOrphans(env Env, g *GatewayState, live map[string]*BridgeState, released map[string]bool) ([]string, error) {
	var out []string
	var errs []error
	// Every state write happens under the lock gc holds, so a temporary file of writeJSON
	// seen now was left by a process killed between writing and renaming it.
	for _, dir := range []string{env.stateDir(), filepath.Join(env.stateDir(), "bridges")} {
		tmps, _ := filepath.Glob(filepath.Join(dir, "*.tmp"))
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
	dirs := []struct{ dir, prefix string }{
		{env.netnsDir(), "pontoon-br-"},
		{env.netnsDir(), "pontoon-g-"},
		{filepath.Join(env.stateDir(), "uts"), ""},
	}
	for _, d := range dirs {
		ents, _ := os.ReadDir(d.dir)
		for _, e := range ents {
			p := filepath.Join(d.dir, e.Name())
			if !strings.HasPrefix(e.Name(), d.prefix) || owned[p] {
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
		// No gateway record: a pinned gateway or host link is left over from a lost record.
		if ns.IsPinned(env.GatewayNetns()) || exists(env.GatewayNetns()) {
			if err := gatewayDown(env, &GatewayState{}); err != nil {
				errs = append(errs, err)
			} else {
				out = append(out, env.GatewayNetns())
			}
		}
		return out, errors.Join(errs...)
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
	for _, l := range links {
		name := l.Attrs().Name
		if n, ok := strings.CutPrefix(name, "s"); ok && !slots[name] && !released[name] {
			if _, err := strconv.Atoi(n); err != nil {
				continue
			}
			if err := delLink(h, name); err != nil {
				errs = append(errs, err)
				continue
			}
			out = append(out, "gateway link "+name)
		}
	}
	return out, errors.Join(errs...)
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

// listLinks lists a namespace's links; links added or removed meanwhile interrupt the dump,
// which is retried.
func listLinks(h *handle) ([]netlink.Link, error) {
	links, err := h.LinkList()
	for i := 0; i < 20 && errors.Is(err, netlink.ErrDumpInterrupted); i++ {
		links, err = h.LinkList()
	}
	if err != nil {
		return nil, fmt.Errorf("list links: %w", err)
	}
	return links, nil
}
