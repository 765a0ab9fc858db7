package netsetup

// DropFailedCreate runs what CreateBridge does with the record of a bridge whose build failed
// (dropFailedCreate), on the bridge name as it is now: a rollback that cannot remove a
// namespace is not something a test can bring about on demand.
func DropFailedCreate(env Env, name string) error {
	st := env.store()
	var err error
	lerr := st.locked(func() error {
		b, rerr := st.bridge(name)
		if rerr != nil || b == nil {
			return rerr
		}
		err = dropFailedCreate(env, st, b)
		return nil
	})
	if lerr != nil {
		return lerr
	}
	return err
}
