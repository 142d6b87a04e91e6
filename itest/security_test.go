package itest

import (
	"context"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/valkey-io/valkey-go"

	"github.com/valkey-iungo/valkey-iungo/config"
	"github.com/valkey-iungo/valkey-iungo/internal/vtest"
	"github.com/valkey-iungo/valkey-iungo/iungo/server"
	"github.com/valkey-iungo/valkey-iungo/module"
)

// as runs one command as an ACL user on its own connection.
func as(t *testing.T, s *vtest.Server, user string, args ...string) error {
	t.Helper()
	c, err := valkey.NewClient(valkey.ClientOption{InitAddress: []string{s.Addr}, Username: user, Password: "pw", DisableCache: true})
	require.NoError(t, err)
	defer c.Close()
	return c.Do(context.Background(), c.B().Arbitrary(args...).Build()).Error()
}

// Ensure the subcommands are ACL units in the @iungo category with the
// flags operators rely on, and that rules one level deeper are refused by
// the server, as the README says.
func TestACLIntegration(t *testing.T) {
	s := vtest.Start(t, vtest.Options{})
	if serverVersion(t, s) < module.Version(8, 0, 0) {
		// Module ACL categories came with 8.0: the subcommands are still
		// ACL units, without @iungo.
		require.ErrorContains(t, s.Do("ACL", "SETUSER", "ops", "+@iungo").Error(), "category")
		assert.Contains(t, s.Log(), "the IUNGO subcommands are not in @iungo")
		s.MustDo("ACL", "SETUSER", "ops", "on", ">pw", "-@all", "+iungo")
		s.MustDo("ACL", "SETUSER", "app", "on", ">pw", "+@all", "~*", "-iungo")
	} else {
		s.MustDo("ACL", "SETUSER", "ops", "on", ">pw", "-@all", "+@iungo")
		s.MustDo("ACL", "SETUSER", "app", "on", ">pw", "+@all", "~*", "-@iungo")
	}
	s.MustDo("ACL", "SETUSER", "viewer", "on", ">pw", "+@all", "~*", "-@admin")
	s.MustDo("ACL", "SETUSER", "scripter", "on", ">pw", "+@all", "~*", "-iungo|trigger")

	require.NoError(t, as(t, s, "ops", "IUNGO", "SCRIPT", "SET", "a", "return 1"))
	require.NoError(t, as(t, s, "ops", "IUNGO", "TRIGGER", "SET", "k", "set", "a"))
	require.ErrorContains(t, as(t, s, "ops", "SET", "k", "v"), "NOPERM", "ops may only manage iungo")
	require.ErrorContains(t, as(t, s, "app", "IUNGO", "TRIGGER", "LIST"), "NOPERM")
	require.NoError(t, as(t, s, "app", "SET", "k", "v"))
	// Changing triggers is an admin operation; INFO, DUMP and HELP only read.
	require.ErrorContains(t, as(t, s, "viewer", "IUNGO", "TRIGGER", "SET", "x", "set", "a"), "NOPERM")
	require.NoError(t, as(t, s, "viewer", "IUNGO", "INFO"))
	require.NoError(t, as(t, s, "viewer", "IUNGO", "DUMP"))
	require.ErrorContains(t, as(t, s, "scripter", "IUNGO", "TRIGGER", "UNSET", "k", "set"), "NOPERM")
	require.NoError(t, as(t, s, "scripter", "IUNGO", "SCRIPT", "SET", "b", "return 2"))

	err := s.Do("ACL", "SETUSER", "ops", "-iungo|script|set").Error()
	require.Error(t, err, "Valkey resolves one subcommand level")
	assert.Contains(t, err.Error(), "Unknown command")

	flags := commandFlags(t, s, "iungo|info")
	assert.Contains(t, flags, "readonly")
	flags = commandFlags(t, s, "iungo|trigger")
	assert.Contains(t, flags, "admin")
	assert.Contains(t, flags, "noscript")
}

// commandFlags returns the flags COMMAND INFO lists for a (sub)command.
func commandFlags(t *testing.T, s *vtest.Server, name string) []string {
	t.Helper()
	arr, err := s.Do("COMMAND", "INFO", name).ToArray()
	require.NoError(t, err)
	require.Len(t, arr, 1)
	info, err := arr[0].ToArray()
	require.NoError(t, err)
	flags, err := info[2].AsStrSlice()
	require.NoError(t, err)
	return flags
}

// Ensure every server.call of a script is checked against the ACL of
// iungo.script-user, and a denial is a counted script error.
func TestScriptUserIntegration(t *testing.T) {
	s := vtest.Start(t, vtest.Options{})
	s.MustDo("ACL", "SETUSER", "runner", "on", ">pw", "resetkeys", "~points:*", "~order:*", "+@read", "+@write", "-@dangerous")
	s.MustDo("IUNGO", "SCRIPT", "SET", "credit", "server.call('INCRBY', 'points:u1', 10)")
	s.MustDo("IUNGO", "SCRIPT", "SET", "steal", "server.call('SET', 'secret:admin', 'owned')")
	s.MustDo("IUNGO", "SCRIPT", "SET", "flush", "server.call('KEYS', '*')")
	s.MustDo("IUNGO", "TRIGGER", "SET", "order:*", "hset", "credit")
	s.MustDo("IUNGO", "TRIGGER", "SET", "order:*", "set", "steal")
	s.MustDo("IUNGO", "TRIGGER", "SET", "order:*", "del", "flush")
	s.MustDo("CONFIG", "SET", "iungo.script-user", "runner")

	s.MustDo("HSET", "order:1", "f", "v")
	s.MustDo("SET", "order:2", "v")
	s.MustDo("DEL", "order:2")
	assert.Equal(t, "10", str(t, s, "GET", "points:u1"))
	assert.Equal(t, int64(0), num(t, s, "EXISTS", "secret:admin"), "the key outside the user's patterns is untouched")
	list := triggerList(t, s)
	assert.Contains(t, field(t, list[1], "last_error"), "ACL failure in script")
	assert.Contains(t, field(t, list[2], "last_error"), "ACL failure in script", "KEYS is @dangerous")

	s.MustDo("CONFIG", "SET", "iungo.script-user", "nobody")
	s.MustDo("HSET", "order:1", "f", "w")
	assert.Equal(t, "10", str(t, s, "GET", "points:u1"))
	assert.Contains(t, field(t, triggerList(t, s)[0], "last_error"), `script user "nobody" (iungo.script-user) does not exist`)

	s.MustDo("CONFIG", "SET", "iungo.script-user", "")
	s.MustDo("SET", "order:3", "v")
	assert.Equal(t, "owned", str(t, s, "GET", "secret:admin"), "the default user has full access")
}

// Ensure production mode refuses local changes with a message that says
// where the configuration comes from, and dev mode allows them.
func TestModesIntegration(t *testing.T) {
	s := vtest.Start(t, vtest.Options{ModuleArgs: []string{"mode", "production"}})
	err := s.Do("IUNGO", "SCRIPT", "SET", "a", "return 1").Error()
	require.Error(t, err)
	assert.Contains(t, err.Error(), "iungo.mode is production: the configuration comes from iungo")
	s.MustDo("IUNGO", "PAUSE")
	s.MustDo("IUNGO", "RESUME")
	require.Error(t, s.Do("CONFIG", "SET", "iungo.mode", "staging").Error())
	s.MustDo("CONFIG", "SET", "iungo.mode", "dev")
	s.MustDo("IUNGO", "SCRIPT", "SET", "a", "return 1")
	assert.Equal(t, "dev", infoField(t, s, "mode"))
}

// Ensure scripts that eat memory are stopped near iungo.script-memory-mb and
// the server goes on.
func TestScriptMemoryIntegration(t *testing.T) {
	s := vtest.Start(t, vtest.Options{ModuleArgs: []string{"script-memory-mb", "16", "script-timeout-ms", "20000"}})
	for name, src := range map[string]string{
		"rep":    "string.rep('x', 1e9)",
		"table":  "local t = {} while true do t[#t + 1] = string.rep('x', 1000) .. #t end",
		"string": "local s = 'x' while true do s = s .. s end",
		"concat": "local t = {} for i = 1, 1000 do t[i] = string.rep('y', 100000) end redis.call('SET', 'big', table.concat(t))",
	} {
		t.Run(name, func(t *testing.T) {
			s.MustDo("IUNGO", "SCRIPT", "SET", "eat", src)
			s.MustDo("IUNGO", "TRIGGER", "SET", "m", "set", "eat")
			start := time.Now()
			s.MustDo("SET", "m", "1")
			assert.Less(t, time.Since(start), 10*time.Second)
			last := field(t, triggerList(t, s)[0], "last_error")
			assert.True(t, strings.Contains(last, "used more than 16 MB of memory") || strings.Contains(last, "over the 16777216-byte limit"), last)
			assert.Equal(t, "PONG", str(t, s, "PING"))
			s.MustDo("IUNGO", "TRIGGER", "UNSET", "m", "set")
		})
	}
	vtest.Eventually(t, 20*time.Second, "the Go heap shrinks back", func() bool {
		n, err := strconv.Atoi(infoField(t, s, "go_heap_bytes"))
		require.NoError(t, err)
		return n < 64<<20
	})
}

// Ensure commands a trigger script must not reach are refused by the
// server, none of them changes anything, and the next run works.
func TestSandboxServerCallsIntegration(t *testing.T) {
	s := vtest.Start(t, vtest.Options{})
	s.MustDo("SET", "canary", "alive")
	s.MustDo("IUNGO", "SCRIPT", "SET", "ok", "redis.call('INCR', 'runs')")
	s.MustDo("IUNGO", "TRIGGER", "SET", "ok", "set", "ok")
	before := dump(t, s)
	for _, call := range []string{
		"'SHUTDOWN', 'NOSAVE'", "'CONFIG', 'SET', 'save', '1 1'", "'MODULE', 'UNLOAD', 'iungo'",
		"'DEBUG', 'SLEEP', '0'", "'FLUSHALL'", "'FLUSHDB'", "'SCRIPT', 'FLUSH'", "'EVAL', 'return 1', '0'",
		"'FCALL', 'f', '0'", "'FUNCTION', 'FLUSH'", "'ACL', 'SETUSER', 'evil', 'on'", "'REPLICAOF', 'NO', 'ONE'",
		"'MULTI'", "'SAVE'", "'MONITOR'", "'SUBSCRIBE', 'ch'", "'CLIENT', 'KILL', 'TYPE', 'normal'",
		"'IUNGO', 'PAUSE'", "'SELECT', '1'", "'SWAPDB', '0', '1'", "'SYNC'", "'EXEC'",
	} {
		s.MustDo("IUNGO", "SCRIPT", "SET", "escape", "redis.call("+call+")")
		s.MustDo("IUNGO", "TRIGGER", "SET", "e", "set", "escape")
		s.MustDo("SET", "e", "1")
		list := triggerList(t, s)
		require.Equal(t, "1", field(t, list[1], "errors"), call)
		t.Logf("%s -> %s", call, field(t, list[1], "last_error"))
		s.MustDo("IUNGO", "TRIGGER", "UNSET", "e", "set")
		s.MustDo("IUNGO", "SCRIPT", "UNSET", "escape")
		s.MustDo("SET", "ok", "1")
		require.Equal(t, "alive", str(t, s, "GET", "canary"), call)
		require.Equal(t, "0", infoField(t, s, "paused"), call)
	}
	assert.Equal(t, "22", str(t, s, "GET", "runs"), "every run after an attempt worked")
	was, err := config.Decode([]byte(before))
	require.NoError(t, err)
	now, err := config.Decode([]byte(dump(t, s)))
	require.NoError(t, err)
	assert.Equal(t, was.Scripts, now.Scripts)
	assert.Equal(t, was.Triggers, now.Triggers)
}

// Ensure Go panics in every entry point become an error reply or a log
// line, also after the server re-installs its signal handlers.
func TestCrashProofingIntegration(t *testing.T) {
	s := vtest.Start(t, vtest.Options{ModuleArgs: []string{"debug-commands", "yes"}})
	s.MustDo("IUNGO", "SCRIPT", "SET", "a", "redis.call('INCR', 'n')")
	s.MustDo("IUNGO", "TRIGGER", "SET", "k", "set", "a")
	check := func(when string) {
		err := s.Do("IUNGO", "DEBUG", "PANIC").Error()
		require.ErrorContains(t, err, "internal error in iungo: IUNGO DEBUG PANIC", when)
		err = s.Do("IUNGO", "DEBUG", "NILDEREF").Error()
		require.ErrorContains(t, err, "nil pointer dereference", when)
		s.MustDo("IUNGO", "DEBUG", "EVENTPANIC")
		assert.Equal(t, "OK", str(t, s, "SET", "k", "v"), when)
		assert.Equal(t, "PONG", str(t, s, "PING"), when)
	}
	check("at start")
	s.MustDo("CONFIG", "SET", "crash-log-enabled", "no")
	check("after crash-log-enabled no")
	s.MustDo("CONFIG", "SET", "crash-log-enabled", "yes")
	check("after crash-log-enabled yes")
	assert.Contains(t, s.Log(), "recovered from a panic in a keyspace event")
	assert.Contains(t, s.Log(), "recovered from a panic in IUNGO")
	require.ErrorContains(t, vtest.Start(t, vtest.Options{}).Do("IUNGO", "DEBUG", "PANIC").Error(), "iungo.debug-commands yes")
}

// Ensure the Go runtime's crash report of a panic nobody recovers goes to
// iungo-crash.log next to the server log, and the server exits rather than
// hangs.
func TestCrashOutputIntegration(t *testing.T) {
	s := vtest.Start(t, vtest.Options{ModuleArgs: []string{"debug-commands", "yes"}})
	_ = s.Do("IUNGO", "DEBUG", "CRASH").Error()
	err := s.WaitExit(30 * time.Second)
	require.Error(t, err, "the server dies")
	report, readErr := os.ReadFile(filepath.Join(s.Dir, "iungo-crash.log"))
	require.NoError(t, readErr)
	assert.Contains(t, string(report), "panic: IUNGO DEBUG CRASH")
	assert.Contains(t, string(report), "goroutine")
}

// Ensure in cluster mode a script may not write a key of another hash slot
// than the triggering key.
func TestClusterCrossSlotIntegration(t *testing.T) {
	s := vtest.Start(t, vtest.Options{Config: []string{"cluster-enabled yes", "cluster-config-file nodes.conf"}})
	s.MustDo("CLUSTER", "ADDSLOTSRANGE", "0", "16383")
	vtest.Eventually(t, 20*time.Second, "cluster state ok", func() bool {
		return strings.Contains(str(t, s, "CLUSTER", "INFO"), "cluster_state:ok")
	})
	s.MustDo("IUNGO", "SCRIPT", "SET", "same", "redis.call('INCRBY', '{u1}:points', 5)")
	s.MustDo("IUNGO", "SCRIPT", "SET", "other", "redis.call('INCRBY', '{u2}:points', 5)")
	s.MustDo("IUNGO", "TRIGGER", "SET", "{u1}:order", "hset", "same")
	s.MustDo("IUNGO", "SCRIPT", "SET", "read", "redis.call('GET', '{u2}:points')")
	s.MustDo("IUNGO", "TRIGGER", "SET", "{u1}:order", "set", "other")
	s.MustDo("IUNGO", "TRIGGER", "SET", "{u1}:order", "del", "read")
	s.MustDo("HSET", "{u1}:order", "f", "v")
	s.MustDo("SET", "{u1}:order", "v")
	s.MustDo("DEL", "{u1}:order")
	assert.Equal(t, "5", str(t, s, "GET", "{u1}:points"))
	assert.Equal(t, int64(0), num(t, s, "EXISTS", "{u2}:points"))
	assert.Contains(t, field(t, triggerList(t, s)[1], "last_error"), "cross-slot write refused")
	assert.Contains(t, field(t, triggerList(t, s)[2], "last_error"), "cross-slot read refused")
}

// randomWord picks an argument a fuzzer would: command words, patterns,
// event lists, empty, huge and binary.
func randomWord(r *rand.Rand) string {
	switch r.IntN(12) {
	case 0:
		return ""
	case 1:
		return strings.Repeat("x", r.IntN(200_000))
	case 2:
		b := make([]byte, r.IntN(40))
		for i := range b {
			b[i] = byte(r.IntN(256))
		}
		return string(b)
	case 3:
		return []string{"set", "hset,set", "*", "del,expired", "sett", ",", "keymiss"}[r.IntN(7)]
	case 4:
		return []string{"order:*", "*", "[a-", "\\", "k"}[r.IntN(5)]
	case 5:
		return []string{"return 1", "return (", "while true do end", "server.call('INCR','n')"}[r.IntN(4)]
	case 6:
		return []string{"all", "g$", "hash string", "A", "bogus", "m"}[r.IntN(6)]
	default:
		return []string{"SCRIPT", "TRIGGER", "EVENT", "SET", "UNSET", "GET", "LIST", "ENABLE", "DISABLE",
			"PAUSE", "RESUME", "INFO", "HELP", "DUMP", "RESTORE", "a", "b"}[r.IntN(17)]
	}
}

// Ensure 20,000 random IUNGO commands cause no crash, every error reply is
// readable, and no refused command changes the configuration.
func TestLiveFuzzIntegration(t *testing.T) {
	s := vtest.Start(t, vtest.Options{})
	s.MustDo("IUNGO", "SCRIPT", "SET", "a", "return 1")
	s.MustDo("IUNGO", "TRIGGER", "SET", "k", "set", "a")
	r := rand.New(rand.NewPCG(42, 7))
	config := dump(t, s)
	refused := 0
	for i := range 20_000 {
		args := []string{"IUNGO"}
		for range r.IntN(6) {
			args = append(args, randomWord(r))
		}
		err := s.Do(args...).Error()
		if err != nil && !valkey.IsValkeyNil(err) {
			var verr *valkey.ValkeyError
			require.ErrorAs(t, err, &verr, "command %d: %q: not an error reply but %v", i, args, err)
			// The server itself answers an unknown subcommand, echoing its
			// bytes; every other error is the module's, quoted.
			if !strings.HasPrefix(err.Error(), "unknown subcommand") {
				require.True(t, utf8.ValidString(err.Error()), "command %d: unreadable error %q", i, err.Error())
			}
			require.NotContains(t, err.Error(), "internal error", "command %d: %q", i, args)
			now := dump(t, s)
			require.Equal(t, config, now, "command %d: refused %q changed the configuration", i, args)
			refused++
			continue
		}
		config = dump(t, s)
	}
	require.True(t, s.Alive())
	t.Logf("20000 commands, %d refused", refused)
	assert.Greater(t, refused, 10_000)
}

// Ensure IUNGO TRY is its own ACL unit: a tester may dry-run a source, and
// can neither install scripts nor write through one; a source that does
// not compile is refused with its line; iungo-server's dry runs use the
// namespace's try credentials.
func TestTryIntegration(t *testing.T) {
	srv := startIungo(t)
	s := startNode(t, at(t, srv))
	s.MustDo("ACL", "SETUSER", "tester", "on", ">pw", "-@all", "+iungo|try", "+@read", "~stock:*")
	s.MustDo("SET", "stock:1", "7")
	s.MustDo("SET", "secret:1", "s")
	// iungo.script-user has full access: a dry run must not lend it.
	s.MustDo("ACL", "SETUSER", "runner", "on", ">pw", "+@all", "~*")
	s.MustDo("CONFIG", "SET", "iungo.script-user", "runner")
	assert.Contains(t, commandFlags(t, s, "iungo|try"), "readonly")

	err := as(t, s, "tester", "IUNGO", "TRY", "t", "server.call('SET', 'x', 1) return server.call('GET', KEYS[1])", "stock:1")
	require.NoError(t, err)
	require.ErrorContains(t, as(t, s, "tester", "IUNGO", "SCRIPT", "SET", "t", "return 1"), "NOPERM")
	require.ErrorContains(t, as(t, s, "tester", "SET", "stock:1", "8"), "NOPERM")
	assert.Equal(t, int64(0), num(t, s, "EXISTS", "x"), "a dry run writes nothing")
	require.ErrorContains(t, s.Do("IUNGO", "TRY", "t", "return (", "k").Error(), `script "t" does not compile: line 1`)
	require.ErrorContains(t, s.Do("IUNGO", "TRY", "t", "return 1", "k", "sett").Error(), `unknown event "sett"`)

	req := server.TryRequest{Node: nodes(t, srv).Nodes[0].ID, Script: "t", Source: "server.call('SET', 'x', 1)\nreturn server.call('GET', KEYS[1])", Key: "stock:1"}
	require.NoError(t, srv.Store.SetTryCredentials("shop", "tester", "wrong"))
	_, err = srv.Try(context.Background(), "shop", req)
	require.ErrorContains(t, err, "WRONGPASS")
	require.NoError(t, srv.Store.SetTryCredentials("shop", "tester", "pw"))
	res, err := srv.Try(context.Background(), "shop", req)
	require.NoError(t, err)
	assert.Equal(t, `"7"`, res.Returned)
	assert.Equal(t, []string{"SET x 1"}, res.Writes)
	assert.Empty(t, res.Error)
	req.Source = "local n = nil\nreturn n + 1"
	res, err = srv.Try(context.Background(), "shop", req)
	require.NoError(t, err)
	assert.Equal(t, 2, res.Line, res.Error)
	req.Source = "return server.call('GET', 'secret:1')"
	res, err = srv.Try(context.Background(), "shop", req)
	require.NoError(t, err)
	assert.Contains(t, res.Error, "ACL failure in script", "the tester's own rights bound a dry run")
	assert.NotEqual(t, `"s"`, res.Returned)
}
