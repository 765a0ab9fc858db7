package main

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/gopacket/pcapgo"
	"github.com/pontoon-dev/pontoon/netsetup"
	"github.com/pontoon-dev/pontoon/netsetup/probe"
	"github.com/pontoon-dev/pontoon/testenv"
)

// TestWriteToStandardOutput runs `-w -`, as tcpdump users pipe a capture into Wireshark:
// the pcapng stream is on standard output, and no file called "-" is made.
func TestWriteToStandardOutput(t *testing.T) {
	env := testenv.New(t)
	n1 := env.Guest("n1", "172.18.0.1")
	n2 := env.Guest("n2", "172.18.0.2")
	for _, kv := range env.Sandbox().Env.Environ() {
		k, v, _ := strings.Cut(kv, "=")
		t.Setenv(k, v)
	}
	t.Chdir(t.TempDir())
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout := os.Stdout
	os.Stdout = w
	t.Cleanup(func() { os.Stdout = stdout })
	var out bytes.Buffer
	read := make(chan struct{})
	go func() { io.Copy(&out, r); close(read) }()
	done := make(chan error, 1)
	go func() { done <- run([]string{"-w", "-", "--count", "3", "--", env.Bridge().Name}); w.Close() }()

	fr := probe.Frame(netsetup.GuestMAC(n2.IP()), netsetup.GuestMAC(n1.IP()), probe.EtherIPv4, probe.IPv4UDP(n1.IP(), n2.IP(), 9999, "to-stdout"))
	deadline := time.Now().Add(30 * time.Second)
	for err = nil; ; {
		select {
		case err = <-done:
		case <-time.After(20 * time.Millisecond):
			if time.Now().After(deadline) {
				t.Fatal("the capture did not stop after 3 packets")
			}
			if err := probe.SendFrames(n1.Netns(), fr); err != nil {
				t.Fatal(err)
			}
			continue
		}
		break
	}
	if err != nil {
		t.Fatal(err)
	}
	<-read
	if _, err := os.Stat("-"); err == nil {
		t.Error(`a file called "-" was written`)
	}
	ng, err := pcapgo.NewNgReader(bytes.NewReader(out.Bytes()), pcapgo.DefaultNgReaderOptions)
	if err != nil {
		t.Fatalf("standard output (%d bytes) is not pcapng: %v", out.Len(), err)
	}
	n := 0
	for ; ; n++ {
		if _, _, err := ng.ReadPacketData(); err != nil {
			break
		}
	}
	if n != 3 {
		t.Errorf("standard output holds %d packets, want 3", n)
	}
}

// TestUnwritableFileNamed checks that a file that cannot be created is named as the user wrote
// it, not by the temporary name the capture is first written under.
func TestUnwritableFileNamed(t *testing.T) {
	env := testenv.New(t)
	env.Guest("n1", "172.18.0.1")
	for _, kv := range env.Sandbox().Env.Environ() {
		k, v, _ := strings.Cut(kv, "=")
		t.Setenv(k, v)
	}
	path := filepath.Join(t.TempDir(), "missing", "x.pcapng")
	err := run([]string{"-w", path, "--", env.Bridge().Name})
	if err == nil || !strings.Contains(err.Error(), "create "+path+": no such file or directory") || strings.Contains(err.Error(), ".x.pcapng.") {
		t.Fatalf("error %v; want it to name %s", err, path)
	}
}
