package scripting

import (
	"strconv"

	lua "github.com/yuin/gopher-lua"
)

// Libraries lists what a script can reach, for the README and the tests.
var Libraries = []string{"base", "string", "table", "math", "server (alias redis)", "cjson"}

// baseFunctions are the base library functions a script gets. Left out:
// loading (dofile, loadfile, load, loadstring, require, module), printing
// (print, _printregs), GC (collectgarbage), environments (getfenv, setfenv)
// and newproxy.
var baseFunctions = []string{
	"assert", "error", "getmetatable", "ipairs", "next", "pairs", "pcall",
	"rawequal", "rawget", "select", "setmetatable", "tonumber",
	"tostring", "type", "unpack", "xpcall",
}

// sandbox holds what every run shares. Everything a script can reach from it
// is read-only: library tables are empty proxies whose protected metatables
// read from the real tables and refuse writes, so no run can change what
// another run (of any script) sees.
type sandbox struct {
	L        *lua.LState
	globals  *lua.LTable // read through by every run's own environment
	envMeta  *lua.LTable
	readOnly map[*lua.LTable]bool // tables rawset must refuse
}

func newSandbox(L *lua.LState, e *Engine) *sandbox {
	sb := &sandbox{L: L, readOnly: map[*lua.LTable]bool{}}
	open := func(fn lua.LGFunction, name string) *lua.LTable {
		L.Push(L.NewFunction(fn))
		L.Push(lua.LString(name))
		L.Call(1, 1)
		t := L.Get(-1).(*lua.LTable)
		L.Pop(1)
		return t
	}
	base := open(lua.OpenBase, lua.BaseLibName)
	str := open(lua.OpenString, lua.StringLibName)
	tbl := open(lua.OpenTable, lua.TabLibName)
	math := open(lua.OpenMath, lua.MathLibName)

	// The string library is also the strings' metatable and its own __index:
	// ("").__index would hand out the real table. Strings get a protected
	// metatable that reads through a proxy instead.
	str.RawSetString("__index", lua.LNil)
	str.RawSetString("dump", lua.LNil)
	limit := func() int64 { return e.opts.MemoryLimit }
	limitBuiltins(str, tbl, limit)
	L.SetMetatable(lua.LString(""), sb.protectedMeta(sb.proxy(str)))

	g := L.NewTable()
	for _, name := range baseFunctions {
		g.RawSetString(name, base.RawGetString(name))
	}
	g.RawSetString("rawset", L.NewFunction(sb.rawset))
	g.RawSetString("_VERSION", base.RawGetString("_VERSION"))
	g.RawSetString("string", sb.proxy(str))
	g.RawSetString("table", sb.proxy(tbl))
	g.RawSetString("math", sb.proxy(math))
	server := sb.proxy(newServerLib(L, e))
	g.RawSetString("server", server)
	g.RawSetString("redis", server)
	g.RawSetString("cjson", sb.proxy(newCJSONLib(L, sb, limit)))
	sb.globals = g
	sb.envMeta = sb.protectedMeta(g)
	return sb
}

// protectedMeta is a metatable reading from index, refusing new keys, and
// hidden from getmetatable/setmetatable.
func (sb *sandbox) protectedMeta(index lua.LValue) *lua.LTable {
	mt := sb.L.NewTable()
	mt.RawSetString("__index", index)
	mt.RawSetString("__metatable", lua.LFalse)
	return mt
}

// proxy returns an empty read-only table that reads from t.
func (sb *sandbox) proxy(t *lua.LTable) *lua.LTable {
	p := sb.L.NewTable()
	mt := sb.protectedMeta(t)
	mt.RawSetString("__newindex", sb.L.NewFunction(refuseWrite))
	p.Metatable = mt
	sb.readOnly[p] = true
	return p
}

func refuseWrite(L *lua.LState) int {
	L.RaiseError("Attempt to modify a readonly table")
	return 0
}

// rawset is the base rawset, except on the shared read-only tables.
func (sb *sandbox) rawset(L *lua.LState) int {
	t := L.CheckTable(1)
	if sb.readOnly[t] {
		L.RaiseError("Attempt to modify a readonly table")
	}
	L.RawSet(t, L.CheckAny(2), L.CheckAny(3))
	L.SetTop(1)
	return 1
}

// newEnv returns the globals of one run: its own table, with KEYS and ARGV,
// reading everything else from the shared read-only globals. Globals a script
// sets live for that run only.
func (sb *sandbox) newEnv(in Input) *lua.LTable {
	L := sb.L
	env := L.CreateTable(0, 3)
	env.Metatable = sb.envMeta
	env.RawSetString("_G", env)
	keys := L.CreateTable(1, 0)
	keys.RawSetInt(1, lua.LString(in.Key))
	env.RawSetString("KEYS", keys)
	argv := L.CreateTable(2, 0)
	argv.RawSetInt(1, lua.LString(in.Event))
	argv.RawSetInt(2, lua.LString(strconv.Itoa(in.DB)))
	env.RawSetString("ARGV", argv)
	return env
}
