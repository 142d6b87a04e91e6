package module

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/valkey-iungo/valkey-iungo/config"
	"github.com/valkey-iungo/valkey-iungo/scripting"
)

// Cron runs Script at the times of Schedule, on the primary.
//
// Exactly once per scheduled time: a run's writes and the mark of its time
// (IUNGO CRON MARK <name> <ms> RAN) are replicated together,
// in one MULTI/EXEC, and saved together. A replica promoted after a failover
// has both or neither: with both it does not run that time again; with
// neither the run's writes are lost with it, and it runs that time itself.
// A time that passed while no primary ran (a restart, a failover, IUNGO
// PAUSE, paused writes) runs once when one does: only the latest such time,
// never one run per missed time.
type Cron struct {
	Name     string
	Schedule config.Schedule
	Script   string
	Enabled  bool
	// Since and LastRun: see config.CronDef.
	Since, LastRun int64
	RunStats       // what its runs did on this node

	handle     uint64 // in the Store
	skippedFor int64  // the scheduled time whose skip was last recorded
	// firstDue is the schedule's first time after nextFor, which is Since
	// when it was computed: ticks compare, and search only once due.
	firstDue time.Time
	nextFor  int64
}

func (c *Cron) def() config.CronDef {
	return config.CronDef{Name: c.Name, Schedule: c.Schedule.String(), Script: c.Script, Enabled: c.Enabled, Since: c.Since, LastRun: c.LastRun}
}

func (c *Cron) record() []byte { return config.CronRecord(c.def()) }

// due returns the scheduled time to run now, if any: the latest time of
// the schedule after Since and not after now.
func (c *Cron) due(now time.Time) (time.Time, bool) {
	if !c.Enabled || c.Since <= 0 {
		return time.Time{}, false
	}
	if c.nextFor != c.Since {
		c.firstDue, c.nextFor = c.Schedule.Next(time.UnixMilli(c.Since)), c.Since
	}
	if c.firstDue.IsZero() || c.firstDue.After(now) {
		return time.Time{}, false
	}
	t := c.Schedule.Latest(time.UnixMilli(c.Since), now)
	return t, !t.IsZero()
}

// cronTick is how often the server asks whether a cron is due.
const cronTick = 100 * time.Millisecond

// sortedCrons returns the crons by name.
func (m *Module) sortedCrons() []*Cron {
	out := make([]*Cron, 0, len(m.crons))
	for _, c := range m.crons {
		out = append(out, c)
	}
	slices.SortFunc(out, func(a, b *Cron) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// Crons returns the crons by name.
func (m *Module) Crons() []*Cron { return m.sortedCrons() }

// errCronCluster refuses crons in cluster mode.
var errCronCluster = errorf("crons are not supported in cluster mode yet: a cron's writes could reach keys of slots this node does not serve")

func unknownCron(name string) error {
	return errorf("unknown cron %q; IUNGO CRON LIST shows the crons", name)
}

// SetCron creates a cron, or changes its schedule or script. A new
// schedule starts over from now: no time before it runs.
func (m *Module) SetCron(name, schedule, script string) error {
	sched, err := config.CheckCron(name, schedule)
	if err != nil {
		return err
	}
	if _, ok := m.scripts[script]; !ok {
		return unknownScript(script)
	}
	if m.cluster {
		return errCronCluster
	}
	c, ok := m.crons[name]
	if !ok {
		c = &Cron{Name: name, Enabled: true}
		m.crons[name] = c
	}
	if c.Schedule.String() != sched.String() {
		c.Since = 0
	}
	c.Schedule, c.Script = sched, script
	c.handle = m.store.Put(c.handle, c.record())
	m.bump()
	return nil
}

// UnsetCron removes a cron.
func (m *Module) UnsetCron(name string) error {
	c, ok := m.crons[name]
	if !ok {
		return unknownCron(name)
	}
	delete(m.crons, name)
	m.store.Delete(c.handle)
	m.bump()
	return nil
}

// EnableCron enables or disables a cron. Enabled again, it starts over
// from now: the times it missed while disabled do not run.
func (m *Module) EnableCron(name string, enabled bool) error {
	c, ok := m.crons[name]
	if !ok {
		return unknownCron(name)
	}
	if c.Enabled != enabled {
		c.Enabled, c.Since = enabled, 0
		c.handle = m.store.Put(c.handle, c.record())
		m.bump()
	}
	return nil
}

// MarkCron records the time after which a cron's times are due: the
// scheduled time of a run (ran) or when the primary first saw the cron.
// What the primary replicates; a mark never moves back.
func (m *Module) MarkCron(name string, since int64, ran bool) error {
	c, ok := m.crons[name]
	if !ok {
		return unknownCron(name)
	}
	if since > c.Since {
		c.Since = since
		if ran {
			c.LastRun = since
		}
		c.handle = m.store.Put(c.handle, c.record())
	}
	return nil
}

// mark records and replicates a cron's mark.
func (m *Module) mark(ctx Ctx, c *Cron, since int64, ran bool) {
	_ = m.MarkCron(c.Name, since, ran)
	args := []string{"IUNGO", "CRON", "MARK", c.Name, strconv.FormatInt(since, 10)}
	if ran {
		args = append(args, "RAN")
	}
	ctx.ReplicateCommand(args)
}

// Why a due cron waits; recorded once per scheduled time.
const (
	cronSkipOOM = "not run yet: OOM command not allowed when used memory > 'maxmemory'; it runs once memory is back under maxmemory"
)

// Tick runs at most one due cron or ended window, on the primary, and
// returns when to tick again: at once when another may be due, so that
// each run is its own execution unit (one MULTI/EXEC, one budget).
func (m *Module) Tick(ctx Ctx, now time.Time) time.Duration {
	if len(m.crons) == 0 && !m.windowCheck || m.paused || m.cluster {
		return cronTick
	}
	if ctx.Flags()&(FlagReplica|FlagLoading) != 0 || ctx.WritesPaused() {
		// A replica runs nothing: its primary's marks and consumed
		// windows come with the runs' writes. Paused writes could not
		// replicate them.
		return cronTick
	}
	if m.windowTick(ctx, now) {
		return 0
	}
	nowMs := now.UnixMilli()
	for _, c := range m.sortedCrons() {
		if c.Enabled && c.Since <= 0 {
			m.mark(ctx, c, nowMs, false)
			return 0
		}
		due, ok := c.due(now)
		if !ok {
			continue
		}
		if ctx.OutOfMemory() {
			if c.skippedFor != due.UnixMilli() {
				c.skippedFor = due.UnixMilli()
				m.stats.OOMSkips++
				m.recordCronError(c, due, cronSkipOOM)
			}
			continue
		}
		m.runCron(ctx, c, due)
		return 0
	}
	return cronTick
}

// runCron runs a cron for its scheduled time due and marks that time, even
// when the script fails: a time runs once.
func (m *Module) runCron(ctx Ctx, c *Cron, due time.Time) {
	defer m.mark(ctx, c, due.UnixMilli(), true)
	m.stats.CronRuns++
	in := scripting.Input{DB: ctx.DB(), Args: []string{c.Name, strconv.FormatInt(due.Unix(), 10)}}
	m.runUnit(ctx, m.scripts[c.Script], in, &c.RunStats, func(msg string) { m.recordCronError(c, due, msg) })
}

// recordCronError records a failed or delayed run of a cron.
func (m *Module) recordCronError(c *Cron, due time.Time, msg string) {
	c.Errors++
	c.LastError = m.noteError(time.Now(), fmt.Sprintf("cron %q", c.Name), "run for "+due.UTC().Format(time.RFC3339), msg)
}

// prepareCrons checks the crons of a configuration against its scripts.
func prepareCrons(defs []config.CronDef, scripts map[string]*scripting.Script) (map[string]*Cron, error) {
	out := make(map[string]*Cron, len(defs))
	for _, d := range defs {
		sched, err := config.CheckCron(d.Name, d.Schedule)
		if err != nil {
			return nil, err
		}
		if _, ok := scripts[d.Script]; !ok {
			return nil, errorf("cron %q uses unknown script %q", d.Name, d.Script)
		}
		if _, dup := out[d.Name]; dup {
			return nil, errorf("cron %q appears twice", d.Name)
		}
		out[d.Name] = &Cron{Name: d.Name, Schedule: sched, Script: d.Script, Enabled: d.Enabled, Since: d.Since, LastRun: d.LastRun}
	}
	return out, nil
}

// cronDefs returns the crons as configured, by name.
func (m *Module) cronDefs() []config.CronDef {
	var out []config.CronDef
	for _, c := range m.sortedCrons() {
		out = append(out, c.def())
	}
	return out
}

// cronUsers lists the crons that use a script.
func (m *Module) cronUsers(script string) []string {
	var out []string
	for _, c := range m.sortedCrons() {
		if c.Script == script {
			out = append(out, "cron "+c.Name)
		}
	}
	return out
}

func cmdCronSet(m *Module, w Ctx, args []string) error {
	return okUnless(w, m.SetCron(args[0], args[1], args[2]))
}

func cmdCronUnset(m *Module, w Ctx, args []string) error {
	return okUnless(w, m.UnsetCron(args[0]))
}

func cmdCronEnable(enabled bool) func(*Module, Ctx, []string) error {
	return func(m *Module, w Ctx, args []string) error {
		return okUnless(w, m.EnableCron(args[0], enabled))
	}
}

// cmdCronMark applies a mark the primary replicated, or the AOF replays.
func cmdCronMark(m *Module, ctx Ctx, args []string) error {
	if ctx.Flags()&(FlagReplicated|FlagLoading) == 0 {
		return errorf("IUNGO CRON MARK is sent by the primary and replayed from the AOF, not by clients")
	}
	since, err := strconv.ParseInt(args[1], 10, 64)
	if err != nil || since <= 0 {
		return errorf("IUNGO CRON MARK wants a time in Unix ms, got %q", truncate(args[1]))
	}
	ran := len(args) == 3 && strings.EqualFold(args[2], "ran")
	if len(args) > 3 || len(args) == 3 && !ran {
		return errorf("IUNGO CRON MARK <name> <ms> [RAN]: got %q", truncate(args[2]))
	}
	return okUnless(ctx, m.MarkCron(args[0], since, ran))
}

func cmdCronList(m *Module, w Ctx, _ []string) error {
	cs := m.sortedCrons()
	now := time.Now()
	w.ReplyArray(len(cs))
	for _, c := range cs {
		w.ReplyMap(11)
		w.ReplyString("name")
		w.ReplyString(c.Name)
		w.ReplyString("schedule")
		w.ReplyString(c.Schedule.String())
		w.ReplyString("script")
		w.ReplyString(c.Script)
		w.ReplyString("enabled")
		w.ReplyInt(boolInt(c.Enabled))
		w.ReplyString("next_run")
		w.ReplyString(c.nextRun(now))
		w.ReplyString("last_run")
		w.ReplyString(c.lastRun())
		replyRunCounters(w, c.Runs, c.Errors, c.LastError, c.RunTime, c.MaxRunTime)
	}
	return nil
}

// nextRun is the scheduled time the cron runs next, in RFC 3339 UTC, or
// "" when disabled.
func (c *Cron) nextRun(now time.Time) string {
	if !c.Enabled {
		return ""
	}
	if due, ok := c.due(now); ok {
		return due.UTC().Format(time.RFC3339) // due now: runs at the next tick
	}
	if t := c.Schedule.Next(now); !t.IsZero() {
		return t.UTC().Format(time.RFC3339)
	}
	return ""
}

// lastRun is the scheduled time of the last run, on this node or on the
// primary before a failover, or "".
func (c *Cron) lastRun() string {
	if c.LastRun <= 0 {
		return ""
	}
	return time.UnixMilli(c.LastRun).UTC().Format(time.RFC3339Nano)
}
