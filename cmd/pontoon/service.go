package main

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/pontoon-dev/pontoon/netsetup"
	"github.com/pontoon-dev/pontoon/partition"
	"github.com/urfave/cli/v2"
)

func serviceCommand() *cli.Command {
	return &cli.Command{
		Name:  "service",
		Usage: usageOf("service"),
		Subcommands: []*cli.Command{
			{
				Name: "add", Usage: "add a service address to a bridge", ArgsUsage: "BRIDGE NAME --members A,B,C",
				Flags: []cli.Flag{
					// Required, but checked by serviceAdd: urfave/cli's own check says only that the flag
					// is not set, and exits as a failure, not a usage error.
					&cli.StringSliceFlag{Name: "members", Usage: "the guests that serve it (`A,B,C`)"},
					&cli.StringFlag{Name: "ip", Usage: "its `ADDR` in x.y.1.1-x.y.1.254 (default: the lowest free)"},
					&cli.StringSliceFlag{Name: "port", Usage: "a served `PORT[/tcp|/udp]` (repeatable; default: every port)"},
					&cli.BoolFlag{Name: "random", Usage: "spread new connections at random instead of round-robin"},
					&cli.BoolFlag{Name: "skip-unreachable", Usage: "spread a client's connections only over the members the partition lets it reach"},
					&cli.BoolFlag{Name: "ipv4-only", Usage: "no IPv6 address for the service"},
					jsonFlag,
				},
				Action: serviceAdd,
			},
			{Name: "rm", Usage: "remove a service address", ArgsUsage: "BRIDGE NAME", Action: serviceRm},
			{Name: "list", Usage: "list services, their members and where connections went", ArgsUsage: "[BRIDGE]", Flags: []cli.Flag{jsonFlag}, Action: serviceList},
		},
	}
}

func serviceAdd(c *cli.Context) error {
	if c.NArg() != 2 {
		return usagef("service add takes a bridge and a service name; got %d words", c.NArg())
	}
	if !c.IsSet("members") {
		return usagef("%s needs --members, the guests that serve the service, e.g. `%s %s %s --members A,B,C` (names of the bridge's guests, comma-separated or --members repeated)",
			c.Command.HelpName, c.Command.HelpName, c.Args().Get(0), c.Args().Get(1))
	}
	if err := needRoot(c); err != nil {
		return err
	}
	var members []string
	for _, m := range c.StringSlice("members") {
		for _, f := range strings.Split(m, ",") {
			if f = strings.TrimSpace(f); f != "" {
				members = append(members, f)
			}
		}
	}
	opt := netsetup.ServiceOptions{IP: c.String("ip"), IPv4Only: c.Bool("ipv4-only"), Ports: c.StringSlice("port"),
		Members: members, SkipUnreachable: c.Bool("skip-unreachable")}
	if c.Bool("random") {
		opt.Mode = netsetup.ModeRandom
	}
	s, err := partition.AddService(env(c), c.Args().Get(0), c.Args().Get(1), opt)
	if err != nil {
		return err
	}
	if c.Bool("json") {
		return printJSON(s)
	}
	fmt.Printf("service %s at %s\n", s.Name, serviceAddrs(*s))
	return nil
}

func serviceRm(c *cli.Context) error {
	if c.NArg() != 2 {
		return usagef("service rm takes a bridge and a service name; got %d words", c.NArg())
	}
	if err := needRoot(c); err != nil {
		return err
	}
	if err := partition.RemoveService(env(c), c.Args().Get(0), c.Args().Get(1)); err != nil {
		return err
	}
	fmt.Printf("service %s removed from bridge %s\n", c.Args().Get(1), c.Args().Get(0))
	return nil
}

// bridgeServices is one bridge's services for service list.
type bridgeServices struct {
	Bridge   string                    `json:"bridge"`
	Services []partition.ServiceStatus `json:"services"`
}

func serviceList(c *cli.Context) error {
	if c.NArg() > 1 {
		return usagef("service list takes at most one bridge name; got %d words", c.NArg())
	}
	e := env(c)
	var names []string
	if c.NArg() == 1 {
		names = []string{c.Args().First()}
	} else {
		all, err := netsetup.Bridges(e)
		if err != nil {
			return err
		}
		for _, b := range all {
			names = append(names, b.Name)
		}
	}
	out := make([]bridgeServices, 0, len(names))
	for _, b := range names {
		st, err := partition.Services(e, b)
		if err != nil {
			return err
		}
		out = append(out, bridgeServices{Bridge: b, Services: st})
	}
	if c.Bool("json") {
		return printJSON(out)
	}
	return buffered(func(w io.Writer) error {
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "BRIDGE\tSERVICE\tADDRESS\tPORTS\tMODE\tCONNECTIONS PER MEMBER")
		for _, b := range out {
			for _, s := range b.Services {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", b.Bridge, s.Name, serviceAddrs(s.Service), servicePorts(s.Service), serviceMode(s.Service), serviceFlows(s))
			}
		}
		return tw.Flush()
	})
}

func serviceAddrs(s netsetup.Service) string {
	if s.IP6.IsValid() {
		return s.IP.String() + " " + s.IP6.String()
	}
	return s.IP.String()
}

func servicePorts(s netsetup.Service) string {
	if len(s.Ports) == 0 {
		return "all"
	}
	p := make([]string, len(s.Ports))
	for i, x := range s.Ports {
		p[i] = x.String()
	}
	return strings.Join(p, ",")
}

func serviceMode(s netsetup.Service) string {
	m := s.Mode
	if s.SkipUnreachable {
		m += ",skip-unreachable"
	}
	// An add or removal under way, or killed halfway: the record may not be what the
	// kernel has until it ends (or pontoon gc ends it).
	switch {
	case s.Changing != nil && !s.Changing.Alive():
		m += " (interrupted: pontoon gc finishes it)"
	case s.Changing != nil && s.Removing:
		m += " (being removed)"
	case s.Changing != nil:
		m += " (being added)"
	}
	return m
}

// serviceFlows is "n1=10 n2=9 n3=0", and what the partition stopped.
func serviceFlows(s partition.ServiceStatus) string {
	if len(s.Flows) == 0 {
		return "(no members)"
	}
	f := make([]string, len(s.Flows))
	for i, m := range s.Flows {
		f[i] = fmt.Sprintf("%s=%d", m.Member, m.Connections)
	}
	out := strings.Join(f, " ")
	var stopped uint64
	for _, p := range s.Stopped {
		stopped += p.Total().Packets
	}
	if stopped > 0 {
		out += fmt.Sprintf(" (partition stopped %d packets)", stopped)
	}
	return out
}

// printServices adds the bridge's services to partition status.
func printServices(w io.Writer, services []partition.ServiceStatus) {
	for _, s := range services {
		fmt.Fprintf(w, "service %s %s (%s, ports %s): %s\n", s.Name, serviceAddrs(s.Service), serviceMode(s.Service), servicePorts(s.Service), serviceFlows(s))
	}
}
