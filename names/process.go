package names

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/pontoon-dev/pontoon/internal/statefile"
	"github.com/pontoon-dev/pontoon/netsetup"
	"golang.org/x/sys/unix"
)

// ServeVerb is the hidden command line (after pontoon's global flags) that runs a detached
// server: `pontoon names serve --bridge NAME`.
var ServeVerb = []string{"names", "serve"}

// stopWait bounds how long Stop waits for a server to leave after SIGKILL.
const stopWait = 5 * time.Second

// Record says which process serves a bridge's names.
type Record struct {
	Bridge  string           `json:"bridge"`
	Process netsetup.Process `json:"process"`
	// Detached: a `pontoon names serve` process of its own, which Stop may signal; otherwise
	// the server runs inside a process that owns the bridge (`pontoon run`, a test).
	Detached bool      `json:"detached,omitempty"`
	Addr     string    `json:"addr"`
	Started  time.Time `json:"started"`
}

// State is what Status finds.
type State struct {
	Bridge  string  `json:"bridge"`
	Running bool    `json:"running"`
	Record  *Record `json:"record,omitempty"`
	// Problem says why a bridge has no running server; empty when it has one.
	Problem string `json:"problem,omitempty"`
}

// checkBridge refuses a bridge name before it is used in a file name.
func checkBridge(bridge string) error {
	if !netsetup.ValidName(bridge) {
		return fmt.Errorf("bridge name %q is invalid; use 1-63 letters, digits, '.', '_' or '-', starting with a letter or digit", bridge)
	}
	return nil
}

func recordDir(env netsetup.Env) string {
	state, _ := env.Dirs()
	return filepath.Join(state, "names")
}

func recordFile(env netsetup.Env, bridge string) string {
	return filepath.Join(recordDir(env), bridge+".json")
}

func writeRecord(env netsetup.Env, r Record) error {
	if err := os.MkdirAll(recordDir(env), 0o700); err != nil {
		return fmt.Errorf("create %s: %w", recordDir(env), err)
	}
	data, err := r.marshal()
	if err != nil {
		return fmt.Errorf("write state %s: %w", recordFile(env, r.Bridge), err)
	}
	return statefile.Write(recordFile(env, r.Bridge), append(data, '\n'), 0o600)
}

func readRecord(env netsetup.Env, bridge string) (*Record, error) {
	var r Record
	if err := statefile.ReadWith(recordFile(env, bridge), r.unmarshal); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, nil
		}
		return nil, err
	}
	return &r, nil
}

// removeRecordOf removes the bridge's record if p wrote it: a newer server's stays.
func removeRecordOf(env netsetup.Env, bridge string, p netsetup.Process) {
	if r, err := readRecord(env, bridge); err == nil && r != nil && r.Process == p {
		os.Remove(recordFile(env, bridge))
	}
}

// Status says whether a bridge's names are served, and by whom.
func Status(env netsetup.Env, bridge string) (State, error) {
	if err := checkBridge(bridge); err != nil {
		return State{}, err
	}
	st := State{Bridge: bridge}
	r, err := readRecord(env, bridge)
	if err != nil {
		return st, err
	}
	st.Record = r
	switch {
	case r == nil:
		st.Problem = "none runs (never started, or stopped); `pontoon gc` starts one"
	case !r.Process.Alive():
		st.Problem = fmt.Sprintf("the name server (pid %d) is gone: it was killed; `pontoon gc` or the next `pontoon guest add` starts a new one", r.Process.PID)
	default:
		st.Running = true
	}
	return st, nil
}

// Start starts a detached server for a bridge, exe being pontoon's executable, and returns
// once it answers; a bridge whose server runs already keeps it.
func Start(env netsetup.Env, bridge, exe string) error {
	if err := checkBridge(bridge); err != nil {
		return err
	}
	// One start at a time per bridge: two commands that both find the server gone (two
	// `guest add` after a kill) must not both start one.
	return statefile.Locked(lockFile(env, bridge), func() error {
		if st, err := Status(env, bridge); err != nil {
			return err
		} else if st.Running {
			return nil
		}
		return start(env, bridge, exe)
	})
}

// start starts a detached server. This process binds the server's sockets, hands them to the
// new process and records it: queries that come before that process reads its sockets wait
// in them, so the bridge answers names as soon as start returns, without waiting for the
// new process to get going.
func start(env netsetup.Env, bridge, exe string) error {
	if err := startServer(env, bridge, exe); err != nil {
		return fmt.Errorf("start name server of bridge %q: %w", bridge, err)
	}
	return nil
}

func startServer(env netsetup.Env, bridge, exe string) error {
	ap, netnsPath, err := serverAddr(env, bridge)
	if err != nil {
		return err
	}
	pc, ln, err := bind(netnsPath, ap)
	if err != nil {
		return fmt.Errorf("listen on %s in the bridge's namespace: %w", ap, err)
	}
	defer pc.Close()
	defer ln.Close()
	files, err := socketFiles(pc, ln)
	if err != nil {
		return err
	}
	defer func() {
		for _, f := range files {
			f.Close()
		}
	}()
	args := append(env.Args(), ServeVerb...)
	cmd := exec.Command(exe, append(args, "--bridge", bridge, "--"+InheritFlag)...)
	cmd.ExtraFiles = files // fds 3 and 4 (inheritedSockets)
	// Its own session: it outlives the command that started it and the terminal's signals.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	cmd.Dir = "/" // keeps no directory of the caller's busy
	if log, err := os.OpenFile(logFile(env, bridge), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600); err == nil {
		cmd.Stderr = log
		defer log.Close()
	}
	if err := cmd.Start(); err != nil {
		return err
	}
	p, err := netsetup.ProcessOf(cmd.Process.Pid)
	if err == nil {
		err = writeRecord(env, Record{Bridge: bridge, Process: p, Detached: true, Addr: ap.String(), Started: time.Now().UTC()})
	}
	if err != nil {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		return err
	}
	// Not waited for: it is reaped by init once this process is gone, and Stop finds it by
	// its record.
	return cmd.Process.Release()
}

// InheritFlag is the flag of `pontoon names serve` that says the server's sockets are its
// fds 3 (UDP) and 4 (TCP), and that it is recorded already.
const InheritFlag = "inherit"

func socketFiles(pc *net.UDPConn, ln *net.TCPListener) ([]*os.File, error) {
	uf, err := pc.File()
	if err != nil {
		return nil, err
	}
	tf, err := ln.File()
	if err != nil {
		uf.Close()
		return nil, err
	}
	return []*os.File{uf, tf}, nil
}

// inheritedSockets takes over the sockets start handed down.
func inheritedSockets() (*net.UDPConn, *net.TCPListener, error) {
	uf, tf := os.NewFile(3, "udp socket"), os.NewFile(4, "tcp socket")
	defer uf.Close()
	defer tf.Close()
	c, err := net.FilePacketConn(uf)
	if err != nil {
		return nil, nil, fmt.Errorf("inherited UDP socket (fd 3): %w", err)
	}
	pc, ok := c.(*net.UDPConn)
	if !ok {
		c.Close()
		return nil, nil, errors.New("inherited fd 3 is not a UDP socket")
	}
	l, err := net.FileListener(tf)
	if err != nil {
		pc.Close()
		return nil, nil, fmt.Errorf("inherited TCP socket (fd 4): %w", err)
	}
	ln, ok := l.(*net.TCPListener)
	if !ok {
		pc.Close()
		l.Close()
		return nil, nil, errors.New("inherited fd 4 is not a TCP listener")
	}
	return pc, ln, nil
}

// Serve runs a detached server for a bridge until its bridge goes or SIGTERM: `pontoon names
// serve`. Started by start (inherit), it serves the sockets it was handed and start has
// recorded it; otherwise it binds its sockets and records itself.
func Serve(env netsetup.Env, bridge string, inherit bool, term <-chan os.Signal) error {
	var s *Server
	var err error
	if inherit {
		var pc *net.UDPConn
		var ln *net.TCPListener
		if pc, ln, err = inheritedSockets(); err == nil {
			if err = awaitRecord(env, bridge); err != nil {
				pc.Close()
				ln.Close()
				return err
			}
			s, err = run(env, bridge, pc.LocalAddr().(*net.UDPAddr).AddrPort(), pc, ln, nil)
		}
	} else {
		s, err = listen(env, bridge, true)
	}
	if err != nil {
		return fmt.Errorf("serve names of bridge %q: %w", bridge, err)
	}
	select {
	case <-s.Done():
	case <-term:
	}
	s.Close()
	if s.bridgeGone() {
		// Nothing worth keeping: the bridge is gone.
		os.Remove(logFile(env, bridge))
		os.Remove(lockFile(env, bridge))
	}
	return nil
}

// awaitRecord returns once the process that started this server has recorded it, or an
// error when it ended without: a starter killed between starting the server and recording
// it would otherwise leave a server nobody knows of, holding the bridge's DNS address, so
// that the next start fails to bind it and status says none runs. The starter holds the
// bridge's lock from before the start until after the record, so taking the lock waits for
// exactly that, and no longer.
func awaitRecord(env netsetup.Env, bridge string) error {
	return statefile.Locked(lockFile(env, bridge), func() error {
		r, err := readRecord(env, bridge)
		if err != nil {
			return err
		}
		if r == nil || r.Process.PID != os.Getpid() {
			return fmt.Errorf("serve names of bridge %q: the command that started this server ended without recording it; leaving", bridge)
		}
		return nil
	})
}

// Stop stops a bridge's detached server and waits until it is gone. A server inside another
// process (`pontoon run`, a test) is left to that process: it leaves with the bridge.
// Stopping a bridge without a server succeeds.
func Stop(env netsetup.Env, bridge string) error {
	r, err := readRecord(env, bridge)
	if err != nil || r == nil {
		return err
	}
	if r.Process.Alive() {
		if !r.Detached {
			return nil
		}
		if err := terminate(r.Process); err != nil {
			return fmt.Errorf("stop name server of bridge %q: %w", bridge, err)
		}
	}
	if err := os.Remove(recordFile(env, bridge)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("stop name server of bridge %q: %w", bridge, err)
	}
	os.Remove(logFile(env, bridge))
	os.Remove(lockFile(env, bridge))
	return nil
}

func lockFile(env netsetup.Env, bridge string) string {
	return filepath.Join(recordDir(env), bridge+".lock")
}

func logFile(env netsetup.Env, bridge string) string {
	return filepath.Join(recordDir(env), bridge+".log")
}

// terminate ends a detached server and returns once it is gone. It keeps nothing that needs
// a graceful stop (Stop removes its record and files), so it gets SIGKILL, and its pidfd says
// when it has exited, its sockets closed.
func terminate(p netsetup.Process) error {
	fd, err := unix.PidfdOpen(p.PID, 0)
	if errors.Is(err, unix.ESRCH) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("open process %d: %w", p.PID, err)
	}
	defer unix.Close(fd)
	// The pid may have been reused before the pidfd was opened: it must still be p.
	if !p.Alive() {
		return nil
	}
	if err := unix.PidfdSendSignal(fd, unix.SIGKILL, nil, 0); err != nil {
		if errors.Is(err, unix.ESRCH) {
			return nil
		}
		return fmt.Errorf("kill process %d: %w", p.PID, err)
	}
	deadline := time.Now().Add(stopWait)
	for {
		left := time.Until(deadline)
		if left <= 0 {
			return fmt.Errorf("process %d is still there %s after SIGKILL", p.PID, stopWait)
		}
		n, err := unix.Poll([]unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}, int(left.Milliseconds())+1)
		if err != nil && !errors.Is(err, unix.EINTR) {
			return fmt.Errorf("wait for process %d: %w", p.PID, err)
		}
		if n > 0 {
			return nil
		}
	}
}

// Ensure starts a detached server for a ready bridge whose server is gone (killed) or was
// never started, and reports whether it did.
func Ensure(env netsetup.Env, bridge, exe string) (bool, error) {
	st, err := Status(env, bridge)
	if err != nil || st.Running {
		return false, err
	}
	b, err := netsetup.GetBridge(env, bridge)
	if err != nil {
		return false, err
	}
	if b.Phase != netsetup.PhaseReady {
		return false, nil
	}
	if err := Start(env, bridge, exe); err != nil {
		return false, err
	}
	return true, nil
}

// Report is what Collect did.
type Report struct {
	Stopped   []string // servers of bridges that are gone
	Restarted []string // servers started for bridges that had none running
}

// Collect stops the servers of bridges that are gone or being removed and starts one for
// each ready bridge whose server is gone while its gateway is there, exe being pontoon's
// executable: gc's part for names.
func Collect(env netsetup.Env, exe string) (Report, error) {
	var rep Report
	var errs []error
	ents, err := os.ReadDir(recordDir(env))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return rep, fmt.Errorf("list name servers: %w", err)
	}
	bridges, err := netsetup.Bridges(env)
	if err != nil {
		return rep, err
	}
	live := map[string]bool{}
	for _, b := range bridges {
		if b.Phase == netsetup.PhaseRemoving {
			continue // on its way out: its server goes, as a gone bridge's does
		}
		live[b.Name] = b.Phase == netsetup.PhaseReady
	}
	for _, e := range ents {
		// A record's write killed before its rename, of a bridge that is gone: a live bridge's
		// server may be writing its record now (a server inside `pontoon run` writes it
		// without the bridge's lock), and its next write replaces the file anyway.
		if name, ok := strings.CutSuffix(e.Name(), ".json"+statefile.TempSuffix); ok && netsetup.ValidName(name) {
			if _, exists := live[name]; exists {
				continue
			}
			tmp := filepath.Join(recordDir(env), e.Name())
			if err := statefile.Locked(lockFile(env, name), func() error { return os.Remove(tmp) }); err != nil && !errors.Is(err, os.ErrNotExist) {
				errs = append(errs, err)
			}
			if _, err := os.Stat(recordFile(env, name)); errors.Is(err, os.ErrNotExist) {
				os.Remove(lockFile(env, name))
			}
			continue
		}
		name, ok := strings.CutSuffix(e.Name(), ".json")
		if !ok || !netsetup.ValidName(name) {
			continue
		}
		if _, exists := live[name]; exists {
			continue
		}
		r, err := readRecord(env, name)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if r != nil && r.Process.Alive() && !r.Detached {
			continue // its process leaves with the bridge it owns
		}
		if err := Stop(env, name); err != nil {
			errs = append(errs, err)
			continue
		}
		rep.Stopped = append(rep.Stopped, name)
	}
	// Bridges cut off from a gateway that is gone get no server: down --force, the only
	// way on for them, would have to stop it again.
	there, err := netsetup.GatewayThere(env)
	if err != nil {
		errs = append(errs, err)
	}
	for _, b := range bridges {
		if !there || !live[b.Name] || b.Problem != "" {
			continue
		}
		started, err := Ensure(env, b.Name, exe)
		if errors.Is(err, netsetup.ErrNoBridge) {
			continue // destroyed since the bridges were listed: no server to keep
		}
		if err != nil {
			errs = append(errs, err)
		} else if started {
			rep.Restarted = append(rep.Restarted, b.Name)
		}
	}
	return rep, errors.Join(errs...)
}

// GuestResolvConf is the resolv.conf a guest of bridge should have: one naming the bridge's
// name server when it runs, else the resolvers guests use without one.
func GuestResolvConf(env netsetup.Env, bridge string) ([]byte, error) {
	if st, err := Status(env, bridge); err == nil && st.Running {
		return ResolvConf(env)
	}
	return netsetup.GuestResolvConf(env)
}

// ResolvConfFile writes ResolvConf into the bridge's data directory and returns its path, for a
// command entering a guest that has no files of its own (`pontoon exec` into a namespace
// pontoon created); "" when the bridge's name server is not running, so that the command
// keeps the host's resolvers rather than one that does not answer.
func ResolvConfFile(env netsetup.Env, bridge string) (string, error) {
	st, err := Status(env, bridge)
	if err != nil || !st.Running {
		return "", err
	}
	rc, err := ResolvConf(env)
	if err != nil {
		return "", err
	}
	// In the bridge's data directory: it goes with the bridge.
	path := filepath.Join(env.BridgeDataDir(bridge), "resolv.conf")
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return "", fmt.Errorf("write %s: %w", path, err)
	}
	if err := statefile.Write(path, rc, 0o644); err != nil {
		return "", fmt.Errorf("write %s: %w", path, err)
	}
	return path, nil
}

// lastLine is the last line of a log, which says why a server did not start.
func lastLine(path string) string {
	data, _ := os.ReadFile(path)
	lines := strings.Split(strings.TrimSpace(string(data)), "\n")
	return fmt.Sprintf("%s (log %s)", lines[len(lines)-1], path)
}
