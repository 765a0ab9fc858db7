package main

import (
	"github.com/pontoon-dev/pontoon/netsetup"
	"github.com/urfave/cli/v2"
)

// ipv6Flags choose the IPv6 half of the address plan wherever a command may bring the gateway
// up.
func ipv6Flags(what string) []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "subnet6", Usage: "the unique local IPv6 /48 " + what + " (default " + netsetup.DefaultSubnet6 + ")"},
		&cli.BoolFlag{Name: "ipv4-only", Usage: "give the chain and its guests no IPv6 (for hosts without it); IPv6 stays dropped between guests"},
	}
}

// gatewayOptions reads --subnet and the IPv6 flags into the options of `gateway up`. A flag
// not given leaves its part of the plan zero: a gateway that is up keeps what it has, a new
// one gets the default.
func gatewayOptions(c *cli.Context) (netsetup.GatewayOptions, error) {
	var opt netsetup.GatewayOptions
	if c.IsSet("subnet") {
		plan, err := netsetup.ParsePlan(c.String("subnet"))
		if err != nil {
			return opt, usagef("--subnet: %w", err)
		}
		opt.Plan = plan
	}
	opt.IPv4Only = c.Bool("ipv4-only")
	var err error
	if c.IsSet("subnet6") {
		if opt.IPv4Only {
			return opt, usagef("--subnet6 and --ipv4-only contradict each other; give one of them")
		}
		if opt.Plan.Subnet6, err = netsetup.ParsePlan6(c.String("subnet6")); err != nil {
			return opt, usagef("--subnet6: %w", err)
		}
	}
	return opt, nil
}
