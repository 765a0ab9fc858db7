package kvstore

import "fmt"

// Tag orders the versions of one key. Tags are compared by Version first and
// Writer second, so two nodes that pick the same version concurrently still
// produce distinct, totally ordered tags. The zero Tag means "never written"
// and is lower than every tag a write produces (writes use Version >= 1).
type Tag struct {
	// Version is the per-key counter chosen by the coordinating node: one
	// more than the highest version it read from a majority.
	Version uint64 `json:"version"`
	// Writer is the id of the node that coordinated the write (1-based
	// position of that node in --peers).
	Writer int `json:"writer"`
}

// Compare returns -1 if t orders before o, 0 if they are equal and +1 if t
// orders after o.
func (t Tag) Compare(o Tag) int {
	switch {
	case t.Version < o.Version:
		return -1
	case t.Version > o.Version:
		return 1
	case t.Writer < o.Writer:
		return -1
	case t.Writer > o.Writer:
		return 1
	}
	return 0
}

// Less reports whether t orders strictly before o.
func (t Tag) Less(o Tag) bool { return t.Compare(o) < 0 }

// IsZero reports whether t is the zero tag, which no write ever carries.
func (t Tag) IsZero() bool { return t == Tag{} }

// String renders t as "v<version>.n<writer>", the form used in node logs.
func (t Tag) String() string { return fmt.Sprintf("v%d.n%d", t.Version, t.Writer) }

// Entry is one key's value together with the tag of the write that stored
// it. It is the JSON body of every successful /kv response.
type Entry struct {
	// Key is the key as the client gave it (unescaped).
	Key string `json:"key"`
	// Value is the stored UTF-8 value, at most MaxValueBytes long.
	Value string `json:"value"`
	// Version and Writer form the entry's Tag.
	Version uint64 `json:"version"`
	Writer  int    `json:"writer"`
}

// Tag returns the version and writer of e as a Tag.
func (e Entry) Tag() Tag { return Tag{Version: e.Version, Writer: e.Writer} }
