package scripting

import (
	"strings"

	lua "github.com/yuin/gopher-lua"
)

// stringLib holds what the string functions replaced here need from the
// engine: whether the run was stopped, and how big one result may be.
type stringLib struct {
	stopped func() bool
	limit   func() int64
}

// install replaces find, match, gmatch and gsub in the string library.
func (sl *stringLib) install(str *lua.LTable) {
	str.RawSetString("find", &lua.LFunction{IsG: true, GFunction: sl.find})
	str.RawSetString("match", &lua.LFunction{IsG: true, GFunction: sl.match})
	str.RawSetString("gmatch", &lua.LFunction{IsG: true, GFunction: sl.gmatch})
	str.RawSetString("gsub", &lua.LFunction{IsG: true, GFunction: sl.gsub})
}

// guard turns a patternError raised by the matcher into a Lua error; any
// other panic (gopher-lua raises its errors as panics) goes on.
func guard(L *lua.LState) {
	if r := recover(); r != nil {
		if pe, ok := r.(patternError); ok {
			L.RaiseError("%s", pe.msg)
		}
		panic(r)
	}
}

// startIndex is Lua 5.1's init argument: 1-based, negative from the end,
// clamped to the subject.
func startIndex(L *lua.LState, n int, length int) int {
	init := optInteger(L, n, 1)
	if init < 0 {
		init += int64(length) + 1
	}
	init--
	switch {
	case init < 0:
		return 0
	case init > int64(length):
		return length
	}
	return int(init)
}

func (sl *stringLib) find(L *lua.LState) int  { return sl.findAux(L, true) }
func (sl *stringLib) match(L *lua.LState) int { return sl.findAux(L, false) }
func pushCapture(L *lua.LState, c captureValue) {
	if c.isPos {
		L.Push(lua.LNumber(c.pos))
	} else {
		L.Push(lua.LString(c.str))
	}
}

// pushCaptures pushes the captures of a match from s to e (the whole match
// when there are none and whole is true) and returns how many.
func pushCaptures(L *lua.LState, m *matcher, s, e int, whole bool) int {
	n := m.level
	if n == 0 && whole {
		n = 1
	}
	for i := 0; i < n; i++ {
		pushCapture(L, m.captureAt(i, s, e))
	}
	return n
}

// findAux is string.find (find) and string.match.
func (sl *stringLib) findAux(L *lua.LState, find bool) (n int) {
	src, pat := checkString(L, 1), checkString(L, 2)
	init := startIndex(L, 3, len(src))
	if find && (lua.LVAsBool(L.Get(4)) || !hasSpecials(pat)) {
		i := strings.Index(src[init:], pat)
		if i < 0 {
			L.Push(lua.LNil)
			return 1
		}
		L.Push(lua.LNumber(init + i + 1))
		L.Push(lua.LNumber(init + i + len(pat)))
		return 2
	}
	defer guard(L)
	m := newMatcher(src, pat, sl.stopped)
	p, anchor := 0, strings.HasPrefix(m.pat, "^")
	if anchor {
		p = 1
	}
	for s := init; ; s++ {
		m.reset()
		if e := m.match(s, p); e != -1 {
			if find {
				L.Push(lua.LNumber(s + 1))
				L.Push(lua.LNumber(e))
				return pushCaptures(L, m, -1, -1, false) + 2
			}
			return pushCaptures(L, m, s, e, true)
		}
		if s >= len(src) || anchor {
			break
		}
	}
	L.Push(lua.LNil)
	return 1
}

// gmatch is string.gmatch: an iterator over the matches, one match per
// call, so that nothing is computed ahead. A leading '^' is an ordinary
// byte here, as in Lua 5.1.
func (sl *stringLib) gmatch(L *lua.LState) int {
	src, pat := checkString(L, 1), checkString(L, 2)
	pos := 0
	L.Push(L.NewFunction(func(L *lua.LState) int {
		defer guard(L)
		m := newMatcher(src, pat, sl.stopped)
		for s := pos; s <= len(src); s++ {
			m.reset()
			if e := m.match(s, 0); e != -1 {
				pos = e
				if e == s {
					pos++ // an empty match: move on
				}
				return pushCaptures(L, m, s, e, true)
			}
		}
		pos = len(src) + 1
		return 0
	}))
	return 1
}

// gsub is string.gsub. The result is checked against the memory limit as
// it grows: a function or table replacement can make it any size.
func (sl *stringLib) gsub(L *lua.LState) int {
	src, pat := checkString(L, 1), checkString(L, 2)
	repl := L.Get(3)
	switch repl.Type() {
	case lua.LTNumber, lua.LTString, lua.LTFunction, lua.LTTable:
	default:
		L.ArgError(3, "string/function/table expected")
	}
	maxN := optInteger(L, 4, int64(len(src))+1)
	defer guard(L)
	m := newMatcher(src, pat, sl.stopped)
	p, anchor := 0, strings.HasPrefix(m.pat, "^")
	if anchor {
		p = 1
	}
	limit := sl.limit()
	var b strings.Builder
	grow := func(s string) {
		if int64(b.Len())+int64(len(s)) > limit {
			L.RaiseError("string.gsub: result over the %d-byte limit (iungo.script-memory-mb)", limit)
		}
		b.WriteString(s)
	}
	s, n := 0, int64(0)
	for n < maxN {
		m.reset()
		e := m.match(s, p)
		if e != -1 {
			n++
			grow(sl.replacement(L, m, repl, s, e))
		}
		if e != -1 && e > s {
			s = e
		} else if s < len(src) {
			grow(src[s : s+1])
			s++
		} else {
			break
		}
		if anchor {
			break
		}
	}
	grow(src[s:])
	L.Push(lua.LString(b.String()))
	L.Push(lua.LNumber(n))
	return 2
}

// replacement is what gsub puts in place of the match from s to e.
func (sl *stringLib) replacement(L *lua.LState, m *matcher, repl lua.LValue, s, e int) string {
	whole := m.src[s:e]
	var v lua.LValue
	switch r := repl.(type) {
	case lua.LString, lua.LNumber:
		return expandReplacement(m, lua.LVAsString(r), s, e)
	case *lua.LTable:
		v = L.GetTable(r, captureLua(m.captureAt(0, s, e)))
	case *lua.LFunction:
		L.Push(r)
		n := pushCaptures(L, m, s, e, true)
		L.Call(n, 1)
		v = L.Get(-1)
		L.Pop(1)
	}
	switch v := v.(type) {
	case lua.LString:
		return string(v)
	case lua.LNumber:
		return numberToString(float64(v))
	case *lua.LNilType, lua.LBool:
		if !lua.LVAsBool(v) {
			return whole // false or nil: keep the original
		}
	}
	L.RaiseError("invalid replacement value (a %s)", v.Type().String())
	return ""
}

func captureLua(c captureValue) lua.LValue {
	if c.isPos {
		return lua.LNumber(c.pos)
	}
	return lua.LString(c.str)
}

// expandReplacement applies a replacement string: %0 is the match, %1-%9
// captures, % before any other byte that byte.
func expandReplacement(m *matcher, repl string, s, e int) string {
	if strings.IndexByte(repl, '%') < 0 {
		return repl
	}
	var b strings.Builder
	for i := 0; i < len(repl); i++ {
		c := repl[i]
		if c != '%' {
			b.WriteByte(c)
			continue
		}
		i++
		c = 0 // a trailing '%' escapes the C string's terminator
		if i < len(repl) {
			c = repl[i]
		}
		if c < '0' || c > '9' {
			b.WriteByte(c)
			continue
		}
		v := captureValue{str: m.src[s:e]}
		if c != '0' {
			v = m.captureAt(int(c-'1'), s, e)
		}
		if v.isPos {
			b.WriteString(numberToString(float64(v.pos)))
		} else {
			b.WriteString(v.str)
		}
	}
	return b.String()
}
