package kvstore

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
)

// CheckReport is the outcome of Check.
type CheckReport struct {
	// Addr is the node the check went through.
	Addr string
	// Keys is the number of keys the check tried to write.
	Keys int
	// Written counts acknowledged writes.
	Written int
	// Verified counts acknowledged keys read back with the written value.
	Verified int
	// Failures describes every failed write, read or mismatch, in order.
	Failures []string
	// Elapsed is the wall time of the whole check.
	Elapsed time.Duration
}

// OK reports whether every key was written and read back intact.
func (r CheckReport) OK() bool { return r.Keys > 0 && r.Verified == r.Keys }

// String is a short human summary: one line, plus up to three failures.
func (r CheckReport) String() string {
	var b strings.Builder
	if r.OK() {
		fmt.Fprintf(&b, "check ok: %d of %d keys written and read back via %s in %v",
			r.Verified, r.Keys, r.Addr, r.Elapsed.Round(time.Millisecond))
		return b.String()
	}
	fmt.Fprintf(&b, "check FAILED: %d of %d keys written, %d read back intact via %s in %v",
		r.Written, r.Keys, r.Verified, r.Addr, r.Elapsed.Round(time.Millisecond))
	for i, f := range r.Failures {
		if i == 3 {
			fmt.Fprintf(&b, "\n  ... and %d more", len(r.Failures)-3)
			break
		}
		b.WriteString("\n  ")
		b.WriteString(f)
	}
	return b.String()
}

// Check writes n keys "<prefix>-0" .. "<prefix>-<n-1>" through c, each with a
// value unique to this run, then reads every acknowledged key back and
// compares. It returns an error when any key failed; the report says which.
func Check(ctx context.Context, c *Client, n int, prefix string) (CheckReport, error) {
	if n < 1 {
		return CheckReport{}, fmt.Errorf("check key count %d: want at least 1", n)
	}
	if prefix == "" {
		return CheckReport{}, errors.New("check key prefix is empty; give a prefix such as \"check\"")
	}
	start := time.Now()
	run := start.UnixNano() // makes values differ between runs, so stale data cannot pass
	r := CheckReport{Addr: c.Addr(), Keys: n}
	want := make(map[string]string, n)
	keys := make([]string, 0, n)
	for i := range n {
		key := fmt.Sprintf("%s-%d", prefix, i)
		val := fmt.Sprintf("%s-%d@%d", prefix, i, run)
		if _, err := c.Put(ctx, key, val); err != nil {
			r.Failures = append(r.Failures, err.Error())
			continue
		}
		r.Written++
		want[key] = val
		keys = append(keys, key)
	}
	for _, key := range keys {
		e, err := c.Get(ctx, key)
		switch {
		case err != nil:
			r.Failures = append(r.Failures, err.Error())
		case e.Value != want[key]:
			r.Failures = append(r.Failures, fmt.Sprintf("get %q: value %q, want %q", key, e.Value, want[key]))
		default:
			r.Verified++
		}
	}
	r.Elapsed = time.Since(start)
	if !r.OK() {
		return r, fmt.Errorf("check via %s: %d of %d keys failed", r.Addr, r.Keys-r.Verified, r.Keys)
	}
	return r, nil
}
