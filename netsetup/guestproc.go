package netsetup

import (
	"fmt"
	"slices"
)

// SetGuestProcess records p as the process of guest name on bridge, attached under key: a
// container started in a namespace pontoon created and attached beforehand. From then on the
// guest is entered as that container (exec) and dropped by gc once the process is gone, as
// a guest attached by pid is.
func SetGuestProcess(env Env, bridge, name, key string, p Process) error {
	if err := checkNames(bridge, name); err != nil {
		return err
	}
	st := env.store()
	err := st.locked(func() error {
		b, err := st.bridge(bridge)
		if err != nil {
			return err
		}
		if b == nil {
			return fmt.Errorf("bridge %q: %w", bridge, ErrNoBridge)
		}
		i := slices.IndexFunc(b.Guests, func(g Guest) bool { return g.Name == name && g.Key == key })
		if i < 0 {
			return fmt.Errorf("no guest %q attached under key %q", name, key)
		}
		// The record read may be shared with the cache: it is changed in a copy.
		nb := *b
		nb.Guests = slices.Clone(b.Guests)
		nb.Guests[i].Process = &p
		return st.writeBridge(bridge, &nb)
	})
	if err != nil {
		return fmt.Errorf("record process %d of guest %q on bridge %q: %w", p.PID, name, bridge, err)
	}
	return nil
}
