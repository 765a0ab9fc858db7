package runtime_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/pontoon-dev/pontoon/netsetup"
	"github.com/pontoon-dev/pontoon/runtime"
)

// dispatchExec makes the test binary act as `pontoon exec BRIDGE GUEST -- CMD...` (bridge
// children run it as pontoon), with the chain from PONTOON_* variables.
func dispatchExec() {
	if len(os.Args) < 5 || os.Args[1] != "exec" || os.Args[4] != "--" {
		return
	}
	env := netsetup.EnvFromEnviron(os.Environ())
	code, err := runtime.Exec(env, os.Args[2], os.Args[3], os.Args[5:])
	if err != nil {
		fmt.Fprintln(os.Stderr, "pontoon:", err)
	}
	os.Exit(code)
}

// What exec shows of a guest: its hostname, a file in its private /tmp, its /etc/hosts line
// and its PID 1 (pontoon's init), then a status of its own.
const execProbe = `hostname; cat /tmp/marker; grep webhost /etc/hosts; tr '\0' ' ' < /proc/1/cmdline; echo; exit 7`

// TestExecEntersContainer reproduces `pontoon exec` into a container guest of a run, from
// the host and from a bridge child of the run: it used to join only the guest's network
// namespace (and failed from a bridge child, whose pid namespace hides the container's
// process). The command sees the container's hostname, /etc/hosts, mounts and processes,
// and its exit status comes back.
func TestExecEntersContainer(t *testing.T) {
	r := newRunner(t)
	probe := `until pontoon exec $PONTOON_BRIDGE web -- test -e /tmp/marker; do sleep 0.1; done; ` +
		`pontoon exec $PONTOON_BRIDGE web -- sh -c "` + execProbe + `"; echo "probe status $?"; exec sleep 8640500`
	p := project(t, fmt.Sprintf(`
[commands.pair]
supervise = true
[commands.pair.children.web]
run = ["sh", "-c", "echo inside > /tmp/marker; echo ready; exec sleep 8640501"]
ip = "172.18.0.1"
hostname = "webhost"
[commands.pair.children.probe]
bridge = true
run = ["sh", "-c", %q]
`, probe))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var hostOut string
	var hostErr error
	opt := r.options()
	opt.Started = func(s runtime.Started) {
		defer cancel()
		if !poll(t, "the bridge child's exec", func() bool { return strings.Contains(r.out.String(), "probe status") }) {
			return
		}
		self, _ := os.Executable()
		cmd := exec.Command(self, "exec", s.Bridge, "web", "--", "sh", "-c", execProbe)
		cmd.Env = append(os.Environ(), "PONTOON_STATE_DIR="+r.s.Env.StateDir, "PONTOON_NETNS_DIR="+r.s.Env.NetnsDir,
			"PONTOON_HOST_NETNS="+r.s.Env.HostNetns, "PONTOON_RESOLV_CONF="+r.s.Env.ResolvConf)
		out, err := cmd.CombinedOutput()
		hostOut, hostErr = string(out), err
	}
	r.run(ctx, p, "pair", opt)
	for _, want := range []string{"probe | webhost\n", "probe | inside\n", "probe | 172.18.0.1\twebhost web\n", "container-init", "probe | probe status 7\n"} {
		if !strings.Contains(r.out.String(), want) {
			t.Errorf("exec from the bridge child: output lacks %q", want)
		}
	}
	t.Logf("exec from the host:\n%s", hostOut)
	if ee, ok := hostErr.(*exec.ExitError); !ok || ee.ExitCode() != 7 {
		t.Errorf("exec from the host: %v, want exit status 7", hostErr)
	}
	for _, want := range []string{"webhost\ninside\n172.18.0.1\twebhost web\n", "container-init"} {
		if !strings.Contains(hostOut, want) {
			t.Errorf("exec from the host: output lacks %q", want)
		}
	}
	r.clean()
}

// TestExecSignalsReachCommand reproduces `pontoon exec` from a bridge child of a run being
// sent SIGTERM while its command runs in a container guest: the signal used to stop only
// nsenter, which passes no signal on, so exec returned and the command kept running in the
// container. Now SIGTERM ends the command and exec returns its status; and an exec caller
// killed outright (its connection to the run closing) takes its command with it.
func TestExecSignalsReachCommand(t *testing.T) {
	r := newRunner(t)
	probe := `until pontoon exec $PONTOON_BRIDGE web -- true; do sleep 0.1; done; ` +
		`pontoon exec $PONTOON_BRIDGE web -- sleep 8640521 & wait $!; echo "term status $?"; ` +
		`pontoon exec $PONTOON_BRIDGE web -- sleep 8640522 & wait $!; echo "kill status $?"; exec sleep 8640520`
	p := project(t, fmt.Sprintf(`
[commands.pair]
supervise = true
[commands.pair.children.web]
run = ["sh", "-c", "exec sleep 8640523"]
ip = "172.18.0.1"
[commands.pair.children.probe]
bridge = true
run = ["sh", "-c", %q]
`, probe))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	opt := r.options()
	opt.Started = func(s runtime.Started) {
		defer cancel()
		for _, c := range []struct {
			arg    string
			sig    syscall.Signal
			status string
		}{{"8640521", syscall.SIGTERM, "probe | term status 143\n"}, {"8640522", syscall.SIGKILL, "probe | kill status "}} {
			var cmd, caller netsetup.Process
			if !poll(t, "the exec'd sleep "+c.arg, func() bool {
				cmd, caller = execProcesses(c.arg)
				return cmd.PID != 0 && caller.PID != 0
			}) {
				return
			}
			if err := syscall.Kill(caller.PID, c.sig); err != nil {
				t.Fatalf("signal the exec caller %d: %v", caller.PID, err)
			}
			if !poll(t, "the exec's status", func() bool { return strings.Contains(r.out.String(), c.status) }) {
				return
			}
			if !poll(t, "the end of the exec'd sleep "+c.arg, func() bool { return !cmd.Alive() }) {
				t.Errorf("%v to the exec caller left its command (process %d) running in the container", c.sig, cmd.PID)
			}
		}
		hostExecTerm(t, r, s.Bridge)
	}
	r.run(ctx, p, "pair", opt)
	r.clean()
}

// hostExecTerm sends SIGTERM to a `pontoon exec` run from the host, whose command runs in
// the container through nsenter: the command ends and its status comes back, as from a
// bridge child.
func hostExecTerm(t *testing.T, r *runner, bridge string) {
	self, _ := os.Executable()
	caller := exec.Command(self, "exec", bridge, "web", "--", "sleep", "8640524")
	caller.Env = append(os.Environ(), "PONTOON_STATE_DIR="+r.s.Env.StateDir, "PONTOON_NETNS_DIR="+r.s.Env.NetnsDir,
		"PONTOON_HOST_NETNS="+r.s.Env.HostNetns, "PONTOON_RESOLV_CONF="+r.s.Env.ResolvConf)
	if err := caller.Start(); err != nil {
		t.Fatalf("start exec from the host: %v", err)
	}
	var cmd netsetup.Process
	if !poll(t, "the host exec's sleep", func() bool { cmd, _ = execProcesses("8640524"); return cmd.PID != 0 }) {
		caller.Process.Kill()
		caller.Wait()
		return
	}
	if err := caller.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatalf("signal the host exec: %v", err)
	}
	err := caller.Wait()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 143 {
		t.Errorf("SIGTERM to exec from the host: %v, want exit status 143", err)
	}
	if !poll(t, "the end of the host exec's sleep", func() bool { return !cmd.Alive() }) {
		t.Errorf("SIGTERM to exec from the host left its command (process %d) running in the container", cmd.PID)
	}
}

// execProcesses finds, by its argument, the sleep an exec runs in a container and the
// `pontoon exec` that asked for it.
func execProcesses(arg string) (cmd, caller netsetup.Process) {
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		data, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		if err != nil {
			continue
		}
		argv := strings.Split(strings.TrimRight(string(data), "\x00"), "\x00")
		if len(argv) < 2 || argv[len(argv)-1] != arg || argv[len(argv)-2] != "sleep" {
			continue
		}
		p, err := netsetup.ProcessOf(pid)
		if err != nil {
			continue
		}
		switch {
		case len(argv) == 2:
			cmd = p
		case argv[1] == "exec":
			caller = p
		}
	}
	return cmd, caller
}
