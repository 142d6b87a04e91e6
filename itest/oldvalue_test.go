package itest

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/valkey-io/valkey-go"

	"github.com/valkey-iungo/valkey-iungo/internal/vtest"
)

// oldValueScript records what server.old_value() gave, as text, in
// seen:<event>:<key>.
const oldValueScript = `
local v, why = server.old_value()
local out
if type(v) == 'table' then out = 'T:' .. table.concat(v, ',')
elseif v == nil then out = 'nil:' .. tostring(why)
else out = type(v) .. ':' .. tostring(v) end
server.call('SET', 'seen:' .. ARGV[1] .. ':' .. KEYS[1], out)`

// Ensure server.old_value() gives what a key held when an event removed or
// replaced it, for every type read, and says why when it was not kept.
func TestOldValueIntegration(t *testing.T) {
	s := vtest.Start(t, vtest.Options{})
	s.MustDo("IUNGO", "SCRIPT", "SET", "old", oldValueScript)
	s.MustDo("IUNGO", "TRIGGER", "SET", "k:*", "del,expired,set,rename_from,rename_to,copy_to,restore,sunionstore,hdel", "old")
	seen := func(event, key string) string { return str(t, s, "GET", "seen:"+event+":"+key) }

	s.MustDo("SET", "k:s", "hello")
	s.MustDo("SET", "k:s", "world") // an overwrite
	assert.Equal(t, "string:hello", seen("set", "k:s"))
	s.MustDo("DEL", "k:s")
	assert.Equal(t, "string:world", seen("del", "k:s"))

	s.MustDo("RPUSH", "k:l", "a", "b", "c")
	s.MustDo("DEL", "k:l")
	assert.Equal(t, "T:a,b,c", seen("del", "k:l"))

	s.MustDo("HSET", "k:h", "player", "p1", "room", "r9")
	s.MustDo("HDEL", "k:h", "player", "room") // empties it: hdel, then del
	assert.Equal(t, "nil:nil", seen("hdel", "k:h"), "hdel does not report the key going")
	// The fields went before the key: what it held then was nothing.
	assert.Equal(t, "T:", seen("del", "k:h"))
	s.MustDo("HSET", "k:h", "player", "p1", "room", "r9")
	s.MustDo("DEL", "k:h")
	assert.Equal(t, "T:player,p1,room,r9", seen("del", "k:h"))

	s.MustDo("SADD", "k:set", "x")
	s.MustDo("DEL", "k:set")
	assert.Equal(t, "T:x", seen("del", "k:set"))

	s.MustDo("ZADD", "k:z", "2", "b", "1", "a", "1", "c")
	s.MustDo("DEL", "k:z")
	assert.Equal(t, "T:a,1,c,1,b,2", seen("del", "k:z"))

	s.MustDo("SET", "k:r", "moved")
	s.MustDo("RENAME", "k:r", "other")
	assert.Equal(t, "string:moved", seen("rename_from", "k:r"))

	s.MustDo("SET", "k:to", "was here")
	s.MustDo("SET", "k:from", "new")
	s.MustDo("RENAME", "k:from", "k:to")
	assert.Equal(t, "string:was here", seen("rename_to", "k:to"))
	assert.Equal(t, "string:new", seen("rename_from", "k:from"))
	s.MustDo("SET", "k:c", "copied over")
	s.MustDo("COPY", "k:to", "k:c", "REPLACE")
	assert.Equal(t, "string:copied over", seen("copy_to", "k:c"))
	dump := str(t, s, "DUMP", "k:c")
	s.MustDo("RESTORE", "k:c", "0", dump, "REPLACE")
	assert.Equal(t, "string:new", seen("restore", "k:c"))
	s.MustDo("SADD", "k:u", "old")
	s.MustDo("SADD", "src", "fresh")
	s.MustDo("SUNIONSTORE", "k:u", "src")
	assert.Equal(t, "T:old", seen("sunionstore", "k:u"))

	s.MustDo("SET", "k:e", "gone soon", "PX", "20")
	vtest.Eventually(t, 5*time.Second, "the key expires and its trigger runs", func() bool {
		_ = s.Do("GET", "k:e").Error() // expire it on access
		return seen("expired", "k:e") != "(nil)"
	})
	assert.Equal(t, "string:gone soon", seen("expired", "k:e"))

	s.MustDo("SET", "k:n", "1")
	assert.Equal(t, "nil:nil", seen("set", "k:n"), "a new key had no value")

	// Several keys in one EVAL, and in one MULTI.
	s.MustDo("SET", "k:m1", "one")
	s.MustDo("SET", "k:m2", "two")
	s.MustDo("EVAL", "redis.call('DEL', 'k:m1') redis.call('DEL', 'k:m2')", "0")
	assert.Equal(t, "string:one", seen("del", "k:m1"))
	assert.Equal(t, "string:two", seen("del", "k:m2"))
	s.MustDo("SET", "k:t1", "a")
	s.MustDo("SET", "k:t2", "b")
	c := newClient(t, s)
	defer c.Close()
	cmds := valkey.Commands{c.B().Multi().Build(), c.B().Del().Key("k:t1").Build(), c.B().Set().Key("k:t2").Value("c").Build(), c.B().Exec().Build()}
	for _, r := range c.DoMulti(context.Background(), cmds...) {
		require.NoError(t, r.Error())
	}
	assert.Equal(t, "string:a", seen("del", "k:t1"))
	assert.Equal(t, "string:b", seen("set", "k:t2"))

	// FLUSHALL raises no per-key event: nothing fires.
	s.MustDo("SET", "k:f", "x")
	s.MustDo("FLUSHALL")
	assert.Equal(t, int64(0), num(t, s, "DBSIZE"), "no trigger wrote after FLUSHALL")

	// The size limit.
	s.MustDo("CONFIG", "SET", "iungo.old-value-max-bytes", "4")
	s.MustDo("SET", "k:big", "12345")
	s.MustDo("DEL", "k:big")
	assert.Equal(t, "nil:not kept: larger than iungo.old-value-max-bytes (4)", seen("del", "k:big"))

	// Streams are not read.
	s.MustDo("CONFIG", "SET", "iungo.old-value-max-bytes", "1048576")
	s.MustDo("XADD", "k:x", "*", "f", "v")
	s.MustDo("DEL", "k:x")
	assert.True(t, strings.HasPrefix(seen("del", "k:x"), "nil:not kept: streams"), seen("del", "k:x"))
	assert.Equal(t, "0", field(t, triggerList(t, s)[0], "errors"), field(t, triggerList(t, s)[0], "last_error"))
}
