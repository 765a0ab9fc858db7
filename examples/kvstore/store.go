package kvstore

import "sync"

// store is one node's in-memory replica: per key, the entry with the
// highest tag this node has been sent. It never moves a key backwards, which
// is what makes replica writes safe to repeat and to deliver out of order.
type store struct {
	mu sync.Mutex
	m  map[string]Entry
}

// get returns the entry stored for key and whether there is one.
func (s *store) get(key string) (Entry, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.m[key]
	return e, ok
}

// apply stores e unless the replica already holds an equal or higher tag for
// e.Key, and returns what the replica holds afterwards.
func (s *store) apply(e Entry) Entry {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.m == nil {
		s.m = make(map[string]Entry)
	}
	cur, ok := s.m[e.Key]
	if ok && !cur.Tag().Less(e.Tag()) {
		return cur
	}
	s.m[e.Key] = e
	return e
}
