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

// fanOut makes every SET a script calls raise its event, as the server
// does, and installs a trigger whose script writes n keys its own pattern
// matches: a cascade that grows in breadth.
func fanOut(t *testing.T, tm *testModule, n int) {
	t.Helper()
	tm.ctx.onCall = func(args []string) scripting.Reply {
		tm.OnEvent(tm.ctx, "set", args[1])
		return scripting.Reply{Kind: scripting.ReplyStatus, Str: "OK"}
	}
	src := "for i = 1, " + strconv.Itoa(n) + " do server.call('SET', KEYS[1] .. ':' .. i, 'x') end"
	tm.mustDo(t, "SCRIPT", "SET", "fan", src)
	tm.mustDo(t, "TRIGGER", "SET", "k*", "set", "fan")
}

// Ensure the triggers one command causes stop at iungo.command-max-runs:
// the rest are counted as errors with a message naming the option, and the
// next command starts afresh.
func TestCommandMaxRuns(t *testing.T) {
	tm := newTestModule(t)
	require.NoError(t, tm.ApplyArgs([]string{"command-max-runs", "10", "max-depth", "64"}))
	fanOut(t, tm, 30)
	tm.ctx.event("set", "k")
	tr := tm.Triggers()[0]
	assert.Equal(t, uint64(10), tr.Runs)
	assert.Contains(t, tr.LastError, "this command already ran iungo.command-max-runs (10) triggers")
	assert.Equal(t, tm.Stats().BudgetSkips, tr.Errors)
	assert.Positive(t, tr.Errors)
	assert.Equal(t, 0, tm.PendingJobs())

	calls := len(tm.ctx.calls)
	tm.ctx.event("set", "k")
	assert.Equal(t, uint64(20), tm.Triggers()[0].Runs, "a new command gets its own cap")
	assert.Greater(t, len(tm.ctx.calls), calls)
}

// Ensure a cascade whose runs each stay within script-timeout-ms ends when
// together they pass command-budget-ms, well before the 30-wide cascade of
// the issue (838,000 keys) could finish.
func TestCommandBudget(t *testing.T) {
	tm := newTestModule(t)
	require.NoError(t, tm.ApplyArgs([]string{"command-budget-ms", "50", "max-depth", "64", "command-max-runs", "10000000"}))
	fanOut(t, tm, 30)
	start := time.Now()
	tm.ctx.event("set", "k")
	took := time.Since(start)
	assert.Less(t, took, 2*time.Second)
	tr := tm.Triggers()[0]
	assert.Contains(t, tr.LastError, "used up iungo.command-budget-ms (50ms)")
	assert.Positive(t, tm.Stats().BudgetSkips)
	assert.Equal(t, 0, tm.PendingJobs())

	// The next command starts with a fresh budget.
	runs := tr.Runs
	tm.ctx.event("set", "k")
	assert.Greater(t, tm.Triggers()[0].Runs, runs)
}

// Ensure no trigger runs while writes are paused, or when the server is
// out of memory and maxmemory is set: each is a clear error, and nothing
// is called.
func TestNoRunWhenPausedOrOOM(t *testing.T) {
	tm := newTestModule(t)
	tm.mustDo(t, "SCRIPT", "SET", "w", "server.call('INCR', 'n')")
	tm.mustDo(t, "TRIGGER", "SET", "cache:*", "*", "w")

	tm.ctx.paused = true
	tm.ctx.event("keymiss", "cache:1")
	tr := tm.Triggers()[0]
	assert.Empty(t, tm.ctx.calls)
	assert.Equal(t, uint64(0), tr.Runs)
	assert.Equal(t, uint64(1), tr.Errors)
	assert.Regexp(t, `^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z event keymiss on key "cache:1": not run: writes are paused \(CLIENT PAUSE WRITE or ALL, FAILOVER, or a manual cluster failover\), and a trigger may write$`, tr.LastError)
	assert.Equal(t, uint64(1), tm.Stats().PauseSkips)
	tm.ctx.paused = false

	tm.ctx.oom = true
	tm.ctx.event("set", "cache:1") // maxmemory not set: OOM does not apply
	assert.Len(t, tm.ctx.calls, 1)
	tm.ctx.flags |= FlagMaxmemory
	tm.ctx.event("set", "cache:1")
	assert.Len(t, tm.ctx.calls, 1)
	assert.Contains(t, tm.Triggers()[0].LastError, "OOM command not allowed when used memory > 'maxmemory'")
	assert.Equal(t, uint64(1), tm.Stats().OOMSkips)
	tm.ctx.oom = false
	tm.ctx.event("set", "cache:1")
	assert.Len(t, tm.ctx.calls, 2)
}

// Ensure a job queued before a RESTORE of the same configuration in the
// same MULTI still runs its trigger, as the configuration now in force
// has it.
func TestRestoreInMultiKeepsQueuedJobs(t *testing.T) {
	tm := newTestModule(t)
	tm.mustDo(t, "SCRIPT", "SET", "w", "server.call('INCR', 'n')")
	tm.mustDo(t, "TRIGGER", "SET", "o:*", "hset", "w")
	snap := tm.mustDo(t, "DUMP").(string)
	tm.ctx.noBlock = true // inside MULTI
	tm.OnEvent(tm.ctx, "hset", "o:r1")
	tm.mustDo(t, "RESTORE", snap)
	tm.ctx.drain()
	assert.Equal(t, [][]string{{"INCR", "n"}}, tm.ctx.calls)
	assert.Equal(t, uint64(1), tm.Triggers()[0].Runs)
}

// Ensure SCRIPT SET compiles off the main thread: the client waits, the
// script is installed and replicated as the command when it is done, and
// nothing changes when writes were paused meanwhile or it does not compile.
func TestScriptSetOffThread(t *testing.T) {
	tm := newTestModule(t)
	assert.Nil(t, tm.ctx.start("SCRIPT", "SET", "a", "return 1"))
	require.True(t, tm.ctx.blockedNow)
	assert.Empty(t, tm.ScriptNames(), "nothing installed before the main thread finishes")
	assert.Equal(t, "+OK", tm.ctx.finish())
	assert.Equal(t, []string{"a"}, tm.ScriptNames())
	assert.Equal(t, [][]string{{"IUNGO", "SCRIPT", "SET", "a", "return 1"}}, tm.ctx.propagated)
	assert.Equal(t, 0, tm.ctx.replicated, "not replicated verbatim as well")

	v := tm.Revision()
	assert.Nil(t, tm.ctx.start("SCRIPT", "SET", "a", "return 2"))
	tm.ctx.paused = true
	assert.Contains(t, tm.ctx.finish(), "writes were paused")
	tm.ctx.paused = false
	src, _ := tm.Script("a")
	assert.Equal(t, "return 1", src)
	assert.Equal(t, v, tm.Revision())

	assert.Contains(t, tm.ctx.do("SCRIPT", "SET", "a", "return ("), "does not compile")
	src, _ = tm.Script("a")
	assert.Equal(t, "return 1", src)
	assert.Len(t, tm.ctx.propagated, 1)
}

// Ensure RESTORE by hand replicates the snapshot as installed (with the
// primary's version), not the one the client sent.
func TestRestoreReplicatesInstalled(t *testing.T) {
	tm := newTestModule(t)
	tm.mustDo(t, "SCRIPT", "SET", "a", "return 1")
	tm.mustDo(t, "SCRIPT", "SET", "b", "return 2")
	old := config.Encode(config.Config{Revision: 1, Classes: config.DefaultClasses, Scripts: []config.ScriptDef{{Name: "a", Source: "return 1"}}})
	tm.ctx.propagated = nil
	tm.mustDo(t, "RESTORE", string(old))
	require.Len(t, tm.ctx.restores(), 1)
	c, err := config.Decode(tm.ctx.restores()[0])
	require.NoError(t, err)
	assert.Equal(t, tm.Revision(), c.Revision)
	assert.Greater(t, c.Revision, uint64(1))
	assert.Equal(t, []string{"a"}, tm.ScriptNames())
}
