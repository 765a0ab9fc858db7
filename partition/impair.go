package partition

import (
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// Impairment degrades the traffic of one guest or of one ordered pair.
//
// A guest impairment (Guest set) acts on the guest's link in both directions:
// everything the guest sends and everything delivered to it, each direction
// separately (a rate of 1mbit gives 1mbit up and 1mbit down). A pair
// impairment (Src and Dst set) acts only on packets from Src to Dst; give both
// pairs for a symmetric effect. Loss on a guest and on a pair compose (both
// draws are made); a pair's rate and netem settings override the destination
// guest's for that pair's packets.
//
// Loss is enforced by nftables (numgen) on the bridge side and needs no
// netem. Rate needs HTB. Delay, Jitter, Duplicate, Corrupt and Reorder need
// the netem qdisc; without it Apply fails with an error matching
// ErrNetemUnavailable and changes nothing. What a guest receives and every
// pair impairment are shaped on the guest's port in the bridge namespace;
// what a guest sends is shaped on its own GuestIface, so a guest impairment
// with a rate or netem settings needs Guest.NetnsPath.
type Impairment struct {
	Guest string `json:"guest,omitempty"`
	Src   string `json:"src,omitempty"`
	Dst   string `json:"dst,omitempty"`

	// Loss is the percentage (0-100) of IPv4 packets dropped.
	Loss float64 `json:"loss,omitempty"`
	// Rate limits the bandwidth in bits per second; 0 means unlimited.
	Rate Rate `json:"rate,omitempty"`
	// Delay is added to every packet (netem).
	Delay time.Duration `json:"-"`
	// Jitter varies Delay by up to plus or minus this much (netem).
	Jitter time.Duration `json:"-"`
	// Duplicate, Corrupt and Reorder are percentages 0-100 (netem). Reorder
	// sends that share of packets at once while the rest wait Delay.
	Duplicate float64 `json:"duplicate,omitempty"`
	Corrupt   float64 `json:"corrupt,omitempty"`
	Reorder   float64 `json:"reorder,omitempty"`

	// Since is when this impairment took effect; set by Apply.
	Since time.Time `json:"since,omitzero"`
}

type impairmentJSON Impairment

// MarshalJSON writes durations as Go duration strings ("150ms") so status
// output is readable.
func (im Impairment) MarshalJSON() ([]byte, error) {
	return json.Marshal(struct {
		impairmentJSON
		Delay  string `json:"delay,omitempty"`
		Jitter string `json:"jitter,omitempty"`
	}{impairmentJSON(im), durString(im.Delay), durString(im.Jitter)})
}

// UnmarshalJSON reads what MarshalJSON writes.
func (im *Impairment) UnmarshalJSON(b []byte) error {
	var aux struct {
		impairmentJSON
		Delay  string `json:"delay,omitempty"`
		Jitter string `json:"jitter,omitempty"`
	}
	if err := json.Unmarshal(b, &aux); err != nil {
		return err
	}
	*im = Impairment(aux.impairmentJSON)
	var err error
	if im.Delay, err = parseDur("delay", aux.Delay); err != nil {
		return err
	}
	im.Jitter, err = parseDur("jitter", aux.Jitter)
	return err
}

func durString(d time.Duration) string {
	if d == 0 {
		return ""
	}
	return d.String()
}

func parseDur(field, s string) (time.Duration, error) {
	if s == "" {
		return 0, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("%s: %q is not a duration; write e.g. 100ms or 1.5s", field, s)
	}
	return d, nil
}

// Target says what the impairment applies to, e.g. "guest a" or "a->b".
func (im Impairment) Target() string {
	if im.Guest != "" {
		return "guest " + im.Guest
	}
	return im.Src + "->" + im.Dst
}

// NeedsNetem reports whether any field needs the netem qdisc.
func (im Impairment) NeedsNetem() bool {
	return im.Delay > 0 || im.Jitter > 0 || im.Duplicate > 0 || im.Corrupt > 0 || im.Reorder > 0
}

// String renders the impairment's settings as CLI words, e.g.
// "loss=10% rate=1mbit guest a".
func (im Impairment) String() string {
	var parts []string
	if im.Loss > 0 {
		parts = append(parts, "loss="+fmtPercent(im.Loss))
	}
	if im.Rate > 0 {
		parts = append(parts, "rate="+im.Rate.String())
	}
	if im.Delay > 0 {
		parts = append(parts, "delay="+im.Delay.String())
	}
	if im.Jitter > 0 {
		parts = append(parts, "jitter="+im.Jitter.String())
	}
	if im.Duplicate > 0 {
		parts = append(parts, "duplicate="+fmtPercent(im.Duplicate))
	}
	if im.Corrupt > 0 {
		parts = append(parts, "corrupt="+fmtPercent(im.Corrupt))
	}
	if im.Reorder > 0 {
		parts = append(parts, "reorder="+fmtPercent(im.Reorder))
	}
	if len(parts) == 0 {
		// Every setting at zero: what `rate 0 a` leaves, the impairment's end.
		parts = append(parts, "no impairment")
	}
	return strings.Join(parts, " ") + " " + im.Target()
}

func fmtPercent(p float64) string { return strconv.FormatFloat(p, 'f', -1, 64) + "%" }

// Limits of the impairment fields.
const (
	MaxDelay = time.Minute
	// MaxJitter is what netem keeps: the kernel cuts a larger jitter to 2^31-1 ns.
	MaxJitter = math.MaxInt32 * time.Nanosecond
	MinRate   = Rate(1_000)          // 1kbit
	MaxRate   = Rate(10_000_000_000) // 10gbit: also the rate of unshaped classes
)

// validate checks ranges and combinations; guest names are checked by the
// caller against the run's guests.
func (im Impairment) validate() error {
	what := "impairment of " + im.Target()
	switch {
	case im.Guest != "" && (im.Src != "" || im.Dst != ""):
		return fmt.Errorf("impairment: set either guest or src and dst, not both (guest %q, src %q, dst %q)", im.Guest, im.Src, im.Dst)
	case im.Guest == "" && (im.Src == "" || im.Dst == ""):
		return fmt.Errorf("impairment: set guest, or both src and dst (got src %q, dst %q)", im.Src, im.Dst)
	}
	for _, f := range []struct {
		name string
		v    float64
	}{{"loss", im.Loss}, {"duplicate", im.Duplicate}, {"corrupt", im.Corrupt}, {"reorder", im.Reorder}} {
		if math.IsNaN(f.v) || f.v < 0 || f.v > 100 {
			return fmt.Errorf("%s: %s %v%% is out of range; use a percentage from 0 to 100", what, f.name, f.v)
		}
	}
	if im.Loss > 0 && lossChance(im.Loss) == 0 {
		return fmt.Errorf("%s: loss %v%% is below the resolution of %v%%; use 0 or at least %v%%", what, im.Loss, 100.0/LossScale, 100.0/LossScale)
	}
	if im.Rate != 0 && (im.Rate < MinRate || im.Rate > MaxRate) {
		return fmt.Errorf("%s: rate %s is out of range; use %s to %s, or 0 for unlimited", what, im.Rate, MinRate, MaxRate)
	}
	if im.Delay < 0 || im.Delay > MaxDelay {
		return fmt.Errorf("%s: delay %s is out of range; use 0 to %s", what, im.Delay, MaxDelay)
	}
	if im.Jitter < 0 || im.Jitter > MaxJitter {
		return fmt.Errorf("%s: jitter %s is out of range; use 0 to %s (the kernel's netem keeps no more)", what, im.Jitter, MaxJitter)
	}
	for _, f := range []struct {
		name string
		v    float64
	}{{"duplicate", im.Duplicate}, {"corrupt", im.Corrupt}, {"reorder", im.Reorder}} {
		// netem's probabilities are fractions of 2^32: a smaller one would be 0, and a
		// reorder of 0 with its gap reorders every packet.
		if f.v > 0 && uint32(f.v/100*math.MaxUint32) == 0 {
			return fmt.Errorf("%s: %s %v%% is below netem's resolution; use 0 or at least %.1g%%", what, f.name, f.v, 100.0/math.MaxUint32*2)
		}
	}
	if im.Jitter > 0 && im.Delay == 0 {
		return fmt.Errorf("%s: jitter %s needs a delay; set delay too (jitter varies the delay)", what, im.Jitter)
	}
	if im.Reorder > 0 && im.Delay == 0 {
		return fmt.Errorf("%s: reorder %v%% needs a delay; set delay too (reordered packets skip the delay)", what, im.Reorder)
	}
	return nil
}

// Rate is a bandwidth in bits per second.
type Rate uint64

var rateUnits = []struct {
	suffix string
	mult   float64
}{
	// Longest suffixes first so "kbit" is not read as "bit".
	{"kibit", 1 << 10}, {"mibit", 1 << 20}, {"gibit", 1 << 30},
	{"kbit", 1e3}, {"mbit", 1e6}, {"gbit", 1e9}, {"tbit", 1e12},
	{"kbps", 8e3}, {"mbps", 8e6}, {"gbps", 8e9},
	{"bit", 1}, {"bps", 8},
}

// ParseRate reads a rate written as tc does: a number and a unit, e.g.
// "1mbit", "512kbit", "1.5gbit", "100kbps" (bytes per second) or "2mibit".
func ParseRate(s string) (Rate, error) {
	in := strings.ToLower(strings.TrimSpace(s))
	if in == "0" {
		return 0, nil // unlimited, as the range check's advice says; no unit makes sense of it
	}
	for _, u := range rateUnits {
		num, ok := strings.CutSuffix(in, u.suffix)
		if !ok {
			continue
		}
		v, err := strconv.ParseFloat(num, 64)
		if err != nil || math.IsNaN(v) || math.IsInf(v, 0) || v < 0 {
			return 0, fmt.Errorf("rate %q: %q is not a non-negative number", s, num)
		}
		bits := v * u.mult
		if bits > float64(math.MaxUint64/2) {
			return 0, fmt.Errorf("rate %q is too large; the maximum is %s", s, MaxRate)
		}
		return Rate(math.Round(bits)), nil
	}
	return 0, fmt.Errorf("rate %q: missing or unknown unit; write a number and one of bit, kbit, mbit, gbit, tbit, kibit, mibit, gibit (bits/s) or bps, kbps, mbps, gbps (bytes/s), e.g. 1mbit", s)
}

// String writes the rate with the largest SI bit unit that keeps it exact.
func (r Rate) String() string {
	for _, u := range []struct {
		suffix string
		mult   uint64
	}{{"tbit", 1e12}, {"gbit", 1e9}, {"mbit", 1e6}, {"kbit", 1e3}} {
		if uint64(r) >= u.mult && uint64(r)%u.mult == 0 {
			return strconv.FormatUint(uint64(r)/u.mult, 10) + u.suffix
		}
	}
	return strconv.FormatUint(uint64(r), 10) + "bit"
}

// MarshalText writes the rate as String does.
func (r Rate) MarshalText() ([]byte, error) { return []byte(r.String()), nil }

// UnmarshalText reads a rate as ParseRate does.
func (r *Rate) UnmarshalText(b []byte) error {
	v, err := ParseRate(string(b))
	if err != nil {
		return err
	}
	*r = v
	return nil
}
