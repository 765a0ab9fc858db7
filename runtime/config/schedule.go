package config

import (
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/pontoon-dev/pontoon/internal/lazy"
	"github.com/pontoon-dev/pontoon/partition"
	"github.com/pontoon-dev/pontoon/schedule"
)

// A command's fault schedule, [commands.NAME.schedule]: the keys are read here into a
// schedule.Spec, which package schedule validates; its field errors are reported at the key
// they name, on that key's line.

// scheduleDecl is a schedule table as its keys are read.
type scheduleDecl struct {
	spec schedule.Spec
	bad  bool // a key had an error already reported
}

// faultDecl is a step, a nemesis fault or a flap table as its keys are read.
type faultDecl struct {
	fault   schedule.Fault
	heal    bool
	healSet bool
	dur     time.Duration // a step's for
	on, off time.Duration // a flap's
	count   int
	bad     bool
}

func faultFields(keys ...string) []field[faultDecl] {
	all := map[string]field[faultDecl]{
		"partition": {key: "partition", kind: text, example: `"isolate n1"`,
			read: func(c *checker, p []string, v any, d *faultDecl) { d.fault.Partition = v.(string) }},
		"impair": {key: "impair", kind: text, example: `"loss=30% n2"`,
			read: func(c *checker, p []string, v any, d *faultDecl) { d.fault.Impair = v.(string) }},
		"dns": {key: "dns", kind: text, example: `"nxdomain --name db"`,
			read: func(c *checker, p []string, v any, d *faultDecl) { d.fault.DNS = v.(string) }},
		"mode": {key: "mode", kind: choice, choices: []string{string(partition.ModeDrop), string(partition.ModeReject)}, what: "a mode",
			read: func(c *checker, p []string, v any, d *faultDecl) { d.fault.Mode = partition.Mode(v.(string)) }},
		"heal": {key: "heal", kind: flag, example: "true",
			read: func(c *checker, p []string, v any, d *faultDecl) { d.heal, d.healSet = v.(bool), true }},
		"for": {key: "for", kind: duration, example: `"5s"`, read: durationInto(func(d *faultDecl) *time.Duration { return &d.dur })},
		"on":  {key: "on", kind: duration, example: `"1s"`, read: durationInto(func(d *faultDecl) *time.Duration { return &d.on })},
		"off": {key: "off", kind: duration, example: `"1s"`, read: durationInto(func(d *faultDecl) *time.Duration { return &d.off })},
		"count": {key: "count", example: "5",
			read: func(c *checker, p []string, v any, d *faultDecl) {
				n, ok := c.integer(p, v, "count = 5")
				d.count, d.bad = n, d.bad || !ok
			}},
	}
	out := make([]field[faultDecl], len(keys))
	for i, k := range keys {
		out[i] = all[k]
	}
	return out
}

func durationInto(at func(*faultDecl) *time.Duration) func(c *checker, p []string, v any, d *faultDecl) {
	return func(c *checker, p []string, v any, d *faultDecl) {
		if x, ok := c.scheduleDuration(p, v.(string)); ok {
			*at(d) = x
		} else {
			d.bad = true
		}
	}
}

// The fault schemas are built on first use: most runs of the pontoon binary read no schedule.
var (
	stepSchema = lazy.Value[*schema[faultDecl]]{Build: func() *schema[faultDecl] {
		return &schema[faultDecl]{fields: faultFields("partition", "impair", "dns", "mode", "heal", "for"), aliases: faultAliases.Get()}
	}}
	nemesisFaultSchema = lazy.Value[*schema[faultDecl]]{Build: func() *schema[faultDecl] {
		return &schema[faultDecl]{fields: faultFields("partition", "impair", "dns", "mode"), aliases: faultAliases.Get()}
	}}
	flapSchema = lazy.Value[*schema[faultDecl]]{Build: func() *schema[faultDecl] {
		return &schema[faultDecl]{fields: faultFields("partition", "impair", "dns", "mode", "on", "off", "count"), aliases: faultAliases.Get()}
	}}
	faultAliases = lazy.Value[map[string]string]{Build: func() map[string]string {
		return map[string]string{"duration": `"for"`, "loss": `impair = "loss=10% GUEST"`, "delay": `impair = "delay=50ms GUEST"`,
			"rate": `impair = "rate=1mbit GUEST"`, "isolate": `partition = "isolate GUEST"`, "kind": `"partition"`, "fault": `"partition" or "impair"`}
	}}
)

var scheduleSchema = lazy.Value[*schema[scheduleDecl]]{Build: func() *schema[scheduleDecl] {
	return &schema[scheduleDecl]{
		fields: []field[scheduleDecl]{
			{key: "start", kind: duration, example: `"2s"`,
				read: func(c *checker, p []string, v any, d *scheduleDecl) {
					x, ok := c.scheduleDuration(p, v.(string))
					d.spec.Start, d.bad = x, d.bad || !ok
				}},
			{key: "seed", example: "7",
				read: func(c *checker, p []string, v any, d *scheduleDecl) {
					n, ok := c.integer(p, v, "seed = 7")
					d.spec.Seed, d.bad = int64(n), d.bad || !ok
				}},
			{key: "steps",
				read: func(c *checker, p []string, v any, d *scheduleDecl) {
					for i, t := range c.tables(p, v, `steps = [{ partition = "isolate n1", for = "5s" }, { heal = true, for = "2s" }]`) {
						f := c.fault(elemPath(p, i), t, stepSchema.Get())
						// A step with nothing in it would heal: a fault left out by mistake.
						if !f.bad && !f.healSet && f.fault.Healed() {
							c.errf(elemPath(p, i), "names no fault; give partition, impair or dns, or heal = true for a healed step")
							f.bad = true
						}
						d.spec.Steps = append(d.spec.Steps, schedule.Step{Fault: f.fault, For: f.dur})
						d.bad = d.bad || f.bad
					}
				}},
			{key: "nemesis",
				read: func(c *checker, p []string, v any, d *scheduleDecl) {
					if t, ok := c.table(p, v, `[`+keyString(p)+`] with faults, fault, recovery, duration and healed`); ok {
						d.spec.Nemesis = c.nemesis(p, t, d)
					}
				}},
			{key: "flap",
				read: func(c *checker, p []string, v any, d *scheduleDecl) {
					if t, ok := c.table(p, v, `[`+keyString(p)+`] with partition (or impair, dns), on, off and count`); ok {
						f := c.fault(p, t, flapSchema.Get())
						d.spec.Flap = &schedule.Flap{Fault: f.fault, On: f.on, Off: f.off, Count: f.count}
						d.bad = d.bad || f.bad
					}
				}},
		},
		aliases: map[string]string{"delay": `"start"`, "after": `"start"`, "random": `"nemesis"`, "chaos": `"nemesis"`, "flapping": `"flap"`, "step": `"steps"`},
	}
}}

var nemesisSchema = lazy.Value[*schema[nemesisDecl]]{Build: func() *schema[nemesisDecl] {
	return &schema[nemesisDecl]{
		fields: []field[nemesisDecl]{
			{key: "faults",
				read: func(c *checker, p []string, v any, d *nemesisDecl) {
					for i, t := range c.tables(p, v, `faults = [{ partition = "random-halves" }, { impair = "loss=30% n1" }]`) {
						f := c.fault(elemPath(p, i), t, nemesisFaultSchema.Get())
						d.n.Faults = append(d.n.Faults, f.fault)
						d.bad = d.bad || f.bad
					}
				}},
			nemesisDuration("fault", `"5s"`, func(n *schedule.Nemesis) *time.Duration { return &n.Fault }),
			nemesisDuration("recovery", `"3s"`, func(n *schedule.Nemesis) *time.Duration { return &n.Recovery }),
			nemesisDuration("duration", `"60s"`, func(n *schedule.Nemesis) *time.Duration { return &n.Duration }),
			nemesisDuration("healed", `"10s"`, func(n *schedule.Nemesis) *time.Duration { return &n.Healed }),
		},
		aliases: map[string]string{"seed": `seed in the [schedule] table itself`, "length": `"duration"`, "heal": `"recovery"`, "rest": `"recovery"`},
	}
}}

type nemesisDecl struct {
	n   schedule.Nemesis
	bad bool
}

func nemesisDuration(key, example string, at func(*schedule.Nemesis) *time.Duration) field[nemesisDecl] {
	return field[nemesisDecl]{key: key, kind: duration, example: example,
		read: func(c *checker, p []string, v any, d *nemesisDecl) {
			if x, ok := c.scheduleDuration(p, v.(string)); ok {
				*at(&d.n) = x
			} else {
				d.bad = true
			}
		}}
}

func (c *checker) nemesis(path []string, t map[string]any, sd *scheduleDecl) *schedule.Nemesis {
	var d nemesisDecl
	decode(c, path, t, nemesisSchema.Get(), &d)
	sd.bad = sd.bad || d.bad
	return &d.n
}

// fault reads one fault table; heal = true stands for the healed fault.
func (c *checker) fault(path []string, t map[string]any, s *schema[faultDecl]) faultDecl {
	var d faultDecl
	n := len(c.errs)
	decode(c, path, t, s, &d)
	if d.healSet && d.heal && !d.fault.Healed() {
		c.errf(sub(path, "heal"), "a step either heals or puts a fault in force; remove heal, or partition, impair and dns")
	}
	if d.healSet && !d.heal {
		c.errf(sub(path, "heal"), "heal = false means nothing; write heal = true for a healed step, or remove it")
	}
	d.bad = d.bad || len(c.errs) > n
	return d
}

// tables reads an array of tables.
func (c *checker) tables(path []string, v any, example string) []map[string]any {
	var elems []any
	switch x := v.(type) {
	case []map[string]any:
		for _, t := range x {
			elems = append(elems, t)
		}
	case []any:
		elems = x
	default:
		c.errf(path, "must be an array of tables, not %s; write %s", typeName(v), example)
		return nil
	}
	out := make([]map[string]any, 0, len(elems))
	for i, e := range elems {
		t, ok := e.(map[string]any)
		if !ok {
			c.errAt(path, c.lines.line(elemPath(path, i)), "element %d must be a table, not %s; write %s", i+1, typeName(e), example)
			continue
		}
		out = append(out, t)
	}
	return out
}

func (c *checker) integer(path []string, v any, example string) (int, bool) {
	n, ok := v.(int64)
	if !ok {
		if s, isStr := v.(string); isStr {
			if _, err := strconv.Atoi(s); err == nil {
				c.errf(path, "%q is a string; write %s without quotes", s, example)
				return 0, false
			}
		}
		c.errf(path, "must be an integer, not %s; write %s", typeName(v), example)
		return 0, false
	}
	return int(n), true
}

func (c *checker) scheduleDuration(p []string, s string) (time.Duration, bool) {
	d, err := time.ParseDuration(s)
	if err != nil {
		k := p[len(p)-1]
		if _, numErr := strconv.ParseFloat(s, 64); numErr == nil {
			c.errf(p, "%q has no unit; write %s = \"%ss\" (or \"ms\", \"m\")", s, k, s)
		} else {
			c.errf(p, "%q is not a duration; write a number with a unit, e.g. %s = \"3s\", \"500ms\" or \"2m\"", s, k)
		}
		return 0, false
	}
	return d, true
}

// schedule reads [commands.NAME.schedule] and, when guestsKnown (the command had no mistake
// that could leave one out), checks it against the command's guests.
func (c *checker) schedule(path []string, v any, guests []partition.Guest, guestsKnown bool) *schedule.Spec {
	t, ok := c.table(path, v, "["+keyString(path)+"] with steps, nemesis or flap")
	if !ok {
		return nil
	}
	n := len(c.errs)
	var d scheduleDecl
	decode(c, path, t, scheduleSchema.Get(), &d)
	if d.bad || len(c.errs) > n {
		return nil // the spec is incomplete; its own checks would repeat what was said
	}
	if !guestsKnown {
		if err := d.spec.Validate(); err != nil {
			c.scheduleErrs(path, err)
		}
		return nil
	}
	if len(guests) == 0 {
		c.errf(path, "a schedule acts on the run's guests, and this command has none; give it guest children (ip = %q) or network = \"guest\"", c.first.String())
		return nil
	}
	if err := d.spec.Check(guests); err != nil {
		c.scheduleErrs(path, err)
		return nil
	}
	return &d.spec
}

// scheduleErrs reports a schedule's error from package schedule at the keys it names.
func (c *checker) scheduleErrs(path []string, err error) {
	fes := schedule.FieldErrors(err)
	if len(fes) == 0 {
		c.errf(path, "%v", err)
		return
	}
	for _, fe := range fes {
		// Lines are found with keylines' element paths, counted from 0.
		lp := sub(path)
		for _, part := range fe.Path {
			if n, ok := strings.CutPrefix(part, "#"); ok {
				i, _ := strconv.Atoi(n)
				part = "#" + strconv.Itoa(i-1)
			}
			lp = append(lp, part)
		}
		key := keyString(path)
		if f := fe.Field(); f != "" {
			key += "." + f
		}
		c.errs = append(c.errs, &Error{File: c.file, Line: c.lines.line(lp), Key: key, Msg: fe.Msg})
	}
}

// ScheduleGuests are the guests the command's schedule may name, as partition resolves them
// (by name or address); the port names are placeholders, since ports exist only at run time.
func (cmd *Command) ScheduleGuests() []partition.Guest {
	var out []partition.Guest
	add := func(name string, g *Guest) {
		if g != nil && g.IP.IsValid() {
			out = append(out, partition.Guest{Name: name, IP: g.IP, Port: "g" + strconv.Itoa(int(g.IP.As4()[3]))})
		}
	}
	add(cmd.Name, cmd.Guest)
	for _, ch := range cmd.Children {
		add(ch.Name, ch.Guest)
	}
	seen := map[netip.Addr]bool{}
	for _, g := range out {
		if seen[g.IP] {
			return nil // duplicate addresses are reported on their own
		}
		seen[g.IP] = true
	}
	return out
}
