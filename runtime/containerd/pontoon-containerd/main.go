// Command pontoon-containerd runs one container in containerd like `runc run` runs one from
// a bundle; pontoon's containerd runtime drives it. See package runtime/containerd.
package main

import (
	"os"

	"github.com/pontoon-dev/pontoon/runtime/containerd"
)

func main() {
	os.Exit(containerd.Main(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}
