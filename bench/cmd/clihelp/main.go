// Command clihelp is the yardstick beside bench/cmd/trivial in bench/compare.sh's start-up
// rows: the smallest program on the command-line module pontoon is built on (urfave/cli/v2),
// with one command, printing its help. Its start is what any command line on that module costs
// before it has any command of its own.
package main

import (
	"os"

	"github.com/urfave/cli/v2"
)

func main() {
	app := &cli.App{Name: "clihelp", Usage: "the start of a urfave/cli/v2 program",
		Commands: []*cli.Command{{Name: "noop", Usage: "does nothing", Action: func(*cli.Context) error { return nil }}}}
	if err := app.Run(os.Args); err != nil {
		os.Exit(1)
	}
}
