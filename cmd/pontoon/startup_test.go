package main

import (
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
)

// TestStartupWorkStaysLazy: the package initialisers of the pontoon binary, which every
// command, hook call and name server runs before anything else, build almost nothing. A
// package-level map, schema or call costs each start-up its allocations and the faults on
// the pages they touch; values that only some commands read are built on first use
// (internal/lazy, a function, a switch). The Go runtime reports what each initialiser
// allocated (GODEBUG=inittrace=1), the same on every run.
func TestStartupWorkStaysLazy(t *testing.T) {
	const perPackage, total = 5, 25
	cmd := exec.Command(binary, "--help")
	cmd.Env = append(os.Environ(), "GODEBUG=inittrace=1")
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil || !strings.Contains(string(out), "USAGE:") {
		t.Fatalf("pontoon --help: %v\n%s%s", err, out, stderr.String())
	}
	sum, seen := 0, 0
	for _, line := range strings.Split(stderr.String(), "\n") {
		// init PACKAGE @T ms, T ms clock, N bytes, M allocs
		f := strings.Fields(line)
		if len(f) != 11 || f[0] != "init" || f[10] != "allocs" {
			continue
		}
		seen++
		pkg := f[1]
		if pkg != "main" && !strings.HasPrefix(pkg, "github.com/pontoon-dev/pontoon/") {
			continue
		}
		n, err := strconv.Atoi(f[9])
		if err != nil {
			t.Fatalf("allocations of %q: %v", line, err)
		}
		sum += n
		if n > perPackage {
			t.Errorf("%s makes %d allocations when the binary starts (at most %d): build what only some commands need on first use", pkg, n, perPackage)
		}
	}
	if seen == 0 {
		t.Fatalf("no initialiser reported; stderr:\n%s", stderr.String())
	}
	if sum > total {
		t.Errorf("pontoon's packages make %d allocations when the binary starts (at most %d)", sum, total)
	}
}
