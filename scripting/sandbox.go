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

	// The environment of the last run and its KEYS and ARGV, reused while
	// runs leave them as they found them: building them is most of the
	// cost of a short run. dirty records a new global (see setGlobal).
	env, keys, argv *lua.LTable
	dirty           bool
	event           string     // the event of the last run
	eventValue      lua.LValue // and its Lua value, which costs an allocation
	// Functions made from each compiled script in this state.
	functions map[*lua.FunctionProto]*lua.LFunction
}

// maxFunctions bounds the function cache: past it, it starts over, so that
// replaced scripts do not pile up.
const maxFunctions = 4096

func newSandbox(L *lua.LState, e *Engine) *sandbox {
	sb := &sandbox{L: L, readOnly: map[*lua.LTable]bool{}, functions: map[*lua.FunctionProto]*lua.LFunction{}}
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
	strs := &stringLib{stopped: e.wd.stopped, limit: limit}
	strs.install(str)
	strs.installBuiltins(str, tbl)
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
	g.RawSetString("cjson", sb.proxy(newCJSONLib(L, sb, limit, e.wd.stopped)))
	sb.globals = g
	sb.envMeta = sb.protectedMeta(g)
	sb.envMeta.RawSetString("__newindex", L.NewFunction(sb.setGlobal))
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
	if t == sb.env {
		sb.dirty = true
	}
	L.RawSet(t, L.CheckAny(2), L.CheckAny(3))
	L.SetTop(1)
	return 1
}

// setGlobal is the environment's __newindex: a script that creates a global
// gets a fresh environment next time.
func (sb *sandbox) setGlobal(L *lua.LState) int {
	t := L.CheckTable(1)
	if t == sb.env {
		sb.dirty = true
	}
	L.RawSet(t, L.CheckAny(2), L.Get(3))
	return 0
}

// runEnv returns the globals of one run: a table of its own, with KEYS and
// ARGV, reading everything else from the shared read-only globals. Globals
// a script sets live for that run only: a run that left anything behind
// (see clean) makes the next run get fresh tables.
func (sb *sandbox) runEnv(in Input) *lua.LTable {
	L := sb.L
	if sb.env == nil {
		sb.env = L.CreateTable(0, 3)
		sb.env.Metatable = sb.envMeta
		sb.keys, sb.argv = L.CreateTable(1, 0), L.CreateTable(2, 0)
		sb.env.RawSetString("_G", sb.env)
		sb.env.RawSetString("KEYS", sb.keys)
		sb.env.RawSetString("ARGV", sb.argv)
		sb.dirty = false
	}
	if in.Event != sb.event || sb.eventValue == nil {
		sb.event, sb.eventValue = in.Event, lua.LString(in.Event)
	}
	sb.keys.RawSetInt(1, lua.LString(in.Key))
	sb.argv.RawSetInt(1, sb.eventValue)
	sb.argv.RawSetInt(2, dbName(in.DB))
	return sb.env
}

var dbNames = func() []lua.LValue {
	out := make([]lua.LValue, 16)
	for i := range out {
		out[i] = lua.LString(strconv.Itoa(i))
	}
	return out
}()

func dbName(db int) lua.LValue {
	if db >= 0 && db < len(dbNames) {
		return dbNames[db]
	}
	return lua.LString(strconv.Itoa(db))
}

// clean keeps the run tables for the next run only if this run left them
// as runEnv made them: no new global, the same _G, KEYS and ARGV, KEYS with
// one element and ARGV with two, no metatables. New globals are seen by
// setGlobal; the rest costs a few lookups, not a walk of the environment.
func (sb *sandbox) clean() {
	if sb.env == nil {
		return
	}
	ok := !sb.dirty && sb.env.Metatable == sb.envMeta &&
		sb.env.RawGetString("KEYS") == sb.keys && sb.env.RawGetString("ARGV") == sb.argv &&
		sb.env.RawGetString("_G") == sb.env &&
		arrayOf(sb.keys, 1) && arrayOf(sb.argv, 2)
	if !ok {
		sb.env, sb.keys, sb.argv = nil, nil, nil
	}
}

// arrayOf reports whether t holds t[1..n] and nothing else; their values
// do not matter, runEnv sets them.
func arrayOf(t *lua.LTable, n int) bool {
	if t.Metatable != lua.LNil || t.Len() != n {
		return false
	}
	k, _ := t.Next(lua.LNumber(n))
	return k == lua.LNil
}

// function returns the Lua function of a compiled script in this state.
func (sb *sandbox) function(proto *lua.FunctionProto) *lua.LFunction {
	fn, ok := sb.functions[proto]
	if !ok {
		if len(sb.functions) >= maxFunctions {
			clear(sb.functions)
		}
		fn = sb.L.NewFunctionFromProto(proto)
		sb.functions[proto] = fn
	}
	return fn
}
