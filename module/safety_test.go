package module

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/valkey-iungo/valkey-iungo/config"
)

// Ensure production mode refuses every local change of the configuration,
// with a message that says where the configuration comes from, while reads,
// PAUSE/RESUME and what the primary or the AOF sends still work.
func TestProductionMode(t *testing.T) {
	tm := newTestModule(t)
	tm.mustDo(t, "SCRIPT", "SET", "a", "return 1")
	tm.mustDo(t, "TRIGGER", "SET", "k", "set", "a")
	dump := tm.mustDo(t, "DUMP").(string)
	require.NoError(t, tm.ApplyArgs([]string{"mode", "production"}))
	before := tm.state(t)
	for _, words := range [][]string{
		{"SCRIPT", "SET", "b", "return 2"},
		{"SCRIPT", "UNSET", "a"},
		{"TRIGGER", "SET", "x", "set", "a"},
		{"TRIGGER", "UNSET", "k", "set"},
		{"TRIGGER", "ENABLE", "k", "set"},
		{"TRIGGER", "DISABLE", "k", "set"},
		{"EVENT", "SET", "keymiss"},
		{"EVENT", "UNSET", "hash"},
		{"RESTORE", dump},
	} {
		r := tm.ctx.do(words...)
		assert.Contains(t, r, "iungo.mode is production: the configuration comes from iungo", words)
		assert.Equal(t, before, tm.state(t), words)
	}
	assert.Equal(t, "+OK", tm.ctx.do("PAUSE"))
	assert.Equal(t, "+OK", tm.ctx.do("RESUME"))
	tm.ctx.flags = FlagReplica | FlagReplicated
	assert.Equal(t, "+OK", tm.ctx.do("SCRIPT", "SET", "b", "return 2"), "the primary's changes apply")
	tm.ctx.flags = FlagPrimary | FlagLoading
	assert.Equal(t, "+OK", tm.ctx.do("SCRIPT", "SET", "c", "return 3"), "the AOF's changes apply")
	require.ErrorContains(t, tm.ApplyArgs([]string{"mode", "staging"}), "mode must be dev or production")
}

// Ensure IUNGO DEBUG is off by default and, when on, provokes the panics the
// cgo trampolines must survive.
func TestDebugCommands(t *testing.T) {
	tm := newTestModule(t)
	assert.Contains(t, tm.ctx.do("DEBUG", "PANIC"), "set iungo.debug-commands yes")
	require.NoError(t, tm.ApplyArgs([]string{"debug-commands", "yes"}))
	assert.PanicsWithValue(t, "IUNGO DEBUG PANIC", func() { tm.ctx.do("DEBUG", "PANIC") })
	assert.Panics(t, func() { tm.ctx.do("DEBUG", "NILDEREF") })
	tm.mustDo(t, "SCRIPT", "SET", "a", "return 1")
	tm.mustDo(t, "TRIGGER", "SET", "k", "set", "a")
	assert.Equal(t, "+OK", tm.ctx.do("DEBUG", "EVENTPANIC"))
	assert.Panics(t, func() { tm.OnEvent(tm.ctx, "set", "k") })
	assert.NotPanics(t, func() { tm.OnEvent(tm.ctx, "set", "k") }, "armed once")
	assert.Contains(t, tm.ctx.do("DEBUG", "SEGFAULT"), `unknown IUNGO DEBUG action "SEGFAULT"`)
	// CRASH is left to the integration test: it kills the process.
}

// Ensure hash slots are the cluster's: CRC16 of the key or of its hash tag.
func TestKeySlot(t *testing.T) {
	for key, want := range map[string]int{
		"foo": 12182, "bar": 5061, "": 0, "123456789": 12739,
		"{user1000}.following": KeySlot("user1000"), "{user1000}.followers": KeySlot("user1000"),
		"foo{}{bar}": KeySlot("foo{}{bar}"), "foo{{bar}}zap": KeySlot("{bar"), "foo{bar}{zap}": KeySlot("bar"),
	} {
		assert.Equal(t, want, KeySlot(key), key)
	}
	assert.NotEqual(t, KeySlot("foo{}{bar}"), KeySlot("bar"), "an empty tag is not a tag")
}

// Ensure in cluster mode a script may read and write keys of the
// triggering key's slot only, on every server version, and the refusal
// says which.
func TestClusterSlots(t *testing.T) {
	tm := newTestModule(t)
	tm.SetClusterMode(true)
	tm.mustDo(t, "SCRIPT", "SET", "same", "server.call('INCR', '{u1}:points')")
	tm.mustDo(t, "SCRIPT", "SET", "other", "server.call('INCR', '{u2}:points')")
	tm.mustDo(t, "SCRIPT", "SET", "read", "server.call('GET', '{u2}:points')")
	tm.mustDo(t, "TRIGGER", "SET", "{u1}:order", "hset", "same")
	tm.mustDo(t, "TRIGGER", "SET", "{u1}:order", "set", "other")
	tm.mustDo(t, "TRIGGER", "SET", "{u1}:order", "del", "read")
	tm.ctx.event("hset", "{u1}:order")
	tm.ctx.event("set", "{u1}:order")
	tm.ctx.event("del", "{u1}:order")
	assert.Equal(t, [][]string{{"INCR", "{u1}:points"}}, tm.ctx.calls)
	list := tm.Triggers()
	assert.Contains(t, list[1].LastError, `cross-slot write refused: "{u2}:points" hashes to slot`)
	assert.Contains(t, list[1].LastError, "keep them together with a hash tag")
	assert.Contains(t, list[2].LastError, `cross-slot read refused: "{u2}:points" hashes to slot`)
	assert.Zero(t, list[0].Errors)
}

// Ensure scripts run as iungo.script-user, and a user the server does not
// know makes every run fail with a clear error.
func TestScriptUser(t *testing.T) {
	tm := newTestModule(t)
	tm.mustDo(t, "SCRIPT", "SET", "a", "server.call('INCR', 'n')")
	tm.mustDo(t, "TRIGGER", "SET", "k", "set", "a")
	tm.ctx.event("set", "k")
	require.NoError(t, tm.ApplyArgs([]string{"script-user", "trigger-runner"}))
	tm.ctx.event("set", "k")
	assert.Equal(t, []string{"", "trigger-runner"}, tm.ctx.users)
	assert.False(t, tm.ctx.attached, "detached after the job")
	require.NoError(t, tm.ApplyArgs([]string{"script-user", "ghost"}))
	tm.ctx.event("set", "k")
	assert.Len(t, tm.ctx.calls, 2, "no call without the user")
	assert.Contains(t, tm.Triggers()[0].LastError, `: script user "ghost" does not exist`)
	require.ErrorContains(t, tm.ApplyArgs([]string{"script-user", "a b"}), "has a space")
}

// Ensure the subcommand table gives the server the right flags per noun.
func TestNouns(t *testing.T) {
	got := map[string]Noun{}
	for _, n := range Nouns() {
		got[n.Name] = n
	}
	assert.Equal(t, Noun{Name: "script", Writes: true}, got["script"])
	assert.Equal(t, Noun{Name: "pause", Writes: true}, got["pause"])
	assert.Equal(t, Noun{Name: "info", ReadOnly: true}, got["info"])
	assert.Equal(t, Noun{Name: "dump", ReadOnly: true}, got["dump"])
	assert.Equal(t, Noun{Name: "debug"}, got["debug"])
}

// FuzzCommand sends arbitrary IUNGO commands: never a panic, always exactly
// one reply, and a refused command changes nothing.
func FuzzCommand(f *testing.F) {
	f.Add("TRIGGER\x00SET\x00order:*\x00hset\x00a")
	f.Add("SCRIPT\x00SET\x00b\x00return (")
	f.Add("EVENT\x00UNSET\x00g$x")
	f.Add("RESTORE\x00garbage")
	f.Add("trigger\x00list")
	f.Fuzz(func(t *testing.T, words string) {
		tm := newTestModule(t)
		tm.mustDo(t, "SCRIPT", "SET", "a", "return 1")
		tm.mustDo(t, "TRIGGER", "SET", "k", "set", "a")
		before := config.Encode(tm.Config())
		argv := strings.Split(words, "\x00")
		if len(argv) > 0 && strings.EqualFold(argv[0], "DEBUG") {
			return // provokes panics on purpose
		}
		r := tm.ctx.do(argv...)
		if s, ok := r.(string); ok && strings.HasPrefix(s, "-") {
			require.Equal(t, before, config.Encode(tm.Config()), "refused %q changed the configuration", argv)
		}
	})
}
