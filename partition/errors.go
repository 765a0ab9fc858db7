package partition

import (
	"errors"
	"fmt"
	"strings"

	"github.com/pontoon-dev/pontoon/internal/lazy"
)

// FeatureError reports that the running kernel lacks something an impairment
// or a partition needs. Callers branch on it with errors.Is against one of the
// Err* sentinels below (or errors.As to read the feature name) to tell the user
// plainly what is missing instead of showing a raw netlink errno.
type FeatureError struct {
	// Feature is the kernel feature's usual name, e.g. "sch_netem".
	Feature string
	// Need says what asked for the feature, e.g. "delay on guest a".
	Need string
	// Err is the kernel's answer when the feature was probed.
	Err error
}

// Error names the missing feature, what needed it and how to get it.
func (e *FeatureError) Error() string {
	msg := fmt.Sprintf("kernel feature %s is not available", e.Feature)
	if e.Need != "" {
		msg += " (needed for " + e.Need + ")"
	}
	if hint := featureHints.Get()[e.Feature]; hint != "" {
		msg += "; " + hint
	}
	if e.Err != nil {
		msg += ": " + e.Err.Error()
	}
	return msg
}

// Unwrap returns the kernel error the probe got.
func (e *FeatureError) Unwrap() error { return e.Err }

// Is makes errors.Is(err, ErrNetemUnavailable) (and the other sentinels) true
// for a FeatureError naming the same feature, whatever its Need and Err.
// ErrRejectUnavailable matches both nft_reject_netdev and nft_reject_bridge.
func (e *FeatureError) Is(target error) bool {
	t, ok := target.(*FeatureError)
	if !ok || t.Need != "" || t.Err != nil {
		return false
	}
	return t.Feature == e.Feature || t.Feature == rejectAny && strings.HasPrefix(e.Feature, rejectAny+"_")
}

var featureHints = lazy.Value[map[string]string]{Build: func() map[string]string {
	return map[string]string{
		"sch_netem": "delay, jitter, duplicate, corrupt and reorder need a kernel with CONFIG_NET_SCH_NETEM (loss and rate work without it)",
		"sch_htb":   "rate limits need a kernel with CONFIG_NET_SCH_HTB",
		"nft_reject_netdev": "rejecting blocked packets (reject mode, and the resets of Cut) on the netdev table needs CONFIG_NFT_REJECT_NETDEV; " +
			"on a kernel with CONFIG_NFT_BRIDGE_REJECT instead (Debian 12's) pontoon uses a bridge table by itself; drop mode without Cut works without either",
		"nft_reject_bridge": "rejecting blocked packets (reject mode, and the resets of Cut) on the bridge table needs CONFIG_NFT_BRIDGE_REJECT; " +
			"drop mode without Cut works without it",
		"inet_diag_destroy": "closing open connections at once needs CONFIG_INET_DIAG_DESTROY (they are still reset on their next segment)",
	}
}}

// Sentinels for errors.Is. They carry only the feature name.
var (
	// ErrNetemUnavailable: the kernel has no netem qdisc (CONFIG_NET_SCH_NETEM).
	ErrNetemUnavailable = &FeatureError{Feature: "sch_netem"}
	// ErrHTBUnavailable: the kernel has no HTB qdisc (CONFIG_NET_SCH_HTB).
	ErrHTBUnavailable = &FeatureError{Feature: "sch_htb"}
	// ErrRejectUnavailable: the kernel cannot reject in the family of the
	// partition table's backend (nft_reject_netdev or nft_reject_bridge), so
	// reject mode and Cut are refused; drop mode works.
	ErrRejectUnavailable = &FeatureError{Feature: rejectAny}
)

// ErrNetemDuplicateMix: the kernel refused a netem that duplicates packets beside another
// netem on one device. Some kernels of 2025-2026 (Debian 12's 6.1.0-57 among them) carry
// that check, since reverted upstream; a guest's own netem settings and those of each pair
// towards it are netems of one device (the guest's port), and a guest's duplicate goes into
// each of its pairs' netems too.
var ErrNetemDuplicateMix = errors.New("this kernel refuses a netem that duplicates packets beside another netem on one device")

// rejectAny is the Feature of ErrRejectUnavailable; a FeatureError names the
// module of its backend's family, rejectAny + "_" + family.
const rejectAny = "nft_reject"

// ErrSuperseded is returned by ApplyFor when, at the end of its duration, the
// applied state is no longer the one it applied (someone applied or healed in
// between); it then leaves the newer state alone instead of restoring.
var ErrSuperseded = errors.New("partition state was changed by another apply before the duration ended; not restoring")
