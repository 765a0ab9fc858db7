// Command pontoon-cni is pontoon's CNI plugin (CNI 1.1: ADD, DEL, CHECK, STATUS, GC,
// VERSION). Install it in the runtime's CNI bin directory; package cni documents the
// configuration.
package main

import "github.com/pontoon-dev/pontoon/cni"

func main() { cni.Main() }
