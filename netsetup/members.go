package netsetup

import "fmt"

// BridgeMembers returns the named bridge's record as stored, without GetBridge's check of
// its namespace: a partition change reads it on every command for the guests and services,
// and needs nothing of the kernel for that. An unknown name wraps ErrNoBridge.
func BridgeMembers(env Env, name string) (*BridgeState, error) {
	if err := checkName("bridge", name); err != nil {
		return nil, err
	}
	st := env.store()
	var b *BridgeState
	err := st.lockedIfAny(func() (err error) {
		b, err = st.bridge(name)
		return err
	})
	if err == nil && b == nil {
		err = fmt.Errorf("bridge %q: %w", name, ErrNoBridge)
	}
	return b, err
}
