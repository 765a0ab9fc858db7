package partition

import (
	"errors"
	"fmt"

	"github.com/vishvananda/netlink"
)

// shapingCount is what the traffic control of one impairment counted.
type shapingCount struct {
	Shaped, Delayed        Count
	QueueDrops, Overlimits uint64
}

// readShapingCounters reads the statistics of the HTB classes and netem qdiscs of the
// recorded shaping, by impairment target ("guest a" for a guest's default classes, whether
// or not its impairment shapes). A device that is gone is skipped (Status says the
// shaping is gone); other failures are returned with what could be read.
func readShapingCounters(bridgeNS string, shaping []Shaping) (map[string]shapingCount, error) {
	out := map[string]shapingCount{}
	if len(shaping) == 0 {
		return out, nil
	}
	hs := newHandles(bridgeNS)
	defer hs.close()
	var errs []error
	for _, sh := range shaping {
		h, err := hs.get(sh.Netns)
		if err != nil {
			continue
		}
		link, err := h.LinkByName(sh.Device)
		if err != nil {
			continue
		}
		classes, err := h.ClassList(link, 0)
		if err != nil {
			errs = append(errs, fmt.Errorf("read the classes of %s: %w", where(sh), err))
			continue
		}
		qdiscs, err := h.QdiscList(link)
		if err != nil {
			errs = append(errs, fmt.Errorf("read the qdiscs of %s: %w", where(sh), err))
			continue
		}
		for _, c := range sh.Classes {
			target := "guest " + sh.Guest
			if c.From != "" {
				target = c.From + "->" + sh.Guest
			}
			n := out[target]
			handle := netlink.MakeHandle(QdiscMajor, c.Minor)
			for _, cl := range classes {
				a := cl.Attrs()
				if a.Handle != handle || a.Statistics == nil {
					continue
				}
				if s := a.Statistics.Basic; s != nil {
					n.Shaped.add(Count{Packets: uint64(s.Packets), Bytes: s.Bytes})
				}
				if q := a.Statistics.Queue; q != nil {
					n.QueueDrops += uint64(q.Drops)
					n.Overlimits += uint64(q.Overlimits)
				}
			}
			for _, q := range qdiscs {
				a := q.Attrs()
				if a.Parent != handle || q.Type() != "netem" || a.Statistics == nil {
					continue
				}
				if s := a.Statistics.Basic; s != nil {
					n.Delayed.add(Count{Packets: uint64(s.Packets), Bytes: s.Bytes})
				}
				if s := a.Statistics.Queue; s != nil {
					n.QueueDrops += uint64(s.Drops)
				}
			}
			out[target] = n
		}
	}
	return out, errors.Join(errs...)
}
