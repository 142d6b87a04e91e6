package itest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/valkey-io/valkey-go"

	"github.com/valkey-iungo/valkey-iungo/internal/vtest"
)

// configure registers a configuration with a bit of everything: two
// scripts, an enabled and a disabled trigger, a binary pattern and a
// disabled event class.
func configure(t *testing.T, s *vtest.Server) {
	t.Helper()
	s.MustDo("IUNGO", "SCRIPT", "SET", "count", "server.call('INCR', 'counter')")
	s.MustDo("IUNGO", "SCRIPT", "SET", "other", "return 1")
	s.MustDo("IUNGO", "TRIGGER", "SET", "k:*", "set", "count")
	s.MustDo("IUNGO", "TRIGGER", "SET", "bin:\x00\xff*", "hset,del", "other")
	s.MustDo("IUNGO", "TRIGGER", "DISABLE", "bin:\x00\xff*", "del,hset")
	s.MustDo("IUNGO", "EVENT", "UNSET", "zset")
}

// dump is the whole configuration, version included.
func dump(t *testing.T, s *vtest.Server) string {
	t.Helper()
	return str(t, s, "IUNGO", "DUMP")
}

func infoField(t *testing.T, s *vtest.Server, name string) string {
	t.Helper()
	info, err := s.Do("IUNGO", "INFO").AsMap()
	require.NoError(t, err)
	return field(t, info, name)
}

// Ensure scripts, triggers, enabled flags, classes, the paused flag and the
// version come back after SAVE and a restart, and a write fires again.
func TestRestartFromRDBIntegration(t *testing.T) {
	s := vtest.Start(t, vtest.Options{})
	configure(t, s)
	s.MustDo("IUNGO", "PAUSE")
	before := dump(t, s)
	s.Shutdown("SAVE")
	s.StartAgain()
	assert.Equal(t, before, dump(t, s))
	assert.Equal(t, "rdb", infoField(t, s, "config_source"))
	assert.Equal(t, "1", infoField(t, s, "paused"))
	s.MustDo("IUNGO", "RESUME")
	s.MustDo("SET", "k:1", "v")
	assert.Equal(t, "1", str(t, s, "GET", "counter"))
}

// Ensure DEBUG RELOAD keeps the configuration and FLUSHALL leaves it alone.
func TestDebugReloadAndFlushallIntegration(t *testing.T) {
	s := vtest.Start(t, vtest.Options{})
	configure(t, s)
	before := dump(t, s)
	s.MustDo("DEBUG", "RELOAD")
	assert.Equal(t, before, dump(t, s))
	s.MustDo("FLUSHALL")
	assert.Equal(t, before, dump(t, s))
	s.MustDo("SET", "k:1", "v")
	assert.Equal(t, "1", str(t, s, "GET", "counter"))
}

// waitRewrite waits for a BGREWRITEAOF to finish.
func waitRewrite(t *testing.T, s *vtest.Server) {
	t.Helper()
	vtest.Eventually(t, 20*time.Second, "AOF rewrite finished", func() bool {
		info := str(t, s, "INFO", "persistence")
		return strings.Contains(info, "aof_rewrite_in_progress:0") && strings.Contains(info, "aof_rewrite_scheduled:0")
	})
}

// Ensure the configuration and the triggers' writes survive a restart from
// the AOF, across an AOF rewrite, with and without the RDB preamble.
func TestRestartFromAOFIntegration(t *testing.T) {
	for _, preamble := range []string{"yes", "no"} {
		t.Run("aof-use-rdb-preamble="+preamble, func(t *testing.T) {
			s := vtest.Start(t, vtest.Options{Config: []string{"appendonly yes", "appendfsync always", "aof-use-rdb-preamble " + preamble}})
			waitRewrite(t, s) // the first base file
			configure(t, s)
			s.MustDo("SET", "k:1", "v")
			s.MustDo("BGREWRITEAOF")
			waitRewrite(t, s)
			// Changes after the rewrite live in the new incremental file.
			s.MustDo("IUNGO", "SCRIPT", "SET", "late", "return 2")
			s.MustDo("IUNGO", "TRIGGER", "SET", "late:*", "del", "late")
			s.MustDo("SET", "k:2", "v")
			before := dump(t, s)
			s.Restart() // SIGINT: no RDB is written, the AOF is the data
			assert.Equal(t, before, dump(t, s))
			assert.Equal(t, "2", str(t, s, "GET", "counter"), "writes of trigger scripts are in the AOF, and loading fired nothing")
			s.MustDo("SET", "k:3", "v")
			assert.Equal(t, "3", str(t, s, "GET", "counter"))
		})
	}
}

// Ensure a replica gets the configuration by full sync and by the
// replication stream, and writes on the primary fire once.
func TestReplicaIntegration(t *testing.T) {
	for _, readOnly := range []string{"yes", "no"} {
		t.Run("replica-read-only="+readOnly, func(t *testing.T) {
			primary := vtest.Start(t, vtest.Options{})
			configure(t, primary) // before the replica: it comes with the full sync
			replica := startReplica(t, primary, "replica-read-only "+readOnly)
			assert.Equal(t, dump(t, primary), dump(t, replica), "full sync")

			primary.MustDo("IUNGO", "SCRIPT", "SET", "count", "server.call('INCRBY', 'counter', 1)")
			primary.MustDo("IUNGO", "TRIGGER", "SET", "k2:*", "set", "count")
			for i := range 100 {
				primary.MustDo("SET", fmt.Sprintf("k:%d", i), "v")
				primary.MustDo("SET", fmt.Sprintf("k2:%d", i), "v")
			}
			require.Equal(t, int64(1), num(t, primary, "WAIT", "1", "5000"))
			assert.Equal(t, dump(t, primary), dump(t, replica), "replication stream")
			assert.Equal(t, "200", str(t, primary, "GET", "counter"))
			assert.Equal(t, "200", str(t, replica, "GET", "counter"))
		})
	}
}

func startReplica(t *testing.T, primary *vtest.Server, config ...string) *vtest.Server {
	t.Helper()
	replica := vtest.Start(t, vtest.Options{Config: append([]string{"replicaof 127.0.0.1 " + portOf(primary)}, config...)})
	vtest.Eventually(t, 20*time.Second, "replica in sync", func() bool {
		return strings.Contains(str(t, replica, "INFO", "replication"), "master_link_status:up")
	})
	return replica
}

// Ensure a promoted replica runs the triggers from its next write, the
// demoted primary stops, and nothing fires twice.
func TestFailoverIntegration(t *testing.T) {
	a := vtest.Start(t, vtest.Options{})
	configure(t, a)
	b := startReplica(t, a)
	a.MustDo("SET", "k:1", "v")
	require.Equal(t, int64(1), num(t, a, "WAIT", "1", "5000"))

	b.MustDo("REPLICAOF", "NO", "ONE")
	a.MustDo("REPLICAOF", "127.0.0.1", portOf(b))
	vtest.Eventually(t, 20*time.Second, "old primary follows the new one", func() bool {
		return strings.Contains(str(t, a, "INFO", "replication"), "master_link_status:up")
	})
	b.MustDo("SET", "k:2", "v")
	require.Equal(t, int64(1), num(t, b, "WAIT", "1", "5000"))
	assert.Equal(t, "2", str(t, b, "GET", "counter"), "the new primary runs the trigger")
	assert.Equal(t, "2", str(t, a, "GET", "counter"), "the demoted primary only replicates it")
	b.MustDo("IUNGO", "TRIGGER", "SET", "new:*", "set", "count")
	require.Equal(t, int64(1), num(t, b, "WAIT", "1", "5000"))
	assert.Equal(t, dump(t, b), dump(t, a))
}

// Ensure no acknowledged write is lost or counted twice when the server
// shuts down (SHUTDOWN SAVE) in the middle of a run of writes.
func TestRestartDuringWritesIntegration(t *testing.T) {
	s := vtest.Start(t, vtest.Options{})
	s.MustDo("IUNGO", "SCRIPT", "SET", "count", "server.call('INCR', 'counter')")
	s.MustDo("IUNGO", "TRIGGER", "SET", "w:*", "set", "count")
	const total, writers = 20_000, 20
	var next, acked atomic.Int64
	var unknown sync.Map // keys whose write got no reply
	write := func(addr string, stopAt int64) {
		var wg sync.WaitGroup
		for range writers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				c, err := valkey.NewClient(valkey.ClientOption{InitAddress: []string{addr}, DisableCache: true, DisableRetry: true})
				if err != nil {
					return
				}
				defer c.Close()
				for {
					i := next.Add(1)
					if i > stopAt {
						return
					}
					key := fmt.Sprintf("w:%d", i)
					if err := c.Do(context.Background(), c.B().Set().Key(key).Value("v").Build()).Error(); err != nil {
						unknown.Store(key, true)
						// Claim the rest of this run and stop.
						for next.Load() < stopAt {
							if j := next.Add(1); j <= stopAt {
								unknown.Store(fmt.Sprintf("w:%d", j), false) // never sent
							}
						}
						return
					}
					acked.Add(1)
				}
			}()
		}
		wg.Wait()
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		write(s.Addr, total/2)
	}()
	vtest.Eventually(t, 20*time.Second, "writes under way", func() bool { return acked.Load() > 2000 })
	s.Shutdown("SAVE")
	<-done
	s.StartAgain()
	next.Store(total / 2)
	write(s.Addr, total)

	counter := num(t, s, "GET", "counter")
	keys := int64(0)
	for i := 1; i <= total; i++ {
		keys += num(t, s, "EXISTS", fmt.Sprintf("w:%d", i))
	}
	assert.Equal(t, keys, counter, "exactly one run for every write that happened")
	assert.GreaterOrEqual(t, counter, acked.Load(), "every acknowledged write counted")
	inFlight := int64(0)
	unknown.Range(func(_, sent any) bool {
		if sent.(bool) {
			inFlight++
		}
		return true
	})
	assert.LessOrEqual(t, counter, acked.Load()+inFlight)
	t.Logf("acknowledged %d, in flight at shutdown %d, counter %d", acked.Load(), inFlight, counter)
}

// corruptRDB saves an RDB with a configuration and returns its bytes and
// where the configuration snapshot starts in it.
func corruptRDB(t *testing.T, s *vtest.Server) ([]byte, int) {
	t.Helper()
	configure(t, s)
	s.Shutdown("SAVE")
	data, err := os.ReadFile(filepath.Join(s.Dir, "dump.rdb"))
	require.NoError(t, err)
	at := bytes.Index(data, []byte("IUNGOCF1"))
	require.Positive(t, at, "the snapshot is in the RDB")
	return data, at
}

// Ensure a corrupt or truncated configuration in the RDB makes the load
// fail cleanly (exit status 1, not a crash) with lines that name the module
// and say why. Compression is off so that the damage reaches iungo's own
// checks rather than the server's LZF decoder.
func TestCorruptAuxIntegration(t *testing.T) {
	for _, c := range []struct {
		name        string
		compression string
		damage      func([]byte, int) []byte
		want        []string
	}{
		{"flipped byte", "no", func(d []byte, at int) []byte { d[at+20] ^= 0x55; return d }, []string{
			"iungo: cannot load the iungo configuration from the RDB: checksum mismatch: the snapshot is corrupt; nothing was applied.",
			"module AUX data for the module type 'iungo-cfg', that the responsible module is not able to load",
		}},
		{"truncated", "no", func(d []byte, at int) []byte { return d[:at+30] }, []string{
			"iungo: the iungo configuration in the RDB is truncated; nothing was applied.",
			"module AUX data for the module type 'iungo-cfg', that the responsible module is not able to load",
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			s := vtest.Start(t, vtest.Options{Config: []string{"rdbcompression " + c.compression}})
			data, at := corruptRDB(t, s)
			require.NoError(t, os.WriteFile(filepath.Join(s.Dir, "dump.rdb"), c.damage(data, at), 0o644))
			err := s.TryStart()
			require.Error(t, err, "the server must refuse the RDB")
			var exit *exec.ExitError
			require.True(t, errors.As(err, &exit), "%v", err)
			assert.Equal(t, 1, exit.ExitCode(), "a clean exit, not a crash")
			log := s.Log()
			for _, line := range c.want {
				assert.Contains(t, log, line)
			}
			assert.NotContains(t, log, "crashed by signal")
		})
	}
}

// Ensure the manifest loads at start, wins over what the RDB restores, and
// leaves the rest of the RDB's configuration in place.
func TestManifestIntegration(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		require.NoError(t, os.WriteFile(p, []byte(body), 0o644))
		return p
	}
	write("count.lua", "server.call('INCR', 'counter')")
	manifest := write("iungo.manifest", "script count count.lua\ntrigger k:* set count\nevents all new\n")
	s := vtest.Start(t, vtest.Options{ModuleArgs: []string{"config", manifest}})
	s.MustDo("SET", "k:1", "v")
	assert.Equal(t, "1", str(t, s, "GET", "counter"))
	assert.Equal(t, manifest, infoField(t, s, "manifest"))

	s.MustDo("IUNGO", "TRIGGER", "DISABLE", "k:*", "set")
	s.MustDo("IUNGO", "SCRIPT", "SET", "extra", "return 1")
	s.MustDo("IUNGO", "TRIGGER", "SET", "extra:*", "del", "extra")
	s.Shutdown("SAVE")
	s.StartAgain()
	list := triggerList(t, s)
	require.Len(t, list, 2)
	assert.Equal(t, "1", field(t, list[0], "enabled"), "the manifest wins for its trigger")
	assert.Equal(t, "extra:*", field(t, list[1], "pattern"), "the RDB's own trigger stays")
	assert.Equal(t, "manifest", infoField(t, s, "config_source"))
	s.MustDo("SET", "k:2", "v")
	assert.Equal(t, "2", str(t, s, "GET", "counter"))

	// A broken manifest refuses the load with file:line.
	write("iungo.manifest", "script count count.lua\ntrigger k:* sett count\n")
	s.Shutdown("NOSAVE")
	require.Error(t, s.TryStart())
	assert.Contains(t, s.Log(), manifest+`:2: unknown event "sett"`)
}

// Ensure the manifest make run loads is valid and runs the order use case.
func TestExampleManifestIntegration(t *testing.T) {
	manifest := filepath.Join(vtest.Root(t), "testdata", "examples", "iungo.manifest")
	s := vtest.Start(t, vtest.Options{ModuleArgs: []string{"config", manifest}})
	require.Len(t, triggerList(t, s), 2)
	s.MustDo("HSET", "{u1}:order:7", "user", "u1", "amount", "30", "status", "completed")
	assert.Equal(t, "30", str(t, s, "GET", "{u1}:points"))
}
