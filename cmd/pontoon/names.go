package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"slices"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/pontoon-dev/pontoon/names"
	"github.com/pontoon-dev/pontoon/netsetup"
	"github.com/urfave/cli/v2"
)

func namesCommands() *cli.Command {
	return &cli.Command{
		Name:  "names",
		Usage: usageOf("names"),
		Subcommands: []*cli.Command{
			{Name: "status", Usage: "show which process serves each bridge's names, and which server is gone", ArgsUsage: "[BRIDGE]", Flags: []cli.Flag{jsonFlag, namesCheckFlag}, Action: namesStatus},
			{
				Name: names.ServeVerb[1], Hidden: true, Usage: "serve a bridge's names (started by bridge create, gc and guest add)",
				Flags: []cli.Flag{&cli.StringFlag{Name: "bridge"}, &cli.BoolFlag{Name: names.InheritFlag}},
				Action: func(c *cli.Context) error {
					// It outlives the terminal on purpose; SIGTERM (Stop) ends it.
					signal.Ignore(syscall.SIGINT, syscall.SIGHUP)
					term := make(chan os.Signal, 1)
					signal.Notify(term, syscall.SIGTERM)
					return names.Serve(env(c), c.String("bridge"), c.Bool(names.InheritFlag), term)
				},
			},
		},
	}
}

// namesCheckFlag makes names status a test a script can use, as partition status --check is.
var namesCheckFlag = &cli.BoolFlag{Name: "check", Usage: "exit with status 3 when a bridge listed has no name server running; the output is the same"}

func namesStatus(c *cli.Context) error {
	if c.NArg() > 1 {
		return usagef("names status takes at most one bridge name; got %d words", c.NArg())
	}
	e := env(c)
	var bridges []string
	if c.NArg() == 1 {
		if _, err := netsetup.GetBridge(e, c.Args().First()); err != nil {
			return err
		}
		bridges = []string{c.Args().First()}
	} else {
		all, err := netsetup.Bridges(e)
		if err != nil {
			return err
		}
		for _, b := range all {
			bridges = append(bridges, b.Name)
		}
	}
	states := make([]names.State, 0, len(bridges))
	for _, b := range bridges {
		st, err := names.Status(e, b)
		if err != nil {
			return err
		}
		states = append(states, st)
	}
	err := printNamesStatus(states, c.Bool("json"))
	if err == nil && c.Bool("check") && slices.ContainsFunc(states, func(st names.State) bool { return !st.Running }) {
		return statusUnchecked
	}
	return err
}

func printNamesStatus(states []names.State, asJSON bool) error {
	if asJSON {
		return printJSON(states)
	}
	return buffered(func(out io.Writer) error {
		w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
		fmt.Fprintln(w, "BRIDGE\tSERVER\tPID\tADDRESS")
		for _, st := range states {
			switch {
			case st.Running:
				kind := "detached"
				if !st.Record.Detached {
					kind = "in its owner's process"
				}
				fmt.Fprintf(w, "%s\trunning (%s)\t%d\t%s\n", st.Bridge, kind, st.Record.Process.PID, st.Record.Addr)
			default:
				fmt.Fprintf(w, "%s\tNOT RUNNING: %s\t-\t-\n", st.Bridge, st.Problem)
			}
		}
		return w.Flush()
	})
}

func pontoonExe() (string, error) {
	exe, err := os.Executable()
	if err != nil {
		return "", fmt.Errorf("find pontoon's executable for the name server: %w", err)
	}
	return exe, nil
}

// startNames starts a new bridge's name server.
func startNames(e netsetup.Env, bridge string) error {
	exe, err := pontoonExe()
	if err != nil {
		return err
	}
	return names.Start(e, bridge, exe)
}

// ensureNames restarts a bridge's name server that was killed, and says so.
func ensureNames(e netsetup.Env, bridge string) error {
	exe, err := pontoonExe()
	if err != nil {
		return err
	}
	started, err := names.Ensure(e, bridge, exe)
	if started {
		fmt.Fprintf(os.Stderr, "pontoon: started the name server of bridge %s (it was not running)\n", bridge)
	}
	return err
}

// collectNames is gc's part for name servers.
func collectNames(e netsetup.Env) (names.Report, error) {
	exe, err := pontoonExe()
	if err != nil {
		return names.Report{}, err
	}
	return names.Collect(e, exe)
}

func dnsFaultCommand() *cli.Command {
	return &cli.Command{
		// The fault kinds are in Usage: in the verbs' list, a synopsis this long would push
		// every impairment verb's description to the right.
		Name: "dns", Category: catImpair, ArgsUsage: "FAULT [--name NAME].. [--from GUEST]..",
		Usage: "make the bridge's name server answer wrongly, per queried name and/or asking guest; FAULT: nxdomain, servfail, drop, wrong ADDRESS, delay DURATION",
		Flags: []cli.Flag{
			bridgeFlag(),
			&cli.StringSliceFlag{Name: "name", Usage: "a queried `NAME` the fault applies to (repeatable; default every name)"},
			&cli.StringSliceFlag{Name: "from", Usage: "an asking `GUEST` (name or IP) the fault applies to (repeatable; default every guest)"},
			forFlag(),
		},
		Action: dnsFault,
	}
}

func dnsFault(c *cli.Context) error {
	name, err := bridgeName(c)
	if err != nil {
		return err
	}
	f, err := names.ParseFault(c.Args().Slice())
	if err != nil {
		return usagef("%w", err)
	}
	d, timed, err := forDuration(c)
	if err != nil {
		return err
	}
	f.Names, f.From = c.StringSlice("name"), c.StringSlice("from")
	if timed {
		// The server ignores the fault from then on, even if this command is killed.
		f.Expires = time.Now().Add(d).UTC()
	}
	e := env(c)
	// With --for, caught from before the fault is added: a Ctrl-C meanwhile removes it once
	// it is in, where it would otherwise end this command and leave the fault for the whole
	// duration (catchStop).
	ctx := context.Background()
	if timed {
		var stop context.CancelFunc
		ctx, stop = catchStop()
		defer stop()
	}
	f, err = names.AddFault(e, name, f, cliSource())
	if err != nil {
		return err
	}
	if err := ensureNames(e, name); err != nil {
		return err
	}
	if !timed {
		fmt.Printf("DNS fault %d: %s\n", f.ID, f)
		return nil
	}
	fmt.Printf("DNS fault %d: %s, for %s (Ctrl-C removes it now)\n", f.ID, f, d)
	timer := time.NewTimer(time.Until(f.Expires))
	defer timer.Stop()
	end := names.ExpireFault
	select {
	case <-timer.C:
	case <-ctx.Done():
		end = names.RemoveFault
	}
	if err := end(e, name, f.ID, cliSource()); err != nil {
		return err
	}
	fmt.Println("DNS fault removed")
	return nil
}

// printDNSFaults writes the DNS faults in force for people.
func printDNSFaults(w io.Writer, faults []names.Fault, problem string) {
	if len(faults) == 0 {
		return
	}
	if problem != "" {
		fmt.Fprintf(w, "WARNING: the DNS faults below may not be in force, nor any name served: the bridge's name server: %s\n", problem)
	}
	fmt.Fprintln(w, "DNS FAULT\tWHAT\tSINCE\tUNTIL")
	for _, f := range faults {
		until := "-"
		if !f.Expires.IsZero() {
			until = f.Expires.Local().Format(time.TimeOnly)
		}
		fmt.Fprintf(w, "\t%d: %s\t%s\t%s\n", f.ID, f, f.Since.Local().Format(time.TimeOnly), until)
	}
}
