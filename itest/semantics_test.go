package itest

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/valkey-iungo/valkey-iungo/internal/vtest"
)

// compareScript records, one line each, what replies, errors, argument
// numbers and cjson look like to a script. It uses redis.* so that it runs
// unchanged as EVAL on every Valkey version.
const compareScript = `
local out = {}
local function add(label, v) out[#out + 1] = label .. '=' .. cjson.encode(v) end
-- Valkey's error tables may carry internal fields; scripts read err.
local function adderr(label, e) add(label, {err = e.err}) end
redis.call('DEL', 'cmp:s', 'cmp:h', 'cmp:l', 'cmp:n', 'cmp:z')
add('set', redis.call('SET', 'cmp:s', 'v'))
add('get', redis.call('GET', 'cmp:s'))
add('getnil', redis.call('GET', 'cmp:none'))
add('incr', redis.call('INCR', 'cmp:n'))
add('hset', redis.call('HSET', 'cmp:h', 'f', 'v'))
add('hgetall', redis.call('HGETALL', 'cmp:h'))
add('lrange', redis.call('LRANGE', 'cmp:l', 0, -1))
add('mget', redis.call('MGET', 'cmp:s', 'cmp:none'))
add('zadd', redis.call('ZADD', 'cmp:z', 1.5, 'a', 2, 'b'))
add('zrange', redis.call('ZRANGE', 'cmp:z', 0, -1, 'WITHSCORES'))
add('type', redis.call('TYPE', 'cmp:s'))
adderr('pcall', redis.pcall('INCR', 'cmp:s'))
adderr('wrongtype', redis.pcall('HGET', 'cmp:s', 'f'))
adderr('unknown', redis.pcall('NOSUCHCOMMAND'))
adderr('arity', redis.pcall('GET'))
adderr('noscript', redis.pcall('SUBSCRIBE', 'ch'))
add('errreply', redis.error_reply('MY custom'))
add('errreply2', redis.error_reply('plain'))
add('status', redis.status_reply('FINE'))
for i, f in ipairs({0.1, 1e21, 1.5e-7, 2^53, -2.5, 1/3, 123456789.125, 1e-5, 100, -0.0}) do
  redis.call('SET', 'cmp:f', f)
  add('num' .. i, redis.call('GET', 'cmp:f'))
end
add('enc', {1, 2.5, 'x/y"z', true, false, {a = 1}, {}, 1/3, 1e15, -0.5, '\1'})
add('dec', cjson.decode('[1,"a",null,{"b":2},[],"\\u00e9",1e2]'))
add('sparse', {1, nil, 3})
redis.call('SET', 'cmp:out', table.concat(out, '\n'))
`

// Ensure a trigger script sees replies, errors, numbers and cjson exactly as
// the same script does under Valkey's own EVAL.
func TestMatchesEvalIntegration(t *testing.T) {
	s := vtest.Start(t, vtest.Options{})
	s.MustDo("EVAL", compareScript, "0")
	// Error words differ by version (7.2, 8.0, 9.1): the module follows.
	viaEval := str(t, s, "GET", "cmp:out")

	s.MustDo("IUNGO", "SCRIPT", "SET", "compare", compareScript)
	s.MustDo("IUNGO", "TRIGGER", "SET", "go", "set", "compare")
	s.MustDo("DEL", "cmp:out")
	s.MustDo("SET", "go", "1")
	viaTrigger := str(t, s, "GET", "cmp:out")
	require.Equal(t, "0", field(t, triggerList(t, s)[0], "errors"), field(t, triggerList(t, s)[0], "last_error"))

	evalLines, triggerLines := strings.Split(viaEval, "\n"), strings.Split(viaTrigger, "\n")
	require.Len(t, triggerLines, len(evalLines))
	for i := range evalLines {
		assert.Equal(t, evalLines[i], triggerLines[i])
	}
}

// Ensure a writable replica never runs triggers: not for what its primary
// replicates (which already carries the scripts' writes), not for its own
// writes. The configuration itself reaches it through replication.
func TestWritableReplicaIntegration(t *testing.T) {
	primary := vtest.Start(t, vtest.Options{})
	replica := vtest.Start(t, vtest.Options{Config: []string{
		"replicaof 127.0.0.1 " + portOf(primary), "replica-read-only no",
	}})
	vtest.Eventually(t, 10*time.Second, "replica linked", func() bool {
		return strings.Contains(str(t, replica, "INFO", "replication"), "master_link_status:up")
	})
	primary.MustDo("IUNGO", "SCRIPT", "SET", "count", "redis.call('INCR', 'counter')")
	primary.MustDo("IUNGO", "TRIGGER", "SET", "k:*", "set", "count")
	for _, k := range []string{"k:1", "k:2", "k:3"} {
		primary.MustDo("SET", k, "v")
	}
	require.Equal(t, int64(1), num(t, primary, "WAIT", "1", "5000"))
	assert.Equal(t, "3", str(t, primary, "GET", "counter"))
	assert.Equal(t, "3", str(t, replica, "GET", "counter"), "replicated once, not run again")
	assert.Len(t, triggerList(t, replica), 1, "the trigger reached the replica")

	replica.MustDo("SET", "k:local", "v")
	assert.Equal(t, "3", str(t, replica, "GET", "counter"), "no trigger runs on a replica")
	err := replica.Do("IUNGO", "TRIGGER", "SET", "x:*", "set", "count").Error()
	require.Error(t, err)
	assert.Contains(t, err.Error(), "READONLY")
}

func portOf(s *vtest.Server) string {
	_, port, _ := strings.Cut(s.Addr, ":")
	return port
}
