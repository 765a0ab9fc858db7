package runtime

import (
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"syscall"

	"github.com/pontoon-dev/pontoon/runtime/config"
)

// InitCommand is the hidden subcommand of the pontoon binary that runs as PID 1 of a
// container whose child has init on: "pontoon container-init -- CMD [ARGS...]".
const InitCommand = "container-init"

// DispatchInit runs the container init and exits when the process was started as
// "BINARY container-init ..."; otherwise it returns at once. Call it first thing in main
// (and in TestMain of a test binary handed to engines as pontoon), before anything else is
// set up: it runs in every container that has init on.
func DispatchInit() {
	if len(os.Args) > 1 && os.Args[1] == InitCommand {
		os.Exit(Init(os.Args[2:]))
	}
}

// Init runs argv (after an optional "--") as the only child of a minimal init, what
// `docker run --init` gives: it forwards every signal it receives (see forward), reaps every
// process that ends up as its child (orphans of the command re-parent to PID 1 in a
// container), and exits with the child's status -- 128+n when signal n ended the child --
// as soon as the child exits. PID 1 of a pid namespace gets no signal it has no handler for,
// so without such an init a command like `sleep` ignores SIGTERM; and when PID 1 exits the
// kernel kills the rest of the namespace, so nothing of the container outlives its command.
//
// It uses only system calls: the pontoon binary, built static, runs it in containers whose
// root holds no C library.
func Init(argv []string) int {
	if len(argv) > 0 && argv[0] == "--" {
		argv = argv[1:]
	}
	if len(argv) == 0 {
		fmt.Fprintln(os.Stderr, "pontoon init: no command given; use pontoon "+InitCommand+" -- CMD [ARGS...]")
		return 127
	}
	// Caught before the child exists: a signal arriving while it starts is forwarded to it.
	sigs := make(chan os.Signal, 64)
	signal.Notify(sigs)
	path, err := exec.LookPath(argv[0])
	if err != nil {
		fmt.Fprintf(os.Stderr, "pontoon init: %v\n", err)
		return 127
	}
	pid, err := syscall.ForkExec(path, argv, &syscall.ProcAttr{Env: os.Environ(), Files: []uintptr{0, 1, 2}})
	if err != nil {
		fmt.Fprintf(os.Stderr, "pontoon init: start %s: %v\n", argv[0], err)
		return 126
	}
	exited := make(chan int, 1)
	go func() {
		for {
			var ws syscall.WaitStatus
			wpid, err := syscall.Wait4(-1, &ws, 0, nil)
			if err == syscall.EINTR {
				continue
			}
			if err != nil {
				// ECHILD cannot happen before the child is reaped; anything else is fatal.
				fmt.Fprintf(os.Stderr, "pontoon init: wait: %v\n", err)
				exited <- 125
				return
			}
			if wpid == pid {
				if ws.Signaled() {
					exited <- 128 + int(ws.Signal())
				} else {
					exited <- ws.ExitStatus()
				}
				return
			}
		}
	}()
	for {
		select {
		case s := <-sigs:
			sig, ok := s.(syscall.Signal)
			// SIGCHLD is the reaper's business; SIGURG is the Go runtime's own preemption.
			if !ok || sig == syscall.SIGCHLD || sig == syscall.SIGURG {
				continue
			}
			forward(pid, sig)
		case code := <-exited:
			return code
		}
	}
}

// forward passes sig on from init. The stop signals, SIGINT and SIGTERM, mean the whole
// container is going: as PID 1 of the container's pid namespace, init sends them to every
// process in it (kill -1 spares init itself), as a terminal's Ctrl-C reaches its whole
// foreground group and as systemd stops a service, so a shell script's own children stop too
// instead of the script waiting for them. Other signals (SIGHUP to reload, SIGQUIT for a dump,
// a resize) are the command's alone. Outside a pid namespace of its own, init passes
// everything to its child only.
func forward(child int, sig syscall.Signal) {
	if (sig == syscall.SIGINT || sig == syscall.SIGTERM) && os.Getpid() == 1 {
		syscall.Kill(-1, sig)
		return
	}
	syscall.Kill(child, sig)
}

// initFor says whether the container of a child or a plain command runs under init: its init
// setting (nil: on), unless its root lacks what a dynamically linked pontoon binary needs to
// run there.
func (r *run) initFor(name string, init *bool, root config.Root) bool {
	if init != nil && !*init {
		return false
	}
	if root.Kind == config.RootHost || root.Kind == "" || staticBinary(r.opt.Pontoon) {
		return true
	}
	r.logf("%s runs without init: its root may lack the C library the pontoon binary %s is linked against; build pontoon with CGO_ENABLED=0 (a static binary), or set init = false", name, r.opt.Pontoon)
	return false
}

// staticBinary reports whether the ELF file at path needs no program interpreter (no
// dynamic loader), so that it runs in any root filesystem. It reads the program headers
// itself: debug/elf would link DWARF and three decompressors into the binary, whose start-up
// every hook and command pays.
func staticBinary(path string) bool {
	f, err := os.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	// 64-bit little-endian ELF (the only kind pontoon is built as on Linux).
	var h [64]byte
	if _, err := io.ReadFull(f, h[:]); err != nil || string(h[:4]) != "\x7fELF" || h[4] != 2 || h[5] != 1 {
		return false
	}
	le := binary.LittleEndian
	phoff, phentsize, phnum := int64(le.Uint64(h[32:])), int64(le.Uint16(h[54:])), int(le.Uint16(h[56:]))
	if phentsize < 4 || phnum > 1<<12 {
		return false
	}
	ph := make([]byte, phentsize*int64(phnum))
	if _, err := f.ReadAt(ph, phoff); err != nil {
		return false
	}
	const ptInterp = 3
	for i := 0; i < phnum; i++ {
		if le.Uint32(ph[int64(i)*phentsize:]) == ptInterp {
			return false
		}
	}
	return true
}
