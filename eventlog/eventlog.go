// Package eventlog is a bridge's record of the faults done to it: one JSON object per line in
// File inside the bridge's data directory, appended by every process that changes the bridge
// (the CLI, bridge children, testenv, the --for restorer, schedules, the hook).
//
// The log is bounded: when File grows past MaxBytes it is renamed to File+".1" (replacing the
// previous one), so at most about twice MaxBytes is kept and the oldest events are dropped a
// file at a time. Read and Follow see both files, oldest first.
package eventlog

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/pontoon-dev/pontoon/internal/jsontok"
	"golang.org/x/sys/unix"
)

// File is the log's name inside a bridge's data directory.
const File = "events.jsonl"

// MaxBytes is the size past which File is rotated to File+".1".
const MaxBytes = 1 << 20

// maxLine bounds one event, so that one oversized field cannot rotate the log on its own. A
// longer event keeps its kind, source and time, and says it was cut.
const maxLine = 16 << 10

// lockName serialises rotation against appends and reads: appends and reads share the lock,
// rotation takes it alone, so no append lands in a file being renamed and no reader sees an
// event twice or not at all.
const lockName = "events.lock"

// pollEvery is how often Follow looks for new events.
const pollEvery = 100 * time.Millisecond

// Event is one fault done to a bridge, or its end.
type Event struct {
	Time     time.Time         `json:"time"`
	Kind     string            `json:"kind"`                // apply, heal, impair, restore, expire, dns, schedule, ...
	What     string            `json:"what"`                // the spec in the user's words, e.g. "isolate n1 --mode reject"
	Source   string            `json:"source"`              // cli, child, testenv, restorer, schedule, hook
	CommitUS int64             `json:"commit_us,omitempty"` // how long the kernel commit took
	Error    string            `json:"error,omitempty"`
	Fields   map[string]string `json:"fields,omitempty"`
}

// Append adds e to the log in dir as one line, written with one write(2) on a file opened
// with O_APPEND, so events from concurrent processes never interleave. A zero Time is set to
// now. dir must exist: an event for a bridge that is gone must not bring its directory back.
func Append(dir string, e Event) error {
	if e.Time.IsZero() {
		e.Time = time.Now()
	}
	line, err := encode(e)
	if err != nil {
		return fmt.Errorf("record %s event in %s: %w", e.Kind, dir, err)
	}
	if st, err := os.Stat(dir); err != nil || !st.IsDir() {
		return fmt.Errorf("record %s event: %s is not a bridge's directory: %w", e.Kind, dir, errors.Join(err, os.ErrNotExist))
	}
	lock, err := lock(dir, unix.LOCK_SH)
	if err != nil {
		return err
	}
	size, err := write(filepath.Join(dir, File), line)
	lock.Close()
	if err != nil {
		return fmt.Errorf("record %s event in %s: %w", e.Kind, dir, err)
	}
	if size > MaxBytes {
		return rotate(dir)
	}
	return nil
}

func encode(e Event) ([]byte, error) {
	b, err := marshal(e)
	if err != nil {
		return nil, err
	}
	if len(b)+1 > maxLine {
		cut := Event{Time: e.Time, Kind: e.Kind, Source: e.Source, CommitUS: e.CommitUS,
			What: truncate(e.What, 1024), Error: truncate(e.Error, 1024),
			Fields: map[string]string{"truncated": fmt.Sprintf("%d bytes", len(b))}}
		if b, err = marshal(cut); err != nil {
			return nil, err
		}
	}
	return append(b, '\n'), nil
}

// marshal is json.Marshal for an event (appendEvent, and json.Marshal itself for what it
// refuses).
func marshal(e Event) ([]byte, error) {
	if b, ok := appendEvent(nil, e); ok {
		return b, nil
	}
	return json.Marshal(e)
}

// appendEvent appends e as json.Marshal writes it (TestEncodeMatchesJSON), without the
// reflection that made the first event of a process cost ~50 µs (see jsontok); false (and
// nothing appended) for an event json.Marshal refuses.
func appendEvent(b []byte, e Event) ([]byte, bool) {
	w := jsontok.Writer{B: append(b, '{')}
	w.Time("time", e.Time)
	w.Str("kind", e.Kind)
	w.Str("what", e.What)
	w.Str("source", e.Source)
	if e.CommitUS != 0 {
		w.Int("commit_us", e.CommitUS)
	}
	if e.Error != "" {
		w.Str("error", e.Error)
	}
	if len(e.Fields) > 0 {
		w.Object("fields", jsontok.SortedKeys(e.Fields), func(k string) { w.Str(k, e.Fields[k]) })
	}
	w.Raw("}")
	if w.Bad {
		return b, false
	}
	return w.B, true
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}

func write(path string, line []byte) (int64, error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	if _, err := f.Write(line); err != nil {
		return 0, err
	}
	st, err := f.Stat()
	if err != nil {
		return 0, err
	}
	return st.Size(), nil
}

// rotate renames File to File+".1" if it is still past MaxBytes once no one else holds the
// lock (another appender may have rotated it first).
func rotate(dir string) error {
	lock, err := lock(dir, unix.LOCK_EX)
	if err != nil {
		return err
	}
	defer lock.Close()
	path := filepath.Join(dir, File)
	st, err := os.Stat(path)
	if err != nil || st.Size() <= MaxBytes {
		return nil
	}
	if err := os.Rename(path, path+".1"); err != nil {
		return fmt.Errorf("rotate event log %s: %w", path, err)
	}
	return nil
}

func lock(dir string, how int) (*os.File, error) {
	path := filepath.Join(dir, lockName)
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, fmt.Errorf("open event log lock %s: %w", path, err)
	}
	for {
		err = unix.Flock(int(f.Fd()), how)
		if !errors.Is(err, unix.EINTR) {
			break
		}
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("lock event log %s: %w", path, err)
	}
	return f, nil
}

// Read returns the events logged in dir, oldest first; none when there is no log. A line that
// is not an event (a file edited by hand) is skipped rather than hiding the rest.
func Read(dir string) ([]Event, error) {
	events, cur, err := open(dir)
	if cur != nil {
		cur.Close()
	}
	return events, err
}

// open reads both files under the shared lock and returns the current one (nil when there is
// none) positioned after the last complete line read.
func open(dir string) ([]Event, *os.File, error) {
	if _, err := os.Stat(dir); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, nil, nil
		}
		return nil, nil, fmt.Errorf("read event log in %s: %w", dir, err)
	}
	lock, err := lock(dir, unix.LOCK_SH)
	if err != nil {
		return nil, nil, err
	}
	defer lock.Close()
	path := filepath.Join(dir, File)
	var events []Event
	old, err := os.ReadFile(path + ".1")
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, nil, fmt.Errorf("read event log %s.1: %w", path, err)
	}
	events, _ = decode(events, old)
	cur, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return events, nil, nil
	}
	if err != nil {
		return nil, nil, fmt.Errorf("read event log %s: %w", path, err)
	}
	b, err := io.ReadAll(cur)
	if err != nil {
		cur.Close()
		return nil, nil, fmt.Errorf("read event log %s: %w", path, err)
	}
	events, rest := decode(events, b)
	// Appends are whole lines, but a reader may still catch one mid-write: leave it for later.
	if _, err := cur.Seek(int64(len(b)-len(rest)), io.SeekStart); err != nil {
		cur.Close()
		return nil, nil, fmt.Errorf("read event log %s: %w", path, err)
	}
	return events, cur, nil
}

// decode appends the events of b's complete lines to events and returns the incomplete tail.
func decode(events []Event, b []byte) ([]Event, []byte) {
	for {
		i := bytes.IndexByte(b, '\n')
		if i < 0 {
			return events, b
		}
		var e Event
		if json.Unmarshal(b[:i], &e) == nil && e.Kind != "" {
			events = append(events, e)
		}
		b = b[i+1:]
	}
}

// Follow calls fn with every event logged in dir, oldest first, skipping the first from, then
// with each new one as it is appended, until ctx ends (it then returns nil), fn returns an
// error (returned as is), or dir goes (a bridge destroyed, perhaps created again): it then
// returns ErrGone, once it has passed on every event the log held. dir must exist (else
// ErrGone); Follow keeps following across rotations.
func Follow(ctx context.Context, dir string, from int, fn func(Event) error) error {
	// Held to tell when it is removed: a new directory at its path may even reuse its inode.
	d, err := os.Open(dir)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return ErrGone
		}
		return fmt.Errorf("follow event log in %s: %w", dir, err)
	}
	defer d.Close()
	path := filepath.Join(dir, File)
	// The log is made when missing and held from the start: a bridge destroyed right after
	// its first events takes its directory along, and only an open file still reads.
	held, _ := os.OpenFile(path, os.O_CREATE|os.O_RDONLY, 0o644)
	events, cur, err := open(dir)
	if err != nil {
		held.Close()
		return err
	}
	var partial []byte
	switch {
	case held == nil:
	case cur != nil && sameOpen(cur, held):
		held.Close()
	case cur == nil && !sameFile(held, path+".1"):
		// Removed between the two opens: what it got is only in the file held.
		cur = held
	default:
		held.Close() // rotated meanwhile: open read it as the old file
	}
	defer func() {
		if cur != nil {
			cur.Close()
		}
	}()
	if from < 0 {
		from = 0
	}
	for i := from; i < len(events); i++ {
		if err := fn(events[i]); err != nil {
			return err
		}
	}
	tick := time.NewTicker(pollEvery)
	defer tick.Stop()
	for {
		if cur == nil {
			// Between a rotation and the next event there is no log: the directory tells
			// whether one is coming.
			if removed(d) {
				return ErrGone
			}
			if f, err := os.Open(path); err == nil {
				cur, partial = f, nil
			}
		}
		if cur != nil {
			var err error
			if partial, err = drain(cur, partial, fn); err != nil {
				return err
			}
			// No longer at its path: what was appended to it before has just been read.
			// Renamed by a rotation, everything later goes to a new file; removed, there is
			// no more.
			if rotated(cur, path) {
				if partial, err = drain(cur, partial, fn); err != nil {
					return err
				}
				renamed := sameFile(cur, path+".1")
				cur.Close()
				cur = nil
				if !renamed {
					return ErrGone
				}
				continue
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
	}
}

// ErrGone is Follow's error once the log it follows is removed (not rotated).
var ErrGone = errors.New("the event log was removed")

// removed reports whether the open directory d was removed (it has no links left).
func removed(d *os.File) bool {
	var st unix.Stat_t
	return unix.Fstat(int(d.Fd()), &st) == nil && st.Nlink == 0
}

// sameOpen reports whether two open files are one.
func sameOpen(a, b *os.File) bool {
	x, err := a.Stat()
	if err != nil {
		return false
	}
	y, err := b.Stat()
	return err == nil && os.SameFile(x, y)
}

// sameFile reports whether the open file f is the one at path.
func sameFile(f *os.File, path string) bool {
	a, err := f.Stat()
	if err != nil {
		return false
	}
	b, err := os.Stat(path)
	return err == nil && os.SameFile(a, b)
}

// drain reads f to its end and calls fn with each complete event.
func drain(f *os.File, partial []byte, fn func(Event) error) ([]byte, error) {
	r := bufio.NewReader(f)
	for {
		line, err := r.ReadBytes('\n')
		partial = append(partial, line...)
		if err != nil {
			if errors.Is(err, io.EOF) {
				return partial, nil
			}
			return partial, fmt.Errorf("follow event log %s: %w", f.Name(), err)
		}
		var e Event
		if json.Unmarshal(partial, &e) == nil && e.Kind != "" {
			if err := fn(e); err != nil {
				return nil, err
			}
		}
		partial = partial[:0]
	}
}

func rotated(f *os.File, path string) bool {
	open, err := f.Stat()
	if err != nil {
		return true
	}
	now, err := os.Stat(path)
	if err != nil {
		return errors.Is(err, os.ErrNotExist)
	}
	return !os.SameFile(open, now)
}
