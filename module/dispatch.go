package module

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/valkey-iungo/valkey-iungo/config"
	"github.com/valkey-iungo/valkey-iungo/iungo"
	"github.com/valkey-iungo/valkey-iungo/scripting"
)

// job is one event waiting for its post-notification job.
type job struct {
	id        uint64
	depth     int
	maxmemory bool // maxmemory was set at the event: check for OOM first
	event     string
	key       string
	triggers  []*Trigger          // in registration order; points into the queue's buffer
	old       *scripting.OldValue // what the key held, when the event removed or replaced it
}

// jobQueue holds the jobs the server has accepted, in the order it runs
// them: the server runs post-notification jobs first in, first out. Jobs
// and their trigger lists reuse buffers, which start over whenever the
// queue is empty (after every command, in practice).
type jobQueue struct {
	items    []job
	head     int
	triggers []*Trigger // the queued jobs' trigger lists
	running  []*Trigger // the trigger list of the job popped last
}

const maxKeptJobs = 1024

func (q *jobQueue) push(j job, triggers []*Trigger) {
	if q.len() == 0 {
		q.items, q.head = q.items[:0], 0
		q.triggers = q.triggers[:0]
		if cap(q.items) > maxKeptJobs {
			// A big MULTI or script queued many jobs: let the memory go.
			q.items, q.triggers = nil, nil
		}
	}
	start := len(q.triggers)
	q.triggers = append(q.triggers, triggers...)
	j.triggers = q.triggers[start:len(q.triggers):len(q.triggers)]
	q.items = append(q.items, j)
}

func (q *jobQueue) len() int { return len(q.items) - q.head }

func (q *jobQueue) dropLast(id uint64) {
	if n := len(q.items); n > q.head && q.items[n-1].id == id {
		q.triggers = q.triggers[:len(q.triggers)-len(q.items[n-1].triggers)]
		q.items[n-1] = job{}
		q.items = q.items[:n-1]
	}
}

// pop returns the job with id; jobs queued before it (which the server would
// never have skipped) are dropped. The job's trigger list stays valid until
// the next pop, whatever is pushed meanwhile: jobs never nest.
func (q *jobQueue) pop(id uint64) (job, bool) {
	for q.head < len(q.items) {
		j := q.items[q.head]
		q.items[q.head] = job{}
		q.head++
		if j.id == id {
			q.running = append(q.running[:0], j.triggers...)
			j.triggers = q.running
			return j, true
		}
	}
	return job{}, false
}

// OnEvent is called from the keyspace notification callback for every event
// whose class the C shim let through. It decides whether any trigger matches
// and only then asks the server for a post-notification job: a job per event
// would halve the server's throughput. event and key may point into the
// server's memory; they are copied before being kept.
func (m *Module) OnEvent(ctx Ctx, event, key string) {
	m.stats.Events++
	if m.depth == 0 && m.unit.open {
		// An event outside any job belongs to the next command: the last
		// one's jobs are over, whatever the queue says.
		m.endUnit()
	}
	old := m.takeOldValue(event, key)
	if !m.listen.wants(event) {
		return
	}
	if m.debugEventPanic {
		m.debugEventPanic = false
		panic("IUNGO DEBUG EVENTPANIC: a panic in the keyspace event callback")
	}
	matched := m.route(event, key)
	if len(matched) == 0 || strings.HasPrefix(key, InternalKeyPrefix) {
		return // the module's own keys (window gathering) fire nothing
	}
	// Triggers run on the primary only, and not for what it replays: a
	// writable replica or an AOF load would otherwise run them twice.
	flags := ctx.Flags()
	if flags&(FlagReplica|FlagLoading|FlagReplicated) != 0 {
		return
	}
	depth := m.depth + 1
	if depth > m.opts.MaxDepth {
		m.stats.DepthSkips++
		for _, t := range matched {
			m.recordError(t, event, key, "not fired: deeper than iungo.max-depth")
		}
		return
	}
	m.nextJob++
	if !ctx.AddJob(m.nextJob) {
		return
	}
	m.jobs.push(job{id: m.nextJob, depth: depth, maxmemory: flags&FlagMaxmemory != 0,
		event: eventName(event, matched), key: strings.Clone(key), old: old}, matched)
}

// eventName returns event as a string the module may keep: one of the
// triggers' own event names when one lists it, else a copy.
func eventName(event string, triggers []*Trigger) string {
	for _, t := range triggers {
		if i := slices.Index(t.Events, event); i >= 0 {
			return t.Events[i]
		}
	}
	return strings.Clone(event)
}

// route returns the enabled triggers for (event, key) in registration order,
// in a buffer reused by the next call.
func (m *Module) route(event, key string) []*Trigger {
	m.match = m.index.Lookup(key, m.match[:0])
	n := 0
	for _, t := range m.match {
		if t.wants(event) {
			m.match[n] = t
			n++
		}
	}
	m.match = m.match[:n]
	// Few triggers match one key: insertion sort beats a generic sort.
	for i := 1; i < n; i++ {
		for j := i; j > 0 && m.match[j].seq < m.match[j-1].seq; j-- {
			m.match[j], m.match[j-1] = m.match[j-1], m.match[j]
		}
	}
	return m.match
}

// unit is the jobs of one client command (or expiry, eviction, ...): all
// the triggers it fires, its whole cascade, share one time budget and one
// cap on runs. It opens with its first job and closes when no job is left.
type unit struct {
	open bool
	runs int
}

func (m *Module) endUnit() {
	m.unit = unit{}
	m.engine.EndUnit()
}

// Why runs are not made; each is counted as an error of its trigger.
const (
	skipPaused = "not run: writes are paused (CLIENT PAUSE WRITE or ALL, FAILOVER, or a manual cluster failover), and a trigger may write"
	skipOOM    = "not run: OOM command not allowed when used memory > 'maxmemory', and a trigger may write"
)

// RunJob runs the triggers of one event; the server calls it through the
// post-notification job OnEvent scheduled. A failing script never fails the
// command that caused the event: its error is counted and logged.
func (m *Module) RunJob(ctx Ctx, id uint64) {
	j, ok := m.jobs.pop(id)
	clear(m.oldValues) // what no event took is stale now
	if !ok {
		m.logf(LogWarning, "iungo: post-notification job %d has no event; skipped", id)
		return
	}
	if !m.unit.open {
		m.unit = unit{open: true}
		m.engine.BeginUnit()
	}
	defer func() {
		if m.jobs.len() == 0 {
			m.endUnit()
		}
	}()
	// Checked once per job: neither changes while a command's jobs run.
	switch {
	case ctx.WritesPaused():
		// Replicating now would abort the server; running later would
		// not be atomic with the command.
		m.skipAll(j, skipPaused, &m.stats.PauseSkips)
		return
	case j.maxmemory && ctx.OutOfMemory():
		m.skipAll(j, skipOOM, &m.stats.OOMSkips)
		return
	}
	// Window triggers gather first, as the module's own user.
	scripts := 0
	for _, t := range j.triggers {
		switch t = m.current(t); {
		case t == nil || !t.Enabled || m.paused:
		case t.Window > 0:
			m.gather(ctx, t, j.event, j.key)
		default:
			scripts++
		}
	}
	if scripts == 0 {
		return
	}
	if err := ctx.AttachUser(m.opts.ScriptUser); err != nil {
		for _, t := range j.triggers {
			if t = m.current(t); t != nil && t.Window == 0 {
				m.recordError(t, j.event, j.key, err.Error())
			}
		}
		return
	}
	m.depth = j.depth
	m.host.ctx, m.host.key, m.host.slot = ctx, j.key, -1
	if m.cluster {
		m.host.slot = KeySlot(j.key)
	}
	defer func() {
		m.depth, m.host.ctx = 0, nil
		ctx.DetachUser()
	}()
	in := scripting.Input{Key: j.key, Event: j.event, DB: ctx.DB(), Old: j.old}
	for _, t := range j.triggers {
		// The configuration may have changed since the event, e.g. inside
		// the same MULTI: a trigger replaced by one with the same pattern
		// and events (RESTORE, a sync) runs as it is now.
		if t = m.current(t); t == nil || !t.Enabled || m.paused || t.Window > 0 {
			continue
		}
		if msg := m.unitFull(); msg != "" {
			m.stats.BudgetSkips++
			m.recordError(t, j.event, j.key, msg)
			continue
		}
		m.unit.runs++
		s := m.scripts[t.Script]
		start := time.Now()
		err := m.engine.Run(s, in, &m.host)
		took := time.Since(start)
		t.RunTime += took
		t.MaxRunTime = max(t.MaxRunTime, took)
		t.Runs++
		m.stats.Runs++
		if errors.Is(err, scripting.ErrBudget) {
			m.stats.BudgetSkips++
		}
		if err != nil {
			m.recordError(t, j.event, j.key, err.Error())
		}
	}
}

// current returns the trigger in force with t's pattern and events, or nil.
func (m *Module) current(t *Trigger) *Trigger {
	if !t.removed {
		return t
	}
	return m.triggers[t.ID()]
}

// unitFull says why the command's unit may start no more runs, or "".
func (m *Module) unitFull() string {
	switch {
	case m.engine.UnitExhausted():
		return fmt.Sprintf("not run: the triggers of this command used up iungo.command-budget-ms (%v)", m.commandBudget())
	case m.unit.runs >= m.opts.CommandRuns:
		return fmt.Sprintf("not run: this command already ran iungo.command-max-runs (%d) triggers", m.opts.CommandRuns)
	}
	return ""
}

// skipAll records that none of j's triggers ran, and why.
func (m *Module) skipAll(j job, why string, counter *uint64) {
	for _, t := range j.triggers {
		if t = m.current(t); t != nil && t.Enabled && !m.paused {
			*counter++
			m.recordError(t, j.event, j.key, why)
		}
	}
}

// maxErrorBytes bounds an error message in last_error and the log: a
// script can raise one of any size.
const maxErrorBytes = 4096

// recordError records a failed or skipped run of t for an event on a key:
// last_error and the log line say when, which event, which key and what.
func (m *Module) recordError(t *Trigger, event, key, msg string) {
	now := time.Now()
	if len(t.Recent) == maxRecentErrors {
		t.Recent = append(t.Recent[:0], t.Recent[1:]...)
	}
	t.Recent = append(t.Recent, RunError{At: now, Event: textOf(event, iungo.MaxReportedEventBytes),
		Key: textOf(key, iungo.MaxErrorKeyBytes), Line: iungo.ErrorLine(msg), Message: textOf(msg, iungo.MaxErrorMessageBytes)})
	t.Errors++
	t.LastError = m.noteError(now, fmt.Sprintf("trigger %q %s", t.Pattern, config.FormatEvents(t.Events)),
		"event "+event+" on key "+quoteKey(key), msg)
}

// noteError counts a run's error and logs it, at most a few a second, as
// "<who>: <time> <what>: <msg>", msg cut to maxErrorBytes; it returns what
// last_error keeps: all but who.
func (m *Module) noteError(now time.Time, who, what, msg string) string {
	if len(msg) > maxErrorBytes {
		msg = textOf(msg, maxErrorBytes) + "... (" + strconv.Itoa(len(msg)) + " bytes in all)"
	}
	msg = now.UTC().Format("2006-01-02T15:04:05.000Z") + " " + what + ": " + msg
	m.stats.Errors++
	ok, suppressed := m.errLog.allow(now)
	if suppressed > 0 {
		m.logf(LogWarning, "iungo: %d more run errors were not logged", suppressed)
	}
	if ok {
		m.logf(LogWarning, "iungo: %s: %s", who, msg)
	}
	return msg
}

// runReport is what a heartbeat tells of the triggers' runs: their
// counters in registration order within iungo.MaxStatsBytes, and the
// newest errors of all of them.
func (m *Module) runReport() (stats []iungo.TriggerStats, omitted int, recent []iungo.RunError) {
	size := 0
	for _, t := range m.sortedTriggers() {
		events := config.FormatEvents(t.Events)
		if size += len(t.Pattern) + len(events) + 96; size > iungo.MaxStatsBytes {
			omitted++
		} else {
			stats = append(stats, iungo.TriggerStats{Pattern: t.Pattern, Events: events, Runs: t.Runs, Errors: t.Errors,
				RunUs: uint64(t.RunTime.Microseconds()), MaxRunUs: uint64(t.MaxRunTime.Microseconds())})
		}
		for _, e := range t.Recent {
			recent = append(recent, iungo.RunError{Pattern: t.Pattern, Events: events,
				At: e.At.UTC().Format("2006-01-02T15:04:05.000Z"), Event: e.Event, Key: e.Key, Line: e.Line, Message: e.Message})
		}
	}
	slices.SortStableFunc(recent, func(a, b iungo.RunError) int { return strings.Compare(b.At, a.At) })
	if len(recent) > iungo.MaxRecentErrors {
		recent = recent[:iungo.MaxRecentErrors]
	}
	// A pattern may take 1 KiB: the errors' patterns count too.
	size = 0
	for i, e := range recent {
		if size += len(e.Pattern) + len(e.Key) + len(e.Message) + 128; size > iungo.MaxStatsBytes/2 {
			recent = recent[:i]
			break
		}
	}
	return stats, omitted, recent
}

// textOf is s as valid UTF-8 (keys are binary), cut to at most max bytes
// on a character boundary: JSON carries it unchanged.
func textOf(s string, max int) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	if len(s) <= max {
		return s
	}
	for max > 0 && !utf8.RuneStart(s[max]) {
		max--
	}
	return s[:max]
}

// DropJob forgets the last queued job, id, which the server did not take
// after all.
func (m *Module) DropJob(id uint64) { m.jobs.dropLast(id) }

// PendingJobs is the number of events waiting for their job.
func (m *Module) PendingJobs() int { return m.jobs.len() }

// quoteKey shows a key in a log line: quoted, binary-safe, and cut short.
func quoteKey(key string) string {
	const max = 64
	if len(key) > max {
		return strconv.Quote(key[:max]) + "..."
	}
	return strconv.Quote(key)
}

// jobHost is the scripting.Host of the job running now.
type jobHost struct {
	m    *Module
	ctx  Ctx
	key  string // the triggering key
	slot int    // its hash slot in cluster mode, else -1
}

func (h *jobHost) Call(args []string) scripting.Reply {
	if h.ctx == nil {
		return scripting.ErrorReply("ERR no server context")
	}
	if h.slot >= 0 {
		if msg := checkSlots(args, h.ctx.CommandKeys(args), h.key, h.slot); msg != "" {
			return scripting.ErrorReply(msg)
		}
	}
	return h.ctx.Call(args)
}

func (h *jobHost) CheckACL(args []string) (allowed, known bool) {
	if h.ctx == nil {
		return false, false
	}
	return h.ctx.CheckACL(args)
}

var scriptLogLevels = [...]LogLevel{LogDebug, LogVerbose, LogNotice, LogWarning}

func (h *jobHost) Log(level int, msg string) {
	h.m.log(scriptLogLevels[level], msg)
}
