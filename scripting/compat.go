package scripting

import (
	"math"
	"runtime"
	"strconv"
	"strings"

	lua "github.com/yuin/gopher-lua"
)

// Lua as Valkey's Lua 5.1 has it, where gopher-lua differs: numeric strings
// accepted wherever a library function takes a number, pcall's view of
// server errors, tonumber, math.huge, unpack's limit and the 5.1 functions
// gopher-lua lacks. Everything here wraps or replaces what gopher-lua
// exposes; the VM itself is gopher-lua's.

// maxUnpack is Lua 5.1's LUAI_MAXCSTACK: unpack refuses as many results.
const maxUnpack = 8000

// numericArgs wraps fn so that the arguments at positions (1-based) that
// hold numeric strings reach it as numbers, as luaL_checknumber converts
// them. all converts every argument.
func numericArgs(fn lua.LGFunction, all bool, positions ...int) lua.LGFunction {
	return func(L *lua.LState) int {
		if all {
			for i := 1; i <= L.GetTop(); i++ {
				coerceArg(L, i)
			}
		} else {
			for _, i := range positions {
				coerceArg(L, i)
			}
		}
		return fn(L)
	}
}

func coerceArg(L *lua.LState, i int) {
	if s, ok := L.Get(i).(lua.LString); ok && i <= L.GetTop() {
		if f, ok := parseNumber(string(s)); ok {
			L.Replace(i, lua.LNumber(f))
		}
	}
}

// wrapFields replaces t[name] by wrap(t[name]) for each name.
func wrapFields(t *lua.LTable, wrap func(lua.LGFunction) lua.LGFunction, L *lua.LState, names ...string) {
	for _, name := range names {
		if fn, ok := t.RawGetString(name).(*lua.LFunction); ok && fn.IsG {
			t.RawSetString(name, L.NewFunction(wrap(fn.GFunction)))
		}
	}
}

// installCompat adapts the base, string, table and math libraries.
func installCompat(L *lua.LState, base, str, tbl, mth *lua.LTable) {
	// string: the positions and counts are numbers.
	for name, pos := range map[string][]int{
		"byte": {2, 3}, "find": {3}, "match": {3}, "gsub": {4}, "rep": {2}, "sub": {2, 3},
	} {
		wrapFields(str, func(fn lua.LGFunction) lua.LGFunction { return numericArgs(fn, false, pos...) }, L, name)
	}
	wrapFields(str, func(fn lua.LGFunction) lua.LGFunction { return numericArgs(fn, true) }, L, "char")

	// table
	wrapFields(tbl, func(fn lua.LGFunction) lua.LGFunction { return numericArgs(fn, false, 3, 4) }, L, "concat")
	wrapFields(tbl, func(fn lua.LGFunction) lua.LGFunction { return numericArgs(fn, false, 2) }, L, "remove")
	wrapFields(tbl, func(fn lua.LGFunction) lua.LGFunction {
		return func(L *lua.LState) int {
			if L.GetTop() == 3 {
				coerceArg(L, 2)
			}
			return fn(L)
		}
	}, L, "insert")
	tbl.RawSetString("setn", L.NewFunction(func(L *lua.LState) int {
		L.RaiseError("'setn' is obsolete")
		return 0
	}))
	tbl.RawSetString("foreach", L.NewFunction(tableForeach))
	tbl.RawSetString("foreachi", L.NewFunction(tableForeachi))

	// math: every argument is a number; huge is infinity.
	mth.ForEach(func(k, v lua.LValue) {
		if fn, ok := v.(*lua.LFunction); ok && fn.IsG {
			mth.RawSet(k, L.NewFunction(numericArgs(fn.GFunction, true)))
		}
	})
	mth.RawSetString("huge", lua.LNumber(math.Inf(1)))

	// base
	base.RawSetString("tonumber", L.NewFunction(toNumberFn))
	base.RawSetString("tostring", L.NewFunction(toStringFn))
	base.RawSetString("unpack", L.NewFunction(unpackFn))
	base.RawSetString("pcall", L.NewFunction(pcallFn))
	base.RawSetString("gcinfo", L.NewFunction(gcinfoFn))
	wrapFields(base, func(fn lua.LGFunction) lua.LGFunction { return numericArgs(fn, false, 1) }, L, "select")
	base.RawSetString("error", L.NewFunction(errorFn))
}

// errorFn is Lua 5.1's error: a string or number message gets the position
// of the function at level (1: the caller of error, 2: its caller, ...).
func errorFn(L *lua.LState) int {
	obj := L.Get(1)
	level := optInteger(L, 2, 1)
	switch obj.(type) {
	case lua.LString, lua.LNumber:
		msg := L.ToStringMeta(obj).String()
		if n, ok := obj.(lua.LNumber); ok {
			msg = numberToString(float64(n))
		}
		if where := L.Where(int(level)); level > 0 && where != "" && !strings.HasPrefix(where, "[G]") {
			msg = where + " " + msg
		}
		L.Error(lua.LString(msg), 0)
	}
	L.Error(obj, 0)
	return 0
}

// forBounds are the functions numeric for loops convert their bounds with
// (see coerceForBounds), by hidden global names, with Lua 5.1's errors.
var forBounds = map[string]string{
	"(iungo for init)":  "'for' initial value must be a number",
	"(iungo for limit)": "'for' limit must be a number",
	"(iungo for step)":  "'for' step must be a number",
}

func forBound(message string) lua.LGFunction {
	return func(L *lua.LState) int {
		f, ok := toNumber(L.Get(1))
		if !ok {
			L.RaiseError("%s", message)
		}
		L.Push(lua.LNumber(f))
		return 1
	}
}

// toNumberFn is Lua 5.1's tonumber: strtod's syntax in base 10, strtoul's
// digits in bases 2 to 36.
func toNumberFn(L *lua.LState) int {
	v := L.CheckAny(1)
	if L.Get(2) == lua.LNil {
		if f, ok := toNumber(v); ok {
			L.Push(lua.LNumber(f))
		} else {
			L.Push(lua.LNil)
		}
		return 1
	}
	base := checkInteger(L, 2)
	if base < 2 || base > 36 {
		L.ArgError(2, "base out of range")
	}
	s := strings.TrimFunc(checkString(L, 1), func(r rune) bool { return r < 0x80 && isCSpace(byte(r)) })
	neg := false
	if s != "" && (s[0] == '-' || s[0] == '+') {
		neg, s = s[0] == '-', s[1:]
	}
	n, err := strconv.ParseUint(s, int(base), 64)
	if err != nil || s == "" || s[0] == '+' || s[0] == '-' {
		L.Push(lua.LNil)
		return 1
	}
	f := float64(n)
	if neg {
		f = float64(-n) // strtoul negates in unsigned arithmetic
	}
	L.Push(lua.LNumber(f))
	return 1
}

// toStringFn is tostring with numbers written as Lua 5.1 writes them.
func toStringFn(L *lua.LState) int {
	v := L.CheckAny(1)
	if n, ok := v.(lua.LNumber); ok {
		L.Push(lua.LString(numberToString(float64(n))))
		return 1
	}
	L.Push(L.ToStringMeta(v))
	return 1
}

// unpackFn is unpack, up to Lua 5.1's limit.
func unpackFn(L *lua.LState) int {
	t := L.CheckTable(1)
	i := optInteger(L, 2, 1)
	j := int64(t.Len())
	if L.Get(3) != lua.LNil {
		j = checkInteger(L, 3)
	}
	if i > j {
		return 0
	}
	n := j - i + 1
	if n <= 0 || n >= maxUnpack {
		L.RaiseError("too many results to unpack")
	}
	for k := i; k <= j; k++ {
		L.Push(t.RawGetInt(int(k)))
	}
	return int(n)
}

// pcallFn is pcall as Valkey has it: an error raised as a table with an
// err field (server.call's, error_reply's) is caught as that string.
func pcallFn(L *lua.LState) int {
	L.CheckAny(1)
	v := L.Get(1)
	if v.Type() != lua.LTFunction && L.GetMetaField(v, "__call").Type() != lua.LTFunction {
		L.Push(lua.LFalse)
		L.Push(lua.LString("attempt to call a " + v.Type().String() + " value"))
		return 2
	}
	if err := L.PCall(L.GetTop()-1, lua.MultRet, nil); err != nil {
		L.Push(lua.LFalse)
		if api, ok := err.(*lua.ApiError); ok {
			obj := api.Object
			if t, ok := obj.(*lua.LTable); ok {
				if msg, ok := t.RawGetString("err").(lua.LString); ok {
					obj = msg
				}
			}
			L.Push(obj)
		} else {
			L.Push(lua.LString(err.Error()))
		}
		return 2
	}
	L.Insert(lua.LTrue, 1)
	return L.GetTop()
}

// gcinfoFn is Lua 5.1's gcinfo: the memory in use, in KB.
func gcinfoFn(L *lua.LState) int {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	L.Push(lua.LNumber(ms.HeapAlloc >> 10))
	return 1
}

// tableForeach is Lua 5.1's table.foreach: f(k, v) for each pair until f
// returns a value other than nil.
func tableForeach(L *lua.LState) int {
	t := L.CheckTable(1)
	f := L.CheckFunction(2)
	for k, v := t.Next(lua.LNil); k != lua.LNil; k, v = t.Next(k) {
		L.Push(f)
		L.Push(k)
		L.Push(v)
		L.Call(2, 1)
		if r := L.Get(-1); r != lua.LNil {
			return 1
		}
		L.Pop(1)
	}
	return 0
}

// tableForeachi is table.foreach over 1..#t.
func tableForeachi(L *lua.LState) int {
	t := L.CheckTable(1)
	f := L.CheckFunction(2)
	for i := 1; i <= t.Len(); i++ {
		L.Push(f)
		L.Push(lua.LNumber(i))
		L.Push(t.RawGetInt(i))
		L.Call(2, 1)
		if r := L.Get(-1); r != lua.LNil {
			return 1
		}
		L.Pop(1)
	}
	return 0
}
