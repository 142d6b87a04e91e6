package itest

import (
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/valkey-iungo/valkey-iungo/internal/vtest"
)

// configState is everything a refused command must leave as it was.
func configState(t *testing.T, s *vtest.Server) string {
	t.Helper()
	var b strings.Builder
	for _, cmd := range [][]string{
		{"IUNGO", "SCRIPT", "LIST"}, {"IUNGO", "TRIGGER", "LIST"}, {"IUNGO", "EVENT", "LIST"}, {"IUNGO", "DUMP"},
	} {
		m := s.MustDo(cmd...)
		b.WriteString(m.String() + "\n")
	}
	return b.String()
}

// Ensure every IUNGO command works through a real server, with the replies
// a client sees.
func TestCommandsIntegration(t *testing.T) {
	s := vtest.Start(t, vtest.Options{})
	assert.Equal(t, "OK", str(t, s, "IUNGO", "SCRIPT", "SET", "credit", "return 1"))
	assert.Equal(t, "return 1", str(t, s, "IUNGO", "SCRIPT", "GET", "credit"))
	assert.Equal(t, "OK", str(t, s, "IUNGO", "TRIGGER", "SET", "order:*", "set,hset", "credit"))
	assert.Equal(t, "OK", str(t, s, "iungo", "trigger", "set", "order:*", "HSET,set", "credit"), "same trigger, normalised")
	list := triggerList(t, s)
	require.Len(t, list, 1)
	assert.Equal(t, "hset,set", field(t, list[0], "events"))
	assert.Equal(t, "1", field(t, list[0], "enabled"))

	scripts, err := s.Do("IUNGO", "SCRIPT", "LIST").ToArray()
	require.NoError(t, err)
	require.Len(t, scripts, 1)
	sm, err := scripts[0].AsMap()
	require.NoError(t, err)
	assert.Equal(t, "credit", field(t, sm, "name"))
	assert.Equal(t, "1", field(t, sm, "triggers"))

	assert.Equal(t, "OK", str(t, s, "IUNGO", "TRIGGER", "DISABLE", "order:*", "hset,set"))
	assert.Equal(t, "0", field(t, triggerList(t, s)[0], "enabled"))
	assert.Equal(t, "OK", str(t, s, "IUNGO", "TRIGGER", "ENABLE", "order:*", "hset,set"))
	assert.Equal(t, "OK", str(t, s, "IUNGO", "EVENT", "UNSET", "hash", "zset"))
	classes, err := s.Do("IUNGO", "EVENT", "LIST").AsStrSlice()
	require.NoError(t, err)
	assert.Equal(t, []string{"generic", "string", "list", "set", "stream", "expired", "evicted", "new", "module"}, classes)
	assert.Equal(t, "OK", str(t, s, "IUNGO", "EVENT", "SET", "h,z"))
	assert.Equal(t, "OK", str(t, s, "IUNGO", "PAUSE"))
	assert.Equal(t, "OK", str(t, s, "IUNGO", "RESUME"))
	info, err := s.Do("IUNGO", "INFO").AsMap()
	require.NoError(t, err)
	assert.Equal(t, "1", field(t, info, "triggers"))
	assert.Contains(t, str(t, s, "INFO", "iungo"), "iungo_triggers:1")
	help, err := s.Do("IUNGO", "HELP").AsStrSlice()
	require.NoError(t, err)
	assert.Contains(t, help, "TRIGGER SET <key-pattern> <events> <script> [WINDOW <ms>]")
	assert.Equal(t, "OK", str(t, s, "IUNGO", "TRIGGER", "UNSET", "order:*", "set,hset"))
	assert.Equal(t, "OK", str(t, s, "IUNGO", "SCRIPT", "UNSET", "credit"))
	assert.Empty(t, triggerList(t, s))
}

// Ensure bad input gets a clear error through a real server and changes
// nothing.
func TestBadInputIntegration(t *testing.T) {
	s := vtest.Start(t, vtest.Options{})
	s.MustDo("IUNGO", "SCRIPT", "SET", "credit", "return 1")
	s.MustDo("IUNGO", "TRIGGER", "SET", "order:*", "hset", "credit")
	before := configState(t, s)
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"IUNGO"}, "wrong number of arguments"},
		{[]string{"IUNGO", "BOGUS"}, "unknown subcommand"},
		{[]string{"IUNGO", "SCRIPT", "SET", "credit", "return ("}, `script "credit" does not compile: line 1`},
		{[]string{"IUNGO", "SCRIPT", "SET", "bad name", "return 1"}, "use letters, digits"},
		{[]string{"IUNGO", "SCRIPT", "UNSET", "credit"}, "is used by triggers"},
		{[]string{"IUNGO", "SCRIPT", "GET", "nope"}, `unknown script "nope"`},
		{[]string{"IUNGO", "TRIGGER", "SET", "", "set", "credit"}, "empty key pattern"},
		{[]string{"IUNGO", "TRIGGER", "SET", "a:*", "sett", "credit"}, `unknown event "sett"`},
		{[]string{"IUNGO", "TRIGGER", "SET", "a:*", "set", "nope"}, `unknown script "nope"`},
		{[]string{"IUNGO", "TRIGGER", "UNSET", "a:*", "set"}, "no trigger for pattern"},
		{[]string{"IUNGO", "TRIGGER", "ENABLE"}, "usage: IUNGO TRIGGER ENABLE <key-pattern> <events>"},
		{[]string{"IUNGO", "EVENT", "SET", "bogus"}, `unknown event class "bogus"`},
		{[]string{"IUNGO", "SCRIPT", "SET", "multi", "x = \n\n = 1"}, "line 3"},
	} {
		err := s.Do(c.args...).Error()
		require.Error(t, err, "%q", c.args)
		assert.Contains(t, err.Error(), c.want, "%q", c.args)
		assert.NotContains(t, err.Error(), "\n", "error replies stay on one line")
		assert.Equal(t, before, configState(t, s), "%q changed the configuration", c.args)
	}
}

// Ensure IUNGO cannot be called from EVAL, where it would change the
// configuration in the middle of a script.
func TestNotFromEvalIntegration(t *testing.T) {
	s := vtest.Start(t, vtest.Options{})
	err := s.Do("EVAL", "return redis.call('IUNGO', 'PAUSE')", "0").Error()
	require.Error(t, err)
	assert.Contains(t, err.Error(), "not allowed from script")
	info, err := s.Do("IUNGO", "INFO").AsMap()
	require.NoError(t, err)
	assert.Equal(t, "0", field(t, info, "paused"))
}

// Ensure the redis_exporter recipe of the README gives every numeric INFO
// iungo field as a number, and nothing redis_exporter would refuse.
func TestExporterScriptIntegration(t *testing.T) {
	s := vtest.Start(t, vtest.Options{})
	s.MustDo("IUNGO", "SCRIPT", "SET", "count", "server.call('INCR', 'n')")
	s.MustDo("IUNGO", "TRIGGER", "SET", "k:*", "set", "count")
	s.MustDo("SET", "k:1", "x")
	pairs, err := s.Do("EVAL", example(t, "redis_exporter_iungo.lua"), "0").AsStrSlice()
	require.NoError(t, err)
	require.Zero(t, len(pairs)%2)
	got := map[string]float64{}
	for i := 0; i < len(pairs); i += 2 {
		v, err := strconv.ParseFloat(pairs[i+1], 64)
		require.NoError(t, err, pairs[i])
		got[pairs[i]] = v
	}
	assert.Equal(t, 1.0, got["iungo_runs"])
	assert.Equal(t, 1.0, got["iungo_triggers"])
	assert.Contains(t, got, "iungo_errors")
	assert.Contains(t, got, "iungo_revision")
	assert.NotContains(t, got, "iungo_mode", "text fields are left out")
}
