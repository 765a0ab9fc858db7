package main

import (
	"fmt"
	"io"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/pontoon-dev/pontoon/netsetup"
	"github.com/urfave/cli/v2"
)

// At most this many address ranges and ports are spelled out on a bridge's line; a bridge
// with more says how many more, so that the list stays one screen line per bridge.
const (
	maxRanges = 4
	maxPorts  = 2
)

func bridgeList(c *cli.Context) error {
	e := env(c)
	bs, err := netsetup.Bridges(e)
	if err != nil {
		return err
	}
	if c.Bool("json") {
		if bs == nil {
			bs = []*netsetup.BridgeState{}
		}
		return printJSON(bs)
	}
	return buffered(func(w io.Writer) error {
		if c.Bool("verbose") && len(bs) > 0 {
			for i, b := range bs {
				if i > 0 {
					fmt.Fprintln(w)
				}
				if err := showBridge(w, e, b); err != nil {
					return err
				}
			}
			return nil
		}
		return printBridges(w, bs)
	})
}

func bridgeShow(c *cli.Context) error {
	a, err := args(c, "NAME")
	if err != nil {
		return err
	}
	e := env(c)
	b, err := netsetup.GetBridge(e, a[0])
	if err != nil {
		return err
	}
	if c.Bool("json") {
		return printJSON(b)
	}
	return buffered(func(w io.Writer) error { return showBridge(w, e, b) })
}

// printBridges writes one line per bridge: its guests are counted and their addresses
// summarised as ranges, so a bridge of 200 guests takes a line like any other.
// `bridge show NAME` and `bridge list -v` list the guests themselves.
func printBridges(out io.Writer, bs []*netsetup.BridgeState) error {
	if len(bs) == 0 {
		fmt.Fprintln(out, "no bridges")
		return nil
	}
	w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "BRIDGE\tSLOT\tSTATE\tOWNER\tGUESTS\tADDRESSES\tPORTS")
	for _, b := range bs {
		addrs := make([]string, len(b.Guests))
		for i, g := range b.Guests {
			addrs[i] = g.IP.String()
		}
		state := string(b.Phase)
		if b.Problem != "" {
			state = "broken"
		}
		fmt.Fprintf(w, "%s\t%d\t%s\t%s\t%d\t%s\t%s\n", b.Name, b.Slot, state, owner(b), len(b.Guests), addressRanges(addrs), abbreviate(portStrings(b), maxPorts))
	}
	if err := w.Flush(); err != nil {
		return err
	}
	for _, b := range bs {
		if b.Problem != "" {
			fmt.Fprintf(out, "bridge %s is broken: %s; `pontoon gc` repairs or removes it\n", b.Name, b.Problem)
		}
	}
	for _, b := range bs {
		printGuestProblems(out, b)
	}
	return nil
}

// printGuestProblems writes a line per guest of b whose namespace's pin is broken.
func printGuestProblems(out io.Writer, b *netsetup.BridgeState) {
	for _, g := range b.Guests {
		if g.Problem != "" {
			fmt.Fprintf(out, "guest %s of bridge %s is broken: %s; `pontoon gc` repairs it if it can\n", g.Name, b.Name, g.Problem)
		}
	}
}

// showBridge writes everything about one bridge, a line per guest.
func showBridge(out io.Writer, e netsetup.Env, b *netsetup.BridgeState) error {
	state := string(b.Phase)
	if b.Problem != "" {
		state = "broken"
	}
	fmt.Fprintf(out, "bridge %s: slot %d, %s, owner %s, created %s, namespace %s\n",
		b.Name, b.Slot, state, owner(b), b.Created.Local().Format(time.DateTime), b.Netns(e))
	if b.Problem != "" {
		fmt.Fprintf(out, "bridge %s is broken: %s; `pontoon gc` repairs or removes it\n", b.Name, b.Problem)
	}
	if len(b.Ports) > 0 {
		fmt.Fprintf(out, "ports: %s\n", strings.Join(portStrings(b), ", "))
	}
	if len(b.Guests) == 0 {
		fmt.Fprintln(out, "no guests")
		return nil
	}
	w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "GUEST\tIP\tIPV6\tHOSTNAME\tALIASES\tSTATE\tNAMESPACE")
	for _, g := range b.Guests {
		ip6 := ""
		if g.IP6.IsValid() {
			ip6 = g.IP6.String()
		}
		state := string(g.Phase)
		if g.Problem != "" {
			state = "broken"
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", g.Name, g.IP, orDash(ip6), orDash(g.Hostname), orDash(strings.Join(g.Aliases, ",")), state, g.Netns)
	}
	if err := w.Flush(); err != nil {
		return err
	}
	printGuestProblems(out, b)
	return nil
}

func portStrings(b *netsetup.BridgeState) []string {
	ports := make([]string, len(b.Ports))
	for i, p := range b.Ports {
		ports[i] = p.String()
	}
	return ports
}

func owner(b *netsetup.BridgeState) string {
	if b.Owner == nil {
		return "-"
	}
	return strconv.Itoa(b.Owner.PID)
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// abbreviate joins the first max items with commas and counts the rest.
func abbreviate(items []string, max int) string {
	if len(items) == 0 {
		return "-"
	}
	if len(items) <= max {
		return strings.Join(items, ",")
	}
	return fmt.Sprintf("%s,+%d more", strings.Join(items[:max], ","), len(items)-max)
}

// addressRanges summarises IPv4 addresses as runs of consecutive ones, writing the network
// part once per run: "172.18.0.1-120,172.18.0.130". Words that are not IPv4 addresses are
// kept as they are.
func addressRanges(addrs []string) string {
	var ips []netip.Addr
	var other []string
	for _, s := range addrs {
		if a, err := netip.ParseAddr(s); err == nil && a.Is4() {
			ips = append(ips, a)
		} else {
			other = append(other, s)
		}
	}
	slices.SortFunc(ips, func(a, b netip.Addr) int { return a.Compare(b) })
	ips = slices.Compact(ips)
	var runs []string
	for i := 0; i < len(ips); {
		j := i
		for j+1 < len(ips) && ips[j].Next() == ips[j+1] && ips[j+1].As4()[3] != 0 {
			j++
		}
		// A run never crosses a /24 (x.y.z.0 ends it), so its end needs the last octet only.
		run := ips[i].String()
		if j > i {
			run += "-" + strconv.Itoa(int(ips[j].As4()[3]))
		}
		runs = append(runs, run)
		i = j + 1
	}
	return abbreviate(append(runs, other...), maxRanges)
}
