package main

import (
	"errors"
	"strings"
	"testing"
)

// TestDurationFlagMistakes reproduces `--for 99999999h` and `--for 5`, which the flag
// package refused with only "parse error": the usage error names the flag and says what is
// wrong with the value.
func TestDurationFlagMistakes(t *testing.T) {
	for _, tc := range []struct {
		argv []string
		want string
	}{
		{[]string{"partition", "isolate", "n1", "--bridge", "B", "--for", "99999999h"}, `--for: "99999999h" is out of range: a duration is at most about 2562047h`},
		{[]string{"partition", "isolate", "n1", "--bridge", "B", "--for=-99999999h"}, `--for: "-99999999h" is out of range`},
		{[]string{"partition", "isolate", "n1", "--bridge", "B", "--for", "5"}, `--for: "5" has no unit; write e.g. --for 5s`},
		{[]string{"partition", "loss", "10", "n1", "--bridge", "B", "--for", "1.5"}, `--for: "1.5" has no unit; write e.g. --for 1.5s`},
		{[]string{"partition", "isolate", "n1", "--bridge", "B", "--for", "soon"}, `--for: "soon" is not a duration; write a number with a unit, e.g. --for 30s`},
		{[]string{"partition", "isolate", "n1", "--bridge", "B", "--for", "5x"}, `--for: "5x" is not a duration`},
		{[]string{"run", "test", "--stop-timeout", "1000000000h"}, `--stop-timeout: "1000000000h" is out of range`},
		{[]string{"capture", "b", "--duration", "3000000h"}, `--duration: "3000000h" is out of range`},
	} {
		_, err := parse(tc.argv...)
		var ue usageError
		if !errors.As(err, &ue) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("pontoon %s: %v; want a usage error saying %s", strings.Join(tc.argv, " "), err, tc.want)
		}
	}
	// Other flags' refusals are the flag package's own.
	if _, err := parse("partition", "isolate", "n1", "--bridge", "B", "--cut=maybe"); err == nil || !strings.Contains(err.Error(), `invalid boolean value "maybe" for -cut`) {
		t.Errorf("--cut=maybe: %v", err)
	}
}

func TestDurationNanos(t *testing.T) {
	for s, want := range map[string]float64{"1h": 3600e9, "1h30m": 5400e9, "-1.5s": -1.5e9, "+2ms": 2e6, "3µs": 3e3, ".5m": 30e9} {
		if got, ok := durationNanos(s); !ok || got != want {
			t.Errorf("durationNanos(%q) = %v, %v; want %v", s, got, ok, want)
		}
	}
	for _, s := range []string{"", "-", "5", "h", "5x", "1..2s", "1h 2m", "1e3s"} {
		if got, ok := durationNanos(s); ok {
			t.Errorf("durationNanos(%q) = %v; want it refused", s, got)
		}
	}
}
