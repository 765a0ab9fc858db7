package hooks

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/opencontainers/runtime-spec/specs-go"
	"github.com/pontoon-dev/pontoon/netsetup"
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
// and attaches any other, for engines that run one hook command for several stages.
func Auto(env netsetup.Env, stdin io.Reader) error {
	st, err := ReadState(stdin)
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
// nothing of this container is attached.
func Attach(env netsetup.Env, st specs.State) error {
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
	plan, err := netsetup.CurrentPlan(env)
	if err != nil {
		return err
	}
	if _, err := plan.ParseGuestIP(req.IP.String()); err != nil {
		return fmt.Errorf("annotation %s: %w", AnnotationIP, err)
	}
	b, err := netsetup.GetBridge(env, req.Bridge)
	if err != nil {
		return fmt.Errorf("annotation %s: %w", AnnotationBridge, err)
	}
	for _, g := range b.Guests {
		switch {
		case g.Key == st.ID && g.Name == req.Guest && g.IP == req.IP.String() && g.Process != nil && g.Process.PID == st.Pid && g.Process.Alive() && g.Phase == netsetup.PhaseReady:
			return nil // attached already by an earlier run of this hook
		case g.Key == st.ID:
			// The same container restarted with a new process, or re-attached with other
			// annotations: the old attachment is stale.
			if err := netsetup.DelGuestByKey(env, st.ID, req.Bridge); err != nil {
				return fmt.Errorf("detach the stale guest of container %s: %w", st.ID, err)
			}
		case (g.Name == req.Guest || g.IP == req.IP.String()) && g.Process != nil && !g.Process.Alive():
			// A container that died without its poststop hook left its guest behind.
			if err := netsetup.DelGuest(env, req.Bridge, g.Name); err != nil {
				return fmt.Errorf("detach the stale guest %q: %w", g.Name, err)
			}
		case g.Name == req.Guest:
			return fmt.Errorf("annotation %s: bridge %q already has a guest %q (IP %s%s); choose another guest name", AnnotationGuest, req.Bridge, g.Name, g.IP, keyText(g.Key))
		case g.IP == req.IP.String():
			return fmt.Errorf("annotation %s: address %s is already used by guest %q on bridge %q%s; choose another address", AnnotationIP, g.IP, g.Name, req.Bridge, keyText(g.Key))
		}
	}
	if p, missing := missingPort(b, req); missing {
		return fmt.Errorf("annotation %s: bridge %q does not forward host port %d/%s to guest %q; create the bridge with the forward %d:%s:%d/%s, or drop it from the annotation",
			AnnotationPorts, req.Bridge, p.HostPort, p.Proto, req.Guest, p.HostPort, req.Guest, p.GuestPort, p.Proto)
	}
	if err := checkNetns(env, st.Pid); err != nil {
		return fmt.Errorf("container %s: %w", st.ID, err)
	}
	_, err = netsetup.AddGuest(env, req.Bridge, req.Guest, netsetup.GuestOptions{
		IP:       req.IP.String(),
		Hostname: req.Hostname,
		PID:      st.Pid,
		Key:      st.ID,
	})
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
			return errors.New("it shares the host's network namespace; give it a network namespace of its own (podman --network none, or a namespace entry without a path in config.json)")
		}
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
			return fmt.Errorf("its network namespace already has %s, set up by the engine's own networking; run it without one (podman --network none) so pontoon provides the network", netsetup.GuestIfName)
		}
	}
	return nil
}
