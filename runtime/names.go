package runtime

import (
	"github.com/pontoon-dev/pontoon/names"
	"github.com/pontoon-dev/pontoon/netsetup"
	"github.com/pontoon-dev/pontoon/netsetup/ns"
)

// serveNames serves the run's bridge's names from this process for as long as the run owns
// the bridge, and returns the resolv.conf that points guests at it.
func (r *run) serveNames() ([]byte, error) {
	s, err := names.Listen(r.opt.Env, r.bridge)
	if err != nil {
		return nil, err
	}
	r.names = s
	return names.ResolvConf(r.opt.Env)
}

// stopNames stops the run's name server: its sockets would keep the bridge's namespace alive.
func (r *run) stopNames() {
	if r.names != nil {
		r.names.Close()
	}
}

// execBinds are the files a command entering a guest without files of its own gets: the
// resolv.conf naming the bridge's name server, when it runs.
func execBinds(env netsetup.Env, bridge string) []ns.Bind {
	path, err := names.ResolvConfFile(env, bridge)
	if err != nil || path == "" {
		return nil
	}
	return []ns.Bind{{Source: path, Target: "/etc/resolv.conf"}}
}
