package netsetup

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/pontoon-dev/pontoon/internal/statefile"
	"github.com/pontoon-dev/pontoon/netsetup/ns"
	"golang.org/x/sys/unix"
)

// Phase says how far a gateway, bridge or guest got: a "creating" record whose creator is
// gone is garbage from a killed run.
type Phase string

// Phases of a state record.
const (
	PhaseCreating Phase = "creating"
	PhaseReady    Phase = "ready"
	PhaseRemoving Phase = "removing"
)

// Process identifies a process across pid reuse by its pid and its start time in clock ticks
// since boot, in the pid namespace it was seen from (PIDNS, that namespace's inode).
type Process struct {
	PID   int    `json:"pid"`
	Start uint64 `json:"start"`
	// PIDNS is the pid namespace the pid is of; 0 in records of older versions.
	PIDNS uint64 `json:"pidns,omitempty"`
}

// ownPIDNS is the inode of this process's pid namespace (0 when unreadable), which it never
// leaves.
var ownPIDNS = sync.OnceValue(func() uint64 {
	var st unix.Stat_t
	if unix.Stat("/proc/self/ns/pid", &st) != nil {
		return 0
	}
	return st.Ino
})

// Self returns the calling process.
func Self() Process { p, _ := ProcessOf(os.Getpid()); return p }

// ProcessOf returns pid's identity, or an error when no such process exists.
func ProcessOf(pid int) (Process, error) {
	f, err := statFields(pid)
	if err != nil {
		return Process{}, err
	}
	start, err := strconv.ParseUint(f[19], 10, 64) // field 22: starttime
	if err != nil {
		return Process{}, fmt.Errorf("process %d: malformed start time: %w", pid, err)
	}
	return Process{PID: pid, Start: start, PIDNS: ownPIDNS()}, nil
}

// ProcessGroupOf returns the process group of pid, or an error when no such process exists.
func ProcessGroupOf(pid int) (int, error) {
	f, err := statFields(pid)
	if err != nil {
		return 0, err
	}
	pgrp, err := strconv.Atoi(f[2]) // field 5: pgrp
	if err != nil {
		return 0, fmt.Errorf("process %d: malformed process group: %w", pid, err)
	}
	return pgrp, nil
}

// statFields returns the fields of /proc/PID/stat from the third (the state) on, at least 20.
func statFields(pid int) ([]string, error) {
	b, err := statefile.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return nil, fmt.Errorf("process %d: %w", pid, err)
	}
	// The command name (field 2) may contain spaces and parentheses: fields are counted after
	// the last ')'.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return nil, fmt.Errorf("process %d: malformed stat", pid)
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 20 {
		return nil, fmt.Errorf("process %d: malformed stat", pid)
	}
	return f, nil
}

// Alive reports whether the process still runs: the same process (not a reuse of its pid)
// and not a zombie that has finished exiting. A process killed with kill -9 stays a zombie until its parent reaps it (a
// busy shell, an init that reaps late), but it holds nothing any more: its namespaces, locks
// and sockets went at its exit, so everything that asks whether a recorded process is still
// there (gc first of all) takes it for dead.
// One read of /proc/PID/stat gives both the start time and the state, as polling loops call
// it often.
//
// A process seen from another pid namespace (a bridge child's, inside its container) cannot be
// looked up by its pid here: it counts as alive, so that nothing is taken for gone that is not.
func (p Process) Alive() bool {
	if p.PID <= 0 {
		return false
	}
	if !p.Visible() {
		return true
	}
	f, err := statFields(p.PID)
	if err != nil || f[19] != strconv.FormatUint(p.Start, 10) {
		return false
	}
	// A killed process's first thread turns zombie while its others may still be exiting
	// with the files (sockets, locks) they share: it is gone once it is the last (field 20,
	// num_threads).
	// X: being reaped, with num_threads 0.
	return f[0] != "X" && (f[0] != "Z" || f[17] != "1")
}

// Visible reports whether p's pid can be looked up here: it was recorded from this pid
// namespace (or by a version that did not record which).
func (p Process) Visible() bool {
	own := ownPIDNS()
	return p.PIDNS == 0 || own == 0 || p.PIDNS == own
}

// GatewayState is what `gateway up` created, recorded so that every later command uses the
// same plan and `gateway down` removes exactly that.
type GatewayState struct {
	Plan netip.Prefix `json:"plan"` // the plan's /16
	// Plan6 is the plan's IPv6 /48; unset when the gateway is IPv4 only.
	Plan6      netip.Prefix `json:"plan6,omitzero"`
	Phase      Phase        `json:"phase"`
	Creator    Process      `json:"creator"`
	Created    time.Time    `json:"created"`
	NoFirewall bool         `json:"no_firewall,omitempty"`
	// HostForwarding is the host's net.ipv4.ip_forward before up; down restores it.
	HostForwarding string `json:"host_forwarding,omitempty"`
	// DNS is the loopback resolver guests' DNS is redirected to, if any.
	DNS string `json:"dns,omitempty"`
	// NetnsID is the gateway namespace's identity (ns.ID), 0 in records of older versions:
	// another namespace mounted over its pin is told from it by this.
	NetnsID uint64 `json:"netns_id,omitempty"`
}

// BridgeState is one bridge's record.
type BridgeState struct {
	Name    string    `json:"name"`
	Slot    int       `json:"slot"`
	Phase   Phase     `json:"phase"`
	Creator Process   `json:"creator"`
	Owner   *Process  `json:"owner,omitempty"` // nil: the bridge lives until destroyed
	Created time.Time `json:"created"`
	Ports   []Port    `json:"ports,omitempty"`
	Guests  []Guest   `json:"guests,omitempty"`
	// Services are the bridge's service addresses (see Service).
	Services []Service `json:"services,omitempty"`
	// MountNS is the mount namespace (its inode) the bridge's namespace was pinned in: only
	// there does a pin file without its mount mean the namespace is gone.
	MountNS uint64 `json:"mount_ns,omitempty"`
	// NetnsID is the bridge namespace's identity (ns.ID): only a namespace pinned with it is
	// the bridge's. 0 in records of older versions.
	NetnsID uint64 `json:"netns_id,omitempty"`
	// Problem says what is wrong with a ready bridge's namespace (deleted or unpinned by
	// hand, or its pin hidden by another tool); empty when nothing is. It is found out when
	// the bridge is listed, never stored.
	Problem string `json:"problem,omitempty"`
}

// Guest is one guest of a bridge.
type Guest struct {
	Name string     `json:"name"`
	IP   netip.Addr `json:"ip"`
	// IP6 is the guest's IPv6 address; unset when the gateway is IPv4 only.
	IP6      netip.Addr `json:"ip6,omitzero"`
	Hostname string     `json:"hostname,omitempty"`
	// Aliases are further names the bridge's name server answers for the guest.
	Aliases []string `json:"aliases,omitempty"`
	// Netns is the guest's network namespace; Owned says pontoon created (and pinned) it.
	Netns string `json:"netns"`
	UTS   string `json:"uts,omitempty"`
	Owned bool   `json:"owned,omitempty"`
	// NetnsID is the identity (ns.ID) of the namespace pinned at Netns, pontoon's or the
	// user's; 0 for a guest attached by its process, and in records of older versions.
	NetnsID uint64 `json:"netns_id,omitempty"`
	// MountNS is the mount namespace (ns.MountNS) the guest was attached from, where its
	// Netns path means what it meant then: a bridge child's /tmp is its own.
	MountNS uint64 `json:"mount_ns,omitempty"`
	// Port is the guest's veth port in the bridge namespace.
	Port string `json:"port,omitempty"`
	// Key identifies who attached the guest (a container id for the OCI hook).
	Key string `json:"key,omitempty"`
	// Process is the process whose namespace was attached by pid; gc drops the guest once it is gone.
	Process *Process `json:"process,omitempty"`
	Phase   Phase    `json:"phase"`
	// Creator is the process adding the guest, while the phase is creating.
	Creator *Process `json:"creator,omitempty"`
	// Problem says what is wrong with a ready guest (its process exited, or the pin of a
	// namespace pontoon created for it broke), as BridgeState.Problem does for the bridge's
	// pin; never stored.
	Problem string `json:"problem,omitempty"`
}

// store reads and writes state files under one directory, serialized by its lock so that
// concurrent pontoon processes never allocate the same slot, name, address or port.
type store struct {
	dir string
}

func (e Env) store() store { return store{dir: e.stateDir()} }

func (s store) gatewayFile() string           { return filepath.Join(s.dir, "gateway.json") }
func (s store) bridgeFile(name string) string { return filepath.Join(s.dir, "bridges", name+".json") }

func (s store) lockFile() string { return filepath.Join(s.dir, "lock") }

// locked runs fn while holding the state lock.
func (s store) locked(fn func() error) error {
	// Under the lock: a holder before this one may have removed the directory (removeIfEmpty).
	return statefile.Locked(s.lockFile(), func() error {
		if err := os.MkdirAll(filepath.Join(s.dir, "bridges"), 0o700); err != nil {
			return fmt.Errorf("create state directory %s: %w", s.dir, err)
		}
		return fn()
	})
}

// CNILock is the name of pontoon-cni's lock file at the top of the state directory, which
// its ADDs hold shared against the removal of what a failed ADD created: a side lock of the
// directory's (statefile.RemoveIfEmpty), which removeIfEmpty removes with it when nobody
// holds it.
const CNILock = "cni.lock"

// removeIfEmpty removes the state directory when nothing but its empty skeleton, the lock
// and an unheld CNILock is left; the caller holds the lock and does nothing with the state
// after it.
func (s store) removeIfEmpty() { statefile.RemoveIfEmpty(s.dir, s.lockFile(), CNILock) }

// lockedIfAny runs fn as locked does when the state directory has its lock, and without the
// lock when it has none: fn can find nothing then, and a read must leave no trace (a `--for`
// restorer waking after its bridge's state was removed, a status on a fresh host, a read
// that waited for a gateway down). Only for fn that read: one that wrote could race a
// process creating the directory meanwhile.
func (s store) lockedIfAny(fn func() error) error { return statefile.LockedIfThere(s.lockFile(), fn) }

// exists reports whether the state directory is there (an error other than its absence
// counts as there, for the lock to report it).
func (s store) exists() bool {
	_, err := os.Stat(s.dir)
	return !errors.Is(err, os.ErrNotExist)
}

func (s store) gateway() (*GatewayState, error) {
	var g GatewayState
	if err := statefile.ReadWith(s.gatewayFile(), func(data []byte) error { return decodeGateway(data, &g) }); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, nil
		}
		return nil, err
	}
	return &g, nil
}

func (s store) bridge(name string) (*BridgeState, error) { return s.readBridge(name, false) }

// bridgeHead reads a bridge's record for its head: the fields before its guests and services
// (see readBridgeHead). Guests and services may be there too (a record from the cache, or one
// the head reader refused and read whole); a caller uses none of them.
func (s store) bridgeHead(name string) (*BridgeState, error) { return s.readBridge(name, true) }

// readBridge reads a bridge's record, nil when there is none; with head, at least its head
// (see bridgeHead). A record this process read or wrote whole comes from the cache, and one
// read whole without head goes into it. A head read passes over the guests and services
// unchecked: a record damaged only there is found by the commands that read it whole.
func (s store) readBridge(name string, head bool) (*BridgeState, error) {
	// Every entry point checks names first; this guard keeps a name that slipped through
	// from naming a file outside the state directory.
	if err := checkName("bridge", name); err != nil {
		return nil, err
	}
	path := s.bridgeFile(name)
	if b := bridgeCache.at(path); b != nil {
		return b, nil
	}
	var b BridgeState
	decode := func(data []byte) error {
		if head {
			if h, ok := readBridgeHead(data); ok {
				b = h
				return nil
			}
		}
		return DecodeBridge(data, &b)
	}
	var v *statefile.Version
	var err error
	if head {
		err = statefile.ReadWith(path, decode)
	} else {
		v, err = statefile.ReadPinned(path, decode)
	}
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	if !head {
		bridgeCache.put(path, v, &b)
	}
	return &b, nil
}

// bridgeNames lists the bridges that have a record, unsorted, without reading the records.
func (s store) bridgeNames() ([]string, error) {
	ents, err := os.ReadDir(filepath.Join(s.dir, "bridges"))
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, nil
		}
		return nil, fmt.Errorf("list bridges: %w", err)
	}
	var names []string
	for _, e := range ents {
		if name, ok := strings.CutSuffix(e.Name(), ".json"); ok {
			names = append(names, name)
		}
	}
	return names, nil
}

// bridgeHeads returns every bridge's record for its head (see bridgeHead), sorted by slot:
// what a new bridge's name, slot and host ports are checked against. Each record holds
// up to 253 guests, and reading them all made every create cost ~1.4 µs per guest of the
// host.
func (s store) bridgeHeads() ([]*BridgeState, error) { return s.eachBridge(s.bridgeHead) }

// bridges returns every bridge's record, sorted by slot.
func (s store) bridges() ([]*BridgeState, error) { return s.eachBridge(s.bridge) }

// eachBridge reads the record of every bridge with read, which gives nil for one removed
// meanwhile, and sorts them by slot.
func (s store) eachBridge(read func(name string) (*BridgeState, error)) ([]*BridgeState, error) {
	names, err := s.bridgeNames()
	if err != nil {
		return nil, err
	}
	var out []*BridgeState
	for _, name := range names {
		b, err := read(name)
		if err != nil {
			return nil, err
		}
		if b != nil {
			out = append(out, b)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Slot < out[j].Slot })
	return out, nil
}

// nextSlot returns where the next slot search starts; the caller holds the lock.
func (s store) nextSlot() int {
	b, err := statefile.ReadFile(filepath.Join(s.dir, "next-slot"))
	if err != nil {
		return 0
	}
	n, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || n < 0 || n >= Slots {
		return 0
	}
	return n
}

func (s store) setNextSlot(n int) error {
	if err := os.WriteFile(filepath.Join(s.dir, "next-slot"), []byte(strconv.Itoa(n)+"\n"), 0o600); err != nil {
		return fmt.Errorf("write slot hint: %w", err)
	}
	return nil
}

func (s store) removeBridge(name string) error {
	if err := checkName("bridge", name); err != nil {
		return err
	}
	forgetBridge(s.bridgeFile(name))
	if err := os.Remove(s.bridgeFile(name)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove state of bridge %q: %w", name, err)
	}
	return nil
}

// abandoned reports whether nothing holds the bridge any more: its creator died halfway
// through creating it, or the process its life is tied to is gone. A run killed with kill -9
// whose parent has not reaped it yet holds nothing (Alive).
func (b *BridgeState) abandoned() bool {
	return (b.Phase == PhaseCreating && !b.Creator.Alive()) || (b.Owner != nil && !b.Owner.Alive())
}

// addKilled reports whether the guest's add was killed halfway: it stays in phase creating
// and its creator is gone. Records of older versions carry no creator: such a guest is as
// dead.
func (g Guest) addKilled() bool {
	return g.Phase == PhaseCreating && (g.Creator == nil || !g.Creator.Alive())
}

// NetnsGone reports whether the namespace the guest was attached in is gone from its pin:
// the pin file removed, or another namespace pinned there now. Only from the mount namespace
// it was attached from: elsewhere the path may name another file, or none. A pin file whose
// mount is not in sight proves nothing either, and a guest recorded without the namespace's
// identity is taken for there. (A pin gone does not end a namespace something still holds.)
func (g Guest) NetnsGone() bool {
	if g.NetnsID == 0 || g.MountNS == 0 || g.MountNS != ns.MountNS() {
		return false
	}
	switch ns.Check(g.Netns, g.NetnsID) {
	case ns.PinTaken:
		return true
	case ns.PinGone:
		return !exists(g.Netns)
	}
	return false
}

// processGone reports whether the guest was attached by the pid of a process that has exited
// since: its namespace went with it (unless another process holds it; gc's to tell).
func (g Guest) processGone() bool { return g.Process != nil && !g.Process.Alive() }

// pinGone reports whether a guest attached by the path of a namespace pontoon did not make
// (--netns, a CNI pod's) lost its pin: removed, or another namespace is there now. Said, not
// acted on: the namespace lives on while anything holds it, and the guest with it; once it
// ends its port goes, and gc removes the guest then.
func (g Guest) pinGone() bool { return !g.Owned && g.Process == nil && g.NetnsGone() }
