package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"

	"github.com/urfave/cli/v2"
)

func captureCommand() *cli.Command {
	return &cli.Command{
		Name:      "capture",
		Usage:     usageOf("capture"),
		ArgsUsage: "BRIDGE [GUEST..]",
		Description: "Captures on each guest's bridge port until Ctrl-C, --duration or --count. A frame the partition\n" +
			"drops is on its sender's interface only; one that passed is on the sender's and the receiver's.",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "write", Aliases: []string{"w"}, Usage: "write pcapng to `FILE` (tcpdump -r and Wireshark read it; - for standard output)"},
			&cli.DurationFlag{Name: "duration", Usage: "stop after `DURATION` (e.g. 30s)", DefaultText: "until Ctrl-C"},
			&cli.IntFlag{Name: "count", Usage: "stop after `N` packets in all", DefaultText: "no limit"},
		},
		Action: runCapture,
	}
}

func runCapture(c *cli.Context) error {
	if c.NArg() < 1 {
		return usagef("capture needs a bridge: `pontoon capture BRIDGE [GUEST..] -w FILE.pcapng`")
	}
	if err := required(c, "write", "out.pcapng"); err != nil {
		return err
	}
	duration, count := c.Duration("duration"), c.Int("count")
	// Zero is what an absent flag reads as (no limit); written out, it is a mistake.
	if duration < 0 || duration == 0 && c.IsSet("duration") {
		return usagef("--duration %s: give a positive duration, or leave --duration out to capture until Ctrl-C", duration)
	}
	if count < 0 || count == 0 && c.IsSet("count") {
		return usagef("--count %d: give a positive number of packets, or leave --count out to capture until Ctrl-C", count)
	}
	if w := c.String("write"); w != "-" {
		if st, err := os.Stat(w); err == nil && st.IsDir() {
			return usagef("-w %s is a directory; give the file to write, e.g. -w %s", w, filepath.Join(w, "capture.pcapng"))
		}
	}
	// The capture itself is pontoon-capture's (see there why).
	bin, err := companion("pontoon-capture")
	if err != nil {
		return err
	}
	argv := []string{"pontoon capture", "-w", c.String("write"), "--duration", duration.String(), "--count", strconv.Itoa(count), "--"}
	argv = append(argv, c.Args().Slice()...)
	environ := append(os.Environ(), env(c).Environ()...)
	return fmt.Errorf("run %s: %w", bin, syscall.Exec(bin, argv, environ))
}

// companion finds one of pontoon's other binaries: beside this one (where `make build`
// puts them), else on the PATH.
func companion(name string) (string, error) {
	if self, err := os.Executable(); err == nil {
		p := filepath.Join(filepath.Dir(self), name)
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	p, err := exec.LookPath(name)
	if err != nil {
		return "", fmt.Errorf("%s is neither beside %s nor on the PATH: build it with `make build`", name, os.Args[0])
	}
	return p, nil
}
