package names_test

import (
	"context"
	"errors"
	"net/netip"
	"os"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/pontoon-dev/pontoon/internal/testkit"
	"github.com/pontoon-dev/pontoon/names"
	"github.com/pontoon-dev/pontoon/testenv"
)

// A TCP client may ask several queries on one connection, and a connection left open does
// not keep the server from stopping: Close ends it.
func TestTCPConnectionReuseAndClose(t *testing.T) {
	testkit.NeedRoot(t, "creates network namespaces")
	env := testenv.New(t)
	g := env.Guest("n1", "172.18.0.1")
	env.Guest("n2", "172.18.0.2")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := g.DialContext(ctx, "tcp", netip.AddrPortFrom(env.BridgeAddr(), names.Port).String())
	if err != nil {
		t.Fatal(err)
	}
	co := &dns.Conn{Conn: conn}
	defer co.Close()
	c := &dns.Client{Net: "tcp"}
	for _, name := range []string{"n2.", "n1.", "n2."} {
		r, _, err := c.ExchangeWithConn(new(dns.Msg).SetQuestion(name, dns.TypeA), co)
		if err != nil {
			t.Fatalf("query %s on the shared connection: %v", name, err)
		}
		if len(r.Answer) != 1 || r.Answer[0].(*dns.A).A.String() != map[string]string{"n1.": "172.18.0.1", "n2.": "172.18.0.2"}[name] {
			t.Fatalf("query %s: answer %v", name, r.Answer)
		}
	}
	closed := make(chan struct{})
	go func() { env.NameServer().Close(); close(closed) }()
	// Bounded well below the server's idle limit for connections (8 s), which would end
	// the connection, and so the wait, anyway.
	select {
	case <-closed:
	case <-time.After(4 * time.Second):
		t.Fatal("Close did not return while a client held a connection open")
	}
	_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := conn.Read(make([]byte, 1)); err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("the client's connection is still open after Close (read: %v)", err)
	}
}
