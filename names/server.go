package names

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/pontoon-dev/pontoon/internal/statefile"
	"github.com/pontoon-dev/pontoon/netsetup"
	"github.com/pontoon-dev/pontoon/netsetup/ns"
	"golang.org/x/sys/unix"
)

// Port is the port the name server listens on.
const Port = 53

// Server is a bridge's running name server.
type Server struct {
	env    netsetup.Env
	bridge string
	addr   netip.Addr
	pc     *net.UDPConn
	ln     *net.TCPListener
	// ctx ends with the server: delayed answers and forwarded queries give up then.
	ctx    context.Context
	cancel context.CancelFunc
	done   chan struct{}
	once   sync.Once
	wg     sync.WaitGroup

	connMu sync.Mutex
	conns  map[*net.TCPConn]struct{} // open TCP connections; nil once stopping

	mu     sync.Mutex
	faults cachedFaults
	record cachedRecord
}

type cachedFaults struct {
	v      *statefile.Version
	faults []Fault
}

type cachedRecord struct {
	v *statefile.Version
	b *netsetup.BridgeState
}

// Listen starts serving a bridge's names from this process, records it as the bridge's
// server and returns once the server answers. The server stops when Close is called or
// when the bridge's record is removed or marked for removal (Done is closed then).
func Listen(env netsetup.Env, bridge string) (*Server, error) {
	s, err := listen(env, bridge, false)
	if err != nil {
		return nil, fmt.Errorf("serve names of bridge %q: %w", bridge, err)
	}
	return s, nil
}

func listen(env netsetup.Env, bridge string, detached bool) (*Server, error) {
	ap, netnsPath, err := serverAddr(env, bridge)
	if err != nil {
		return nil, err
	}
	pc, ln, err := bind(netnsPath, ap)
	if err != nil {
		return nil, fmt.Errorf("listen on %s in the bridge's namespace: %w", ap, err)
	}
	rec := &Record{Bridge: bridge, Process: netsetup.Self(), Detached: detached, Addr: ap.String(), Started: time.Now().UTC()}
	return run(env, bridge, ap, pc, ln, rec)
}

// serverAddr returns where a ready bridge's server listens, and the bridge's namespace.
func serverAddr(env netsetup.Env, bridge string) (netip.AddrPort, string, error) {
	b, err := netsetup.GetBridge(env, bridge)
	if err != nil {
		return netip.AddrPort{}, "", err
	}
	if b.Phase != netsetup.PhaseReady {
		return netip.AddrPort{}, "", fmt.Errorf("bridge is %s, not ready", b.Phase)
	}
	plan, err := netsetup.CurrentPlan(env)
	if err != nil {
		return netip.AddrPort{}, "", err
	}
	return netip.AddrPortFrom(plan.BridgeAddr().Addr(), Port), b.Netns(env), nil
}

// run serves a bridge's names on pc and ln, which it owns from here on, and writes rec as
// the bridge's server when given (a detached server's starter wrote it already).
func run(env netsetup.Env, bridge string, ap netip.AddrPort, pc *net.UDPConn, ln *net.TCPListener, rec *Record) (*Server, error) {
	s := &Server{env: env, bridge: bridge, addr: ap.Addr(), pc: pc, ln: ln, done: make(chan struct{}),
		conns: map[*net.TCPConn]struct{}{}}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	// The sockets are bound and listening already: the kernel queues what comes before the
	// loops read it, so the server answers from here on.
	s.wg.Add(2)
	go func() { defer s.wg.Done(); s.serveUDP() }()
	go func() { defer s.wg.Done(); s.serveTCP() }()
	if rec != nil {
		if err := writeRecord(env, *rec); err != nil {
			s.Close()
			return nil, err
		}
	}
	s.wg.Add(1)
	go func() { defer s.wg.Done(); s.watchLoop() }()
	return s, nil
}

// bindWait bounds how long bind waits for a predecessor's sockets to go.
const bindWait = 5 * time.Second

// bind opens the server's sockets in the bridge's namespace; they stay the namespace's for
// as long as they live, whichever thread serves them. A server killed just before may still
// hold the address: its threads close their files after its main thread already shows as
// exited, so the address is tried again for a while.
func bind(netnsPath string, ap netip.AddrPort) (pc *net.UDPConn, ln *net.TCPListener, err error) {
	deadline := time.Now().Add(bindWait)
	for pause := time.Millisecond; ; pause = min(2*pause, 50*time.Millisecond) {
		err = ns.Do(netnsPath, func() error {
			var err error
			if pc, err = net.ListenUDP("udp4", net.UDPAddrFromAddrPort(ap)); err != nil {
				return err
			}
			if ln, err = net.ListenTCP("tcp4", net.TCPAddrFromAddrPort(ap)); err != nil {
				pc.Close()
				return err
			}
			return nil
		})
		if !errors.Is(err, unix.EADDRINUSE) || time.Now().After(deadline) {
			return pc, ln, err
		}
		time.Sleep(pause)
	}
}

// Addr is where the server listens, in the bridge's namespace.
func (s *Server) Addr() netip.AddrPort { return netip.AddrPortFrom(s.addr, Port) }

// Done is closed once the server has stopped.
func (s *Server) Done() <-chan struct{} { return s.done }

// Close stops the server and removes its record; closing twice is harmless.
func (s *Server) Close() {
	s.stop()
	s.wg.Wait()
	// The cached files stay open to tell whether they changed; nothing asks any more.
	s.mu.Lock()
	defer s.mu.Unlock()
	s.record.v.Close()
	s.faults.v.Close()
	s.record, s.faults = cachedRecord{}, cachedFaults{}
}

func (s *Server) stop() {
	s.once.Do(func() {
		s.cancel()
		s.pc.Close()
		s.ln.Close()
		s.closeConns()
		removeRecordOf(s.env, s.bridge, netsetup.Self())
		close(s.done)
	})
}

// watchInterval is how often a server looks whether its bridge is still there. Those who
// destroy a bridge stop its server themselves (Stop, gc, the owner of an in-process server):
// this only catches a bridge destroyed behind its server's back. An inotify watch would
// notice at once, but closing one waits for the kernel's SRCU grace period (10-20 ms), which
// every stop would pay.
const watchInterval = time.Second

// watchLoop stops the server once its bridge is on its way out: the server's sockets would
// keep the bridge's namespace, and its links, alive.
func (s *Server) watchLoop() {
	t := time.NewTicker(watchInterval)
	defer t.Stop()
	for {
		if s.bridgeGone() {
			go s.stop()
			return
		}
		// A fault stops applying at its deadline by itself (match); its end is logged here,
		// a moment later, when the --for that set it was not there to (killed).
		var expiry <-chan time.Time
		next, ok := s.nextExpiry()
		if ok && time.Until(next.Add(expiryGrace)) <= 0 {
			_ = EndExpired(s.env, s.bridge, SourceNameServer)
			next, ok = s.nextExpiry() // the next one's, or this one's again if it failed
		}
		if d := time.Until(next.Add(expiryGrace)); ok && d > 0 {
			expiry = time.After(d)
		}
		select {
		case <-t.C:
		case <-expiry:
		case <-s.ctx.Done():
			return
		}
	}
}

// expiryGrace is how long after a fault's deadline the server ends it in the record and the
// log: the --for that set it does so at the deadline, when it still runs.
const expiryGrace = 500 * time.Millisecond

// SourceNameServer names the bridge's name server in its event log, for the faults whose
// end it logs.
const SourceNameServer = "names"

// nextExpiry is the earliest deadline of the bridge's faults.
func (s *Server) nextExpiry() (time.Time, bool) {
	var next time.Time
	for _, f := range s.currentFaults() {
		if !f.Expires.IsZero() && (next.IsZero() || f.Expires.Before(next)) {
			next = f.Expires
		}
	}
	return next, !next.IsZero()
}

func (s *Server) bridgeGone() bool {
	b, err := s.currentBridge()
	if errors.Is(err, os.ErrNotExist) {
		return true
	}
	return err == nil && b.Phase == netsetup.PhaseRemoving
}

// currentBridge returns the bridge's record, reread only when its file changed: one stat
// per query. It takes no lock, so queries never wait for an attach, and the file is only
// ever replaced whole. The record returned must not be changed.
func (s *Server) currentBridge() (*netsetup.BridgeState, error) {
	path := s.env.BridgeRecordFile(s.bridge)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.record.v.Current(path) {
		return s.record.b, nil
	}
	s.record.v.Close()
	s.record = cachedRecord{}
	var b netsetup.BridgeState
	v, err := statefile.ReadPinned(path, func(data []byte) error { return netsetup.DecodeBridge(data, &b) })
	if err != nil {
		return nil, err
	}
	if v != nil {
		s.record = cachedRecord{v: v, b: &b}
	}
	return &b, nil
}

// currentFaults returns the bridge's faults, reread only when their file changed.
func (s *Server) currentFaults() []Fault {
	path := faultFile(s.env, s.bridge)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.faults.v.Current(path) {
		return s.faults.faults
	}
	s.faults.v.Close()
	var fs faultSet
	v, err := statefile.ReadJSONPinned(path, &fs)
	if err != nil {
		s.faults = cachedFaults{}
		return nil
	}
	s.faults = cachedFaults{v: v, faults: fs.Faults}
	return fs.Faults
}

// ResolvConf is the resolv.conf of a guest that asks its bridge's name server: the
// bridge's address, with the search and options lines guests had before.
func ResolvConf(env netsetup.Env) ([]byte, error) {
	plan, err := netsetup.CurrentPlan(env)
	if err != nil {
		return nil, err
	}
	rc, err := netsetup.GuestResolvConf(env)
	if err != nil {
		return nil, err
	}
	var b strings.Builder
	b.WriteString("# written by pontoon: the bridge's name server\n")
	fmt.Fprintf(&b, "nameserver %s\n", plan.BridgeAddr().Addr())
	for _, line := range strings.Split(string(rc), "\n") {
		if f := strings.Fields(line); len(f) > 0 && (f[0] == "search" || f[0] == "domain" || f[0] == "options") {
			b.WriteString(line + "\n")
		}
	}
	return []byte(b.String()), nil
}
