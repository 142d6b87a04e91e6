package scripting

import (
	"math"
	"sort"
	"strings"
	"unsafe"

	lua "github.com/yuin/gopher-lua"
)

// Builtins that can run long inside one Lua instruction. Go runs a builtin
// to its end without looking at the watchdog, so each of these is our own:
// it refuses a result over the memory limit before allocating it, and asks
// the watchdog every chunkBytes of work (or stopEvery comparisons) whether
// the run was stopped. find, match, gmatch and gsub are in strlib.go.

// maxFormatWidth is Lua 5.1's own limit on a format's width and precision.
const maxFormatWidth = 99

// chunkBytes is how much a builtin copies between two looks at the
// watchdog: about a tenth of a millisecond.
const chunkBytes = 1 << 20

// installBuiltins replaces string.rep, upper, lower, reverse and format's
// size check, and table.concat and sort, in the library tables.
func (sl *stringLib) installBuiltins(str, tbl *lua.LTable) {
	str.RawSetString("rep", &lua.LFunction{IsG: true, GFunction: sl.rep})
	str.RawSetString("upper", &lua.LFunction{IsG: true, GFunction: sl.mapBytes(upper)})
	str.RawSetString("lower", &lua.LFunction{IsG: true, GFunction: sl.mapBytes(lower)})
	str.RawSetString("reverse", &lua.LFunction{IsG: true, GFunction: sl.reverse})
	format := str.RawGetString("format").(*lua.LFunction)
	str.RawSetString("format", &lua.LFunction{IsG: true, GFunction: func(L *lua.LState) int {
		sl.checkFormat(L)
		return format.GFunction(L)
	}})
	tbl.RawSetString("concat", &lua.LFunction{IsG: true, GFunction: sl.concat})
	tbl.RawSetString("sort", &lua.LFunction{IsG: true, GFunction: sl.sort})
}

// bytesString hands b to Lua without copying it: b is never written again.
func bytesString(b []byte) lua.LString {
	if len(b) == 0 {
		return ""
	}
	return lua.LString(unsafe.String(&b[0], len(b)))
}

// over raises an error when a result of n bytes would pass the limit.
func (sl *stringLib) over(L *lua.LState, what string, n int64) {
	if max := sl.limit(); n > max {
		L.RaiseError("%s: result of %d bytes is over the %d-byte limit (iungo.script-memory-mb)", what, n, max)
	}
}

// check raises an error once the watchdog stopped the run.
func (sl *stringLib) check(L *lua.LState) {
	if sl.stopped() {
		L.RaiseError("%s", errStoppedMessage)
	}
}

// rep is string.rep(s, n), built by doubling in chunks.
func (sl *stringLib) rep(L *lua.LState) int {
	s, n := checkString(L, 1), checkInteger(L, 2)
	if n <= 0 || s == "" {
		L.Push(lua.LString(""))
		return 1
	}
	total := int64(len(s)) * n
	if n > 0 && total/n != int64(len(s)) {
		total = 1 << 62 // overflow
	}
	sl.over(L, "string.rep", total)
	b := make([]byte, total)
	filled := copy(b, s)
	for filled < len(b) {
		filled += copy(b[filled:], b[:min(filled, chunkBytes)])
		sl.check(L)
	}
	L.Push(bytesString(b))
	return 1
}

func upper(c byte) byte {
	if 'a' <= c && c <= 'z' {
		return c - 32
	}
	return c
}

func lower(c byte) byte {
	if 'A' <= c && c <= 'Z' {
		return c + 32
	}
	return c
}

// mapBytes is string.upper or lower: byte by byte in the C locale, as Lua
// 5.1 does (Go's strings.ToUpper would also change UTF-8 letters).
func (sl *stringLib) mapBytes(f func(byte) byte) lua.LGFunction {
	return func(L *lua.LState) int {
		s := checkString(L, 1)
		b := make([]byte, len(s))
		for i := 0; i < len(s); i++ {
			b[i] = f(s[i])
			if i%chunkBytes == chunkBytes-1 {
				sl.check(L)
			}
		}
		L.Push(bytesString(b))
		return 1
	}
}

func (sl *stringLib) reverse(L *lua.LState) int {
	s := checkString(L, 1)
	b := make([]byte, len(s))
	for i := 0; i < len(s); i++ {
		b[len(s)-1-i] = s[i]
		if i%chunkBytes == chunkBytes-1 {
			sl.check(L)
		}
	}
	L.Push(bytesString(b))
	return 1
}

// checkFormat refuses widths and precisions past two digits, as Lua 5.1
// does, and a result that would pass the limit: every argument as text
// plus the format itself bounds it.
func (sl *stringLib) checkFormat(L *lua.LState) {
	f := checkString(L, 1)
	size := int64(len(f))
	for i := 2; i <= L.GetTop(); i++ {
		if s, ok := L.Get(i).(lua.LString); ok {
			size += int64(len(s))
		}
		size += maxFormatWidth + 32 // a number's text, or a width's padding
	}
	sl.over(L, "string.format", size)
	// As Lua 5.1: numeric strings are numbers to numeric conversions, and
	// infinities and NaN print as C prints them (Go would say +Inf).
	rewritten := false
	arg := 1
	for i := 0; i < len(f); i++ {
		if f[i] != '%' {
			continue
		}
		start := i
		i++
		if i < len(f) && f[i] == '%' {
			continue
		}
		flags := i
		for i < len(f) && (f[i] == '-' || f[i] == '+' || f[i] == ' ' || f[i] == '#' || f[i] == '0') {
			i++
		}
		flagText := f[flags:i]
		widthStart := i
		digits := 0
		for i < len(f) && f[i] >= '0' && f[i] <= '9' {
			i, digits = i+1, digits+1
		}
		width := f[widthStart:i]
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
		arg++
		if i < len(f) && f[i] == 'q' {
			// Lua 5.1's %q: a newline stays a (backslashed) newline.
			prefix := f[:start] + "%s"
			f, i, rewritten = prefix+f[i+1:], len(prefix)-1, true
			L.Replace(arg, lua.LString(quoteLua(checkString(L, arg))))
			continue
		}
		if i < len(f) && f[i] == 's' {
			if n, ok := L.Get(arg).(lua.LNumber); ok {
				L.Replace(arg, lua.LString(numberToString(float64(n))))
			}
			continue
		}
		if i >= len(f) || !strings.ContainsRune("dioxXcueEfgG", rune(f[i])) {
			continue
		}
		coerceArg(L, arg)
		n, ok := L.Get(arg).(lua.LNumber)
		if !ok || !strings.ContainsRune("eEfgG", rune(f[i])) || !math.IsInf(float64(n), 0) && !math.IsNaN(float64(n)) {
			continue
		}
		word := numberToString(float64(n))
		if strings.Contains(flagText, "+") && word[0] != '-' {
			word = "+" + word
		} else if strings.Contains(flagText, " ") && word[0] != '-' {
			word = " " + word
		}
		if f[i] == 'E' || f[i] == 'G' {
			word = strings.ToUpper(word)
		}
		spec := "%" + width + "s"
		if strings.Contains(flagText, "-") {
			spec = "%-" + width + "s"
		}
		prefix := f[:start] + spec
		f, i, rewritten = prefix+f[i+1:], len(prefix)-1, true
		L.Replace(arg, lua.LString(word))
	}
	if rewritten {
		L.Replace(1, lua.LString(f))
	}
}

// quoteLua is string.format's %q in Lua 5.1.
func quoteLua(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '"', '\\', '\n':
			b.WriteByte('\\')
			b.WriteByte(c)
		case '\r':
			b.WriteString("\\r")
		case 0:
			b.WriteString("\\000")
		default:
			b.WriteByte(c)
		}
	}
	b.WriteByte('"')
	return b.String()
}

// concat is table.concat(t, sep, i, j) as in Lua 5.1: strings and numbers
// from t[i] to t[j] (default 1 and #t), raw, joined by sep.
func (sl *stringLib) concat(L *lua.LState) int {
	t := L.CheckTable(1)
	sep := ""
	if L.Get(2) != lua.LNil {
		sep = checkString(L, 2)
	}
	i := optInteger(L, 3, 1)
	j := int64(0)
	if L.Get(4) == lua.LNil {
		j = int64(t.Len())
	} else {
		j = checkInteger(L, 4)
	}
	parts := make([]string, 0, max(min(j-i+1, 1<<16), 0))
	total := int64(0)
	for k := i; k <= j; k++ {
		var s string
		switch v := t.RawGetInt(int(k)).(type) {
		case lua.LString:
			s = string(v)
		case lua.LNumber:
			s = numberToString(float64(v))
		default:
			L.RaiseError("invalid value (at index %d) in table for 'concat'", k)
		}
		if total += int64(len(s)) + int64(len(sep)); k%4096 == 0 {
			sl.over(L, "table.concat", total)
			sl.check(L)
		}
		parts = append(parts, s)
	}
	sl.over(L, "table.concat", total)
	var b strings.Builder
	b.Grow(int(total))
	for k, s := range parts {
		if k > 0 {
			b.WriteString(sep)
		}
		b.WriteString(s)
		if k%4096 == 4095 {
			sl.check(L)
		}
	}
	L.Push(lua.LString(b.String()))
	return 1
}

// sort is table.sort(t, comp): t[1] to t[#t], in place, with < or comp.
func (sl *stringLib) sort(L *lua.LState) int {
	t := L.CheckTable(1)
	var comp *lua.LFunction
	if L.GetTop() >= 2 && L.Get(2) != lua.LNil {
		comp = L.CheckFunction(2)
	}
	n := t.Len()
	values := make([]lua.LValue, n)
	for i := range values {
		values[i] = t.RawGetInt(i + 1)
	}
	s := &sorter{L: L, sl: sl, values: values, comp: comp}
	sort.Sort(s)
	for i, v := range values {
		t.RawSetInt(i+1, v)
	}
	return 0
}

type sorter struct {
	L      *lua.LState
	sl     *stringLib
	values []lua.LValue
	comp   *lua.LFunction
	steps  int
}

func (s *sorter) Len() int      { return len(s.values) }
func (s *sorter) Swap(i, j int) { s.values[i], s.values[j] = s.values[j], s.values[i] }

func (s *sorter) Less(i, j int) bool {
	if s.steps++; s.steps%stopEvery == 0 {
		s.sl.check(s.L)
	}
	if s.comp == nil {
		return s.L.LessThan(s.values[i], s.values[j])
	}
	s.L.Push(s.comp)
	s.L.Push(s.values[i])
	s.L.Push(s.values[j])
	s.L.Call(2, 1)
	less := lua.LVAsBool(s.L.Get(-1))
	s.L.Pop(1)
	return less
}
