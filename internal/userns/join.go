package userns

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// A user's space is one set of namespaces -- user, mount, network, UTS -- that every
// pontoon command of that user joins, so that its bridges and guests outlive the command
// that made them, as they do on the host. A holder process keeps the namespaces alive; its
// pid and start time are recorded in the user's directory (Dir), which only that user can
// read. The user namespace is made by a process running as the user, so the user owns it:
// nobody else can join it (joining needs CAP_SYS_ADMIN over it, which only its owner's
// processes and the host's root have).

// holdArg0 is the holder's argv[0]; DispatchHold recognises it.
const holdArg0 = "pontoon-space"

// Space is a user's running space.
type Space struct {
	// PID and Start identify the holder across pid reuse (Start: clock ticks since boot).
	PID   int    `json:"pid"`
	Start uint64 `json:"start"`
	// Dir is the user's directory (Dir(uid)).
	Dir string `json:"-"`
}

// Namespace returns the path of one of the space's namespaces ("user", "mnt", "net", "uts").
func (s Space) Namespace(kind string) string {
	return fmt.Sprintf("/proc/%d/ns/%s", s.PID, kind)
}

// Run is the directory inside the space where pontoon keeps the chain's state and pins: a
// tmpfs that only the space's mount namespace sees, so it goes when the space goes.
func (s Space) Run() string { return RunDir(s.Dir) }

// RunDir is Space.Run for the space of dir.
func RunDir(dir string) string { return filepath.Join(dir, "space") }

// Alive reports whether the holder still runs.
func (s Space) Alive() bool {
	st, err := startTime(s.PID)
	return err == nil && st == s.Start
}

// Dir returns the directory of uid's pontoon files, creating it (mode 0700) when missing:
// /run/user/UID/pontoon when /run/user/UID belongs to uid, else /tmp/pontoon-UID. It does
// not follow $XDG_RUNTIME_DIR: the host's root, setting a user up, must find the same
// place as the user's own commands. A directory that exists but is not uid's own, 0700,
// real directory is refused rather than used: in /tmp anyone could have made it first.
func Dir(uid int) (string, error) {
	dir := fmt.Sprintf("/tmp/pontoon-%d", uid)
	runUser := fmt.Sprintf("/run/user/%d", uid)
	if st, err := os.Lstat(runUser); err == nil && st.IsDir() && owner(st) == uid {
		dir = filepath.Join(runUser, "pontoon")
	}
	if err := os.Mkdir(dir, 0o700); err != nil && !errors.Is(err, os.ErrExist) {
		return "", fmt.Errorf("create pontoon's directory %s: %w", dir, err)
	}
	st, err := os.Lstat(dir)
	if err != nil {
		return "", fmt.Errorf("pontoon's directory %s: %w", dir, err)
	}
	if !st.IsDir() || owner(st) != uid || st.Mode().Perm() != 0o700 {
		return "", fmt.Errorf("pontoon's directory %s is not a directory of uid %d with mode 0700 (it is %s of uid %d); remove it and try again", dir, uid, st.Mode(), owner(st))
	}
	return dir, nil
}

func owner(st os.FileInfo) int {
	if s, ok := st.Sys().(*syscall.Stat_t); ok {
		return int(s.Uid)
	}
	return -1
}

// Find returns the running space recorded in dir, or ok=false when there is none.
func Find(dir string) (s Space, ok bool, err error) {
	b, err := os.ReadFile(filepath.Join(dir, "space.json"))
	if errors.Is(err, os.ErrNotExist) {
		return Space{}, false, nil
	}
	if err != nil {
		return Space{}, false, fmt.Errorf("read the space record: %w", err)
	}
	if err := json.Unmarshal(b, &s); err != nil {
		// A torn record cannot name a live holder: treat it as none, it is rewritten.
		return Space{}, false, nil
	}
	s.Dir = dir
	return s, s.Alive(), nil
}

// Ensure returns the space recorded in dir, starting it when none runs. The calling process
// must run as the user the space is for (it becomes the user namespace's owner). created
// reports whether this call started it. Concurrent first commands start one space: the
// start is serialised by a lock file in dir.
func Ensure(dir string) (s Space, created bool, err error) {
	if s, ok, err := Find(dir); err != nil || ok {
		return s, false, err
	}
	if err := Available(); err != nil {
		return Space{}, false, err
	}
	lock, err := os.OpenFile(filepath.Join(dir, "space.lock"), os.O_CREATE|os.O_RDWR|unix.O_NOFOLLOW, 0o600)
	if err != nil {
		return Space{}, false, fmt.Errorf("lock the space: %w", err)
	}
	defer lock.Close()
	if err := unix.Flock(int(lock.Fd()), unix.LOCK_EX); err != nil {
		return Space{}, false, fmt.Errorf("lock the space: %w", err)
	}
	if s, ok, err := Find(dir); err != nil || ok {
		return s, false, err
	}
	s, err = start(dir)
	return s, err == nil, err
}

func start(dir string) (Space, error) {
	run := RunDir(dir)
	if err := os.Mkdir(run, 0o700); err != nil && !errors.Is(err, os.ErrExist) {
		return Space{}, fmt.Errorf("start the space: %w", err)
	}
	spec := Spec{Tmpfs: []string{run}}
	// The host root's own pontoon state and pins stay out of sight inside.
	for _, d := range []string{"/run/pontoon", "/run/netns"} {
		if st, err := os.Stat(d); err == nil && st.IsDir() {
			spec.Tmpfs = append(spec.Tmpfs, d)
		}
	}
	cmd, err := Reexec(spec, holdArg0)
	if err != nil {
		return Space{}, err
	}
	r, w, err := os.Pipe()
	if err != nil {
		return Space{}, fmt.Errorf("start the space: %w", err)
	}
	defer r.Close()
	// What the setup in the new namespaces says, should it fail, is kept for the error.
	logPath := filepath.Join(dir, "space.log")
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_TRUNC|os.O_WRONLY|unix.O_NOFOLLOW, 0o600)
	if err != nil {
		w.Close()
		return Space{}, fmt.Errorf("start the space: %w", err)
	}
	defer logf.Close()
	cmd.Stderr = logf
	cmd.ExtraFiles = []*os.File{w}
	cmd.Dir = "/"
	// The holder outlives this command: its own session, no death signal, no terminal.
	cmd.SysProcAttr.Setsid = true
	cmd.SysProcAttr.Pdeathsig = 0
	err = cmd.Start()
	w.Close()
	if err != nil {
		return Space{}, fmt.Errorf("start the space: %w", err)
	}
	go cmd.Wait() // reaped here should it die before this command exits
	_ = r.SetReadDeadline(time.Now().Add(10 * time.Second))
	msg, _ := io.ReadAll(r)
	if strings.TrimSpace(string(msg)) != "ready" {
		cmd.Process.Kill()
		why, _ := os.ReadFile(logPath)
		return Space{}, fmt.Errorf("start the space: its holder did not get ready: %s", strings.TrimSpace(string(why)))
	}
	st, err := startTime(cmd.Process.Pid)
	if err != nil {
		return Space{}, fmt.Errorf("start the space: %w", err)
	}
	s := Space{PID: cmd.Process.Pid, Start: st, Dir: dir}
	b, _ := json.Marshal(s)
	tmp := filepath.Join(dir, ".space.json.tmp")
	if err := os.WriteFile(tmp, b, 0o600); err == nil {
		err = os.Rename(tmp, filepath.Join(dir, "space.json"))
	}
	if err != nil {
		cmd.Process.Kill()
		return Space{}, fmt.Errorf("record the space: %w", err)
	}
	return s, nil
}

// DispatchHold moves a program started by JoinArgv to its caller's working directory, and
// runs the holder when this process is one (Ensure starts it): the holder reports ready on
// fd 3 (the setup, lo up included, is done by then) and then waits for SIGTERM or SIGKILL,
// as sleep(1) when there is one. A program that calls Ensure or JoinArgv must call
// DispatchHold first thing in main.
func DispatchHold() {
	if wd, ok := os.LookupEnv(workdirEnv); ok {
		os.Unsetenv(workdirEnv)
		if wd != "" {
			// Not there (or not for this user): the command starts at / as nsenter left it.
			_ = os.Chdir(wd)
		}
		return
	}
	if len(os.Args) == 0 || os.Args[0] != holdArg0 || !Inside() {
		return
	}
	ready := os.NewFile(3, "ready")
	fmt.Fprintln(ready, "ready")
	ready.Close()
	// The holder need not be pontoon: holding pontoon's binary open would keep it from
	// being replaced in place ("text file busy") for as long as the space lives.
	if sleep, err := exec.LookPath("sleep"); err == nil {
		_ = unix.Exec(sleep, []string{holdArg0, "infinity"}, []string{"PATH=/usr/bin:/bin"})
	}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, unix.SIGTERM)
	<-sig
	os.Exit(0)
}

// Stop ends the space: every namespace in it goes with the holder, unless something else
// still uses them.
func (s Space) Stop() error {
	if !s.Alive() {
		return nil
	}
	if err := unix.Kill(s.PID, unix.SIGTERM); err != nil && !errors.Is(err, unix.ESRCH) {
		return fmt.Errorf("stop the space (pid %d): %w", s.PID, err)
	}
	os.Remove(filepath.Join(s.Dir, "space.json"))
	return nil
}

// JoinArgv returns the command line that runs argv inside the space as its root:
// util-linux's nsenter, because a multi-threaded Go process cannot join a user namespace
// itself. The caller's own uid is the one the space maps to 0, so credentials are kept as
// they are (--preserve-credentials): nsenter's setgroups would be refused. The caller puts
// JoinEnviron's variables in the command's environment.
func (s Space) JoinArgv(argv ...string) ([]string, error) {
	nsenter, err := exec.LookPath("nsenter")
	if err != nil {
		return nil, fmt.Errorf("joining the user's pontoon space needs nsenter; install it (Debian package util-linux)")
	}
	out := []string{nsenter, "--preserve-credentials"}
	for _, kind := range []struct{ flag, ns string }{{"user", "user"}, {"mount", "mnt"}, {"net", "net"}, {"uts", "uts"}} {
		out = append(out, "--"+kind.flag+"="+s.Namespace(kind.ns))
	}
	return append(append(out, "--"), argv...), nil
}

// JoinEnviron returns the variables a joined program needs: the marker, and the working
// directory to return to. (nsenter --wd would keep a directory of the caller's mount
// namespace, which getcwd cannot name inside the space; DispatchHold changes to it by
// path instead.)
func JoinEnviron(workdir string) []string {
	return []string{MarkerEnv + "=1", workdirEnv + "=" + workdir}
}

const workdirEnv = "PONTOON_USERNS_WD"

// startTime returns field 22 of /proc/PID/stat.
func startTime(pid int) (uint64, error) {
	if pid <= 0 {
		return 0, fmt.Errorf("no process %d", pid)
	}
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, err
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(f) < 20 {
		return 0, fmt.Errorf("process %d: malformed stat", pid)
	}
	return strconv.ParseUint(f[19], 10, 64)
}
