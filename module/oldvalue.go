package module

import (
	"fmt"
	"slices"
	"strconv"

	"github.com/valkey-iungo/valkey-iungo/scripting"
)

// The value a key had, for server.old_value(): the server reports a
// deleted, expired, evicted or overwritten key's value just before the
// keyspace notification of the same change; the module keeps it for that
// notification's job, and only when a trigger that may run for it matches.

// Value types as the shim reports them.
const (
	valueString = 1
	valueList   = 2
	valueHash   = 3
	valueSet    = 4
	valueZset   = 5
)

// How a value went, as the server's key event says (its subevents).
const (
	goneDeleted = iota
	goneExpired
	goneEvicted
	goneOverwritten
)

// goneEvents are the events that report each way a value goes, for the
// key it went from; nil: whatever event follows (an overwrite is reported
// by the writing command's event: set, restore, rename_to, sortstore, ...).
var goneEvents = [...][]string{
	// RENAME, COPY ... REPLACE and RESTORE ... REPLACE delete the key they
	// write first.
	goneDeleted:     {"del", "rename_from", "move_from", "rename_to", "copy_to", "restore"},
	goneExpired:     {"expired"},
	goneEvicted:     {"evicted"},
	goneOverwritten: nil,
}

func reportsGone(event string, how int) bool {
	return how < 0 || how >= len(goneEvents) || goneEvents[how] == nil || slices.Contains(goneEvents[how], event)
}

// OldValueWanted returns how many bytes of a key's old value to keep, 0
// for none: no enabled trigger that matches the key listens to an event
// that reports this way of going, or the option is 0.
func (m *Module) OldValueWanted(key string, how int) int64 {
	if m.opts.OldValueMax <= 0 || m.paused {
		return 0
	}
	m.match = m.index.Lookup(key, m.match[:0])
	for _, t := range m.match {
		if t.Events == nil || slices.ContainsFunc(t.Events, func(e string) bool { return reportsGone(e, how) }) {
			return m.opts.OldValueMax
		}
	}
	return 0
}

// SetOldValue keeps what a key held, read by the shim: value in the
// reply encoding of calls (decoded by the caller), the value's type (0
// for one not read: stream, module type), and whether it was over the
// size limit.
func (m *Module) SetOldValue(key string, value scripting.Reply, valueType int, over bool, how int) {
	old := keptValue{OldValue: scripting.OldValue{Value: value}, how: how}
	switch {
	case over:
		old.OldValue = scripting.OldValue{Why: fmt.Sprintf("not kept: larger than iungo.old-value-max-bytes (%d)", m.opts.OldValueMax)}
	case valueType == 0:
		old.OldValue = scripting.OldValue{Why: "not kept: streams and module types are not read"}
	case valueType == valueZset:
		old.Value = sortZset(value)
	}
	if m.oldValues == nil {
		m.oldValues = map[string]keptValue{}
	}
	m.oldValues[key] = old
}

// keptValue is an old value and how it went.
type keptValue struct {
	scripting.OldValue
	how int
}

// takeOldValue hands the value kept for key to the event that reports its
// going (an HDEL that empties a hash reports hdel, then del: del takes it).
func (m *Module) takeOldValue(event, key string) *scripting.OldValue {
	if len(m.oldValues) == 0 {
		return nil
	}
	old, ok := m.oldValues[key]
	if !ok || !reportsGone(event, old.how) {
		return nil
	}
	delete(m.oldValues, key)
	return &old.OldValue
}

// sortZset orders member/score pairs as ZRANGE 0 -1 WITHSCORES does: by
// score, then member.
func sortZset(r scripting.Reply) scripting.Reply {
	n := len(r.Elems) / 2
	pairs := make([][2]scripting.Reply, n)
	for i := range pairs {
		pairs[i] = [2]scripting.Reply{r.Elems[2*i], r.Elems[2*i+1]}
	}
	score := func(p [2]scripting.Reply) float64 {
		f, _ := strconv.ParseFloat(p[1].Str, 64)
		return f
	}
	slices.SortFunc(pairs, func(a, b [2]scripting.Reply) int {
		if sa, sb := score(a), score(b); sa != sb {
			if sa < sb {
				return -1
			}
			return 1
		}
		switch {
		case a[0].Str < b[0].Str:
			return -1
		case a[0].Str > b[0].Str:
			return 1
		}
		return 0
	})
	out := scripting.Reply{Kind: scripting.ReplyArray, Elems: make([]scripting.Reply, 0, 2*n)}
	for _, p := range pairs {
		out.Elems = append(out.Elems, p[0], p[1])
	}
	return out
}
