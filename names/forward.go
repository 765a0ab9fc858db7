package names

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/pontoon-dev/pontoon/netsetup"
	"github.com/pontoon-dev/pontoon/netsetup/ns"
	"golang.org/x/net/dns/dnsmessage"
)

// forwardTimeout bounds one attempt to ask an upstream resolver.
const forwardTimeout = 2 * time.Second

// forward asks the upstream resolvers in turn and returns the first answer, with the
// query's ID, or SERVFAIL.
func (s *Server) forward(q *query, msg []byte, proto string) []byte {
	for _, up := range upstreams(s.env) {
		if up == s.addr {
			continue
		}
		if out, err := s.exchange(msg, proto, netip.AddrPortFrom(up, 53)); err == nil {
			binary.BigEndian.PutUint16(out, q.hdr.ID)
			// The guests' resolver recurses, whatever the upstream says of itself: glibc
			// takes an answer without records, RA or AA for a lame referral, and would not
			// ask again over TCP for a truncated one.
			out[3] |= 0x80
			return out
		}
	}
	return q.reply(dnsmessage.RCodeServerFailure, 0)
}

// exchange asks one upstream from a socket of the bridge's namespace, the way a guest's own
// query would leave, under an ID of its own so that only the upstream's answer is taken.
// The answer is returned only when it is a whole message.
func (s *Server) exchange(msg []byte, proto string, up netip.AddrPort) ([]byte, error) {
	ctx, cancel := context.WithTimeout(s.ctx, forwardTimeout)
	defer cancel()
	var c net.Conn
	err := ns.Do(s.env.BridgeNetns(s.bridge), func() error {
		var err error
		c, err = (&net.Dialer{}).DialContext(ctx, proto, up.String())
		return err
	})
	if err != nil {
		return nil, err
	}
	defer c.Close()
	// Close ends the wait: an upstream that does not answer must not hold Close up.
	defer context.AfterFunc(ctx, func() { c.Close() })()
	deadline, _ := ctx.Deadline()
	_ = c.SetDeadline(deadline)

	id := uint16(rand.Uint32())
	out := make([]byte, 0, len(msg)+2)
	if proto == "tcp" {
		out = binary.BigEndian.AppendUint16(out, uint16(len(msg)))
	}
	out = append(out, msg...)
	binary.BigEndian.PutUint16(out[len(out)-len(msg):], id)
	if _, err := c.Write(out); err != nil {
		return nil, err
	}
	if proto == "tcp" {
		var n [2]byte
		if _, err := io.ReadFull(c, n[:]); err != nil {
			return nil, err
		}
		answer := make([]byte, binary.BigEndian.Uint16(n[:]))
		if _, err := io.ReadFull(c, answer); err != nil {
			return nil, err
		}
		if err := checkAnswer(answer, id); err != nil {
			return nil, fmt.Errorf("answer of %s: %w", up, err)
		}
		return answer, nil
	}
	buf := make([]byte, 65535)
	for {
		n, err := c.Read(buf)
		if err != nil {
			return nil, err
		}
		// Anything else on the socket is not the answer: keep waiting for it.
		if checkAnswer(buf[:n], id) == nil {
			return slices.Clone(buf[:n]), nil
		}
	}
}

// checkAnswer accepts a whole response message with the given ID.
func checkAnswer(msg []byte, id uint16) error {
	var p dnsmessage.Parser
	h, err := p.Start(msg)
	if err != nil {
		return err
	}
	if !h.Response || h.ID != id {
		return errors.New("not the answer to the query")
	}
	for _, skip := range []func() error{p.SkipAllQuestions, p.SkipAllAnswers, p.SkipAllAuthorities, p.SkipAllAdditionals} {
		if err := skip(); err != nil {
			return err
		}
	}
	return nil
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
