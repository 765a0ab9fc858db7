package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os/exec"
	"syscall"
	"time"

	"github.com/opencontainers/runtime-spec/specs-go"
	"github.com/pontoon-dev/pontoon/hooks"
	"github.com/pontoon-dev/pontoon/netsetup"
)

// hookSettle is the untimed pause before each hook run: the kernel removes the previous
// holder's namespace meanwhile, as it would between two container starts.
const hookSettle = 100 * time.Millisecond

// hookStep times `pontoon hook create-runtime` as an engine runs it at a container's start:
// the binary started with the container's state on stdin, attaching a process in a network
// namespace of its own to the attach bridge, until it has exited. It is the whole of what
// the hook adds to a start, less the engine's own fork of it, without the noise of the
// container's start around it. Each run attaches a new process (prepare), after the previous
// one was stopped and detached (poststop, untimed), as an engine does.
func hookStep(pontoon string) (step, error) {
	if pontoon == "" {
		return step{}, errors.New("-op hook needs -pontoon, the pontoon binary to run as the hook")
	}
	var h holder
	var state []byte
	stop := func(env netsetup.Env) error {
		pid, ok := h.stop()
		if !ok {
			return nil
		}
		return runHook(pontoon, env, hooks.StagePoststop, hookState(pid, specs.StateStopped))
	}
	return step{
		prepare: func(env netsetup.Env) error {
			if err := stop(env); err != nil {
				return err
			}
			time.Sleep(hookSettle)
			pid, err := h.start()
			state = hookState(pid, specs.StateCreated)
			return err
		},
		run:     func(env netsetup.Env) error { return runHook(pontoon, env, hooks.StageCreateRuntime, state) },
		cleanup: stop,
	}, nil
}

// holder is a process in a network namespace of its own, as a container's first process is
// when its create-runtime hook runs.
type holder struct{ cmd *exec.Cmd }

func (h *holder) start() (pid int, err error) {
	h.cmd = exec.Command("sleep", "600")
	h.cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWNET}
	if err := h.cmd.Start(); err != nil {
		h.cmd = nil
		return 0, err
	}
	return h.cmd.Process.Pid, nil
}

// stop ends the process, if one runs, and returns its pid.
func (h *holder) stop() (pid int, ok bool) {
	if h.cmd == nil {
		return 0, false
	}
	h.cmd.Process.Kill()
	h.cmd.Wait()
	pid, h.cmd = h.cmd.Process.Pid, nil
	return pid, true
}

// hookState is the state an engine gives the hook of a container whose process is pid.
func hookState(pid int, status specs.ContainerState) []byte {
	data, _ := json.Marshal(specs.State{Version: specs.Version, ID: "chainbench-hook", Status: status, Pid: pid,
		Annotations: map[string]string{hooks.AnnotationBridge: attachBridge, hooks.AnnotationGuest: "h", hooks.AnnotationIP: "172.18.0.77"}})
	return data
}

func runHook(pontoon string, env netsetup.Env, stage string, state []byte) error {
	cmd := exec.Command(pontoon, hooks.Args(stage, env)...)
	cmd.Stdin = bytes.NewReader(state)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("pontoon hook %s: %w: %s", stage, err, out)
	}
	return nil
}
