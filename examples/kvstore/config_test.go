package kvstore

import (
	"io"
	"log"
	"strings"
	"testing"
	"time"
)

func TestParsePeers(t *testing.T) {
	tests := []struct {
		in      string
		want    []string
		wantErr string
	}{
		{in: "172.18.0.1:7000,172.18.0.2:7000,172.18.0.3:7000", want: []string{"172.18.0.1:7000", "172.18.0.2:7000", "172.18.0.3:7000"}},
		{in: " a:1 , b:2 ", want: []string{"a:1", "b:2"}},
		{in: "[::1]:7000", want: []string{"[::1]:7000"}},
		{in: "", wantErr: "empty"},
		{in: "a:1,,b:2", wantErr: "entry 2"},
		{in: "a", wantErr: "host:port"},
		{in: ":7000", wantErr: "empty host"},
		{in: "a:0", wantErr: "out of range"},
		{in: "a:70000", wantErr: "out of range"},
		{in: "a:http", wantErr: "out of range"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParsePeers(tt.in)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("ParsePeers(%q) error = %v, want one containing %q", tt.in, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParsePeers(%q): %v", tt.in, err)
			}
			if strings.Join(got, "|") != strings.Join(tt.want, "|") {
				t.Errorf("ParsePeers(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

func TestNewNodeConfig(t *testing.T) {
	three := []string{"10.0.0.1:7000", "10.0.0.2:7000", "10.0.0.3:7000"}
	quiet := log.New(io.Discard, "", 0)
	tests := []struct {
		name    string
		cfg     Config
		wantErr string
	}{
		{"valid", Config{ID: 2, Peers: three}, ""},
		{"single node", Config{ID: 1, Peers: three[:1]}, ""},
		{"no peers", Config{ID: 1}, "peers: empty"},
		{"id zero", Config{ID: 0, Peers: three}, "id 0 out of range 1..3"},
		{"id too high", Config{ID: 4, Peers: three}, "id 4 out of range 1..3"},
		{"duplicate peer", Config{ID: 1, Peers: []string{"a:1", "b:1", "a:1"}}, "node 1 and node 3"},
		{"bad peer", Config{ID: 1, Peers: []string{"a:1", "b"}}, "entry 2"},
		{"negative timeout", Config{ID: 1, Peers: three, Timeout: -time.Second}, "timeout -1s is negative"},
		{"negative probe", Config{ID: 1, Peers: three, Probe: -time.Second}, "probe -1s is negative"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.cfg.Logger = quiet
			n, err := NewNode(tt.cfg)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("NewNode error = %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("NewNode: %v", err)
			}
			if n.ID() != tt.cfg.ID || n.Addr() != tt.cfg.Peers[tt.cfg.ID-1] {
				t.Errorf("node is %d at %s, want %d at %s", n.ID(), n.Addr(), tt.cfg.ID, tt.cfg.Peers[tt.cfg.ID-1])
			}
			if n.timeout != DefaultTimeout {
				t.Errorf("timeout = %v, want default %v", n.timeout, DefaultTimeout)
			}
			if got := n.DefaultListen(); got != ":7000" {
				t.Errorf("DefaultListen() = %q, want :7000", got)
			}
		})
	}
}
