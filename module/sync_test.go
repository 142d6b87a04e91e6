package module

import (
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/valkey-iungo/valkey-iungo/config"
	"github.com/valkey-iungo/valkey-iungo/iungo"
)

// lockServer plays the server's global lock for the sync goroutine and
// records how long it was held.
type lockServer struct {
	mu      sync.Mutex
	ctx     *fakeCtx
	maxHeld time.Duration
}

func (s *lockServer) WithLock(fn func(Ctx)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	start := time.Now()
	fn(s.ctx)
	s.maxHeld = max(s.maxHeld, time.Since(start))
}

// fakeIungo serves one namespace; the test sets what it answers. It
// signs with its own key and fills in identities and digests.
type fakeIungo struct {
	*httptest.Server
	mu        sync.Mutex
	token     string
	key       ed25519.PrivateKey
	id        string                    // the namespace's identity
	snapshot  iungo.Snapshot            // the current version
	served    map[uint64]iungo.Snapshot // every version served, by number
	delta     *iungo.Changes            // answered when since == delta.From
	override  http.HandlerFunc
	registers int
	version   uint64 // answered by heartbeats
}

func newFakeIungo(t *testing.T) *fakeIungo {
	_, key, err := ed25519.GenerateKey(nil)
	require.NoError(t, err)
	f := &fakeIungo{token: "secret", key: key, id: "ns-1", served: map[uint64]iungo.Snapshot{}}
	f.Server = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.Close)
	return f
}

// publicKey is what the node pins.
func (f *fakeIungo) publicKey() string {
	return iungo.PublicKeyString(f.key.Public().(ed25519.PublicKey))
}

// sign signs a body as the namespace.
func (f *fakeIungo) sign(body []byte) string { return iungo.Sign(f.key, body) }

func (f *fakeIungo) set(fn func(f *fakeIungo)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fn(f)
	f.snapshot = f.complete(f.snapshot)
	f.served[f.snapshot.Version] = f.snapshot
}

// complete fills in the identity and the digest of a snapshot.
func (f *fakeIungo) complete(sn iungo.Snapshot) iungo.Snapshot {
	sn.NamespaceID = f.id
	c, _ := sn.Config()
	sn.Digest = iungo.ContentDigest(c)
	return sn
}

func (f *fakeIungo) serve(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	override := f.override
	f.mu.Unlock()
	if override != nil {
		override(w, r)
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if r.Header.Get("Authorization") != "Bearer "+f.token {
		w.WriteHeader(http.StatusUnauthorized)
		_, _ = w.Write([]byte(`{"error":{"code":"unauthorized","message":"bad token"}}`))
		return
	}
	var out any
	cur := f.snapshot
	switch {
	case strings.HasSuffix(r.URL.Path, "/nodes"):
		f.registers++
		out = iungo.VersionReply{Version: cur.Version}
	case strings.HasSuffix(r.URL.Path, "/heartbeat"):
		out = iungo.VersionReply{Version: f.version}
	case strings.HasSuffix(r.URL.Path, "/changes"):
		since := r.URL.Query().Get("since")
		switch {
		case since == itoaU(cur.Version):
			out = iungo.Changes{Namespace: cur.Namespace, NamespaceID: f.id, Kind: iungo.KindDelta,
				From: cur.Version, FromDigest: cur.Digest, Version: cur.Version, Digest: cur.Digest}
		case f.delta != nil && since == itoaU(f.delta.From):
			d := *f.delta
			d.NamespaceID, d.FromDigest, d.Digest = f.id, f.served[d.From].Digest, cur.Digest
			out = d
		default:
			sn := cur
			sn.Kind = iungo.KindSnapshot
			out = sn
		}
	default:
		w.WriteHeader(http.StatusNotFound)
		return
	}
	body, _ := json.Marshal(out)
	w.Header().Set(iungo.SignatureHeader, f.sign(body))
	_, _ = w.Write(body)
}

// snapshotAnswer answers with a signed snapshot of example(version):
// content changes the configuration before its identity and digest are
// filled in, forge changes what they say after.
func snapshotAnswer(version uint64, content, forge func(*iungo.Snapshot)) func(*fakeIungo, http.ResponseWriter, *http.Request) {
	return func(f *fakeIungo, w http.ResponseWriter, r *http.Request) {
		sn := example(version)
		if content != nil {
			content(&sn)
		}
		sn = f.complete(sn)
		sn.Kind = iungo.KindSnapshot
		if forge != nil {
			forge(&sn)
		}
		body, _ := json.Marshal(sn)
		w.Header().Set(iungo.SignatureHeader, f.sign(body))
		_, _ = w.Write(body)
	}
}

func itoaU(v uint64) string {
	b, _ := json.Marshal(v)
	return string(b)
}

func example(version uint64) iungo.Snapshot {
	return iungo.Snapshot{
		Namespace: "shop", Version: version,
		Events:  []string{"hash", "string", "new"},
		Scripts: []iungo.Script{{Name: "count", Source: "server.call('INCR', 'n')"}},
		Triggers: []iungo.Trigger{
			{Pattern: "order:*", Events: "hset", Script: "count", Enabled: true},
			{Pattern: "tmp:*", Events: "del", Script: "count", Enabled: false},
		},
	}
}

// syncModule is a module syncing with f.
func syncModule(t *testing.T, f *fakeIungo, args ...string) (*testModule, *lockServer) {
	t.Helper()
	return syncModuleAs(t, f, FlagPrimary, args...)
}

// syncModuleAs is syncModule on a node with the given role flags.
func syncModuleAs(t *testing.T, f *fakeIungo, flags CtxFlags, args ...string) (*testModule, *lockServer) {
	t.Helper()
	tm := newTestModule(t)
	require.NoError(t, tm.ApplyArgs(append([]string{"endpoint", f.URL, "namespace", "shop", "token", "secret",
		"public-key", f.publicKey(), "heartbeat-s", "0", "sync-interval-s", "0"}, args...)))
	srv := &lockServer{ctx: &fakeCtx{m: tm.Module, flags: flags}}
	tm.StartSync(srv, SyncOptions{ValkeyVersion: "8.0.1", NodeAddress: "127.0.0.1:6379", Timeout: 500 * time.Millisecond})
	return tm, srv
}

// syncAnswer is what IUNGO SYNC answered: a version or an error.
type syncAnswer struct {
	version uint64
	err     error
}

// syncNow runs IUNGO SYNC and waits for its answer.
func syncNow(t *testing.T, tm *testModule, srv *lockServer) syncAnswer {
	t.Helper()
	srv.mu.Lock()
	r := tm.ctx.start("SYNC")
	srv.mu.Unlock()
	require.Nil(t, r, "IUNGO SYNC blocks: no reply now, got %v", r)
	require.True(t, tm.ctx.blockedNow)
	var f func(Ctx)
	select {
	case f = <-tm.ctx.finishes:
	case <-time.After(15 * time.Second):
		t.Fatal("IUNGO SYNC never answered")
	}
	srv.mu.Lock()
	defer srv.mu.Unlock()
	tm.ctx.reply = reply{}
	f(tm.ctx)
	switch v := tm.ctx.reply.root.(type) {
	case int64:
		return syncAnswer{version: uint64(v)}
	case string:
		return syncAnswer{err: errors.New(strings.TrimPrefix(v, "-"))}
	}
	t.Fatalf("IUNGO SYNC answered %v", tm.ctx.reply.root)
	return syncAnswer{}
}

// configOf reads the module's configuration under the lock.
func configOf(srv *lockServer, tm *testModule) config.Config {
	srv.mu.Lock()
	defer srv.mu.Unlock()
	return tm.Config()
}

// Ensure a sync fetches a snapshot, installs it whole, replicates it as one
// RESTORE, and answers IUNGO SYNC with iungo's version.
func TestSyncSnapshot(t *testing.T) {
	f := newFakeIungo(t)
	f.set(func(f *fakeIungo) { f.snapshot = example(3) })
	tm, srv := syncModule(t, f)
	a := syncNow(t, tm, srv)
	require.NoError(t, a.err)
	assert.Equal(t, uint64(3), a.version)
	c := configOf(srv, tm)
	assert.Equal(t, config.ClassHash|config.ClassString|config.ClassNew, c.Classes)
	assert.Equal(t, []config.ScriptDef{{Name: "count", Source: "server.call('INCR', 'n')"}}, c.Scripts)
	assert.Equal(t, []config.TriggerDef{{Pattern: "order:*", Events: "hset", Script: "count", Enabled: true}, {Pattern: "tmp:*", Events: "del", Script: "count", Enabled: false}}, c.Triggers)
	assert.Equal(t, uint64(3), c.Origin.Version)
	require.Len(t, srv.ctx.restores(), 1)
	replicated, err := config.Decode(srv.ctx.restores()[0])
	require.NoError(t, err)
	assert.Equal(t, c, replicated)
	srv.mu.Lock()
	assert.Equal(t, "iungo", tm.Source())
	srv.mu.Unlock()
	assert.Equal(t, 1, f.registers)
}

// Ensure a delta is applied on top of the configuration it starts from.
func TestSyncDelta(t *testing.T) {
	f := newFakeIungo(t)
	f.set(func(f *fakeIungo) { f.snapshot = example(3) })
	tm, srv := syncModule(t, f)
	require.NoError(t, syncNow(t, tm, srv).err)
	d := &iungo.Changes{Namespace: "shop", Kind: iungo.KindDelta, From: 3, Version: 5, Events: &[]string{"hash"}}
	d.Scripts.Set = []iungo.Script{{Name: "log", Source: "server.call('RPUSH', 'log', KEYS[1])"}}
	d.Triggers.Set = []iungo.Trigger{{Pattern: "tmp:*", Events: "del", Script: "log", Enabled: true}, {Pattern: "new:*", Events: "set", Script: "log", Enabled: true}}
	d.Triggers.Unset = []iungo.TriggerKey{{Pattern: "order:*", Events: "hset"}}
	v5 := iungo.Snapshot{Namespace: "shop", Version: 5, Events: []string{"hash"},
		Scripts:  []iungo.Script{{Name: "count", Source: "server.call('INCR', 'n')"}, {Name: "log", Source: "server.call('RPUSH', 'log', KEYS[1])"}},
		Triggers: []iungo.Trigger{{Pattern: "tmp:*", Events: "del", Script: "log", Enabled: true}, {Pattern: "new:*", Events: "set", Script: "log", Enabled: true}}}
	f.set(func(f *fakeIungo) { f.delta, f.snapshot = d, v5 })
	a := syncNow(t, tm, srv)
	require.NoError(t, a.err)
	assert.Equal(t, uint64(5), a.version)
	c := configOf(srv, tm)
	assert.Equal(t, config.ClassHash, c.Classes)
	assert.Len(t, c.Scripts, 2)
	assert.Equal(t, []config.TriggerDef{{Pattern: "tmp:*", Events: "del", Script: "log", Enabled: true}, {Pattern: "new:*", Events: "set", Script: "log", Enabled: true}}, c.Triggers)
}

// Ensure every kind of bad answer leaves the configuration in force, is
// reported as the last error, and never holds the lock while waiting.
func TestSyncFailures(t *testing.T) {
	cases := []struct {
		name    string
		handler func(f *fakeIungo, w http.ResponseWriter, r *http.Request)
		want    string
	}{
		{"bad signature", func(f *fakeIungo, w http.ResponseWriter, r *http.Request) {
			body, _ := json.Marshal(example(9))
			_, other, _ := ed25519.GenerateKey(nil)
			w.Header().Set(iungo.SignatureHeader, iungo.Sign(other, body))
			_, _ = w.Write(body)
		}, "does not match the body"},
		{"no signature", func(f *fakeIungo, w http.ResponseWriter, r *http.Request) {
			body, _ := json.Marshal(example(9))
			_, _ = w.Write(body)
		}, "has no Iungo-Signature header"},
		{"500", func(f *fakeIungo, w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(http.StatusInternalServerError)
			_, _ = w.Write([]byte(`{"error":{"code":"internal","message":"disk full"}}`))
		}, "iungo answered 500 internal: disk full"},
		{"500 without JSON", func(f *fakeIungo, w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(http.StatusBadGateway)
			_, _ = w.Write([]byte("<html>bad gateway</html>"))
		}, "iungo answered 502 unreadable"},
		{"timeout", func(f *fakeIungo, w http.ResponseWriter, r *http.Request) {
			time.Sleep(2 * time.Second)
		}, "iungo unreachable"},
		{"garbage JSON", func(f *fakeIungo, w http.ResponseWriter, r *http.Request) {
			body := []byte(`{"kind": "snapshot", "namespace": "shop", "scripts": 7`)
			w.Header().Set(iungo.SignatureHeader, f.sign(body))
			_, _ = w.Write(body)
		}, "not the JSON expected"},
		{"huge payload", func(f *fakeIungo, w http.ResponseWriter, r *http.Request) {
			// The headers go out at once: the node must refuse on the
			// announced length alone, however slow the machine is.
			w.Header().Set("Content-Length", itoaU(iungo.MaxBodyBytes+1))
			w.WriteHeader(http.StatusOK)
			w.(http.Flusher).Flush()
		}, "over 64 MiB"},
		{"script that does not compile", snapshotAnswer(9, func(sn *iungo.Snapshot) { sn.Scripts[0].Source = "return (" }, nil),
			`iungo's configuration of version 9 is refused: ERR script "count" does not compile`},
		{"wrong namespace", snapshotAnswer(9, func(sn *iungo.Snapshot) { sn.Namespace = "other" }, nil), `answered for namespace "other"`},
		{"digest that does not match", snapshotAnswer(9, nil, func(sn *iungo.Snapshot) { sn.Digest = "sha256:00" }),
			"does not hold what its digest sha256:00 says"},
		{"replayed older version", snapshotAnswer(2, nil, nil), "iungo sent version 2, older than version 3 in force"},
		{"same version, other content", snapshotAnswer(3, func(sn *iungo.Snapshot) { sn.Scripts[0].Source = "return 'restored'" }, nil),
			"iungo's version 3 holds sha256:"},
		{"other namespace identity", snapshotAnswer(9, nil, func(sn *iungo.Snapshot) { sn.NamespaceID = "ns-2" }),
			"iungo answers for namespace identity ns-2, this node follows ns-1"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := newFakeIungo(t)
			f.set(func(f *fakeIungo) { f.snapshot = example(3) })
			tm, srv := syncModule(t, f)
			require.NoError(t, syncNow(t, tm, srv).err)
			before := configOf(srv, tm)
			f.set(func(f *fakeIungo) {
				f.override = func(w http.ResponseWriter, r *http.Request) {
					if strings.HasSuffix(r.URL.Path, "/changes") {
						c.handler(f, w, r)
						return
					}
					w.WriteHeader(http.StatusNotFound)
				}
			})
			a := syncNow(t, tm, srv)
			require.Error(t, a.err)
			assert.Contains(t, a.err.Error(), c.want)
			assert.Equal(t, before, configOf(srv, tm), "the configuration in force stays")
			assert.Contains(t, tm.Module.sync.State().LastError, c.want)
			srv.mu.Lock()
			assert.Less(t, srv.maxHeld, 100*time.Millisecond, "the lock is held only to install")
			srv.mu.Unlock()
		})
	}
}

// Ensure a replica fetches nothing and applies nothing.
func TestSyncOnReplica(t *testing.T) {
	f := newFakeIungo(t)
	f.set(func(f *fakeIungo) { f.snapshot = example(3) })
	tm, srv := syncModuleAs(t, f, FlagReplica)
	srv.mu.Lock()
	tm.ctx.flags = FlagReplica
	r := tm.ctx.do("SYNC")
	srv.mu.Unlock()
	assert.Contains(t, r, "-READONLY")
	assert.Empty(t, configOf(srv, tm).Scripts)
}

// Ensure a heartbeat that reports a newer version makes the node sync, and
// a sync that failed is retried until iungo answers.
func TestSyncHeartbeatAndRetry(t *testing.T) {
	f := newFakeIungo(t)
	down := true
	f.set(func(f *fakeIungo) {
		f.snapshot, f.version = example(4), 4
		f.override = func(w http.ResponseWriter, r *http.Request) {
			f.mu.Lock()
			d := down
			f.mu.Unlock()
			if d {
				w.WriteHeader(http.StatusServiceUnavailable)
				return
			}
			f.mu.Lock()
			f.override = nil
			f.mu.Unlock()
			f.serve(w, r)
		}
	})
	tm, srv := syncModule(t, f, "heartbeat-s", "1")
	require.Eventually(t, func() bool { return tm.Module.sync.State().Failures > 0 }, 5*time.Second, 10*time.Millisecond)
	f.set(func(*fakeIungo) { down = false })
	require.Eventually(t, func() bool { return configOf(srv, tm).Origin.Version == 4 }, 10*time.Second, 20*time.Millisecond,
		"retried with backoff until iungo answered")
	f.set(func(f *fakeIungo) { f.snapshot, f.version = example(6), 6 })
	require.Eventually(t, func() bool { return configOf(srv, tm).Origin.Version == 6 }, 10*time.Second, 20*time.Millisecond,
		"a heartbeat with a newer version makes the node sync")
	assert.Empty(t, tm.Module.sync.State().LastError)
}

// Ensure IUNGO SYNC without an endpoint says what to set.
func TestSyncWithoutEndpoint(t *testing.T) {
	tm := newTestModule(t)
	assert.Contains(t, tm.ctx.do("SYNC"), "iungo.endpoint is not set")
}

// Ensure a change from iungo waits while writes are paused (replicating
// then would abort the server) and applies, whole, once they resume.
func TestSyncWaitsForWritesPause(t *testing.T) {
	f := newFakeIungo(t)
	f.set(func(f *fakeIungo) { f.snapshot = example(3) })
	tm, srv := syncModule(t, f)
	srv.mu.Lock()
	srv.ctx.paused = true
	srv.mu.Unlock()
	resumed := make(chan time.Time, 1)
	go func() {
		time.Sleep(300 * time.Millisecond)
		srv.mu.Lock()
		resumed <- time.Now()
		srv.ctx.paused = false
		srv.mu.Unlock()
	}()
	a := syncNow(t, tm, srv)
	require.NoError(t, a.err)
	assert.Equal(t, uint64(3), a.version)
	answered := time.Now()
	assert.False(t, answered.Before(<-resumed), "applied only after writes resumed")
	require.Len(t, srv.ctx.restores(), 1)
	assert.Equal(t, uint64(3), configOf(srv, tm).Origin.Version)
}

// Ensure a node that follows iungo refuses local changes, naming the
// namespace (the next sync would revert them without a word), in dev mode
// too; PAUSE stays the operator's.
func TestLocalChangesRefusedWhenFollowing(t *testing.T) {
	f := newFakeIungo(t)
	f.set(func(f *fakeIungo) { f.snapshot = example(3) })
	tm, srv := syncModule(t, f)
	require.NoError(t, syncNow(t, tm, srv).err)
	srv.mu.Lock()
	defer srv.mu.Unlock()
	for _, cmd := range [][]string{
		{"SCRIPT", "SET", "a", "return 1"}, {"TRIGGER", "SET", "k", "set", "count"}, {"TRIGGER", "DISABLE", "order:*", "hset"},
		{"EVENT", "SET", "keymiss"}, {"RESTORE", string(config.Encode(config.Config{}))},
	} {
		assert.Contains(t, tm.ctx.do(cmd...), `this node follows iungo namespace "shop" (iungo.endpoint is set)`, cmd)
	}
	assert.Equal(t, "+OK", tm.ctx.do("PAUSE"))
	assert.Len(t, tm.Config().Scripts, 1)
}

// Ensure crons come from iungo like the rest: a node that follows iungo
// refuses local CRON changes, applies iungo's crons, and keeps when they
// last ran across versions.
func TestCronsFromIungo(t *testing.T) {
	f := newFakeIungo(t)
	f.set(func(f *fakeIungo) {
		f.snapshot = example(3)
		f.snapshot.Crons = []iungo.Cron{{Name: "nightly", Schedule: "@daily", Script: "count", Enabled: true}}
	})
	tm, srv := syncModule(t, f)
	require.NoError(t, syncNow(t, tm, srv).err)
	srv.mu.Lock()
	assert.Contains(t, tm.ctx.do("CRON", "SET", "own", "@daily", "count"), `this node follows iungo namespace "shop"`)
	require.Len(t, tm.Crons(), 1)
	require.NoError(t, tm.MarkCron("nightly", 5000, true))
	srv.mu.Unlock()
	f.set(func(f *fakeIungo) {
		f.snapshot.Version = 4
		f.snapshot.Crons = append(f.snapshot.Crons, iungo.Cron{Name: "tick", Schedule: "@every 10s", Script: "count"})
	})
	require.NoError(t, syncNow(t, tm, srv).err)
	srv.mu.Lock()
	defer srv.mu.Unlock()
	crons := tm.Config().Crons
	require.Len(t, crons, 2)
	assert.Equal(t, int64(5000), crons[0].LastRun, "the new version keeps when nightly last ran")
	assert.False(t, crons[1].Enabled)
	assert.Equal(t, f.snapshot.Digest, tm.ConfigDigest(), "the node holds iungo's digest, crons included")
}

// Ensure IUNGO SYNC says what is missing.
func TestSyncNeedsNamespaceAndKey(t *testing.T) {
	tm := newTestModule(t)
	require.NoError(t, tm.ApplyArgs([]string{"endpoint", "http://127.0.0.1:1"}))
	tm.StartSync(&lockServer{ctx: tm.ctx}, SyncOptions{})
	assert.Contains(t, tm.ctx.do("SYNC"), "iungo.namespace is not set")
	require.NoError(t, tm.ApplyArgs([]string{"namespace", "shop"}))
	assert.Contains(t, tm.ctx.do("SYNC"), "iungo.public-key is not set")
	assert.Error(t, tm.ApplyArgs([]string{"public-key", "tok"}))
}

// Ensure a replica is a healthy follower: its syncs fetch nothing, fail
// nothing and log nothing, and it still reports what it runs.
func TestReplicaFollowsQuietly(t *testing.T) {
	f := newFakeIungo(t)
	f.set(func(f *fakeIungo) { f.snapshot = example(3) })
	tm, srv := syncModuleAs(t, f, FlagReplica)
	for range 3 {
		_, err := tm.Module.sync.syncOnce()
		require.NoError(t, err)
	}
	assert.Empty(t, tm.Module.sync.State().LastError)
	for _, line := range tm.logs {
		assert.NotContains(t, line, "warning", line)
	}
	assert.Empty(t, configOf(srv, tm).Scripts, "nothing applied from iungo")
	assert.Equal(t, 1, f.registers, "it registers, as a replica")
}
