package cni

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"strings"
	"time"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"
	"github.com/pontoon-dev/pontoon/netsetup"
	"github.com/pontoon-dev/pontoon/netsetup/ns"
	"github.com/pontoon-dev/pontoon/partition"
)

// KeyPrefix starts the key of every guest the plugin attaches: "cni/NETWORK/CONTAINER/IFNAME".
// GC and DEL touch only guests whose key carries their network's prefix, so guests attached
// by the CLI, the OCI hook or another CNI network on the same bridge are left alone.
const KeyPrefix = "cni/"

// Key is the guest key of one attachment.
func Key(network, containerID, ifName string) string {
	return KeyPrefix + network + "/" + containerID + "/" + ifName
}

// GuestName derives a guest name from the attachment: the container id's first 12
// characters (as engines shorten ids) and the interface, e.g. "3f2a9c1d0b7e-eth0".
func GuestName(containerID, ifName string) string {
	var b strings.Builder
	for _, r := range containerID {
		if b.Len() == 12 {
			break
		}
		if r < 128 && (r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '.' || r == '-') {
			if b.Len() == 0 && (r == '_' || r == '.' || r == '-') {
				b.WriteByte('c')
			}
			b.WriteRune(r)
		}
	}
	if b.Len() == 0 {
		b.WriteString("c")
	}
	return b.String() + "-" + ifName
}

// podGuestName is the guest name of a Kubernetes pod's attachment: its pod's name and
// namespace (CNI_ARGS K8S_POD_NAME and K8S_POD_NAMESPACE, which kubelet and containerd's CRI
// pass), etcd-0.db; "" when there is no pod name or they make no guest name. A pod made again
// under its name (a restart gets a new sandbox id) is then the same guest: partitions and
// names follow it, and a pod of the same name in another namespace is another guest.
func podGuestName(cniArgs string) string {
	var pod, space string
	for _, kv := range strings.Split(cniArgs, ";") {
		switch k, v, _ := strings.Cut(kv, "="); k {
		case "K8S_POD_NAME":
			pod = v
		case "K8S_POD_NAMESPACE":
			space = v
		}
	}
	name := pod
	if space != "" {
		name += "." + space
	}
	if pod == "" || !netsetup.ValidName(name) {
		return ""
	}
	return name
}

// uniqueName is the fallback when two attachments' ids share their first 12 characters.
func uniqueName(key, containerID, ifName string) string {
	sum := sha256.Sum256([]byte(key))
	return GuestName(containerID, ifName) + "-" + hex.EncodeToString(sum[:4])
}

// errRetry makes attach try again with the address or name its admit check picked.
var errRetry = errors.New("retry")

// attachWait bounds how long an ADD waits for a bridge another ADD is still creating.
const attachWait = 30 * time.Second

func checkArgs(args *skel.CmdArgs) error {
	if args.IfName != netsetup.GuestIfName {
		return configErr("CNI_IFNAME", "%q: a pontoon guest's interface is %s; configure the runtime to use %s", args.IfName, netsetup.GuestIfName, netsetup.GuestIfName)
	}
	if strings.ContainsAny(args.ContainerID, "/\n") {
		return configErr("CNI_CONTAINERID", "%q contains '/' or a newline", args.ContainerID)
	}
	return nil
}

// Add attaches the namespace of args to the configured bridge and returns the result.
func Add(env netsetup.Env, args *skel.CmdArgs) (types.Result, *Config, error) {
	conf, err := ParseConfig(args.StdinData)
	if err != nil {
		return nil, nil, err
	}
	if err := checkArgs(args); err != nil {
		return nil, conf, err
	}
	if conf.PrevResult != nil {
		return nil, conf, configErr("prevResult", "pontoon-cni creates the interface and must be the first plugin of the chain")
	}
	key := Key(conf.Name, args.ContainerID, args.IfName)
	if len(key) > netsetup.MaxKeyLen {
		// Blamed on the longer of the two: a runtime's id, or a network's name.
		if len(args.ContainerID) >= len(conf.Name) {
			return nil, conf, configErr("CNI_CONTAINERID", "is %d bytes long; with the network's name the guest's key is %d bytes, and at most %d fit", len(args.ContainerID), len(key), netsetup.MaxKeyLen)
		}
		return nil, conf, configErr("name", "network name and container id together are %d bytes; at most %d fit", len(key), netsetup.MaxKeyLen)
	}
	// A static address and the namespace are checked before anything is created: bad
	// input changes nothing.
	static, err := conf.staticIPs(expectedPlan(env, conf), args.Args)
	if err != nil {
		return nil, conf, err
	}
	if err := checkNetns(env, args.Netns, args.IfName); err != nil {
		return nil, conf, err
	}
	lock, err := lockNetwork(env)
	if err != nil {
		return nil, conf, err
	}
	defer lock.release()
	plan, m, err := ensureNetwork(env, conf)
	// Whatever fails from here removes the gateway and bridge this ADD created.
	fail := func(err error) (types.Result, *Config, error) {
		if rerr := rollback(env, conf, m, lock); rerr != nil {
			err = errors.Join(err, rerr)
		}
		return nil, conf, err
	}
	if err != nil {
		return fail(err)
	}
	if err := sweepGone(env, conf); err != nil {
		return fail(err)
	}
	g, err := attach(env, conf.Bridge, key, args, static)
	if err != nil {
		return fail(err)
	}
	// The partition in force on the bridge must cover the new port.
	if err := partition.Refresh(env, conf.Bridge); err != nil {
		err = fmt.Errorf("apply bridge %q's partition to container %s: %w", conf.Bridge, args.ContainerID, err)
		return fail(errors.Join(err, netsetup.DelGuestByKey(env, key, conf.Bridge)))
	}
	// The bridge is ready now (the attach waited for a concurrent ADD that creates it): its
	// name server, which the result names, must run.
	if err := ensureNames(env, conf.Bridge); err != nil {
		return fail(errors.Join(err, netsetup.DelGuestByKey(env, key, conf.Bridge)))
	}
	res, err := result(env, conf, plan, g, args.Netns)
	if err != nil {
		return fail(errors.Join(err, netsetup.DelGuestByKey(env, key, conf.Bridge)))
	}
	return res, conf, nil
}

// expectedPlan is the plan an ADD will use: the configured one, else the gateway's, else
// the default one the gateway would be brought up with.
func expectedPlan(env netsetup.Env, conf *Config) netsetup.Plan {
	p, err := netsetup.CurrentPlan(env)
	switch {
	case conf.Plan != "":
		p = conf.plan
	case err != nil:
		p = netsetup.DefaultPlan()
	}
	if err != nil && !p.IPv6() {
		p.Subnet6 = netsetup.DefaultPlan6() // as GatewayUp gives a new gateway
	}
	return p
}

// ensureNetwork returns the gateway's plan once the gateway and the bridge exist, creating
// them when the configuration asks for it, and says what it created.
func ensureNetwork(env netsetup.Env, conf *Config) (netsetup.Plan, made, error) {
	var m made
	plan, err := netsetup.CurrentPlan(env)
	if errors.Is(err, netsetup.ErrNoGateway) && conf.CreateBridge {
		already, uerr := netsetup.GatewayUp(env, netsetup.GatewayOptions{Plan: conf.plan})
		if uerr != nil {
			return plan, m, fmt.Errorf("bring the pontoon gateway up for bridge %q: %w", conf.Bridge, uerr)
		}
		m.gateway = !already
		plan, err = netsetup.CurrentPlan(env)
	}
	if errors.Is(err, netsetup.ErrNoGateway) {
		return plan, m, fmt.Errorf("%w; run `pontoon gateway up` on this node, or set \"createBridge\": true", err)
	}
	if err != nil {
		return plan, m, err
	}
	if conf.Plan != "" && plan.Subnet != conf.plan.Subnet {
		return plan, m, configErr("plan", "%s, but this node's gateway runs %s; use %s or leave plan out", conf.plan, plan, plan)
	}
	// A pod attached behind a broken gateway would have a default route to nowhere.
	if problem, err := netsetup.GatewayProblem(env); err != nil {
		return plan, m, err
	} else if problem != "" {
		return plan, m, fmt.Errorf("%w: %s", netsetup.ErrGatewayLost, problem)
	}
	b, err := netsetup.GetBridge(env, conf.Bridge)
	if err == nil && b.Phase == netsetup.PhaseCreating && !b.Creator.Alive() {
		// Its creator was killed halfway: no ADD would ever find it ready. pontoon's gc
		// removes it (and whatever else died halfway), under its lock, so no live
		// creation is touched.
		if _, err := netsetup.GC(env); err != nil {
			return plan, m, fmt.Errorf("remove bridge %q, whose creation was killed halfway: %w", conf.Bridge, err)
		}
		_, err = netsetup.GetBridge(env, conf.Bridge)
	}
	if errors.Is(err, netsetup.ErrNoBridge) && conf.CreateBridge {
		_, err = netsetup.CreateBridge(env, conf.Bridge, netsetup.BridgeOptions{})
		m.bridge = err == nil
		if errors.Is(err, netsetup.ErrBridgeExists) {
			err = nil // another ADD created it first
		}
	}
	if errors.Is(err, netsetup.ErrNoBridge) {
		return plan, m, configErr("bridge", "pontoon bridge %q does not exist on this node; create it (pontoon bridge create %s) or set \"createBridge\": true", conf.Bridge, conf.Bridge)
	}
	return plan, m, err
}

// attach adds the guest, choosing its address under the state lock AddGuest holds: the
// admit check sees every attachment recorded so far, so concurrent ADDs never pick the same
// address, and one that loses a race retries with the lowest address still free.
func attach(env netsetup.Env, bridge, key string, args *skel.CmdArgs, static staticAddrs) (*netsetup.Guest, error) {
	name := podGuestName(args.Args)
	if name == "" {
		name = GuestName(args.ContainerID, args.IfName)
	}
	ip := static.ip4
	if !ip.IsValid() {
		if plan, err := netsetup.CurrentPlan(env); err == nil {
			ip, _, _, _ = netsetup.GuestRange(plan.GuestNet())
		}
	}
	deadline := time.Now().Add(attachWait)
	for {
		var next netip.Addr
		admit := func(plan netsetup.Plan, b *netsetup.BridgeState) error {
			if b == nil {
				return configErr("bridge", "pontoon bridge %q was destroyed during the attach", bridge)
			}
			for _, o := range b.Guests {
				if o.Key == key && !sameNetns(o, args.Netns) && o.Phase == netsetup.PhaseReady && !o.NetnsGone() {
					// The same container in another namespace: its first ADD is alive there,
					// and replacing it would take a running pod's network without a DEL.
					return fmt.Errorf("container %s is attached as %s already, in namespace %s; a second ADD without a DEL leaves it so: DEL it first", args.ContainerID, args.IfName, o.Netns)
				}
				if o.Key == key || (o.Process != nil && !o.Process.Alive()) {
					continue // AddGuest replaces these
				}
				if strings.EqualFold(o.Name, name) { // names are served without regard to case
					name = uniqueName(key, args.ContainerID, args.IfName)
					next = ip
					return errRetry
				}
				// The error names where the address came from: the configuration, or
				// CNI_ARGS (a code 4 error then, as for any bad CNI_ARGS address).
				if static.ip6.IsValid() && o.IP6 == static.ip6 {
					return configErr(static.field6, "%s is used by guest %q on bridge %q; ask for another address or none", static.ip6, o.Name, bridge)
				}
				if o.IP != ip {
					continue
				}
				if static.ip4.IsValid() {
					return configErr(static.field4, "%s is used by guest %q on bridge %q; ask for another address or none", ip, o.Name, bridge)
				}
				if next = lowestFree(plan, b, key); !next.IsValid() {
					return fmt.Errorf("bridge %q has no free address: all of %s is in use", bridge, plan.GuestNet())
				}
				return errRetry
			}
			return nil
		}
		g, err := netsetup.AddGuest(env, bridge, name, netsetup.GuestOptions{
			IP: ip.String(), IP6: addrString(static.ip6), Netns: args.Netns, Key: key, ReplaceStale: true, Admit: admit,
		})
		switch {
		case err == nil:
			return g, nil
		case errors.Is(err, errRetry) && time.Now().Before(deadline):
			ip = next
		case errors.Is(err, errRetry):
			return nil, fmt.Errorf("attach to bridge %q: other attaches took every address tried for %s", bridge, attachWait)
		case errors.Is(err, netsetup.ErrBusy) && time.Now().Before(deadline):
			// The bridge is still being built by a concurrent ADD.
			time.Sleep(20 * time.Millisecond)
		default:
			return nil, err
		}
	}
}

// lowestFree returns the lowest guest address of plan that no guest of b holds, counting
// the guests AddGuest would replace as free (key "": only those whose process is gone); the
// zero Addr when there is none.
func lowestFree(plan netsetup.Plan, b *netsetup.BridgeState, key string) netip.Addr {
	used := map[netip.Addr]bool{}
	for _, o := range b.Guests {
		if (key == "" || o.Key != key) && (o.Process == nil || o.Process.Alive()) {
			used[o.IP] = true
		}
	}
	first, last, _, _ := netsetup.GuestRange(plan.GuestNet())
	for a := first; !last.Less(a); a = a.Next() {
		if !used[a] {
			return a
		}
	}
	return netip.Addr{}
}

// sweepGone detaches this network's guests whose namespace no longer exists, and those whose
// ADD was killed halfway: their pod was removed without a DEL (a runtime that crashed, or one
// too old to send GC), and they would hold an address forever.
//
// A guest counts as killed halfway only when its creator is found dead first and the guest is
// found still creating afterwards: a dead process finishes nothing. Checked the other way
// round, an ADD that finished and exited between the read of the record and the look at its
// process would seem killed, and its address would be given out twice.
func sweepGone(env netsetup.Env, conf *Config) error {
	b, err := netsetup.GetBridge(env, conf.Bridge)
	if err != nil {
		return err
	}
	prefix := KeyPrefix + conf.Name + "/"
	var gone []netsetup.Guest
	deadCreators := map[netsetup.Process]bool{}
	// A pod whose pin is gone lives on while its pause process holds the namespace: only
	// one whose namespace has ended, taking its port along, is gone.
	var detached map[string]bool
	for _, g := range b.Guests {
		if !strings.HasPrefix(g.Key, prefix) {
			continue
		}
		if g.Phase == netsetup.PhaseCreating && g.Creator != nil && !g.Creator.Alive() {
			deadCreators[*g.Creator] = true
			continue
		}
		if _, err := os.Stat(g.Netns); g.Phase != netsetup.PhaseReady || !errors.Is(err, os.ErrNotExist) {
			continue
		}
		if detached == nil {
			if detached, err = netsetup.DetachedGuests(env, b); err != nil {
				return err
			}
		}
		if detached[g.Name] {
			gone = append(gone, g)
		}
	}
	if len(deadCreators) > 0 {
		if b, err = netsetup.GetBridge(env, conf.Bridge); err != nil {
			return err
		}
		for _, g := range b.Guests {
			if strings.HasPrefix(g.Key, prefix) && g.Phase == netsetup.PhaseCreating && g.Creator != nil && deadCreators[*g.Creator] {
				gone = append(gone, g)
			}
		}
	}
	for _, g := range gone {
		if err := netsetup.DelGuestByKey(env, g.Key, conf.Bridge); err != nil {
			return fmt.Errorf("detach guest %q, whose namespace %s is gone or whose attach was killed: %w", g.Name, g.Netns, err)
		}
	}
	return nil
}

// removal is what DEL and GC read of a configuration: the network's name, its bridge and
// GC's valid list. They are best-effort by the specification, so nothing else is checked: a
// configuration that changed since the ADD (a key added or dropped by an upgrade) must not
// keep a pod from being removed.
type removal struct {
	Name             string               `json:"name"`
	Bridge           string               `json:"bridge"`
	ValidAttachments []types.GCAttachment `json:"cni.dev/valid-attachments"`
}

func parseRemoval(data []byte) (*removal, error) {
	var r removal
	if err := json.Unmarshal(data, &r); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) {
			return nil, configErr(jsonField(te.Field), "is %s, must be %s", te.Value, jsonKind(te.Type))
		}
		return nil, configErr("(whole)", "not a JSON object: %v", err)
	}
	if r.Name == "" {
		return nil, configErr("name", "missing; give the network a name")
	}
	return &r, nil
}

// bridges is where DEL and GC look: the configured bridge, or every bridge when the
// configuration names none that could exist (the key alone identifies an attachment).
func (r *removal) bridges() []string {
	if netsetup.ValidName(r.Bridge) {
		return []string{r.Bridge}
	}
	return nil
}

// Del detaches the attachment of args. What is gone already (the guest, its namespace, the
// bridge, the whole gateway) counts as detached.
func Del(env netsetup.Env, args *skel.CmdArgs) error {
	conf, err := parseRemoval(args.StdinData)
	if err != nil {
		return err
	}
	key := Key(conf.Name, args.ContainerID, args.IfName)
	if liveElsewhere(env, conf.Bridge, key, args.Netns) {
		// A DEL after a refused second ADD (a runtime tearing down the sandbox it failed to
		// set up) is for that one: the first, alive in its own namespace, stays.
		return nil
	}
	if err := netsetup.DelGuestByKey(env, key, conf.bridges()...); err != nil {
		return fmt.Errorf("detach container %s (%s) from bridge %q: %w", args.ContainerID, args.IfName, conf.Bridge, err)
	}
	return nil
}

// sameNetns reports whether the guest was attached in the namespace pinned at path: by the
// namespace's identity where both are known (the same namespace may be reached by two paths,
// /run/netns and /var/run/netns), else by path.
func sameNetns(g netsetup.Guest, path string) bool {
	if id, ok := ns.ID(path); ok && g.NetnsID != 0 {
		return id == g.NetnsID
	}
	return g.Netns == path
}

// liveElsewhere reports whether the attachment key of bridge is alive in another namespace
// than the one pinned at path (a DEL's CNI_NETNS, when the runtime gives one that exists).
func liveElsewhere(env netsetup.Env, bridge, key, path string) bool {
	if _, ok := ns.ID(path); !ok || bridge == "" {
		return false
	}
	b, err := netsetup.GetBridge(env, bridge)
	if err != nil {
		return false
	}
	for _, g := range b.Guests {
		if g.Key == key {
			return g.Phase == netsetup.PhaseReady && !sameNetns(g, path) && !g.NetnsGone()
		}
	}
	return false
}

// GC detaches every guest of this network whose attachment is not in the configuration's
// valid list, on every bridge: the key alone says which network attached a guest.
func GC(env netsetup.Env, args *skel.CmdArgs) error {
	conf, err := parseRemoval(args.StdinData)
	if err != nil {
		return err
	}
	bridges, err := netsetup.Bridges(env)
	if err != nil {
		return err
	}
	valid := map[string]bool{}
	for _, a := range conf.ValidAttachments {
		valid[Key(conf.Name, a.ContainerID, a.IfName)] = true
	}
	prefix := KeyPrefix + conf.Name + "/"
	var errs []error
	for _, b := range bridges {
		for _, g := range b.Guests {
			if !strings.HasPrefix(g.Key, prefix) || valid[g.Key] {
				continue
			}
			if err := netsetup.DelGuestByKey(env, g.Key, b.Name); err != nil {
				errs = append(errs, fmt.Errorf("detach stale guest %q of bridge %q: %w", g.Name, b.Name, err))
			}
		}
	}
	return errors.Join(errs...)
}

// Status says whether an ADD could succeed now: the gateway is up with the configured plan
// and the bridge exists, or the plugin is allowed to create what is missing.
func Status(env netsetup.Env, args *skel.CmdArgs) error {
	conf, err := ParseConfig(args.StdinData)
	if err != nil {
		return err
	}
	plan, err := netsetup.CurrentPlan(env)
	if errors.Is(err, netsetup.ErrNoGateway) {
		if conf.CreateBridge {
			return nil
		}
		return types.NewError(types.ErrPluginNotAvailable, "the pontoon gateway is not up on this node", "run `pontoon gateway up`, or set \"createBridge\": true")
	}
	if err != nil {
		return types.NewError(types.ErrPluginNotAvailable, "read pontoon's state", err.Error())
	}
	if conf.Plan != "" && plan.Subnet != conf.plan.Subnet {
		return configErr("plan", "%s, but this node's gateway runs %s; use %s or leave plan out", conf.plan, plan, plan)
	}
	if problem, err := netsetup.GatewayProblem(env); err != nil {
		return types.NewError(types.ErrPluginNotAvailable, "read pontoon's state", err.Error())
	} else if problem != "" {
		return types.NewError(types.ErrPluginNotAvailable, "the pontoon gateway is broken", problem)
	}
	b, err := netsetup.GetBridge(env, conf.Bridge)
	switch {
	case errors.Is(err, netsetup.ErrNoBridge) && conf.CreateBridge:
		return nil
	case err != nil:
		return types.NewError(types.ErrPluginNotAvailable, fmt.Sprintf("pontoon bridge %q is not available", conf.Bridge), err.Error())
	case b.Problem != "":
		return types.NewError(types.ErrPluginNotAvailable, fmt.Sprintf("pontoon bridge %q is broken: %s", conf.Bridge, b.Problem), "run `pontoon gc`")
	case !lowestFree(plan, b, "").IsValid():
		return types.NewError(types.ErrPluginNotAvailable, fmt.Sprintf("pontoon bridge %q has no free address", conf.Bridge),
			fmt.Sprintf("all of %s is in use; remove a pod, or attach to another bridge", plan.GuestNet()))
	}
	return nil
}

// addrString is a's text, or "" for the zero Addr (which means "the default").
func addrString(a netip.Addr) string {
	if !a.IsValid() {
		return ""
	}
	return a.String()
}
