package itest

import (
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/valkey-iungo/valkey-iungo/internal/vtest"
)

// luaCases are Lua 5.1 and Valkey scripting behaviours a ported EVAL
// script relies on; each is the body of a function whose results (or
// error) are compared. Drawn from the Lua 5.1 reference manual (coercion
// §2.2.1, the for statement §2.4.5, the base, string, table and math
// libraries §5) and Valkey's scripting documentation (pcall, globals,
// version constants, SORT for script clients).
var luaCases = []string{
	// §2.2.1: numeric strings where numbers are expected.
	`return string.sub('hello', '2', '3')`,
	`return string.rep('ab', '3')`,
	`return string.byte('A', '1')`,
	`return string.char('72', '105')`,
	`return string.find('hello', 'l', '1')`,
	`return string.match('key:42', '(%d+)', '1')`,
	`return string.gsub('aaa', 'a', 'b', '2')`,
	`local t = {} table.insert(t, '1', 'x') return t[1]`,
	`return table.concat({1, 2, 3}, ',', '1', '2')`,
	`local t = {1, 2, 3} return table.remove(t, '1'), #t`,
	`return math.floor('3.7'), math.max('3', 2), math.abs('-2'), math.fmod('7', '3'), math.sqrt('16')`,
	`return math.ldexp('1', '3'), math.pow('2', '10'), math.min('5', '4')`,
	`math.randomseed('42') return type(math.random(1, '3'))`,
	`return select('2', 'a', 'b')`,
	`return ('10') + 1, '3' * '4', -'2', '10' < '9', 10 == '10'`,
	`return unpack({1, 2, 3}, '2')`,
	// §2.4.5: the for statement converts its bounds.
	`local n = 0 for i = 1, '3' do n = n + i end return n`,
	`local n = 0 for i = '1', 3, '1' do n = n + i end return n`,
	`redis.call('SET', KEYS[1] .. ':n', '4') local n = 0 for i = 1, redis.call('GET', KEYS[1] .. ':n') do n = n + i end return n`,
	`for i = 1, 'x' do end`,
	`for i = {}, 1 do end`,
	`for i = 1, 2, false do end`,
	// tonumber and numbers.
	`return tonumber('1e1'), tonumber('2E2'), tonumber('5e-1'), tonumber('-0x10'), tonumber(' 12 ')`,
	`return tonumber('12a'), tonumber('0x'), tonumber('1e'), tonumber('.5'), tonumber('5.')`,
	`return tonumber('ff', 16), tonumber('zz', 36), tonumber('8', 8), tonumber('101', 2)`,
	`return math.huge, -math.huge, math.huge > 1e308`,
	`return tostring(1e15), tostring(1e16), tostring(0.1), tostring(-0.5), tostring(100)`,
	`return math.floor(-0.5), math.ceil(-0.5), math.modf(3.5), math.frexp(8)`,
	`return math.log10(1000), math.exp(0), math.mod(7, 3), math.cosh(0)`,
	`return string.format('%d|%5.1f|%s|%x|%q', '42', '3.14159', 12, 255, 'a\nb')`,
	`return string.format('%5s|%-5s|%05d', 'a', 'b', 42)`,
	// §5.1: the base library.
	`return select('#', 1, nil, 3), select(-1, 'a', 'b')`,
	`local t = {} for i = 1, 7990 do t[i] = i end return select('#', unpack(t))`,
	`local t = {} for i = 1, 9000 do t[i] = i end return select('#', unpack(t))`,
	`return pcall(error, 'boom')`,
	`return pcall(error, 'boom', 0)`,
	`local function f() error('two', 2) end local ok, e = pcall(function() f() end) return e`,
	`return pcall(error, {err = 'x'})`,
	`return pcall(error)`,
	`error('plain')`,
	`error({err = 'ERR as table'})`,
	`return type(gcinfo()), type(_VERSION)`,
	`return rawequal('a', 'a'), rawget({5}, 1), next({}, nil)`,
	`return type(xpcall(function() error('x') end, function(m) return 'handled' end))`,
	// §5.5: table.
	`return table.getn({1, 2, 3}), table.maxn({[5] = 1, [2] = 1})`,
	`local s = 0 table.foreach({a = 1, b = 2}, function(k, v) s = s + v end) return s`,
	`local s = '' table.foreachi({'x', 'y'}, function(i, v) s = s .. i .. v end) return s`,
	`return table.foreachi({'x', 'y'}, function(i, v) if i == 2 then return v end end)`,
	`table.setn({}, 1)`,
	`local t = {3, 1, 2} table.sort(t) return table.concat(t, ',')`,
	`local t = {3, 1, 2} table.sort(t, function(a, b) return a > b end) return table.concat(t, ',')`,
	// Globals, as Valkey protects them.
	`return undefined_variable`,
	`sever.call('GET', 'x')`,
	`x = 1`,
	`function helper() end`,
	`_G.y = 1`,
	`rawset(_G, 'z', 1)`,
	`setmetatable(_G, {})`,
	`KEYS = {}`,
	`string.rep = nil`,
	`return rawget(_G, 'nothing')`,
	// pcall and the server library.
	`redis.call('SET', KEYS[1] .. ':s', 'v') return pcall(redis.call, 'LPUSH', KEYS[1] .. ':s', 'v')`,
	`redis.call('SET', KEYS[1] .. ':s', 'v') local ok, e = pcall(function() redis.call('LPUSH', KEYS[1] .. ':s', 'v') end) return ok, type(e), e`,
	`return pcall(redis.call, 'NOSUCHCOMMAND')`,
	`return redis.pcall('GET')['err']`,
	`return pcall(redis.call)`,
	`return redis.call('PING')['ok'], redis.status_reply('FINE')['ok'], redis.error_reply('bad')['err']`,
	`return redis.REDIS_VERSION, redis.REDIS_VERSION_NUM, server.SERVER_NAME, server.VALKEY_VERSION, server.VALKEY_VERSION_NUM`,
	`return type(redis.LOG_WARNING), redis.LOG_DEBUG, redis.LOG_VERBOSE, redis.LOG_NOTICE, redis.LOG_WARNING`,
	`return server.acl_check_cmd('GET', 'x'), server.acl_check_cmd('SET', 'x', 'y')`,
	`return pcall(server.acl_check_cmd, 'NOSUCHCOMMAND')`,
	`redis.call('DEL', KEYS[1] .. ':set') redis.call('SADD', KEYS[1] .. ':set', 'c', 'a', 'b', 'e', 'd') return redis.call('SORT', KEYS[1] .. ':set', 'BY', 'nosort')`,
	`redis.call('DEL', KEYS[1] .. ':set') redis.call('SADD', KEYS[1] .. ':set', 'c', 'a', 'b') return redis.call('SORT', KEYS[1] .. ':set', 'BY', 'nosort', 'DESC', 'LIMIT', '0', '2')`,
	`redis.call('DEL', KEYS[1] .. ':list') redis.call('RPUSH', KEYS[1] .. ':list', 'c', 'a', 'b') return redis.call('SORT', KEYS[1] .. ':list', 'BY', 'nosort')`,
	// cjson
	`return cjson.encode({1, 2, 'x'}), cjson.decode('{"a":[1,2]}').a[2]`,
	`return pcall(cjson.decode, '{bad')`,
}

// luaHarness runs each case in its own pcall and writes one line per case
// to KEYS[1] .. ':out'. Error positions name the chunk ("user_script"
// under EVAL, the script's name as a trigger): they are written as "@:".
const luaHarness = `
local function ser(v)
  local t = type(v)
  if t == 'string' then return 's:' .. v:gsub('^[%w_]+:(%d+):', '@:%1:'):gsub('\n', '\\n') end
  if t == 'number' then return 'n:' .. string.format('%.14g', v) end
  if t == 'table' then
    local keys = {}
    for k in pairs(v) do keys[#keys + 1] = tostring(k) end
    table.sort(keys)
    local parts = {}
    for _, k in ipairs(keys) do
      local x = v[k]
      if x == nil then x = v[tonumber(k)] end
      parts[#parts + 1] = k .. '=' .. ser(x)
    end
    return '{' .. table.concat(parts, ',') .. '}'
  end
  return t .. ':' .. tostring(v)
end
local function pack(...) return select('#', ...), {...} end
local out = {}
for i, case in ipairs(CASES) do
  local n, r = pack(pcall(case))
  local parts = {}
  for j = 1, n do parts[j] = ser(r[j]) end
  out[i] = i .. ' ' .. table.concat(parts, ' ')
end
redis.call('SET', KEYS[1] .. ':out', table.concat(out, '\n'))
`

func luaCasesScript() string {
	var b strings.Builder
	b.WriteString("local CASES = {\n")
	for _, c := range luaCases {
		b.WriteString("function() " + c + "\nend,\n")
	}
	b.WriteString("}\n")
	b.WriteString(luaHarness)
	return b.String()
}

// Ensure each case gives a trigger what it gives EVAL on the same server.
func TestLuaAsEvalIntegration(t *testing.T) {
	s := vtest.Start(t, vtest.Options{})
	s.MustDo("CONFIG", "SET", "iungo.script-timeout-ms", "5000") // many cases in one run
	script := luaCasesScript()
	s.MustDo("EVAL", script, "1", "go", "set", "0")
	viaEval := str(t, s, "GET", "go:out")

	s.MustDo("IUNGO", "SCRIPT", "SET", "cases", script)
	s.MustDo("IUNGO", "TRIGGER", "SET", "go", "set", "cases")
	s.MustDo("DEL", "go:out")
	s.MustDo("SET", "go", "1")
	require.Equal(t, "0", field(t, triggerList(t, s)[0], "errors"), field(t, triggerList(t, s)[0], "last_error"))
	viaTrigger := str(t, s, "GET", "go:out")

	evalLines, triggerLines := byCase(viaEval), byCase(viaTrigger)
	require.Len(t, evalLines, len(luaCases))
	for i, c := range luaCases {
		assert.Equal(t, evalLines[i+1], triggerLines[i+1], fmt.Sprintf("case %d: %s", i+1, c))
	}
}

// byCase splits the harness output by case number.
func byCase(out string) map[int]string {
	m := map[int]string{}
	for _, line := range strings.Split(out, "\n") {
		var i int
		if _, err := fmt.Sscanf(line, "%d ", &i); err == nil {
			m[i] = line
		}
	}
	return m
}

// Ensure a script can be tried on a real server: TRIGGER MATCH says what
// would fire, SCRIPT RUN ... DRYRUN writes nothing and lists the writes,
// and SCRIPT RUN without it writes as a trigger would.
func TestTryScriptIntegration(t *testing.T) {
	s := vtest.Start(t, vtest.Options{})
	s.MustDo("IUNGO", "SCRIPT", "SET", "points", `
local user = server.call('HGET', KEYS[1], 'user')
server.log(server.LOG_NOTICE, 'crediting ' .. user)
server.call('INCRBY', 'points:' .. user, 10)
server.call('PUBLISH', 'credited', user)
return server.call('GET', 'points:' .. user)`)
	s.MustDo("IUNGO", "TRIGGER", "SET", "order:*", "hset", "points")
	s.MustDo("IUNGO", "TRIGGER", "SET", "order:*", "del", "points")
	s.MustDo("IUNGO", "TRIGGER", "DISABLE", "order:*", "del")
	s.MustDo("HSET", "order:1", "user", "ann")
	s.MustDo("DEL", "points:ann")

	matches, err := s.Do("IUNGO", "TRIGGER", "MATCH", "order:1", "hset").ToArray()
	require.NoError(t, err)
	require.Len(t, matches, 2)
	first, _ := matches[0].AsMap()
	second, _ := matches[1].AsMap()
	assert.Equal(t, "1", field(t, first, "fires"))
	assert.Equal(t, "0", field(t, second, "fires"))
	assert.Equal(t, "disabled", field(t, second, "why_not"))

	reply, err := s.Do("IUNGO", "SCRIPT", "RUN", "points", "order:1", "hset", "DRYRUN").AsMap()
	require.NoError(t, err)
	assert.Equal(t, "(nil)", field(t, reply, "returned"))
	assert.Equal(t, "", field(t, reply, "error"))
	w := reply["writes"]
	writes, _ := w.AsStrSlice()
	assert.Equal(t, []string{"INCRBY points:ann 10", "PUBLISH credited ann"}, writes)
	l := reply["logs"]
	logs, _ := l.AsStrSlice()
	assert.Equal(t, []string{"notice: crediting ann"}, logs)
	assert.Equal(t, int64(0), num(t, s, "EXISTS", "points:ann"), "a dry run writes nothing")

	reply, err = s.Do("IUNGO", "SCRIPT", "RUN", "points", "order:1", "hset").AsMap()
	require.NoError(t, err)
	assert.Equal(t, `"10"`, field(t, reply, "returned"))
	assert.Equal(t, "10", str(t, s, "GET", "points:ann"))

	s.MustDo("IUNGO", "SCRIPT", "SET", "typo", "local n = 1\nsever.call('GET', KEYS[1])")
	reply, err = s.Do("IUNGO", "SCRIPT", "RUN", "typo", "order:1", "DRYRUN").AsMap()
	require.NoError(t, err)
	assert.Equal(t, `script "typo": line 2: Script attempted to access nonexistent global variable 'sever'`, field(t, reply, "error"))
}
