package server

import (
	"slices"
	"strings"

	"github.com/valkey-iungo/valkey-iungo/iungo"
)

// Kinds of change in a Diff.
const (
	changeAdded   = "added"
	changeRemoved = "removed"
	changeChanged = "changed"
	changeMoved   = "moved" // to the end of the order
)

// Diff is what turns one configuration into another.
type Diff struct {
	Events   *EventsDiff   `json:"events,omitempty"`
	Scripts  []ScriptDiff  `json:"scripts,omitempty"`
	Triggers []TriggerDiff `json:"triggers,omitempty"`
	Crons    []CronDiff    `json:"crons,omitempty"`
}

// Empty reports whether the two configurations are the same.
func (d Diff) Empty() bool {
	return d.Events == nil && len(d.Scripts) == 0 && len(d.Triggers) == 0 && len(d.Crons) == 0
}

// Count is the number of things that change.
func (d Diff) Count() int {
	n := len(d.Scripts) + len(d.Triggers) + len(d.Crons)
	if d.Events != nil {
		n++
	}
	return n
}

// EventsDiff is a change of the enabled event classes.
type EventsDiff struct {
	Old []string `json:"old"`
	New []string `json:"new"`
}

// ScriptDiff is a script added, removed or changed, line by line.
type ScriptDiff struct {
	Name   string     `json:"name"`
	Change string     `json:"change"`
	Lines  []DiffLine `json:"lines"`
}

// DiffLine is a line kept (" "), removed ("-") or added ("+"); "@" stands
// for unchanged lines left out, and Text says how many.
type DiffLine struct {
	Op   string `json:"op"`
	Text string `json:"text"`
}

// TriggerDiff is a route added, removed, changed (script or state) or
// moved to the end of the order.
type TriggerDiff struct {
	Change string         `json:"change"`
	Old    *iungo.Trigger `json:"old,omitempty"`
	New    *iungo.Trigger `json:"new,omitempty"`
}

// CronDiff is a cron added, removed or changed.
type CronDiff struct {
	Change string      `json:"change"`
	Old    *iungo.Cron `json:"old,omitempty"`
	New    *iungo.Cron `json:"new,omitempty"`
}

func diffContent(old, new Content) Diff {
	var d Diff
	if !slices.Equal(old.Events, new.Events) && !(len(old.Events) == 0 && len(new.Events) == 0) {
		d.Events = &EventsDiff{Old: nonNil(old.Events), New: nonNil(new.Events)}
	}
	for _, o := range old.Scripts {
		if new.script(o.Name) < 0 {
			d.Scripts = append(d.Scripts, ScriptDiff{Name: o.Name, Change: changeRemoved, Lines: diffLines(o.Source, "")})
		}
	}
	for _, n := range new.Scripts {
		switch i := old.script(n.Name); {
		case i < 0:
			d.Scripts = append(d.Scripts, ScriptDiff{Name: n.Name, Change: changeAdded, Lines: diffLines("", n.Source)})
		case old.Scripts[i].Source != n.Source:
			d.Scripts = append(d.Scripts, ScriptDiff{Name: n.Name, Change: changeChanged, Lines: diffLines(old.Scripts[i].Source, n.Source)})
		}
	}
	slices.SortStableFunc(d.Scripts, func(a, b ScriptDiff) int { return strings.Compare(a.Name, b.Name) })
	for _, o := range old.Triggers {
		if new.trigger(o.Pattern, o.Events) < 0 {
			d.Triggers = append(d.Triggers, TriggerDiff{Change: changeRemoved, Old: &o})
		}
	}
	// Routes run in registration order, and a new one registers last: a
	// route stays in place only while the routes kept before it keep
	// their order and none is new; the others move (unset, then set).
	lastKept, tail := -1, false
	for _, n := range new.Triggers {
		i := old.trigger(n.Pattern, n.Events)
		switch {
		case i < 0:
			d.Triggers = append(d.Triggers, TriggerDiff{Change: changeAdded, New: &n})
			tail = true
		case tail || i < lastKept:
			o := old.Triggers[i]
			d.Triggers = append(d.Triggers, TriggerDiff{Change: changeMoved, Old: &o, New: &n})
			tail = true
		default:
			lastKept = i
			if o := old.Triggers[i]; o != n {
				d.Triggers = append(d.Triggers, TriggerDiff{Change: changeChanged, Old: &o, New: &n})
			}
		}
	}
	for _, o := range old.Crons {
		if new.cron(o.Name) < 0 {
			d.Crons = append(d.Crons, CronDiff{Change: changeRemoved, Old: &o})
		}
	}
	for _, n := range new.Crons {
		switch i := old.cron(n.Name); {
		case i < 0:
			d.Crons = append(d.Crons, CronDiff{Change: changeAdded, New: &n})
		case old.Crons[i] != n:
			o := old.Crons[i]
			d.Crons = append(d.Crons, CronDiff{Change: changeChanged, Old: &o, New: &n})
		}
	}
	slices.SortStableFunc(d.Crons, func(a, b CronDiff) int { return strings.Compare(a.name(), b.name()) })
	return d
}

func (c CronDiff) name() string {
	if c.New != nil {
		return c.New.Name
	}
	return c.Old.Name
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// Bounds of a line diff: lines of context around a change, and the size of
// the table the longest common subsequence may fill; past it the changed
// middle shows as removed, then added.
const (
	diffContext  = 3
	maxDiffCells = 4 << 20
)

// diffLines compares two sources line by line, keeping diffContext lines
// around each change.
func diffLines(old, new string) []DiffLine {
	a, b := splitLines(old), splitLines(new)
	prefix := 0
	for prefix < len(a) && prefix < len(b) && a[prefix] == b[prefix] {
		prefix++
	}
	suffix := 0
	for suffix < len(a)-prefix && suffix < len(b)-prefix && a[len(a)-1-suffix] == b[len(b)-1-suffix] {
		suffix++
	}
	var all []DiffLine
	for _, l := range a[:prefix] {
		all = append(all, DiffLine{" ", l})
	}
	all = append(all, middleDiff(a[prefix:len(a)-suffix], b[prefix:len(b)-suffix])...)
	for _, l := range a[len(a)-suffix:] {
		all = append(all, DiffLine{" ", l})
	}
	return trimContext(all)
}

func splitLines(s string) []string {
	if s == "" {
		return nil
	}
	return strings.Split(strings.TrimSuffix(s, "\n"), "\n")
}

// middleDiff is the longest-common-subsequence diff of a and b, or all of
// a removed and all of b added when the table would be too large.
func middleDiff(a, b []string) []DiffLine {
	var out []DiffLine
	if len(a)*len(b) > maxDiffCells {
		for _, l := range a {
			out = append(out, DiffLine{"-", l})
		}
		for _, l := range b {
			out = append(out, DiffLine{"+", l})
		}
		return out
	}
	// lcs[i][j] is the length of the LCS of a[i:] and b[j:].
	w := len(b) + 1
	lcs := make([]int32, (len(a)+1)*w)
	for i := len(a) - 1; i >= 0; i-- {
		for j := len(b) - 1; j >= 0; j-- {
			if a[i] == b[j] {
				lcs[i*w+j] = lcs[(i+1)*w+j+1] + 1
			} else {
				lcs[i*w+j] = max(lcs[(i+1)*w+j], lcs[i*w+j+1])
			}
		}
	}
	i, j := 0, 0
	for i < len(a) || j < len(b) {
		switch {
		case i < len(a) && j < len(b) && a[i] == b[j]:
			out = append(out, DiffLine{" ", a[i]})
			i, j = i+1, j+1
		case i < len(a) && (j == len(b) || lcs[(i+1)*w+j] >= lcs[i*w+j+1]):
			out = append(out, DiffLine{"-", a[i]})
			i++
		default:
			out = append(out, DiffLine{"+", b[j]})
			j++
		}
	}
	return out
}

// trimContext replaces runs of unchanged lines farther than diffContext
// from any change with one "@" line.
func trimContext(lines []DiffLine) []DiffLine {
	keep := make([]bool, len(lines))
	for i, l := range lines {
		if l.Op != " " {
			for k := max(0, i-diffContext); k <= min(len(lines)-1, i+diffContext); k++ {
				keep[k] = true
			}
		}
	}
	var out []DiffLine
	for i := 0; i < len(lines); {
		if keep[i] {
			out = append(out, lines[i])
			i++
			continue
		}
		j := i
		for j < len(lines) && !keep[j] {
			j++
		}
		out = append(out, DiffLine{"@", plural(j-i, "unchanged line")})
		i = j
	}
	return out
}
