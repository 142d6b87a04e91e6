package module

import (
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/valkey-iungo/valkey-iungo/config"
	"github.com/valkey-iungo/valkey-iungo/scripting"
)

// hashServer answers the calls window triggers make, on hashes and sets
// in memory; the script's own RPUSH records what it was given.
type hashServer struct {
	hashes map[string]map[string]int64
	sets   map[string]map[string]bool
	pushed [][]string
}

func newHashServer() *hashServer {
	return &hashServer{hashes: map[string]map[string]int64{}, sets: map[string]map[string]bool{}}
}

func intReply(n int64) scripting.Reply { return scripting.Reply{Kind: scripting.ReplyInteger, Int: n} }

func (h *hashServer) call(args []string) scripting.Reply {
	switch args[0] {
	case "HINCRBY":
		if h.hashes[args[1]] == nil {
			h.hashes[args[1]] = map[string]int64{}
		}
		h.hashes[args[1]][args[2]]++
		return intReply(h.hashes[args[1]][args[2]])
	case "HLEN":
		return intReply(int64(len(h.hashes[args[1]])))
	case "HDEL":
		delete(h.hashes[args[1]], args[2])
		return intReply(1)
	case "HGETALL":
		var out []scripting.Reply
		for k, v := range h.hashes[args[1]] {
			out = append(out, scripting.Reply{Kind: scripting.ReplyString, Str: k}, scripting.Reply{Kind: scripting.ReplyString, Str: strconv.FormatInt(v, 10)})
		}
		return scripting.Reply{Kind: scripting.ReplyArray, Elems: out}
	case "DEL":
		delete(h.hashes, args[1])
		return intReply(1)
	case "SADD":
		if h.sets[args[1]] == nil {
			h.sets[args[1]] = map[string]bool{}
		}
		h.sets[args[1]][args[2]] = true
		return intReply(1)
	case "SREM":
		delete(h.sets[args[1]], args[2])
		return intReply(1)
	case "SMEMBERS":
		var out []scripting.Reply
		for m := range h.sets[args[1]] {
			out = append(out, scripting.Reply{Kind: scripting.ReplyString, Str: m})
		}
		return scripting.Reply{Kind: scripting.ReplyArray, Elems: out}
	case "RPUSH":
		h.pushed = append(h.pushed, slices.Clone(args[2:]))
		return intReply(int64(len(h.pushed)))
	}
	return scripting.ErrorReply("ERR unknown command " + args[0])
}

// windowModule has a window trigger on click:* incrby, one second long,
// whose script pushes its KEYS, then ARGV.
func windowModule(t *testing.T) (*testModule, *hashServer) {
	t.Helper()
	tm := newTestModule(t)
	srv := newHashServer()
	tm.ctx.onCall = srv.call
	tm.mustDo(t, "SCRIPT", "SET", "clicks", `
		local out = {}
		for i, k in ipairs(KEYS) do out[#out + 1] = k end
		for i, a in ipairs(ARGV) do out[#out + 1] = a end
		server.call('RPUSH', 'log', unpack(out))`)
	tm.mustDo(t, "TRIGGER", "SET", "click:*", "incrby", "clicks", "WINDOW", "1000")
	return tm, srv
}

// Ensure a window trigger gathers its events, not running its script, and
// once the window ended runs it once with the keys, their counts and the
// window's bounds, consuming what it gathered.
func TestWindowGathersAndRunsOnce(t *testing.T) {
	tm, srv := windowModule(t)
	for _, k := range []string{"click:a", "click:b", "click:a", "click:a"} {
		tm.ctx.event("incrby", k)
	}
	assert.Empty(t, srv.pushed, "nothing runs within the window")
	require.Len(t, srv.hashes, 1)
	var wk string
	for k := range srv.hashes {
		wk = k
	}
	_, ms, n, ok := parseWindowKey(wk)
	require.True(t, ok, wk)
	assert.Equal(t, int64(1000), ms)
	start := n * ms
	assert.Equal(t, time.Duration(0), tm.Tick(tm.ctx, time.UnixMilli(start+1000)))
	assert.Equal(t, cronTick, tm.Tick(tm.ctx, time.UnixMilli(start+1000)))
	assert.Equal(t, [][]string{{"click:a", "click:b", "3", "1", strconv.FormatInt(start, 10), strconv.FormatInt(start+1000, 10)}}, srv.pushed)
	assert.Empty(t, srv.hashes, "consumed")
	assert.Empty(t, srv.sets[windowIndexKey])
	list := tm.ctx.do("TRIGGER", "LIST").([]any)[0].(map[string]any)
	assert.Equal(t, int64(1000), list["window_ms"])
	assert.Equal(t, int64(4), list["gathered"])
	assert.Equal(t, int64(1), list["runs"])
}

// Ensure a window holds at most window-max-keys keys: an event of one more
// key is not counted, with an error saying why.
func TestWindowMaxKeys(t *testing.T) {
	tm, srv := windowModule(t)
	require.NoError(t, tm.ApplyArgs([]string{"window-max-keys", "2"}))
	for _, k := range []string{"click:a", "click:b", "click:c", "click:a"} {
		tm.ctx.event("incrby", k)
	}
	for _, h := range srv.hashes {
		assert.Equal(t, map[string]int64{"click:a": 2, "click:b": 1}, h)
	}
	tr := tm.Triggers()[0]
	assert.Equal(t, uint64(1), tr.Errors)
	assert.Contains(t, tr.LastError, "this window already holds 2 keys (iungo.window-max-keys)")
	assert.Equal(t, uint64(1), tm.Stats().WindowOverflows)
}

// Ensure a replica gathers nothing and runs nothing; once promoted it
// runs what its primary gathered.
func TestWindowOnReplica(t *testing.T) {
	tm, srv := windowModule(t)
	tm.ctx.event("incrby", "click:a") // on the primary
	tm.ctx.flags = FlagReplica
	tm.ctx.event("incrby", "click:b")
	far := time.Now().Add(time.Hour)
	tm.Tick(tm.ctx, far)
	assert.Empty(t, srv.pushed)
	tm.ctx.flags = FlagPrimary
	tm.RoleChanged()
	tm.Tick(tm.ctx, far)
	require.Len(t, srv.pushed, 1)
	assert.Equal(t, []string{"click:a", "1"}, srv.pushed[0][:2])
}

// Ensure the module's own keys fire no trigger, a window of a removed
// trigger is dropped, and bad windows are refused.
func TestWindowEdges(t *testing.T) {
	tm, srv := windowModule(t)
	tm.mustDo(t, "TRIGGER", "SET", "*", "hincrby", "clicks")
	tm.ctx.event("incrby", "click:a")
	tm.ctx.event("hincrby", windowKey("x", 1000, 1))
	assert.Len(t, srv.pushed, 0, "no run for the module's own key")
	tm.mustDo(t, "TRIGGER", "UNSET", "click:*", "incrby")
	tm.Tick(tm.ctx, time.Now().Add(time.Hour))
	assert.Empty(t, srv.pushed)
	assert.Empty(t, srv.hashes, "dropped")
	for _, w := range []string{"99", "86400001", "x", "-5"} {
		assert.Contains(t, tm.ctx.do("TRIGGER", "SET", "k", "set", "clicks", "WINDOW", w), "-ERR", w)
	}
	assert.Contains(t, tm.ctx.do("TRIGGER", "SET", "k", "set", "clicks", "WINDOWS", "100"), "usage")
}

// Ensure a window trigger travels in snapshots with its window, and the
// digest of a configuration without windows is what it was.
func TestWindowSnapshot(t *testing.T) {
	tm, _ := windowModule(t)
	got, err := config.Decode(tm.store.snapshot())
	require.NoError(t, err)
	require.Len(t, got.Triggers, 1)
	assert.Equal(t, int64(1000), got.Triggers[0].Window)
	other := newTestModule(t)
	require.NoError(t, other.Replace(got, "rdb"))
	assert.Equal(t, time.Second, other.Triggers()[0].Window)
	noWindow := got
	noWindow.Triggers = []config.TriggerDef{got.Triggers[0]}
	noWindow.Triggers[0].Window = 0
	assert.NotEqual(t, config.Digest(got), config.Digest(noWindow))
}
