// Command trivial is the yardstick of bench/compare.sh's start-up rows: a static Go binary
// that writes one line and exits, what any Go command costs before it does anything.
package main

import "os"

func main() { os.Stdout.WriteString("trivial\n") }
