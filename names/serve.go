package names

import (
	"encoding/binary"
	"errors"
	"io"
	"net"
	"net/netip"
	"time"
)

const (
	// maxUDPInFlight bounds the UDP queries answered at once; more are dropped, and their
	// clients ask again. Most are answered in microseconds: the bound matters for delayed and
	// forwarded ones, which a flood must not turn into unbounded goroutines and sockets.
	maxUDPInFlight = 256
	// maxTCPConns bounds the open TCP connections; one more is closed at once.
	maxTCPConns = 64
	// maxTCPQueries bounds the queries on one TCP connection.
	maxTCPQueries = 128
	// tcpFirstRead bounds the wait for a connection's first query, tcpIdle the wait for each
	// next one (RFC 7766 section 6.2.3 asks for seconds), tcpWrite the wait for an answer to
	// leave.
	tcpFirstRead = 2 * time.Second
	tcpIdle      = 8 * time.Second
	tcpWrite     = 2 * time.Second
)

// serveUDP reads queries until the socket is closed and answers each from a goroutine of
// its own, so that a delayed or forwarded query does not hold up the others.
func (s *Server) serveUDP() {
	slots := make(chan struct{}, maxUDPInFlight)
	buf := make([]byte, 65535)
	for {
		n, from, err := s.pc.ReadFromUDPAddrPort(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue // an error of one datagram
		}
		if n < headerLen {
			continue // not a message: no answer, and no goroutine
		}
		select {
		case slots <- struct{}{}:
		default:
			continue
		}
		msg := append([]byte(nil), buf[:n]...)
		s.wg.Add(1)
		go func() {
			defer func() { <-slots; s.wg.Done() }()
			if out := s.respond(msg, from.Addr(), "udp"); out != nil {
				_, _ = s.pc.WriteToUDPAddrPort(out, from)
			}
		}()
	}
}

// serveTCP accepts connections until the listener is closed.
func (s *Server) serveTCP() {
	slots := make(chan struct{}, maxTCPConns)
	for pause := time.Duration(0); ; {
		c, err := s.ln.AcceptTCP()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			// Out of files, most likely: give the connections time to end.
			pause = min(max(2*pause, 5*time.Millisecond), time.Second)
			select {
			case <-time.After(pause):
			case <-s.ctx.Done():
				return
			}
			continue
		}
		pause = 0
		select {
		case slots <- struct{}{}:
		default:
			c.Close()
			continue
		}
		if !s.track(c, true) {
			c.Close()
			<-slots
			return
		}
		s.wg.Add(1)
		go func() {
			defer func() { s.track(c, false); c.Close(); <-slots; s.wg.Done() }()
			s.serveConn(c)
		}()
	}
}

// track adds a connection to those Close closes, or removes one; it refuses to add one
// once the server is stopping.
func (s *Server) track(c *net.TCPConn, add bool) bool {
	s.connMu.Lock()
	defer s.connMu.Unlock()
	if !add {
		delete(s.conns, c)
		return true
	}
	if s.conns == nil {
		return false
	}
	s.conns[c] = struct{}{}
	return true
}

// closeConns closes the open connections and refuses new ones.
func (s *Server) closeConns() {
	s.connMu.Lock()
	defer s.connMu.Unlock()
	for c := range s.conns {
		c.Close()
	}
	s.conns = nil
}

// serveConn answers the queries of one connection in turn, each framed by its length
// (RFC 1035 section 4.2.2), until the client closes it, is idle too long, sends something
// that is not a message or has asked maxTCPQueries.
func (s *Server) serveConn(c *net.TCPConn) {
	from := netip.Addr{}
	if a, ok := c.RemoteAddr().(*net.TCPAddr); ok {
		from = a.AddrPort().Addr()
	}
	wait := tcpFirstRead
	for range maxTCPQueries {
		_ = c.SetReadDeadline(time.Now().Add(wait))
		wait = tcpIdle
		var n [2]byte
		if _, err := io.ReadFull(c, n[:]); err != nil {
			return
		}
		size := int(binary.BigEndian.Uint16(n[:]))
		if size < headerLen {
			return
		}
		msg := make([]byte, size)
		if _, err := io.ReadFull(c, msg); err != nil {
			return
		}
		out := s.respond(msg, from, "tcp")
		if out == nil {
			continue
		}
		// One write for length and message: a client may read the length alone otherwise.
		framed := binary.BigEndian.AppendUint16(make([]byte, 0, 2+len(out)), uint16(len(out)))
		_ = c.SetWriteDeadline(time.Now().Add(tcpWrite))
		if _, err := c.Write(append(framed, out...)); err != nil {
			return
		}
	}
}
