package scripting

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Ensure the Lua 5.1 behaviours Valkey's EVAL shows (each expected value
// was read from valkey-server 8.0.1's EVAL; itest/luacompat_test.go
// compares them on a live server).
func TestLua51AsValkey(t *testing.T) {
	e := newTestEngine(t, Options{ServerVersion: 0x080001})
	h := &fakeHost{}
	for _, src := range []string{
		`assert(string.sub('hello', '2', '3') == 'el')`,
		`assert(string.rep('ab', '3') == 'ababab' and string.byte('A', '1') == 65 and string.char('72', '105') == 'Hi')`,
		`local t = {} table.insert(t, '1', 'x') assert(t[1] == 'x')`,
		`assert(table.concat({1, 2, 3}, ',', '1', '2') == '1,2')`,
		`assert(math.floor('3.7') == 3 and math.max('3', 2) == 3 and select('2', 'a', 'b') == 'b')`,
		`local n = 0 for i = '1', '3', '1' do n = n + i end assert(n == 6)`,
		`assert(tonumber('1e1') == 10 and tonumber('-0x10') == -16 and tonumber(' 0x1p4 ') == 16 and tonumber('5e-1') == 0.5)`,
		`assert(tonumber('ff', 16) == 255 and tonumber('zz', 36) == 1295 and tonumber('8', 8) == nil and tonumber('12a') == nil)`,
		`assert(math.huge == 1/0 and tostring(math.huge) == 'inf' and tostring(1e15) == '1e+15' and tostring(1/3) == '0.33333333333333')`,
		`local t = {} for i = 1, 7990 do t[i] = i end assert(select('#', unpack(t)) == 7990)`,
		`local t = {} for i = 1, 9000 do t[i] = i end local ok, e = pcall(unpack, t) assert(not ok and e:find('too many results to unpack'))`,
		`assert(string.format('%.14g|%5.1f|%s|%q', 1/0, '3.14159', 1/3, 'a\nb') == 'inf|  3.1|0.33333333333333|"a\\\nb"')`,
		`local ok, e = pcall(error, {err = 'x'}) assert(not ok and e == 'x')`,
		`local function f() error('two', 2) end local ok, e = pcall(function()
			f() end) assert(e == 't:2: two', e)`,
		`local s = 0 table.foreach({a = 1, b = 2}, function(k, v) s = s + v end) assert(s == 3)`,
		`assert(not pcall(table.setn, {}, 1) and gcinfo() > 0)`,
		`assert(server.REDIS_VERSION == '7.2.4' and server.REDIS_VERSION_NUM == 459268)`,
		`assert(server.VALKEY_VERSION == '8.0.1' and server.VALKEY_VERSION_NUM == 524289 and server.SERVER_NAME == 'valkey')`,
		`assert(server.acl_check_cmd('GET', 'x') == true and server.acl_check_cmd('DENIED') == false)`,
		`local ok, e = pcall(server.acl_check_cmd, 'NOSUCH') assert(e == 'ERR Invalid command passed to server.acl_check_cmd()')`,
	} {
		require.NoError(t, run(t, e, h, src), src)
	}
}

// Ensure SORT by a constant on a set sorts, as for Valkey's script
// clients, and leaves other SORTs alone.
func TestSortForScripts(t *testing.T) {
	e := newTestEngine(t, Options{})
	h := &fakeHost{replies: map[string]Reply{"TYPE": {Kind: ReplyStatus, Str: "set"}}}
	require.NoError(t, run(t, e, h, `server.call('SORT', 's', 'BY', 'nosort', 'LIMIT', 0, 2)
		server.call('SORT', 's', 'BY', 'w_*')
		server.call('SORT', 's', 'BY', 'nosort', 'STORE', 'd')`))
	assert.Equal(t, [][]string{
		{"TYPE", "s"}, {"SORT", "s", "LIMIT", "0", "2", "ALPHA"},
		{"SORT", "s", "BY", "w_*"},
		{"SORT", "s", "BY", "nosort", "STORE", "d"},
	}, h.calls)
}
