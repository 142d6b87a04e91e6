package module

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/valkey-iungo/valkey-iungo/config"
	"github.com/valkey-iungo/valkey-iungo/scripting"
)

// A window trigger gathers its events into the dataset, in the event's own
// post-notification job, so that what it gathered is replicated and saved
// with the command that caused it: HINCRBY <window key> <key> 1, where the
// window key names the trigger, the window length and the window's number
// since the Unix epoch (windows are fixed multiples of the length, the same
// on every node). The set windowIndexKey lists the window keys. Once a
// window has ended, the primary runs the script with KEYS = the keys and
// ARGV = their counts, then the window's start and end (Unix ms), and
// deletes the window key in the same execution unit: the run's writes and
// the consumption replicate together, in one MULTI/EXEC. A promoted replica
// has either both or neither, so a window runs once, nothing gathered is
// lost, and nothing is counted twice.
const (
	// InternalKeyPrefix starts the module's own keys; no trigger fires on
	// them.
	InternalKeyPrefix = "__iungo:"
	windowKeyPrefix   = InternalKeyPrefix + "window:"
	windowIndexKey    = InternalKeyPrefix + "windows"
)

// windowID names a trigger in its window keys: a digest of its identity,
// so that a pattern of any bytes makes a short key. A trigger's identity
// never changes: it is computed once.
func windowID(t *Trigger) string {
	if t.winID == "" {
		sum := sha256.Sum256([]byte(t.ID()))
		t.winID = hex.EncodeToString(sum[:8])
	}
	return t.winID
}

// windowKey is the key gathering the events of window n (of length ms) of
// the trigger with id.
func windowKey(id string, ms, n int64) string {
	return windowKeyPrefix + id + ":" + strconv.FormatInt(ms, 10) + ":" + strconv.FormatInt(n, 10)
}

// parseWindowKey reads a window key.
func parseWindowKey(key string) (id string, ms, n int64, ok bool) {
	rest, found := strings.CutPrefix(key, windowKeyPrefix)
	if !found {
		return "", 0, 0, false
	}
	parts := strings.Split(rest, ":")
	if len(parts) != 3 {
		return "", 0, 0, false
	}
	ms, err1 := strconv.ParseInt(parts[1], 10, 64)
	n, err2 := strconv.ParseInt(parts[2], 10, 64)
	if err1 != nil || err2 != nil || ms <= 0 || n < 0 {
		return "", 0, 0, false
	}
	return parts[0], ms, n, true
}

// checkWindow checks a window length in ms (0: none).
func (m *Module) checkWindow(ms int64) error {
	if err := config.CheckWindow(ms); err != nil {
		return err
	}
	if ms > 0 && m.cluster {
		return errorf("window triggers are not supported in cluster mode yet: a window gathers keys of every slot into one")
	}
	return nil
}

// gather counts an event on key for the window trigger t, now. It runs as
// the module's own user: the window key is the module's, whatever the
// script user may touch.
func (m *Module) gather(ctx Ctx, t *Trigger, event, key string) {
	ms := t.Window.Milliseconds()
	wk := windowKey(windowID(t), ms, time.Now().UnixMilli()/ms)
	r := ctx.Call([]string{"HINCRBY", wk, key, "1"})
	if r.Kind == scripting.ReplyError {
		m.recordError(t, event, key, "not gathered: "+r.Str)
		return
	}
	t.Gathered++
	m.stats.Gathered++
	if r.Int != 1 {
		return // a key this window already has
	}
	n := ctx.Call([]string{"HLEN", wk}).Int
	if n > m.opts.WindowMaxKeys {
		ctx.Call([]string{"HDEL", wk, key})
		t.Gathered--
		m.stats.Gathered--
		m.stats.WindowOverflows++
		m.recordError(t, event, key, fmt.Sprintf("not gathered: this window already holds %d keys (iungo.window-max-keys); the event is not counted", m.opts.WindowMaxKeys))
		return
	}
	if n == 1 {
		ctx.Call([]string{"SADD", windowIndexKey, wk})
	}
}

// windowTick runs at most one ended window and reports whether it did.
func (m *Module) windowTick(ctx Ctx, now time.Time) bool {
	if !m.windowCheck {
		return false
	}
	r := ctx.Call([]string{"SMEMBERS", windowIndexKey})
	if r.Kind == scripting.ReplyError {
		return false
	}
	if len(r.Elems) == 0 {
		m.windowCheck = m.hasWindowTriggers()
		return false
	}
	keys := make([]string, 0, len(r.Elems))
	for _, e := range r.Elems {
		keys = append(keys, e.Str)
	}
	slices.Sort(keys)
	var byID map[string]*Trigger
	for _, wk := range keys {
		id, ms, n, ok := parseWindowKey(wk)
		end := (n + 1) * ms
		if ok && end > now.UnixMilli() {
			continue // still open
		}
		if byID == nil {
			byID = m.triggersByWindowID()
		}
		t := byID[id]
		if !ok || t == nil {
			// Its trigger is gone: nothing can run it.
			ctx.Call([]string{"DEL", wk})
			ctx.Call([]string{"SREM", windowIndexKey, wk})
			m.logf(LogWarning, "iungo: dropped the gathered window %q: its trigger was removed", wk)
			return true
		}
		if !t.Enabled {
			continue // kept until the trigger is enabled again
		}
		if ctx.OutOfMemory() {
			if t.windowSkipped != wk {
				t.windowSkipped = wk
				m.stats.OOMSkips++
				m.recordError(t, "window", wk, "not run yet: OOM command not allowed when used memory > 'maxmemory'; it runs once memory is back under maxmemory")
			}
			continue
		}
		m.runWindow(ctx, t, wk, n*ms, end)
		return true
	}
	return false
}

func (m *Module) hasWindowTriggers() bool {
	for _, t := range m.triggers {
		if t.Window > 0 {
			return true
		}
	}
	return false
}

func (m *Module) triggersByWindowID() map[string]*Trigger {
	out := map[string]*Trigger{}
	for _, t := range m.triggers {
		out[windowID(t)] = t
	}
	return out
}

// runWindow consumes the window key wk and runs t's script for it.
func (m *Module) runWindow(ctx Ctx, t *Trigger, wk string, start, end int64) {
	r := ctx.Call([]string{"HGETALL", wk})
	ctx.Call([]string{"DEL", wk})
	ctx.Call([]string{"SREM", windowIndexKey, wk})
	counts := map[string]string{}
	for i := 0; i+1 < len(r.Elems); i += 2 {
		counts[r.Elems[i].Str] = r.Elems[i+1].Str
	}
	keys := make([]string, 0, len(counts))
	for k := range counts {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	args := make([]string, 0, len(keys)+2)
	for _, k := range keys {
		args = append(args, counts[k])
	}
	args = append(args, strconv.FormatInt(start, 10), strconv.FormatInt(end, 10))
	m.stats.WindowRuns++
	label := "window " + time.UnixMilli(start).UTC().Format("2006-01-02T15:04:05.000Z")
	m.runUnit(ctx, m.scripts[t.Script], scripting.Input{Keys: keys, Args: args}, &t.RunStats, func(msg string) {
		m.recordError(t, "window", label, msg)
	})
}

// runUnit runs a script that no command caused (a cron, a window) as its
// own unit: its own budget, the triggers its writes fire one level deeper.
func (m *Module) runUnit(ctx Ctx, s *scripting.Script, in scripting.Input, st *RunStats, fail func(msg string)) {
	if m.unit.open {
		m.endUnit()
	}
	m.unit = unit{open: true, runs: 1}
	m.engine.BeginUnit()
	defer func() {
		if m.jobs.len() == 0 {
			m.endUnit()
		}
	}()
	if err := ctx.AttachUser(m.opts.ScriptUser); err != nil {
		fail(err.Error())
		return
	}
	m.depth = 1
	m.host.ctx, m.host.key, m.host.slot = ctx, "", -1
	defer func() {
		m.depth, m.host.ctx = 0, nil
		ctx.DetachUser()
	}()
	start := time.Now()
	err := m.engine.Run(s, in, &m.host)
	took := time.Since(start)
	st.Runs++
	st.RunTime += took
	st.MaxRunTime = max(st.MaxRunTime, took)
	m.stats.Runs++
	if err != nil {
		fail(err.Error())
	}
}
