package ns

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// ID returns the identity (inode) of the namespace pinned at path, and false when path shows
// no pinned namespace. Recorded when a namespace is made, it tells pontoon's namespace from
// one another tool mounted over the pin.
func ID(path string) (uint64, bool) {
	var st unix.Stat_t
	if !pinnedStat(path, &st) {
		return 0, false
	}
	return st.Ino, true
}

// PinState is what became of a namespace pinned at a path.
type PinState int

// What Check finds.
const (
	PinIntact  PinState = iota
	PinHidden           // covered by a bind mount of its directory (see SharedDir)
	PinForeign          // another namespace is mounted over the pin, which is still beneath
	PinGone             // no namespace is pinned at the path, visibly or not
	// PinTaken: the pin is gone and another namespace is pinned at its path (`ip netns del`
	// and `ip netns add` of the same name), not over it. What is there is someone else's: it
	// is neither unmounted, pinned over nor removed.
	PinTaken
)

// Check tells what became of the namespace pinned at path whose identity is want (see ID);
// want 0 (a record older than identities) accepts any namespace there.
func Check(path string, want uint64) PinState {
	if id, ok := ID(path); ok {
		if want == 0 || id == want {
			return PinIntact
		}
		// Unknown beneath (an unreadable mount table): taken for covered, as before pontoon
		// kept identities.
		roots, ok := pinsAt(path)
		if !ok || slices.Contains(roots, fmt.Sprintf("net:[%d]", want)) {
			return PinForeign
		}
		return PinTaken
	}
	if HiddenPin(path) {
		return PinHidden
	}
	return PinGone
}

// Mend makes path show again the namespace want pinned there (see Check; 0: the one the mount
// table shows pinned there), when another tool hid or covered it. A namespace or file
// mounted over the pin is unmounted, from the path only: the other tool's own pin stays. A pin
// hidden under a bind mount of its directory is found beneath it, from a private copy of the
// mounts, or else through a process that still runs in it, and bound onto path again; the
// hidden pin stays until Remove takes both. When neither is left, nothing holds the
// namespace where pontoon can reach it, and Mend says so.
func Mend(path string, want uint64) error {
	if Check(path, want) == PinTaken {
		id, _ := ID(path)
		return fmt.Errorf("pin %s again: another namespace (net:[%d]) is pinned there and pontoon's (net:[%d]) is not beneath it: the path was taken over outside pontoon, which leaves it alone", path, id, want)
	}
	if uncover(path, want, false) {
		return nil
	}
	if want == 0 {
		want = pinnedID(path)
	}
	f, err := beneath(path, want)
	if err != nil {
		f, err = inProcess(want)
	}
	if err != nil {
		return fmt.Errorf("pin %s again: %w", path, err)
	}
	defer f.Close()
	if !exists(path) {
		if err := os.WriteFile(path, nil, 0o444); err != nil {
			return fmt.Errorf("pin %s again: %w", path, err)
		}
	}
	if err := unix.Mount(fmt.Sprintf("/proc/self/fd/%d", f.Fd()), path, "", unix.MS_BIND, ""); err != nil {
		return fmt.Errorf("pin %s again: bind mount: %w", path, err)
	}
	return nil
}

func exists(path string) bool {
	_, err := os.Lstat(path)
	return err == nil
}

// RemoveOwn is Remove of the pin at path of the namespace want (see ID; 0: whatever is
// pinned there), leaving a path another namespace has taken (PinTaken) as it is.
func RemoveOwn(path string, want uint64) error {
	if Check(path, want) == PinTaken {
		return nil
	}
	return Remove(path)
}

// pinnedID is the namespace the mount table shows pinned at path, visible or not; 0 when none
// or more than one is.
func pinnedID(path string) uint64 {
	roots, _ := pinsAt(path)
	var found uint64
	for _, r := range roots {
		id, err := strconv.ParseUint(strings.TrimSuffix(strings.TrimPrefix(r, "net:["), "]"), 10, 64)
		if err != nil || (found != 0 && found != id) {
			return 0
		}
		found = id
	}
	return found
}

// uncover unmounts what covers path until it shows the namespace want (0: any): the mounts
// on path itself (a namespace or file another tool mounted over the pin) and, with lift,
// bind mounts of its directory onto itself. It reports whether path shows want.
func uncover(path string, want uint64, lift bool) bool {
	for range 32 {
		if id, ok := ID(path); ok && (want == 0 || id == want) {
			return true
		}
		if unix.Unmount(path, unix.MNT_DETACH) == nil {
			continue
		}
		if !lift || !liftCover(filepath.Dir(path)) {
			return false
		}
	}
	return false
}

// beneath opens the namespace want (0: any) pinned at path under whatever covers it, looked
// for in a private mount namespace where everything over it is lifted (uncover): nothing
// anyone else sees changes.
func beneath(path string, want uint64) (*os.File, error) {
	var f *os.File
	err := inPrivateMounts(func() error {
		if !uncover(path, want, true) {
			return errors.New("no namespace found beneath the bind mounts")
		}
		var err error
		f, err = os.Open(path)
		return err
	})
	return f, err
}

// inProcess opens the network namespace want through a process that runs in it.
func inProcess(want uint64) (*os.File, error) {
	if want == 0 {
		return nil, errors.New("the namespace is out of reach beneath mounts pontoon cannot lift, and which one it was is unknown")
	}
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		p := filepath.Join("/proc", e.Name(), "ns", "net")
		var st unix.Stat_t
		if unix.Stat(p, &st) != nil || st.Ino != want {
			continue
		}
		f, err := os.Open(p)
		if err != nil {
			continue // the process ended meanwhile
		}
		var fst unix.Stat_t
		if unix.Fstat(int(f.Fd()), &fst) == nil && fst.Ino == want {
			return f, nil
		}
		f.Close()
	}
	return nil, fmt.Errorf("namespace net:[%d] has no live reference left: its pin is out of reach beneath mounts pontoon cannot lift, and no process runs in it", want)
}
