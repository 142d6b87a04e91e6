package scripting

import (
	lua "github.com/yuin/gopher-lua"
)

// maxFormatWidth is Lua 5.1's own limit on a format's width and precision.
const maxFormatWidth = 99

// limitBuiltins caps what string.rep, table.concat and string.format may
// build in one call at the engine's memory limit: Go runs
// them to completion without looking at the watchdog, so an uncapped
// string.rep("x", 1e9) would allocate a gigabyte before anything could stop
// it.
func limitBuiltins(str, tbl *lua.LTable, limit func() int64) {
	over := func(L *lua.LState, what string, n int64) {
		if max := limit(); n > max {
			L.RaiseError("%s: result of %d bytes is over the %d-byte limit (iungo.script-memory-mb)", what, n, max)
		}
	}
	rep := str.RawGetString("rep").(*lua.LFunction)
	str.RawSetString("rep", wrap(rep, func(L *lua.LState) {
		s, n := L.CheckString(1), L.CheckInt(2)
		if n > 0 {
			over(L, "string.rep", int64(len(s))*int64(n))
		}
	}))
	format := str.RawGetString("format").(*lua.LFunction)
	str.RawSetString("format", wrap(format, func(L *lua.LState) {
		checkFormat(L, L.CheckString(1))
	}))
	concat := tbl.RawGetString("concat").(*lua.LFunction)
	tbl.RawSetString("concat", wrap(concat, func(L *lua.LState) {
		t := L.CheckTable(1)
		sep := L.OptString(2, "")
		i := L.OptInt(3, 1)
		j := L.OptInt(4, t.Len())
		total := int64(0)
		for k := i; k <= j; k++ {
			if s, ok := t.RawGetInt(k).(lua.LString); ok {
				total += int64(len(s))
			} else {
				total += 24 // a number's text
			}
			total += int64(len(sep))
			over(L, "table.concat", total)
		}
	}))
}

// wrap runs check, which raises an error to refuse, and then fn.
func wrap(fn *lua.LFunction, check func(*lua.LState)) *lua.LFunction {
	return &lua.LFunction{IsG: true, Env: fn.Env, GFunction: func(L *lua.LState) int {
		check(L)
		return fn.GFunction(L)
	}}
}

// checkFormat refuses widths and precisions past two digits, as Lua 5.1 does.
func checkFormat(L *lua.LState, f string) {
	for i := 0; i < len(f); i++ {
		if f[i] != '%' {
			continue
		}
		i++
		if i < len(f) && f[i] == '%' {
			continue
		}
		for i < len(f) && (f[i] == '-' || f[i] == '+' || f[i] == ' ' || f[i] == '#' || f[i] == '0') {
			i++
		}
		digits := 0
		for i < len(f) && f[i] >= '0' && f[i] <= '9' {
			i, digits = i+1, digits+1
		}
		if i < len(f) && f[i] == '.' {
			i++
			prec := 0
			for i < len(f) && f[i] >= '0' && f[i] <= '9' {
				i, prec = i+1, prec+1
			}
			digits = max(digits, prec)
		}
		if digits > len("99") {
			L.RaiseError("invalid format (width or precision over %d)", maxFormatWidth)
		}
	}
}
