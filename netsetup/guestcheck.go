package netsetup

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/pontoon-dev/pontoon/netsetup/ns"
	"golang.org/x/sys/unix"
)

// MaxKeyLen bounds GuestOptions.Key: it is stored in the bridge's record.
const MaxKeyLen = 256

// TakenError is wrapped by AddGuest's error when another guest holds the name or the address.
type TakenError struct {
	Field string // "name", "ip" or "ip6"
	Other Guest  // the guest that holds it
	Full  bool   // every guest address of the bridge is taken
}

// GuestAddrs is how many guests a bridge holds: its /24 less the network, the bridge's own
// .254 and broadcast.
const GuestAddrs = 253

// Is makes a taken name or address refused input (ErrInvalid).
func (e *TakenError) Is(target error) bool { return target == ErrInvalid }

func (e *TakenError) Error() string {
	// A guest add killed halfway leaves its guest behind until gc removes it: that, not
	// another name, is what the user needs.
	if o := e.Other; o.addKilled() {
		return fmt.Sprintf("guest %q (IP %s) holds the %s, left half-added by a command that was killed; run `pontoon gc` to remove it, then add the guest again", o.Name, o.IP, takenWhat(e.Field))
	}
	if o := e.Other; o.Phase == PhaseReady && o.processGone() {
		return fmt.Sprintf("guest %q (IP %s) holds the %s, though its process (pid %d) has exited; `pontoon guest del` of it or `pontoon gc` removes it, then add the guest again", o.Name, o.IP, takenWhat(e.Field), o.Process.PID)
	}
	if o := e.Other; o.Phase == PhaseReady && o.pinGone() {
		return fmt.Sprintf("guest %q (IP %s) holds the %s, though the pin of its namespace %s was removed; `pontoon guest del` of it frees it (gc does once the namespace ends), then add the guest again", o.Name, o.IP, takenWhat(e.Field), o.Netns)
	}
	if e.Field == "name" {
		return fmt.Sprintf("a guest named %q already exists on this bridge (IP %s); pick another name", e.Other.Name, e.Other.IP)
	}
	if e.Field == "ip6" {
		return fmt.Sprintf("IPv6 address %s is already used by guest %q on this bridge; pick another address", e.Other.IP6, e.Other.Name)
	}
	if e.Full {
		return fmt.Sprintf("IP %s is already used by guest %q, and the bridge is full: all %d guest addresses are taken; remove a guest (`pontoon guest del`) or use another bridge", e.Other.IP, e.Other.Name, GuestAddrs)
	}
	return fmt.Sprintf("IP %s is already used by guest %q on this bridge; pick another address", e.Other.IP, e.Other.Name)
}

func takenWhat(field string) string {
	switch field {
	case "name":
		return "name"
	case "ip6":
		return "IPv6 address"
	}
	return "address"
}

// replaceStale applies GuestOptions.ReplaceStale for the new guest g (phase creating) on
// bridge b; the caller holds the state lock. It returns the bridge as it is afterwards, or
// the guest that is attached already.
func replaceStale(env Env, b *BridgeState, g Guest) (*BridgeState, *Guest, error) {
	for _, o := range b.Guests {
		if g.Key != "" && o.Key == g.Key && o.Name == g.Name && o.IP == g.IP && o.Phase == PhaseReady &&
			o.Process != nil && g.Process != nil && *o.Process == *g.Process && o.Process.Alive() {
			return b, &o, nil
		}
	}
	dropped := false
	for _, o := range b.Guests {
		sameKey := g.Key != "" && o.Key == g.Key
		deadHolder := (o.Name == g.Name || o.IP == g.IP || (g.IP6.IsValid() && o.IP6 == g.IP6)) && o.processGone()
		if !sameKey && !deadHolder {
			continue
		}
		if err := dropGuest(env, b.Name, o.Name); err != nil {
			return nil, nil, fmt.Errorf("detach the stale guest %q: %w", o.Name, err)
		}
		dropped = true
	}
	if !dropped {
		return b, nil, nil
	}
	cur, err := env.store().bridge(b.Name)
	if err == nil && cur == nil {
		err = ErrNoBridge
	}
	return cur, nil, err
}

// ErrHostNamespace is wrapped by the error for attaching the host's own network namespace.
var ErrHostNamespace = errors.New("it is the host's network namespace")

// CheckNotHost refuses the network namespace at path when it is the host's (attaching it
// would put a veth and a guest address on the host itself), the gateway's or a bridge's.
// AddGuest checks it for every namespace it does not create.
func CheckNotHost(env Env, path string) error {
	var own unix.Stat_t
	if err := unix.Stat(path, &own); err != nil {
		return fmt.Errorf("network namespace %s: %w", path, err)
	}
	// The host is the Env's; pontoon's own namespace and init's stand for it too, so that a
	// sandboxed Env still refuses the real host.
	same := func(p string) bool {
		var st unix.Stat_t
		return unix.Stat(p, &st) == nil && st.Dev == own.Dev && st.Ino == own.Ino
	}
	for _, host := range []string{env.hostNetns(), ns.Original(), "/proc/1/ns/net"} {
		if same(host) {
			return fmt.Errorf("network namespace %s: %w; attach a network namespace of its own", path, ErrHostNamespace)
		}
	}
	// The gateway and the bridges are pontoon's own: a guest port in one would route the
	// chain through a guest. Their pins are compared by identity, so any path to them
	// (a /proc/PID/ns/net of a process inside) is caught. The bridges are those with a
	// record and those with a pin of a bridge's name: a namespace can outlive its record (a
	// record removed by hand), and a record can name a bridge whose pin another tool covered.
	// Beyond pins, the attach checks identities (notRecordedNamespace) and links
	// (checkGuestLinks).
	if same(env.GatewayNetns()) {
		return pontoonsOwn(path, "the gateway's")
	}
	names, err := env.store().bridgeNames()
	if err != nil {
		return fmt.Errorf("network namespace %s: %w", path, err)
	}
	pins, _ := os.ReadDir(env.netnsDir())
	for _, e := range pins {
		if name, ok := strings.CutPrefix(e.Name(), bridgeNetnsPrefix); ok {
			names = append(names, name)
		}
	}
	recorded := len(names)
	seen := make(map[string]bool, len(names))
	for i, name := range names {
		if seen[name] {
			continue
		}
		seen[name] = true
		if !same(env.BridgeNetns(name)) {
			continue
		}
		if i < recorded {
			return pontoonsOwn(path, fmt.Sprintf("bridge %q's", name))
		}
		return fmt.Errorf("network namespace %s is pinned at bridge %q's path, %s, with no record of that bridge: %w, or another tool's; attach a network namespace of its own", path, name, env.BridgeNetns(name), ErrPontoonNamespace)
	}
	return nil
}

// notRecordedNamespace refuses the namespace at path when the records name it as the gateway's
// or the bridge's own, by identity. CheckNotHost finds those by their pins, which another tool
// can cover or remove while the namespace lives on (a process inside keeps it), or which a
// bridge made in another mount namespace has where this process cannot see them; the records,
// read by the attach anyway, still know them. The caller holds the state lock.
func notRecordedNamespace(path string, gw *GatewayState, b *BridgeState) error {
	id, ok := ns.ID(path)
	switch {
	case !ok:
		return nil // no namespace there: the attach says so
	case gw != nil && gw.NetnsID != 0 && id == gw.NetnsID:
		return pontoonsOwn(path, "the gateway's")
	case b != nil && b.NetnsID != 0 && id == b.NetnsID:
		return pontoonsOwn(path, fmt.Sprintf("bridge %q's", b.Name))
	}
	return nil
}

// checkGuestLinks refuses a namespace to attach that has an eth0 already, or pontoon's uplink:
// the gateway and every bridge have one, so this catches their namespaces whatever became of
// their pins and records. One listing costs what a look-up of eth0 alone did.
func checkGuestLinks(gH *handle, path string) error {
	links, err := gH.LinkList()
	if err != nil {
		return fmt.Errorf("list the links of namespace %s: %w", path, err)
	}
	for _, l := range links {
		switch l.Attrs().Name {
		case GuestIfName:
			return fmt.Errorf("namespace %s already has an %s; attach a namespace without one", path, GuestIfName)
		case UplinkName:
			return fmt.Errorf("network namespace %s has a link named %s, as pontoon's gateway and bridges do (%w, or made to look like one); attach a network namespace without one", path, UplinkName, ErrPontoonNamespace)
		}
	}
	return nil
}

// pontoonsOwn is the refusal of the gateway's or a bridge's namespace (whose: "the gateway's").
func pontoonsOwn(path, whose string) error {
	return fmt.Errorf("network namespace %s: %w (%s); attach a network namespace of its own", path, ErrPontoonNamespace, whose)
}

// ErrPontoonNamespace is wrapped by the error for attaching the gateway's or a bridge's
// namespace as a guest.
var ErrPontoonNamespace = errors.New("it is one of pontoon's own network namespaces")
