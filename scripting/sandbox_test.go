package scripting

import (
	"testing"

	"github.com/stretchr/testify/require"
)

// Ensure every escape attempt fails inside the script, and that nothing an
// attempt changed is visible to the next run of any script.
func TestSandboxEscapes(t *testing.T) {
	attempts := []struct{ name, src string }{
		{"io library", `io.open('/etc/passwd')`},
		{"os library", `os.execute('true')`},
		{"os.exit", `os.exit(1)`},
		{"require", `require('os')`},
		{"module", `module('x')`},
		{"load", `load('return 1')`},
		{"loadstring", `loadstring('return 1')()`},
		{"dofile", `dofile('/etc/passwd')`},
		{"loadfile", `loadfile('/etc/passwd')`},
		{"debug library", `debug.getregistry()`},
		{"string.dump", `string.dump(function() end)`},
		{"getfenv", `getfenv(0).x = 1`},
		{"setfenv", `setfenv(1, {})`},
		{"collectgarbage", `collectgarbage('stop')`},
		{"print", `print('x')`},
		{"newproxy", `newproxy(true)`},
		{"coroutine", `coroutine.wrap(function() end)()`},
		{"channel", `channel.make()`},
		{"package.loaded", `package.loaded.os.exit()`},
		{"change a library function", `string.rep = nil`},
		{"change a library via rawset", `rawset(string, 'rep', nil)`},
		{"string metatable", `getmetatable('').__index.rep = nil`},
		{"string metatable index", `local s = ''; s.__index.upper = nil`},
		{"replace string metatable", `setmetatable('', {})`},
		{"server library", `server.call = nil`},
		{"redis alias", `rawset(redis, 'call', function() end)`},
		{"cjson library", `cjson.encode = nil`},
		{"cjson.null metatable", `setmetatable(cjson.null, {})`},
		{"globals metatable", `setmetatable(_G, {__index = function() return 1 end})`},
		{"globals metatable read", `getmetatable(_G).__index.string = nil`},
		{"math library", `math.floor = nil`},
		{"table library", `table.insert = nil`},
	}
	e := newTestEngine(t, Options{})
	h := &fakeHost{}
	for _, a := range attempts {
		t.Run(a.name, func(t *testing.T) {
			err := run(t, e, h, a.src)
			require.Error(t, err, "escape %q must fail", a.src)
			// Every library and metatable is still intact for the next run.
			require.NoError(t, run(t, e, h, `
				assert(type(string.rep) == 'function' and ('x'):rep(2) == 'xx')
				assert(type(('x').upper) == 'function')
				assert(type(math.floor) == 'function' and type(table.insert) == 'function')
				assert(type(server.call) == 'function' and type(redis.call) == 'function')
				assert(type(cjson.encode) == 'function' and getmetatable(cjson.null) == false)
				assert(getmetatable('') == false and getmetatable(_G) == false)
				assert(not pcall(function() return x end))`), "after %q", a.src)
		})
	}
	require.Empty(t, h.calls, "no escape attempt may reach the server")
}

// Ensure globals follow Valkey's rules: reading one that does not exist
// fails naming it, and none can be set, by any route.
func TestGlobalsAsValkey(t *testing.T) {
	e := newTestEngine(t, Options{})
	h := &fakeHost{}
	for src, want := range map[string]string{
		"local x = sever.call('GET', 'k')": "line 1: Script attempted to access nonexistent global variable 'sever'",
		"\ncounter = 1":                    "line 2: Attempt to modify a readonly table",
		"function helper() return 2 end":   "line 1: Attempt to modify a readonly table",
		"_G.x = 1":                         "line 1: Attempt to modify a readonly table",
		"rawset(_G, 'y', 2)":               "Attempt to modify a readonly table",
		"setmetatable(_G, {})":             "Attempt to modify a readonly table",
		"ARGV = nil":                       "line 1: Attempt to modify a readonly table",
		"for i = 1, 'x' do end":            "line 1: 'for' limit must be a number",
		"local t = {} for i = t, 2 do end": "line 1: 'for' initial value must be a number",
		"for i = 1, 2, server do end":      "line 1: 'for' step must be a number",
		"local n = 0 for i = '1', '3' do n = n + i end assert(n == 6) error('ok')": "line 1: ok",
	} {
		err := run(t, e, h, src)
		var re *RunError
		require.ErrorAs(t, err, &re, src)
		require.Equal(t, want, re.Message, src)
	}
	require.NoError(t, run(t, e, h, `KEYS[2] = 'more' local x = rawget(_G, 'nothing') assert(x == nil)`))
	require.NoError(t, run(t, e, h, `assert(#KEYS == 1 and #ARGV == 2)`))
}

// Ensure nothing a run does to its environment, KEYS or ARGV reaches the
// next run, though the engine reuses them while runs leave them alone.
func TestRunLeavesNothingBehind(t *testing.T) {
	const pristine = `
		assert(not pcall(function() return x end), 'a global survived')
		assert(_G.KEYS == KEYS and _G._G == _G, '_G changed')
		assert(#KEYS == 1 and KEYS[1] == 'order:1' and next(KEYS, 1) == nil and getmetatable(KEYS) == nil, 'KEYS changed')
		assert(#ARGV == 2 and ARGV[1] == 'hset' and ARGV[2] == '3' and next(ARGV, 2) == nil and getmetatable(ARGV) == nil, 'ARGV changed')
		assert(type(server) == 'table' and type(string.rep) == 'function', 'a library changed')`
	for _, leak := range []string{
		`x = 1`,
		`_G.x = 1`,
		`rawset(_G, 'x', 1)`,
		`local g = _G g['x'] = 1`,
		`KEYS = {'other'}`,
		`ARGV = nil`,
		`_G = {}`,
		`_G.KEYS = {}`,
		`KEYS[1] = 'changed' ARGV[2] = 'changed'`,
		`KEYS[2] = 'more'`,
		`KEYS.x = 1`,
		`rawset(ARGV, 'x', 1)`,
		`table.insert(ARGV, 'more')`,
		`table.remove(KEYS)`,
		`setmetatable(KEYS, {__index = function() return 'x' end})`,
		`setmetatable(ARGV, {})`,
		`error('fails halfway') x = 1`,
		`x = 1 error('fails after a global')`,
		`KEYS.x = 1 KEYS.x = nil`,
	} {
		t.Run(leak, func(t *testing.T) {
			e := newTestEngine(t, Options{})
			h := &fakeHost{}
			require.NoError(t, run(t, e, h, pristine), "before")
			_ = run(t, e, h, leak)
			require.NoError(t, run(t, e, h, pristine), "after %q", leak)
			require.NoError(t, run(t, e, h, pristine), "two runs after %q", leak)
		})
	}
}

// Ensure the library list is exactly what the README promises.
func TestLibraries(t *testing.T) {
	e := newTestEngine(t, Options{})
	require.NoError(t, run(t, e, &fakeHost{}, `
		for _, name in ipairs({'io','os','debug','coroutine','package','channel','require','load','loadstring',
			'dofile','loadfile','print','collectgarbage','getfenv','setfenv','newproxy','module','_printregs'}) do
			assert(not pcall(function() return _G[name] end), name .. ' must not be reachable')
		end
		for _, name in ipairs({'assert','error','getmetatable','ipairs','next','pairs','pcall','rawequal','rawget',
			'rawset','select','setmetatable','tonumber','tostring','type','unpack','xpcall','string','table','math',
			'server','redis','cjson','KEYS','ARGV','_G','_VERSION'}) do
			assert(_G[name] ~= nil, name .. ' must be reachable')
		end`))
}
