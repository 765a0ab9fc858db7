// Package capture records the traffic of a bridge's guests into a pcapng file that tcpdump
// and Wireshark read, one interface per guest, named after the guest.
//
// Each guest is captured on its port in the bridge namespace, with an AF_PACKET socket. The
// kernel hands a frame to such sockets as soon as the port receives it, before the port's
// ingress hook where the partition's netdev chains (and, later, the bridge family's
// prerouting chain) judge it; so a frame the partition drops is in the file on its sender's
// interface, and only a frame that reached the peer is on the peer's interface too. Frames
// the port sends to its guest are captured after the egress hook, i.e. only when they
// were delivered. A frame between two guests therefore shows up twice when it passed (on
// the sender's and on the receiver's interface) and once when it was dropped.
//
// A guest that leaves during a capture (removed, or its bridge destroyed) ends its interface,
// not the capture, which ends by itself once every captured guest has left. A port that
// only goes down is captured again when it comes up. The file grows by whole pcapng blocks,
// so a capture killed outright leaves a file that reads cleanly up to its last write.
package capture

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
	"github.com/google/gopacket/pcapgo"
	"github.com/pontoon-dev/pontoon/partition"
	"golang.org/x/sys/unix"
)

// DefaultSnaplen is how many bytes of each frame are kept unless Options.Snaplen says
// otherwise: enough for a whole segment of a veth's 64 KiB offloads, as tcpdump keeps.
const DefaultSnaplen = 262144

// ErrUnknownGuest is returned by Start for a guest the bridge does not have.
var ErrUnknownGuest = errors.New("unknown guest")

// Options say what to capture and when to stop.
type Options struct {
	// Guests names the guests to capture, by name, IP or port; empty means every guest.
	Guests []string
	// Duration stops the capture after this long; 0 means no limit.
	Duration time.Duration
	// Count stops the capture after this many frames in all; 0 means no limit.
	Count int
	// Snaplen is how many bytes of each frame are kept; 0 means DefaultSnaplen.
	Snaplen int
}

// Interface is what was captured on one guest's port.
type Interface struct {
	Guest   string `json:"guest"`
	Port    string `json:"port"`
	Packets uint64 `json:"packets"`
	// KernelDropped counts frames the kernel could not queue for the capture (a full
	// receive buffer); they are missing from the file.
	KernelDropped uint64 `json:"kernel_dropped"`
	// Left says the guest's port went away during the capture (the guest was removed, or
	// its bridge destroyed): the interface holds its traffic up to then.
	Left bool `json:"left,omitempty"`
}

// Result sums up a capture.
type Result struct {
	Interfaces []Interface `json:"interfaces"` // in the order of the file's interfaces
	Packets    uint64      `json:"packets"`
}

// Capture is a capture in progress. Its methods are safe for concurrent use.
type Capture struct {
	ifaces []Interface
	socks  []*portSocket
	counts []atomic.Uint64
	limit  uint64

	out  *blocks
	gone []atomic.Bool // by interface: its port went away
	left atomic.Int32  // how many are gone

	stopOnce  sync.Once
	stopping  chan struct{} // closed by Stop, or when Duration or Count is reached
	stoppedAt time.Time     // set before stopping is closed
	done      chan struct{} // closed when the file is complete
	res       Result
	err       error
}

// Start begins capturing the guests of t on their ports and writes pcapng to w. The sockets are
// open when it returns, so every frame sent after Start is recorded. The capture runs until
// Stop is called, ctx ends, or the duration or count of o is reached; Wait returns then.
func Start(ctx context.Context, t partition.Target, w io.Writer, o Options) (*Capture, error) {
	if o.Duration < 0 {
		return nil, fmt.Errorf("capture: duration %s is negative; give a positive duration or 0 for no limit", o.Duration)
	}
	if o.Count < 0 {
		return nil, fmt.Errorf("capture: count %d is negative; give a positive count or 0 for no limit", o.Count)
	}
	if o.Snaplen < 0 {
		return nil, fmt.Errorf("capture: snap length %d is negative", o.Snaplen)
	}
	if o.Snaplen == 0 {
		o.Snaplen = DefaultSnaplen
	}
	guests, err := selectGuests(t.Guests, o.Guests)
	if err != nil {
		return nil, err
	}
	c := &Capture{limit: uint64(o.Count), stopping: make(chan struct{}), done: make(chan struct{})}
	for _, g := range guests {
		s, err := openPort(t.NetnsPath, g.Port, o.Snaplen)
		if err != nil {
			c.closeAll()
			return nil, fmt.Errorf("capture guest %s: %w", g.Name, err)
		}
		c.socks = append(c.socks, s)
		c.ifaces = append(c.ifaces, Interface{Guest: g.Name, Port: g.Port})
	}
	c.counts = make([]atomic.Uint64, len(c.ifaces))
	c.gone = make([]atomic.Bool, len(c.ifaces))
	c.out = &blocks{w: w}
	nw, err := newWriter(c.out, c.ifaces, o.Snaplen)
	if err == nil {
		err = c.out.commit()
	}
	if err != nil {
		c.closeAll()
		return nil, fmt.Errorf("capture: write pcapng header: %w", err)
	}
	go c.run(ctx, nw, o.Duration)
	return c, nil
}

// selectGuests picks the guests refs name (by name, IP or port), in the order given, or all
// guests when refs is empty.
func selectGuests(all []partition.Guest, refs []string) ([]partition.Guest, error) {
	if len(all) == 0 {
		return nil, errors.New("capture: the bridge has no guests; attach one first")
	}
	if len(refs) == 0 {
		return all, nil
	}
	var out []partition.Guest
	seen := map[string]bool{}
	for _, ref := range refs {
		i := -1
		for j, g := range all {
			if g.Name == ref || g.IP.String() == ref || g.Port == ref {
				i = j
				break
			}
		}
		if i < 0 {
			names := make([]string, len(all))
			for j, g := range all {
				names[j] = g.Name
			}
			return nil, fmt.Errorf("capture: %w %q; the bridge's guests are %s", ErrUnknownGuest, ref, strings.Join(names, ", "))
		}
		if !seen[all[i].Name] {
			seen[all[i].Name] = true
			out = append(out, all[i])
		}
	}
	return out, nil
}

func newWriter(w io.Writer, ifaces []Interface, snaplen int) (*pcapgo.NgWriter, error) {
	intf := func(i Interface) pcapgo.NgInterface {
		return pcapgo.NgInterface{Name: i.Guest, Description: "port " + i.Port + " of guest " + i.Guest,
			OS: runtime.GOOS, LinkType: layers.LinkTypeEthernet, SnapLength: uint32(snaplen)}
	}
	opts := pcapgo.NgWriterOptions{SectionInfo: pcapgo.NgSectionInfo{Hardware: runtime.GOARCH, OS: runtime.GOOS, Application: "pontoon capture"}}
	nw, err := pcapgo.NewNgWriterInterface(w, intf(ifaces[0]), opts)
	if err != nil {
		return nil, err
	}
	for _, i := range ifaces[1:] {
		if _, err := nw.AddInterface(intf(i)); err != nil {
			return nil, err
		}
	}
	return nw, nw.Flush()
}

// run reads every port into one writer until the capture stops, then completes the file.
func (c *Capture) run(ctx context.Context, nw *pcapgo.NgWriter, d time.Duration) {
	frames := make(chan frame, 256)
	var readers sync.WaitGroup
	errs := make([]error, len(c.socks))
	for i, s := range c.socks {
		readers.Add(1)
		go func() {
			defer readers.Done()
			errs[i] = c.read(i, s, frames)
		}()
	}
	var timeout <-chan time.Time
	if d > 0 {
		tm := time.NewTimer(d)
		defer tm.Stop()
		timeout = tm.C
	}
	go func() {
		select {
		case <-ctx.Done():
		case <-timeout:
		case <-c.stopping:
		}
		c.stop()
	}()
	go func() { readers.Wait(); close(frames) }()

	var werr error
	var written uint64
	for f := range frames {
		if werr != nil || (c.limit > 0 && written >= c.limit) {
			continue // keep draining so that the readers finish
		}
		ci := gopacket.CaptureInfo{Timestamp: f.ts, CaptureLength: len(f.data), Length: f.length, InterfaceIndex: f.iface}
		if werr = nw.WritePacket(ci, f.data); werr != nil {
			werr = fmt.Errorf("capture: write packet: %w", werr)
			c.stop()
			continue
		}
		written++
		c.counts[f.iface].Add(1)
		if c.limit > 0 && written >= c.limit {
			c.stop()
		}
		// Writing whenever nothing is waiting keeps the file readable while it grows,
		// without a write per frame under load.
		if len(frames) == 0 || c.out.pending() >= commitSize {
			if werr = c.flush(nw); werr != nil {
				c.stop()
			}
		}
	}
	now := time.Now()
	for i := range c.ifaces {
		c.ifaces[i].Packets = c.counts[i].Load()
		c.ifaces[i].Left = c.gone[i].Load()
		c.ifaces[i].KernelDropped += c.socks[i].dropped()
		if werr == nil {
			werr = nw.WriteInterfaceStats(i, pcapgo.NgInterfaceStatistics{LastUpdate: now, EndTime: now,
				PacketsReceived: c.ifaces[i].Packets, PacketsDropped: c.ifaces[i].KernelDropped})
		}
		c.res.Packets += c.ifaces[i].Packets
	}
	if werr == nil {
		werr = c.flush(nw)
	}
	c.closeAll()
	c.res.Interfaces = c.ifaces
	rerr := errors.Join(errs...)
	if rerr != nil {
		rerr = fmt.Errorf("capture: read: %w", rerr)
	}
	c.err = errors.Join(werr, rerr)
	close(c.done)
}

// commitSize bounds what is held back from the file under load.
const commitSize = 1 << 20

// flush hands every complete block to the file.
func (c *Capture) flush(nw *pcapgo.NgWriter) error {
	err := nw.Flush()
	if err == nil {
		err = c.out.commit()
	}
	if err != nil {
		return fmt.Errorf("capture: write: %w", err)
	}
	return nil
}

// blocks holds what the pcapng writer produces until commit hands it to the file in one
// write. The writer's own buffer passes on 4 KiB at a time, cutting blocks in two; a capture
// killed between two such writes would leave a file that tcpdump reports as cut short. The
// writer is flushed before each commit, so a commit always ends on a whole block.
type blocks struct {
	w   io.Writer
	buf []byte
}

func (b *blocks) Write(p []byte) (int, error) {
	b.buf = append(b.buf, p...)
	return len(p), nil
}

func (b *blocks) pending() int { return len(b.buf) }

func (b *blocks) commit() error {
	if len(b.buf) == 0 {
		return nil
	}
	_, err := b.w.Write(b.buf)
	b.buf = b.buf[:0]
	return err
}

// read passes the frames of one port to the writer until the capture stops, then the frames
// still queued in the kernel. A port that goes down is watched until it is up again or gone:
// a guest removed, or its bridge destroyed, ends its interface but not the capture, unless it
// was the last one.
func (c *Capture) read(i int, s *portSocket, out chan<- frame) error {
	send := func(f frame) { f.iface = i; out <- f }
	down := false
	for {
		f, err := s.next()
		switch {
		case err == nil:
			if down && s.up() {
				down = false
				c.watch(s, time.Time{})
			}
			send(f)
			continue
		case errors.Is(err, os.ErrDeadlineExceeded):
			select {
			case <-c.stopping: // closed before stop sets a deadline: stoppedAt is known
				return s.drain(c.stoppedAt, send)
			default: // the watch of a port that is down
			}
		case errors.Is(err, unix.ENETDOWN):
			// The kernel stops feeding the socket when the port goes down; it resumes
			// when the port comes up again, and says nothing when it is then removed.
			down = true
		default:
			return fmt.Errorf("guest %s: %w", c.ifaces[i].Guest, err)
		}
		if s.gone() {
			err := s.drain(time.Now(), send)
			c.gone[i].Store(true)
			if int(c.left.Add(1)) == len(c.socks) {
				c.stop() // nothing is left to capture
			}
			return err
		}
		c.watch(s, time.Now().Add(downPoll))
	}
}

// downPoll is how often a port that went down is checked for having gone.
const downPoll = 100 * time.Millisecond

// watch sets the read deadline of s to at (zero: none), unless the capture is stopping: stop's
// deadline in the past must stay.
func (c *Capture) watch(s *portSocket, at time.Time) {
	_ = s.file.SetReadDeadline(at)
	select {
	case <-c.stopping:
		_ = s.file.SetReadDeadline(time.Unix(1, 0))
	default:
	}
}

// stop makes every reader finish: a deadline in the past ends its wait, and it then drains
// what the kernel still holds, so nothing that passed a port before the stop is lost.
func (c *Capture) stop() {
	c.stopOnce.Do(func() {
		c.stoppedAt = time.Now()
		close(c.stopping)
		for _, s := range c.socks {
			_ = s.file.SetReadDeadline(time.Unix(1, 0))
		}
	})
}

func (c *Capture) closeAll() {
	for _, s := range c.socks {
		s.file.Close()
	}
}

// Stop ends the capture, completes the file and returns what was captured.
func (c *Capture) Stop() (Result, error) {
	c.stop()
	return c.Wait()
}

// Wait waits until the capture ends (Stop, the context, Duration or Count) and the file is
// complete, and returns what was captured.
func (c *Capture) Wait() (Result, error) {
	<-c.done
	return c.res, c.err
}

// Done is closed when the capture has ended and the file is complete.
func (c *Capture) Done() <-chan struct{} { return c.done }

// Packets returns how many frames have been written so far, by guest.
func (c *Capture) Packets() map[string]uint64 {
	out := make(map[string]uint64, len(c.ifaces))
	for i := range c.ifaces {
		out[c.ifaces[i].Guest] = c.counts[i].Load() // Guest alone: run fills in the rest
	}
	return out
}
