package module

import (
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/valkey-iungo/valkey-iungo/config"
	"github.com/valkey-iungo/valkey-iungo/scripting"
)

func at(s string) time.Time {
	t, err := time.Parse("2006-01-02 15:04:05", s)
	if err != nil {
		panic(err)
	}
	return t
}

// cronModule has a script that SETs what it was given, and a cron "c" on
// schedule, seen first by the primary at start.
func cronModule(t *testing.T, schedule string, start time.Time) *testModule {
	t.Helper()
	tm := newTestModule(t)
	tm.mustDo(t, "SCRIPT", "SET", "s", "return server.call('SET', 'k', ARGV[1] .. '@' .. ARGV[2] .. '#' .. #KEYS)")
	tm.mustDo(t, "CRON", "SET", "c", schedule, "s")
	require.Equal(t, time.Duration(0), tm.Tick(tm.ctx, start), "the first tick anchors the cron")
	tm.ctx.calls, tm.ctx.propagated = nil, nil
	return tm
}

// Ensure a cron runs once per scheduled time with its name and time, and
// each run replicates its mark after its writes.
func TestCronRunsOncePerTime(t *testing.T) {
	tm := cronModule(t, "@every 10s", at("2026-03-01 10:00:05"))
	assert.Equal(t, cronTick, tm.Tick(tm.ctx, at("2026-03-01 10:00:09")))
	assert.Empty(t, tm.ctx.calls, "nothing due yet")
	assert.Equal(t, time.Duration(0), tm.Tick(tm.ctx, at("2026-03-01 10:00:10")))
	assert.Equal(t, cronTick, tm.Tick(tm.ctx, at("2026-03-01 10:00:10.5")))
	ms := strconv.FormatInt(at("2026-03-01 10:00:10").UnixMilli(), 10)
	assert.Equal(t, [][]string{{"SET", "k", "c@" + strconv.FormatInt(at("2026-03-01 10:00:10").Unix(), 10) + "#0"}}, tm.ctx.calls)
	assert.Equal(t, [][]string{{"IUNGO", "CRON", "MARK", "c", ms, "RAN"}}, tm.ctx.propagated)
	c := tm.Crons()[0]
	assert.Equal(t, uint64(1), c.Runs)
	assert.Equal(t, "2026-03-01T10:00:10Z", c.lastRun())
	assert.Equal(t, "2026-03-01T10:00:20Z", c.nextRun(at("2026-03-01 10:00:11")))
}

// Ensure a gap of many scheduled times runs once, for the latest of them.
func TestCronGapRunsOnce(t *testing.T) {
	tm := cronModule(t, "@every 10s", at("2026-03-01 10:00:05"))
	tm.Tick(tm.ctx, at("2026-03-01 11:30:07"))
	tm.Tick(tm.ctx, at("2026-03-01 11:30:07"))
	require.Len(t, tm.ctx.calls, 1)
	assert.Equal(t, "2026-03-01T11:30:00Z", tm.Crons()[0].lastRun())
}

// Ensure nothing runs on a replica, while loading, while writes or
// triggers are paused; a time that passed then runs once afterwards.
func TestCronWaits(t *testing.T) {
	tm := cronModule(t, "@every 10s", at("2026-03-01 10:00:05"))
	now := at("2026-03-01 10:00:12")
	for _, set := range []func(bool){
		func(on bool) { tm.ctx.flags = map[bool]CtxFlags{true: FlagReplica, false: FlagPrimary}[on] },
		func(on bool) {
			tm.ctx.flags = map[bool]CtxFlags{true: FlagPrimary | FlagLoading, false: FlagPrimary}[on]
		},
		func(on bool) { tm.ctx.paused = on },
		func(on bool) { tm.paused = on },
	} {
		set(true)
		tm.Tick(tm.ctx, now)
		set(false)
	}
	assert.Empty(t, tm.ctx.calls)
	assert.Empty(t, tm.ctx.propagated)
	tm.Tick(tm.ctx, now)
	assert.Len(t, tm.ctx.calls, 1)
}

// Ensure a replica takes its primary's marks, and once promoted runs only
// the times its primary had not run.
func TestCronMarksOnReplica(t *testing.T) {
	tm := cronModule(t, "@every 10s", at("2026-03-01 10:00:05"))
	tm.ctx.flags = FlagPrimary | FlagReplicated
	ran := strconv.FormatInt(at("2026-03-01 10:00:20").UnixMilli(), 10)
	assert.Equal(t, "+OK", tm.ctx.do("CRON", "MARK", "c", ran, "RAN"))
	tm.ctx.flags = FlagPrimary
	tm.Tick(tm.ctx, at("2026-03-01 10:00:29"))
	assert.Empty(t, tm.ctx.calls, "10:00:20 ran on the old primary")
	tm.Tick(tm.ctx, at("2026-03-01 10:00:31"))
	assert.Len(t, tm.ctx.calls, 1)
	assert.Contains(t, tm.ctx.do("CRON", "MARK", "c", ran), "not by clients")
}

// Ensure a failing script counts an error and its time is still marked:
// a time runs once.
func TestCronErrorIsMarked(t *testing.T) {
	tm := cronModule(t, "@every 10s", at("2026-03-01 10:00:05"))
	tm.ctx.onCall = func([]string) scripting.Reply { return scripting.ErrorReply("ERR boom") }
	tm.mustDo(t, "SCRIPT", "SET", "s", "server.call('SET', 'k', 'v') error('bad')")
	tm.ctx.propagated = nil
	tm.Tick(tm.ctx, at("2026-03-01 10:00:10"))
	tm.Tick(tm.ctx, at("2026-03-01 10:00:11"))
	c := tm.Crons()[0]
	assert.Equal(t, uint64(1), c.Errors)
	assert.Contains(t, c.LastError, "run for 2026-03-01T10:00:10Z")
	assert.Len(t, tm.ctx.propagated, 1)
}

// Ensure bad crons are refused with what to fix and change nothing, and
// a script a cron uses cannot be removed.
func TestCronRefusals(t *testing.T) {
	tm := cronModule(t, "@every 10s", at("2026-03-01 10:00:05"))
	for words, want := range map[[4]string]string{
		{"SET", "d", "@every 500ms", "s"}: "at least 1s",
		{"SET", "d", "* * *", "s"}:        "5 fields",
		{"SET", "d e", "@every 1s", "s"}:  "cron name",
		{"SET", "d", "@every 1s", "nope"}: "unknown script",
	} {
		got := tm.ctx.do("CRON", words[0], words[1], words[2], words[3])
		assert.Contains(t, got, want, words)
	}
	assert.Contains(t, tm.ctx.do("CRON", "UNSET", "nope"), "unknown cron")
	assert.Contains(t, tm.ctx.do("SCRIPT", "UNSET", "s"), "used by crons [\"cron c\"]")
	assert.Len(t, tm.Crons(), 1)
}

// Ensure crons travel in snapshots with their marks, and a configuration
// without marks keeps the node's.
func TestCronSnapshotAndSync(t *testing.T) {
	tm := cronModule(t, "@every 10s", at("2026-03-01 10:00:05"))
	tm.Tick(tm.ctx, at("2026-03-01 10:00:10"))
	got, err := config.Decode(tm.store.snapshot())
	require.NoError(t, err)
	require.Len(t, got.Crons, 1)
	assert.Equal(t, at("2026-03-01 10:00:10").UnixMilli(), got.Crons[0].LastRun)

	other := newTestModule(t)
	require.NoError(t, other.Replace(got, "rdb"))
	assert.Equal(t, tm.Config().Crons, other.Config().Crons)

	// A configuration that carries no state (iungo's, a manifest's) keeps
	// the node's for the same schedule, and the store saves it.
	before := tm.Config().Crons
	next := tm.Config()
	next.Crons[0].Since, next.Crons[0].LastRun = 0, 0
	next.Triggers = append(next.Triggers, config.TriggerDef{Pattern: "x", Events: "set", Script: "s", Enabled: true})
	require.NoError(t, tm.Replace(next, "iungo"))
	assert.Equal(t, before, tm.Config().Crons)
	fromStore, err := config.Decode(tm.store.snapshot())
	require.NoError(t, err)
	assert.Equal(t, before, fromStore.Crons, "the RDB gets it too")
	next.Crons[0].Schedule = "@every 20s"
	require.NoError(t, tm.Replace(next, "iungo"))
	assert.Zero(t, tm.Crons()[0].Since, "a new schedule starts over")
}
