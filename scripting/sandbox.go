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
	"assert", "error", "gcinfo", "getmetatable", "ipairs", "next", "pairs", "pcall",
	"rawequal", "rawget", "select", "setmetatable", "tonumber",
	"tostring", "type", "unpack", "xpcall",
}

// sandbox holds what every run shares. Everything a script can reach from it
// is read-only: library tables are empty proxies whose protected metatables
// read from the real tables and refuse writes, so no run can change what
// another run (of any script) sees.
type sandbox struct {
	L         *lua.LState
	globals   *lua.LTable          // read through by every run's own environment
	innerMeta *lua.LTable          // of the table the environment reads from
	readOnly  map[*lua.LTable]bool // tables rawset must refuse

	// The environment of the last run and its KEYS and ARGV, reused while
	// runs leave them as they found them: building them is most of the
	// cost of a short run.
	env, keys, argv *lua.LTable
	inner           *lua.LTable               // what env reads from: the globals, KEYS, ARGV
	forBounds       map[lua.LValue]lua.LValue // hidden globals: see forBounds
	event           string                    // the event of the last run
	eventValue      lua.LValue                // and its Lua value, which costs an allocation
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
	installCompat(L, base, str, tbl, math)
	sb.forBounds = map[lua.LValue]lua.LValue{}
	for name, message := range forBounds {
		sb.forBounds[lua.LString(name)] = L.NewFunction(forBound(message))
	}
	L.SetMetatable(lua.LString(""), sb.protectedMeta(sb.proxy(str)))

	g := L.NewTable()
	for _, name := range baseFunctions {
		g.RawSetString(name, base.RawGetString(name))
	}
	g.RawSetString("rawset", L.NewFunction(sb.rawset))
	g.RawSetString("setmetatable", L.NewFunction(sb.setmetatable(base.RawGetString("setmetatable").(*lua.LFunction).GFunction)))
	g.RawSetString("_VERSION", base.RawGetString("_VERSION"))
	g.RawSetString("string", sb.proxy(str))
	g.RawSetString("table", sb.proxy(tbl))
	g.RawSetString("math", sb.proxy(math))
	server := sb.proxy(newServerLib(L, e))
	g.RawSetString("server", server)
	g.RawSetString("redis", server)
	g.RawSetString("cjson", sb.proxy(newCJSONLib(L, sb, limit, e.wd.stopped)))
	sb.globals = g
	// As in Valkey: reading a global that does not exist is an error that
	// names it (a typo fails at once), and globals cannot be set.
	sb.innerMeta = sb.protectedMeta(L.NewFunction(sb.missingGlobal))
	return sb
}

// missingGlobal is the environment's __index: every global is in the
// environment itself, so this runs only for a name that is not.
func (sb *sandbox) missingGlobal(L *lua.LState) int {
	name := L.Get(2)
	if fn, ok := sb.forBounds[name]; ok {
		L.Push(fn)
		return 1
	}
	L.RaiseError("Script attempted to access nonexistent global variable '%s'", L.ToStringMeta(name).String())
	return 0
}

// setmetatable refuses the shared tables and the environment with
// Valkey's words.
func (sb *sandbox) setmetatable(base lua.LGFunction) lua.LGFunction {
	return func(L *lua.LState) int {
		if t, ok := L.Get(1).(*lua.LTable); ok && (sb.readOnly[t] || t == sb.env) {
			raiseInLibrary(L, "Attempt to modify a readonly table")
		}
		return base(L)
	}
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

// raiseInLibrary raises msg without a position, as Valkey's Lua does for
// errors its VM raises inside a library function (rawset on a read-only
// table) and cjson raises.
func raiseInLibrary(L *lua.LState, msg string) {
	L.Error(lua.LString(msg), 0)
}

func refuseWrite(L *lua.LState) int {
	L.RaiseError("Attempt to modify a readonly table")
	return 0
}

// rawset is the base rawset, except on the shared read-only tables.
func (sb *sandbox) rawset(L *lua.LState) int {
	t := L.CheckTable(1)
	if sb.readOnly[t] || t == sb.env {
		raiseInLibrary(L, "Attempt to modify a readonly table")
	}
	L.RawSet(t, L.CheckAny(2), L.CheckAny(3))
	L.SetTop(1)
	return 1
}

// runEnv returns the globals of one run: an empty table that refuses
// writes and reads from a table of its own holding the shared globals,
// KEYS and ARGV, whose misses raise (see missingGlobal). A run that changed
// KEYS or ARGV (see clean) makes the next run get fresh tables.
func (sb *sandbox) runEnv(in Input) *lua.LTable {
	L := sb.L
	if sb.env == nil {
		sb.inner = L.CreateTable(0, 32)
		sb.globals.ForEach(func(k, v lua.LValue) { sb.inner.RawSet(k, v) })
		sb.inner.Metatable = sb.innerMeta
		sb.env = L.NewTable()
		meta := sb.protectedMeta(sb.inner)
		meta.RawSetString("__newindex", L.NewFunction(refuseWrite))
		sb.env.Metatable = meta
		sb.inner.RawSetString("_G", sb.env)
	}
	if in.Args != nil {
		// Rare: fresh tables, and the next keyed run makes its own again.
		argv := L.CreateTable(len(in.Args), 0)
		for i, a := range in.Args {
			argv.RawSetInt(i+1, lua.LString(a))
		}
		keys := L.CreateTable(len(in.Keys), 0)
		for i, k := range in.Keys {
			keys.RawSetInt(i+1, lua.LString(k))
		}
		sb.inner.RawSetString("KEYS", keys)
		sb.inner.RawSetString("ARGV", argv)
		sb.keys, sb.argv = nil, nil
		return sb.env
	}
	if sb.keys == nil {
		sb.keys, sb.argv = L.CreateTable(1, 0), L.CreateTable(2, 0)
		sb.inner.RawSetString("KEYS", sb.keys)
		sb.inner.RawSetString("ARGV", sb.argv)
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
// as runEnv made them: KEYS with one element and ARGV with two, no
// metatables. The environment itself cannot change: it costs a few
// lookups, not a walk.
func (sb *sandbox) clean() {
	if sb.env == nil || sb.keys == nil {
		return
	}
	// The environment and the table behind it cannot change; KEYS and
	// ARGV can.
	if !arrayOf(sb.keys, 1) || !arrayOf(sb.argv, 2) {
		sb.keys, sb.argv = nil, nil
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
