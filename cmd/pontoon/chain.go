package main

import (
	"encoding/json"
	"fmt"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/pontoon-dev/pontoon/netsetup"
	"github.com/pontoon-dev/pontoon/netsetup/ns"
	"github.com/urfave/cli/v2"
)

func printJSON(v any) error {
	e := json.NewEncoder(os.Stdout)
	e.SetIndent("", "  ")
	return e.Encode(v)
}

var jsonFlag = &cli.BoolFlag{Name: "json", Usage: "print JSON"}

func chainCommands() []*cli.Command {
	return []*cli.Command{
		{
			Name:  "gateway",
			Usage: "the namespace that links every bridge to the host",
			Subcommands: []*cli.Command{
				{
					Name:  "up",
					Usage: "create the gateway (as root, once per host)",
					Flags: []cli.Flag{
						&cli.StringFlag{Name: "subnet", Usage: "the /16 the whole address plan is taken from", Value: netsetup.DefaultSubnet},
						&cli.BoolFlag{Name: "dry-run", Usage: "print each step as the equivalent ip/nft/sysctl command; change nothing"},
						&cli.BoolFlag{Name: "no-firewall", Usage: "leave the host firewall alone (masquerade, FORWARD exceptions, DNS redirect)"},
					},
					Action: gatewayUp,
				},
				{
					Name:  "down",
					Usage: "remove the gateway and restore what up changed",
					Flags: []cli.Flag{
						&cli.BoolFlag{Name: "dry-run", Usage: "print each step; change nothing"},
						&cli.BoolFlag{Name: "force", Usage: "destroy bridges still in use"},
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
		},
		{
			Name:  "bridge",
			Usage: "per-run bridges: one private guest network each",
			Subcommands: []*cli.Command{
				{
					Name:      "create",
					Usage:     "create a bridge",
					ArgsUsage: "NAME",
					Flags: []cli.Flag{
						&cli.StringSliceFlag{Name: "port", Usage: "forward HOSTPORT:GUEST:GUESTPORT[/tcp|/udp] from the gateway address to a guest"},
						&cli.IntFlag{Name: "owner", Usage: "pid whose exit makes the bridge garbage for `pontoon gc` (default: kept until destroyed)"},
						&cli.BoolFlag{Name: "dry-run", Usage: "print each step; change nothing"},
						jsonFlag,
					},
					Action: bridgeCreate,
				},
				{Name: "destroy", Usage: "destroy a bridge and everything on it", ArgsUsage: "NAME", Action: bridgeDestroy},
				{Name: "list", Usage: "list bridges", Flags: []cli.Flag{jsonFlag}, Action: bridgeList},
			},
		},
		{
			Name:  "guest",
			Usage: "attach network namespaces to a bridge with a fixed IP",
			Subcommands: []*cli.Command{
				{
					Name:      "add",
					Usage:     "add a guest (creates its namespace unless --netns or --pid is given)",
					ArgsUsage: "BRIDGE NAME",
					Flags: []cli.Flag{
						&cli.StringFlag{Name: "ip", Usage: "the guest's address, x.y.0.1-x.y.0.253", Required: true},
						&cli.StringFlag{Name: "hostname", Usage: "hostname of a namespace pontoon creates (default NAME)"},
						&cli.StringFlag{Name: "netns", Usage: "attach this existing network namespace (a path)"},
						&cli.IntFlag{Name: "pid", Usage: "attach the network namespace of this process"},
						jsonFlag,
					},
					Action: guestAdd,
				},
				{Name: "del", Usage: "remove a guest", ArgsUsage: "BRIDGE NAME", Action: guestDel},
			},
		},
		{
			Name:            "exec",
			Usage:           "run a command inside a guest's namespaces",
			ArgsUsage:       "BRIDGE GUEST -- CMD [ARGS...]",
			SkipFlagParsing: false,
			Action:          execGuest,
		},
		{
			Name:   "gc",
			Usage:  "remove everything left by runs whose owner process is gone (safe at any time)",
			Flags:  []cli.Flag{jsonFlag},
			Action: gc,
		},
	}
}

func gatewayUp(c *cli.Context) error {
	if _, err := args(c); err != nil {
		return err
	}
	plan, err := netsetup.ParsePlan(c.String("subnet"))
	if err != nil {
		return usagef("--subnet: %v", err)
	}
	e := env(c)
	if c.Bool("dry-run") {
		e.DryRun = os.Stdout
	}
	already, err := netsetup.GatewayUp(e, netsetup.GatewayOptions{Plan: plan, NoFirewall: c.Bool("no-firewall")})
	if err != nil {
		return err
	}
	switch {
	case e.DryRun != nil:
	case already:
		fmt.Printf("gateway already up (subnet %s)\n", plan)
	default:
		fmt.Printf("gateway up (subnet %s, host %s, gateway %s)\n", plan, plan.HostAddr().Addr(), plan.GatewayAddr().Addr())
	}
	return nil
}

func gatewayDown(c *cli.Context) error {
	if _, err := args(c); err != nil {
		return err
	}
	e := env(c)
	if c.Bool("dry-run") {
		e.DryRun = os.Stdout
	}
	return netsetup.GatewayDown(e, c.Bool("force"))
}

func gatewayStatus(c *cli.Context) error {
	if _, err := args(c); err != nil {
		return err
	}
	st, err := netsetup.Status(env(c))
	if err != nil {
		return err
	}
	if c.Bool("json") {
		return printJSON(st)
	}
	if !st.Up {
		fmt.Println("gateway: down (run `pontoon gateway up`)")
	} else {
		fw := "host firewall managed by pontoon"
		if st.Gateway.NoFirewall {
			fw = "host firewall left alone"
		}
		fmt.Printf("gateway: up since %s, subnet %s, %s\n", st.Gateway.Created.Local().Format("2006-01-02 15:04:05"), st.Gateway.Plan, fw)
	}
	return printBridges(st.Bridges)
}

func printBridges(bs []*netsetup.BridgeState) error {
	if len(bs) == 0 {
		fmt.Println("no bridges")
		return nil
	}
	w := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "BRIDGE\tSLOT\tSTATE\tOWNER\tGUESTS\tPORTS")
	for _, b := range bs {
		owner := "-"
		if b.Owner != nil {
			owner = strconv.Itoa(b.Owner.PID)
		}
		var guests, ports []string
		for _, g := range b.Guests {
			guests = append(guests, g.Name+"="+g.IP)
		}
		for _, p := range b.Ports {
			ports = append(ports, p.String())
		}
		fmt.Fprintf(w, "%s\t%d\t%s\t%s\t%s\t%s\n", b.Name, b.Slot, b.Phase, owner, orDash(guests), orDash(ports))
	}
	return w.Flush()
}

func orDash(s []string) string {
	if len(s) == 0 {
		return "-"
	}
	return strings.Join(s, ",")
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
			return usagef("--port: %v", err)
		}
		opt.Ports = append(opt.Ports, p)
	}
	if pid := c.Int("owner"); pid != 0 {
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
	return netsetup.DestroyBridge(env(c), a[0])
}

func bridgeList(c *cli.Context) error {
	if _, err := args(c); err != nil {
		return err
	}
	bs, err := netsetup.Bridges(env(c))
	if err != nil {
		return err
	}
	if c.Bool("json") {
		if bs == nil {
			bs = []*netsetup.BridgeState{}
		}
		return printJSON(bs)
	}
	return printBridges(bs)
}

func guestAdd(c *cli.Context) error {
	a, err := args(c, "BRIDGE", "NAME")
	if err != nil {
		return err
	}
	if c.IsSet("netns") && c.IsSet("pid") {
		return usagef("--netns and --pid both name a namespace; give one of them")
	}
	g, err := netsetup.AddGuest(env(c), a[0], a[1], netsetup.GuestOptions{
		IP: c.String("ip"), Hostname: c.String("hostname"), Netns: c.String("netns"), PID: c.Int("pid"),
	})
	if err != nil {
		return err
	}
	if c.Bool("json") {
		return printJSON(g)
	}
	fmt.Printf("guest %s added to %s with IP %s (namespace %s)\n", g.Name, a[0], g.IP, g.Netns)
	return nil
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
	_, g, err := netsetup.FindGuest(env(c), all[0], all[1])
	if err != nil {
		return err
	}
	environ := append(os.Environ(), "PONTOON_BRIDGE="+all[0], "PONTOON_GUEST="+g.Name, "PONTOON_IP="+g.IP)
	return ns.Exec(g.Namespaces(), cmd, environ)
}

func gc(c *cli.Context) error {
	if _, err := args(c); err != nil {
		return err
	}
	rep, err := netsetup.GC(env(c))
	if err != nil {
		return err
	}
	if c.Bool("json") {
		return printJSON(rep)
	}
	n := len(rep.Bridges) + len(rep.Guests) + len(rep.Orphans)
	if rep.Gateway {
		n++
		fmt.Println("removed a half-created gateway")
	}
	for _, b := range rep.Bridges {
		fmt.Println("removed bridge", b)
	}
	for _, g := range rep.Guests {
		fmt.Println("removed guest", g)
	}
	for _, o := range rep.Orphans {
		fmt.Println("removed orphan", o)
	}
	if n == 0 {
		fmt.Println("nothing to collect")
	}
	return nil
}
