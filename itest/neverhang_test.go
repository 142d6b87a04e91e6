package itest

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/valkey-io/valkey-go"

	"github.com/valkey-iungo/valkey-iungo/internal/vtest"
)

// The faults of "never abort, never hang" (issue 9), each against real
// servers. A PING probe on a connection of its own measures stalls; its
// limit (a second) is far above noise and far below the stalls the issue
// measured (seconds to minutes).

const stallLimit = time.Second

// pausedPrimary starts a primary with the AOF on and a replica attached:
// what makes a replicated write during a pause abort the server.
func pausedPrimary(t *testing.T, args ...string) (primary, replica *vtest.Server) {
	t.Helper()
	primary = vtest.Start(t, vtest.Options{ModuleArgs: args, Config: []string{"appendonly yes"}})
	replica = startReplica(t, primary)
	return primary, replica
}

// Ensure a keymiss trigger that would write while writes are paused does
// not run (the server used to abort on the replication assertion): it is
// counted with a clear error, the read is served, and triggers run again
// once writes resume.
func TestPauseKeymissIntegration(t *testing.T) {
	p, r := pausedPrimary(t)
	p.MustDo("IUNGO", "EVENT", "SET", "keymiss")
	p.MustDo("IUNGO", "SCRIPT", "SET", "miss", "server.call('INCR', 'misses')")
	p.MustDo("IUNGO", "TRIGGER", "SET", "cache:*", "keymiss", "miss")
	p.MustDo("GET", "cache:0")
	assert.Equal(t, "1", str(t, p, "GET", "misses"))

	// Reads are served during a write pause: the miss happens now.
	p.MustDo("CLIENT", "PAUSE", "5000", "WRITE")
	assert.Equal(t, "(nil)", str(t, p, "GET", "cache:1"))
	p.MustDo("CLIENT", "UNPAUSE")

	// Under PAUSE ALL the read waits for the pause and misses after it.
	c := newClient(t, p)
	defer c.Close()
	p.MustDo("CLIENT", "PAUSE", "5000", "ALL")
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = c.Do(context.Background(), c.B().Get().Key("cache:2").Build()).Error()
	}()
	time.Sleep(100 * time.Millisecond)
	p.MustDo("CLIENT", "UNPAUSE")
	<-done
	require.True(t, p.Alive())
	tr := triggerList(t, p)[0]
	assert.Equal(t, "1", field(t, tr, "errors"))
	assert.Contains(t, field(t, tr, "last_error"), `event keymiss on key "cache:1": not run: writes are paused`)

	p.MustDo("GET", "cache:3")
	vtest.Eventually(t, 5*time.Second, "the miss after the pause counted on both", func() bool {
		return str(t, p, "GET", "misses") == "3" && str(t, r, "GET", "misses") == "3"
	})
}

// serverInfo reads one field of a section of the server's INFO.
func serverInfo(t *testing.T, s *vtest.Server, section, name string) string {
	t.Helper()
	for _, line := range strings.Split(str(t, s, "INFO", section), "\r\n") {
		if v, ok := strings.CutPrefix(line, name+":"); ok {
			return v
		}
	}
	t.Fatalf("INFO %s has no %s", section, name)
	return ""
}

// newClient opens a client of its own to s: valkey-go pipelines a
// connection's commands, so one blocked command would hold the others.
func newClient(t *testing.T, s *vtest.Server) valkey.Client {
	t.Helper()
	c, err := valkey.NewClient(valkey.ClientOption{InitAddress: []string{s.Addr}, DisableCache: true, ForceSingleClient: true})
	require.NoError(t, err)
	return c
}

// Ensure a change from iungo waits while writes are paused, by CLIENT
// PAUSE or by FAILOVER, and applies whole once they resume; IUNGO SYNC
// answers then. The server used to abort on the next sync.
func TestPauseSyncIntegration(t *testing.T) {
	srv := startIungo(t)
	adminCall(t, srv, "PUT", "/scripts/a", `{"source":"server.call('INCR', 'n')"}`, nil)
	p := startNode(t, at(t, srv), "heartbeat-s", "0")
	p.MustDo("CONFIG", "SET", "appendonly", "yes")
	r := startReplica(t, p)
	vtest.Eventually(t, 10*time.Second, "first sync", func() bool { return infoField(t, p, "namespace_version") == "2" })

	adminCall(t, srv, "PUT", "/triggers", `{"pattern":"k:*","events":"set","script":"a","enabled":true}`, nil)
	p.MustDo("CLIENT", "PAUSE", "1500", "WRITE")
	paused := time.Now()
	c := newClient(t, p)
	defer c.Close()
	v, err := c.Do(context.Background(), c.B().Arbitrary("IUNGO", "SYNC").Build()).AsInt64()
	require.NoError(t, err)
	assert.Equal(t, int64(3), v)
	assert.GreaterOrEqual(t, time.Since(paused), 1400*time.Millisecond, "applied only once writes resumed")
	require.True(t, p.Alive())
	p.MustDo("SET", "k:1", "x")
	assert.Equal(t, "1", str(t, p, "GET", "n"))
	vtest.Eventually(t, 5*time.Second, "the replica follows", func() bool { return infoField(t, r, "triggers") == "1" })

	// FAILOVER to a replica that cannot answer pauses writes until its
	// timeout; a sync meanwhile waits, and applies after the abort.
	adminCall(t, srv, "PUT", "/triggers", `{"pattern":"j:*","events":"set","script":"a","enabled":true}`, nil)
	r.Signal(syscall.SIGSTOP)
	defer r.Signal(syscall.SIGCONT)
	p.MustDo("FAILOVER", "TIMEOUT", "1500")
	v, err = c.Do(context.Background(), c.B().Arbitrary("IUNGO", "SYNC").Build()).AsInt64()
	require.NoError(t, err)
	assert.Equal(t, int64(4), v)
	r.Signal(syscall.SIGCONT)
	require.True(t, p.Alive())
	assert.Equal(t, "2", infoField(t, p, "triggers"))
}

// Ensure an AOF rewrite during a write pause (the module writes the whole
// configuration into the new AOF) does not abort the server, and the
// configuration survives a restart from that AOF without the RDB preamble.
func TestPauseAOFRewriteIntegration(t *testing.T) {
	s := vtest.Start(t, vtest.Options{Config: []string{"appendonly yes", "aof-use-rdb-preamble no"}})
	s.MustDo("IUNGO", "SCRIPT", "SET", "a", "return 1")
	s.MustDo("IUNGO", "TRIGGER", "SET", "k", "set", "a")
	waitRewrite(t, s)
	s.MustDo("CLIENT", "PAUSE", "1000", "WRITE")
	s.MustDo("BGREWRITEAOF")
	waitRewrite(t, s)
	require.True(t, s.Alive())
	assert.False(t, incrHasRestore(t, s), "nothing propagated during the pause")
	s.MustDo("CLIENT", "UNPAUSE")
	vtest.Eventually(t, 5*time.Second, "the deferred RESTORE in the new AOF", func() bool { return incrHasRestore(t, s) })
	s.Restart()
	assert.Equal(t, "1", infoField(t, s, "triggers"))
}

// incrHasRestore reports whether the AOF's newest incremental file holds
// an IUNGO RESTORE.
func incrHasRestore(t *testing.T, s *vtest.Server) bool {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(s.Dir, "appendonlydir", "*.incr.aof"))
	require.NoError(t, err)
	if len(files) == 0 {
		return false
	}
	seq := func(f string) int { // appendonly.aof.<seq>.incr.aof
		base := strings.TrimSuffix(filepath.Base(f), ".incr.aof")
		n, _ := strconv.Atoi(base[strings.LastIndexByte(base, '.')+1:])
		return n
	}
	newest := slices.MaxFunc(files, func(a, b string) int { return seq(a) - seq(b) })
	data, err := os.ReadFile(newest)
	require.NoError(t, err)
	return strings.Contains(strings.ToLower(string(data)), "restore")
}

// Ensure Lua pattern matching stops at the script timeout: the trim idiom
// on a value any client can write held the server 117 s.
func TestPatternStallIntegration(t *testing.T) {
	s := vtest.Start(t, vtest.Options{})
	s.MustDo("IUNGO", "SCRIPT", "SET", "trim", "local v = server.call('GET', KEYS[1]); local t = v:match('^%s*(.-)%s*$'); server.call('SET', 'trimmed', #t)")
	s.MustDo("IUNGO", "TRIGGER", "SET", "in:*", "set", "trim")
	s.MustDo("SET", "in:small", "  hi  ")
	assert.Equal(t, "2", str(t, s, "GET", "trimmed"))
	value := "x" + strings.Repeat(" ", 40000) + "y"
	slowest := pingWhile(t, s, func() { s.MustDo("SET", "in:big", value) })
	assert.Less(t, slowest, stallLimit)
	assert.Contains(t, field(t, triggerList(t, s)[0], "last_error"), "timed out")
	t.Logf("slowest PING while the trim idiom ran on 40 KB: %v", slowest)
}

// Ensure a cascade that grows in breadth is bounded by the command's
// budget: one SET used to hold the server 8.4 s and create 838,000 keys.
func TestCascadeBudgetIntegration(t *testing.T) {
	s := vtest.Start(t, vtest.Options{ModuleArgs: []string{"max-depth", "8"}})
	s.MustDo("IUNGO", "SCRIPT", "SET", "fan", "for i = 1, 30 do server.call('SET', KEYS[1] .. ':' .. i, 'x') end")
	s.MustDo("IUNGO", "TRIGGER", "SET", "f*", "set", "fan")
	var took time.Duration
	slowest := pingWhile(t, s, func() {
		start := time.Now()
		s.MustDo("SET", "f", "x")
		took = time.Since(start)
	})
	assert.Less(t, took, stallLimit)
	assert.Less(t, slowest, stallLimit)
	keys := num(t, s, "DBSIZE")
	assert.Less(t, keys, int64(200000))
	last := field(t, triggerList(t, s)[0], "last_error")
	assert.True(t, strings.Contains(last, "iungo.command-budget-ms") || strings.Contains(last, "iungo.command-max-runs"), last)
	t.Logf("one SET: %v, slowest PING %v, %d keys, last error %q", took, slowest, keys, last)
}

// Ensure triggers obey maxmemory as scripts that may write do: with
// noeviction, runs do not start once the server is over the limit, and
// used memory stays near it (it reached 47 MB for a 10 MB limit).
func TestMaxmemoryIntegration(t *testing.T) {
	s := vtest.Start(t, vtest.Options{Config: []string{"maxmemory 10mb", "maxmemory-policy noeviction"}})
	s.MustDo("IUNGO", "SCRIPT", "SET", "big", "server.call('RPUSH', 'log', string.rep('x', 20000))")
	s.MustDo("IUNGO", "TRIGGER", "SET", "d:*", "del", "big")
	for i := 0; i < 2000; i++ {
		s.MustDo("SET", "d:"+strconv.Itoa(i), "1")
	}
	// DEL is no write that grows memory: the server takes it over the
	// limit too, and its trigger would write 20 KB.
	for i := 0; i < 2000; i++ {
		s.MustDo("DEL", "d:"+strconv.Itoa(i))
	}
	assert.Contains(t, s.Do("SET", "x", "1").Error().Error(), "OOM", "the clients' own writes are refused")
	used, err := strconv.ParseInt(serverInfo(t, s, "memory", "used_memory"), 10, 64)
	require.NoError(t, err)
	assert.Less(t, used, int64(12<<20), "used_memory stays near maxmemory")
	tr := triggerList(t, s)[0]
	assert.Contains(t, field(t, tr, "last_error"), "OOM command not allowed when used memory > 'maxmemory'")
	assert.NotEqual(t, "0", field(t, tr, "runs"), "runs happened while there was room")
	t.Logf("used_memory %d, runs %s, errors %s", used, field(t, tr, "runs"), field(t, tr, "errors"))
}

// Ensure compiling is bounded: a 1 MiB script of nested parentheses is
// refused at once (it held the server 2.3 s), and a big legal script
// compiles off the main thread, so other clients are served meanwhile.
func TestCompileBoundsIntegration(t *testing.T) {
	s := vtest.Start(t, vtest.Options{})
	nested := "return " + strings.Repeat("(", 500000) + "1" + strings.Repeat(")", 500000)
	start := time.Now()
	err := s.Do("IUNGO", "SCRIPT", "SET", "deep", nested).Error()
	require.Error(t, err)
	assert.Contains(t, err.Error(), "more than 200 nested levels")
	assert.Less(t, time.Since(start), stallLimit)

	big := strings.Repeat("if ARGV[1] == 'x' then server.call('SET', KEYS[1], 'v') end\n", 15000)
	c := newClient(t, s)
	defer c.Close()
	slowest := pingWhile(t, s, func() {
		require.NoError(t, c.Do(context.Background(), c.B().Arbitrary("IUNGO", "SCRIPT", "SET", "big").Args(big).Build()).Error())
	})
	assert.Less(t, slowest, 100*time.Millisecond, "PING served while %d KB compiled", len(big)>>10)
	assert.Equal(t, "1", infoField(t, s, "scripts"))
	t.Logf("slowest PING while %d KB compiled: %v", len(big)>>10, slowest)
}
