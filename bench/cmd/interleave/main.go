// Command interleave times commands side by side for bench/compare.sh: one run of each in
// turn, round after round, so that a change of load on the machine during the row hits every
// command alike (timing one command's runs and then the next one's lets a drift decide a ratio
// of a few percent). A command's prepare command runs before each of its runs, untimed.
// Commands run without a shell, their output discarded; a failing command stops it.
//
//	interleave -runs N -warmup W [-p PREPARE] -n LABEL CMD [[-p PREPARE] -n LABEL CMD]...
//
// prints one line per command: LABEL MEDIAN MIN MAX, in milliseconds.
//
// With -rtnl WINDOW it prints instead how long the kernel held its rtnl lock in the WINDOW after
// each command had exited, summed: work a command leaves the kernel to do after it returns (the
// removal of a namespace) that stalls the next netlink request of anyone on the machine.
package main

import (
	"flag"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strings"
	"time"
)

type command struct {
	label, prepare, run string
	times               []time.Duration
}

func main() {
	runs := flag.Int("runs", 20, "timed runs of each command")
	warmup := flag.Int("warmup", 3, "untimed rounds first")
	window := flag.Duration("rtnl", 0, "measure the rtnl lock held after each command, for this long, instead of the command's time")
	// The commands start at the first -p or -n, which are not flags of this program.
	args := os.Args[1:]
	k := slices.IndexFunc(args, func(a string) bool { return a == "-p" || a == "-n" })
	if k < 0 {
		k = len(args)
	}
	_ = flag.CommandLine.Parse(args[:k])
	cmds, err := parse(args[k:])
	if err != nil {
		fmt.Fprintln(os.Stderr, "interleave:", err)
		os.Exit(2)
	}
	devnull, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	if err != nil {
		fmt.Fprintln(os.Stderr, "interleave:", err)
		os.Exit(1)
	}
	var probe *rtnlProbe
	if *window > 0 {
		if probe, err = newRTNLProbe(); err != nil {
			fmt.Fprintln(os.Stderr, "interleave:", err)
			os.Exit(1)
		}
	}
	for round := range *runs + *warmup {
		for _, c := range cmds {
			if c.prepare != "" {
				if _, err := run(c.prepare, devnull); err != nil {
					fail(c.prepare, err)
				}
			}
			d, err := run(c.run, devnull)
			if err != nil {
				fail(c.run, err)
			}
			if probe != nil {
				d = probe.held(*window)
			}
			if round >= *warmup {
				c.times = append(c.times, d)
			}
		}
	}
	for _, c := range cmds {
		slices.Sort(c.times)
		ms := func(d time.Duration) float64 { return float64(d.Nanoseconds()) / 1e6 }
		fmt.Printf("%s %.4f %.4f %.4f\n", c.label, ms(c.times[len(c.times)/2]), ms(c.times[0]), ms(c.times[len(c.times)-1]))
	}
}

func parse(args []string) ([]*command, error) {
	var cmds []*command
	cur := &command{}
	for i := 0; i < len(args); i++ {
		switch a := args[i]; {
		case a == "-p" || a == "-n":
			if i+1 == len(args) {
				return nil, fmt.Errorf("%s needs a value", a)
			}
			if a == "-p" {
				cur.prepare = args[i+1]
			} else {
				cur.label = args[i+1]
			}
			i++
		case cur.label == "":
			return nil, fmt.Errorf("command %q has no label (-n LABEL before it)", a)
		default:
			cur.run = a
			cmds = append(cmds, cur)
			cur = &command{}
		}
	}
	if len(cmds) == 0 {
		return nil, fmt.Errorf("no command to time")
	}
	return cmds, nil
}

// run runs a command line split at spaces and returns how long it took from start to exit.
func run(line string, devnull *os.File) (time.Duration, error) {
	f := strings.Fields(line)
	cmd := exec.Command(f[0], f[1:]...)
	cmd.Stdout = devnull
	var stderr strings.Builder
	cmd.Stderr = &stderr
	t0 := time.Now()
	err := cmd.Run()
	d := time.Since(t0)
	if err != nil {
		return 0, fmt.Errorf("%w: %s", err, stderr.String())
	}
	return d, nil
}

func fail(line string, err error) {
	fmt.Fprintf(os.Stderr, "interleave: %s: %v\n", line, err)
	os.Exit(1)
}
