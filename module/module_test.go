package module

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/valkey-iungo/valkey-iungo/config"
	"github.com/valkey-iungo/valkey-iungo/iungo"
	"github.com/valkey-iungo/valkey-iungo/scripting"
)

// state captures everything a refused command must leave as it was.
func (tm *testModule) state(t *testing.T) []any {
	t.Helper()
	return []any{
		tm.Revision(),
		tm.mustDo(t, "SCRIPT", "LIST"),
		tm.mustDo(t, "TRIGGER", "LIST"),
		tm.mustDo(t, "EVENT", "LIST"),
		tm.Paused(),
	}
}

// Ensure the happy path of every command, with the replies clients see.
func TestCommandsHappyPath(t *testing.T) {
	tm := newTestModule(t)
	c := tm.ctx
	assert.Equal(t, "+OK", c.do("SCRIPT", "SET", "credit", "return 1"))
	assert.Equal(t, "return 1", c.do("script", "get", "credit"))
	assert.Equal(t, "+OK", c.do("TRIGGER", "SET", "order:*", "hset", "credit"))
	assert.Equal(t, "+OK", c.do("TRIGGER", "SET", "session:*", "expired,del", "credit"))
	assert.Equal(t, []any{
		map[string]any{"name": "credit", "bytes": int64(8), "triggers": int64(2)},
	}, c.do("SCRIPT", "LIST"))
	assert.Equal(t, []any{
		map[string]any{"pattern": "order:*", "events": "hset", "script": "credit", "enabled": int64(1), "runs": int64(0), "errors": int64(0), "last_error": "", "run_us_total": int64(0), "run_us_max": int64(0), "window_ms": int64(0), "gathered": int64(0)},
		map[string]any{"pattern": "session:*", "events": "del,expired", "script": "credit", "enabled": int64(1), "runs": int64(0), "errors": int64(0), "last_error": "", "run_us_total": int64(0), "run_us_max": int64(0), "window_ms": int64(0), "gathered": int64(0)},
	}, c.do("TRIGGER", "LIST"))
	assert.Equal(t, "+OK", c.do("TRIGGER", "DISABLE", "session:*", "del,expired"))
	assert.Equal(t, int64(0), c.do("TRIGGER", "LIST").([]any)[1].(map[string]any)["enabled"])
	assert.Equal(t, "+OK", c.do("TRIGGER", "ENABLE", "session:*", "expired,del"))
	assert.Equal(t, "+OK", c.do("TRIGGER", "UNSET", "session:*", "del,expired"))
	assert.Len(t, c.do("TRIGGER", "LIST"), 1)

	assert.Equal(t, []any{"generic", "string", "list", "set", "hash", "zset", "stream", "expired", "evicted", "new", "module"}, c.do("EVENT", "LIST"))
	assert.Equal(t, "+OK", c.do("EVENT", "UNSET", "all"))
	assert.Equal(t, []any{"new"}, c.do("EVENT", "LIST"))
	assert.Equal(t, "+OK", c.do("EVENT", "SET", "hash,string", "x"))
	assert.Equal(t, []any{"string", "hash", "expired", "new"}, c.do("EVENT", "LIST"))
	assert.Equal(t, "+OK", c.do("EVENT", "SET", "g$A"))
	assert.Equal(t, "+OK", c.do("EVENT", "UNSET", "n"))
	assert.Equal(t, []any{"generic", "string", "list", "set", "hash", "zset", "stream", "expired", "evicted", "module"}, c.do("EVENT", "LIST"))

	assert.Equal(t, "+OK", c.do("PAUSE"))
	assert.Equal(t, int64(1), c.do("INFO").(map[string]any)["paused"])
	assert.Equal(t, "+OK", c.do("RESUME"))
	info := c.do("INFO").(map[string]any)
	assert.Equal(t, int64(0), info["paused"])
	assert.Equal(t, int64(1), info["scripts"])
	assert.Equal(t, int64(1), info["triggers"])

	assert.Equal(t, "+OK", c.do("TRIGGER", "UNSET", "order:*", "hset"))
	assert.Equal(t, "+OK", c.do("SCRIPT", "UNSET", "credit"))
	assert.Equal(t, []any{}, c.do("SCRIPT", "LIST"))
	help := c.do("HELP").([]any)
	assert.Contains(t, help, "+TRIGGER SET <key-pattern> <events> <script> [WINDOW <ms>]")
}

// Ensure every bad input gets an error that says what to fix and changes
// nothing.
func TestCommandsBadInput(t *testing.T) {
	tm := newTestModule(t)
	tm.mustDo(t, "SCRIPT", "SET", "credit", "return 1")
	tm.mustDo(t, "TRIGGER", "SET", "order:*", "hset", "credit")
	cases := []struct {
		words []string
		want  string
	}{
		{nil, "wrong number of arguments for 'iungo'"},
		{[]string{"NOPE"}, `unknown subcommand "NOPE"`},
		{[]string{"SCRIPT"}, "IUNGO SCRIPT needs one of SET, UNSET, GET, LIST"},
		{[]string{"SCRIPT", "DROP", "x"}, `unknown subcommand "DROP" for IUNGO SCRIPT`},
		{[]string{"SCRIPT", "SET", "x"}, "usage: IUNGO SCRIPT SET <name> <lua-source>"},
		{[]string{"SCRIPT", "SET", "credit", "return ("}, `script "credit" does not compile`},
		{[]string{"SCRIPT", "SET", "", "return 1"}, "script name must be 1 to 128 bytes"},
		{[]string{"SCRIPT", "SET", "a b", "return 1"}, `script name "a b" has ' '`},
		{[]string{"SCRIPT", "SET", strings.Repeat("n", 129), "return 1"}, "1 to 128 bytes"},
		{[]string{"SCRIPT", "UNSET", "nope"}, `unknown script "nope"`},
		{[]string{"SCRIPT", "UNSET", "credit"}, `script "credit" is used by triggers ["order:* hset"]`},
		{[]string{"SCRIPT", "GET", "nope"}, `unknown script "nope"`},
		{[]string{"SCRIPT", "LIST", "extra"}, "usage: IUNGO SCRIPT LIST"},
		{[]string{"TRIGGER", "SET", "", "set", "credit"}, "empty key pattern"},
		{[]string{"TRIGGER", "SET", strings.Repeat("p", MaxPatternBytes+1), "set", "credit"}, "the limit is 1024"},
		{[]string{"TRIGGER", "SET", "a:*", "sett", "credit"}, `unknown event "sett"`},
		{[]string{"TRIGGER", "SET", "a:*", "set,,del", "credit"}, "empty event name"},
		{[]string{"TRIGGER", "SET", "a:*", "", "credit"}, "empty event list"},
		{[]string{"TRIGGER", "SET", "a:*", "*,set", "credit"}, "* cannot be combined"},
		{[]string{"TRIGGER", "SET", "a:*", "set", "nope"}, `unknown script "nope"`},
		{[]string{"TRIGGER", "UNSET", "a:*", "set"}, `no trigger for pattern "a:*" and events "set"`},
		{[]string{"TRIGGER", "ENABLE", "order:*", "set"}, "no trigger for pattern"},
		{[]string{"TRIGGER", "DISABLE", "order:*", "bogus"}, `unknown event "bogus"`},
		{[]string{"EVENT", "SET"}, "usage: IUNGO EVENT SET <class>"},
		{[]string{"EVENT", "SET", "hash,bogus"}, `unknown event class "bogus"`},
		{[]string{"EVENT", "UNSET", ", ,"}, "no event class given"},
		{[]string{"PAUSE", "now"}, "usage: IUNGO PAUSE"},
	}
	before := tm.state(t)
	tm.ctx.replicated = 0
	for _, c := range cases {
		got := tm.ctx.do(c.words...)
		s, isStr := got.(string)
		require.True(t, isStr && strings.HasPrefix(s, "-ERR "), "IUNGO %q: want an error, got %v", c.words, got)
		assert.Contains(t, s, c.want, "IUNGO %q", c.words)
		assert.Equal(t, before, tm.state(t), "IUNGO %q changed the state", c.words)
	}
	assert.Zero(t, tm.ctx.replicated, "refused commands must not be replicated")
}

// Ensure a script that does not compile keeps the old version running.
func TestScriptSetKeepsOldVersion(t *testing.T) {
	tm := newTestModule(t)
	tm.mustDo(t, "SCRIPT", "SET", "s", "server.call('INCR', 'v1')")
	tm.mustDo(t, "TRIGGER", "SET", "k", "set", "s")
	r := tm.ctx.do("SCRIPT", "SET", "s", "server.call('INCR', 'v2'")
	require.Contains(t, r, "does not compile")
	require.Contains(t, r, "line 1 (end of script)")
	tm.ctx.event("set", "k")
	require.Equal(t, [][]string{{"INCR", "v1"}}, tm.ctx.calls)
	tm.mustDo(t, "SCRIPT", "SET", "s", "server.call('INCR', 'v2')")
	tm.ctx.event("set", "k")
	require.Equal(t, []string{"INCR", "v2"}, tm.ctx.calls[1])
}

// Ensure events route by pattern and event name, and matching triggers run
// in registration order with KEYS/ARGV set.
func TestRouting(t *testing.T) {
	tm := newTestModule(t)
	for _, name := range []string{"a", "b", "c"} {
		tm.mustDo(t, "SCRIPT", "SET", name, "server.call('RPUSH', 'log', '"+name+"', KEYS[1], ARGV[1], ARGV[2])")
	}
	tm.mustDo(t, "TRIGGER", "SET", "order:*", "hset,set", "b")
	tm.mustDo(t, "TRIGGER", "SET", "order:1*", "hset", "a")
	tm.mustDo(t, "TRIGGER", "SET", "*", "*", "c")
	tm.ctx.db = 5
	tm.ctx.event("hset", "order:10")
	assert.Equal(t, [][]string{
		{"RPUSH", "log", "b", "order:10", "hset", "5"},
		{"RPUSH", "log", "a", "order:10", "hset", "5"},
		{"RPUSH", "log", "c", "order:10", "hset", "5"},
	}, tm.ctx.calls)

	tm.ctx.calls = nil
	tm.ctx.event("del", "order:10")
	tm.ctx.event("set", "user:1")
	assert.Equal(t, [][]string{
		{"RPUSH", "log", "c", "order:10", "del", "5"},
		{"RPUSH", "log", "c", "user:1", "set", "5"},
	}, tm.ctx.calls)

	tm.ctx.calls = nil
	tm.mustDo(t, "TRIGGER", "DISABLE", "*", "*")
	tm.ctx.event("set", "user:1")
	assert.Empty(t, tm.ctx.calls, "a disabled trigger must not run")
	assert.Empty(t, tm.ctx.jobs)
}

// Ensure no job is asked for when nothing matches, on replicas, while
// loading, and for commands from the primary.
func TestNoJobWithoutWork(t *testing.T) {
	tm := newTestModule(t)
	tm.mustDo(t, "SCRIPT", "SET", "s", "server.call('INCR', 'n')")
	tm.mustDo(t, "TRIGGER", "SET", "order:*", "hset", "s")
	tm.ctx.m.OnEvent(tm.ctx, "hset", "user:1")
	tm.ctx.m.OnEvent(tm.ctx, "set", "order:1")
	assert.Empty(t, tm.ctx.jobs)
	for _, f := range []CtxFlags{FlagReplica, FlagLoading, FlagPrimary | FlagReplicated} {
		tm.ctx.flags = f
		tm.ctx.m.OnEvent(tm.ctx, "hset", "order:1")
		assert.Empty(t, tm.ctx.jobs, "flags %b", f)
	}
	tm.ctx.flags = FlagPrimary
	tm.ctx.rejectJobs = true
	tm.ctx.event("hset", "order:1")
	assert.Zero(t, tm.PendingJobs(), "a job the server refused must not stay queued")
	tm.ctx.rejectJobs = false
	// The shim adds the job after OnEvent, and drops it if refused then.
	tm.OnEvent(tm.ctx, "hset", "order:1")
	require.Len(t, tm.ctx.jobs, 1)
	tm.DropJob(tm.ctx.jobs[0])
	tm.ctx.jobs = nil
	assert.Zero(t, tm.PendingJobs(), "a job the server refused afterwards must not stay queued")
	tm.ctx.event("hset", "order:1")
	assert.Equal(t, [][]string{{"INCR", "n"}}, tm.ctx.calls)
}

// Ensure writes made by scripts fire triggers up to max-depth, and deeper
// events are skipped and counted as errors.
func TestMaxDepth(t *testing.T) {
	tm := newTestModule(t)
	c := tm.ctx
	c.onCall = func(args []string) scripting.Reply {
		// The server raises the event of the script's write synchronously.
		tm.OnEvent(c, "set", args[1])
		return scripting.Reply{Kind: scripting.ReplyStatus, Str: "OK"}
	}
	tm.mustDo(t, "SCRIPT", "SET", "chain", "server.call('SET', KEYS[1] .. '+', 1)")
	tm.mustDo(t, "TRIGGER", "SET", "k*", "set", "chain")
	c.event("set", "k")
	assert.Equal(t, [][]string{{"SET", "k+", "1"}, {"SET", "k++", "1"}, {"SET", "k+++", "1"}, {"SET", "k++++", "1"}}, c.calls)
	tr := tm.Triggers()[0]
	assert.Equal(t, uint64(4), tr.Runs)
	assert.Equal(t, uint64(1), tr.Errors)
	assert.Contains(t, tr.LastError, "deeper than iungo.max-depth")
	assert.Equal(t, uint64(1), tm.Stats().DepthSkips)

	c.calls = nil
	require.NoError(t, tm.ApplyArgs([]string{"max-depth", "2"}))
	c.event("set", "k")
	assert.Len(t, c.calls, 2)
}

// Ensure a failing script is counted, kept as the last error and logged,
// without stopping the triggers after it.
func TestScriptFailure(t *testing.T) {
	tm := newTestModule(t)
	tm.mustDo(t, "SCRIPT", "SET", "bad", "error('no user')")
	tm.mustDo(t, "SCRIPT", "SET", "good", "server.call('INCR', 'n')")
	tm.mustDo(t, "TRIGGER", "SET", "k", "set", "bad")
	tm.mustDo(t, "TRIGGER", "SET", "k", "*", "good")
	tm.ctx.event("set", "k")
	list := tm.mustDo(t, "TRIGGER", "LIST").([]any)
	assert.Equal(t, int64(1), list[0].(map[string]any)["errors"])
	// When, which event, which key, which script, which line.
	assert.Regexp(t, `^\d{4}-\d\d-\d\dT[\d:.]+Z event set on key "k": script "bad": line 1: no user$`, list[0].(map[string]any)["last_error"])
	assert.Equal(t, int64(1), list[1].(map[string]any)["runs"])
	assert.Equal(t, [][]string{{"INCR", "n"}}, tm.ctx.calls)
	require.NotEmpty(t, tm.logs)
	assert.Contains(t, tm.logs[len(tm.logs)-1], `event set on key "k": script "bad": line 1: no user`)
}

// Ensure script errors are logged at most ten a second.
func TestErrorLogRateLimit(t *testing.T) {
	tm := newTestModule(t)
	tm.mustDo(t, "SCRIPT", "SET", "bad", "error('x')")
	tm.mustDo(t, "TRIGGER", "SET", "k", "set", "bad")
	for range 50 {
		tm.ctx.event("set", "k")
	}
	assert.Equal(t, uint64(50), tm.Triggers()[0].Errors)
	assert.LessOrEqual(t, len(tm.logs), 11)
}

// Ensure PAUSE stops triggers and the C filter gets 0 while nothing can fire,
// and that the filter names the wanted events and keys.
func TestPauseAndFilter(t *testing.T) {
	tm := newTestModule(t)
	assert.Equal(t, config.Class(0), tm.filter().Classes, "no triggers: nothing passes the C filter")
	tm.mustDo(t, "SCRIPT", "SET", "s", "server.call('INCR', 'n')")
	tm.mustDo(t, "TRIGGER", "SET", "k", "set,hset", "s")
	f := tm.filter()
	assert.Equal(t, config.DefaultClasses, f.Classes)
	assert.Equal(t, []string{"hset", "set"}, f.Events)
	assert.False(t, f.AllEvents)
	assert.True(t, f.KeysChanged)
	assert.True(t, f.Keys.MayMatch("k"))
	assert.False(t, f.Keys.MayMatch("x"))
	tm.mustDo(t, "PAUSE")
	assert.Equal(t, config.Class(0), tm.filter().Classes)
	assert.False(t, tm.filter().KeysChanged, "the keys did not change")
	tm.mustDo(t, "RESUME")
	tm.mustDo(t, "EVENT", "UNSET", "string")
	assert.Equal(t, config.DefaultClasses&^config.ClassString, tm.filter().Classes)
	tm.mustDo(t, "TRIGGER", "SET", "*:x", "*", "s")
	assert.True(t, tm.filter().AllEvents)
	assert.True(t, tm.filter().KeysChanged)
	assert.True(t, tm.filter().Keys.MayMatch("a:x"))
	tm.mustDo(t, "TRIGGER", "DISABLE", "*:x", "*")
	assert.False(t, tm.filter().AllEvents)
	assert.False(t, tm.filter().Keys.MayMatch("a:x"))

	// A pause inside the same unit as the event (MULTI) stops its job too.
	tm.OnEvent(tm.ctx, "set", "k")
	tm.mustDo(t, "PAUSE")
	tm.ctx.drain()
	assert.Empty(t, tm.ctx.calls)
}

// Ensure configuration changes are refused on a replica unless they come
// from its primary or the AOF, and replicated when accepted.
func TestWritesOnReplica(t *testing.T) {
	tm := newTestModule(t)
	tm.ctx.flags = FlagReplica
	r := tm.ctx.do("SCRIPT", "SET", "s", "return 1")
	assert.Contains(t, r, "-READONLY")
	assert.Equal(t, []any{}, tm.ctx.do("SCRIPT", "LIST"), "reads work on a replica")
	tm.ctx.flags = FlagReplica | FlagReplicated
	assert.Equal(t, "+OK", tm.ctx.do("SCRIPT", "SET", "s", "return 1"))
	tm.ctx.flags = FlagPrimary | FlagLoading
	assert.Equal(t, "+OK", tm.ctx.do("SCRIPT", "SET", "t", "return 1"))
	assert.Equal(t, 2, tm.ctx.replicated)
}

// Ensure an updated trigger keeps its place, state and counters.
func TestTriggerUpdate(t *testing.T) {
	tm := newTestModule(t)
	tm.mustDo(t, "SCRIPT", "SET", "a", "return 1")
	tm.mustDo(t, "SCRIPT", "SET", "b", "return 2")
	tm.mustDo(t, "TRIGGER", "SET", "x:*", "set,hset", "a")
	tm.mustDo(t, "TRIGGER", "SET", "y:*", "set", "a")
	tm.ctx.event("set", "x:1")
	tm.mustDo(t, "TRIGGER", "SET", "x:*", "HSET,set", "b")
	list := tm.mustDo(t, "TRIGGER", "LIST").([]any)
	require.Len(t, list, 2)
	first := list[0].(map[string]any)
	assert.Equal(t, "x:*", first["pattern"])
	assert.Equal(t, "b", first["script"])
	assert.Equal(t, int64(1), first["runs"])
}

// Ensure module arguments are checked.
func TestApplyArgs(t *testing.T) {
	tm := newTestModule(t)
	require.NoError(t, tm.ApplyArgs([]string{"iungo.max-depth", "8", "script-timeout-ms", "50"}))
	assert.Equal(t, 8, tm.Options().MaxDepth)
	assert.Equal(t, int64(50), tm.Options().ScriptTimeout.Milliseconds())
	require.ErrorContains(t, tm.ApplyArgs([]string{"max-depth"}), "name value pairs")
	require.ErrorContains(t, tm.ApplyArgs([]string{"nope", "1"}), `unknown module argument "nope"`)
	require.ErrorContains(t, tm.ApplyArgs([]string{"max-depth", "x"}), "wants an integer")
	require.ErrorContains(t, tm.ApplyArgs([]string{"max-depth", "0"}), "between 1 and 64")
	assert.Equal(t, 8, tm.Options().MaxDepth)
}

// Ensure TRIGGER MATCH lists the triggers a key matches in run order, and
// says why one would not fire.
func TestTriggerMatch(t *testing.T) {
	tm := newTestModule(t)
	tm.mustDo(t, "SCRIPT", "SET", "s", "return 1")
	tm.mustDo(t, "TRIGGER", "SET", "order:*", "hset", "s")
	tm.mustDo(t, "TRIGGER", "SET", "order:1", "del", "s")
	tm.mustDo(t, "TRIGGER", "SET", "*", "keymiss", "s")
	tm.mustDo(t, "TRIGGER", "SET", "order:?", "*", "s")
	tm.mustDo(t, "TRIGGER", "DISABLE", "order:?", "*")
	tm.mustDo(t, "TRIGGER", "SET", "user:*", "set", "s")
	why := func(args ...string) map[string]string {
		out := map[string]string{}
		for _, r := range tm.mustDo(t, append([]string{"TRIGGER", "MATCH"}, args...)...).([]any) {
			m := r.(map[string]any)
			out[m["pattern"].(string)+" "+m["events"].(string)] = fmt.Sprint(m["fires"], " ", m["why_not"])
		}
		return out
	}
	assert.Equal(t, map[string]string{
		"order:* hset": "1 ",
		"order:1 del":  "0 other event: it fires on del",
		"* keymiss":    "0 other event: it fires on keymiss",
		"order:? *":    "0 disabled",
	}, why("order:1", "hset"))
	assert.Equal(t, "0 event class off: keymiss (IUNGO EVENT SET)", why("order:1", "keymiss")["* keymiss"])
	assert.Equal(t, "0 event class off: keymiss (IUNGO EVENT SET)", why("order:1")["* keymiss"])
	assert.Equal(t, "1 ", why("order:1")["order:1 del"])
	tm.mustDo(t, "PAUSE")
	assert.Equal(t, "0 paused (IUNGO RESUME)", why("order:1")["order:* hset"])
	assert.Equal(t, []string{"* keymiss"}, slices.Collect(maps.Keys(why("nothing:1"))))
	assert.Contains(t, tm.ctx.do("TRIGGER", "MATCH", "k", "sett"), `unknown event "sett"`)
	assert.Contains(t, tm.ctx.do("TRIGGER", "MATCH", "k", "set", "x"), "usage: IUNGO TRIGGER MATCH <key> [<event>]")
}

// Ensure SCRIPT RUN runs a script as a trigger would and reports it, and
// that DRYRUN makes no write and lists them.
func TestScriptRun(t *testing.T) {
	tm := newTestModule(t)
	tm.mustDo(t, "SCRIPT", "SET", "credit", `
server.log(server.LOG_NOTICE, 'crediting ' .. KEYS[1] .. ' on ' .. ARGV[1])
local v = server.call('GET', KEYS[1])
local r = server.call('INCRBY', 'points', 10)
return {KEYS[1], ARGV[1], r}`)
	reply := tm.mustDo(t, "SCRIPT", "RUN", "credit", "order:1", "hset", "DRYRUN").(map[string]any)
	assert.Equal(t, `["order:1", "hset", DRYRUN]`, reply["returned"])
	assert.Equal(t, "", reply["error"])
	assert.Equal(t, []any{"notice: crediting order:1 on hset"}, reply["logs"])
	assert.Equal(t, []any{"INCRBY points 10"}, reply["writes"])
	assert.Equal(t, [][]string{{"GET", "order:1"}}, tm.ctx.calls, "only the read ran")

	tm.ctx.calls = nil
	reply = tm.mustDo(t, "SCRIPT", "RUN", "credit", "order:1").(map[string]any)
	assert.NotContains(t, reply, "writes")
	assert.Equal(t, [][]string{{"GET", "order:1"}, {"INCRBY", "points", "10"}}, tm.ctx.calls)
	assert.Contains(t, reply["returned"], `"set"`, "the default event")

	tm.mustDo(t, "SCRIPT", "SET", "bad", "\nserver.call('NOSUCH')")
	tm.ctx.onCall = func([]string) scripting.Reply { return scripting.ErrorReply("ERR Unknown command called from script") }
	reply = tm.mustDo(t, "SCRIPT", "RUN", "bad", "k", "DRYRUN").(map[string]any)
	assert.Equal(t, `script "bad": line 2: ERR Unknown command called from script`, reply["error"])
	assert.Contains(t, tm.ctx.do("SCRIPT", "RUN", "nope", "k"), `unknown script "nope"`)
	assert.Contains(t, tm.ctx.do("SCRIPT", "RUN", "bad", "k", "set", "x"), "usage: IUNGO SCRIPT RUN")
	tm.ctx.flags = FlagReplica
	assert.Contains(t, tm.ctx.do("SCRIPT", "RUN", "bad", "k"), "READONLY")
	assert.NotContains(t, tm.ctx.do("SCRIPT", "RUN", "bad", "k", "DRYRUN"), "READONLY")
}

// Ensure an old value goes to the event that reports the key going, only
// for keys a trigger that wants it matches, and never outlives the next job.
func TestOldValueHandOver(t *testing.T) {
	tm := newTestModule(t)
	tm.mustDo(t, "SCRIPT", "SET", "s", "local v, why = server.old_value() server.call('SET', 'out', tostring(v) .. ' ' .. tostring(why))")
	tm.mustDo(t, "TRIGGER", "SET", "k:*", "del", "s")
	tm.mustDo(t, "TRIGGER", "SET", "other:*", "hset", "s")
	str := func(s string) scripting.Reply { return scripting.Reply{Kind: scripting.ReplyString, Str: s} }

	assert.Equal(t, int64(1<<20), tm.OldValueWanted("k:1", goneDeleted))
	assert.Zero(t, tm.OldValueWanted("k:1", goneExpired), "no trigger on k:* listens to expired")
	assert.Zero(t, tm.OldValueWanted("other:1", goneDeleted), "hset does not report a key going")
	assert.Zero(t, tm.OldValueWanted("none", goneDeleted))

	tm.SetOldValue("k:1", str("was"), valueString, false, goneDeleted)
	tm.ctx.event("del", "k:1")
	assert.Equal(t, []string{"SET", "out", "was nil"}, tm.ctx.calls[len(tm.ctx.calls)-1])

	tm.SetOldValue("k:2", str("big"), valueString, true, goneDeleted)
	tm.ctx.event("del", "k:2")
	assert.Equal(t, []string{"SET", "out", "nil not kept: larger than iungo.old-value-max-bytes (1048576)"}, tm.ctx.calls[len(tm.ctx.calls)-1])

	// Kept for a key whose event never came: the next job drops it.
	tm.SetOldValue("k:3", str("stale"), valueString, false, goneDeleted)
	tm.ctx.event("del", "k:1")
	assert.Empty(t, tm.Module.oldValues)
	tm.ctx.event("del", "k:3")
	assert.Equal(t, []string{"SET", "out", "nil nil"}, tm.ctx.calls[len(tm.ctx.calls)-1])

	zset := scripting.Reply{Kind: scripting.ReplyArray, Elems: []scripting.Reply{str("b"), str("2"), str("c"), str("1"), str("a"), str("1")}}
	assert.Equal(t, []scripting.Reply{str("a"), str("1"), str("c"), str("1"), str("b"), str("2")}, sortZset(zset).Elems)
}

// Ensure TRIGGER LIST reports run times and TRIGGER RESET zeroes a
// trigger's counters on this node only (it is not replicated).
func TestTriggerTimesAndReset(t *testing.T) {
	tm := newTestModule(t)
	tm.mustDo(t, "SCRIPT", "SET", "s", "local n = 0 for i = 1, 20000 do n = n + i end error('x')")
	tm.mustDo(t, "TRIGGER", "SET", "k", "set", "s")
	tm.ctx.event("set", "k")
	tm.ctx.event("set", "k")
	tr := tm.mustDo(t, "TRIGGER", "LIST").([]any)[0].(map[string]any)
	assert.Equal(t, int64(2), tr["runs"])
	total, maxRun := tr["run_us_total"].(int64), tr["run_us_max"].(int64)
	assert.Positive(t, maxRun)
	assert.GreaterOrEqual(t, total, maxRun)
	assert.LessOrEqual(t, total, 2*maxRun)

	before := tm.ctx.replicated
	assert.Equal(t, "+OK", tm.ctx.do("TRIGGER", "RESET", "k", "set"))
	tr = tm.mustDo(t, "TRIGGER", "LIST").([]any)[0].(map[string]any)
	for _, f := range []string{"runs", "errors", "run_us_total", "run_us_max"} {
		assert.Equal(t, int64(0), tr[f], f)
	}
	assert.Equal(t, "", tr["last_error"])
	assert.Equal(t, before, tm.ctx.replicated, "counters are the node's own")
	assert.Contains(t, tm.ctx.do("TRIGGER", "RESET", "nope", "set"), "no trigger for pattern")
}

// Ensure what a heartbeat reports of an error is valid UTF-8 within its
// bound, cut on a character boundary: binary keys and long messages stay
// readable and never push a heartbeat over the server's limits.
func TestTextOf(t *testing.T) {
	assert.Equal(t, "abc", textOf("abc", 10))
	assert.Equal(t, "ab", textOf("abc", 2))
	assert.Equal(t, "a", textOf("aé", 2), "é takes two bytes")
	assert.Equal(t, "a\uFFFDb", textOf("a\xffb", 10))
	got := textOf(strings.Repeat("é", 300), 128)
	assert.True(t, utf8.ValidString(got))
	assert.LessOrEqual(t, len(got), 128)
}

// Ensure a huge error message is cut in last_error and the log, and says
// how large it was: a script chooses its error's size.
func TestHugeErrorBounded(t *testing.T) {
	tm := newTestModule(t)
	tm.mustDo(t, "SCRIPT", "SET", "loud", "error(string.rep('x', 100000))")
	tm.mustDo(t, "TRIGGER", "SET", "k", "set", "loud")
	tm.ctx.event("set", "k")
	tr := tm.Triggers()[0]
	assert.Less(t, len(tr.LastError), maxErrorBytes+200)
	assert.Contains(t, tr.LastError, "xxxx... (")
	assert.Contains(t, tr.LastError, " bytes in all)")
	assert.LessOrEqual(t, len(tr.Recent[0].Message), iungo.MaxErrorMessageBytes)
}
