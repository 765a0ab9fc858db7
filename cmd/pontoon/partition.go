package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/pontoon-dev/pontoon/names"
	"github.com/pontoon-dev/pontoon/partition"
	"github.com/urfave/cli/v2"
)

// The flags of the partition verbs. Flags may be written before the verb or after its
// arguments (`pontoon partition --bridge B disjoint a b -- c --mode reject`): see interspersed.
func bridgeFlag() cli.Flag {
	return &cli.StringFlag{Name: "bridge", Usage: "the `NAME` of the bridge to act on (default: $PONTOON_BRIDGE, set inside bridge children)", EnvVars: []string{"PONTOON_BRIDGE"}}
}

func forFlag() cli.Flag {
	return &cli.DurationFlag{Name: "for", Usage: "restore the previous state after this `DURATION` (and on Ctrl-C)", DefaultText: "for good"}
}

// specFlags are the flags of the verbs that replace the partition.
func specFlags() []cli.Flag {
	return []cli.Flag{
		bridgeFlag(),
		&cli.StringFlag{Name: "mode", Usage: "`MODE`: drop (peers see timeouts) or reject (TCP reset / ICMP unreachable: clients fail fast)", Value: "drop"},
		&cli.BoolFlag{Name: "cut", Usage: cutUsage},
		forFlag(),
	}
}

// cutUsage says what the guests on either side of a new partition see with --cut, as
// partition.Apply does it: it commits the partition, then destroys the crossing sockets
// inside both guests (sock_diag SOCK_DESTROY, which aborts them with ECONNABORTED; the reset
// the kernel sends for them is stopped by the partition), and the rule set answers a segment
// that still crosses with a reset.
const cutUsage = "break TCP connections already open across the new partition: pontoon destroys their sockets inside both guests " +
	"(SOCK_DESTROY), so a program blocked on one fails at once with ECONNABORTED (\"software caused connection abort\"), a local abort, " +
	"not a reset from the peer; a segment that still crosses the partition is answered with a TCP reset (ECONNRESET). " +
	"Without --cut, open connections stall (drop) or are reset on their next segment (reject)"

// impairFlags are the flags of the impairment verbs, which leave the partition, its mode and
// open connections alone.
func impairFlags() []cli.Flag { return []cli.Flag{bridgeFlag(), forFlag()} }

// partitionHelp lists the verbs with their arguments, grouped by what they change.
var partitionHelp = `NAME:
   {{.HelpName}} - {{.Usage}}

USAGE:
   {{.HelpName}} [--bridge NAME] VERB [ARGUMENTS] [FLAGS]
   {{.HelpName}} VERB --help      shows a verb's flags

   Guests are named by name or IP; "--" separates groups (A B -- C). Flags may come before
   the verb or after the arguments.
   Partition verbs replace the partition and keep the impairments; they take --mode drop|reject,
   --cut and --for DURATION. Impairment verbs change only the settings given, per guest (A B)
   or per pair (SRC.. -- DST..), and keep the rest; they take --for DURATION.
{{$cat := ""}}{{range .VisibleCommands}}{{if ne .Category $cat}}{{$cat = .Category}}
{{.Category}}:
{{end}}   {{.Name}} {{.ArgsUsage}}{{"\t"}}{{.Usage}}
{{end}}
OPTIONS:
   --bridge NAME  the bridge to act on (default: $PONTOON_BRIDGE, set inside bridge children)
`

const (
	catSpec   = "PARTITION VERBS"
	catImpair = "IMPAIRMENT VERBS"
	catOther  = "STATE"
)

func partitionCommands() *cli.Command {
	spec := func(name, args, usage string) *cli.Command {
		return &cli.Command{Name: name, Category: catSpec, ArgsUsage: args, Usage: usage, Flags: specFlags(), Action: applySpec(name)}
	}
	impair := func(name, setting, args, usage string) *cli.Command {
		return &cli.Command{Name: name, Category: catImpair, ArgsUsage: args, Usage: usage, Flags: impairFlags(), Action: applyImpairment(setting)}
	}
	return &cli.Command{
		Name:               "partition",
		Usage:              usageOf("partition"),
		ArgsUsage:          "VERB [ARGUMENTS]",
		CustomHelpTemplate: partitionHelp,
		// Defined here too so that `pontoon partition --bridge B VERB` parses when VERB is
		// unknown and the answer can name the verbs that exist; for a known verb the flag is
		// handed to the verb (interspersed).
		Flags: []cli.Flag{bridgeFlag()},
		Subcommands: []*cli.Command{
			spec("isolate", "GUEST [GUEST..]", "cut each listed guest off from all others, each other included"),
			spec("disjoint", "A B -- C D [-- ..]", "groups sharing no guest; every guest exactly once"),
			spec("split", "A B -- B C [-- ..]", "groups may overlap; unlisted guests are isolated"),
			spec("block", "A [B..] -- C [D..]", "one way: packets from the first group to the second are lost"),
			spec("random-halves", "[SEED]", "two random halves"),
			spec("random-node", "[SEED]", "isolate one random guest"),
			spec("bridge", "[SEED]", "two random halves sharing one guest (Jepsen's bridge)"),
			spec("ring", "[SEED]", "each guest sees a different majority (Jepsen's majorities-ring)"),
			spec("fullmesh", "", "every guest reaches every other one (keeps impairments)"),
			impair("loss", "loss", "PCT GUEST..|SRC.. -- DST..", "lose PCT% of packets (works without netem)"),
			impair("rate", "rate", "RATE GUEST..|SRC.. -- DST..", "limit bandwidth: bit, kbit, mbit, gbit (bits/s) or bps, kbps, mbps (bytes/s), e.g. 1mbit"),
			impair("delay", "delay", "DURATION GUEST..|SRC.. -- DST..", "add latency, e.g. 50ms (needs netem in the kernel)"),
			impair("impair", "", "SETTING=VALUE.. GUEST..|SRC.. -- DST..", "several at once: loss=PCT rate=RATE delay=DUR jitter=DUR duplicate=PCT corrupt=PCT reorder=PCT"),
			dnsFaultCommand(),
			{Name: "heal", Category: catOther, Usage: "remove every partition, impairment and DNS fault of the bridge", Flags: []cli.Flag{bridgeFlag()}, Action: healBridge},
			{Name: "status", Category: catOther, Usage: "show who reaches whom, blocked pairs and impairments, since when, and what they stopped", Flags: []cli.Flag{bridgeFlag(), jsonFlag, dotFlag, checkFlag}, Action: partitionStatus},
			partitionLogCommand(),
			restoreCommand(),
		},
	}
}

func target(c *cli.Context) (partition.Target, error) {
	return targetAs(c, cliSource())
}

// cliSource names who runs this command in the bridge's event log.
func cliSource() string {
	if os.Getenv("PONTOON_BRIDGE") != "" {
		return partition.SourceChild
	}
	return partition.SourceCLI
}

// bridgeName is the --bridge a command acts on; it is required.
func bridgeName(c *cli.Context) (string, error) {
	name := c.String("bridge")
	if name == "" {
		return "", usagef("no bridge given: pass --bridge NAME (inside a bridge child PONTOON_BRIDGE is set for you)")
	}
	return name, nil
}

// targetAs is target for changes the event log attributes to source.
func targetAs(c *cli.Context, source string) (partition.Target, error) {
	name, err := bridgeName(c)
	if err != nil {
		return partition.Target{}, err
	}
	t, err := partition.ForBridge(env(c), name)
	if err != nil {
		return t, err
	}
	// Without it, status would report the kernel as not holding what was applied, and a
	// change would fail deep in its probes.
	if _, err := os.Stat(t.NetnsPath); errors.Is(err, os.ErrNotExist) {
		return t, fmt.Errorf("bridge %q is recorded in %s, but its network namespace %s is not there: "+
			"was the bridge made with another --netns-dir (PONTOON_NETNS_DIR)? If its namespace was deleted outside pontoon, `pontoon gc` collects the bridge",
			name, t.StateDir, t.NetnsPath)
	}
	t.Source = source
	// A `--for` whose process died before restoring is finished by the next command.
	if restored, err := partition.RestoreExpired(t); err != nil {
		return t, err
	} else if restored {
		fmt.Fprintln(os.Stderr, "pontoon: restored the state an earlier --for had replaced (its process had gone)")
	}
	return t, nil
}

func mode(c *cli.Context) (partition.Mode, error) {
	m, err := partition.ParseMode(c.String("mode"))
	if err != nil {
		return "", usagef("--mode: %w", err)
	}
	return m, nil
}

func applySpec(kind string) cli.ActionFunc {
	return func(c *cli.Context) error {
		t, err := target(c)
		if err != nil {
			return err
		}
		words := append([]string{kind}, c.Args().Slice()...)
		if kind == "ring" {
			words[0] = "majorities-ring"
		}
		p, err := partition.ParseSpec(words, t.Guests)
		if err != nil {
			return usagef("%w", err)
		}
		m, err := mode(c)
		if err != nil {
			return err
		}
		cut := c.Bool("cut")
		t.What, t.Sets = commandWords(c), []string{partition.SetsPartition}
		describe := func() string { return p.Description }
		return apply(c, t, describe, func(st partition.State) (partition.State, error) {
			st.Partition, st.Mode, st.Cut = p, m, cut
			return st, nil
		})
	}
}

func applyImpairment(setting string) cli.ActionFunc {
	return func(c *cli.Context) error {
		t, err := target(c)
		if err != nil {
			return err
		}
		words := c.Args().Slice()
		if setting != "" {
			if len(words) == 0 {
				return usagef("%s needs a value and guests, e.g. `pontoon partition %s %s`", setting, setting, c.Command.ArgsUsage)
			}
			words = append([]string{setting + "=" + words[0]}, words[1:]...)
		}
		// Check the words alone first, so a typo is a usage error before anything is locked.
		sets, err := partition.ImpairSets(words, t.Guests)
		if err != nil {
			return usagef("%w", err)
		}
		t.What, t.Sets = commandWords(c), sets
		var desc []string
		describe := func() string { return strings.Join(desc, "; ") }
		return apply(c, t, describe, func(st partition.State) (partition.State, error) {
			// The settings are merged with the impairments in force when the lock is held.
			next, changed, err := st.Impair(words, t.Guests)
			if err != nil {
				return st, usageError{err}
			}
			desc = desc[:0]
			for _, im := range changed {
				desc = append(desc, im.String())
			}
			return next, nil
		})
	}
}

// apply makes change's state the bridge's, read-modify-write under the bridge's lock, for
// ever or (--for) until the state it replaced is restored. describe says what changed once
// change has run.
func apply(c *cli.Context, t partition.Target, describe func() string, change func(partition.State) (partition.State, error)) error {
	d, timed, err := forDuration(c)
	if err != nil {
		return err
	}
	if !timed {
		rec, err := partition.Update(t, change)
		if err != nil {
			return err
		}
		return report(rec, describe())
	}
	return applyFor(c, t, change, d, describe)
}

// forDuration is the --for of a command and whether it was given. Given, it must be positive:
// a zero would otherwise read as no --for at all, and leave in force for good what was asked
// for no time.
func forDuration(c *cli.Context) (time.Duration, bool, error) {
	if !c.IsSet("for") {
		return 0, false, nil
	}
	d := c.Duration("for")
	if d <= 0 {
		return 0, false, usagef("--for: %s is not a positive duration; give one such as 30s, or leave --for out to keep the change until the next one", d)
	}
	return d, true, nil
}

// commandWords is the command as the user gave it, from the verb on, without --bridge.
func commandWords(c *cli.Context) string {
	w := append([]string{c.Command.Name}, c.Args().Slice()...)
	for _, f := range []string{"mode", "cut", "for"} {
		if !c.IsSet(f) {
			continue
		}
		switch f {
		case "cut":
			if c.Bool(f) {
				w = append(w, "--cut")
			}
		case "for":
			w = append(w, "--for", c.Duration(f).String())
		default:
			w = append(w, "--"+f, c.String(f))
		}
	}
	return strings.Join(w, " ")
}

// report says what an apply did. It reads nothing back: Update returns only once the kernel
// has answered the whole transaction (it acknowledges the last message after all the others
// were taken and committed), or, when an answer was lost, once the
// marker read back shows the rules in force; a read-back of the whole table would add a
// millisecond and tell no more. `partition status` is the full check.
func report(rec partition.Record, desc string) error {
	fmt.Fprintf(stdout.Get(), "%s: %d blocked pair(s), %d impairment(s), committed in %d µs, in effect\n", desc, len(rec.Blocked), len(rec.Impairments), rec.CommitMicros)
	return stdout.Get().Flush()
}

func healBridge(c *cli.Context) error {
	t, err := target(c)
	if err != nil {
		return err
	}
	if err := partition.Heal(t); err != nil {
		return err
	}
	if err := names.ClearFaults(env(c), c.String("bridge"), cliSource()); err != nil {
		return err
	}
	fmt.Println("healed: every guest reaches every other one, no impairments")
	return nil
}

func partitionStatus(c *cli.Context) error {
	// Each is the whole output; given both, one would be dropped without a word.
	if c.Bool("json") && c.Bool("dot") {
		return usagef("--json and --dot each choose the whole output of %s; give one of them", c.Command.HelpName)
	}
	t, err := target(c)
	if err != nil {
		return err
	}
	rec, err := partition.Status(t)
	if err != nil {
		return err
	}
	counters, err := partition.Stats(t)
	if err != nil {
		counters = partition.Counters{Detail: err.Error()}
	}
	rec.Counters = &counters
	var faults []names.Fault
	var dnsProblem string
	// --dot draws the partition alone: it reads the DNS faults only for --check.
	if !c.Bool("dot") || c.Bool("check") {
		if faults, err = names.Faults(env(c), c.String("bridge")); err != nil {
			return err
		}
		// DNS faults are the name server's answers: with no server, no name resolves at all.
		if len(faults) > 0 {
			if st, err := names.Status(env(c), c.String("bridge")); err != nil {
				dnsProblem = "cannot tell whether the name server runs: " + err.Error()
			} else if !st.Running {
				dnsProblem = st.Problem
			}
		}
	}
	if c.Bool("dot") {
		return checked(c, rec, dnsProblem, buffered(func(out io.Writer) error { writeDot(out, &rec, newView(&rec, t.Guests)); return nil }))
	}
	// Services are shown as far as they can be read: their counters are not the partition's.
	services, _ := partition.Services(env(c), c.String("bridge"))
	if c.Bool("json") {
		return checked(c, rec, dnsProblem, printJSON(struct {
			partition.Record
			DNSFaults  []names.Fault             `json:"dns_faults,omitempty"`
			DNSProblem string                    `json:"dns_problem,omitempty"`
			Services   []partition.ServiceStatus `json:"services,omitempty"`
		}{rec, faults, dnsProblem, services}))
	}
	return checked(c, rec, dnsProblem, buffered(func(out io.Writer) error {
		w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
		printStatus(w, &rec, t.Guests)
		printDNSFaults(w, faults, dnsProblem)
		printServices(w, services)
		return w.Flush()
	}))
}

// checked is the result of status once its output (err) is written: with --check, a kernel
// that does not hold what was applied, or DNS faults without a name server, fail it.
func checked(c *cli.Context, rec partition.Record, dnsProblem string, err error) error {
	if err != nil || !c.Bool("check") {
		return err
	}
	if rec.Kernel == nil || !rec.Kernel.InEffect || dnsProblem != "" {
		return statusUnchecked
	}
	return nil
}
