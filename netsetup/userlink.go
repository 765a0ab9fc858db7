package netsetup

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/google/nftables"
	"github.com/pontoon-dev/pontoon/internal/kernel"
	"github.com/pontoon-dev/pontoon/internal/nftrule"
	"github.com/pontoon-dev/pontoon/internal/statefile"
	"github.com/pontoon-dev/pontoon/internal/userns"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// A user link joins the host to one user's pontoon space (the user namespace in which that
// user's pontoon commands build their own chain without root): a veth whose host end is
// pu<UID> and whose other end, UserLinkName, is in the space's network namespace, which
// plays the host for the user's chain. Each link gets a /30 of its own; the host
// masquerades what leaves through other interfaces, and the space hands every connection
// to its address over to the user's gateway, where the user's port forwards answer.

// UserLinkName is the space's end of a user link.
const UserLinkName = "pontoon-up"

// DefaultUserLinks is the block user links' /30s are taken from.
const DefaultUserLinks = "10.199.0.0/16"

// userTableName is pontoon's table for user links, in the host and in each space; apart
// from the chain's own table, so that neither replaces the other.
const userTableName = "pontoon-users"

// UserLink is a recorded user link.
type UserLink struct {
	User string `json:"user"`
	UID  int    `json:"uid"`
	// Link is the link's /30: .1 on the host, .2 in the space.
	Link netip.Prefix `json:"link"`
	// Space is the holder of the user's space when the link was made.
	Space Process `json:"space"`
	// Gateway is the user's gateway address, where connections to the space's address go.
	Gateway netip.Addr `json:"gateway"`
	Created time.Time  `json:"created"`
	// HostForwarding is the host's net.ipv4.ip_forward before the first user link.
	HostForwarding string `json:"host_forwarding,omitempty"`
}

// HostIf is the host's end of the link.
func (l UserLink) HostIf() string { return fmt.Sprintf("pu%d", l.UID) }

// HostAddr is the host's address on the link.
func (l UserLink) HostAddr() netip.Prefix { return netip.PrefixFrom(l.Link.Addr().Next(), 30) }

// SpaceAddr is the space's address on the link: the host reaches the user's port forwards
// there.
func (l UserLink) SpaceAddr() netip.Prefix { return netip.PrefixFrom(l.Link.Addr().Next().Next(), 30) }

// UserLinkRequest says which space to link.
type UserLinkRequest struct {
	User string
	UID  int
	// SpacePID is the holder of the user's space; its network namespace gets the link.
	SpacePID int
	// Gateway is the user's gateway address (the user's Plan.GatewayAddr).
	Gateway netip.Addr
	// Block is where the link's /30 comes from; zero: DefaultUserLinks.
	Block netip.Prefix
}

func (s store) usersDir() string { return filepath.Join(s.dir, "users") }
func (s store) userFile(uid int) string {
	return filepath.Join(s.usersDir(), fmt.Sprintf("%d.json", uid))
}
func spaceNetns(p Process) string   { return fmt.Sprintf("/proc/%d/ns/net", p.PID) }
func (l UserLink) spaceAlive() bool { return l.Space.Alive() }
func userLinkDNAT(l UserLink) nftrule.Rule {
	return nftrule.Rule{nftrule.Iifname(UserLinkName), nftrule.Daddr(nftrule.Host(l.SpaceAddr().Addr())), nftrule.DNATAddr(l.Gateway)}
}

// UserLinks returns the recorded user links, by uid.
func UserLinks(env Env) ([]UserLink, error) {
	st := env.store()
	var out []UserLink
	err := st.lockedIfAny(func() (err error) { out, err = st.userLinks(); return err })
	return out, err
}

func (s store) userLinks() ([]UserLink, error) {
	ents, err := os.ReadDir(s.usersDir())
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list user links: %w", err)
	}
	var out []UserLink
	for _, e := range ents {
		if !strings.HasSuffix(e.Name(), ".json") {
			continue
		}
		var l UserLink
		if err := statefile.ReadJSON(filepath.Join(s.usersDir(), e.Name()), &l); err != nil {
			return nil, err
		}
		out = append(out, l)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].UID < out[j].UID })
	return out, nil
}

// UserLinkUp links the space of req.User to the host. A link that exists for the same
// space is re-asserted (already=true), its connections going to req.Gateway from then on;
// one left from an earlier space of the user is replaced. It refuses a /30 that the host
// routes or addresses, or that another user has.
func UserLinkUp(env Env, req UserLinkRequest) (link UserLink, already bool, err error) {
	if !req.Block.IsValid() {
		req.Block = netip.MustParsePrefix(DefaultUserLinks)
	}
	if !req.Block.Addr().Is4() || req.Block.Bits() > 30 {
		return UserLink{}, false, fmt.Errorf("user link block %s: give an IPv4 prefix of /30 or wider, e.g. --link %s", req.Block, DefaultUserLinks)
	}
	if req.UID <= 0 {
		return UserLink{}, false, fmt.Errorf("user link for uid %d: root's chain has the host link already; name a user without root", req.UID)
	}
	space, err := ProcessOf(req.SpacePID)
	if err != nil {
		return UserLink{}, false, fmt.Errorf("the pontoon space of user %s: %w", req.User, err)
	}
	// Before anything changes: a refused request leaves even the user's old link alone.
	h, err := openSpace(UserLink{User: req.User, UID: req.UID, Space: space})
	if err != nil {
		return UserLink{}, false, err
	}
	h.Close()
	st := env.store()
	err = st.locked(func() error {
		links, err := st.userLinks()
		if err != nil {
			return err
		}
		var others []UserLink
		for _, l := range links {
			if l.UID != req.UID {
				others = append(others, l)
				continue
			}
			if l.Space == space && userLinkIntact(env, l) {
				// The user may have moved their plan since: the link stays, its forwarding
				// follows the gateway the user has now.
				if l.Gateway != req.Gateway {
					l.Gateway = req.Gateway
					if err := statefile.WriteJSON(st.userFile(l.UID), l); err != nil {
						return err
					}
				}
				link, already = l, true
			} else if err := userLinkDown(env, l, others); err != nil {
				return err
			}
		}
		if already {
			return installUserTables(env, link, append(others, link))
		}
		p, err := freeUserLink(env, req.Block, others)
		if err != nil {
			return err
		}
		link = UserLink{User: req.User, UID: req.UID, Link: p, Space: space, Gateway: req.Gateway, Created: time.Now().UTC()}
		return userLinkUp(env, &link, others)
	})
	return link, already, err
}

func userLinkUp(env Env, l *UserLink, others []UserLink) error {
	st := env.store()
	hostH, err := openHandle(env.hostNetns())
	if err != nil {
		return err
	}
	defer hostH.Close()
	spaceH, err := openSpace(*l)
	if err != nil {
		return err
	}
	defer spaceH.Close()
	// The setting before pontoon changed it: another link's record, or the host gateway's.
	if g, _ := st.gateway(); len(others) > 0 {
		l.HostForwarding = others[0].HostForwarding
	} else if g != nil && g.HostForwarding != "" {
		l.HostForwarding = g.HostForwarding
	} else if l.HostForwarding, err = hostH.ReadSysctl("net.ipv4.ip_forward"); err != nil {
		return err
	}
	// Recorded before any kernel object exists, so that down (or a second up) finds it.
	if err := os.MkdirAll(st.usersDir(), 0o700); err != nil {
		return err
	}
	if err := statefile.WriteJSON(st.userFile(l.UID), l); err != nil {
		return err
	}
	r := &runner{}
	err = r.run(
		step{
			show: fmt.Sprintf("ip link add %s type veth peer name %s netns /proc/%d/ns/net", l.HostIf(), UserLinkName, l.Space.PID),
			do:   func() error { return addVeth(hostH, l.HostIf(), UserLinkName, spaceH) },
			undo: func() error { return delLink(hostH, l.HostIf()) },
		},
		step{
			// IPv4 only: the host's end takes no IPv6, which the user could send from any
			// source (see hostUserTable).
			show: fmt.Sprintf("sysctl -w net.ipv6.conf.%s.disable_ipv6=1 && ip addr add %s dev %s && ip link set %s up", l.HostIf(), l.HostAddr(), l.HostIf(), l.HostIf()),
			do: func() error {
				if _, err := hostH.Sysctl("net.ipv6.conf."+l.HostIf()+".disable_ipv6", "1"); err != nil {
					return err
				}
				return addrUp(hostH, l.HostIf(), l.HostAddr())
			},
		},
		step{
			show: fmt.Sprintf("nsenter --net=/proc/%d/ns/net ip addr add %s dev %s && ip route add default via %s", l.Space.PID, l.SpaceAddr(), UserLinkName, l.HostAddr().Addr()),
			do: func() error {
				if err := addrUp(spaceH, UserLinkName, l.SpaceAddr()); err != nil {
					return err
				}
				return defaultRoute(spaceH, l.HostAddr().Addr())
			},
		},
		step{
			show: "sysctl -w net.ipv4.ip_forward=1",
			do:   func() error { _, err := hostH.Sysctl("net.ipv4.ip_forward", "1"); return err },
			undo: func() error {
				if len(others) > 0 {
					return nil
				}
				return restoreForwarding(hostH, l.HostForwarding)
			},
		},
		step{
			show: fmt.Sprintf("nft add table ip %s ... (masquerade for %s, dnat of %s to %s; exceptions for %s in forward chains with policy drop)", userTableName, l.Link, l.SpaceAddr().Addr(), l.Gateway, l.HostIf()),
			do:   func() error { return installUserTables(env, *l, append(others, *l)) },
			undo: func() error { return hostUserRules(hostH, others) },
		},
	)
	if err != nil {
		r.rollback()
		os.Remove(st.userFile(l.UID))
		return fmt.Errorf("link the pontoon space of user %s to the host: %w", l.User, err)
	}
	return nil
}

// syncSpaceLink points the link of the user's space, where this process runs, at gateway,
// the address of the gateway the user has just brought up: the space's table (made by the
// host's root when it linked the space, and the user's as root of the space) hands every
// connection to the link's address over to it. The user may move their plan (gateway down,
// then up with another --subnet); the host's side of the link names no gateway address, so
// the user's port forwards answer on the link again without the host's root. Nothing is
// done outside a user namespace, where pontoon-users is the host's table of every link, nor
// in a space without a link.
func syncSpaceLink(env Env, gateway netip.Addr) error {
	if !userns.Nested() {
		return nil
	}
	h, err := openHandle(env.hostNetns())
	if err != nil {
		return err
	}
	defer h.Close()
	link, err := h.LinkByName(UserLinkName)
	if err != nil {
		return nil
	}
	addrs, err := h.AddrList(link, netlink.FAMILY_V4)
	if err != nil {
		return fmt.Errorf("read the address of %s, the link of your space to the host: %w", UserLinkName, err)
	}
	for _, a := range addrs {
		p, ok := prefixOf(a.IPNet)
		if !ok || p.Bits() != 30 {
			continue
		}
		l := UserLink{Link: p.Masked(), Gateway: gateway}
		if l.SpaceAddr() != p {
			continue
		}
		if err := replaceUserTable(h.NS, spaceUserTable(l)); err != nil {
			return fmt.Errorf("the gateway is up, but connections to %s, your space's link to the host, still go elsewhere: %w; "+
				"the host's root can point them here with `sudo pontoon gateway up --user NAME`", p.Addr(), err)
		}
		return nil
	}
	return nil
}

// spaceUserTable is the space's table of l: connections to its address go to the user's
// gateway.
func spaceUserTable(l UserLink) []chainSpec {
	return []chainSpec{natChain("prerouting", nftables.ChainHookPrerouting, nftables.ChainPriorityNATDest, userLinkDNAT(l))}
}

// installUserTables writes the host's table for all links and the space's for l.
func installUserTables(env Env, l UserLink, all []UserLink) error {
	return errors.Join(withHostNft(env, func(h *handle) error { return hostUserRules(h, all) }),
		withSpace(l, func(n *kernel.NS) error {
			return replaceUserTable(n, spaceUserTable(l))
		}))
}

// openSpace opens the network namespace of l's space, and checks that it is the user's:
// owned by a user namespace whose owner is l.UID, and still the holder's. The holder's pid
// comes from the user (their record, their command's output), who could name any process
// in its place -- root's, another user's -- to have root link and route that one.
func openSpace(l UserLink) (*handle, error) {
	h, err := openHandle(spaceNetns(l.Space))
	if err != nil {
		return nil, fmt.Errorf("open the network namespace of user %s's space: %w", l.User, err)
	}
	err = checkSpaceOwner(h.Fd(), l)
	// The namespace opened is the holder's only if the holder still runs: pids are reused.
	if err == nil && !l.Space.Alive() {
		err = fmt.Errorf("the pontoon space of user %s (pid %d) has ended", l.User, l.Space.PID)
	}
	if err != nil {
		h.Close()
		return nil, err
	}
	return h, nil
}

func checkSpaceOwner(netnsFd int, l UserLink) error {
	userFd, err := unix.IoctlRetInt(netnsFd, unix.NS_GET_USERNS)
	if err != nil {
		return fmt.Errorf("the owner of user %s's space (pid %d): %w", l.User, l.Space.PID, err)
	}
	defer unix.Close(userFd)
	uid, err := unix.IoctlGetUint32(userFd, unix.NS_GET_OWNER_UID)
	if err != nil {
		return fmt.Errorf("the owner of user %s's space (pid %d): %w", l.User, l.Space.PID, err)
	}
	if int(uid) != l.UID {
		return fmt.Errorf("the network namespace of pid %d, named as user %s's pontoon space, is not owned by uid %d (its user namespace's owner is uid %d); start the space as the user (`pontoon space`)", l.Space.PID, l.User, l.UID, uid)
	}
	return nil
}

func withSpace(l UserLink, fn func(n *kernel.NS) error) error {
	h, err := openSpace(l)
	if err != nil {
		return err
	}
	defer h.Close()
	return fn(h.NS)
}

// userLinkIntact reports whether l's veth is still there with the host's address: a
// record written just before pontoon was killed may have none.
func userLinkIntact(env Env, l UserLink) bool {
	if !exists(spaceNetns(l.Space)) {
		return false
	}
	h, err := openHandle(env.hostNetns())
	if err != nil {
		return false
	}
	defer h.Close()
	link, err := h.LinkByName(l.HostIf())
	if err != nil {
		return false
	}
	addrs, err := h.AddrList(link, netlink.FAMILY_V4)
	if err != nil {
		return false
	}
	for _, a := range addrs {
		if p, ok := prefixOf(a.IPNet); ok && p == l.HostAddr() {
			return true
		}
	}
	return false
}

// hostUserRules makes the host's table and forward exceptions those of links.
func hostUserRules(h *handle, links []UserLink) error {
	if err := replaceUserTable(h.NS, hostUserTable(links)); err != nil {
		return err
	}
	return syncUserForward(h, links)
}

// hostUserTable masquerades what each space sends out through another interface than its
// link, and keeps spaces apart: nothing is forwarded from one user's link to another's, nor
// between a user's link and root's chain, so users reach each other's (and root's) guests and
// port forwards no more than they can enter each other's namespaces. The host itself still
// reaches every link.
func hostUserTable(links []UserLink) []chainSpec {
	if len(links) == 0 {
		return nil
	}
	post := natChain("postrouting", nftables.ChainHookPostrouting, nftables.ChainPriorityNATSource)
	fwd := filterChain("forward", nftables.ChainHookForward)
	// The user is root of the space and may send from any address; as a plain user of the
	// host they could not forge a source, so the host takes only the link's own.
	pre := chainSpec{name: "prerouting", typ: nftables.ChainTypeFilter, hook: nftables.ChainHookPrerouting, priority: nftables.ChainPriorityRaw}
	for _, l := range links {
		pre.rules = append(pre.rules, nftrule.Rule{nftrule.Iifname(l.HostIf()), nftrule.NotSaddr(l.Link), nftrule.Drop()})
		post.rules = append(post.rules, nftrule.Rule{nftrule.Saddr(l.Link), nftrule.NotOifname(l.HostIf()), nftrule.Masquerade()})
		fwd.rules = append(fwd.rules,
			nftrule.Rule{nftrule.Iifname(l.HostIf()), nftrule.Oifname(HostLinkName), nftrule.Drop()},
			nftrule.Rule{nftrule.Iifname(HostLinkName), nftrule.Oifname(l.HostIf()), nftrule.Drop()})
		for _, o := range links {
			if o.UID != l.UID {
				fwd.rules = append(fwd.rules, nftrule.Rule{nftrule.Iifname(l.HostIf()), nftrule.Oifname(o.HostIf()), nftrule.Drop()})
			}
		}
	}
	return []chainSpec{pre, post, fwd}
}

// replaceUserTable replaces the user-link table of n with chains in one transaction; no
// chains deletes it.
func replaceUserTable(n *kernel.NS, chains []chainSpec) error {
	c, err := n.Nftables()
	if err != nil {
		return err
	}
	defer c.Close()
	tbl := c.AddTable(&nftables.Table{Name: userTableName, Family: nftables.TableFamilyIPv4})
	c.DelTable(tbl)
	if len(chains) > 0 {
		tbl = c.AddTable(&nftables.Table{Name: userTableName, Family: nftables.TableFamilyIPv4})
		for _, cs := range chains {
			ch := c.AddChain(&nftables.Chain{Name: cs.name, Table: tbl, Type: cs.typ, Hooknum: cs.hook, Priority: cs.priority})
			for _, r := range cs.rules {
				c.AddRule(&nftables.Rule{Table: tbl, Chain: ch, Exprs: r.Exprs()})
			}
		}
	}
	if err := c.Flush(); err != nil {
		return fmt.Errorf("install nftables table %s: %w", userTableName, err)
	}
	return nil
}

// freeUserLink returns the first /30 of block that no other link has and that touches no
// route or address of the host.
func freeUserLink(env Env, block netip.Prefix, others []UserLink) (netip.Prefix, error) {
	h, err := openHandle(env.hostNetns())
	if err != nil {
		return netip.Prefix{}, err
	}
	defer h.Close()
	var used []netip.Prefix
	for _, o := range others {
		used = append(used, o.Link)
	}
	routes, err := h.RouteListFiltered(netlink.FAMILY_V4, &netlink.Route{Table: unix.RT_TABLE_MAIN}, netlink.RT_FILTER_TABLE)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("list host routes: %w", err)
	}
	for _, r := range routes {
		if p, ok := prefixOf(r.Dst); ok && p.Bits() > 0 {
			used = append(used, p)
		}
	}
	addrs, err := h.AddrList(nil, netlink.FAMILY_V4)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("list host addresses: %w", err)
	}
	for _, a := range addrs {
		if p, ok := prefixOf(a.IPNet); ok {
			used = append(used, p.Masked())
		}
	}
	block = block.Masked()
	for a := block.Addr(); block.Contains(a); {
		p := netip.PrefixFrom(a, 30)
		free := true
		for _, u := range used {
			if u.Overlaps(p) {
				free = false
				break
			}
		}
		if free {
			return p, nil
		}
		for range 4 {
			a = a.Next()
		}
	}
	return netip.Prefix{}, fmt.Errorf("no free /30 for a user link in %s (the host and other users use it); give another block with --link, e.g. --link 10.198.0.0/16", block)
}

// UserLinkDown removes uid's link, its rules and its record; nothing there is success.
func UserLinkDown(env Env, uid int) error {
	st := env.store()
	return st.locked(func() error {
		links, err := st.userLinks()
		if err != nil {
			return err
		}
		var others []UserLink
		var mine *UserLink
		for i := range links {
			if links[i].UID == uid {
				mine = &links[i]
			} else {
				others = append(others, links[i])
			}
		}
		if mine == nil {
			return nil
		}
		return userLinkDown(env, *mine, others)
	})
}

func userLinkDown(env Env, l UserLink, others []UserLink) error {
	err := withHostNft(env, func(h *handle) error {
		if err := delLink(h, l.HostIf()); err != nil {
			return err
		}
		if err := hostUserRules(h, others); err != nil {
			return err
		}
		if len(others) == 0 && !exists(env.GatewayNetns()) {
			return restoreForwarding(h, l.HostForwarding)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("remove the link of user %s: %w", l.User, err)
	}
	if l.spaceAlive() {
		// The space's own end went with the veth; its table is the user's to keep or not,
		// but it names an address that no longer exists.
		_ = withSpace(l, func(n *kernel.NS) error { return replaceUserTable(n, nil) })
	}
	if err := os.Remove(env.store().userFile(l.UID)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}

// GCUserLinks removes the links whose space has ended (its holder is gone, and with it the
// namespace the link led into) and returns their users.
func GCUserLinks(env Env) ([]string, error) {
	st := env.store()
	if !exists(st.usersDir()) {
		return nil, nil
	}
	var removed []string
	err := st.locked(func() error {
		links, err := st.userLinks()
		if err != nil {
			return err
		}
		var live []UserLink
		for _, l := range links {
			if l.spaceAlive() {
				live = append(live, l)
			}
		}
		for _, l := range links {
			if l.spaceAlive() {
				continue
			}
			if err := userLinkDown(env, l, live); err != nil {
				return err
			}
			removed = append(removed, l.User)
		}
		return nil
	})
	return removed, err
}
