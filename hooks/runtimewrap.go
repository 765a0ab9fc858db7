package hooks

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/pontoon-dev/pontoon/netsetup"
)

// RuntimeName is the second name of the pontoon binary under which it is an OCI runtime
// for Docker: a symlink of that name to pontoon, given as the runtime's "path" in
// daemon.json. dockerd (through containerd's runc shim) runs the path with runc's own
// arguments and argv[0] the path itself, so the name is what tells pontoon to act as the
// runtime; a "runtimeArgs" entry instead would make dockerd wrap it in a shell script.
const RuntimeName = "pontoon-runc"

// IsRuntime reports whether argv0, a process's argv[0], names the runtime (RuntimeName).
func IsRuntime(argv0 string) bool {
	return filepath.Base(argv0) == RuntimeName
}

// runcGlobalValues are runc's global flags that take a value.
var runcGlobalValues = map[string]bool{"--root": true, "--log": true, "--log-format": true, "--criu": true, "--rootless": true}

// runcArgs is what the wrapper needs of a runc command line.
type runcArgs struct {
	command   string // create, run, start, delete, ...
	bundle    string // of create and run; "" when not given (the working directory)
	log       string // --log, where runc's caller reads the error
	logFormat string // --log-format
}

// parseRuncArgs reads runc's command line: global flags, the command, and the command's
// --bundle. Unknown flags are runc's business: they pass through untouched.
func parseRuncArgs(args []string) runcArgs {
	var r runcArgs
	i := 0
	for ; i < len(args); i++ {
		a := args[i]
		if !strings.HasPrefix(a, "-") {
			r.command = a
			break
		}
		name, val, hasVal := strings.Cut(a, "=")
		name = "--" + strings.TrimLeft(name, "-")
		if runcGlobalValues[name] && !hasVal && i+1 < len(args) {
			i++
			val = args[i]
		}
		switch name {
		case "--log":
			r.log = val
		case "--log-format":
			r.logFormat = val
		}
	}
	if r.command != "create" && r.command != "run" {
		return r
	}
	for i++; i < len(args); i++ {
		name, val, hasVal := strings.Cut(args[i], "=")
		if name == "--bundle" || name == "-b" || name == "-bundle" {
			if !hasVal && i+1 < len(args) {
				i++
				val = args[i]
			}
			r.bundle = val
		}
	}
	return r
}

// RuntimeMain is pontoon as Docker's OCI runtime: args are runc's arguments (after argv[0]),
// environ the runtime's environment. For create and run of a container whose config.json
// asks for a pontoon bridge it prepares the bundle (PrepareBundle, with the hooks run by this
// same binary and the Env the PONTOON_STATE_DIR... variables of environ select); then, and for
// every other command, it replaces itself with runc and the same arguments. It returns only
// on error, with the exit status; the error goes to stderr and, as runc would write it, to
// the --log file, where containerd's shim reads the reason it shows (`docker run` prints it).
func RuntimeMain(args, environ []string, stderr io.Writer) int {
	r := parseRuncArgs(args)
	fail := func(msg string) int {
		fmt.Fprintln(stderr, msg)
		logError(r, msg)
		return 1
	}
	if r.command == "create" || r.command == "run" {
		if err := prepare(r, environ); err != nil {
			return fail("pontoon: " + OneLine(err))
		}
	}
	runc, err := exec.LookPath("runc")
	if err != nil {
		return fail("pontoon: runc not found in PATH; install runc (Debian package runc)")
	}
	err = syscall.Exec(runc, append([]string{"runc"}, args...), environ)
	return fail(fmt.Sprintf("pontoon: run %s: %v", runc, err))
}

func prepare(r runcArgs, environ []string) error {
	dir := r.bundle
	if dir == "" {
		dir = "."
	}
	self, err := os.Executable()
	if err != nil {
		return fmt.Errorf("find the pontoon binary for the container's hooks: %w", err)
	}
	_, err = PrepareBundle(dir, self, netsetup.EnvFromEnviron(environ))
	return err
}

// logError appends msg to the runtime's --log file the way runc writes errors there.
func logError(r runcArgs, msg string) {
	if r.log == "" {
		return
	}
	f, err := os.OpenFile(r.log, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return
	}
	defer f.Close()
	if r.logFormat == "json" {
		line, _ := json.Marshal(map[string]string{"level": "error", "msg": msg, "time": time.Now().Format(time.RFC3339Nano)})
		f.Write(append(line, '\n'))
		return
	}
	fmt.Fprintf(f, "time=%q level=error msg=%q\n", time.Now().Format(time.RFC3339Nano), msg)
}
