package kvstore

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// startSingle serves a one-node cluster, whose majority is itself, so the
// HTTP layer can be tested without peers.
func startSingle(t *testing.T) *httptest.Server {
	t.Helper()
	n, err := NewNode(Config{ID: 1, Peers: []string{"127.0.0.1:1"}, Logger: log.New(io.Discard, "", 0)})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(n.Handler())
	t.Cleanup(srv.Close)
	return srv
}

func TestHandlerAnswers(t *testing.T) {
	srv := startSingle(t)
	tests := []struct {
		name       string
		method     string
		path       string
		body       string
		wantCode   int
		wantInBody string
	}{
		{"put", "PUT", "/kv/k", "v1", 200, `"version":1`},
		{"put again raises version", "PUT", "/kv/k", "v2", 200, `"value":"v2","version":2,"writer":1`},
		{"get", "GET", "/kv/k", "", 200, `"key":"k","value":"v2"`},
		{"get missing", "GET", "/kv/missing", "", 404, `"error":"key \"missing\" not found"`},
		{"escaped slash is one key", "PUT", "/kv/a%2Fb", "x", 200, `"key":"a/b"`},
		{"escaped dots are a key", "PUT", "/kv/%2E%2E", "x", 200, `"key":".."`},
		{"key too long", "PUT", "/kv/" + strings.Repeat("k", MaxKeyBytes+1), "v", 400, "over the limit"},
		{"key not utf-8", "PUT", "/kv/%FF", "v", 400, "not valid UTF-8"},
		{"value not utf-8", "PUT", "/kv/k", "\xff\xfe", 400, "not valid UTF-8"},
		{"value too large", "PUT", "/kv/k", strings.Repeat("v", MaxValueBytes+1), 413, "over 1048576 bytes"},
		{"wrong method", "POST", "/kv/k", "v", 405, ""},
		{"health", "GET", "/health", "", 200, `"id":1,"addr":"127.0.0.1:1","nodes":1,"reachable":1,"quorum":true`},
		{"ping", "GET", "/ping", "", 200, `{"node":1,"nodes":1}`},
		{"replica get", "GET", "/replica/k", "", 200, `"node":1,"found":true,"value":"v2","version":2`},
		{"replica get missing", "GET", "/replica/none", "", 200, `"found":false`},
		{"replica put newer", "PUT", "/replica/k", `{"value":"r","version":9,"writer":1}`, 200, `"value":"r","version":9`},
		{"replica put older keeps newer", "PUT", "/replica/k", `{"value":"old","version":3,"writer":1}`, 200, `"value":"r","version":9`},
		{"replica put version 0", "PUT", "/replica/k", `{"value":"r","version":0,"writer":1}`, 400, "version 0 out of range"},
		{"replica put writer out of range", "PUT", "/replica/k", `{"value":"r","version":1,"writer":2}`, 400, "writer 2 out of range 1..1"},
		{"replica put bad json", "PUT", "/replica/k", `{"value":`, 400, "decode replica write"},
		{"get after replica put", "GET", "/kv/k", "", 200, `"value":"r","version":9`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, err := http.NewRequest(tt.method, srv.URL+tt.path, strings.NewReader(tt.body))
			if err != nil {
				t.Fatal(err)
			}
			resp, err := srv.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			body, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != tt.wantCode {
				t.Fatalf("%s %s: HTTP %d %s, want %d", tt.method, tt.path, resp.StatusCode, body, tt.wantCode)
			}
			if !strings.Contains(string(body), tt.wantInBody) {
				t.Errorf("%s %s: body %s, want it to contain %s", tt.method, tt.path, body, tt.wantInBody)
			}
			if tt.wantCode != 405 && !json.Valid(body) {
				t.Errorf("%s %s: body %q is not JSON", tt.method, tt.path, body)
			}
		})
	}
}

func TestClientKeysAndErrors(t *testing.T) {
	srv := startSingle(t)
	ctx := context.Background()
	c := NewClient(srv.URL, nil)
	for _, key := range []string{"plain", "a/b c", "ünï", "%41", ".", "..", "q?x#y", "a/../b"} {
		e, err := c.Put(ctx, key, "value of "+key)
		if err != nil {
			t.Fatalf("Put(%q): %v", key, err)
		}
		if e.Key != key || e.Version != 1 || e.Writer != 1 {
			t.Errorf("Put(%q) = %+v, want key %q version 1 writer 1", key, e, key)
		}
		got, err := c.Get(ctx, key)
		if err != nil {
			t.Fatalf("Get(%q): %v", key, err)
		}
		if got != e {
			t.Errorf("Get(%q) = %+v, want %+v", key, got, e)
		}
	}

	_, err := c.Get(ctx, "missing")
	if !errors.Is(err, ErrNotFound) {
		t.Errorf("Get(missing) error = %v, want ErrNotFound", err)
	}

	_, err = c.Put(ctx, "big", strings.Repeat("v", MaxValueBytes+1))
	var se *StatusError
	if !errors.As(err, &se) || se.Code != http.StatusRequestEntityTooLarge {
		t.Errorf("Put(big) error = %v, want *StatusError with code 413", err)
	}

	// A 404 that is not the node's own JSON answer is not a missing key.
	wrong := NewClient(srv.URL+"/elsewhere", nil)
	_, err = wrong.Get(ctx, "k")
	if errors.Is(err, ErrNotFound) || !errors.As(err, &se) || se.Code != http.StatusNotFound {
		t.Errorf("Get through wrong base path: error = %v, want *StatusError 404 that is not ErrNotFound", err)
	}

	h, err := c.Health(ctx)
	if err != nil || h.ID != 1 || !h.Quorum || len(h.Peers) != 1 || !h.Peers[0].Self {
		t.Errorf("Health() = %+v, %v; want node 1 with quorum and itself as only peer", h, err)
	}
}
