package names

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/pontoon-dev/pontoon/internal/statefile"
	"github.com/pontoon-dev/pontoon/netsetup"
)

// ServeVerb is the hidden command line (after pontoon's global flags) that runs a detached
// server: `pontoon names serve --bridge NAME`.
var ServeVerb = []string{"names", "serve"}

// stopWait bounds how long Stop waits for a server to leave after SIGTERM, then SIGKILL.
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
	return statefile.WriteJSON(recordFile(env, r.Bridge), r)
}

func readRecord(env netsetup.Env, bridge string) (*Record, error) {
	var r Record
	if err := statefile.ReadJSON(recordFile(env, bridge), &r); err != nil {
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
		st.Problem = "no name server was started for this bridge"
	case !r.Process.Running():
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

func start(env netsetup.Env, bridge, exe string) error {
	args := append(env.Args(), ServeVerb...)
	cmd := exec.Command(exe, append(args, "--bridge", bridge)...)
	// Its own session: it outlives the command that started it and the terminal's signals.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	cmd.Dir = "/" // keeps no directory of the caller's busy
	if log, err := os.OpenFile(logFile(env, bridge), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600); err == nil {
		cmd.Stderr = log
		defer log.Close()
	}
	ready, err := cmd.StdoutPipe()
	if err != nil {
		return fmt.Errorf("start name server of bridge %q: %w", bridge, err)
	}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start name server of bridge %q: %w", bridge, err)
	}
	// The server says "ready" once it answers and is recorded; it never writes anything else.
	line, _ := bufio.NewReader(ready).ReadString('\n')
	ready.Close()
	if strings.TrimSpace(line) != "ready" {
		err := cmd.Wait()
		return fmt.Errorf("start name server of bridge %q: it exited (%v) before serving: %s", bridge, err, lastLine(logFile(env, bridge)))
	}
	// Not waited for: it is reaped by init once this process is gone, and Stop finds it by
	// its record.
	return cmd.Process.Release()
}

// Serve runs a detached server for a bridge until its bridge goes or SIGTERM; it writes
// "ready" to ready once it answers. This is `pontoon names serve`.
func Serve(env netsetup.Env, bridge string, ready io.WriteCloser, term <-chan os.Signal) error {
	s, err := listen(env, bridge, true)
	if err != nil {
		return fmt.Errorf("serve names of bridge %q: %w", bridge, err)
	}
	fmt.Fprintln(ready, "ready")
	ready.Close()
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

// Stop stops a bridge's detached server and waits until it is gone. A server inside another
// process (`pontoon run`, a test) is left to that process: it leaves with the bridge.
// Stopping a bridge without a server succeeds.
func Stop(env netsetup.Env, bridge string) error {
	r, err := readRecord(env, bridge)
	if err != nil || r == nil {
		return err
	}
	if r.Process.Running() {
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

// terminate sends SIGTERM, then SIGKILL after stopWait, and returns once p is gone.
func terminate(p netsetup.Process) error {
	proc, _ := os.FindProcess(p.PID)
	_ = proc.Signal(syscall.SIGTERM)
	deadline := time.Now().Add(stopWait)
	killed := false
	for pause := 200 * time.Microsecond; p.Running(); pause = min(2*pause, 20*time.Millisecond) {
		if time.Now().After(deadline) {
			if killed {
				return fmt.Errorf("process %d is still there %s after SIGKILL", p.PID, stopWait)
			}
			_ = proc.Signal(syscall.SIGKILL)
			killed, deadline = true, time.Now().Add(stopWait)
		}
		time.Sleep(pause)
	}
	return nil
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

// Collect stops the servers of bridges that are gone and starts one for each ready bridge
// whose server is gone, exe being pontoon's executable: gc's part for names.
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
		live[b.Name] = b.Phase == netsetup.PhaseReady
	}
	for _, e := range ents {
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
		if r != nil && r.Process.Running() && !r.Detached {
			continue // its process leaves with the bridge it owns
		}
		if err := Stop(env, name); err != nil {
			errs = append(errs, err)
			continue
		}
		rep.Stopped = append(rep.Stopped, name)
	}
	for _, b := range bridges {
		if !live[b.Name] || b.Problem != "" {
			continue
		}
		started, err := Ensure(env, b.Name, exe)
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
