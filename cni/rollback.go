package cni

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/containernetworking/cni/pkg/types"
	"github.com/pontoon-dev/pontoon/internal/kernel"
	"github.com/pontoon-dev/pontoon/internal/statefile"
	"github.com/pontoon-dev/pontoon/names"
	"github.com/pontoon-dev/pontoon/netsetup"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// checkNetns refuses, before anything is created, a namespace ADD cannot attach: one that
// does not exist or is not a network namespace, the host's or pontoon's own, and one that
// has the interface already. The specification requires the error for the last: a runtime
// that repeats an ADD must get it rather than see the first attachment replaced.
func checkNetns(env netsetup.Env, path, ifName string) error {
	if err := netsetup.CheckNotHost(env, path); err != nil {
		return types.NewError(types.ErrInvalidEnvironmentVariables, fmt.Sprintf("CNI_NETNS %s: %v", path, err), "")
	}
	h, err := kernel.OpenNS(path)
	if err != nil {
		return types.NewError(types.ErrInvalidEnvironmentVariables, fmt.Sprintf("CNI_NETNS %s is not a network namespace: %v", path, err), "")
	}
	defer h.Close()
	_, err = h.LinkByName(ifName)
	var notFound netlink.LinkNotFoundError
	switch {
	case errors.As(err, &notFound):
		return nil
	case err != nil:
		return fmt.Errorf("look for %s in namespace %s: %w", ifName, path, err)
	}
	return fmt.Errorf("namespace %s already has an interface %s: a container is attached once per interface; DEL the attachment first", path, ifName)
}

// made records what an ADD created on its way to the attach, so that a failure removes it.
type made struct{ gateway, bridge bool }

// netLock is held shared by every ADD from the moment it looks at the gateway and bridge
// until its guest is recorded, and exclusively by an ADD removing what it created. So the
// removal never pulls a bridge from under another ADD that found it and is about to attach.
// Its file (netsetup.CNILock) is one of the state directory's side locks: gc and gateway
// down remove it with the directory once nothing else is left and nobody holds it.
type netLock struct {
	f    *os.File
	path string
}

func lockNetwork(env netsetup.Env) (*netLock, error) {
	state, _ := env.Dirs()
	path := filepath.Join(state, netsetup.CNILock)
	f, err := statefile.LockShared(path)
	if err != nil {
		return nil, err
	}
	return &netLock{f: f, path: path}, nil
}

func flock(f *os.File, how int) error {
	for {
		if err := unix.Flock(int(f.Fd()), how); !errors.Is(err, unix.EINTR) {
			return err
		}
	}
}

func (l *netLock) release() {
	if l != nil && l.f != nil {
		l.f.Close()
		l.f = nil
	}
}

// rollbackWait bounds how long a failed ADD waits for the ADDs in flight before it removes
// what it created; ADDs that keep the network busy that long are using it, so it stays.
const rollbackWait = 10 * time.Second

// rollback removes the bridge and the gateway this ADD created, unless a guest or another
// bridge uses them by now. It is called with the shared lock held and releases it.
func rollback(env netsetup.Env, conf *Config, m made, l *netLock) error {
	defer l.release()
	if !m.gateway && !m.bridge {
		return nil
	}
	// Converting the lock drops the shared hold first, so two failing ADDs cannot wait for
	// each other; LOCK_NB keeps a stream of new ADDs from holding this one up for ever.
	deadline := time.Now().Add(rollbackWait)
	for {
		err := flock(l.f, unix.LOCK_EX|unix.LOCK_NB)
		if err == nil {
			break
		}
		if !errors.Is(err, unix.EWOULDBLOCK) {
			return fmt.Errorf("lock for removing what the failed attach created: %w", err)
		}
		if time.Now().After(deadline) {
			return nil
		}
		time.Sleep(10 * time.Millisecond)
	}
	if !statefile.Still(l.f, l.path) {
		// Removed while the conversion dropped the shared hold: that happens only with the
		// whole state (RemoveIfEmpty), when no gateway or bridge was left to remove.
		return nil
	}
	if m.bridge {
		b, err := netsetup.GetBridge(env, conf.Bridge)
		switch {
		case errors.Is(err, netsetup.ErrNoBridge):
		case err != nil:
			return err
		case b.Creator == netsetup.Self() && len(b.Guests) == 0:
			// Its name server first, as `pontoon bridge destroy` does: the server's sockets
			// would keep the bridge's namespace alive.
			if err := names.Stop(env, conf.Bridge); err != nil {
				return fmt.Errorf("stop the name server of bridge %q, created for the failed attach: %w", conf.Bridge, err)
			}
			if err := netsetup.DestroyBridge(env, conf.Bridge); err != nil {
				return fmt.Errorf("remove bridge %q, created for the failed attach: %w", conf.Bridge, err)
			}
		}
	}
	if m.gateway {
		// GatewayDown checks for bridges under pontoon's own lock: one created meanwhile by
		// anyone keeps the gateway up.
		err := netsetup.GatewayDown(env, false)
		if err != nil && !errors.Is(err, netsetup.ErrGatewayInUse) {
			return fmt.Errorf("take down the gateway, brought up for the failed attach: %w", err)
		}
	}
	return nil
}
