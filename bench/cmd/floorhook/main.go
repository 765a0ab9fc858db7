// Command floorhook is the floor under pontoon's container hook in make bench: a Go process
// that an engine could run as its create-runtime hook, doing the kernel's part of pontoon's
// attach (bench/internal/floor) and nothing else. It reads the container's state on stdin
// as a hook does, and takes everything else as arguments, so it reads no file:
//
//	floorhook create-runtime BRIDGE-NETNS PORT MAC ADDR VIA LL6 ADDR6 VIA6 BRIDGE-DEV IF PING-GROUPS
//	floorhook poststop BRIDGE-NETNS PORT
package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"

	"github.com/pontoon-dev/pontoon/bench/internal/floor"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "floorhook:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	if len(args) < 3 {
		return errors.New("usage: floorhook create-runtime|poststop BRIDGE-NETNS PORT ...")
	}
	switch args[0] {
	case "create-runtime":
		var state struct {
			Pid int `json:"pid"`
		}
		if err := json.NewDecoder(os.Stdin).Decode(&state); err != nil {
			return fmt.Errorf("read the container's state on stdin: %w", err)
		}
		if state.Pid <= 0 {
			return errors.New("the container's state on stdin has no pid")
		}
		g, err := floor.ParseGuest(args[2:])
		if err != nil {
			return err
		}
		return floor.Attach(args[1], fmt.Sprintf("/proc/%d/ns/net", state.Pid), g)
	case "poststop":
		return floor.Detach(args[1], args[2])
	}
	return fmt.Errorf("unknown stage %q", args[0])
}
