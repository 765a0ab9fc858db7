// Package netsetup builds pontoon's chain of network namespaces:
//
//	host -- gateway -- bridge x n -- guest x n x m
//
// One gateway namespace is linked to the host; each run of a command gets a bridge namespace
// linked to the gateway by a /30 uplink and holding a Linux bridge; each guest is a network
// namespace (created by pontoon, or a container's) with a veth port on that bridge and a
// fixed address in the run's private /24. NAT at every level gives guests outbound access.
//
// Every operation takes an Env, which says which network namespace plays the host and where
// state and pinned namespaces live, so a whole chain can be built inside a throwaway namespace
// (as the tests do) as easily as on the real host.
package netsetup

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/pontoon-dev/pontoon/internal/kernel"
	"github.com/pontoon-dev/pontoon/netsetup/ns"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
)

// Interface and namespace names. Guest ports are named g<last octet of the guest IP>, gateway
// ends of uplinks s<slot>; both are unique within their namespace by construction.
const (
	HostLinkName = "pontoon0" // host end of the host link, in the host namespace
	UplinkName   = "uplink"   // the link towards the host, in the gateway and in each bridge
	BridgeDev    = "br0"      // the Linux bridge in a bridge namespace
	GuestIfName  = "eth0"     // the guest's end of its port
	TableName    = "pontoon"  // pontoon's own nftables table in every namespace it touches
)

// Env says where a chain lives. The zero value means the real host: the namespace pontoon
// runs in, state under /run/pontoon, namespaces pinned in /run/netns (so `ip netns exec`
// works).
type Env struct {
	// HostNetns is the path of the network namespace that plays the host. Empty: the
	// namespace the process started in.
	HostNetns string
	// StateDir holds pontoon's state files. Empty: /run/pontoon.
	StateDir string
	// NetnsDir is where pontoon pins the namespaces it creates. Empty: /run/netns.
	NetnsDir string
	// ResolvConf is the host's resolver configuration. Empty: /etc/resolv.conf.
	ResolvConf string
	// DryRun, when set, makes gateway and bridge operations print each step as the
	// equivalent ip/nft/sysctl command instead of changing anything.
	DryRun io.Writer
}

func (e Env) hostNetns() string {
	if e.HostNetns != "" {
		return e.HostNetns
	}
	return ns.Original()
}

func (e Env) stateDir() string {
	if e.StateDir != "" {
		return e.StateDir
	}
	return "/run/pontoon"
}

func (e Env) netnsDir() string {
	if e.NetnsDir != "" {
		return e.NetnsDir
	}
	return "/run/netns"
}

func (e Env) resolvConf() string {
	if e.ResolvConf != "" {
		return e.ResolvConf
	}
	return "/etc/resolv.conf"
}

// Dirs returns the state and namespace directories, defaults applied: what a container that
// runs pontoon itself (a bridge child) must see.
func (e Env) Dirs() (state, netns string) { return e.stateDir(), e.netnsDir() }

// GatewayNetns is the path of the pinned gateway namespace.
func (e Env) GatewayNetns() string { return filepath.Join(e.netnsDir(), "pontoon-gw") }

// BridgeNetns is the path of the pinned namespace of bridge name.
func (e Env) BridgeNetns(bridge string) string {
	return filepath.Join(e.netnsDir(), bridgeNetnsPrefix+bridge)
}

// bridgeNetnsPrefix and guestNetnsPrefix begin the names of bridges' and guests' namespace
// pins.
const (
	bridgeNetnsPrefix = "pontoon-br-"
	guestNetnsPrefix  = "pontoon-g-"
)

// GuestNetns is the path where pontoon pins a guest namespace it created itself:
// pontoon-g-GUEST@BRIDGE. Names cannot contain '@', so no two guests share a path (with '-'
// between them, bridge "a" with guest "b-c" and bridge "a-b" with guest "c" did).
func (e Env) GuestNetns(bridge, guest string) string {
	return filepath.Join(e.netnsDir(), guestNetnsPrefix+guestKey(bridge, guest))
}

// guestKey names a guest uniquely across bridges, for file names.
func guestKey(bridge, guest string) string { return guest + "@" + bridge }

// splitGuestKey is guestKey's inverse: the guest and bridge of "GUEST@BRIDGE"; a name without
// '@' (another tool's pin at a guest's path) has no bridge.
func splitGuestKey(key string) (guest, bridge string) {
	i := strings.LastIndex(key, "@")
	if i < 0 {
		return key, ""
	}
	return key[:i], key[i+1:]
}

// BridgeDataDir is a directory for data that belongs to one bridge (partition state, a run's
// generated files); it is removed with the bridge.
func (e Env) BridgeDataDir(bridge string) string {
	return filepath.Join(e.stateDir(), "run", bridge)
}

// MakeBridgeDataDir makes the bridge's data directory if it has none yet, for a reader that
// must hold a file in it from the start (an event log follower); under the state lock, so
// that a bridge being destroyed does not get it back. An unknown bridge wraps ErrNoBridge.
func MakeBridgeDataDir(env Env, bridge string) error {
	if err := checkName("bridge", bridge); err != nil {
		return err
	}
	st := env.store()
	// lockedIfAny: a host with no state gets none from asking.
	return st.lockedIfAny(func() error {
		b, err := st.bridge(bridge)
		switch {
		case err != nil:
			return err
		case b == nil || b.Phase == PhaseRemoving:
			return fmt.Errorf("bridge %q: %w", bridge, ErrNoBridge)
		}
		return os.MkdirAll(env.BridgeDataDir(bridge), 0o700)
	})
}

// guestUTS is the pinned UTS namespace of a guest pontoon created (kept out of NetnsDir so
// `ip netns list` shows only network namespaces).
func (e Env) guestUTS(bridge, guest string) string {
	return filepath.Join(e.stateDir(), "uts", guestKey(bridge, guest))
}

// handle is an open network namespace with its netlink handle (interrupted dumps retried).
type handle struct {
	*kernel.NS
	path string
	ns   netns.NsHandle // the namespace's fd, owned by NS
	// links remembers the links this handle looked up or made: an attach names eth0 and its
	// port a dozen times, and each fresh lookup is a round trip that dumps the whole link.
	links map[string]netlink.Link
}

func openHandle(path string) (*handle, error) {
	n, err := kernel.OpenNS(path)
	if err != nil {
		return nil, err
	}
	return &handle{NS: n, path: path, ns: netns.NsHandle(n.Fd())}, nil
}

func (h *handle) Close() {
	if h != nil {
		h.NS.Close()
	}
}

func (h *handle) fd() int { return h.Fd() }

// fdPath names the handle's namespace while it is open, whatever becomes of its pin.
func (h *handle) fdPath() string { return fmt.Sprintf("/proc/self/fd/%d", h.fd()) }

// linkByName finds a link for an operation on it, asking the kernel once per handle and
// name: what callers use is the link's index, which stays while the handle's work runs (a
// handle lives for one command's operation; delLink forgets). Callers that need the link's
// current state use freshLink. Errors name the interface.
func (h *handle) linkByName(name string) (netlink.Link, error) {
	if l, ok := h.links[name]; ok {
		return l, nil
	}
	if name == "lo" {
		// Every network namespace's loopback has index 1.
		return h.remember(&netlink.Device{LinkAttrs: netlink.LinkAttrs{Name: "lo", Index: loopbackIndex}}), nil
	}
	l, err := h.freshLink(name)
	if err != nil {
		return nil, err
	}
	return h.remember(l), nil
}

// loopbackIndex is the index the kernel gives every namespace's loopback device.
const loopbackIndex = 1

// freshLink asks the kernel for a link's current attributes.
func (h *handle) freshLink(name string) (netlink.Link, error) {
	l, err := h.LinkByName(name)
	if err != nil {
		return nil, fmt.Errorf("find link %s: %w", name, err)
	}
	return l, nil
}

// remember records a link this handle found or made.
func (h *handle) remember(l netlink.Link) netlink.Link {
	if h.links == nil {
		h.links = map[string]netlink.Link{}
	}
	h.links[l.Attrs().Name] = l
	return l
}

// forget drops a link from the handle's memory once it is gone or renamed.
func (h *handle) forget(name string) { delete(h.links, name) }

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}
