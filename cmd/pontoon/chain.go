package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/pontoon-dev/pontoon/internal/lazy"
	"github.com/pontoon-dev/pontoon/names"
	"github.com/pontoon-dev/pontoon/netsetup"
	"github.com/pontoon-dev/pontoon/partition"
	"github.com/pontoon-dev/pontoon/runtime"
	"github.com/urfave/cli/v2"
	"golang.org/x/sys/unix"
)

func printJSON(v any) error {
	return buffered(func(w io.Writer) error {
		e := json.NewEncoder(w)
		e.SetIndent("", "  ")
		return e.Encode(v)
	})
}

// stdout is the one buffer in front of the standard output, for help and listings alike: a
// listing costs one system call per 16 KiB rather than one per line or table cell. Made on
// first use: the hook and a container's init, which write nothing there, start without it.
var stdout = lazy.Value[*bufio.Writer]{Build: func() *bufio.Writer { return bufio.NewWriterSize(os.Stdout, 16<<10) }}

// buffered runs fn with stdout's buffer and flushes it when fn returns. Only for output that
// is complete when fn returns.
func buffered(fn func(w io.Writer) error) error {
	err := fn(stdout.Get())
	if ferr := stdout.Get().Flush(); err == nil {
		err = ferr
	}
	return err
}

var jsonFlag = &cli.BoolFlag{Name: "json", Usage: "print JSON"}

func gatewayCommand() *cli.Command {
	return &cli.Command{
		Name:  "gateway",
		Usage: usageOf("gateway"),
		Subcommands: []*cli.Command{
			{
				Name:  "up",
				Usage: "create the gateway (as root, once per host)",
				Flags: append([]cli.Flag{
					&cli.StringFlag{Name: "subnet", Usage: "the /16 the whole address plan is taken from", Value: netsetup.DefaultSubnet},
					&cli.BoolFlag{Name: "dry-run", Usage: "print each step as the equivalent ip/nft/sysctl command; change nothing"},
					&cli.BoolFlag{Name: "no-firewall", Usage: "leave the host firewall alone (masquerade, FORWARD exceptions, DNS redirect)"},
				}, append(ipv6Flags("the IPv6 plan is taken from"), userFlag, linkFlag)...),
				Action: gatewayUp,
			},
			{
				Name:  "down",
				Usage: "remove the gateway and restore what up changed",
				Flags: []cli.Flag{
					&cli.BoolFlag{Name: "dry-run", Usage: "print each step; change nothing"},
					&cli.BoolFlag{Name: "force", Usage: "destroy bridges still in use"},
					userFlag,
				},
				Action: gatewayDown,
			},
			{
				Name:   "status",
				Usage:  "show the gateway and its bridges",
				Flags:  []cli.Flag{jsonFlag},
				Action: gatewayStatus,
			},
		},
	}
}

func chainCommands() []*cli.Command {
	return []*cli.Command{
		{
			Name:  "bridge",
			Usage: usageOf("bridge"),
			Subcommands: []*cli.Command{
				{
					Name:      "create",
					Usage:     "create a bridge",
					ArgsUsage: "NAME",
					Flags: []cli.Flag{
						&cli.StringSliceFlag{Name: "port", Usage: "forward HOSTPORT:GUEST:GUESTPORT[/tcp|/udp] from the gateway address to a guest"},
						&cli.IntFlag{Name: "owner", Usage: "`PID` whose exit makes the bridge garbage for pontoon gc", DefaultText: "kept until destroyed"},
						&cli.BoolFlag{Name: "dry-run", Usage: "print each step; change nothing"},
						jsonFlag,
					},
					Action: bridgeCreate,
				},
				{Name: "destroy", Usage: "destroy a bridge and everything on it", ArgsUsage: "NAME", Action: bridgeDestroy},
				{
					Name:  "list",
					Usage: "list bridges, one line each (guest count and address ranges)",
					Flags: []cli.Flag{
						&cli.BoolFlag{Name: "verbose", Aliases: []string{"v"}, Usage: "also list every guest of every bridge"},
						jsonFlag,
					},
					Action: bridgeList,
				},
				{Name: "show", Usage: "show one bridge and every guest on it", ArgsUsage: "NAME", Flags: []cli.Flag{jsonFlag}, Action: bridgeShow},
			},
		},
		{
			Name:  "guest",
			Usage: usageOf("guest"),
			Subcommands: []*cli.Command{
				{
					Name:      "add",
					Usage:     "add a guest (creates its namespace unless --netns or --pid is given)",
					ArgsUsage: "BRIDGE NAME",
					Flags: []cli.Flag{
						&cli.StringFlag{Name: "ip", Usage: "the guest's address, x.y.0.1-x.y.0.253 (required)"},
						&cli.StringFlag{Name: "ip6", Usage: "the guest's IPv6 address in the plan's guest /64 (default: derived from --ip)"},
						&cli.StringFlag{Name: "hostname", Usage: "hostname of a namespace pontoon creates (default NAME)"},
						&cli.StringFlag{Name: "netns", Usage: "attach this existing network namespace (a path such as /run/netns/NAME or /proc/PID/ns/net)"},
						&cli.IntFlag{Name: "pid", Usage: "attach the network namespace of this running process"},
						&cli.StringSliceFlag{Name: "alias", Usage: "a further `NAME` the bridge's name server answers for the guest (repeatable)"},
						jsonFlag,
					},
					Action: guestAdd,
				},
				{Name: "del", Usage: "remove a guest", ArgsUsage: "BRIDGE NAME", Action: guestDel},
			},
		},
		{
			Name:            "exec",
			Usage:           usageOf("exec"),
			ArgsUsage:       "BRIDGE GUEST -- CMD [ARGS...]",
			SkipFlagParsing: false,
			Action:          execGuest,
		},
		{
			Name:   "gc",
			Usage:  usageOf("gc"),
			Flags:  []cli.Flag{jsonFlag},
			Action: gc,
		},
	}
}

func gatewayUp(c *cli.Context) error {
	if c.IsSet("user") {
		return userGatewayUp(c)
	}
	opt, err := gatewayOptions(c)
	if err != nil {
		return err
	}
	opt.NoFirewall = c.Bool("no-firewall")
	e := env(c)
	var steps countingWriter
	if c.Bool("dry-run") {
		steps.w = os.Stdout
		e.DryRun = &steps
	}
	// A gateway recorded up whose host link or pin was lost is mended by GatewayUp, which
	// then finds it "already" up: that must not read as if nothing had been wrong.
	var broken bool
	if e.DryRun == nil {
		before, err := netsetup.Status(e)
		broken = err == nil && before.Problem != ""
	}
	already, err := netsetup.GatewayUp(e, opt)
	if err != nil || e.DryRun != nil && (!already || steps.n > 0) {
		return err
	}
	// The plan the gateway has: flags not given took the running gateway's or the default.
	plan, err := netsetup.CurrentPlan(e)
	if err != nil {
		return err
	}
	switch {
	case e.DryRun != nil:
		fmt.Printf("# gateway already up (subnet %s): nothing to do\n", plan)
	case already && broken:
		fmt.Printf("gateway up again (subnet %s): repaired what was changed outside pontoon\n", plan)
	case already:
		fmt.Printf("gateway already up (subnet %s)\n", plan)
	case !plan.IPv6():
		fmt.Printf("gateway up (subnet %s, host %s, gateway %s, IPv4 only)\n", plan, plan.HostAddr().Addr(), plan.GatewayAddr().Addr())
	default:
		fmt.Printf("gateway up (subnet %s, host %s, gateway %s; IPv6 %s, host %s, gateway %s)\n", plan, plan.HostAddr().Addr(), plan.GatewayAddr().Addr(),
			plan.Subnet6, plan.HostAddr6().Addr(), plan.GatewayAddr6().Addr())
	}
	return nil
}

func gatewayDown(c *cli.Context) error {
	if c.IsSet("user") {
		return userGatewayDown(c)
	}
	e := env(c)
	if c.Bool("dry-run") {
		e.DryRun = os.Stdout
	}
	if c.Bool("force") && e.DryRun == nil {
		// The bridges go: their name servers first, as bridge destroy does (a server's
		// sockets would keep its bridge's namespace, and everything in it, alive).
		// A name server that cannot be stopped does not keep the rest from going: it ends
		// itself once its bridge is gone, and gc removes what it leaves.
		bridges, err := netsetup.Bridges(e)
		var errs []error
		for _, b := range bridges {
			errs = append(errs, names.Stop(e, b.Name))
		}
		return errors.Join(err, errors.Join(errs...), netsetup.GatewayDown(e, true))
	}
	return netsetup.GatewayDown(e, c.Bool("force"))
}

func gatewayStatus(c *cli.Context) error {
	st, err := netsetup.Status(env(c))
	if err != nil {
		return err
	}
	if c.Bool("json") {
		return printJSON(st)
	}
	return buffered(func(w io.Writer) error {
		switch {
		case st.Problem != "":
			fmt.Fprintf(w, "gateway: broken (subnet %s): %s\n", st.Gateway.Plan, st.Problem)
		case !st.Up:
			fmt.Fprintln(w, "gateway: down (run `pontoon gateway up`)")
		default:
			fw := "host firewall managed by pontoon"
			if st.Gateway.NoFirewall {
				fw = "host firewall left alone"
			}
			v6 := "IPv4 only"
			if st.Gateway.Plan6.IsValid() {
				v6 = "IPv6 " + st.Gateway.Plan6.String()
			}
			fmt.Fprintf(w, "gateway: up since %s, subnet %s, %s, %s\n", st.Gateway.Created.Local().Format("2006-01-02 15:04:05"), st.Gateway.Plan, v6, fw)
		}
		return printBridges(w, st.Bridges)
	})
}

func bridgeCreate(c *cli.Context) error {
	a, err := args(c, "NAME")
	if err != nil {
		return err
	}
	var opt netsetup.BridgeOptions
	for _, s := range c.StringSlice("port") {
		p, err := netsetup.ParsePort(s)
		if err != nil {
			return usagef("--port: %w", err)
		}
		opt.Ports = append(opt.Ports, p)
	}
	if c.IsSet("owner") {
		pid := c.Int("owner")
		if pid <= 0 {
			return usagef("--owner: %d is not a process id; pass the pid of the process whose exit makes the bridge garbage (e.g. $$, the shell's), or leave --owner out to keep the bridge until `pontoon bridge destroy`", pid)
		}
		p, err := netsetup.ProcessOf(pid)
		if err != nil {
			return usagef("--owner: no process with pid %d; pass the pid of a running process", pid)
		}
		opt.Owner = &p
	}
	e := env(c)
	if c.Bool("dry-run") {
		e.DryRun = os.Stdout
	}
	b, err := netsetup.CreateBridge(e, a[0], opt)
	if err != nil || e.DryRun != nil {
		return err
	}
	if err := startNames(e, b.Name); err != nil {
		return errors.Join(err, netsetup.DestroyBridge(e, b.Name))
	}
	if c.Bool("json") {
		return printJSON(b)
	}
	fmt.Printf("bridge %s created (slot %d, namespace %s)\n", b.Name, b.Slot, b.Netns(e))
	return nil
}

func bridgeDestroy(c *cli.Context) error {
	a, err := args(c, "NAME")
	if err != nil {
		return err
	}
	// The name server first: its sockets would keep the bridge's namespace alive. The intent
	// is recorded before it: a destroy killed after the server's stop would leave a ready
	// bridge without one, which gc would start again.
	if err := netsetup.BeginDestroy(env(c), a[0]); err != nil {
		return err
	}
	if err := names.Stop(env(c), a[0]); err != nil {
		return err
	}
	return netsetup.DestroyBridge(env(c), a[0])
}

func guestAdd(c *cli.Context) error {
	a, err := args(c, "BRIDGE", "NAME")
	if err != nil {
		return err
	}
	if !c.IsSet("ip") {
		return required(c, "ip", guestIPExample(env(c)))
	}
	if c.IsSet("netns") && c.IsSet("pid") {
		return usagef("--netns and --pid both name a namespace; give one of them")
	}
	if pid := c.Int("pid"); c.IsSet("pid") && pid <= 0 {
		return usagef("--pid: %d is not a process id; pass the pid of a running process whose network namespace the guest gets (e.g. from `pgrep`), or leave --pid out to have pontoon create a namespace", pid)
	}
	if c.IsSet("netns") {
		if err := checkNetns(c.String("netns")); err != nil {
			return usagef("--netns: %w", err)
		}
	}
	g, err := netsetup.AddGuest(env(c), a[0], a[1], netsetup.GuestOptions{
		IP: c.String("ip"), IP6: c.String("ip6"), Hostname: c.String("hostname"), Netns: c.String("netns"), PID: c.Int("pid"),
		Aliases: c.StringSlice("alias"),
	})
	if err != nil {
		return err
	}
	if err := ensureNames(env(c), a[0]); err != nil {
		return fmt.Errorf("guest %s added, but its bridge's name server could not be started: %w", a[1], err)
	}
	// The partition in force must cover the guest's port (a guest added again gets a new one).
	if err := partition.Refresh(env(c), a[0]); err != nil {
		return fmt.Errorf("guest %s added, but applying the bridge's partition to its port failed: %w", a[1], err)
	}
	if c.Bool("json") {
		return printJSON(g)
	}
	if g.IP6.IsValid() {
		fmt.Printf("guest %s added to %s with IP %s and %s (namespace %s)\n", g.Name, a[0], g.IP, g.IP6, g.Netns)
		return nil
	}
	fmt.Printf("guest %s added to %s with IP %s (namespace %s)\n", g.Name, a[0], g.IP, g.Netns)
	return nil
}

// guestIPExample is a guest address of the plan in force (the default plan's when no
// gateway is up), for hints: a moved plan's guests are not in 172.18.0.0/24.
func guestIPExample(e netsetup.Env) string {
	plan, err := netsetup.CurrentPlan(e)
	if err != nil {
		plan = netsetup.DefaultPlan()
	}
	return plan.GuestNet().Addr().Next().String()
}

func guestDel(c *cli.Context) error {
	a, err := args(c, "BRIDGE", "NAME")
	if err != nil {
		return err
	}
	return netsetup.DelGuest(env(c), a[0], a[1])
}

func execGuest(c *cli.Context) error {
	all := c.Args().Slice()
	if len(all) < 3 {
		return usagef("exec takes BRIDGE GUEST -- CMD [ARGS...]")
	}
	cmd := all[2:]
	if cmd[0] == "--" {
		cmd = cmd[1:]
	}
	if len(cmd) == 0 {
		return usagef("exec: no command given after --")
	}
	code, err := runtime.Exec(env(c), all[0], all[1], cmd)
	if err != nil && (code == 126 || code == 127) {
		// The command's own failure, with the status a shell would give it.
		fmt.Fprintf(os.Stderr, "pontoon: %v\n", err)
		return exitCode(code)
	}
	if err != nil {
		return err
	}
	if code != 0 {
		return exitCode(code)
	}
	return nil
}

func gc(c *cli.Context) error {
	// What gc applies again (a bridge's services, its partition) is its doing in the log.
	partition.ProcessSource = partition.SourceGC
	// Containers first: they stop before the bridges they are attached to go. A run that
	// cannot be collected does not keep any bridge from being collected: both run, and the
	// report says what each did before the errors.
	crep, cerr := runtime.GC(env(c))
	rep, nerr := netsetup.GC(env(c))
	nrep, serr := collectNames(env(c))
	users, uerr := netsetup.GCUserLinks(env(c))
	prep, perr := partition.Collect(env(c))
	err := errors.Join(cerr, nerr, serr, uerr, perr)
	if c.Bool("json") {
		if perr := printJSON(struct {
			netsetup.GCReport
			Containers  []string                `json:"containers,omitempty"`
			NameServers []string                `json:"name_servers_stopped,omitempty"`
			Restarted   []string                `json:"name_servers_started,omitempty"`
			UserLinks   []string                `json:"user_links,omitempty"`
			Partitions  partition.CollectReport `json:"partitions"`
		}{rep, crep.Containers, nrep.Stopped, nrep.Restarted, users, prep}); perr != nil {
			return errors.Join(err, perr)
		}
		return err
	}
	n := len(rep.Bridges) + len(rep.Guests) + len(rep.Orphans) + len(crep.Containers) + len(rep.Broken) + len(rep.Repaired) + len(nrep.Stopped) + len(nrep.Restarted) + len(users) + len(prep.Expired) + len(prep.Temporary)
	return buffered(func(w io.Writer) error {
		for _, b := range prep.Expired {
			fmt.Fprintf(w, "ended the expired --for of bridge %s (its command and restorer were killed)\n", b)
		}
		for _, f := range prep.Temporary {
			fmt.Fprintln(w, "removed", f, "(a partition record's write was killed)")
		}
		for _, ct := range crep.Containers {
			fmt.Fprintln(w, "removed container", ct)
		}
		for _, u := range users {
			fmt.Fprintf(w, "removed the link of user %s (the space it led to has ended)\n", u)
		}
		if rep.Gateway {
			n++
			fmt.Fprintln(w, "removed a gateway whose creation or removal was killed halfway")
		}
		for _, b := range rep.Bridges {
			fmt.Fprintln(w, "removed bridge", b)
		}
		for _, g := range rep.Guests {
			fmt.Fprintln(w, "removed guest", g)
		}
		for _, o := range rep.Orphans {
			fmt.Fprintln(w, "removed orphan", o)
		}
		for _, o := range rep.Others {
			n++
			fmt.Fprintf(w, "left %s: it belongs to the pontoon of state directory %s (`pontoon --state-dir %s gc` collects what it leaves)\n", o.Path, o.StateDir, o.StateDir)
		}
		for _, k := range rep.Kept {
			n++
			fmt.Fprintf(w, "left %s: pinned at a pontoon path without a record, and not recognisably pontoon's (another tool's?); if it is yours to drop: umount %s && rm %s\n", k, k, k)
		}
		for _, b := range rep.Broken {
			fmt.Fprintln(w, "removed bridge", b, "(its namespace was gone)")
		}
		for _, r := range rep.Repaired {
			fmt.Fprintln(w, "repaired", r)
		}
		for _, b := range nrep.Stopped {
			fmt.Fprintln(w, "stopped the name server of removed bridge", b)
		}
		for _, b := range nrep.Restarted {
			fmt.Fprintln(w, "started the name server of bridge", b, "(it was not running)")
		}
		if n == 0 && err == nil {
			fmt.Fprintln(w, "nothing to collect")
		}
		return err
	})
}

// checkNetns makes sure path is a network namespace before anything is created for it, so a
// wrong path changes nothing.
func checkNetns(path string) error {
	if path == "" {
		return fmt.Errorf("empty path; pass a pinned network namespace such as /run/netns/NAME or /proc/PID/ns/net")
	}
	f, err := os.Open(path)
	if err != nil {
		// The *PathError names the path already.
		return fmt.Errorf("%w; pass a pinned network namespace such as /run/netns/NAME or /proc/PID/ns/net", err)
	}
	defer f.Close()
	kind, err := unix.IoctlRetInt(int(f.Fd()), unix.NS_GET_NSTYPE)
	if err != nil {
		return fmt.Errorf("%s is not a namespace file (%w); pass a pinned network namespace such as /run/netns/NAME or /proc/PID/ns/net", path, err)
	}
	if kind != unix.CLONE_NEWNET {
		return fmt.Errorf("%s is a namespace, but not a network namespace; pass a network namespace such as /proc/PID/ns/net", path)
	}
	return nil
}

// countingWriter counts what a dry run prints, to tell one that had nothing to do.
type countingWriter struct {
	w io.Writer
	n int
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += n
	return n, err
}
