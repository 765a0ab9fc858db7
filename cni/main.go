package cni

import (
	"errors"
	"fmt"
	"os"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"
	"github.com/containernetworking/cni/pkg/version"
	"github.com/pontoon-dev/pontoon/internal/nftpool"
	"github.com/pontoon-dev/pontoon/netsetup"
)

// About is what the plugin says when run by hand.
const About = "pontoon-cni: attaches containers to pontoon bridges, where partitions and impairments apply to them"

// Main runs the plugin: the command comes from CNI_COMMAND, the configuration from stdin,
// and where pontoon keeps its state from the PONTOON_* variables (as for the pontoon CLI).
func Main() {
	env := netsetup.EnvFromEnviron(os.Environ())
	// The name server of a bridge an ADD found without one (ensureNames): started as this
	// executable with `names serve`'s command line, it serves until its bridge goes.
	if s, ok := parseNameServer(env, os.Args[1:]); ok {
		if err := s.serve(); err != nil {
			fmt.Fprintf(os.Stderr, "pontoon-cni: %v\n", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	skel.PluginMainFuncs(skel.CNIFuncs{
		Add: func(args *skel.CmdArgs) error {
			res, conf, err := Add(env, args)
			if err != nil {
				return cniError(err)
			}
			return types.PrintResult(res, conf.CNIVersion)
		},
		Del:    func(args *skel.CmdArgs) error { return cniError(Del(env, args)) },
		Check:  func(args *skel.CmdArgs) error { return cniError(Check(env, args)) },
		GC:     func(args *skel.CmdArgs) error { return cniError(GC(env, args)) },
		Status: func(args *skel.CmdArgs) error { return cniError(Status(env, args)) },
	}, version.VersionsStartingFrom("0.3.0"), About)
	// The runtime waits for the plugin: not for the kernel's clean-up after a rewritten
	// forward or a partition refresh (nftpool.Linger). skel exits by itself on an error.
	_ = nftpool.Linger()
}

// cniError gives an error the code the CNI specification assigns to its kind.
func cniError(err error) error {
	var ce *ConfigError
	var te *types.Error
	var de *DriftError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &te):
		return te
	case errors.As(err, &ce) && ce.envVar():
		return types.NewError(types.ErrInvalidEnvironmentVariables, ce.Error(), "")
	case errors.As(err, &ce):
		return types.NewError(types.ErrInvalidNetworkConfig, ce.Error(), "")
	case errors.Is(err, netsetup.ErrBusy):
		return types.NewError(types.ErrTryAgainLater, err.Error(), "")
	case errors.As(err, &de) && de.Detached:
		return types.NewError(types.ErrUnknownContainer, de.Error(), "")
	}
	return types.NewError(types.ErrInternal, err.Error(), "")
}
