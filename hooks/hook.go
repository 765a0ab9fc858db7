package hooks

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/opencontainers/runtime-spec/specs-go"
	"github.com/pontoon-dev/pontoon/netsetup"
	"github.com/pontoon-dev/pontoon/partition"
	"golang.org/x/sys/unix"
)

// ReadState decodes the container state an engine passes to a hook on stdin.
func ReadState(r io.Reader) (specs.State, error) {
	var st specs.State
	if err := json.NewDecoder(r).Decode(&st); err != nil {
		return st, fmt.Errorf("read the container state from stdin: %w; run this as an OCI hook, which receives the state as JSON", err)
	}
	if st.ID == "" {
		return st, errors.New("the container state on stdin has no id; run this as an OCI hook, which receives the state as JSON")
	}
	return st, nil
}

// CreateRuntime reads the state on stdin and attaches the container: see Attach.
func CreateRuntime(env netsetup.Env, stdin io.Reader) error {
	st, err := ReadState(stdin)
	if err != nil {
		return err
	}
	return Attach(env, st)
}

// Poststop reads the state on stdin and detaches the container: see Detach.
func Poststop(env netsetup.Env, stdin io.Reader) error {
	st, err := ReadState(stdin)
	if err != nil {
		return err
	}
	return Detach(env, st)
}

// Auto reads the state on stdin and detaches a stopped container (or one without a pid)
// and attaches any other, for engines that run one hook command for several stages. Given
// a config.json instead (podman's precreate stage), it writes it back to os.Stdout, with
// the container's names when it asks for them (see PrepareSpec).
func Auto(env netsetup.Env, stdin io.Reader) error { return autoTo(env, stdin, os.Stdout) }

func autoTo(env netsetup.Env, stdin io.Reader, stdout io.Writer) error {
	data, err := io.ReadAll(stdin)
	if err != nil {
		return fmt.Errorf("read the container state from stdin: %w", err)
	}
	if isSpec(data) {
		return precreate(env, data, stdout)
	}
	st, err := ReadState(bytes.NewReader(data))
	if err != nil {
		return err
	}
	if st.Status == specs.StateStopped || st.Pid == 0 {
		return Detach(env, st)
	}
	return Attach(env, st)
}

// Annotations returns the container's annotations: the state's, or, when the state has no
// pontoon annotations, those of the bundle's config.json.
func Annotations(st specs.State) (map[string]string, error) {
	if HasRequest(st.Annotations) || st.Bundle == "" {
		return st.Annotations, nil
	}
	path := filepath.Join(st.Bundle, "config.json")
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read annotations from %s: %w", path, err)
	}
	defer f.Close()
	var cfg struct {
		Annotations map[string]string `json:"annotations"`
	}
	if err := json.NewDecoder(bufio.NewReader(f)).Decode(&cfg); err != nil {
		return nil, fmt.Errorf("read annotations from %s: %w", path, err)
	}
	return cfg.Annotations, nil
}

// Attach puts the container of st on the bridge its annotations name, as a guest keyed by
// the container id. A container already attached under its id with the same pid is left as
// it is; one attached under its id with another pid (a restart) is re-attached. On error
// nothing of this container is attached; the error names the settings as the container gave
// them (annotations, or PONTOON_* variables).
func Attach(env netsetup.Env, st specs.State) error {
	err := attach(env, st)
	if err == nil {
		return nil
	}
	if ann, aerr := Annotations(st); aerr == nil && ann[AnnotationSettingsFrom] == "env" {
		return envWorded{err}
	}
	return err
}

// envWorded is an error of a container whose settings came from its environment, reworded
// (EnvMessage); it still wraps what it says.
type envWorded struct{ err error }

func (e envWorded) Error() string { return EnvMessage(e.err.Error()) }
func (e envWorded) Unwrap() error { return e.err }

func attach(env netsetup.Env, st specs.State) error {
	if err := checkID(st.ID); err != nil {
		return err
	}
	if st.Pid <= 0 {
		return fmt.Errorf("container %s: the state has no pid; run the hook at createRuntime (or prestart), when the container's process exists", st.ID)
	}
	ann, err := Annotations(st)
	if err != nil {
		return err
	}
	req, err := ParseRequest(ann)
	if err != nil {
		return err
	}
	if msg := ann[AnnotationNamesError]; msg != "" {
		return fmt.Errorf("container %s: give it its names: %s", st.ID, msg)
	}
	// The checks run under the state lock of the attach itself, on the records it reads: one
	// lock and one read of the records for the whole hook call.
	admit := func(plan netsetup.Plan, b *netsetup.BridgeState) error {
		if _, err := plan.ParseGuestIP(req.IP.String()); err != nil {
			return fmt.Errorf("annotation %s: %w", AnnotationIP, err)
		}
		if req.IP6.IsValid() {
			if _, err := plan.ParseGuestIP6(req.IP6.String(), req.IP); err != nil {
				return fmt.Errorf("annotation %s: %w", AnnotationIP6, err)
			}
		}
		if b == nil {
			return fmt.Errorf("annotation %s: bridge %q: %w", AnnotationBridge, req.Bridge, netsetup.ErrNoBridge)
		}
		for _, g := range b.Guests {
			if g.Key == st.ID && g.Name == req.Guest && g.IP == req.IP && g.Process != nil && g.Process.PID == st.Pid && g.Process.Alive() && g.Phase == netsetup.PhaseReady {
				// Attached already by an earlier run of this hook (AddGuest returns it as it
				// is): its namespace has its eth0 now, which checkNetns would take for the
				// engine's own networking. The pid may name another process by now, which
				// AddGuest then attaches instead: not in the host's namespace.
				if err := checkNotHost(env, st.Pid); err != nil {
					return fmt.Errorf("container %s: %w", st.ID, err)
				}
				return nil
			}
		}
		if p, missing := missingPort(b, req); missing {
			return fmt.Errorf("annotation %s: bridge %q does not forward host port %d/%s to guest %q; create the bridge with the forward %d:%s:%d/%s, or drop it from the annotation",
				AnnotationPorts, req.Bridge, p.HostPort, p.Proto, req.Guest, p.HostPort, req.Guest, p.GuestPort, p.Proto)
		}
		if err := checkNetns(env, st.Pid); err != nil {
			return fmt.Errorf("container %s: %w", st.ID, err)
		}
		return nil
	}
	// Stale attachments (this container's from before a restart, or a dead container's
	// holding the name or address) are replaced under the same lock as the attach.
	_, err = netsetup.AddGuest(env, req.Bridge, req.Guest, netsetup.GuestOptions{
		IP:           req.IP.String(),
		IP6:          ip6Text(req.IP6),
		Hostname:     req.Hostname,
		Aliases:      req.Aliases,
		PID:          st.Pid,
		Key:          st.ID,
		ReplaceStale: true,
		Admit:        admit,
		// admit did it: checkNetns, or checkNotHost for a container attached already.
		NotHostChecked: true,
	})
	if err == nil {
		// The partition in force must cover the guest's new port.
		if err := partition.Refresh(env, req.Bridge); err != nil {
			return fmt.Errorf("container %s attached to bridge %q, but applying the bridge's partition to its port failed: %w", st.ID, req.Bridge, err)
		}
		return nil
	}
	var taken *netsetup.TakenError
	if errors.As(err, &taken) {
		g := taken.Other
		if taken.Field == "name" {
			return fmt.Errorf("annotation %s: bridge %q already has a guest %q (IP %s%s); choose another guest name", AnnotationGuest, req.Bridge, g.Name, g.IP, keyText(g.Key))
		}
		if taken.Field == "ip6" {
			return fmt.Errorf("annotation %s: address %s is already used by guest %q on bridge %q%s; choose another address", AnnotationIP6, g.IP6, g.Name, req.Bridge, keyText(g.Key))
		}
		return fmt.Errorf("annotation %s: address %s is already used by guest %q on bridge %q%s; choose another address", AnnotationIP, g.IP, g.Name, req.Bridge, keyText(g.Key))
	}
	return err
}

func keyText(key string) string {
	if key == "" {
		return ""
	}
	return ", container " + key
}

// Detach removes whatever was attached for the container of st. Detaching a container
// that is not attached succeeds.
func Detach(env netsetup.Env, st specs.State) error {
	// The bridge the annotations name is where the container was attached; without them
	// (or with a bad name) every bridge is searched.
	var bridges []string
	if ann, err := Annotations(st); err == nil && netsetup.ValidName(ann[AnnotationBridge]) {
		bridges = []string{ann[AnnotationBridge]}
	}
	if err := netsetup.DelGuestByKey(env, st.ID, bridges...); err != nil {
		return fmt.Errorf("detach container %s: %w", st.ID, err)
	}
	return nil
}

// checkNetns refuses namespaces the hook must not configure: the host's own (attaching
// would move the host's default route) and one an engine's network plugin already set up.
func checkNetns(env netsetup.Env, pid int) error {
	if err := checkNotHost(env, pid); err != nil {
		return err
	}
	// /proc/<pid>/net/dev lists the devices of the process's network namespace.
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/net/dev", pid))
	if err != nil {
		return fmt.Errorf("list its network devices: %w", err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		name, _, ok := strings.Cut(line, ":")
		if ok && strings.TrimSpace(name) == netsetup.GuestIfName {
			return fmt.Errorf("its network namespace already has %s, set up by the engine's own networking; run it without one (podman or docker run --network none) so pontoon provides the network", netsetup.GuestIfName)
		}
	}
	return nil
}

// checkNotHost refuses the network namespace of pid when it is the host's, the gateway's or
// a bridge's (netsetup.CheckNotHost, which the attach leaves to the hook: NotHostChecked).
func checkNotHost(env netsetup.Env, pid int) error {
	path := fmt.Sprintf("/proc/%d/ns/net", pid)
	var own unix.Stat_t
	if err := unix.Stat(path, &own); err != nil {
		if errors.Is(err, unix.ENOENT) {
			return fmt.Errorf("its process %d is gone; run the hook at createRuntime, while the container's process exists", pid)
		}
		return fmt.Errorf("open its network namespace %s: %w", path, err)
	}
	if err := netsetup.CheckNotHost(env, path); err != nil {
		if errors.Is(err, netsetup.ErrHostNamespace) {
			return errors.New("it shares the host's network namespace; give it a network namespace of its own (podman or docker run --network none, or a namespace entry without a path in config.json)")
		}
		return err
	}
	return nil
}
