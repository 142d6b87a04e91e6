package scripting

import (
	"bufio"
	"os"
	"runtime/metrics"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// serLua prints a call's results the way testdata/lua51-patterns.tsv
// recorded them from Lua 5.1.5, with error positions stripped.
const serLua = `
local function ser(...)
  local t = {}
  for i = 1, select('#', ...) do
    local v = select(i, ...)
    if type(v) == 'string' then
      v = v:gsub('^.-:%d+: ', ''):gsub('^bad argument #(%d+) to %S+ ', 'bad argument #%1 ')
      t[#t+1] = 's:"' .. v:gsub('[%c"\\\128-\255]', function(c) return string.format('\\%03d', c:byte()) end) .. '"'
    else t[#t+1] = type(v):sub(1,1) .. ':' .. tostring(v) end
  end
  return table.concat(t, ' ')
end
`

// Ensure find, match, gmatch and gsub give what Lua 5.1 gives, errors
// included.
func TestPatternsMatchLua51(t *testing.T) {
	f, err := os.Open("testdata/lua51-patterns.tsv")
	require.NoError(t, err)
	defer f.Close()
	e := newTestEngine(t, Options{})
	sc := bufio.NewScanner(f)
	n := 0
	for sc.Scan() {
		if strings.HasPrefix(sc.Text(), "#") {
			continue
		}
		expr, want, ok := strings.Cut(sc.Text(), "\t")
		require.True(t, ok, sc.Text())
		h := &fakeHost{}
		src := serLua + "server.log(server.LOG_NOTICE, ser(pcall(function() return " + expr + " end)))"
		require.NoError(t, run(t, e, h, src), expr)
		require.Len(t, h.logs, 1)
		assert.Equal(t, "2:"+want, h.logs[0], expr)
		n++
	}
	require.NoError(t, sc.Err())
	require.Greater(t, n, 60)
}

// Ensure gmatch iterates lazily, treats '^' as a byte, and steps over
// empty matches.
func TestGmatch(t *testing.T) {
	e := newTestEngine(t, Options{})
	h := &fakeHost{}
	require.NoError(t, run(t, e, h, `
		local out = {}
		for k, v in string.gmatch("a=1, b=2, c=3", "(%w+)=(%w+)") do out[#out+1] = k .. v end
		for w in string.gmatch("one two", "%a*") do out[#out+1] = "[" .. w .. "]" end
		for w in string.gmatch("^a^b", "^%a") do out[#out+1] = w end
		for p in string.gmatch("abc", "()") do out[#out+1] = p end
		server.log(server.LOG_NOTICE, table.concat(out, ","))`))
	assert.Equal(t, []string{"2:a1,b2,c3,[one],[],[two],[],^a,^b,1,2,3,4"}, h.logs)
}

// Ensure the matches that held the server for minutes are stopped by the
// watchdog near the script's timeout, and grow no goroutine stack.
func TestPatternsStopAtTimeout(t *testing.T) {
	cases := map[string]string{
		"trim idiom":  `local v = 'x' .. string.rep(' ', 40000) .. 'y'; return v:match('^%s*(.-)%s*$')`,
		"greedy find": `local v = string.rep('a', 20000); return v:find('.*b')`,
		"gmatch":      `local v = string.rep('a', 500000); for w in v:gmatch('.*b') do end`,
		"balance":     `local v = string.rep('(', 1000000); return v:find('%b()')`,
		"gsub":        `local v = string.rep('a', 20000); return v:gsub('.-b', 'x')`,
	}
	e := newTestEngine(t, Options{Timeout: 50 * time.Millisecond})
	for name, src := range cases {
		t.Run(name, func(t *testing.T) {
			stacks := stackBytes()
			start := time.Now()
			err := run(t, e, &fakeHost{}, src)
			took := time.Since(start)
			require.ErrorIs(t, err, ErrTimeout)
			// The watchdog stops a run within one idle tick past its
			// timeout; the rest is slack for a loaded machine.
			assert.Less(t, took, time.Second, "stopped after %v", took)
			assert.Less(t, stackBytes(), stacks+8<<20, "goroutine stacks grew")
		})
	}
}

// Ensure a long linear match (gopher-lua's matcher grew a 400 MB stack on
// it) needs no stack.
func TestPatternLongSubjectNoStack(t *testing.T) {
	e := newTestEngine(t, Options{})
	stacks := stackBytes()
	require.NoError(t, run(t, e, &fakeHost{}, `local v = string.rep('a', 900000); assert(v:find('^.*b') == nil); assert(#v:match('^(.*)$') == 900000)`))
	assert.Less(t, stackBytes(), stacks+8<<20, "goroutine stacks grew")
}

func stackBytes() uint64 {
	s := []metrics.Sample{{Name: "/memory/classes/heap/stacks:bytes"}}
	metrics.Read(s)
	return s[0].Value.Uint64()
}

// Ensure a pattern that would recurse deeper than Lua 5.2 allows is refused
// instead of growing the stack.
func TestPatternTooComplex(t *testing.T) {
	e := newTestEngine(t, Options{})
	err := run(t, e, &fakeHost{}, `return string.find(string.rep('a', 300), string.rep('a?', 300))`)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "pattern too complex")
	require.NoError(t, run(t, e, &fakeHost{}, `assert(string.find(string.rep('a', 100), string.rep('a?', 100)) == 1)`))
}

// Ensure compiling is bounded: deep nesting and long operator chains are
// refused in one linear pass, as Lua 5.1 refuses them, and what is legal
// at the limit still compiles.
func TestCompileBounds(t *testing.T) {
	refused := map[string]string{
		"parentheses":    "return " + strings.Repeat("(", 300000) + "1" + strings.Repeat(")", 300000),
		"tables":         "return " + strings.Repeat("{", 201) + strings.Repeat("}", 201),
		"blocks":         strings.Repeat("do ", 201) + strings.Repeat("end ", 201),
		"functions":      strings.Repeat("local f = function() ", 201) + strings.Repeat("end ", 201),
		"concat chain":   "return " + strings.Repeat("'a'..", 200000) + "'a'",
		"power chain":    "return " + strings.Repeat("2^", 300) + "1",
		"sum chain":      "return " + strings.Repeat("1+", 300) + "1",
		"elseif chain":   "if x then " + strings.Repeat("elseif x then ", 300) + "end",
		"while in while": strings.Repeat("while true do ", 201) + strings.Repeat("end ", 201),
	}
	for name, src := range refused {
		start := time.Now()
		_, err := Compile(name, src)
		require.Error(t, err, name)
		assert.Contains(t, err.Error(), "more than 200 nested levels", name)
		assert.Less(t, time.Since(start), time.Second, name)
	}
	legal := map[string]string{
		"nesting 199":      "return " + strings.Repeat("(", 199) + "1" + strings.Repeat(")", 199),
		"while do":         strings.Repeat("while false do ", 150) + strings.Repeat("end ", 150),
		"long flat script": strings.Repeat("do local x = 'a' .. 'b' .. ('[[' .. \"]]\") end -- ((((\n", 5000),
		"long strings":     "local s = [==[ ((((((( ]] ]==] .. [[ {{{{ ]] return s",
		"many chains":      strings.Repeat("do local x = 'a' .. 'b' .. 'c' end\n", 1000),
		"varargs":          "local function f(...) return ... end return f(1, 2)",
	}
	for name, src := range legal {
		_, err := Compile(name, src)
		assert.NoError(t, err, name)
	}
}

// Ensure builtins that work long inside one instruction stop with the run:
// each case calls one over and over on big inputs, so the watchdog fires
// inside a call.
func TestBuiltinsStopAtTimeout(t *testing.T) {
	cases := map[string]string{
		"rep":     `while true do local s = string.rep('ab', 30e6) end`,
		"upper":   `local s = string.rep('a', 50e6) while true do local u = s:upper() end`,
		"reverse": `local s = string.rep('a', 50e6) while true do local u = s:reverse() end`,
		"sort":    `local t = {} for i = 1, 1e6 do t[i] = (i * 7919) % 1000003 end while true do table.sort(t, nil) end`,
		"concat":  `local t = {} for i = 1, 2e6 do t[i] = 'abcdefgh' end while true do local s = table.concat(t, ',') end`,
		"decode":  `local j = '[' .. string.rep('1,', 3e6) .. '1]' while true do local v = cjson.decode(j) end`,
		"encode":  `local t = {} for i = 1, 1e6 do t[i] = i end while true do local s = cjson.encode(t) end`,
	}
	e := newTestEngine(t, Options{Timeout: 300 * time.Millisecond, MemoryLimit: 1 << 30})
	for name, src := range cases {
		t.Run(name, func(t *testing.T) {
			start := time.Now()
			err := run(t, e, &fakeHost{}, src)
			require.ErrorIs(t, err, ErrTimeout)
			assert.Less(t, time.Since(start), 2*time.Second)
		})
	}
}
