package names

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
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
	watch  *os.File // inotify on the bridges' directory, non-blocking so Close wakes its reader

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
	b, err := netsetup.GetBridge(env, bridge)
	if err != nil {
		return nil, err
	}
	if b.Phase != netsetup.PhaseReady {
		return nil, fmt.Errorf("bridge is %s, not ready", b.Phase)
	}
	plan, err := netsetup.CurrentPlan(env)
	if err != nil {
		return nil, err
	}
	s := &Server{env: env, bridge: bridge, addr: plan.BridgeAddr().Addr(), done: make(chan struct{}),
		conns: map[*net.TCPConn]struct{}{}}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	ap := netip.AddrPortFrom(s.addr, Port)
	if s.pc, s.ln, err = bind(b.Netns(env), ap); err != nil {
		s.cancel()
		return nil, fmt.Errorf("listen on %s in the bridge's namespace: %w", ap, err)
	}
	if s.watch, err = watchBridges(env); err != nil {
		s.cancel()
		s.pc.Close()
		s.ln.Close()
		return nil, err
	}
	// The sockets are bound and listening already: the kernel queues what comes before the
	// loops read it, so the server answers from here on.
	s.wg.Add(2)
	go func() { defer s.wg.Done(); s.serveUDP() }()
	go func() { defer s.wg.Done(); s.serveTCP() }()
	rec := Record{Bridge: bridge, Process: netsetup.Self(), Detached: detached, Addr: ap.String(), Started: time.Now().UTC()}
	if err := writeRecord(env, rec); err != nil {
		s.Close()
		return nil, err
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
		s.watch.Close() // ends watchLoop's read
		removeRecordOf(s.env, s.bridge, netsetup.Self())
		close(s.done)
	})
}

// watchBridges watches the directory of bridge records: records are replaced by rename and
// removed by unlink.
func watchBridges(env netsetup.Env) (*os.File, error) {
	state, _ := env.Dirs()
	dir := filepath.Join(state, "bridges")
	fd, err := unix.InotifyInit1(unix.IN_CLOEXEC | unix.IN_NONBLOCK)
	if err != nil {
		return nil, fmt.Errorf("watch %s: %w", dir, err)
	}
	if _, err := unix.InotifyAddWatch(fd, dir, unix.IN_MOVED_TO|unix.IN_DELETE|unix.IN_DELETE_SELF|unix.IN_CLOSE_WRITE); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("watch %s: %w", dir, err)
	}
	return os.NewFile(uintptr(fd), "inotify "+dir), nil
}

// watchLoop stops the server once its bridge is on its way out: the server's sockets would
// keep the bridge's namespace, and its links, alive.
func (s *Server) watchLoop() {
	buf := make([]byte, 4096)
	for {
		if s.bridgeGone() {
			go s.stop()
			return
		}
		if _, err := s.watch.Read(buf); err != nil {
			return // closed by stop
		}
	}
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
	v, err := statefile.ReadJSONPinned(path, &b)
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
