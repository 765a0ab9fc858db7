package partition

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

func TestMain(m *testing.M) {
	if mode := os.Getenv("PONTOON_PT_HELPER"); mode != "" {
		os.Exit(helperMain(mode))
	}
	code := m.Run()
	closeBenchScenes()
	os.Exit(code)
}

// helperMain runs inside a guest namespace (started by scene.helperCmd).
func helperMain(mode string) int {
	var err error
	switch mode {
	case "serve":
		err = serve()
	case "probe":
		err = probe()
	case "stream":
		err = holdStream()
	default:
		err = fmt.Errorf("unknown helper mode %q", mode)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "helper:", err)
		return 1
	}
	return 0
}

// serve: TCP and UDP echo on port 7, UDP sink on port 9 printing
// "sink <payload>" lines. Ends when stdin closes or the process is killed.
func serve() error {
	// Dual-stack sockets: a scene with IPv6 addresses is probed over both families.
	tl, err := net.Listen("tcp", ":7")
	if err != nil {
		return err
	}
	ue, err := net.ListenPacket("udp", ":7")
	if err != nil {
		return err
	}
	us, err := net.ListenPacket("udp", ":9")
	if err != nil {
		return err
	}
	var outMu sync.Mutex
	say := func(s string) { outMu.Lock(); fmt.Println(s); outMu.Unlock() }
	go func() {
		for {
			c, err := tl.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				buf := make([]byte, 4096)
				for {
					n, err := c.Read(buf)
					if err != nil {
						return
					}
					if _, err := c.Write(buf[:n]); err != nil {
						return
					}
				}
			}()
		}
	}()
	go func() {
		buf := make([]byte, 2048)
		for {
			n, a, err := ue.ReadFrom(buf)
			if err != nil {
				return
			}
			_, _ = ue.WriteTo(buf[:n], a)
		}
	}()
	go func() {
		buf := make([]byte, 2048)
		for {
			n, _, err := us.ReadFrom(buf)
			if err != nil {
				return
			}
			say("sink " + string(buf[:n]))
		}
	}()
	say("ready")
	select {}
}

// classify names what a failed probe saw.
func classify(err error) string {
	var ne net.Error
	switch {
	case err == nil:
		return "ok"
	case errors.Is(err, syscall.ECONNREFUSED):
		return "refused"
	case errors.Is(err, syscall.EHOSTUNREACH), errors.Is(err, syscall.ENETUNREACH),
		errors.Is(err, syscall.EACCES): // what an ICMPv6 "administratively prohibited" becomes
		return "unreachable"
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE):
		return "reset"
	case errors.Is(err, syscall.ECONNABORTED):
		return "aborted"
	case errors.As(err, &ne) && ne.Timeout():
		return "timeout"
	}
	return "other: " + err.Error()
}

// probe: for each target NAME=IP in PT_TARGETS, send a sink datagram
// "TAG SRC NAME" and run TCP, UDP and ICMP round trips, all concurrently;
// print one JSON probeResult per probe.
func probe() error {
	src, tag := os.Getenv("PT_SRC"), os.Getenv("PT_TAG")
	ms, _ := strconv.Atoi(os.Getenv("PT_TIMEOUT_MS"))
	timeout := time.Duration(ms) * time.Millisecond
	v6 := strings.Contains(os.Getenv("PT_TARGETS"), ":")
	network, udp, tcp, echoReq, echoReply, unreach, innerLen, innerProto := "ip4:icmp", "udp4", "tcp4", byte(8), byte(0), byte(3), 20, byte(1)
	if v6 {
		network, udp, tcp, echoReq, echoReply, unreach, innerLen, innerProto = "ip6:ipv6-icmp", "udp6", "tcp6", 128, 129, 1, 40, 58
	}
	icmp, err := net.ListenPacket(network, "")
	if err != nil {
		return err
	}
	defer icmp.Close()
	var mu sync.Mutex
	icmpWait := map[uint16]chan string{}
	go func() {
		buf := make([]byte, 1500)
		for {
			n, _, err := icmp.ReadFrom(buf)
			if err != nil {
				return
			}
			var id uint16
			var res string
			switch {
			case n >= 8 && buf[0] == echoReply:
				id, res = uint16(buf[4])<<8|uint16(buf[5]), "ok"
			case n >= 8+innerLen+8 && buf[0] == unreach: // destination unreachable: IP header + 8 bytes of ours
				inner := buf[8:n]
				ihl, proto := innerLen, inner[6]
				if !v6 {
					ihl, proto = int(inner[0]&0x0f)*4, inner[9]
				}
				if len(inner) < ihl+8 || proto != innerProto {
					continue
				}
				id, res = uint16(inner[ihl+4])<<8|uint16(inner[ihl+5]), "unreachable"
			default:
				continue
			}
			mu.Lock()
			if ch, ok := icmpWait[id]; ok {
				select {
				case ch <- res:
				default:
				}
			}
			mu.Unlock()
		}
	}()

	enc := json.NewEncoder(os.Stdout)
	var outMu sync.Mutex
	emit := func(dst, proto, res string) {
		outMu.Lock()
		_ = enc.Encode(probeResult{Src: src, Dst: dst, Proto: proto, Result: res})
		outMu.Unlock()
	}
	var wg sync.WaitGroup
	for i, t := range strings.Split(os.Getenv("PT_TARGETS"), ",") {
		name, ip, _ := strings.Cut(t, "=")
		hostPort := net.JoinHostPort(ip, "7")
		if c, err := net.Dial(udp, net.JoinHostPort(ip, "9")); err == nil {
			_, _ = fmt.Fprintf(c, "%s %s %s", tag, src, name)
			c.Close()
		}
		wg.Add(3)
		go func() {
			defer wg.Done()
			c, err := net.DialTimeout(tcp, hostPort, timeout)
			if err == nil {
				_ = c.SetDeadline(time.Now().Add(timeout))
				_, err = c.Write([]byte("x"))
				if err == nil {
					_, err = c.Read(make([]byte, 1))
				}
				c.Close()
			}
			emit(name, "tcp", classify(err))
		}()
		go func() {
			defer wg.Done()
			c, err := net.Dial(udp, hostPort)
			if err == nil {
				_ = c.SetDeadline(time.Now().Add(timeout))
				_, err = c.Write([]byte("x"))
				if err == nil {
					_, err = c.Read(make([]byte, 16))
				}
				c.Close()
			}
			emit(name, "udp", classify(err))
		}()
		go func() {
			defer wg.Done()
			id := uint16(os.Getpid()&0xff)<<8 | uint16(i+1)
			ch := make(chan string, 1)
			mu.Lock()
			icmpWait[id] = ch
			mu.Unlock()
			msg := []byte{echoReq, 0, 0, 0, byte(id >> 8), byte(id), 0, 1, 'p', 't'}
			if !v6 { // the kernel sums ICMPv6 itself
				cs := checksum(msg)
				msg[2], msg[3] = byte(cs>>8), byte(cs)
			}
			if _, err := icmp.WriteTo(msg, &net.IPAddr{IP: net.ParseIP(ip)}); err != nil {
				emit(name, "icmp", classify(err))
				return
			}
			select {
			case res := <-ch:
				emit(name, "icmp", res)
			case <-time.After(timeout):
				emit(name, "icmp", "timeout")
			}
		}()
	}
	wg.Wait()
	return nil
}

func checksum(b []byte) uint16 {
	var sum uint32
	for i := 0; i+1 < len(b); i += 2 {
		sum += uint32(b[i])<<8 | uint32(b[i+1])
	}
	if len(b)%2 == 1 {
		sum += uint32(b[len(b)-1]) << 8
	}
	for sum > 0xffff {
		sum = sum>>16 + sum&0xffff
	}
	return ^uint16(sum)
}

// holdStream: connect to PT_DST:7, print "connected", then for each stdin
// line: "send" writes a byte and waits 300 ms for the echo; "wait" reads
// with a 5 s deadline, without sending. Each prints the classified result.
func holdStream() error {
	c, err := net.DialTimeout("tcp", net.JoinHostPort(os.Getenv("PT_DST"), "7"), 2*time.Second)
	if err != nil {
		fmt.Println("connect: " + classify(err))
		return nil
	}
	fmt.Println("connected")
	sc := bufio.NewScanner(os.Stdin)
	for sc.Scan() {
		var err error
		switch sc.Text() {
		case "send":
			_ = c.SetDeadline(time.Now().Add(300 * time.Millisecond))
			if _, err = c.Write([]byte("x")); err == nil {
				_, err = c.Read(make([]byte, 1))
			}
		case "wait":
			_ = c.SetDeadline(time.Now().Add(5 * time.Second))
			_, err = c.Read(make([]byte, 1))
		}
		fmt.Println(classify(err))
	}
	return nil
}

// constant is a state change that ignores the recorded state.
func constant(s State) func(State) (State, error) {
	return func(State) (State, error) { return s, nil }
}
