// Package advice turns the errors of pontoon's packages into what a person at a shell can
// do about them. The packages' errors say what went wrong; the pontoon command and the OCI
// hook, which know they talk to a person, add the next step from here.
package advice

import (
	"errors"
	"fmt"
	"os"

	"github.com/pontoon-dev/pontoon/internal/lazy"
	"github.com/pontoon-dev/pontoon/internal/userns"
	"github.com/pontoon-dev/pontoon/netsetup"
	"github.com/pontoon-dev/pontoon/partition"
)

type entry struct {
	err    error
	advice string
}

// table is built on first use: the errors it names are values other packages build at
// start-up, and only a failed command reads it.
var table = lazy.Value[[]entry]{Build: func() []entry {
	return []entry{
		{netsetup.ErrNoGateway, "run `pontoon gateway up` (as root) first"},
		{netsetup.ErrNoBridge, "`pontoon bridge list` shows the bridges there are; `pontoon bridge create NAME` makes one"},
		{netsetup.ErrBridgeExists, "pick another name, or remove the old bridge with `pontoon bridge destroy NAME`"},
		{netsetup.ErrNoSlot, "destroy unused bridges, or run `pontoon gc` to remove those of runs that are gone"},
		{netsetup.ErrBusy, "wait for the other pontoon command to finish; if it was killed, `pontoon gc` finishes or removes what it left"},
		{netsetup.ErrGatewayPlan, "ask for the plan it has: leave out --subnet, --subnet6 and --ipv4-only (the gateway keeps what it has), or run `pontoon gateway down` first"},
		{netsetup.ErrGatewayInUse, "destroy them (`pontoon bridge destroy NAME`), or use `pontoon gateway down --force`"},
		{partition.ErrTableMixed, "run `pontoon partition heal` to reset the partition table"},
	}
}}

// Exit ends a pontoon command that failed with err: it prints err and its advice to standard
// error and exits with status 2 for refused input (usage) and 1 otherwise.
func Exit(err error, usage bool) {
	fmt.Fprintf(os.Stderr, "pontoon: %v\n", err)
	if a := For(err); a != "" {
		fmt.Fprintf(os.Stderr, "pontoon: %s\n", a)
	}
	if usage {
		os.Exit(2)
	}
	os.Exit(1)
}

// inSpace reports whether this process runs as root of a user namespace (a user's pontoon
// space, or a test binary's): there the user brings the gateway up themselves.
var inSpace = userns.Inside

// spaceAdvice replaces an advice of table in a user namespace, where it would send the user
// to root for what they do themselves.
func spaceAdvice(err error) (string, bool) {
	if err == netsetup.ErrNoGateway {
		return "run `pontoon gateway up` first (as yourself: in your pontoon space it needs no root)", true
	}
	return "", false
}

// For returns the advice for err, or "" when there is none.
func For(err error) string {
	for _, a := range table.Get() {
		if errors.Is(err, a.err) {
			if s, ok := spaceAdvice(a.err); ok && inSpace() {
				return s
			}
			return a.advice
		}
	}
	var fe *partition.FeatureError
	if errors.As(err, &fe) {
		return featureAdvice(fe.Feature)
	}
	return ""
}

// stockFeature reports whether a feature a partition.FeatureError may name is one that
// Debian 12's stock kernel (linux-image-amd64, 6.1) has, built in or as modules. It lacks
// nft_reject_netdev.
func stockFeature(feature string) bool {
	switch feature {
	case "sch_netem", "sch_htb", "nft_reject_bridge", "inet_diag_destroy":
		return true
	}
	return false
}

func featureAdvice(feature string) string {
	switch {
	case feature == "nft_reject_netdev":
		// pontoon asks for netdev reject only when the bridge family cannot reject either.
		return "this kernel can reject neither in the netdev nor in the bridge family; on a kernel that can in the bridge family, " +
			"such as Debian's stock kernel (`make test-vm` runs the suite on one), pontoon uses a bridge table by itself; " +
			"drop mode without cut needs neither"
	case stockFeature(feature):
		return "this kernel cannot do that; use a kernel that has it (Debian's stock kernel does; `make test-vm` runs the suite on one)"
	default:
		return "this kernel cannot do that; use a kernel built with it"
	}
}
