package userns

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"sort"
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

// Alive reports whether the holder still runs. A zombie does not: its namespaces went
// when it exited, though its pid and start time stay until its parent (often an init that
// reaps late) waits for it.
func (s Space) Alive() bool {
	state, st, err := procStat(s.PID)
	return err == nil && st == s.Start && state != "Z" && state != "X"
}

// Dir returns the directory of uid's pontoon files, creating it (mode 0700) when missing:
// /run/user/UID/pontoon when /run/user/UID belongs to uid, else /tmp/pontoon-UID. It does
// not follow $XDG_RUNTIME_DIR: the host's root, setting a user up (as the user), must find
// the same place as the user's own commands. In /tmp anyone could have made that name
// first -- a symlink, a directory of theirs: one that is not uid's own, 0700, real
// directory is never used; a private directory beside it, /tmp/pontoon-UID-XXXXXX, is
// found again by its prefix (or made). Call it as uid: a directory made here is the
// caller's.
func Dir(uid int) (string, error) {
	runUser := fmt.Sprintf("/run/user/%d", uid)
	if st, err := os.Lstat(runUser); err == nil && st.IsDir() && owner(st) == uid {
		dir := filepath.Join(runUser, "pontoon")
		if err := os.Mkdir(dir, 0o700); err != nil && !errors.Is(err, os.ErrExist) {
			return "", fmt.Errorf("create pontoon's directory %s: %w", dir, err)
		}
		return dir, checkPrivate(dir, uid)
	}
	dir := fmt.Sprintf("/tmp/pontoon-%d", uid)
	if err := os.Mkdir(dir, 0o700); err != nil && !errors.Is(err, os.ErrExist) {
		return "", fmt.Errorf("create pontoon's directory %s: %w", dir, err)
	}
	if checkPrivate(dir, uid) == nil {
		return dir, nil
	}
	others, _ := filepath.Glob(dir + "-*")
	sort.Strings(others)
	for _, d := range others {
		if checkPrivate(d, uid) == nil {
			return d, nil
		}
	}
	d, err := os.MkdirTemp("/tmp", filepath.Base(dir)+"-")
	if err != nil {
		return "", fmt.Errorf("create pontoon's directory (%s is not uid %d's own): %w", dir, uid, err)
	}
	if err := checkPrivate(d, uid); err != nil {
		os.Remove(d)
		return "", err
	}
	return d, nil
}

// checkPrivate refuses dir unless it is a real directory of uid's with mode 0700.
func checkPrivate(dir string, uid int) error {
	st, err := os.Lstat(dir)
	if err != nil {
		return fmt.Errorf("pontoon's directory %s: %w", dir, err)
	}
	if !st.IsDir() || owner(st) != uid || st.Mode().Perm() != 0o700 {
		return fmt.Errorf("pontoon's directory %s is not a directory of uid %d with mode 0700 (it is %s of uid %d); remove it and try again", dir, uid, st.Mode(), owner(st))
	}
	return nil
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
	// The holder lives on only once it is recorded: killed before that, this command
	// closes commitW by dying, and the holder, reading EOF, exits rather than linger
	// where no record names it.
	commitR, commitW, err := os.Pipe()
	if err != nil {
		w.Close()
		return Space{}, fmt.Errorf("start the space: %w", err)
	}
	defer commitW.Close()
	// What the setup in the new namespaces says, should it fail, is kept for the error.
	logPath := filepath.Join(dir, "space.log")
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_TRUNC|os.O_WRONLY|unix.O_NOFOLLOW, 0o600)
	if err != nil {
		w.Close()
		commitR.Close()
		return Space{}, fmt.Errorf("start the space: %w", err)
	}
	defer logf.Close()
	cmd.Stderr = logf
	cmd.ExtraFiles = []*os.File{w, commitR}
	cmd.Dir = "/"
	// The holder outlives this command: its own session, no death signal, no terminal.
	cmd.SysProcAttr.Setsid = true
	cmd.SysProcAttr.Pdeathsig = 0
	err = cmd.Start()
	w.Close()
	commitR.Close()
	if err != nil {
		return Space{}, fmt.Errorf("start the space: %w", err)
	}
	go cmd.Wait() // reaped here should it die before this command exits
	_ = r.SetReadDeadline(time.Now().Add(10 * time.Second))
	br := bufio.NewReader(r)
	msg, _ := br.ReadString('\n')
	if strings.TrimSpace(msg) != "ready" {
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
	if _, err := commitW.Write([]byte("recorded\n")); err != nil {
		os.Remove(filepath.Join(dir, "space.json"))
		return Space{}, fmt.Errorf("start the space: its holder exited: %w", err)
	}
	commitW.Close()
	// The holder's end of r closes when it becomes what it stays (sleep's exec closes it):
	// a space returned is a settled one.
	_, _ = io.Copy(io.Discard, br)
	return s, nil
}

// DispatchHold moves a program started by JoinArgv to its caller's working directory, and
// runs the holder when this process is one (Ensure starts it): the holder reports ready on
// fd 3 (the setup, lo up included, is done by then), waits on fd 4 for its starter to have
// recorded it, and then waits for SIGKILL (Stop), as sleep(1) when there is one. A
// program that calls Ensure or JoinArgv must call DispatchHold first thing in main.
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
	// fd 3 stays open until the holder settles: sleep's exec closes it (see start).
	unix.CloseOnExec(3)
	ready := os.NewFile(3, "ready")
	fmt.Fprintln(ready, "ready")
	// Until its starter has recorded it (see start): EOF without that means the starter
	// died, and a holder no record names would be found by nobody.
	commit := os.NewFile(4, "commit")
	msg, _ := io.ReadAll(commit)
	commit.Close()
	if strings.TrimSpace(string(msg)) != "recorded" {
		os.Exit(1)
	}
	// Ignored signals stay ignored across exec: `pkill sleep`, a hangup or a Ctrl-C of the
	// group would otherwise end the space under a run that goes on in it, and split the
	// user's chain between the old namespaces and the next command's new space. Stop
	// sends SIGKILL.
	signal.Ignore(unix.SIGTERM, unix.SIGHUP, unix.SIGINT, unix.SIGQUIT)
	// The holder need not be pontoon: holding pontoon's binary open would keep it from
	// being replaced in place ("text file busy") for as long as the space lives.
	if sleep, err := exec.LookPath("sleep"); err == nil {
		_ = unix.Exec(sleep, []string{holdArg0, "infinity"}, []string{"PATH=/usr/bin:/bin"})
	}
	ready.Close()
	for {
		_ = unix.Pause()
	}
}

// Stop ends the space and everything in it: every process whose user namespace is the
// space's or one nested in it (runs, containers, bridge children), not the holder alone --
// a run left behind would keep the old namespaces alive where no later command, gc
// included, can find them. The holder goes last and its record after it, so that a Stop
// killed halfway leaves a record that the next Stop finishes from.
func (s Space) Stop() error {
	if !s.Alive() {
		return nil
	}
	target, err := nsID(s.Namespace("user"))
	if err != nil {
		return fmt.Errorf("stop the space (pid %d): %w", s.PID, err)
	}
	if err := killMembers(target, s.PID); err != nil {
		return fmt.Errorf("stop the space (pid %d): %w", s.PID, err)
	}
	if err := unix.Kill(s.PID, unix.SIGKILL); err != nil && !errors.Is(err, unix.ESRCH) {
		return fmt.Errorf("stop the space (pid %d): %w", s.PID, err)
	}
	// Forked meanwhile by a process that was being killed: nothing can join any more.
	if err := killMembers(target, s.PID); err != nil {
		return fmt.Errorf("stop the space (pid %d): %w", s.PID, err)
	}
	// Ended when this returns: a command right after must not find the holder still up.
	for deadline := time.Now().Add(10 * time.Second); s.Alive(); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			return fmt.Errorf("stop the space: its holder (pid %d) outlived SIGKILL for 10s", s.PID)
		}
	}
	os.Remove(filepath.Join(s.Dir, "space.json"))
	return nil
}

// killMembers kills the processes of the space of user namespace target, but its holder,
// until a scan finds none: processes forking meanwhile are caught by the next scan.
func killMembers(target nsKey, holder int) error {
	deadline := time.Now().Add(10 * time.Second)
	for {
		members := slices.DeleteFunc(spaceMembers(target), func(pid int) bool { return pid == holder })
		if len(members) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("processes %v still run in it", members)
		}
		for _, pid := range members {
			_ = unix.Kill(pid, unix.SIGKILL)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// nsKey identifies a namespace: the device and inode of its file.
type nsKey struct{ dev, ino uint64 }

func nsID(path string) (nsKey, error) {
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return nsKey{}, err
	}
	return nsKey{st.Dev, st.Ino}, nil
}

// spaceMembers returns the running processes (this one aside) whose user namespace is target
// or nested in it. Processes that are not the caller's cannot be inspected, and are not
// the space's: every process in it is its owner's.
func spaceMembers(target nsKey) []int {
	ents, _ := os.ReadDir("/proc")
	var out []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		// A zombie keeps its credentials, user namespace included, until reaped, but
		// nothing else: it is no member, and no signal would end it.
		if state, _, err := procStat(pid); err != nil || state == "Z" || state == "X" {
			continue
		}
		if inUserns(pid, target) {
			out = append(out, pid)
		}
	}
	return out
}

func inUserns(pid int, target nsKey) bool {
	fd, err := unix.Open("/proc/"+strconv.Itoa(pid)+"/ns/user", unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return false
	}
	// User namespaces nest 32 deep at most.
	for range 33 {
		var st unix.Stat_t
		if unix.Fstat(fd, &st) == nil && (nsKey{st.Dev, st.Ino}) == target {
			unix.Close(fd)
			return true
		}
		parent, err := unix.IoctlRetInt(fd, unix.NS_GET_PARENT)
		unix.Close(fd)
		if err != nil {
			return false
		}
		fd = parent
	}
	unix.Close(fd)
	return false
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
	_, st, err := procStat(pid)
	return st, err
}

// procStat returns fields 3 (state) and 22 (start time) of /proc/PID/stat.
func procStat(pid int) (string, uint64, error) {
	if pid <= 0 {
		return "", 0, fmt.Errorf("no process %d", pid)
	}
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return "", 0, err
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(f) < 20 {
		return "", 0, fmt.Errorf("process %d: malformed stat", pid)
	}
	st, err := strconv.ParseUint(f[19], 10, 64)
	return f[0], st, err
}
