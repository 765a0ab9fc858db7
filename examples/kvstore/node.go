package kvstore

import (
	"context"
	"errors"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// DefaultTimeout is the peer RPC timeout used when Config.Timeout is zero.
const DefaultTimeout = 300 * time.Millisecond

// DefaultProbe is the interval of background peer probes used by kvnode.
const DefaultProbe = time.Second

// Limits on client input; larger requests get HTTP 400 or 413.
const (
	MaxKeyBytes   = 256
	MaxValueBytes = 1 << 20
)

// Config describes one node of a cluster.
type Config struct {
	// ID is this node's 1-based position in Peers. It is also the Writer
	// of every tag this node produces, so it must differ on every node.
	ID int
	// Peers lists host:port of EVERY node of the cluster, this node
	// included, in the same order on every node. Other nodes are contacted
	// at these addresses; this node's own entry is never dialled.
	Peers []string
	// Timeout bounds each peer RPC (dial, request and answer). Zero means
	// DefaultTimeout. A client request takes at most about two timeouts.
	Timeout time.Duration
	// Probe is the interval between background probes of every peer, which
	// keep the "peer unreachable" and "quorum lost" log lines current
	// without client traffic. Zero disables probing.
	Probe time.Duration
	// Transport carries peer RPCs. Nil means a dedicated http.Transport
	// that ignores proxy settings. Tests put a fault-injecting RoundTripper
	// here.
	Transport http.RoundTripper
	// Logger receives one short line per notable event. Nil means stdout
	// with a time-of-day prefix.
	Logger *log.Logger
}

// peer is one node of the cluster as this node knows it.
type peer struct {
	id   int
	addr string
}

// Node is one replica of the key-value store and the coordinator of the
// client requests it receives. Its methods are safe for concurrent use.
type Node struct {
	id      int
	peers   []peer // every node, peers[i].id == i+1
	timeout time.Duration
	probe   time.Duration
	hc      *http.Client
	ownTr   *http.Transport // closed by Serve when it was created here
	log     *log.Logger

	store store

	issuedMu sync.Mutex
	issued   map[string]uint64 // highest version this node has issued per key

	seq     atomic.Uint64 // orders peer RPCs so stale results cannot overwrite newer ones
	stateMu sync.Mutex
	up      []bool   // per node index; this node's own slot is always true
	upSeq   []uint64 // seq of the RPC that last set up[i]
	quorum  bool

	bg sync.WaitGroup // peer RPCs that outlive the request that started them
}

// ParsePeers splits a comma-separated --peers value into host:port entries
// and checks each one. Spaces around entries are ignored.
func ParsePeers(s string) ([]string, error) {
	if strings.TrimSpace(s) == "" {
		return nil, errors.New("peers: empty; give host:port of every node, this one included, e.g. 172.18.0.1:7000,172.18.0.2:7000,172.18.0.3:7000")
	}
	var out []string
	for i, p := range strings.Split(s, ",") {
		p = strings.TrimSpace(p)
		if p == "" {
			return nil, fmt.Errorf("peers entry %d is empty; remove the extra comma", i+1)
		}
		if err := checkPeerAddr(p); err != nil {
			return nil, fmt.Errorf("peers entry %d %q: %w", i+1, p, err)
		}
		out = append(out, p)
	}
	return out, nil
}

// checkPeerAddr accepts host:port with a non-empty host and a port in 1..65535.
func checkPeerAddr(addr string) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("want host:port: %w", err)
	}
	if host == "" {
		return errors.New("empty host; peers are dialled, so give an address such as 172.18.0.1:7000")
	}
	n, err := strconv.Atoi(port)
	if err != nil || n < 1 || n > 65535 {
		return fmt.Errorf("port %q out of range 1..65535", port)
	}
	return nil
}

// NewNode checks cfg and returns a node with an empty store. It does not
// listen; call Serve.
func NewNode(cfg Config) (*Node, error) {
	if len(cfg.Peers) == 0 {
		return nil, errors.New("config peers: empty; list host:port of every node, this one included")
	}
	seen := make(map[string]int)
	peers := make([]peer, len(cfg.Peers))
	for i, a := range cfg.Peers {
		if err := checkPeerAddr(a); err != nil {
			return nil, fmt.Errorf("config peers entry %d %q: %w", i+1, a, err)
		}
		if j, dup := seen[a]; dup {
			return nil, fmt.Errorf("config peers: %q listed as node %d and node %d; every node needs its own address", a, j, i+1)
		}
		seen[a] = i + 1
		peers[i] = peer{id: i + 1, addr: a}
	}
	if cfg.ID < 1 || cfg.ID > len(peers) {
		return nil, fmt.Errorf("config id %d out of range 1..%d: the id is this node's 1-based position in peers", cfg.ID, len(peers))
	}
	if cfg.Timeout < 0 {
		return nil, fmt.Errorf("config timeout %v is negative; use a positive duration such as 300ms", cfg.Timeout)
	}
	if cfg.Probe < 0 {
		return nil, fmt.Errorf("config probe %v is negative; use a positive duration, or 0 to disable probing", cfg.Probe)
	}
	n := &Node{
		id:      cfg.ID,
		peers:   peers,
		timeout: cfg.Timeout,
		probe:   cfg.Probe,
		log:     cfg.Logger,
		issued:  make(map[string]uint64),
		up:      make([]bool, len(peers)),
		upSeq:   make([]uint64, len(peers)),
		quorum:  true,
	}
	if n.timeout == 0 {
		n.timeout = DefaultTimeout
	}
	if n.log == nil {
		n.log = log.New(os.Stdout, "", log.Ltime|log.Lmicroseconds)
	}
	// Peers start as reachable so a healthy start logs nothing; the first
	// failed RPC or probe reports what is really down.
	for i := range n.up {
		n.up[i] = true
	}
	tr := cfg.Transport
	if tr == nil {
		n.ownTr = &http.Transport{
			Proxy:                 nil, // peers are on the cluster network, never behind a proxy
			DialContext:           (&net.Dialer{Timeout: n.timeout, KeepAlive: 15 * time.Second}).DialContext,
			MaxIdleConnsPerHost:   32,
			IdleConnTimeout:       30 * time.Second,
			ResponseHeaderTimeout: n.timeout,
		}
		tr = n.ownTr
	}
	n.hc = &http.Client{Transport: tr, Timeout: n.timeout}
	return n, nil
}

// ID returns this node's id, its 1-based position in Config.Peers.
func (n *Node) ID() int { return n.id }

// Addr returns this node's own entry in Config.Peers.
func (n *Node) Addr() string { return n.peers[n.id-1].addr }

// DefaultListen returns ":<port>" of this node's entry in Config.Peers, the
// address kvnode listens on when --listen is not given.
func (n *Node) DefaultListen() string {
	_, port, _ := net.SplitHostPort(n.Addr())
	return ":" + port
}

// majority is the number of nodes, this one included, that must answer.
func (n *Node) majority() int { return len(n.peers)/2 + 1 }

// Serve answers HTTP on ln and probes peers until ctx is done, then shuts
// the server down (gracefully for at most two peer timeouts plus a second)
// and waits for in-flight peer RPCs, each bounded by the peer timeout. It
// returns nil after a shutdown requested by ctx.
func (n *Node) Serve(ctx context.Context, ln net.Listener) error {
	srv := &http.Server{
		Handler:           n.Handler(),
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		// A client request runs two peer rounds; leave room for both.
		WriteTimeout: 10*time.Second + 4*n.timeout,
		IdleTimeout:  60 * time.Second,
		ErrorLog:     n.log,
	}
	n.log.Printf("node %d of %d serving on %s (peer timeout %v)", n.id, len(n.peers), ln.Addr(), n.timeout)

	probeCtx, stopProbe := context.WithCancel(ctx)
	defer stopProbe()
	if n.probe > 0 && len(n.peers) > 1 {
		n.bg.Add(1)
		go func() {
			defer n.bg.Done()
			n.probeLoop(probeCtx)
		}()
	}

	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()

	var err error
	select {
	case <-ctx.Done():
		// Requests finish within two peer rounds. Connections that peers
		// dialled but never used count as active for a while, so close
		// whatever is left after the grace period instead of waiting.
		shCtx, cancel := context.WithTimeout(context.Background(), 2*n.timeout+time.Second)
		if srv.Shutdown(shCtx) != nil {
			err = srv.Close()
		}
		cancel()
		<-errc
		if err != nil {
			err = fmt.Errorf("close server on %s: %w", ln.Addr(), err)
		}
	case err = <-errc:
		err = fmt.Errorf("serve on %s: %w", ln.Addr(), err)
	}
	stopProbe()
	n.bg.Wait()
	if n.ownTr != nil {
		n.ownTr.CloseIdleConnections()
	}
	if err == nil {
		n.log.Printf("node %d stopped", n.id)
	}
	return err
}
