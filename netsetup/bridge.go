package netsetup

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/pontoon-dev/pontoon/netsetup/ns"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// BridgeOptions configures a new bridge.
type BridgeOptions struct {
	// Ports are forwarded from the gateway's host-link address to guests of this bridge.
	Ports []Port
	// Owner ties the bridge's life to a process: once it is gone, `pontoon gc` removes the
	// bridge. Nil means the bridge lives until it is destroyed.
	Owner *Process
}

// ErrNoBridge is wrapped by errors about a bridge that does not exist.
var ErrNoBridge = errors.New("no such bridge")

// ErrBridgeExists is wrapped by CreateBridge's error for a name already taken.
var ErrBridgeExists = errors.New("bridge already exists")

// ErrNoSlot is returned when all of the gateway's bridge slots are taken.
var ErrNoSlot = errors.New("all bridge slots are in use")

// CreateBridge allocates a free uplink slot (race-free across processes) and builds the
// bridge namespace, its uplink, the Linux bridge, forwarding, masquerade and port forwards.
// A failure at any step undoes the steps before it.
func CreateBridge(env Env, name string, opt BridgeOptions) (*BridgeState, error) {
	if err := checkName("bridge", name); err != nil {
		return nil, err
	}
	if err := checkPortsUnique(opt.Ports); err != nil {
		return nil, err
	}
	st := env.store()
	var plan Plan
	var gw *GatewayState
	b := &BridgeState{Name: name, Phase: PhaseCreating, Creator: Self(), Created: time.Now().UTC(), Ports: opt.Ports, MountNS: ns.MountNS()}
	err := st.locked(func() (err error) {
		if plan, gw, err = readyGateway(st); err != nil {
			return err
		}
		// A bridge with port forwards rewrites the gateway's table from every record once it
		// is built (and again if it is rolled back): those are read whole now, so that one
		// that cannot be read refuses the create before anything is made.
		read := st.bridgeHeads
		if len(opt.Ports) > 0 {
			read = st.bridges
		}
		bridges, err := read()
		if err != nil && len(opt.Ports) > 0 {
			return fmt.Errorf("%w; a bridge with port forwards needs every bridge's record whole (the gateway's forwards are written from them all): mend or remove that record, or create the bridge without port forwards", err)
		}
		if err != nil {
			return err
		}
		// Not into another tool's namespace pinned where the gateway's was (status says so).
		if gonePin(env.GatewayNetns(), gw.NetnsID) {
			return fmt.Errorf("%w: %s", ErrGatewayLost, env.gatewayProblem(gatewayGone, bridges))
		}
		used := make([]bool, Slots)
		for _, o := range bridges {
			if o.Name == name {
				return fmt.Errorf("%w: %q (slot %d)", ErrBridgeExists, name, o.Slot)
			}
			if o.Slot >= 0 && o.Slot < Slots {
				used[o.Slot] = true
			}
		}
		for _, p := range opt.Ports {
			if _, err := netip.ParseAddr(p.Guest); err == nil {
				if _, err := plan.ParseGuestIP(p.Guest); err != nil {
					return fmt.Errorf("port %s: %w", p, err)
				}
			}
			if other, clash := portConflict(bridges, name, p); clash {
				return invalidf("host port %d/%s is already forwarded by bridge %q; %s", p.HostPort, p.Proto, other, clashFix(bridges, other))
			}
		}
		// Slots are handed out round-robin from a hint: a destroyed bridge's uplink is
		// removed asynchronously with its namespace, and rotating keeps its name from being
		// wanted again before it is gone. Any free slot is still found.
		hint := st.nextSlot()
		b.Slot = -1
		for i := range Slots {
			if s := (hint + i) % Slots; !used[s] {
				b.Slot = s
				break
			}
		}
		if b.Slot < 0 {
			return fmt.Errorf("%w (%d)", ErrNoSlot, Slots)
		}
		if env.DryRun != nil {
			return nil
		}
		if err := st.setNextSlot((b.Slot + 1) % Slots); err != nil {
			return err
		}
		// The record exists before any kernel object: a kill at any later point leaves
		// something gc can find.
		return st.writeBridge(name, b)
	})
	if err != nil {
		return nil, fmt.Errorf("create bridge %q: %w", name, err)
	}
	r := &runner{dry: env.DryRun}
	if err := buildBridge(env, plan, b, r); err != nil {
		if env.DryRun == nil {
			var kept error
			lerr := st.locked(func() error { kept = dropFailedCreate(env, st, b); return nil })
			err = errors.Join(err, kept, lerr)
		}
		return nil, fmt.Errorf("create bridge %q: %w", name, err)
	}
	if env.DryRun != nil {
		return b, showReady(env, st, plan, b, gw.NoFirewall)
	}
	b.NetnsID, _ = ns.ID(env.BridgeNetns(name))
	err = st.locked(func() error {
		b.Phase = PhaseReady
		b.Owner = opt.Owner
		if err := st.writeBridge(name, b); err != nil {
			return err
		}
		if len(b.Ports) > 0 {
			bridges, err := st.bridges()
			if err != nil {
				return err
			}
			if err := syncGatewayTable(env, plan, bridges); err != nil {
				return err
			}
		}
		if !gw.NoFirewall {
			// Another firewall (Docker) may have set a drop policy since the gateway came up.
			return withHostNft(env, ensureHostForward)
		}
		return nil
	})
	if err != nil {
		st.locked(func() error { return destroyBridge(env, b) })
		return nil, fmt.Errorf("create bridge %q: %w", name, err)
	}
	return b, nil
}

// showReady prints, for a dry run, what making b ready does after its steps: the gateway's
// tables with b's forwards, and the exceptions in the host's forward chains.
func showReady(env Env, st store, plan Plan, b *BridgeState, noFirewall bool) error {
	if len(b.Ports) > 0 {
		bridges, err := st.bridges()
		if err != nil {
			return err
		}
		ready := *b
		ready.Phase = PhaseReady
		for _, t := range gatewayTables(plan, append(bridges, &ready)) {
			fmt.Fprintln(env.DryRun, t.show(filepath.Base(env.GatewayNetns())))
		}
	}
	if !noFirewall {
		fmt.Fprintln(env.DryRun, hostForwardShow)
	}
	return nil
}

func checkPortsUnique(ports []Port) error {
	seen := map[string]bool{}
	for _, p := range ports {
		k := fmt.Sprintf("%d/%s", p.HostPort, p.Proto)
		if seen[k] {
			return invalidf("host port %s is forwarded twice; give each forward its own host port", k)
		}
		seen[k] = true
	}
	return nil
}

func slotLink(slot int) string { return fmt.Sprintf("s%d", slot) }

// isSlotLink reports whether name is of the form slotLink gives.
func isSlotLink(name string) bool {
	n, ok := strings.CutPrefix(name, "s")
	_, err := strconv.Atoi(n)
	return ok && err == nil
}

// buildBridge runs the steps that make b; on failure it undoes those it ran.
func buildBridge(env Env, plan Plan, b *BridgeState, r *runner) (err error) {
	brPath := env.BridgeNetns(b.Name)
	brName := filepath.Base(brPath)
	gwName := filepath.Base(env.GatewayNetns())
	sl := slotLink(b.Slot)
	var gwH, brH *handle
	defer func() {
		if err != nil {
			r.rollback() // while the handles its undos use are open
		}
		gwH.Close()
		brH.Close()
	}()
	if err := r.run(
		step{
			show: "ip netns add " + brName,
			do: func() error {
				if err := ns.New(ns.Spec{Net: brPath, Mark: env.ownerMark()}); err != nil {
					return err
				}
				// Known from here, so that a failed create keeps a record of its own
				// namespace only (dropFailedCreate).
				b.NetnsID, _ = ns.ID(brPath)
				return nil
			},
			undo: func() error { return ns.Remove(brPath) },
		},
		step{
			show: fmt.Sprintf("ip -n %s link add %s type veth peer name %s netns %s", gwName, sl, UplinkName, brName),
			do: func() (err error) {
				if gwH, err = openHandle(env.GatewayNetns()); err != nil {
					return err
				}
				if brH, err = openHandle(brPath); err != nil {
					return err
				}
				err = addVeth(gwH, sl, UplinkName, brH)
				if errors.Is(err, unix.EEXIST) {
					// The uplink of an earlier bridge on this slot is still being removed.
					if err := delLink(gwH, sl); err != nil {
						return err
					}
					err = addVeth(gwH, sl, UplinkName, brH)
				}
				return err
			},
			// Deleted explicitly rather than left to the namespace's asynchronous cleanup,
			// so the slot's name is free again at once.
			undo: func() error { return delLink(gwH, sl) },
		},
	); err != nil {
		return err
	}
	// Built once: with IPv6, its port-security sets hold every guest address of the plan.
	l2 := bridgeL2Table(plan)
	return r.run(
		step{
			show: fmt.Sprintf("ip -n %s addr add %s dev %s && ip -n %s link set %s up", gwName, plan.UplinkGateway(b.Slot), sl, gwName, sl),
			do:   func() error { return addrUp(gwH, sl, plan.UplinkGateway(b.Slot)) },
		},
		step{
			show: fmt.Sprintf("ip -n %s link set lo up && ip -n %s addr add %s dev %s && ip -n %s link set %s up && ip -n %s route add default via %s",
				brName, brName, plan.UplinkBridge(b.Slot), UplinkName, brName, UplinkName, brName, plan.UplinkGateway(b.Slot).Addr()),
			do: func() error {
				if err := linkUp(brH, "lo"); err != nil {
					return err
				}
				if err := addrUp(brH, UplinkName, plan.UplinkBridge(b.Slot)); err != nil {
					return err
				}
				return defaultRoute(brH, plan.UplinkGateway(b.Slot).Addr())
			},
		},
		step{
			show: fmt.Sprintf("ip -n %s link add %s type bridge && ip -n %s link set %s address %s && ip -n %s addr add %s dev %s && ip -n %s link set %s up",
				brName, BridgeDev, brName, BridgeDev, GuestMAC(plan.BridgeAddr().Addr()), brName, plan.BridgeAddr(), BridgeDev, brName, BridgeDev),
			do: func() error {
				br := &netlink.Bridge{LinkAttrs: netlink.NewLinkAttrs()}
				br.Name = BridgeDev
				// A bridge without an address of its own takes the lowest of its ports' and
				// changes it when that port goes: guests would keep sending to the old one (their
				// ARP entry stays reachable) and lose the gateway and name server for ~30s.
				br.HardwareAddr = GuestMAC(plan.BridgeAddr().Addr())
				if err := brH.LinkAdd(br); err != nil {
					return fmt.Errorf("create bridge device %s: %w", BridgeDev, err)
				}
				return addrUp(brH, BridgeDev, plan.BridgeAddr())
			},
		},
		step{
			show: fmt.Sprintf("ip netns exec %s sysctl -w net.ipv4.ip_forward=1 net.ipv4.conf.%s.send_redirects=0 net.ipv6.conf.all.disable_ipv6=1 net.ipv4.tcp_child_ehash_entries=%s", brName, BridgeDev, guestEhash),
			// Redirects would tell guests to bypass the bridge namespace's IP layer, where
			// partitions are enforced. IPv6 stays off on every link but those that carry the
			// plan's IPv6 addresses (bridgeIPv6Step).
			do: func() error {
				if err := brH.Sysctls(append(bridgeSysctls(Plan{}), "net.ipv6.conf.all.disable_ipv6", "1", "net.ipv6.conf.default.disable_ipv6", "1")...); err != nil {
					return err
				}
				ownTCPTables(brH)
				return nil
			},
		},
		bridgeIPv6Step(plan, &brH, brName),
		bridgeUplinkIPv6Step(plan, b.Slot, &gwH, &brH, gwName, brName),
		bridgeTablesStep(plan, b, l2, &brH, brName),
	)
}

// DestroyBridge removes a bridge's namespace, uplink, rules, forwards, guests pontoon created
// and state. Destroying a bridge that does not exist succeeds.
func DestroyBridge(env Env, name string) error {
	if err := checkName("bridge", name); err != nil {
		return err
	}
	st := env.store()
	return st.locked(func() error {
		b, err := st.bridge(name)
		if err != nil {
			return err
		}
		if b == nil {
			// Nothing recorded; still remove a namespace a crashed run may have pinned.
			return ns.Remove(env.BridgeNetns(name))
		}
		if err := markRemoving(st, b); err != nil {
			return err
		}
		return destroyBridge(env, b)
	})
}

// BeginDestroy records that a bridge is to be destroyed, before anything of it goes (its name
// server, which a caller stops before DestroyBridge): a destroy killed at any later point
// leaves a bridge gc destroys, never one it takes for ready and mends (restarting its name
// server). Marking a bridge that does not exist succeeds.
func BeginDestroy(env Env, name string) error {
	if err := checkName("bridge", name); err != nil {
		return err
	}
	st := env.store()
	return st.lockedIfAny(func() error {
		b, err := st.bridge(name)
		if err != nil || b == nil {
			return err
		}
		return markRemoving(st, b)
	})
}

// ownHandle opens the namespace pinned at path when it is the one of identity id (any, when
// id is 0); nil when it is gone or another is pinned there now.
func ownHandle(path string, id uint64) *handle {
	h, err := openHandle(path)
	if err != nil {
		return nil
	}
	var st unix.Stat_t
	if id != 0 && (unix.Fstat(h.fd(), &st) != nil || st.Ino != id) {
		h.Close()
		return nil
	}
	return h
}

// destroyBridge tears a bridge down; the caller holds the state lock.
func destroyBridge(env Env, b *BridgeState) error {
	st := env.store()
	if err := markRemoving(st, b); err != nil {
		return fmt.Errorf("destroy bridge %q: %w", b.Name, err)
	}
	var errs []error
	var others []string
	for _, g := range b.Guests {
		if g.Owned {
			errs = append(errs, ns.RemoveOwn(g.Netns, g.NetnsID), ns.Remove(g.UTS))
		} else {
			others = append(others, g.PortName())
		}
	}
	// A namespace pontoon did not make (--netns, --pid, a container's) outlives the bridge:
	// its eth0 goes now, as from guest del, not whenever the kernel gets to the bridge's
	// namespace, so that destroy leaves it as it was before the attach. All such ports go
	// in one request, which waits for one RCU grace period however many there are.
	if len(others) > 0 {
		if brH := ownHandle(env.BridgeNetns(b.Name), b.NetnsID); brH != nil {
			errs = append(errs, delPorts(brH, others))
			brH.Close()
		}
	}
	// Releasing the namespaces removes their links asynchronously, without the synchronous
	// delete's wait for an RCU grace period; setting the uplink down cuts the bridge off at
	// once even if a process keeps its namespace alive (gc removes such an uplink later).
	if gwH, err := openHandle(env.GatewayNetns()); err == nil {
		errs = append(errs, setDown(gwH, slotLink(b.Slot)))
		gwH.Close()
	}
	errs = append(errs, ns.RemoveOwn(env.BridgeNetns(b.Name), b.NetnsID))
	if err := removeDataDir(env.BridgeDataDir(b.Name)); err != nil {
		errs = append(errs, fmt.Errorf("remove data of bridge %q: %w", b.Name, err))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("destroy bridge %q: %w", b.Name, err)
	}
	// The forwards go before the record: a process killed in between leaves a record gc
	// finishes, never a forward no record accounts for.
	if len(b.Ports) > 0 {
		if plan, _, err := readyGateway(st); err == nil {
			bridges, err := st.bridges()
			if err != nil {
				return err
			}
			others := slices.DeleteFunc(bridges, func(o *BridgeState) bool { return o.Name == b.Name })
			if err := syncGatewayTable(env, plan, others); err != nil {
				return fmt.Errorf("destroy bridge %q: remove its port forwards: %w", b.Name, err)
			}
		}
	}
	return st.removeBridge(b.Name)
}

// dropFailedCreate removes the record of a bridge whose build failed and was rolled back,
// unless the rollback left its namespace behind: the record is what makes CheckNotHost refuse
// a bridge's namespace to an attach, so it stays, marked removing, until gc removes both.
// The caller holds the state lock; the error says what was kept.
func dropFailedCreate(env Env, st store, b *BridgeState) error {
	path := env.BridgeNetns(b.Name)
	if b.NetnsID == 0 || gonePin(path, b.NetnsID) {
		// Gone, or never this create's: another tool's namespace at the path stays theirs.
		return st.removeBridge(b.Name)
	}
	if err := markRemoving(st, b); err != nil {
		return fmt.Errorf("its namespace %s could not be removed, and its record not kept: %w; run pontoon gc", path, err)
	}
	return fmt.Errorf("its namespace %s could not be removed; pontoon gc removes it", path)
}

// markRemoving records that b is being removed, before anything of it is: a removal that
// fails or is killed halfway leaves a record that says so, which gc and gateway down
// --force finish, and whose name server is neither kept nor started again (it stops by
// itself on seeing the phase). The caller holds the state lock.
func markRemoving(st store, b *BridgeState) error {
	if b.Phase == PhaseRemoving {
		return nil
	}
	b.Phase, b.Creator = PhaseRemoving, Self()
	return st.writeBridge(b.Name, b)
}

// Bridges lists every bridge, in slot order.
func Bridges(env Env) ([]*BridgeState, error) {
	st := env.store()
	var out []*BridgeState
	err := st.lockedIfAny(func() (err error) {
		out, err = st.bridges()
		return err
	})
	for _, b := range out {
		env.findProblems(b)
	}
	return out, err
}

// GetBridge returns one bridge's state; an unknown name wraps ErrNoBridge.
func GetBridge(env Env, name string) (*BridgeState, error) {
	if err := checkName("bridge", name); err != nil {
		return nil, err
	}
	st := env.store()
	var b *BridgeState
	err := st.lockedIfAny(func() (err error) {
		b, err = st.bridge(name)
		return err
	})
	if err == nil && b == nil {
		err = fmt.Errorf("bridge %q: %w", name, ErrNoBridge)
	}
	if b != nil {
		env.findProblems(b)
	}
	return b, err
}

// Netns returns the path of the bridge's namespace.
func (b *BridgeState) Netns(env Env) string { return env.BridgeNetns(b.Name) }

// bridgeTables are the bridge namespace's tables for b: ip, ip6 when the plan has IPv6, and
// l2, the bridge family's (bridgeL2Table, which only the plan decides).
func bridgeTables(plan Plan, b *BridgeState, l2 tableSpec) []tableSpec {
	ts := []tableSpec{bridgeTable(plan, b)}
	if plan.IPv6() {
		ts = append(ts, bridgeTable6(plan, b))
	}
	return append(ts, l2)
}

// bridgeTablesStep installs the bridge namespace's tables (ip, ip6 when the plan has IPv6, and
// the bridge family's) in one transaction. They are built when the step runs, from b as it is
// then.
func bridgeTablesStep(plan Plan, b *BridgeState, l2 tableSpec, brH **handle, brName string) step {
	tables := func() []tableSpec { return bridgeTables(plan, b, l2) }
	return step{
		text: func() string {
			var shown []string
			for _, t := range tables() {
				shown = append(shown, t.show(brName))
			}
			return strings.Join(shown, "\n")
		},
		do: func() error { return replaceTables((*brH).NS, tables()...) },
	}
}

// clashFix says how to free what bridge other holds: a bridge whose owner (a run) or creator
// was killed is gc's to remove, any other is the user's to destroy.
func clashFix(bridges []*BridgeState, other string) string {
	for _, o := range bridges {
		if o.Name == other && o.abandoned() {
			return "its run or creator was killed: run `pontoon gc` to remove that bridge"
		}
	}
	return "choose another host port or destroy that bridge"
}

// removeDataDir removes a bridge's data directory. A partition change that began before the
// bridge was marked for removal holds only the bridge's own lock, and may write its record
// into the directory while it goes: the removal is tried again once that write is in.
func removeDataDir(dir string) error {
	var err error
	for range 50 {
		if err = os.RemoveAll(dir); !errors.Is(err, unix.ENOTEMPTY) {
			return err
		}
		time.Sleep(2 * time.Millisecond)
	}
	return err
}

// guestEhash is the number of buckets of the TCP table of each guest namespace pontoon
// makes: enough for a guest's connections, and quick to walk.
const guestEhash = "4096"

// ownTCPTables gives the namespaces made in the bridge's namespace, its guests', TCP tables
// of their own. A namespace that shares the host's walks all of it (sized by the host's
// memory: a quarter of a million buckets here) for each listing of its sockets, which
// `--cut` makes in every guest it cuts: 2 ms a guest, half a second for 253. Best effort:
// kernels before 6.1 have no such setting, and their guests share the host's table as before.
func ownTCPTables(brH *handle) { _, _ = brH.Sysctl("net.ipv4.tcp_child_ehash_entries", guestEhash) }

// tcpTableLimits come with a namespace's TCP table, sized to it: a table of guestEhash
// buckets allows 2048 sockets in TIME_WAIT and 128 half-open connections.
var tcpTableLimits = []string{"net.ipv4.tcp_max_tw_buckets", "net.ipv4.tcp_max_syn_backlog"}

// hostTCPLimits gives a guest with a TCP table of its own the host's limits instead, read in
// the bridge's namespace (which shares the host's table), so that a guest takes the
// connections a program on the host would: with 2048, about 35 short connections a second
// overflow TIME_WAIT. A kernel without tables of their own reads the same limits in both.
func hostTCPLimits(brH, gH *handle) error {
	var kv []string
	for _, name := range tcpTableLimits {
		v, err := brH.ReadSysctl(name)
		if err != nil {
			return err
		}
		kv = append(kv, name, v)
	}
	return gH.Sysctls(kv...)
}
