package scripting

import (
	"testing"

	"github.com/stretchr/testify/require"
)

// Ensure cjson.encode matches lua-cjson's output on the shapes scripts use.
func TestCJSONEncode(t *testing.T) {
	cases := []struct{ lua, want string }{
		{`{}`, `{}`},
		{`{1, 2, 3}`, `[1,2,3]`},
		{`{1, nil, 3}`, `[1,null,3]`},
		{`{a = 1}`, `{"a":1}`},
		{`{[1] = 'x', a = 'y'}`, `{"1":"x","a":"y"}`},
		{`'a/b"c\\d\n\1'`, `"a\/b\"c\\d\n\u0001"`},
		{`0.1`, `0.1`},
		{`1/3`, `0.33333333333333`},
		{`1e15`, `1e+15`},
		{`100`, `100`},
		{`-0.5`, `-0.5`},
		{`true`, `true`},
		{`cjson.null`, `null`},
		{`{user = 'u7', amount = 120, tags = {'a', 'b'}}`, `{"user":"u7","amount":120,"tags":["a","b"]}`},
		{`'caf\195\169'`, `"café"`},
	}
	e := newTestEngine(t, Options{})
	for _, c := range cases {
		h := &fakeHost{}
		require.NoError(t, run(t, e, h, `server.call('SET', 'out', cjson.encode(`+c.lua+`))`), c.lua)
		require.Equal(t, c.want, h.calls[0][2], c.lua)
	}
}

// Ensure the inputs lua-cjson refuses are refused with its messages.
func TestCJSONEncodeErrors(t *testing.T) {
	e := newTestEngine(t, Options{})
	for src, want := range map[string]string{
		`cjson.encode({[20] = 1})`:              "excessively sparse array",
		`cjson.encode(0/0)`:                     "must not be NaN or Inf",
		`cjson.encode(function() end)`:          "type not supported",
		`cjson.encode({[true] = 1})`:            "table key must be a number or string",
		`local t = {} t[1] = t cjson.encode(t)`: "excessive nesting",
	} {
		require.ErrorContains(t, run(t, e, &fakeHost{}, src), want, src)
	}
}

// Ensure cjson.decode builds the tables scripts expect.
func TestCJSONDecode(t *testing.T) {
	e := newTestEngine(t, Options{})
	require.NoError(t, run(t, e, &fakeHost{}, `
		local v = cjson.decode('{"user":"u7","amount":120.5,"tags":["a",null,true],"empty":{},"s":"\\u00e9\\ud83d\\ude00\\/"}')
		assert(v.user == 'u7' and v.amount == 120.5)
		assert(v.tags[1] == 'a' and v.tags[2] == cjson.null and v.tags[3] == true)
		assert(next(v.empty) == nil)
		assert(v.s == '\195\169\240\159\152\128/')
		assert(cjson.decode('  [1, -2e3]  ')[2] == -2000)`))
	for src, want := range map[string]string{
		`cjson.decode('{"a":}')`:              "Expected value but found invalid token at character 6",
		`cjson.decode('[1,2')`:                "Expected comma or array end",
		`cjson.decode('"abc')`:                "Expected string end",
		`cjson.decode('[1] x')`:               "trailing data",
		`cjson.decode('"\\x"')`:               "invalid escape code",
		`cjson.decode(string.rep('[', 1001))`: "too many nested data structures",
	} {
		require.ErrorContains(t, run(t, e, &fakeHost{}, src), want, src)
	}
}
