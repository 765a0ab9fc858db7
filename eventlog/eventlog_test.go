package eventlog

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestAppendRead(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "bridge")
	if got, err := Read(dir); err != nil || len(got) != 0 {
		t.Fatalf("Read of a missing log = %v, %v; want nothing, no error", got, err)
	}
	if err := Append(dir, Event{Kind: "apply"}); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("Append to a missing directory: %v, want an error matching os.ErrNotExist", err)
	}
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("Append created %s", dir)
	}
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	want := []Event{
		{Time: time.Unix(1, 0).UTC(), Kind: "apply", What: "isolate n1 --mode reject", Source: "cli", CommitUS: 1500},
		{Time: time.Unix(2, 0).UTC(), Kind: "heal", What: "heal", Source: "testenv", Error: "boom",
			Fields: map[string]string{"generation": "7"}},
	}
	for _, e := range want {
		if err := Append(dir, e); err != nil {
			t.Fatal(err)
		}
	}
	got, err := Read(dir)
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("Read = %v\nwant %v", got, want)
	}
	b, _ := os.ReadFile(filepath.Join(dir, File))
	if lines := strings.Count(string(b), "\n"); lines != 2 || !strings.Contains(string(b), `"commit_us":1500`) {
		t.Fatalf("file is not one JSON line per event:\n%s", b)
	}
}

func TestAppendSetsTimeAndSkipsForeignLines(t *testing.T) {
	dir := t.TempDir()
	before := time.Now()
	if err := Append(dir, Event{Kind: "apply", Source: "cli"}); err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(filepath.Join(dir, File), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString("not json\n{}\n")
	f.Close()
	if err := Append(dir, Event{Kind: "heal", Source: "cli"}); err != nil {
		t.Fatal(err)
	}
	got, err := Read(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].Kind != "apply" || got[1].Kind != "heal" {
		t.Fatalf("Read = %v, want the apply and the heal only", got)
	}
	if got[0].Time.Before(before) || got[0].Time.After(time.Now()) {
		t.Fatalf("zero Time set to %v, not now", got[0].Time)
	}
}

func TestOversizedEventIsCut(t *testing.T) {
	dir := t.TempDir()
	if err := Append(dir, Event{Kind: "apply", Source: "cli", What: strings.Repeat("x", 2*maxLine)}); err != nil {
		t.Fatal(err)
	}
	st, _ := os.Stat(filepath.Join(dir, File))
	got, _ := Read(dir)
	if st.Size() > maxLine || len(got) != 1 || got[0].Fields["truncated"] == "" {
		t.Fatalf("oversized event: file %d bytes, read %v", st.Size(), got)
	}
}

// Appends from many processes at once must each land as a whole line, none lost, while the
// log rotates under them.
func TestConcurrentProcessesAndRotation(t *testing.T) {
	if dir := os.Getenv("EVENTLOG_TEST_WRITER"); dir != "" {
		return
	}
	dir := t.TempDir()
	const procs, each = 4, 3000
	pad := strings.Repeat("p", 200) // ~300-byte events: 12,000 of them pass MaxBytes three times
	var wg sync.WaitGroup
	errs := make(chan error, procs)
	for p := 0; p < procs; p++ {
		wg.Add(1)
		go func(p int) {
			defer wg.Done()
			cmd := exec.Command(os.Args[0], "-test.run=^TestWriterProcess$")
			cmd.Env = append(os.Environ(), "EVENTLOG_TEST_WRITER="+dir,
				"EVENTLOG_TEST_ID="+strconv.Itoa(p), "EVENTLOG_TEST_N="+strconv.Itoa(each), "EVENTLOG_TEST_PAD="+pad)
			if out, err := cmd.CombinedOutput(); err != nil {
				errs <- fmt.Errorf("writer %d: %v\n%s", p, err, out)
			}
		}(p)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	got, err := Read(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{File, File + ".1"} {
		st, err := os.Stat(filepath.Join(dir, name))
		if err != nil || st.Size() > MaxBytes+maxLine*procs {
			t.Fatalf("%s: %v, size beyond the bound", name, err)
		}
	}
	// What is kept is a suffix of each writer's sequence, in order, with no gaps.
	last := map[string]int{}
	for _, e := range got {
		n, _ := strconv.Atoi(e.Fields["n"])
		if prev, ok := last[e.What]; ok && n != prev+1 {
			t.Fatalf("writer %s: event %d follows %d", e.What, n, prev)
		}
		last[e.What] = n
	}
	// A writer's later events are newer than its earlier ones, so rotation never drops the
	// end of a sequence: a writer that shows at all shows its last event. One that finished
	// well before the others may have been rotated out whole; the last to finish cannot.
	for p := 0; p < procs; p++ {
		if n, ok := last[strconv.Itoa(p)]; ok && n != each-1 {
			t.Fatalf("writer %d: last event kept is %d, want %d", p, n, each-1)
		}
	}
	if len(last) == 0 || got[len(got)-1].Fields["n"] != strconv.Itoa(each-1) {
		t.Fatalf("the newest event kept is not the last of its writer: %+v", got[len(got)-1:])
	}
	if len(got) >= procs*each || len(got) < 2000 {
		t.Fatalf("kept %d of %d events: rotation did not bound the log, or dropped too much", len(got), procs*each)
	}
}

// TestWriterProcess is the body of one writer process of TestConcurrentProcessesAndRotation.
func TestWriterProcess(t *testing.T) {
	dir := os.Getenv("EVENTLOG_TEST_WRITER")
	if dir == "" {
		t.Skip("run as a writer by TestConcurrentProcessesAndRotation")
	}
	n, _ := strconv.Atoi(os.Getenv("EVENTLOG_TEST_N"))
	for i := 0; i < n; i++ {
		e := Event{Kind: "apply", Source: "test", What: os.Getenv("EVENTLOG_TEST_ID"),
			Fields: map[string]string{"n": strconv.Itoa(i), "pad": os.Getenv("EVENTLOG_TEST_PAD")}}
		if err := Append(dir, e); err != nil {
			t.Fatal(err)
		}
	}
}

func TestFollow(t *testing.T) {
	dir := t.TempDir()
	for i := 0; i < 3; i++ {
		if err := Append(dir, Event{Kind: "apply", Source: "cli", What: strconv.Itoa(i)}); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	got := make(chan Event, 100)
	done := make(chan error, 1)
	go func() {
		done <- Follow(ctx, dir, 1, func(e Event) error { got <- e; return nil })
	}()
	next := func() string {
		select {
		case e := <-got:
			return e.What
		case <-ctx.Done():
			t.Fatal("Follow delivered nothing before the deadline")
		}
		return ""
	}
	if a, b := next(), next(); a != "1" || b != "2" {
		t.Fatalf("Follow from 1 gave %s, %s; want 1, 2", a, b)
	}
	if err := Append(dir, Event{Kind: "heal", Source: "cli", What: "3"}); err != nil {
		t.Fatal(err)
	}
	if w := next(); w != "3" {
		t.Fatalf("Follow gave %s, want the new event 3", w)
	}
	// Across a rotation: an event written just before it and one after.
	if err := Append(dir, Event{Kind: "heal", Source: "cli", What: "4"}); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, File)
	if err := os.Rename(path, path+".1"); err != nil {
		t.Fatal(err)
	}
	if err := Append(dir, Event{Kind: "heal", Source: "cli", What: "5"}); err != nil {
		t.Fatal(err)
	}
	if a, b := next(), next(); a != "4" || b != "5" {
		t.Fatalf("Follow across a rotation gave %s, %s; want 4, 5", a, b)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Follow returned %v after its context ended, want nil", err)
	}
}

// TestFollowEndsWhenTheLogIsRemoved: a follower whose directory is removed (a bridge
// destroyed) right after two events and made anew passes both on, none of the new
// directory's, and returns ErrGone: started before the log's first event, or waiting for the
// next log after a rotation. It used to miss the events when the removal came before its
// next look, and then wait for ever, or follow the new directory's log.
func TestFollowEndsWhenTheLogIsRemoved(t *testing.T) {
	for _, rotate := range []bool{false, true} {
		t.Run(fmt.Sprintf("rotated=%t", rotate), func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "bridge")
			if err := os.Mkdir(dir, 0o700); err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			var got []string
			done := make(chan error, 1)
			go func() {
				done <- Follow(ctx, dir, 0, func(e Event) error { got = append(got, e.What); return nil })
			}()
			// Once the follower holds the log open, as it does from its start.
			path := filepath.Join(dir, File)
			for !holdsOpen(path) {
				if ctx.Err() != nil {
					t.Fatal("the follower never opened the log")
				}
				time.Sleep(time.Millisecond)
			}
			want := []string{"isolate x", "heal"}
			if rotate {
				want = []string{"before the rotation"}
				if err := Append(dir, Event{Kind: "apply", Source: "cli", What: want[0]}); err != nil {
					t.Fatal(err)
				}
				if err := os.Rename(path, path+".1"); err != nil {
					t.Fatal(err)
				}
				time.Sleep(3 * pollEvery) // the follower finds no log now
			} else {
				for _, w := range want {
					if err := Append(dir, Event{Kind: "apply", Source: "cli", What: w}); err != nil {
						t.Fatal(err)
					}
				}
			}
			if err := os.RemoveAll(dir); err != nil {
				t.Fatal(err)
			}
			if err := os.Mkdir(dir, 0o700); err != nil {
				t.Fatal(err)
			}
			if err := Append(dir, Event{Kind: "apply", Source: "cli", What: "another bridge's"}); err != nil {
				t.Fatal(err)
			}
			if err := <-done; !errors.Is(err, ErrGone) {
				t.Fatalf("Follow = %v, want ErrGone", err)
			}
			if !slices.Equal(got, want) {
				t.Errorf("Follow passed on %q, want %q", got, want)
			}
		})
	}
}

// holdsOpen reports whether this process has the file at path open.
func holdsOpen(path string) bool {
	fds, _ := os.ReadDir("/proc/self/fd")
	for _, fd := range fds {
		if l, err := os.Readlink(filepath.Join("/proc/self/fd", fd.Name())); err == nil && l == path {
			return true
		}
	}
	return false
}

func TestFollowStopsOnCallbackError(t *testing.T) {
	dir := t.TempDir()
	stop := errors.New("stop")
	go func() {
		// Usually written while Follow waits for a log that does not exist yet.
		Append(dir, Event{Kind: "apply", Source: "cli"})
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err := Follow(ctx, dir, 0, func(Event) error { return stop })
	if !errors.Is(err, stop) {
		t.Fatalf("Follow = %v, want the callback's error", err)
	}
}

// TestEncodeMatchesJSON: an event's line is json.Marshal's, for every field set or not.
func TestEncodeMatchesJSON(t *testing.T) {
	at := time.Date(2026, 12, 5, 23, 36, 19, 262348561, time.UTC)
	for _, e := range []Event{
		{},
		{Time: at, Kind: "apply", What: "isolate n1 --mode reject", Source: "cli", CommitUS: 1146,
			Fields: map[string]string{"generation": "3", "blocked": "30", "partition": "isolate", "z": "<&>"}},
		{Time: at.In(time.FixedZone("x", -7200)), Kind: "heal", Error: "apply partition: \"quoted\"\tü", Fields: map[string]string{}},
	} {
		want, err := json.Marshal(e)
		if err != nil {
			t.Fatal(err)
		}
		if got, ok := appendEvent(nil, e); !ok || string(got) != string(want) {
			t.Errorf("wrote %s (%v)\njson.Marshal writes %s", got, ok, want)
		}
	}
	// A field added to Event must be added to appendEvent (and above).
	if n := reflect.TypeFor[Event]().NumField(); n != 7 {
		t.Errorf("Event has %d fields; appendEvent writes 7", n)
	}
	// What json.Marshal refuses is not written in its stead.
	if _, err := encode(Event{Time: time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC), Kind: "apply"}); err == nil {
		t.Errorf("an event in year 10000 was encoded")
	}
}
