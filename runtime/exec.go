package runtime

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"

	"github.com/pontoon-dev/pontoon/netsetup"
	"github.com/pontoon-dev/pontoon/netsetup/ns"
	"golang.org/x/sys/unix"
)

// Exec runs argv as guest of bridge, with the caller's stdio, and returns its exit status.
//
// A guest attached from a container (by the hook, or `guest add --pid`) is entered the way
// `docker exec` enters a container: every namespace of its process (mount, UTS, IPC, PID,
// network, cgroup, user where they differ), its root and working directory, and its
// environment; so the command sees the container's hostname, /etc/hosts, resolv.conf and
// mounts. When that process is visible here, Exec runs nsenter(1) and passes signals only
// the caller receives (kill) on to the command. When it is not -- the caller runs in a pid
// namespace of its own, as a bridge child of `pontoon run` does -- the run that owns the
// bridge executes the command on the caller's behalf (see serveExec): the caller's stdio is
// handed over, signals it receives (SIGINT, SIGTERM, SIGHUP, SIGQUIT) are passed on, and
// the command's status comes back.
//
// Any other guest (a namespace pontoon created, or one attached by path) is entered in its
// network and UTS namespaces only, with the caller's environment and PONTOON_BRIDGE,
// PONTOON_GUEST and PONTOON_IP added, and, while the bridge's name server runs, a private
// /etc/resolv.conf naming it; Exec then replaces the calling process too.
func Exec(env netsetup.Env, bridge, guest string, argv []string) (int, error) {
	if len(argv) == 0 {
		return ExitSetupFailed, errors.New("exec: no command given")
	}
	g, err := findStartedGuest(env, bridge, guest)
	if err != nil {
		return ExitSetupFailed, err
	}
	if g.Process == nil {
		environ := append(os.Environ(), "PONTOON_BRIDGE="+bridge, "PONTOON_GUEST="+g.Name, fmt.Sprintf("PONTOON_IP=%v", g.IP))
		err := ns.ExecWithBinds(g.Namespaces(), execBinds(env, bridge), argv, environ)
		return execFailedCode(err), err
	}
	if g.Process.Visible() && g.Process.Alive() {
		code, err := execVisible(g.Process.PID, argv)
		if err != nil {
			err = fmt.Errorf("exec in guest %s of bridge %s: %w", g.Name, bridge, err)
		}
		return code, err
	}
	sock := execSocket(env, bridge)
	if _, err := os.Stat(sock); err != nil {
		return ExitSetupFailed, fmt.Errorf("exec in guest %s of bridge %s: its container's process %d is not visible here (another pid namespace, or it has exited) and no run of the bridge serves exec at %s", g.Name, bridge, g.Process.PID, sock)
	}
	return relayExec(sock, execRequest{Guest: g.Name, Argv: argv, Term: os.Getenv("TERM")})
}

// execFailedCode is the status of a command that could not be started, as shells, nsenter(1)
// and `docker exec` give it: 127 when it is not found, 126 when it cannot be executed, and
// ExitSetupFailed when the failure was pontoon's own.
func execFailedCode(err error) int {
	var ce ns.CommandError
	if !errors.As(err, &ce) {
		return ExitSetupFailed
	}
	switch {
	case errors.Is(err, exec.ErrNotFound), errors.Is(err, fs.ErrNotExist):
		return 127
	case errors.Is(err, fs.ErrPermission), errors.Is(err, syscall.ENOEXEC), errors.Is(err, syscall.EISDIR):
		return 126
	}
	return ExitSetupFailed
}

// nsenterCommand prepares argv to run in every namespace, the root and the working
// directory of the container process pid, with that process's environment and TERM set to
// term (when not empty); argv[0] is looked up on the container's PATH.
func nsenterCommand(pid int, argv []string, term string) (*exec.Cmd, error) {
	nsenter, err := lookTool("nsenter", "util-linux")
	if err != nil {
		return nil, err
	}
	environ, err := processEnv(pid)
	if err != nil {
		return nil, err
	}
	args := append([]string{"--target", strconv.Itoa(pid)}, nsenterAll(pid)...)
	args = append(args, "--root", "--wd", "--")
	cmd := exec.Command(nsenter, append(args, argv...)...)
	cmd.Env = setTerm(environ, term)
	return cmd, nil
}

// processEnv returns the environment pid started with: a container's own.
func processEnv(pid int) ([]string, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", pid))
	if err != nil {
		return nil, fmt.Errorf("read the environment of process %d: %w", pid, err)
	}
	var env []string
	for _, kv := range bytes.Split(data, []byte{0}) {
		if len(kv) > 0 {
			env = append(env, string(kv))
		}
	}
	return env, nil
}

func setTerm(env []string, term string) []string {
	if term == "" {
		return env
	}
	out := env[:0:0]
	for _, kv := range env {
		if !strings.HasPrefix(kv, "TERM=") {
			out = append(out, kv)
		}
	}
	return append(out, "TERM="+term)
}

// execSocket is where the run owning bridge serves exec for callers in other pid
// namespaces; it is under the state directory, which bridge children share.
func execSocket(env netsetup.Env, bridge string) string {
	return filepath.Join(env.BridgeDataDir(bridge), "exec.sock")
}

// execRequest asks a run to execute a command in one of its guests; the caller's stdin,
// stdout and stderr travel with it as SCM_RIGHTS.
type execRequest struct {
	Guest string   `json:"guest"`
	Argv  []string `json:"argv"`
	Term  string   `json:"term,omitempty"`
}

// execMessage goes both ways after the request: a signal for the command, or its status.
type execMessage struct {
	Signal int    `json:"signal,omitempty"`
	Code   *int   `json:"code,omitempty"`
	Error  string `json:"error,omitempty"`
}

// relayExec sends req and the caller's stdio to the run serving sock, passes signals on
// and returns the command's status.
func relayExec(sock string, req execRequest) (int, error) {
	conn, err := net.DialUnix("unix", nil, &net.UnixAddr{Name: sock, Net: "unix"})
	if err != nil {
		return ExitSetupFailed, fmt.Errorf("exec in guest %s: reach the run at %s: %w", req.Guest, sock, err)
	}
	defer conn.Close()
	data, _ := json.Marshal(req)
	if _, _, err := conn.WriteMsgUnix(data, unix.UnixRights(0, 1, 2), nil); err != nil {
		return ExitSetupFailed, fmt.Errorf("exec in guest %s: send the request to %s: %w", req.Guest, sock, err)
	}
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, unix.SIGINT, unix.SIGTERM, unix.SIGHUP, unix.SIGQUIT)
	defer signal.Stop(sigs)
	var wmu sync.Mutex
	enc := json.NewEncoder(conn)
	done := make(chan struct{})
	defer close(done)
	go func() {
		for {
			select {
			case s := <-sigs:
				wmu.Lock()
				enc.Encode(execMessage{Signal: int(s.(syscall.Signal))})
				wmu.Unlock()
			case <-done:
				return
			}
		}
	}()
	var reply execMessage
	if err := json.NewDecoder(conn).Decode(&reply); err != nil {
		return ExitSetupFailed, fmt.Errorf("exec in guest %s: the run at %s did not answer: %w", req.Guest, sock, err)
	}
	if reply.Error != "" {
		return ExitSetupFailed, fmt.Errorf("exec in guest %s: %s", req.Guest, reply.Error)
	}
	if reply.Code == nil {
		return ExitSetupFailed, fmt.Errorf("exec in guest %s: the run at %s sent no status", req.Guest, sock)
	}
	return *reply.Code, nil
}

// execServer executes commands in the guests of one bridge for callers that cannot see
// their containers' processes.
type execServer struct {
	env    netsetup.Env
	bridge string
	ln     *net.UnixListener
	wg     sync.WaitGroup
	mu     sync.Mutex
	procs  map[*os.Process]bool
	closed bool
}

// serveExec serves exec requests for the guests of bridge at its exec socket until Close.
func serveExec(env netsetup.Env, bridge string) (*execServer, error) {
	sock := execSocket(env, bridge)
	if len(sock) >= len(unix.RawSockaddrUnix{}.Path) {
		return nil, fmt.Errorf("serve exec for bridge %s: socket path %s is longer than a unix socket allows; use a shorter state directory", bridge, sock)
	}
	if err := os.MkdirAll(filepath.Dir(sock), 0o700); err != nil {
		return nil, fmt.Errorf("serve exec for bridge %s: %w", bridge, err)
	}
	os.Remove(sock) // a dead run's of the same name
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: sock, Net: "unix"})
	if err != nil {
		return nil, fmt.Errorf("serve exec for bridge %s: %w", bridge, err)
	}
	s := &execServer{env: env, bridge: bridge, ln: ln, procs: map[*os.Process]bool{}}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for {
			conn, err := ln.AcceptUnix()
			if err != nil {
				return
			}
			s.wg.Add(1)
			go func() { defer s.wg.Done(); defer conn.Close(); s.handle(conn) }()
		}
	}()
	return s, nil
}

// Close stops serving, kills commands still running and removes the socket.
func (s *execServer) Close() {
	s.ln.Close() // removes the socket file too
	s.mu.Lock()
	s.closed = true
	for p := range s.procs {
		killGroup(p)
	}
	s.mu.Unlock()
	s.wg.Wait()
}

func (s *execServer) handle(conn *net.UnixConn) {
	enc := json.NewEncoder(conn)
	fail := func(format string, args ...any) { enc.Encode(execMessage{Error: fmt.Sprintf(format, args...)}) }
	buf := make([]byte, 1<<16)
	oob := make([]byte, unix.CmsgSpace(3*4))
	n, oobn, _, _, err := conn.ReadMsgUnix(buf, oob)
	if err != nil {
		return
	}
	files, err := receivedFiles(oob[:oobn])
	defer func() {
		for _, f := range files {
			f.Close()
		}
	}()
	if err != nil || len(files) != 3 {
		fail("the request must carry stdin, stdout and stderr: %v", err)
		return
	}
	var req execRequest
	if err := json.Unmarshal(buf[:n], &req); err != nil || len(req.Argv) == 0 {
		fail("bad request: %v", err)
		return
	}
	g, err := findStartedGuest(s.env, s.bridge, req.Guest)
	if err != nil {
		fail("%v", err)
		return
	}
	if g.Process == nil || !g.Process.Alive() {
		fail("guest %s of bridge %s has no running container", g.Name, s.bridge)
		return
	}
	cmd, err := nsenterCommand(g.Process.PID, req.Argv, req.Term)
	if err != nil {
		fail("%v", err)
		return
	}
	cmd.Stdin, cmd.Stdout, cmd.Stderr = files[0], files[1], files[2]
	// nsenter forks to enter the pid namespace and passes no signal on to the command, so
	// its process group is what holds the command; see signalCommand.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		fail("the run is ending")
		return
	}
	if err := cmd.Start(); err != nil {
		s.mu.Unlock()
		fail("start nsenter: %v", err)
		return
	}
	s.procs[cmd.Process] = true
	s.mu.Unlock()
	// Signals from the caller; its going away (EOF) kills the command, as a terminal
	// hang-up would.
	exited := make(chan struct{})
	go func() {
		dec := json.NewDecoder(conn)
		for {
			var m execMessage
			if err := dec.Decode(&m); err != nil {
				select {
				case <-exited:
				default:
					killGroup(cmd.Process)
				}
				return
			}
			if m.Signal > 0 {
				select {
				case <-exited:
				default:
					signalCommand(cmd.Process.Pid, cmd.Path, syscall.Signal(m.Signal))
				}
			}
		}
	}()
	err = cmd.Wait()
	close(exited)
	s.mu.Lock()
	delete(s.procs, cmd.Process)
	s.mu.Unlock()
	code := exitCode(cmd.ProcessState, err)
	enc.Encode(execMessage{Code: &code})
}

func receivedFiles(oob []byte) ([]*os.File, error) {
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		return nil, err
	}
	var files []*os.File
	for _, m := range msgs {
		fds, err := unix.ParseUnixRights(&m)
		if err != nil {
			return files, err
		}
		for _, fd := range fds {
			files = append(files, os.NewFile(uintptr(fd), "exec-stdio"))
		}
	}
	return files, nil
}

// killGroup kills the process group p leads: nsenter, the command it forked and whatever
// the command started, as a terminal hang-up would.
func killGroup(p *os.Process) {
	if err := syscall.Kill(-p.Pid, syscall.SIGKILL); err != nil {
		p.Kill()
	}
}

// signalCommand delivers sig to the command nsenter runs, which is in the process group
// pgid that nsenter leads. nsenter itself is spared once it has forked: it waits for the
// command and then exits with the command's status, or dies of the command's signal, so the
// status comes back whether or not the command heeds sig. Before the fork, or when nsenter
// did not fork and has become the command, nsenter is the command.
func signalCommand(pgid int, nsenter string, sig syscall.Signal) {
	if real, err := filepath.EvalSymlinks(nsenter); err == nil {
		nsenter = real // /proc/PID/exe names the file, not the link on the PATH
	}
	leaderIsNsenter := false
	if exe, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", pgid)); err == nil {
		leaderIsNsenter = exe == nsenter
	}
	sent := false
	if leaderIsNsenter {
		entries, _ := os.ReadDir("/proc")
		for _, e := range entries {
			pid, err := strconv.Atoi(e.Name())
			if err != nil || pid == pgid {
				continue
			}
			if g, err := netsetup.ProcessGroupOf(pid); err == nil && g == pgid && syscall.Kill(pid, sig) == nil {
				sent = true
			}
		}
	}
	if !sent {
		syscall.Kill(pgid, sig)
	}
}
