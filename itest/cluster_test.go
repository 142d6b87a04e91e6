package itest

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/valkey-io/valkey-go"

	"github.com/valkey-iungo/valkey-iungo/internal/vtest"
	"github.com/valkey-iungo/valkey-iungo/module"
)

// The cluster of issue 11: 3 primaries and 3 replicas with the module on
// every node, the AOF on. One cluster serves the steps in order, to keep
// make test short.

// tagFor returns a hash tag whose keys live in slot.
func tagFor(slot int) string {
	for i := 0; ; i++ {
		tag := "{s" + strconv.Itoa(i) + "}"
		if module.KeySlot(tag) == slot {
			return tag
		}
	}
}

// lowestSlot returns the lowest slot a primary serves.
func lowestSlot(t *testing.T, c *vtest.Cluster, p *vtest.Server) int {
	t.Helper()
	for slot := 0; slot < module.SlotCount; slot += 16 {
		if c.Owner(slot) == p {
			for slot > 0 && c.Owner(slot-1) == p {
				slot--
			}
			return slot
		}
	}
	t.Fatalf("%s serves no slot", p.Addr)
	return 0
}

// totalRuns sums the trigger runs of every live node.
func totalRuns(t *testing.T, c *vtest.Cluster) int {
	t.Helper()
	n := 0
	for _, s := range c.Live() {
		v, err := strconv.Atoi(infoField(t, s, "runs"))
		require.NoError(t, err)
		n += v
	}
	return n
}

func intField(t *testing.T, s *vtest.Server, name string) int {
	t.Helper()
	v, err := strconv.Atoi(infoField(t, s, name))
	require.NoError(t, err)
	return v
}

// configureCluster installs the examples and counting triggers on every
// primary with IUNGO commands, as a cluster managed without iungo is.
func configureCluster(t *testing.T, c *vtest.Cluster) {
	t.Helper()
	for _, p := range c.Primaries() {
		p.MustDo("IUNGO", "SCRIPT", "SET", "session-cleanup", example(t, "session-cleanup.lua"))
		p.MustDo("IUNGO", "SCRIPT", "SET", "order-points", example(t, "order-points.lua"))
		p.MustDo("IUNGO", "SCRIPT", "SET", "nothing", "return 1")
		p.MustDo("IUNGO", "SCRIPT", "SET", "count", "server.call('INCR', string.match(KEYS[1], '^{[^}]*}') .. ':m')")
		p.MustDo("IUNGO", "TRIGGER", "SET", "{*}:session", "del,expired", "session-cleanup")
		p.MustDo("IUNGO", "TRIGGER", "SET", "{*}:order:*", "hset", "order-points")
		p.MustDo("IUNGO", "TRIGGER", "SET", "{*}:n", "incrby", "count")
		for _, ev := range []string{"restore", "new", "del"} {
			p.MustDo("IUNGO", "TRIGGER", "SET", "*", ev, "nothing")
		}
	}
}

// Ensure the module in Valkey Cluster: slot migration fires nothing, by
// valkey-cli and by hand, while user writes during it fire once; one
// configuration shows as one digest on all six nodes; kill -9 of a primary
// splits no write from its trigger's effects; push reaches exactly the
// primaries, and a failover is reported at once.
func TestClusterIntegration(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test")
	}
	c := vtest.StartCluster(t, 3, 1, vtest.Options{Config: []string{"appendonly yes"}})
	configureCluster(t, c)
	t.Run("one digest on six nodes", func(t *testing.T) { oneDigest(t, c) })
	t.Run("reshard with valkey-cli", func(t *testing.T) { reshardWithCLI(t, c) })
	t.Run("reshard by hand", func(t *testing.T) { reshardByHand(t, c) })
	t.Run("atomic slot migration", func(t *testing.T) { reshardAtomically(t, c) })
	t.Run("kill -9 of a primary", func(t *testing.T) { killPrimary(t, c) })
	t.Run("push and failover", func(t *testing.T) { pushAndFailover(t, c) })
}

func oneDigest(t *testing.T, c *vtest.Cluster) {
	vtest.Eventually(t, 10*time.Second, "all six nodes report one config_digest", func() bool {
		digests := map[string]bool{}
		for _, s := range c.Live() {
			digests[infoField(t, s, "config_digest")] = true
		}
		return len(digests) == 1
	})
	for _, s := range c.Live() {
		assert.Equal(t, "1", infoField(t, s, "configured"), s.Addr)
	}
}

// sessionKeys are a session, its 25 temporary keys and an order, all in
// one slot.
func sessionKeys(tag string) []string {
	keys := []string{tag + ":session", tag + ":order:1"}
	for i := range 25 {
		keys = append(keys, fmt.Sprintf("%s:tmp:%d", tag, i))
	}
	return keys
}

func writeSession(t *testing.T, c *vtest.Cluster, tag string) {
	t.Helper()
	require.NoError(t, c.Do("HSET", tag+":session", "player", "p1", "room", "r9").Error())
	require.NoError(t, c.Do("HSET", tag+":order:1", "user", tag, "amount", "10", "status", "pending").Error())
	for i := range 25 {
		require.NoError(t, c.Do("SET", fmt.Sprintf("%s:tmp:%d", tag, i), "x").Error())
	}
}

func countOn(t *testing.T, s *vtest.Server, keys []string) int64 {
	t.Helper()
	n := int64(0)
	for _, k := range keys {
		v, err := s.Do("EXISTS", k).AsInt64()
		require.NoError(t, err, k)
		n += v
	}
	return n
}

// aSlotToMove writes a session and an order into src's lowest slot; it
// returns the slot, its hash tag, the keys written and the runs so far.
func aSlotToMove(t *testing.T, c *vtest.Cluster, src *vtest.Server) (slot int, tag string, keys []string, runs int) {
	t.Helper()
	slot = lowestSlot(t, c, src)
	tag = tagFor(slot)
	writeSession(t, c, tag)
	return slot, tag, sessionKeys(tag), totalRuns(t, c)
}

// checkMoved checks that a move fired nothing and lost nothing, and that
// the next write fires once, on the new owner.
func checkMoved(t *testing.T, c *vtest.Cluster, dst *vtest.Server, tag string, keys []string, before int) {
	t.Helper()
	assert.Equal(t, before, totalRuns(t, c), "no trigger ran for the migration")
	assert.Equal(t, int64(len(keys)), countOn(t, dst, keys), "no key lost")
	require.NoError(t, c.Do("HSET", tag+":order:1", "status", "completed").Error())
	assert.Equal(t, "10", str(t, dst, "GET", tag+":points"), "a write after the move fires once, on the new owner")
	// order-points, and the "new" trigger for the two keys it creates.
	assert.Equal(t, before+3, totalRuns(t, c))
}

func reshardWithCLI(t *testing.T, c *vtest.Cluster) {
	primaries := c.Primaries()
	src, dst := primaries[0], primaries[1]
	slot, tag, keys, before := aSlotToMove(t, c, src)
	migrations := intField(t, src, "migration_events") + intField(t, dst, "migration_events")

	out, err := vtest.Command(t, "valkey-cli", "--cluster", "reshard", src.Addr, "--cluster-from", src.ID(), "--cluster-to", dst.ID(),
		"--cluster-slots", "1", "--cluster-yes").CombinedOutput()
	require.NoError(t, err, "%s", out)
	c.WaitHealthy(30 * time.Second)
	require.Equal(t, dst, c.Owner(slot))

	assert.Greater(t, intField(t, src, "migration_events")+intField(t, dst, "migration_events"), migrations)
	assert.Zero(t, num(t, src, "CLUSTER", "COUNTKEYSINSLOT", strconv.Itoa(slot)))
	srcRuns := intField(t, src, "runs")
	checkMoved(t, c, dst, tag, keys, before)
	assert.Equal(t, srcRuns, intField(t, src, "runs"))
}

// reshardAtomically moves a slot with CLUSTER MIGRATESLOTS (Valkey 9.0+):
// the target imports it as a replicated stream and the source drops the
// slot's keys outside any command; neither fires a trigger.
func reshardAtomically(t *testing.T, c *vtest.Cluster) {
	primaries := c.Primaries()
	if v := serverVersion(t, primaries[0]); v < module.Version(9, 0, 0) {
		t.Skipf("atomic slot migration needs Valkey 9.0; this is %s", v)
	}
	// primaries[2] gave its lowest slot away by hand: the next is fresh.
	src, dst := primaries[2], primaries[1]
	slot, tag, keys, before := aSlotToMove(t, c, src)

	s := strconv.Itoa(slot)
	src.MustDo("CLUSTER", "MIGRATESLOTS", "SLOTSRANGE", s, s, "NODE", dst.ID())
	vtest.Eventually(t, 30*time.Second, "the slot moved and the source dropped its keys", func() bool {
		return c.Owner(slot) == dst && num(t, src, "CLUSTER", "COUNTKEYSINSLOT", s) == 0
	})
	c.WaitHealthy(30 * time.Second)
	checkMoved(t, c, dst, tag, keys, before)
}

// migrate moves keys of slot from src to dst as valkey-cli does, by hand.
func migrate(t *testing.T, src, dst *vtest.Server, keys ...string) {
	t.Helper()
	args := []string{"MIGRATE", "127.0.0.1", strconv.Itoa(dst.Port), "", "0", "5000", "KEYS"}
	src.MustDo(append(args, keys...)...)
}

func reshardByHand(t *testing.T, c *vtest.Cluster) {
	primaries := c.Primaries()
	src, dst := primaries[2], primaries[0]
	slot, tag, keys, before := aSlotToMove(t, c, src)
	s := strconv.Itoa(slot)
	dst.MustDo("CLUSTER", "SETSLOT", s, "IMPORTING", src.ID())
	src.MustDo("CLUSTER", "SETSLOT", s, "MIGRATING", dst.ID())

	migrate(t, src, dst, keys[2:10]...) // temporary keys first
	// A user write to a key still on the source runs there, once.
	src.MustDo("HSET", tag+":order:1", "note", "gift wrap")
	assert.Equal(t, before+1, totalRuns(t, c))
	// A user write to a key already moved goes to the target with ASKING
	// (valkey-cli -c does the same after an ASK redirect).
	ask := newClient(t, dst)
	defer ask.Close()
	err := ask.Dedicated(func(dc valkey.DedicatedClient) error {
		dc.Do(context.Background(), dc.B().Asking().Build())
		return dc.Do(context.Background(), dc.B().Arbitrary("DEL", keys[3]).Build()).Error()
	})
	require.NoError(t, err)
	assert.Equal(t, before+2, totalRuns(t, c), "the user's DEL fires its trigger once, on the target")
	keys = append(keys[:3], keys[4:]...)

	rest := append([]string{keys[0], keys[1]}, keys[9:]...)
	for i := 0; i < len(rest); i += 5 {
		migrate(t, src, dst, rest[i:min(i+5, len(rest))]...)
	}
	for _, n := range c.Primaries() {
		n.MustDo("CLUSTER", "SETSLOT", s, "NODE", dst.ID())
	}
	c.WaitHealthy(30 * time.Second)
	assert.Equal(t, before+2, totalRuns(t, c), "the migration fired nothing")
	assert.Equal(t, int64(len(keys)), countOn(t, dst, keys), "no key lost")
}

func killPrimary(t *testing.T, c *vtest.Cluster) {
	var acked atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				key := fmt.Sprintf("{w%d-%d}:n", w, i%50)
				ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
				if c.Client.Do(ctx, c.Client.B().Incr().Key(key).Build()).Error() == nil {
					acked.Add(1)
				}
				cancel()
			}
		}()
	}
	vtest.Eventually(t, 10*time.Second, "writes flowing", func() bool { return acked.Load() > 500 })
	victim := c.Primaries()[1]
	victim.Signal(syscall.SIGKILL)
	require.Error(t, victim.WaitExit(10*time.Second))
	vtest.Eventually(t, 30*time.Second, "a replica took over", func() bool { return len(c.Primaries()) == 3 })
	c.WaitHealthy(30 * time.Second)
	after := acked.Load()
	vtest.Eventually(t, 10*time.Second, "writes flowing again", func() bool { return acked.Load() > after+500 })
	close(stop)
	wg.Wait()
	// Every surviving write ran its trigger exactly once: n and m agree,
	// key by key, whatever the crash lost.
	checked := 0
	for w := range 4 {
		for i := range 50 {
			tag := fmt.Sprintf("{w%d-%d}", w, i)
			assert.Equal(t, get(t, c, tag+":n"), get(t, c, tag+":m"), tag)
			checked++
		}
	}
	t.Logf("%d writes acknowledged across kill -9 of %s; %d keys checked", acked.Load(), victim.Addr, checked)
}

// get reads a key through the cluster client: "" when it does not exist.
func get(t *testing.T, c *vtest.Cluster, key string) string {
	t.Helper()
	var v string
	vtest.Eventually(t, 10*time.Second, "GET "+key, func() bool {
		var err error
		v, err = c.Do("GET", key).ToString()
		if valkey.IsValkeyNil(err) {
			v, err = "", nil
		}
		return err == nil
	})
	return v
}

func pushAndFailover(t *testing.T, c *vtest.Cluster) {
	srv := startIungo(t)
	for _, s := range []string{"session-cleanup", "order-points"} {
		body := fmt.Sprintf(`{"source":%q}`, example(t, s+".lua"))
		adminCall(t, srv, "PUT", "/scripts/"+s, body, nil)
	}
	adminCall(t, srv, "PUT", "/triggers", `{"pattern":"{*}:order:*","events":"hset","script":"order-points","enabled":true}`, nil)
	ep := at(t, srv)
	// Follow iungo: primaries first, so that the replicas' registrations
	// find roles as they are.
	for _, s := range c.Live() {
		// Heartbeats a minute apart: what iungo learns sooner, it learns
		// from a sync or a role change.
		for _, kv := range [][2]string{{"token", "tok"}, {"public-key", ep.PublicKey}, {"namespace", "shop"}, {"heartbeat-s", "60"}, {"endpoint", ep.URL}} {
			s.MustDo("CONFIG", "SET", "iungo."+kv[0], kv[1])
		}
	}
	vtest.Eventually(t, 20*time.Second, "six nodes registered, by cluster node id", func() bool {
		v := nodes(t, srv)
		return len(v.Nodes) == len(c.Live())
	})
	for _, n := range nodes(t, srv).Nodes {
		assert.Len(t, n.ID, 40, "a cluster node id")
	}

	var published struct{ Version int64 }
	adminCall(t, srv, "PUT", "/scripts/nothing", `{"source":"return 2"}`, &published)
	version := strconv.FormatInt(published.Version, 10)
	results := push(t, srv)
	pushed := 0
	for _, r := range results {
		if r.Skipped != "" {
			continue
		}
		require.Empty(t, r.Error, r.Node)
		assert.Equal(t, published.Version, r.Version, r.Node)
		pushed++
	}
	assert.Equal(t, 3, pushed, "every primary, and only the primaries")
	for _, p := range c.Primaries() {
		assert.Equal(t, version, infoField(t, p, "namespace_version"), "when the push answered, %s runs it", p.Addr)
	}
	digest := nodes(t, srv).Digest
	vtest.Eventually(t, 10*time.Second, "replicas follow with the same version and digest", func() bool {
		for _, s := range c.Live() {
			if infoField(t, s, "config_digest") != digest || infoField(t, s, "namespace_version") != version {
				return false
			}
		}
		return true
	})
	for _, p := range c.Primaries() {
		assert.Contains(t, p.Do("IUNGO", "SCRIPT", "SET", "x", "return 1").Error().Error(), `follows iungo namespace "shop"`)
	}

	// A replica taken over with CLUSTER FAILOVER tells iungo at once
	// (heartbeats are a minute apart here): the next push reaches it.
	var replica *vtest.Server
	for _, s := range c.Live() {
		if !s.IsPrimary() {
			replica = s
			break
		}
	}
	replica.MustDo("CLUSTER", "FAILOVER")
	vtest.Eventually(t, 20*time.Second, "iungo sees the new primary", func() bool {
		for _, n := range nodes(t, srv).Nodes {
			if n.ID == replica.ID() {
				return n.Role == "primary"
			}
		}
		return false
	})
	c.WaitHealthy(30 * time.Second)
	adminCall(t, srv, "PUT", "/scripts/nothing", `{"source":"return 3"}`, &published)
	reached := false
	for _, r := range push(t, srv) {
		if r.Node == replica.ID() {
			reached = r.Error == "" && r.Skipped == "" && r.Version == published.Version
		}
	}
	assert.True(t, reached, "the push reached the new primary")
	for _, s := range c.Live() {
		s.MustDo("CONFIG", "SET", "iungo.heartbeat-s", "1")
	}
	vtest.Eventually(t, 20*time.Second, "all nodes in step", func() bool {
		v := nodes(t, srv)
		for _, n := range v.Nodes {
			if !strings.Contains("ok following", n.Health) {
				return false
			}
		}
		return v.InStep
	})
}
