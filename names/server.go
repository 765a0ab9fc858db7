package names

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/miekg/dns"
	"github.com/pontoon-dev/pontoon/internal/statefile"
	"github.com/pontoon-dev/pontoon/netsetup"
	"github.com/pontoon-dev/pontoon/netsetup/ns"
	"golang.org/x/sys/unix"
)

// Port is the port the name server listens on.
const Port = 53

// forwardTimeout bounds one attempt to ask an upstream resolver.
const forwardTimeout = 2 * time.Second

// Server is a bridge's running name server.
type Server struct {
	env    netsetup.Env
	bridge string
	addr   netip.Addr
	udp    *dns.Server
	tcp    *dns.Server
	done   chan struct{}
	once   sync.Once
	wg     sync.WaitGroup
	watch  *os.File // inotify on the bridges' directory, non-blocking so Close wakes its reader

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
	s := &Server{env: env, bridge: bridge, addr: plan.BridgeAddr().Addr(), done: make(chan struct{})}
	ap := netip.AddrPortFrom(s.addr, Port)
	pc, ln, err := bind(b.Netns(env), ap)
	if err != nil {
		return nil, fmt.Errorf("listen on %s in the bridge's namespace: %w", ap, err)
	}
	if s.watch, err = watchBridges(env); err != nil {
		pc.Close()
		ln.Close()
		return nil, err
	}
	started := make(chan struct{}, 2)
	notify := func() { started <- struct{}{} }
	s.udp = &dns.Server{PacketConn: pc, Handler: s.handler("udp"), NotifyStartedFunc: notify}
	s.tcp = &dns.Server{Listener: ln, Handler: s.handler("tcp"), NotifyStartedFunc: notify}
	ended := make(chan error, 2)
	for _, srv := range []*dns.Server{s.udp, s.tcp} {
		s.wg.Add(1)
		go func() { defer s.wg.Done(); ended <- srv.ActivateAndServe() }()
	}
	// A server that ends before it says it started would leave this wait hanging forever.
	timeout := time.NewTimer(startWait)
	defer timeout.Stop()
	for up := 0; up < 2; {
		select {
		case <-started:
			up++
		case err := <-ended:
			s.abort(pc, ln)
			return nil, fmt.Errorf("serve names of bridge %q: server ended at start: %v", bridge, err)
		case <-timeout.C:
			s.abort(pc, ln)
			return nil, fmt.Errorf("serve names of bridge %q: server did not start within %s", bridge, startWait)
		}
	}
	rec := Record{Bridge: bridge, Process: netsetup.Self(), Detached: detached, Addr: ap.String(), Started: time.Now().UTC()}
	if err := writeRecord(env, rec); err != nil {
		s.Close()
		return nil, err
	}
	s.wg.Add(1)
	go func() { defer s.wg.Done(); s.watchLoop() }()
	return s, nil
}

// startWait bounds how long listen waits for both servers to report that they serve.
const startWait = 5 * time.Second

// abort stops a server that failed to start; a server that never started does not close
// its socket on Shutdown, so the sockets are closed here.
func (s *Server) abort(pc net.PacketConn, ln net.Listener) {
	pc.Close()
	ln.Close()
	s.Close()
}

// bindWait bounds how long bind waits for a predecessor's sockets to go.
const bindWait = 5 * time.Second

// bind opens the server's sockets in the bridge's namespace; they stay the namespace's for
// as long as they live, whichever thread serves them. A server killed just before may still
// hold the address: its threads close their files after its main thread already shows as
// exited, so the address is tried again for a while.
func bind(netnsPath string, ap netip.AddrPort) (pc net.PacketConn, ln net.Listener, err error) {
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
}

func (s *Server) stop() {
	s.once.Do(func() {
		_ = s.udp.Shutdown()
		_ = s.tcp.Shutdown()
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

func (s *Server) handler(proto string) dns.HandlerFunc {
	return func(w dns.ResponseWriter, q *dns.Msg) { s.answer(w, q, proto) }
}

func (s *Server) answer(w dns.ResponseWriter, q *dns.Msg, proto string) {
	if len(q.Question) != 1 || q.Opcode != dns.OpcodeQuery {
		reply(w, new(dns.Msg).SetRcode(q, dns.RcodeNotImplemented))
		return
	}
	question := q.Question[0]
	name := normalize(question.Name)
	b, err := s.currentBridge()
	if err != nil {
		reply(w, new(dns.Msg).SetRcode(q, dns.RcodeServerFailure))
		return
	}
	from := ""
	if ap, err := netip.ParseAddrPort(w.RemoteAddr().String()); err == nil {
		if g := guestByRef(b, ap.Addr().Unmap().String()); g != nil {
			from = g.Name
		}
	}
	if f := match(s.currentFaults(), name, from, time.Now()); f != nil {
		switch f.Kind {
		case Drop:
			return
		case NXDomain:
			reply(w, new(dns.Msg).SetRcode(q, dns.RcodeNameError))
			return
		case ServFail:
			reply(w, new(dns.Msg).SetRcode(q, dns.RcodeServerFailure))
			return
		case Wrong:
			reply(w, addressAnswer(q, f.Addr, netip.Addr{}))
			return
		case Delay:
			select {
			case <-time.After(f.Delay):
			case <-s.done:
				return
			}
		}
	}
	if ip, ip6, ok := lookup(b, name); ok {
		reply(w, addressAnswer(q, ip, ip6))
		return
	}
	reply(w, s.forward(q, proto))
}

// addressAnswer answers q for a name that has ip and, on a dual-stack chain, ip6: an A
// record for A and ANY, an AAAA record for AAAA and ANY when there is ip6, nothing (but no
// error) for every other type, so resolvers do not wait.
func addressAnswer(q *dns.Msg, ip, ip6 netip.Addr) *dns.Msg {
	m := new(dns.Msg).SetReply(q)
	m.Authoritative = true
	m.RecursionAvailable = true
	question := q.Question[0]
	if question.Qclass == dns.ClassINET && (question.Qtype == dns.TypeA || question.Qtype == dns.TypeANY) {
		m.Answer = append(m.Answer, &dns.A{
			Hdr: dns.RR_Header{Name: question.Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 0},
			A:   ip.AsSlice(),
		})
	}
	if question.Qclass == dns.ClassINET && ip6.IsValid() && (question.Qtype == dns.TypeAAAA || question.Qtype == dns.TypeANY) {
		m.Answer = append(m.Answer, &dns.AAAA{
			Hdr:  dns.RR_Header{Name: question.Name, Rrtype: dns.TypeAAAA, Class: dns.ClassINET, Ttl: 0},
			AAAA: ip6.AsSlice(),
		})
	}
	return m
}

func reply(w dns.ResponseWriter, m *dns.Msg) { _ = w.WriteMsg(m) }

// lookup finds the guest or service that answers to name, and its addresses (no IPv6 one on
// an IPv4-only chain); only guests attached to the end count.
func lookup(b *netsetup.BridgeState, name string) (ip, ip6 netip.Addr, ok bool) {
	for _, g := range b.Guests {
		if g.Phase != netsetup.PhaseReady {
			continue
		}
		for _, n := range g.Names() {
			if strings.EqualFold(n, name) {
				return g.IP, g.IP6, true
			}
		}
	}
	// A service's name is its service address.
	for _, sv := range b.Services {
		if strings.EqualFold(sv.Name, name) {
			return sv.IP, sv.IP6, true
		}
	}
	return netip.Addr{}, netip.Addr{}, false
}

// forward asks the upstream resolvers in turn and returns the first answer, or SERVFAIL.
func (s *Server) forward(q *dns.Msg, proto string) *dns.Msg {
	for _, up := range upstreams(s.env) {
		if up == s.addr {
			continue
		}
		if m, err := s.exchange(q, proto, netip.AddrPortFrom(up, 53)); err == nil {
			m.Id = q.Id
			return m
		}
	}
	return new(dns.Msg).SetRcode(q, dns.RcodeServerFailure)
}

// exchange asks one upstream from a socket of the bridge's namespace, the way a guest's own
// query would leave.
func (s *Server) exchange(q *dns.Msg, proto string, up netip.AddrPort) (*dns.Msg, error) {
	var c net.Conn
	err := ns.Do(s.env.BridgeNetns(s.bridge), func() error {
		var err error
		c, err = net.DialTimeout(proto, up.String(), forwardTimeout)
		return err
	})
	if err != nil {
		return nil, err
	}
	co := &dns.Conn{Conn: c}
	defer co.Close()
	_ = c.SetDeadline(time.Now().Add(forwardTimeout))
	if err := co.WriteMsg(q); err != nil {
		return nil, err
	}
	return co.ReadMsg()
}

// upstreams are the resolvers guests would use without a name server: the host's, or the
// host-link address the gateway redirects to a loopback resolver.
func upstreams(env netsetup.Env) []netip.Addr {
	rc, err := netsetup.GuestResolvConf(env)
	if err != nil {
		return nil
	}
	var out []netip.Addr
	for _, line := range strings.Split(string(rc), "\n") {
		f := strings.Fields(line)
		if len(f) == 2 && f[0] == "nameserver" {
			if a, err := netip.ParseAddr(f[1]); err == nil && a.Is4() {
				out = append(out, a)
			}
		}
	}
	return out
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
