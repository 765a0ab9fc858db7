package main

import (
	"fmt"
	"runtime"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// stallAt is the time above which a probe's request counts as having waited for the lock: an
// uncontended one takes some 20 µs, a scheduling hiccup well under a millisecond.
const stallAt = time.Millisecond

// rtnlProbe changes the MTU of the loopback device of a network namespace of its own: every
// such request takes the kernel's rtnl lock, which is one for all namespaces, so a request that
// waits long is one that waited for someone else's hold of it.
type rtnlProbe struct {
	req  chan time.Duration
	resp chan result
}

type result struct {
	held time.Duration
	err  error
}

func newRTNLProbe() (*rtnlProbe, error) {
	p := &rtnlProbe{req: make(chan time.Duration), resp: make(chan result)}
	ready := make(chan error)
	go func() {
		// The thread stays in the new namespace and is never handed back to the runtime, so
		// nothing else runs in it.
		runtime.LockOSThread()
		if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
			ready <- fmt.Errorf("rtnl probe: unshare: %w", err)
			return
		}
		h, err := netlink.NewHandle()
		if err == nil {
			var lo netlink.Link
			if lo, err = h.LinkByName("lo"); err == nil {
				close(ready)
				p.serve(h, lo)
				return
			}
		}
		ready <- fmt.Errorf("rtnl probe: %w", err)
	}()
	if err := <-ready; err != nil {
		return nil, err
	}
	return p, nil
}

func (p *rtnlProbe) serve(h *netlink.Handle, lo netlink.Link) {
	mtu := 65536
	for window := range p.req {
		var held time.Duration
		var err error
		for end := time.Now().Add(window); time.Now().Before(end) && err == nil; {
			mtu ^= 1
			t0 := time.Now()
			err = h.LinkSetMTU(lo, mtu)
			if d := time.Since(t0); d > stallAt {
				held += d
			}
			time.Sleep(200 * time.Microsecond)
		}
		p.resp <- result{held, err}
	}
}

// held is the time the probe's requests waited for the lock during the window, from now.
func (p *rtnlProbe) held(window time.Duration) time.Duration {
	p.req <- window
	r := <-p.resp
	if r.err != nil {
		fail("rtnl probe", r.err)
	}
	return r.held
}
