package runtime

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/pontoon-dev/pontoon/netsetup"
	"github.com/pontoon-dev/pontoon/partition"
)

// attachesItself reports whether pontoon attaches the guests eng runs itself, before their
// containers start, instead of through the OCI hooks: runc and crun run as root join
// namespaces given by path. Each hook is a pontoon process the engine starts per container
// and stage, and the hooks of a run's containers queue behind each other on the state lock;
// attaching in this process does the same work once, with no process started. Rootless
// runc and crun, and containerd (driven through its helper), keep the hooks.
func attachesItself(eng Engine) bool {
	_, ok := eng.(*ociEngine)
	return ok && !Rootless()
}

// attachGuests gives each of cs, guest containers of the run's bridge, a network and UTS
// namespace of its own on the bridge -- address, hostname, aliases and port forwards as
// the hook would give them -- and points its spec at them, so that no hook runs. The
// guests are keyed by container id, as the hook keys them. On error the guests attached so
// far are removed again.
func (r *run) attachGuests(cs []*Container) error {
	if len(cs) == 0 {
		return nil
	}
	attached := make([]*netsetup.Guest, len(cs))
	errs := make([]error, len(cs))
	var wg sync.WaitGroup
	for i, c := range cs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			attached[i], errs[i] = r.attachGuest(c)
		}()
	}
	wg.Wait()
	err := errors.Join(errs...)
	if err == nil {
		// The partition in force must cover the guests' new ports.
		if rerr := partition.Refresh(r.opt.Env, r.bridge); rerr != nil {
			err = fmt.Errorf("guests attached to bridge %q, but applying the bridge's partition to their ports failed: %w", r.bridge, rerr)
		}
	}
	if err != nil {
		for i, g := range attached {
			if g != nil {
				r.detachGuest(cs[i].ID)
			}
		}
		return err
	}
	for i, c := range cs {
		g := attached[i]
		// The namespace is named already; the engine must not set a hostname in it.
		c.Net, c.Netns, c.UTS, c.Hostname, c.Guest = NetJoin, g.Netns, g.UTS, "", nil
	}
	return nil
}

func (r *run) attachGuest(c *Container) (*netsetup.Guest, error) {
	g := c.Guest
	ip6 := ""
	if g.IP6.IsValid() {
		ip6 = g.IP6.String()
	}
	ng, err := netsetup.AddGuest(r.opt.Env, g.Bridge, g.Name, netsetup.GuestOptions{
		IP:       g.IP.String(),
		IP6:      ip6,
		Hostname: c.Hostname,
		Aliases:  g.Aliases,
		Key:      c.ID,
	})
	if err != nil {
		return nil, fmt.Errorf("container %s: %w", c.Name, err)
	}
	return ng, nil
}

// detachGuest removes the guest attached for container id from the run's bridge, as the
// poststop hook does once the container is gone.
func (r *run) detachGuest(id string) {
	if err := netsetup.DelGuestByKey(r.opt.Env, id, r.bridge); err != nil {
		r.logf("detach container %s: %v", id, err)
	}
}

// recordProcess records the process of p's container on its guest, as the hook records the
// pid the engine hands it: exec then enters the container, not only its network.
func (r *run) recordProcess(p *proc) {
	defer close(p.recorded)
	oci, ok := p.eng.(*ociEngine)
	if !ok {
		return
	}
	for wait := time.Millisecond; ; wait = min(2*wait, 20*time.Millisecond) {
		if pid := oci.initPID(p.id); pid > 0 {
			proc, err := netsetup.ProcessOf(pid)
			if err != nil {
				return // exited already
			}
			if err := netsetup.SetGuestProcess(r.opt.Env, r.bridge, p.name, p.id, proc); err != nil {
				r.logf("%v", err)
			}
			return
		}
		select {
		case <-p.ended:
			return
		case <-time.After(wait):
		}
	}
}

// initPID returns the host pid of container id's init process from the engine's state
// directory (runc's state.json, crun's status), or 0 while the engine has not written it.
func (e *ociEngine) initPID(id string) int {
	root := e.root
	if root == "" {
		root = "/run/" + e.name
	}
	file := "state.json"
	if e.name == "crun" {
		file = "status"
	}
	data, err := os.ReadFile(filepath.Join(root, id, file))
	if err != nil {
		return 0
	}
	var st struct {
		Runc int `json:"init_process_pid"`
		Crun int `json:"pid"`
	}
	if json.Unmarshal(data, &st) != nil {
		return 0
	}
	return max(st.Runc, st.Crun)
}

// containerStartWait bounds how long exec waits for a guest's container to start.
const containerStartWait = 10 * time.Second

// findStartedGuest is netsetup.FindGuest, except that for a guest pontoon attached for a
// container that has not started yet (its process unrecorded) it waits for the container:
// entered before, the guest would be only a network namespace.
func findStartedGuest(env netsetup.Env, bridge, ref string) (*netsetup.Guest, error) {
	deadline := time.Now().Add(containerStartWait)
	for {
		_, g, err := netsetup.FindGuest(env, bridge, ref)
		if err != nil || !g.Owned || g.Key == "" || g.Process != nil {
			return g, err
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("guest %s of bridge %s: its container %s has not started within %v", g.Name, bridge, g.Key, containerStartWait)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
