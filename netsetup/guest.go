package netsetup

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"

	"github.com/pontoon-dev/pontoon/netsetup/ns"
	"github.com/vishvananda/netlink"
)

// GuestOptions says how a guest joins a bridge.
type GuestOptions struct {
	// IP is the guest's fixed address, in x.y.0.1-x.y.0.253 of the plan.
	IP string
	// IP6 is the guest's IPv6 address, in the plan's guest /64; empty means the one derived
	// from IP (Plan.GuestIP6). An IPv4-only gateway gives none and refuses one.
	IP6 string
	// Hostname of a namespace pontoon creates; default the guest's name.
	Hostname string
	// Netns attaches an existing network namespace (a path) instead of creating one.
	Netns string
	// PID attaches the network namespace of a running process (e.g. a container's).
	PID int
	// Aliases are further names the bridge's name server answers for the guest (see
	// CheckAliases).
	Aliases []string
	// Key records who attached the guest, e.g. a container id, so it can be removed by it.
	// At most MaxKeyLen bytes.
	Key string
	// ReplaceStale lets the guest take the place of stale attachments instead of failing:
	// guests attached with the same Key (the same container, restarted or re-attached with
	// other settings) and guests holding the name or the address whose attached process is
	// gone (a container that died without detaching). When a guest with the same Key, name,
	// address and process is attached already, AddGuest returns it and changes nothing, so
	// attaching twice is harmless.
	ReplaceStale bool
	// Admit, when set, is called under the state lock with the gateway's plan and the
	// bridge's record (nil when there is no such bridge), before AddGuest checks or changes
	// anything else (the process of PID included), so that a caller's own checks see the
	// records the attach uses without reading them again. Its error aborts the attach and is
	// returned as it is, as is an error reading the gateway.
	Admit func(plan Plan, b *BridgeState) error
	// NotHostChecked says the caller has refused the host's and pontoon's own namespaces for
	// this very namespace itself (CheckNotHost, with a message in its own words), so AddGuest
	// does not check again: the check looks at every bridge's pin, and a container start
	// should pay for it once.
	NotHostChecked bool
}

// verbatim marks an error AddGuest returns without naming the guest and bridge.
type verbatim struct{ err error }

func (v verbatim) Error() string { return v.err.Error() }

// portName is the bridge-side end of a guest's veth: g<last octet>, unique in a bridge
// because guest IPs are.
func portName(ip netip.Addr) string { return fmt.Sprintf("g%d", ip.As4()[3]) }

// GuestMAC is the MAC address of a guest's eth0, derived from its IP (as Docker does): a guest
// that leaves and comes back with the same address keeps its MAC, so the ARP caches of the
// bridge and of the other guests stay right and traffic to it resumes at once.
func GuestMAC(ip netip.Addr) net.HardwareAddr {
	a := ip.As4()
	return net.HardwareAddr{0x02, 0x70, a[0], a[1], a[2], a[3]} // locally administered, unicast
}

// isGuestMAC reports whether mac is of the form GuestMAC gives.
func isGuestMAC(mac net.HardwareAddr) bool { return len(mac) == 6 && mac[0] == 0x02 && mac[1] == 0x70 }

// PortName returns the name of the guest's port in the bridge namespace.
func (g Guest) PortName() string {
	if g.Port != "" {
		return g.Port
	}
	return portName(g.IP)
}

// freePortName picks the port name for a guest: g<octet>, or g<octet>-N while the port of an
// earlier guest with that address is still on its way out (a namespace's links are removed
// asynchronously after it is released). The caller holds the state lock, so no other attach
// can pick the same name.
func freePortName(brH *handle, ip netip.Addr) (string, error) {
	base := portName(ip)
	for i := 0; i < 100; i++ {
		name := base
		if i > 0 {
			name = fmt.Sprintf("%s-%d", base, i)
		}
		if _, taken, err := existing(brH, name); err != nil || !taken {
			return name, err
		}
	}
	return "", fmt.Errorf("no free port name for %s: 100 earlier ports are still being removed: %w", ip, ErrBusy)
}

// AddGuest attaches a network namespace to a bridge as a guest with a fixed IP: a veth port
// on the bridge, eth0 with the address inside, and a default route via the bridge. Without
// Netns or PID, pontoon creates the namespace (with its own UTS namespace and hostname) and
// pins it. On failure nothing stays attached.
func AddGuest(env Env, bridge, name string, opt GuestOptions) (*Guest, error) {
	g, err := addGuest(env, bridge, name, opt)
	var v verbatim
	if errors.As(err, &v) {
		return nil, v.err
	}
	if err != nil {
		return nil, fmt.Errorf("add guest %q to bridge %q: %w", name, bridge, err)
	}
	return g, nil
}

func addGuest(env Env, bridge, name string, opt GuestOptions) (*Guest, error) {
	if err := checkNames(bridge, name); err != nil {
		return nil, err
	}
	if err := checkNewGuestName(name); err != nil {
		return nil, err
	}
	if opt.Netns != "" && opt.PID != 0 {
		return nil, errors.New("give either a namespace path or a pid, not both")
	}
	if len(opt.Key) > MaxKeyLen {
		return nil, fmt.Errorf("key is %d bytes long; use at most %d", len(opt.Key), MaxKeyLen)
	}
	st := env.store()
	var plan Plan
	var b *BridgeState
	g := Guest{Name: name, Phase: PhaseCreating}
	// The namespace to attach is checked before anything else, or with Admit set right
	// after it, so that the caller's checks of the same namespace speak first.
	var proc *Process
	checkProcess := func() error {
		p, err := ProcessOf(opt.PID)
		if err != nil {
			return invalidf("pid %d: no such process; pass the pid of a running process", opt.PID)
		}
		proc = &p
		if opt.NotHostChecked {
			return nil
		}
		return CheckNotHost(env, g.Netns)
	}
	switch {
	case opt.PID != 0:
		g.Netns = fmt.Sprintf("/proc/%d/ns/net", opt.PID)
		if opt.Admit == nil {
			if err := checkProcess(); err != nil {
				return nil, err
			}
		}
	case opt.Netns != "":
		if !exists(opt.Netns) {
			return nil, fmt.Errorf("network namespace %s does not exist; pass the path of a namespace file", opt.Netns)
		}
		g.Netns = opt.Netns
	default:
		g.Owned = true
		g.Netns = env.GuestNetns(bridge, name)
		g.UTS = env.guestUTS(bridge, name)
		g.Hostname = opt.Hostname
		if g.Hostname == "" {
			if !ValidHostname(name) {
				return nil, invalidf("guest name %q cannot be the guest's hostname (labels may not start or end with '-'); give a --hostname, or another name", name)
			}
			g.Hostname = name
		}
		if err := checkHostname(g.Hostname); err != nil {
			return nil, err
		}
	}
	if opt.Netns != "" && opt.PID == 0 && !opt.NotHostChecked {
		if err := CheckNotHost(env, g.Netns); err != nil {
			return nil, err
		}
	}
	if !g.Owned && opt.Hostname != "" {
		// Not set in a namespace pontoon does not own; recorded for listings.
		if err := checkHostname(opt.Hostname); err != nil {
			return nil, err
		}
		g.Hostname = opt.Hostname
	}
	if err := CheckAliases("alias", opt.Aliases); err != nil {
		return nil, err
	}
	g.Aliases = opt.Aliases
	g.Key = opt.Key
	// A guest add killed halfway leaves its record in phase creating: gc recognises it by
	// its dead creator.
	self := Self()
	g.Creator = &self
	var already *Guest
	var brH *handle // the bridge namespace, opened once for naming the port and attaching
	defer func() { brH.Close() }()
	err := st.locked(func() (err error) {
		var gw *GatewayState
		if plan, gw, err = readyGateway(st); err != nil {
			if opt.Admit != nil {
				return verbatim{err}
			}
			return err
		}
		if b, err = st.bridge(bridge); err != nil {
			return err
		}
		if opt.Admit != nil {
			if err := opt.Admit(plan, b); err != nil {
				return verbatim{err}
			}
			if opt.PID != 0 {
				if err := checkProcess(); err != nil {
					return err
				}
			}
		}
		g.Process = proc
		ip, err := plan.ParseGuestIP(opt.IP)
		if err != nil {
			return err
		}
		g.IP = ip
		if g.IP6, err = guestIP6(plan, opt.IP6, ip); err != nil {
			return err
		}
		if b == nil {
			return fmt.Errorf("bridge %q: %w", bridge, ErrNoBridge)
		}
		if b.Phase == PhaseRemoving {
			return fmt.Errorf("bridge %q is being removed: %w", bridge, ErrNoBridge)
		}
		if b.Phase != PhaseReady {
			return fmt.Errorf("bridge %q is still being created: %w", bridge, ErrBusy)
		}
		if !g.Owned {
			if err := notRecordedNamespace(g.Netns, gw, b); err != nil {
				return err
			}
		}
		if opt.ReplaceStale {
			if b, already, err = replaceStale(env, b, g); err != nil || already != nil {
				return err
			}
		}
		if msg := nameClash(b, g); msg != "" {
			return invalidf("%s", msg)
		}
		if msg := serviceClash(b, g); msg != "" {
			return invalidf("%s", msg)
		}
		for _, o := range b.Guests {
			if o.Name == name {
				return &TakenError{Field: "name", Other: o}
			}
			if o.IP == g.IP {
				return &TakenError{Field: "ip", Other: o, Full: len(b.Guests) >= GuestAddrs}
			}
			if g.IP6.IsValid() && o.IP6 == g.IP6 {
				return &TakenError{Field: "ip6", Other: o}
			}
		}
		if brH, err = openHandle(env.BridgeNetns(bridge)); err != nil {
			return err
		}
		if g.Port, err = freePortName(brH, ip); err != nil {
			return err
		}
		b.Guests = append(b.Guests, g)
		return st.writeBridge(bridge, b)
	})
	if err != nil {
		return nil, err
	}
	if already != nil {
		return already, nil
	}
	if err := attach(env, brH, plan, &g); err != nil {
		st.locked(func() error { return dropGuest(env, bridge, name) })
		return nil, err
	}
	err = st.locked(func() error {
		// Decoded again only if another process changed the record meanwhile.
		cur, err := st.bridge(bridge)
		if err != nil {
			return err
		}
		i := -1
		if cur != nil {
			i = slices.IndexFunc(cur.Guests, func(o Guest) bool {
				return o.Name == name && o.Phase == PhaseCreating && o.Creator != nil && *o.Creator == self
			})
		}
		if i < 0 {
			// Destroyed (and perhaps made again) meanwhile: the destroy removed what the
			// record named, but not a pin this attach made after it.
			err := fmt.Errorf("the bridge was destroyed while the guest was being attached: %w", ErrNoBridge)
			if g.Owned {
				err = errors.Join(err, ns.Remove(g.Netns), ns.Remove(g.UTS))
			}
			return err
		}
		g.Phase, g.Creator = PhaseReady, nil
		if g.Process == nil {
			// Of a namespace pontoon made, and of one the user pinned (--netns, a CNI
			// pod's), whose pin may be removed without a guest del.
			g.NetnsID, _ = ns.ID(g.Netns)
			g.MountNS = ns.MountNS()
		}
		cur.Guests[i] = g
		if err := st.writeBridge(bridge, cur); err != nil {
			return err
		}
		return syncBridgePorts(env, plan, cur, name, g.IP)
	})
	if errors.Is(err, ErrNoBridge) {
		return nil, err // what is under the name now is not this attach's to drop
	}
	if err != nil {
		st.locked(func() error { return dropGuest(env, bridge, name) })
		return nil, err
	}
	return &g, nil
}

func checkHostname(h string) error {
	if !ValidHostname(h) {
		return invalidf("hostname %q is invalid; use up to 64 characters: labels of letters, digits, '-' and '_' separated by '.', none starting or ending with '-'", h)
	}
	if _, err := netip.ParseAddr(h); err == nil {
		return invalidf("hostname %q is an IP address; a name cannot be one", h)
	}
	return checkNotLoopback("hostname", h)
}

// syncBridgePorts rewrites the bridge's table when a port forward names this guest.
func syncBridgePorts(env Env, plan Plan, b *BridgeState, name string, ip netip.Addr) error {
	if forwardsTo(b, name, ip) {
		return rebuildBridgeTable(env, plan, b)
	}
	return nil
}

// forwardsTo reports whether one of the bridge's port forwards names the guest.
func forwardsTo(b *BridgeState, name string, ip netip.Addr) bool {
	for _, p := range b.Ports {
		if p.Guest == name || p.Guest == ip.String() {
			return true
		}
	}
	return false
}

func attach(env Env, brH *handle, plan Plan, g *Guest) error {
	ip := g.IP
	port := g.Port
	if g.Owned {
		// Made in the bridge's namespace, it gets a TCP table of its own (guestEhash).
		if err := ns.New(ns.Spec{Net: g.Netns, UTS: g.UTS, Hostname: g.Hostname, From: brH.fdPath(), Mark: env.ownerMark()}); err != nil {
			return err
		}
	}
	gH, err := openHandle(g.Netns)
	if err != nil {
		return err
	}
	defer gH.Close()
	if err := checkGuestLinks(gH, g.Netns); err != nil {
		return err
	}
	br, err := brH.linkByName(BridgeDev)
	if err != nil {
		return err
	}
	v := netlink.NewVeth(netlink.LinkAttrs{Name: port, MasterIndex: br.Attrs().Index})
	v.PeerName = GuestIfName
	v.PeerNamespace = netlink.NsFd(gH.fd())
	v.PeerHardwareAddr = GuestMAC(ip)
	if err := brH.LinkAdd(v); err != nil {
		return fmt.Errorf("create port %s: %w", port, err)
	}
	brH.remember(v)
	// Before the port comes up, so that nothing it sends is learned and the guest's first
	// frames pass.
	if err := securePort(brH, v, ip); err != nil {
		delLink(brH, port)
		return err
	}
	if err := bindIP6(brH, plan, *g, false); err != nil {
		delLink(brH, port)
		return err
	}
	if err := setupGuestSide(env, brH, gH, g, port, plan, ip); err != nil {
		delLink(brH, port)
		return err
	}
	if err := brH.WaitForwarding(port, linkUpWait); err != nil {
		delLink(brH, port)
		return err
	}
	announce(brH, gH, br.Attrs().Index, plan, g)
	return nil
}

func setupGuestSide(env Env, brH, gH *handle, g *Guest, port string, plan Plan, ip netip.Addr) error {
	if err := linkUp(brH, port); err != nil {
		return err
	}
	if err := linkUp(gH, "lo"); err != nil {
		return err
	}
	if g.Owned {
		// Best effort, as the table of its own is: a guest that keeps smaller limits
		// still works.
		_ = hostTCPLimits(brH, gH)
	}
	if err := guestIPv6(gH, plan, g); err != nil {
		return err
	}
	if err := addrUp(gH, GuestIfName, plan.GuestAddr(ip)); err != nil {
		return err
	}
	if err := defaultRoute(gH, plan.BridgeAddr().Addr()); err != nil {
		return err
	}
	if err := defaultRoute6(gH, plan, g); err != nil {
		return err
	}
	// Written while the kernel activates eth0's queue below, which it does asynchronously.
	if err := gH.Sysctls("net.ipv4.ping_group_range", pingGroupRange()); err != nil {
		return err
	}
	// The guest's eth0 transmits only once the kernel's link-watch work has activated its
	// queue, which is deferred while links change often; the bridge side is waited for by
	// waitForwarding.
	return gH.WaitOperUp(GuestIfName, linkUpWait)
}

// DelGuest detaches a guest from its bridge and removes a namespace pontoon created for it.
// Deleting a guest that is not there succeeds.
func DelGuest(env Env, bridge, name string) error {
	if err := checkNames(bridge, name); err != nil {
		return err
	}
	st := env.store()
	err := st.locked(func() error { return dropGuest(env, bridge, name) })
	if err != nil {
		return errors.Join(fmt.Errorf("delete guest %q from bridge %q: %w", name, bridge, err), syncServices(env))
	}
	return syncServices(env)
}

// DelGuestByKey detaches every guest attached with key (e.g. a container id): on the named
// bridges, or on every bridge when none is named.
func DelGuestByKey(env Env, key string, bridges ...string) error {
	if key == "" {
		return errors.New("delete guest: empty key")
	}
	for _, b := range bridges {
		if err := checkName("bridge", b); err != nil {
			return err
		}
	}
	st := env.store()
	if !st.exists() {
		return nil // nothing was ever attached here; and nothing is created
	}
	err := st.locked(func() error {
		var all []*BridgeState
		if len(bridges) == 0 {
			var err error
			if all, err = st.bridges(); err != nil {
				return err
			}
		}
		// A bridge asked for by name is read once: each drop updates that record.
		named := map[*BridgeState]string{}
		seen := map[string]bool{}
		for _, name := range bridges {
			if seen[name] {
				continue
			}
			seen[name] = true
			b, err := st.bridge(name)
			if err != nil {
				return err
			}
			if b != nil {
				all = append(all, b)
				named[b] = name
			}
		}
		for _, b := range all {
			var names []string
			for _, g := range b.Guests {
				if g.Key == key {
					names = append(names, g.Name)
				}
			}
			for _, name := range names {
				var err error
				if file, ok := named[b]; ok && file == b.Name {
					err = dropGuestFrom(env, file, b, name)
				} else {
					err = dropGuest(env, b.Name, name)
				}
				if err != nil {
					return err
				}
			}
		}
		return nil
	})
	return errors.Join(err, syncServices(env))
}

// dropGuest removes a guest's port, namespace (when owned) and record; the caller holds the
// state lock.
func dropGuest(env Env, bridge, name string) error {
	b, err := env.store().bridge(bridge)
	if err != nil || b == nil {
		return err
	}
	return dropGuestFrom(env, bridge, b, name)
}

// dropGuestFrom is dropGuest on b, the record of the bridge read under the lock the caller
// holds; b is updated to what is written.
func dropGuestFrom(env Env, bridge string, b *BridgeState, name string) error {
	st := env.store()
	idx := -1
	for i, g := range b.Guests {
		if g.Name == name {
			idx = i
		}
	}
	if idx < 0 {
		return nil
	}
	g := b.Guests[idx]
	if h, err := openHandle(env.BridgeNetns(bridge)); err == nil {
		// A namespace pontoon created dies with its pin and takes the port along, without
		// the synchronous delete's wait for an RCU grace period (tens of ms); setting the port
		// down detaches the guest at once even if a process keeps the namespace alive, and gc
		// removes such a port later. The same holds for an attached process that has exited
		// (a container at poststop) when its namespace went with it. Any other namespace may
		// live on (a pod's, held by its infra container): delete its port, and eth0 with it.
		if g.Owned || g.processGone() && portGoing(h, g.PortName()) {
			err = setDown(h, g.PortName())
		} else {
			err = delLink(h, g.PortName())
		}
		if plan, _, perr := readyGateway(st); err == nil && perr == nil {
			err = bindIP6(h, plan, g, true)
		}
		h.Close()
		if err != nil {
			return err
		}
	}
	if g.Owned {
		if err := errors.Join(ns.RemoveOwn(g.Netns, g.NetnsID), ns.Remove(g.UTS)); err != nil {
			return err
		}
	}
	b.Guests = append(b.Guests[:idx], b.Guests[idx+1:]...)
	if dropMember(b, name) {
		noteMemberLeft(env, bridge)
	}
	if err := st.writeBridge(bridge, b); err != nil {
		return err
	}
	if !forwardsTo(b, g.Name, g.IP) {
		return nil
	}
	if plan, _, err := readyGateway(st); err == nil {
		return syncBridgePorts(env, plan, b, g.Name, g.IP)
	}
	return nil
}
