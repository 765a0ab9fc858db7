package kvstore

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// DefaultClientTimeout bounds a whole Client request when the caller's
// context has no earlier deadline.
const DefaultClientTimeout = 10 * time.Second

// defaultClientTransport is shared by Clients built without an http.Client,
// so creating many Clients does not leak idle connections.
var defaultClientTransport = &http.Transport{
	Proxy:               nil, // nodes sit on a local bridge, never behind a proxy
	DialContext:         (&net.Dialer{Timeout: 3 * time.Second, KeepAlive: 15 * time.Second}).DialContext,
	MaxIdleConnsPerHost: 8,
	IdleConnTimeout:     30 * time.Second,
}

// Client talks to one node's HTTP API. It is safe for concurrent use.
//
// Errors wrap ErrNoQuorum (as a *NoQuorumError) for HTTP 503, ErrNotFound
// for HTTP 404 and *StatusError for other non-200 answers; transport errors
// (node down, refused, timed out) are returned wrapped as they come.
type Client struct {
	addr string // as given, for error messages
	base string // scheme://host:port
	hc   *http.Client
}

// NewClient returns a client for the node at addr, "host:port" or
// "http://host:port". A nil hc means a client with DefaultClientTimeout that
// ignores proxy settings.
func NewClient(addr string, hc *http.Client) *Client {
	base := strings.TrimRight(addr, "/")
	if !strings.Contains(base, "://") {
		base = "http://" + base
	}
	if hc == nil {
		hc = &http.Client{Transport: defaultClientTransport, Timeout: DefaultClientTimeout}
	}
	return &Client{addr: addr, base: base, hc: hc}
}

// Addr returns the node address the client was created with.
func (c *Client) Addr() string { return c.addr }

// Put stores value under key through the node and returns the stored entry
// once a majority of nodes holds it. On an error wrapping ErrNoQuorum with
// Phase PhaseQuery nothing was written; with PhaseStore, and on transport
// errors, the outcome is unknown.
func (c *Client) Put(ctx context.Context, key, value string) (Entry, error) {
	var e Entry
	if err := c.do(ctx, http.MethodPut, "/kv/"+escapeKey(key), strings.NewReader(value), &e); err != nil {
		return Entry{}, fmt.Errorf("put %q on %s: %w", key, c.addr, err)
	}
	return e, nil
}

// Get returns the latest value of key, read from a majority of nodes.
func (c *Client) Get(ctx context.Context, key string) (Entry, error) {
	var e Entry
	if err := c.do(ctx, http.MethodGet, "/kv/"+escapeKey(key), nil, &e); err != nil {
		return Entry{}, fmt.Errorf("get %q on %s: %w", key, c.addr, err)
	}
	return e, nil
}

// Health asks the node which nodes it can reach right now.
func (c *Client) Health(ctx context.Context) (Health, error) {
	var h Health
	if err := c.do(ctx, http.MethodGet, "/health", nil, &h); err != nil {
		return Health{}, fmt.Errorf("health of %s: %w", c.addr, err)
	}
	return h, nil
}

func (c *Client) do(ctx context.Context, method, path string, body io.Reader, out any) error {
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, body)
	if err != nil {
		return err
	}
	if body != nil {
		req.Header.Set("Content-Type", "text/plain; charset=utf-8")
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return decodeError(resp)
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 8*MaxValueBytes)).Decode(out); err != nil {
		return fmt.Errorf("decode answer: %w", err)
	}
	return nil
}

// decodeError turns a non-200 answer into ErrNotFound, *NoQuorumError or
// *StatusError.
func decodeError(resp *http.Response) error {
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	var eb errorBody
	// Only the node's own answers are JSON; a 404 from a wrong path or a
	// proxy in between is not a missing key.
	fromNode := json.Unmarshal(raw, &eb) == nil && eb.Error != ""
	if !fromNode {
		eb = errorBody{Error: strings.TrimSpace(string(raw))}
	}
	switch {
	case resp.StatusCode == http.StatusNotFound && fromNode:
		return ErrNotFound
	case resp.StatusCode == http.StatusServiceUnavailable && eb.Nodes > 0:
		return &NoQuorumError{Reached: eb.Reached, Nodes: eb.Nodes, Phase: eb.Phase}
	}
	return &StatusError{Code: resp.StatusCode, Message: eb.Error}
}

// escapeKey makes key one path segment. "." and ".." are escaped by hand
// because URL paths treat them as directory steps, not names.
func escapeKey(key string) string {
	s := url.PathEscape(key)
	if s == "." || s == ".." {
		s = strings.ReplaceAll(s, ".", "%2E")
	}
	return s
}
