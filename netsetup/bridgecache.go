package netsetup

import (
	"slices"
	"sync"

	"github.com/pontoon-dev/pontoon/internal/statefile"
)

// recordCache keeps bridge records this process last read or wrote, each with the version
// of its file, so that a record read again is decoded only when another process replaced
// the file meanwhile. Guests come and go one at a time, and decoding the whole record for
// each made the 200th guest of a bridge cost more than the 10th.
type recordCache struct {
	sync.Mutex
	m map[string]cachedBridge
}

type cachedBridge struct {
	v *statefile.Version
	b *BridgeState
}

var bridgeCache = &recordCache{}

// at returns a copy of the record at path when the file is still the version this process
// read or wrote last, else nil.
func (c *recordCache) at(path string) *BridgeState {
	c.Lock()
	defer c.Unlock()
	e, ok := c.m[path]
	if !ok {
		return nil
	}
	if !e.v.Current(path) {
		c.forgetLocked(path)
		return nil
	}
	return e.b.clone()
}

// put records b as the content of version v of the file at path (nil v: none known) and
// takes over v.
func (c *recordCache) put(path string, v *statefile.Version, b *BridgeState) {
	c.Lock()
	defer c.Unlock()
	c.forgetLocked(path)
	if v != nil {
		if c.m == nil {
			c.m = make(map[string]cachedBridge)
		}
		c.m[path] = cachedBridge{v: v, b: b.clone()}
	}
}

func (c *recordCache) forgetLocked(path string) {
	if e, ok := c.m[path]; ok {
		e.v.Close()
		delete(c.m, path)
	}
}

// forgetBridge drops what the cache holds for path.
func forgetBridge(path string) {
	bridgeCache.Lock()
	defer bridgeCache.Unlock()
	bridgeCache.forgetLocked(path)
}

// writeBridge replaces the record of the bridge name with b; the caller holds the lock.
func (s store) writeBridge(name string, b *BridgeState) error {
	path := s.bridgeFile(name)
	data, err := bridgeJSON(b)
	if err == nil {
		err = statefile.Write(path, append(data, '\n'), 0o600)
	}
	if err != nil {
		forgetBridge(path)
		return err
	}
	// Writers hold the lock: the file pinned now is the one just written.
	v, _ := statefile.Pin(path)
	bridgeCache.put(path, v, b)
	return nil
}

// clone returns a deep copy of b, with empty lists nil as a decoded record has them.
func (b *BridgeState) clone() *BridgeState {
	c := *b
	if b.Owner != nil {
		o := *b.Owner
		c.Owner = &o
	}
	c.Ports, c.Guests, c.Services = cloneList(b.Ports), cloneList(b.Guests), cloneList(b.Services)
	for i := range c.Guests {
		g := &c.Guests[i]
		if g.Process != nil {
			p := *g.Process
			g.Process = &p
		}
		if g.Creator != nil {
			p := *g.Creator
			g.Creator = &p
		}
		g.Aliases = cloneList(g.Aliases)
	}
	for i := range c.Services {
		s := &c.Services[i]
		// Members is not omitempty: an empty list stays one.
		s.Ports, s.Members = cloneList(s.Ports), slices.Clone(s.Members)
		if s.Changing != nil {
			p := *s.Changing
			s.Changing = &p
		}
	}
	return &c
}

// cloneList copies l; empty is nil, as a decoded record has it (the lists are omitempty).
func cloneList[T any](l []T) []T {
	if len(l) == 0 {
		return nil
	}
	return slices.Clone(l)
}
