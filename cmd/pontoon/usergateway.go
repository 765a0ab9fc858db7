package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"os/user"
	"slices"
	"strconv"
	"strings"
	"syscall"

	"github.com/pontoon-dev/pontoon/netsetup"
	"github.com/pontoon-dev/pontoon/runtime"
	"github.com/urfave/cli/v2"
)

// userFlag selects a user's space for gateway up and down, instead of the host's gateway;
// linkFlag says where up takes the user's link from.
var (
	userFlag = &cli.StringFlag{Name: "user", Usage: "link this user's pontoon space to the host instead (root only); see README, Without root"}
	linkFlag = &cli.StringFlag{Name: "link", Usage: "with --user: the block the user's /30 link is taken from", Value: netsetup.DefaultUserLinks}
)

// checkUserFlags refuses the flags of the host's gateway alongside --user: they would be
// silently ignored.
func checkUserFlags(c *cli.Context, allowed ...string) error {
	for _, f := range c.Command.Flags {
		name := f.Names()[0]
		if c.IsSet(name) && name != "user" && !slices.Contains(allowed, name) {
			return usagef("--%s does not go with --user (which takes %s); drop one of them", name, strings.Join(append([]string{"--user"}, prefixed(allowed)...), ", "))
		}
	}
	return nil
}

func prefixed(names []string) []string {
	out := make([]string, len(names))
	for i, n := range names {
		out[i] = "--" + n
	}
	return out
}

// hostRoot reports whether this is the host's root, not root of a user's space.
func hostRoot() bool { return os.Geteuid() == 0 && !runtime.Rootless() }

// lookupUser returns the uid and gid of name, a login name or a uid (a space's hint names
// the uid of a user without one); root is refused: it needs no space.
func lookupUser(name string) (uid, gid int, err error) {
	u, err := user.Lookup(name)
	if _, nerr := strconv.ParseUint(name, 10, 32); err != nil && nerr == nil {
		if byID, idErr := user.LookupId(name); idErr == nil {
			u, err = byID, nil
		}
	}
	if err != nil {
		return 0, 0, usagef("--user %q: %w; name an existing account", name, err)
	}
	uid, _ = strconv.Atoi(u.Uid)
	gid, _ = strconv.Atoi(u.Gid)
	if uid == 0 {
		return 0, 0, usagef("--user %s: root needs no space of its own; drop --user", name)
	}
	return uid, gid, nil
}

// asUser runs this binary with args as user uid, with an environment of its own: the
// user's space must be made by a process of that user (it becomes the owner).
func asUser(name string, uid, gid int, args ...string) ([]byte, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(self, args...)
	cmd.Dir = "/"
	cmd.Env = []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "USER=" + name, "LOGNAME=" + name}
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), Groups: []uint32{}}}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("pontoon %v as user %s: %w: %s", args, name, err, bytes.TrimSpace(stderr.Bytes()))
	}
	return out, nil
}

// userGatewayUp starts NAME's space when it does not run, brings the user's gateway up in
// it, and links it to the host.
func userGatewayUp(c *cli.Context) error {
	name := c.String("user")
	if !hostRoot() {
		return fmt.Errorf("`pontoon gateway up --user %s` %w: it links a user's space to the host; run it as root, e.g. `sudo pontoon gateway up --user %s`", name, errNeedsRoot, name)
	}
	if err := checkUserFlags(c, "subnet", "link"); err != nil {
		return err
	}
	block, err := netip.ParsePrefix(c.String("link"))
	if err != nil {
		return usagef("--link %q: %w; give an IPv4 block such as %s", c.String("link"), err, netsetup.DefaultUserLinks)
	}
	uid, gid, err := lookupUser(name)
	if err != nil {
		return err
	}
	out, err := asUser(name, uid, gid, "space", "--json")
	if err != nil {
		return err
	}
	// Whatever the user's process prints, netsetup links only a namespace the user owns.
	var sp struct {
		PID int `json:"pid"`
	}
	if err := json.Unmarshal(out, &sp); err != nil {
		return fmt.Errorf("read user %s's space: %w", name, err)
	}
	gwArgs := []string{"gateway", "up"}
	if c.IsSet("subnet") {
		gwArgs = append(gwArgs, "--subnet", c.String("subnet"))
	}
	if _, err := asUser(name, uid, gid, gwArgs...); err != nil {
		return err
	}
	// Asked of the user, not read by root through the holder's /proc/PID/root: there the
	// user's symlinks would resolve against the host's root, to files only root may read.
	out, err = asUser(name, uid, gid, "gateway", "status", "--json")
	if err != nil {
		return err
	}
	var st struct {
		Gateway struct {
			Plan string `json:"plan"`
		} `json:"gateway"`
	}
	if err := json.Unmarshal(out, &st); err != nil {
		return fmt.Errorf("read the plan of user %s's gateway: %w", name, err)
	}
	plan, err := netsetup.ParsePlan(st.Gateway.Plan)
	if err != nil {
		return fmt.Errorf("read the plan of user %s's gateway: %w", name, err)
	}
	l, already, err := netsetup.UserLinkUp(env(c), netsetup.UserLinkRequest{User: name, UID: uid, SpacePID: sp.PID, Gateway: plan.GatewayAddr().Addr(), Block: block})
	if err != nil {
		return err
	}
	what := "linked"
	if already {
		what = "already linked"
	}
	fmt.Printf("%s user %s's pontoon space to the host: %s %s, space %s; the user's port forwards answer at %s:PORT; `pontoon gateway down --user %s` removes it\n",
		what, name, l.HostIf(), l.HostAddr(), l.SpaceAddr().Addr(), l.SpaceAddr().Addr(), name)
	return nil
}

// userGatewayDown removes NAME's link and ends the user's space with everything in it.
func userGatewayDown(c *cli.Context) error {
	name := c.String("user")
	if !hostRoot() {
		return fmt.Errorf("`pontoon gateway down --user %s` %w; run it as root, e.g. `sudo pontoon gateway down --user %s`", name, errNeedsRoot, name)
	}
	if err := checkUserFlags(c, "force"); err != nil {
		return err
	}
	uid, gid, err := lookupUser(name)
	if err != nil {
		return err
	}
	// Without --force the user's gateway goes first: refused (bridges still use it), the
	// link stays as it was and the user's guests still reach out. With --force the link goes
	// first, whatever the user's space does (a space that hangs holds up only the rest).
	force := c.Bool("force")
	if force {
		if err := netsetup.UserLinkDown(env(c), uid); err != nil {
			return err
		}
	}
	downArgs := []string{"gateway", "down"}
	if force {
		downArgs = append(downArgs, "--force")
	}
	if _, err := asUser(name, uid, gid, downArgs...); err != nil && force {
		return fmt.Errorf("the link is removed, but %w", err)
	} else if err != nil {
		return fmt.Errorf("%w; nothing was changed (user %s's link stays)", err, name)
	}
	if !force {
		if err := netsetup.UserLinkDown(env(c), uid); err != nil {
			return err
		}
	}
	if _, err := asUser(name, uid, gid, "space", "--stop"); err != nil {
		return fmt.Errorf("the link and user %s's gateway are removed, but %w", name, err)
	}
	fmt.Printf("removed user %s's link to the host, gateway and space\n", name)
	return nil
}
