package scripting

import (
	"math"
	"strconv"
	"strings"

	lua "github.com/yuin/gopher-lua"
)

// Numbers as Lua 5.1 (Valkey's Lua) converts them: strings where numbers
// are expected and numbers where strings are. Values from server.call are
// strings, so scripts rely on this everywhere.

// numberToString formats f as Lua 5.1 does ("%.14g").
func numberToString(f float64) string {
	switch {
	case math.IsNaN(f):
		if math.Signbit(f) {
			return "-nan"
		}
		return "nan"
	case math.IsInf(f, 1):
		return "inf"
	case math.IsInf(f, -1):
		return "-inf"
	case f == math.Trunc(f) && math.Abs(f) < 1e14:
		if f == 0 && math.Signbit(f) {
			return "-0"
		}
		return strconv.FormatInt(int64(f), 10)
	}
	return strconv.FormatFloat(f, 'g', 14, 64)
}

// isCSpace is C's isspace in the C locale.
func isCSpace(c byte) bool { return c == ' ' || '\t' <= c && c <= '\r' }

// parseNumber reads s as Lua 5.1's tonumber does with glibc's strtod:
// optional spaces and sign, then a decimal number with an optional
// exponent, a hexadecimal one (0x10, 0x1p4), inf, infinity or nan, then
// optional spaces. A zero byte ends the string, as in C.
func parseNumber(s string) (float64, bool) {
	if i := strings.IndexByte(s, 0); i >= 0 {
		s = s[:i]
	}
	i := 0
	for i < len(s) && isCSpace(s[i]) {
		i++
	}
	j := len(s)
	for j > i && isCSpace(s[j-1]) {
		j--
	}
	body := s[i:j]
	if body == "" {
		return 0, false
	}
	neg := false
	rest := body
	if rest[0] == '+' || rest[0] == '-' {
		neg, rest = rest[0] == '-', rest[1:]
	}
	var v float64
	switch lower := strings.ToLower(rest); {
	case lower == "inf" || lower == "infinity":
		v = math.Inf(1)
	case lower == "nan" || strings.HasPrefix(lower, "nan(") && strings.HasSuffix(lower, ")") && validNanChars(lower[4:len(lower)-1]):
		v = math.NaN()
	case strings.HasPrefix(lower, "0x"):
		f, ok := parseHex(lower[2:])
		if !ok {
			return 0, false
		}
		v = f
	default:
		if !validDecimal(rest) {
			return 0, false
		}
		f, err := strconv.ParseFloat(rest, 64)
		if err != nil && !isRangeError(err) {
			return 0, false
		}
		v = f
	}
	if neg {
		v = -v
	}
	return v, true
}

func isRangeError(err error) bool {
	ne, ok := err.(*strconv.NumError)
	return ok && ne.Err == strconv.ErrRange
}

func validNanChars(s string) bool {
	for i := 0; i < len(s); i++ {
		if !isAlnum(s[i]) && s[i] != '_' {
			return false
		}
	}
	return true
}

func isAlnum(c byte) bool { return isAlpha(c) || '0' <= c && c <= '9' }

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

func isHexDigit(c byte) bool { return isDigit(c) || 'a' <= c|0x20 && c|0x20 <= 'f' }

// validDecimal accepts digits [. digits] [e [sign] digits] with at least one
// mantissa digit: what strtod reads in full.
func validDecimal(s string) bool {
	i, digits := 0, 0
	for i < len(s) && isDigit(s[i]) {
		i, digits = i+1, digits+1
	}
	if i < len(s) && s[i] == '.' {
		i++
		for i < len(s) && isDigit(s[i]) {
			i, digits = i+1, digits+1
		}
	}
	if digits == 0 {
		return false
	}
	if i < len(s) && s[i]|0x20 == 'e' {
		i++
		if i < len(s) && (s[i] == '+' || s[i] == '-') {
			i++
		}
		exp := 0
		for i < len(s) && isDigit(s[i]) {
			i, exp = i+1, exp+1
		}
		if exp == 0 {
			return false
		}
	}
	return i == len(s)
}

// parseHex reads the part after 0x: hex digits [. hex digits] [p [sign]
// digits].
func parseHex(s string) (float64, bool) {
	i, digits := 0, 0
	for i < len(s) && isHexDigit(s[i]) {
		i, digits = i+1, digits+1
	}
	if i < len(s) && s[i] == '.' {
		i++
		for i < len(s) && isHexDigit(s[i]) {
			i, digits = i+1, digits+1
		}
	}
	if digits == 0 {
		return 0, false
	}
	mant, exp := s[:i], "p0"
	if i < len(s) && s[i] == 'p' {
		j := i + 1
		if j < len(s) && (s[j] == '+' || s[j] == '-') {
			j++
		}
		if j == len(s) {
			return 0, false
		}
		for k := j; k < len(s); k++ {
			if !isDigit(s[k]) {
				return 0, false
			}
		}
		exp = s[i:]
	} else if i != len(s) {
		return 0, false
	}
	f, err := strconv.ParseFloat("0x"+mant+exp, 64)
	if err != nil && !isRangeError(err) {
		return 0, false
	}
	return f, true
}

// toNumber converts v as Lua 5.1's lua_tonumber does.
func toNumber(v lua.LValue) (float64, bool) {
	switch v := v.(type) {
	case lua.LNumber:
		return float64(v), true
	case lua.LString:
		return parseNumber(string(v))
	}
	return 0, false
}

// toInteger truncates toward zero, as Lua 5.1 casts a number to an
// integer, keeping far-out values far out.
func toInteger(f float64) int64 {
	switch {
	case math.IsNaN(f):
		return 0
	case f >= 1<<62:
		return 1 << 62
	case f <= -(1 << 62):
		return -(1 << 62)
	}
	return int64(f)
}

// checkInteger is luaL_checkinteger: a number or a numeric string.
func checkInteger(L *lua.LState, n int) int64 {
	f, ok := toNumber(L.Get(n))
	if !ok {
		L.TypeError(n, lua.LTNumber)
	}
	return toInteger(f)
}

// optInteger is luaL_optinteger.
func optInteger(L *lua.LState, n int, def int64) int64 {
	if v := L.Get(n); v == lua.LNil {
		return def
	}
	return checkInteger(L, n)
}

// checkString is luaL_checklstring: a string, or a number as text.
func checkString(L *lua.LState, n int) string {
	switch v := L.Get(n).(type) {
	case lua.LString:
		return string(v)
	case lua.LNumber:
		return numberToString(float64(v))
	}
	L.TypeError(n, lua.LTString)
	return ""
}
