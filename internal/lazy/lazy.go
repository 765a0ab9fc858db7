// Package lazy holds package-level values that are built on first use.
//
// Every command of the pontoon binary starts by running the initialisers of every package
// the binary links, whether or not the command needs their values: a map literal, a schema of
// closures or a call at package level all cost each start-up, and each first write to a page
// of the binary's data costs a copy-on-write fault (one that stops the other CPUs to flush
// their TLBs once the Go runtime runs threads there). A Value written as a composite literal,
// lazy.Value[T]{Build: func() T { ... }}, is laid out by the compiler with no start-up code.
package lazy

import "sync"

// Value is a value built by Build on the first call of Get.
type Value[T any] struct {
	Build func() T
	once  sync.Once
	v     T
}

// Get builds the value on the first call and returns it.
func (l *Value[T]) Get() T {
	l.once.Do(func() { l.v = l.Build() })
	return l.v
}
