package main

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/pontoon-dev/pontoon/runtime/config"
	"github.com/urfave/cli/v2"
)

// durationFlagError rewords the flag package's refusal of a duration flag's value, which says
// only `invalid value "5" for flag -for: parse error`, to name the flag, say what is wrong
// with the value and how to write it. Any other error is returned as it is.
func durationFlagError(c *cli.Context, err error) error {
	rest, ok := strings.CutPrefix(err.Error(), "invalid value ")
	if !ok {
		return err
	}
	if rest, ok = strings.CutSuffix(rest, ": parse error"); !ok {
		return err
	}
	const forFlag = " for flag -"
	i := strings.LastIndex(rest, forFlag)
	if i < 0 {
		return err
	}
	value, uerr := strconv.Unquote(rest[:i])
	name := rest[i+len(forFlag):]
	if uerr != nil || !isDurationFlag(c, name) {
		return err
	}
	flag := "--" + name
	if len(name) == 1 {
		flag = "-" + name
	}
	return errors.New(flag + ": " + durationMistake(flag, value))
}

// isDurationFlag reports whether name is a duration flag of the command c parsed for.
func isDurationFlag(c *cli.Context, name string) bool {
	var flags []cli.Flag
	if c.Command != nil {
		flags = c.Command.Flags
	}
	if c.App != nil {
		flags = append(slices.Clip(flags), c.App.Flags...)
	}
	for _, f := range flags {
		if _, ok := unwrapped(f).(*cli.DurationFlag); ok && hasName(f, name) {
			return true
		}
	}
	return false
}

// maxDurationHours is the whole hours of the longest time.Duration (about 292 years).
var maxDurationHours = int64(time.Duration(math.MaxInt64) / time.Hour)

// durationMistake says what is wrong with value, which time.ParseDuration refused, as the
// value of flag.
func durationMistake(flag, value string) string {
	const units = "units: ms, s, m, h"
	if config.MissingUnit(value) {
		return fmt.Sprintf("%q has no unit; write e.g. %s %ss (%s)", value, flag, value, units)
	}
	// time.ParseDuration says "invalid duration" for a value too long as for one that is no
	// duration at all.
	if ns, ok := durationNanos(value); ok && math.Abs(ns) > math.MaxInt64 {
		return fmt.Sprintf("%q is out of range: a duration is at most about %dh (292 years)", value, maxDurationHours)
	}
	return fmt.Sprintf("%q is not a duration; write a number with a unit, e.g. %s 30s (%s)", value, flag, units)
}

// durationNanos reads s in the syntax of time.ParseDuration, in floating point so that a
// value too long for a time.Duration still reads; ok is false when s is not in that syntax.
func durationNanos(s string) (ns float64, ok bool) {
	units := map[string]float64{"ns": 1, "us": 1e3, "µs": 1e3, "μs": 1e3, "ms": 1e6, "s": 1e9, "m": 60e9, "h": 3600e9}
	sign := 1.0
	if rest, neg := strings.CutPrefix(s, "-"); neg {
		s, sign = rest, -1
	} else {
		s = strings.TrimPrefix(s, "+")
	}
	if s == "" {
		return 0, false
	}
	isNum := func(b byte) bool { return b == '.' || '0' <= b && b <= '9' }
	for s != "" {
		i := 0
		for i < len(s) && isNum(s[i]) {
			i++
		}
		j := i
		for j < len(s) && !isNum(s[j]) {
			j++
		}
		n, err := strconv.ParseFloat(s[:i], 64)
		u, known := units[s[i:j]]
		if i == 0 || err != nil || !known {
			return 0, false
		}
		ns += n * u
		s = s[j:]
	}
	return sign * ns, true
}
