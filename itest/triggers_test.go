package itest

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/valkey-io/valkey-go"

	"github.com/valkey-iungo/valkey-iungo/internal/vtest"
)

// example reads a script from testdata/examples, the ones make run loads.
func example(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(vtest.Root(t), "testdata", "examples", name))
	require.NoError(t, err)
	return string(b)
}

func str(t *testing.T, s *vtest.Server, args ...string) string {
	t.Helper()
	v, err := s.Do(args...).ToString()
	if valkey.IsValkeyNil(err) {
		return "(nil)"
	}
	require.NoError(t, err, strings.Join(args, " "))
	return v
}

func num(t *testing.T, s *vtest.Server, args ...string) int64 {
	t.Helper()
	v, err := s.Do(args...).AsInt64()
	require.NoError(t, err, strings.Join(args, " "))
	return v
}

// triggerList returns IUNGO TRIGGER LIST as maps.
func triggerList(t *testing.T, s *vtest.Server) []map[string]valkey.ValkeyMessage {
	t.Helper()
	arr, err := s.Do("IUNGO", "TRIGGER", "LIST").ToArray()
	require.NoError(t, err)
	out := make([]map[string]valkey.ValkeyMessage, len(arr))
	for i, m := range arr {
		out[i], err = m.AsMap()
		require.NoError(t, err)
	}
	return out
}

func field(t *testing.T, m map[string]valkey.ValkeyMessage, name string) string {
	t.Helper()
	v, ok := m[name]
	require.True(t, ok, "field %q missing", name)
	if n, err := v.AsInt64(); err == nil {
		return fmt.Sprint(n)
	}
	s, err := v.ToString()
	require.NoError(t, err)
	return s
}

// Ensure the order use case: points are credited once, atomically with the
// HSET that completes the order.
func TestOrderPointsIntegration(t *testing.T) {
	s := vtest.Start(t, vtest.Options{})
	s.MustDo("IUNGO", "SCRIPT", "SET", "order-points", example(t, "order-points.lua"))
	s.MustDo("IUNGO", "TRIGGER", "SET", "{*}:order:*", "hset", "order-points")

	s.MustDo("HSET", "{u7}:order:1001", "user", "u7", "amount", "120", "status", "pending")
	assert.Equal(t, "(nil)", str(t, s, "GET", "{u7}:points"))
	s.MustDo("HSET", "{u7}:order:1001", "status", "completed")
	// No poll: the script ran before the HSET's reply was sent.
	assert.Equal(t, "120", str(t, s, "GET", "{u7}:points"))
	s.MustDo("HSET", "{u7}:order:1001", "status", "completed")
	s.MustDo("HSET", "{u7}:order:1001", "note", "gift wrap")
	assert.Equal(t, "120", str(t, s, "GET", "{u7}:points"), "credited only once")

	list := triggerList(t, s)
	require.Len(t, list, 1)
	assert.Equal(t, "4", field(t, list[0], "runs"))
	assert.Equal(t, "0", field(t, list[0], "errors"))
}

// Ensure the game session use case: when the session key expires, what it
// held is archived and its temporary data goes; other sessions' data stays.
func TestGameSessionIntegration(t *testing.T) {
	s := vtest.Start(t, vtest.Options{})
	s.MustDo("IUNGO", "SCRIPT", "SET", "session-cleanup", example(t, "session-cleanup.lua"))
	s.MustDo("IUNGO", "TRIGGER", "SET", "{*}:session", "del,expired", "session-cleanup")

	s.MustDo("SET", "{s42}:tmp:score", "10")
	s.MustDo("HSET", "{s42}:tmp:inventory", "sword", "1")
	s.MustDo("SET", "{s43}:tmp:score", "7")
	s.MustDo("HSET", "{s42}:session", "player", "p1", "room", "r9")
	s.MustDo("PEXPIRE", "{s42}:session", "200")
	vtest.Eventually(t, 10*time.Second, "session 42's data deleted after expiry", func() bool {
		return num(t, s, "EXISTS", "{s42}:tmp:score", "{s42}:tmp:inventory") == 0
	})
	assert.Equal(t, int64(0), num(t, s, "EXISTS", "{s42}:session"))
	archived := str(t, s, "LINDEX", "{s42}:history", "0")
	for _, want := range []string{`"player":"p1"`, `"room":"r9"`, `"ended":"expired"`} {
		assert.Contains(t, archived, want)
	}
	assert.Equal(t, "7", str(t, s, "GET", "{s43}:tmp:score"), "another session keeps its data")
}

// Ensure 50 concurrent clients doing 20,000 SETs fire the counting trigger
// exactly 20,000 times.
func TestExactnessIntegration(t *testing.T) {
	s := vtest.Start(t, vtest.Options{})
	s.MustDo("IUNGO", "SCRIPT", "SET", "count", "server.call('INCR', 'counter')")
	s.MustDo("IUNGO", "TRIGGER", "SET", "k:*", "set", "count")
	const clients, perClient = 50, 400
	var wg sync.WaitGroup
	errs := make(chan error, clients)
	for c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cl, err := valkey.NewClient(valkey.ClientOption{InitAddress: []string{s.Addr}, DisableCache: true})
			if err != nil {
				errs <- err
				return
			}
			defer cl.Close()
			for i := range perClient {
				key := fmt.Sprintf("k:%d:%d", c, i)
				if err := cl.Do(context.Background(), cl.B().Set().Key(key).Value("v").Build()).Error(); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	assert.Equal(t, "20000", str(t, s, "GET", "counter"))
}

// Ensure KEYS[1] is binary-safe, ARGV carries event and db, and the script
// writes into the event's database.
func TestScriptInputsIntegration(t *testing.T) {
	s := vtest.Start(t, vtest.Options{})
	s.MustDo("IUNGO", "SCRIPT", "SET", "record", "server.call('RPUSH', 'seen', KEYS[1], ARGV[1], ARGV[2])")
	s.MustDo("IUNGO", "TRIGGER", "SET", "bin:*", "*", "record")
	ctx := context.Background()
	err := s.Client.Dedicated(func(c valkey.DedicatedClient) error {
		if err := c.Do(ctx, c.B().Select().Index(3).Build()).Error(); err != nil {
			return err
		}
		if err := c.Do(ctx, c.B().Set().Key("bin:\x00\xff\r\n").Value("v").Build()).Error(); err != nil {
			return err
		}
		got, err := c.Do(ctx, c.B().Lrange().Key("seen").Start(0).Stop(-1).Build()).AsStrSlice()
		if err != nil {
			return err
		}
		// SET on a new key raises "new" then "set".
		assert.Equal(t, []string{"bin:\x00\xff\r\n", "new", "3", "bin:\x00\xff\r\n", "set", "3"}, got)
		return nil
	})
	require.NoError(t, err)
	assert.Equal(t, int64(0), num(t, s, "EXISTS", "seen"), "db 0 untouched")
}

// Ensure a failing script never fails the command that fired it: the error
// is counted, kept as the last error and logged.
func TestScriptFailureIntegration(t *testing.T) {
	s := vtest.Start(t, vtest.Options{})
	s.MustDo("IUNGO", "SCRIPT", "SET", "broken", "server.call('INCR', 'not-a-number')")
	s.MustDo("SET", "not-a-number", "abc")
	s.MustDo("IUNGO", "TRIGGER", "SET", "k", "set", "broken")
	assert.Equal(t, "OK", str(t, s, "SET", "k", "v"))
	assert.Equal(t, "v", str(t, s, "GET", "k"))
	list := triggerList(t, s)
	assert.Equal(t, "1", field(t, list[0], "errors"))
	assert.Contains(t, field(t, list[0], "last_error"), "value is not an integer")
	vtest.Eventually(t, 5*time.Second, "the error in the server log", func() bool {
		return strings.Contains(s.Log(), "value is not an integer")
	})
}

// Ensure a runaway script is stopped at iungo.script-timeout-ms and the
// server answers everyone afterwards.
func TestRunawayScriptIntegration(t *testing.T) {
	s := vtest.Start(t, vtest.Options{ModuleArgs: []string{"script-timeout-ms", "50"}})
	s.MustDo("IUNGO", "SCRIPT", "SET", "spin", "while true do end")
	s.MustDo("IUNGO", "TRIGGER", "SET", "spin", "set", "spin")
	start := time.Now()
	assert.Equal(t, "OK", str(t, s, "SET", "spin", "1"))
	assert.Less(t, time.Since(start), 5*time.Second)
	assert.Equal(t, "PONG", str(t, s, "PING"))
	list := triggerList(t, s)
	assert.Equal(t, "1", field(t, list[0], "errors"))
	assert.Contains(t, field(t, list[0], "last_error"), "timed out after 50ms")
}

// Ensure writes of trigger scripts fire triggers up to iungo.max-depth, and
// the deeper one is skipped and counted.
func TestRecursionDepthIntegration(t *testing.T) {
	s := vtest.Start(t, vtest.Options{})
	s.MustDo("IUNGO", "SCRIPT", "SET", "chain", "server.call('SET', KEYS[1] .. '+', 1)")
	s.MustDo("IUNGO", "TRIGGER", "SET", "chain*", "set", "chain")
	s.MustDo("SET", "chain", "0")
	assert.Equal(t, int64(4), num(t, s, "EXISTS", "chain+", "chain++", "chain+++", "chain++++"))
	assert.Equal(t, int64(0), num(t, s, "EXISTS", "chain+++++"))
	list := triggerList(t, s)
	assert.Equal(t, "4", field(t, list[0], "runs"))
	assert.Equal(t, "1", field(t, list[0], "errors"))
	assert.Contains(t, field(t, list[0], "last_error"), "deeper than iungo.max-depth")

	s.MustDo("CONFIG", "SET", "iungo.max-depth", "1")
	s.MustDo("SET", "chain", "1")
	assert.Equal(t, "2", field(t, triggerList(t, s)[0], "errors"))
}

// Ensure MODULE UNLOAD is refused and the module keeps working.
func TestModuleUnloadIntegration(t *testing.T) {
	s := vtest.Start(t, vtest.Options{})
	s.MustDo("IUNGO", "SCRIPT", "SET", "count", "server.call('INCR', 'n')")
	s.MustDo("IUNGO", "TRIGGER", "SET", "k", "set", "count")
	err := s.Do("MODULE", "UNLOAD", "iungo").Error()
	require.Error(t, err)
	// The iungo-cfg data type makes the server refuse before OnUnload,
	// which refuses too (a Go runtime cannot leave the process).
	assert.Contains(t, err.Error(), "Error unloading module")
	s.MustDo("SET", "k", "v")
	assert.Equal(t, "1", str(t, s, "GET", "n"))
}

// Ensure event classes gate events, including keymiss, off by default.
func TestEventClassesIntegration(t *testing.T) {
	s := vtest.Start(t, vtest.Options{})
	s.MustDo("IUNGO", "SCRIPT", "SET", "count", "server.call('INCR', 'n:' .. ARGV[1])")
	s.MustDo("IUNGO", "TRIGGER", "SET", "x:*", "set,hset,keymiss", "count")
	s.MustDo("GET", "x:missing")
	assert.Equal(t, "(nil)", str(t, s, "GET", "n:keymiss"), "keymiss is off by default")
	s.MustDo("IUNGO", "EVENT", "SET", "keymiss")
	s.MustDo("GET", "x:missing")
	assert.Equal(t, "1", str(t, s, "GET", "n:keymiss"))

	s.MustDo("IUNGO", "EVENT", "UNSET", "$")
	s.MustDo("SET", "x:1", "v")
	s.MustDo("HSET", "x:2", "f", "v")
	assert.Equal(t, "(nil)", str(t, s, "GET", "n:set"), "string class disabled")
	assert.Equal(t, "1", str(t, s, "GET", "n:hset"))
	classes, err := s.Do("IUNGO", "EVENT", "LIST").AsStrSlice()
	require.NoError(t, err)
	assert.NotContains(t, classes, "string")
	assert.Contains(t, classes, "keymiss")

	s.MustDo("IUNGO", "PAUSE")
	s.MustDo("HSET", "x:2", "f", "w")
	assert.Equal(t, "1", str(t, s, "GET", "n:hset"), "paused")
	s.MustDo("IUNGO", "RESUME")
	s.MustDo("HSET", "x:2", "f", "z")
	assert.Equal(t, "2", str(t, s, "GET", "n:hset"))
}

// Ensure the C filter hands Go only the events a trigger may want: other
// key prefixes, other event names and the scripts' own writes stop in C.
// The events counter in INFO counts what reached Go.
func TestEventFilterIntegration(t *testing.T) {
	s := vtest.Start(t, vtest.Options{})
	events := func() string { return infoField(t, s, "events") }
	s.MustDo("SET", "order:0", "v")
	assert.Equal(t, "0", events(), "no trigger: no event reaches Go")
	s.MustDo("IUNGO", "SCRIPT", "SET", "count", "server.call('INCR', 'n')")
	s.MustDo("IUNGO", "TRIGGER", "SET", "order:*", "set", "count")
	s.MustDo("SET", "order:1", "v")       // reaches Go; its INCR (incrby) does not
	s.MustDo("SET", "user:1", "v")        // another prefix
	s.MustDo("HSET", "order:2", "f", "v") // another event
	assert.Equal(t, "1", str(t, s, "GET", "n"))
	assert.Equal(t, "1", events())

	s.MustDo("SET", "orange", "v") // starts like order:*: Go decides, no match
	assert.Equal(t, "2", events())
	assert.Equal(t, "1", str(t, s, "GET", "n"))

	s.MustDo("IUNGO", "TRIGGER", "SET", "*:done", "hset", "count") // a literal end
	s.MustDo("HSET", "x:done", "f", "v")
	s.MustDo("HSET", "x:open", "f", "v")
	assert.Equal(t, "3", events())
	assert.Equal(t, "2", str(t, s, "GET", "n"))

	s.MustDo("IUNGO", "TRIGGER", "SET", "[xy]*", "hset", "count") // no literal end: every hset goes to Go
	s.MustDo("HSET", "zzz", "f", "v")
	assert.Equal(t, "4", events())
	assert.Equal(t, "2", str(t, s, "GET", "n"))
	s.MustDo("IUNGO", "TRIGGER", "UNSET", "[xy]*", "hset")
	s.MustDo("HSET", "zzz", "f", "w")
	assert.Equal(t, "4", events(), "the filter follows removals")
}

// Ensure options come from module arguments and CONFIG SET/GET, and bad
// values are refused.
func TestOptionsIntegration(t *testing.T) {
	s := vtest.Start(t, vtest.Options{ModuleArgs: []string{"max-depth", "2"}})
	got, err := s.Do("CONFIG", "GET", "iungo.max-depth").AsStrMap()
	require.NoError(t, err)
	assert.Equal(t, "2", got["iungo.max-depth"])
	s.MustDo("CONFIG", "SET", "iungo.script-timeout-ms", "250")
	got, err = s.Do("CONFIG", "GET", "iungo.script-timeout-ms").AsStrMap()
	require.NoError(t, err)
	assert.Equal(t, "250", got["iungo.script-timeout-ms"])
	require.Error(t, s.Do("CONFIG", "SET", "iungo.script-timeout-ms", "0").Error())
	require.Error(t, s.Do("CONFIG", "SET", "iungo.max-depth", "x").Error())
}

// Ensure a bad module argument or config value refuses the load with a log
// line that says why, as often as it is tried: on Valkey 8.1.0-8.1.4 a load
// refused after the subcommands exist could crash the server.
func TestBadModuleArgumentIntegration(t *testing.T) {
	s := vtest.Start(t, vtest.Options{NoModule: true})
	for range 10 {
		require.Error(t, s.Do("MODULE", "LOAD", vtest.ModulePath(t), "max-depth", "99").Error())
		require.Error(t, s.Do("MODULE", "LOADEX", vtest.ModulePath(t), "CONFIG", "iungo.max-depth", "99").Error())
	}
	assert.Contains(t, s.Log(), "max-depth must be between 1 and 64")
	assert.Contains(t, s.Log(), "iungo.max-depth : argument must be between 1 and 64")
	require.Error(t, s.Do("MODULE", "LOAD", vtest.ModulePath(t), "bogus", "1").Error())
	assert.Contains(t, s.Log(), `unknown module argument "bogus"`)
	s.MustDo("MODULE", "LOAD", vtest.ModulePath(t))
	s.MustDo("IUNGO", "INFO")
}

// Ensure a server without post-notification jobs (Redis 7.0, as Debian
// bookworm ships it) refuses the module with a line that says what is needed.
func TestRefusedOnRedisIntegration(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test")
	}
	bin, err := exec.LookPath("redis-server")
	require.NoError(t, err, "redis-server is a test dependency (scripts/install-deps.sh)")
	dir := t.TempDir()
	logPath := filepath.Join(dir, "redis.log")
	port, err := vtest.FreePort()
	require.NoError(t, err)
	cmd := exec.Command(bin, "--port", fmt.Sprint(port), "--bind", "127.0.0.1", "--save", "", "--dir", dir, "--logfile", logPath,
		"--loadmodule", vtest.ModulePath(t))
	done := make(chan error, 1)
	require.NoError(t, cmd.Start())
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		require.Error(t, err, "the server must abort when its module refuses to load")
	case <-time.After(10 * time.Second):
		_ = cmd.Process.Kill()
		t.Fatal("redis-server kept running with the module")
	}
	log, err := os.ReadFile(logPath)
	require.NoError(t, err)
	assert.Contains(t, string(log), "iungo requires Valkey 7.2 or later")
}

// Ensure a trigger's run times show in TRIGGER LIST and TRIGGER RESET
// zeroes its counters.
func TestTriggerCountersIntegration(t *testing.T) {
	s := vtest.Start(t, vtest.Options{})
	s.MustDo("IUNGO", "SCRIPT", "SET", "count", "server.call('INCR', 'counter')")
	s.MustDo("IUNGO", "TRIGGER", "SET", "k:*", "set", "count")
	for range 3 {
		s.MustDo("SET", "k:1", "v")
	}
	tr := triggerList(t, s)[0]
	assert.Equal(t, "3", field(t, tr, "runs"))
	total, err := strconv.Atoi(field(t, tr, "run_us_total"))
	require.NoError(t, err)
	maxRun, err := strconv.Atoi(field(t, tr, "run_us_max"))
	require.NoError(t, err)
	assert.GreaterOrEqual(t, total, maxRun)
	s.MustDo("IUNGO", "TRIGGER", "RESET", "k:*", "set")
	tr = triggerList(t, s)[0]
	for _, f := range []string{"runs", "errors", "run_us_total", "run_us_max"} {
		assert.Equal(t, "0", field(t, tr, f), f)
	}
	assert.Equal(t, "3", str(t, s, "GET", "counter"), "reset changes counters, not data")
}
