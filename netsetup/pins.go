package netsetup

import (
	"errors"
	"fmt"
	"path/filepath"

	"github.com/pontoon-dev/pontoon/netsetup/ns"
)

// Another tool may hide pontoon's pins (a bind mount of their directory onto itself, as the
// first `ip netns add` makes when the directory is no mount point) or mount a namespace of
// its own over one. The namespaces live on, held by the hidden pins or by processes in them;
// what pontoon does in them then fails with errors that say nothing of the cause. Their
// problems are found here, said plainly, and mended (ns.Mend) by gc and by commands that
// enter a guest.

// pinProblem says what is wrong with the pin at path of one of b's namespaces, whose
// identity is id (0: unknown), or "" when nothing is or when it cannot tell from here, the
// mount namespace this process is in (see elsewhere). There are as many pins as guests: one
// in sight costs a single system call, and one out of sight because b was pinned elsewhere
// no read of the mount table.
func (e Env) pinProblem(b *BridgeState, path string, id, here uint64) string {
	if e.elsewhere(b, path, here) {
		return ""
	}
	switch ns.Check(path, id) {
	case ns.PinHidden:
		return fmt.Sprintf("namespace %s is hidden under a bind mount of %s made by another tool", path, filepath.Dir(path))
	case ns.PinTaken:
		return fmt.Sprintf("namespace %s is gone (unpinned outside pontoon), and another namespace is pinned at its path now, which pontoon leaves alone", path)
	case ns.PinForeign:
		return fmt.Sprintf("%s shows a namespace that is not the one pontoon pinned there: another tool mounted its own over the pin", path)
	case ns.PinGone:
		return fmt.Sprintf("namespace %s is gone (deleted or unpinned outside pontoon)", path)
	}
	return ""
}

// elsewhere reports whether b was pinned in another mount namespace than here, this
// process's (ns.MountNS; a bridge child's view of a directory whose pins do not propagate),
// with path's pin not visible here: from here, a pin file without its mount proves nothing.
func (e Env) elsewhere(b *BridgeState, path string, here uint64) bool {
	return b.MountNS != 0 && b.MountNS != here && !ns.IsPinned(path) && exists(path)
}

// bridgeProblem says what is wrong with a ready bridge's namespace, or "" when nothing is;
// here is this process's mount namespace (see elsewhere).
func (e Env) bridgeProblem(b *BridgeState, here uint64) string {
	if b.Phase == PhaseRemoving {
		// The destroy stops the bridge's name server before it takes the state lock to
		// remove the rest: a record seen in this phase is on its way out, or its removal
		// failed or was killed halfway.
		return "being removed, or its removal was cut short (it failed or was killed halfway)"
	}
	if b.Phase != PhaseReady {
		return ""
	}
	return e.pinProblem(b, e.BridgeNetns(b.Name), b.NetnsID, here)
}

// guestProblem says what is wrong with a ready guest, or "" when nothing is: its bridge is
// being removed, the process it was attached by has exited, the pin of a namespace given by the user
// (--netns, a CNI pod's) was removed, and the guest with it, or the pin of a namespace
// pontoon created for it is broken. A user's pin pontoon never mends: it is theirs.
func (e Env) guestProblem(b *BridgeState, g *Guest, here uint64) string {
	if b.Phase == PhaseRemoving && g.Phase == PhaseReady {
		// Its namespace and port may be gone already: listed as ready, it would look usable.
		return "its bridge is being removed, or that removal was cut short, and the guest goes with it"
	}
	if b.Phase != PhaseReady || g.Phase != PhaseReady {
		return ""
	}
	if g.processGone() {
		return fmt.Sprintf("its process (pid %d) has exited, and the guest with it (its namespace and port go too, unless something else holds the namespace)", g.Process.PID)
	}
	if g.pinGone() {
		return fmt.Sprintf("the pin of its namespace %s was removed outside pontoon: the guest ends with the namespace once nothing holds it (gc then removes it), or `pontoon guest del` now", g.Netns)
	}
	if !g.Owned {
		return ""
	}
	return e.pinProblem(b, g.Netns, g.NetnsID, here)
}

// findProblems sets the Problem of b and of each of its guests.
func (e Env) findProblems(b *BridgeState) {
	here := ns.MountNS()
	b.Problem = e.bridgeProblem(b, here)
	for i := range b.Guests {
		b.Guests[i].Problem = e.guestProblem(b, &b.Guests[i], here)
	}
}

// pinProblems lists the problems of pins findProblems finds, a sentence each.
func pinProblems(b *BridgeState) []string {
	var out []string
	if b.Problem != "" {
		out = append(out, b.Problem)
	}
	for _, g := range b.Guests {
		if g.Problem != "" && !g.processGone() && !g.pinGone() {
			out = append(out, fmt.Sprintf("guest %s: %s", g.Name, g.Problem))
		}
	}
	return out
}

// exitedProblems lists the guests whose process exited (see guestProblem), a sentence each.
func exitedProblems(b *BridgeState) []string {
	var out []string
	for _, g := range b.Guests {
		if g.Problem != "" && g.processGone() {
			out = append(out, fmt.Sprintf("guest %s: %s", g.Name, g.Problem))
		}
	}
	return out
}

// mendable reports whether a pin is one Mend can put right: hidden, or covered by another
// namespace. A namespace that is gone is beyond mending, also when its path pins another now.
func mendable(path string, id uint64) bool {
	s := ns.Check(path, id)
	return s == ns.PinHidden || s == ns.PinForeign
}

// gonePin reports whether nothing of the namespace id pinned at path is left to mend there.
func gonePin(path string, id uint64) bool {
	s := ns.Check(path, id)
	return s == ns.PinGone || s == ns.PinTaken
}

// mendPins pins again every namespace of a ready bridge, its own and its guests', that
// another tool hid or covered, and says what it mended; the bridge's pin first, as the
// guests' ports are reached through it. It goes on past a pin it cannot mend and returns the
// errors of all. The caller holds the state lock.
func mendPins(env Env, b *BridgeState) ([]string, error) {
	if b.Phase != PhaseReady {
		return nil, nil
	}
	var done []string
	var errs []error
	p := env.BridgeNetns(b.Name)
	here := ns.MountNS()
	if !env.elsewhere(b, p, here) && mendable(p, b.NetnsID) {
		if err := ns.Mend(p, b.NetnsID); err != nil {
			errs = append(errs, fmt.Errorf("bridge %q: %w", b.Name, err))
		} else {
			done = append(done, fmt.Sprintf("bridge %s: namespace %s pinned again", b.Name, p))
		}
	}
	for _, g := range b.Guests {
		if env.guestProblem(b, &g, here) == "" || !mendable(g.Netns, g.NetnsID) {
			continue
		}
		if err := ns.Mend(g.Netns, g.NetnsID); err != nil {
			errs = append(errs, fmt.Errorf("guest %s/%s: %w", b.Name, g.Name, err))
			continue
		}
		done = append(done, fmt.Sprintf("guest %s/%s: namespace %s pinned again", b.Name, g.Name, g.Netns))
	}
	return done, errors.Join(errs...)
}

// MendPins is mendPins for one bridge, under the state lock: for a command about to enter
// one of its namespaces.
func MendPins(env Env, bridge string) ([]string, error) {
	st := env.store()
	var done []string
	err := st.locked(func() error {
		b, err := st.bridge(bridge)
		if err != nil || b == nil {
			return err
		}
		done, err = mendPins(env, b)
		return err
	})
	return done, err
}
