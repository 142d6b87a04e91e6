package scripting

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"unicode/utf16"
	"unicode/utf8"

	lua "github.com/yuin/gopher-lua"
)

// cjson follows the lua-cjson 2.1 that Valkey bundles, with its defaults:
// numbers as %.14g, '/' escaped, tables with only positive integer keys are
// arrays (holes become null, excessively sparse ones are refused), others are
// objects, empty tables encode as {}, JSON null decodes to cjson.null.
// Object keys come out in insertion order, where Valkey's Lua uses its hash
// order: neither is promised to clients.
const cjsonMaxDepth = 1000

func newCJSONLib(L *lua.LState, sb *sandbox, limit func() int64, stopped func() bool) *lua.LTable {
	null := L.NewUserData()
	null.Metatable = sb.protectedMeta(lua.LNil)
	c := &cjson{null: null, limit: limit, stopped: stopped}
	t := L.NewTable()
	t.RawSetString("encode", L.NewFunction(c.encode))
	t.RawSetString("decode", L.NewFunction(c.decode))
	t.RawSetString("null", null)
	return t
}

type cjson struct {
	null    *lua.LUserData
	limit   func() int64
	stopped func() bool // the watchdog stopped the run: checked every stopEvery values
	steps   int
}

// stop reports, every stopEvery values, whether the run was stopped.
func (c *cjson) stop() bool {
	c.steps++
	return c.steps%stopEvery == 0 && c.stopped()
}

func (c *cjson) encode(L *lua.LState) int {
	if L.GetTop() != 1 {
		L.ArgError(1, "expected 1 argument")
	}
	var b strings.Builder
	if err := c.appendValue(&b, L.Get(1), 0); err != "" {
		L.RaiseError("%s", err)
	}
	L.Push(lua.LString(b.String()))
	return 1
}

func (c *cjson) appendValue(b *strings.Builder, v lua.LValue, depth int) string {
	if max := c.limit(); int64(b.Len()) > max {
		return fmt.Sprintf("Cannot serialise: result is over the %d-byte limit (iungo.script-memory-mb)", max)
	}
	if c.stop() {
		return errStoppedMessage
	}
	switch v := v.(type) {
	case lua.LString:
		appendJSONString(b, string(v))
	case lua.LNumber:
		f := float64(v)
		if math.IsNaN(f) || math.IsInf(f, 0) {
			return "Cannot serialise number: must not be NaN or Inf"
		}
		b.WriteString(strconv.FormatFloat(f, 'g', 14, 64))
	case lua.LBool:
		b.WriteString(strconv.FormatBool(bool(v)))
	case *lua.LNilType:
		b.WriteString("null")
	case *lua.LUserData:
		if v != c.null {
			return "Cannot serialise userdata: type not supported"
		}
		b.WriteString("null")
	case *lua.LTable:
		depth++
		if depth > cjsonMaxDepth {
			return fmt.Sprintf("Cannot serialise, excessive nesting (%d)", depth)
		}
		n, sparse := arrayLength(v)
		if sparse != "" {
			return sparse
		}
		if n > 0 {
			b.WriteByte('[')
			for i := 1; i <= n; i++ {
				if i > 1 {
					b.WriteByte(',')
				}
				if err := c.appendValue(b, v.RawGetInt(i), depth); err != "" {
					return err
				}
			}
			b.WriteByte(']')
			return ""
		}
		// Next, unlike ForEach, follows insertion order: the same table
		// always encodes the same way.
		b.WriteByte('{')
		first := true
		for k, val := v.Next(lua.LNil); k != lua.LNil; k, val = v.Next(k) {
			if !first {
				b.WriteByte(',')
			}
			first = false
			switch k := k.(type) {
			case lua.LString:
				appendJSONString(b, string(k))
			case lua.LNumber:
				b.WriteByte('"')
				b.WriteString(strconv.FormatFloat(float64(k), 'g', 14, 64))
				b.WriteByte('"')
			default:
				return "Cannot serialise " + k.Type().String() + ": table key must be a number or string"
			}
			b.WriteByte(':')
			if err := c.appendValue(b, val, depth); err != "" {
				return err
			}
		}
		b.WriteByte('}')
	default:
		return "Cannot serialise " + v.Type().String() + ": type not supported"
	}
	return ""
}

// arrayLength is lua-cjson's test: the largest key if every key is a
// positive integer and the table is not excessively sparse, else 0.
func arrayLength(t *lua.LTable) (int, string) {
	maxKey, items := 0, 0
	array := true
	t.ForEach(func(k, _ lua.LValue) {
		n, ok := k.(lua.LNumber)
		if !ok || float64(n) < 1 || float64(n) != math.Floor(float64(n)) {
			array = false
			return
		}
		maxKey = max(maxKey, int(n))
		items++
	})
	if !array {
		return 0, ""
	}
	if maxKey > items*2 && maxKey > 10 {
		return 0, "Cannot serialise table: excessively sparse array"
	}
	return maxKey, ""
}

func appendJSONString(b *strings.Builder, s string) {
	const hex = "0123456789abcdef"
	b.WriteByte('"')
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '"':
			b.WriteString(`\"`)
		case '\\':
			b.WriteString(`\\`)
		case '/':
			b.WriteString(`\/`)
		case '\b':
			b.WriteString(`\b`)
		case '\f':
			b.WriteString(`\f`)
		case '\n':
			b.WriteString(`\n`)
		case '\r':
			b.WriteString(`\r`)
		case '\t':
			b.WriteString(`\t`)
		default:
			if c < 0x20 || c == 0x7f {
				b.WriteString(`\u00`)
				b.WriteByte(hex[c>>4])
				b.WriteByte(hex[c&0xf])
			} else {
				b.WriteByte(c)
			}
		}
	}
	b.WriteByte('"')
}

func (c *cjson) decode(L *lua.LState) int {
	if L.GetTop() != 1 {
		L.ArgError(1, "expected 1 argument")
	}
	d := &jsonDecoder{L: L, s: L.CheckString(1), null: c.null, c: c}
	d.skipSpace()
	v := d.value(0)
	d.skipSpace()
	if d.pos < len(d.s) {
		d.fail("the end", "trailing data")
	}
	L.Push(v)
	return 1
}

type jsonDecoder struct {
	L    *lua.LState
	s    string
	pos  int
	null *lua.LUserData
	c    *cjson
}

// fail raises lua-cjson's message: "Expected <what> but found <found> at
// character <n>".
func (d *jsonDecoder) fail(what, found string) {
	raiseInLibrary(d.L, fmt.Sprintf("Expected %s but found %s at character %d", what, found, d.pos+1))
}

func (d *jsonDecoder) skipSpace() {
	for d.pos < len(d.s) {
		switch d.s[d.pos] {
		case ' ', '\t', '\n', '\r':
			d.pos++
		default:
			return
		}
	}
}

func (d *jsonDecoder) value(depth int) lua.LValue {
	if d.c.stop() {
		d.L.RaiseError("%s", errStoppedMessage)
	}
	if d.pos >= len(d.s) {
		d.fail("value", "T_END")
	}
	switch c := d.s[d.pos]; {
	case c == '{':
		return d.object(depth + 1)
	case c == '[':
		return d.array(depth + 1)
	case c == '"':
		return lua.LString(d.str())
	case c == '-' || c >= '0' && c <= '9':
		return d.number()
	case strings.HasPrefix(d.s[d.pos:], "true"):
		d.pos += 4
		return lua.LTrue
	case strings.HasPrefix(d.s[d.pos:], "false"):
		d.pos += 5
		return lua.LFalse
	case strings.HasPrefix(d.s[d.pos:], "null"):
		d.pos += 4
		return d.null
	}
	d.fail("value", "invalid token")
	return nil
}

func (d *jsonDecoder) nested(depth int) {
	if depth > cjsonMaxDepth {
		raiseInLibrary(d.L, fmt.Sprintf("Found too many nested data structures (%d) at character %d", depth, d.pos+1))
	}
}

func (d *jsonDecoder) object(depth int) lua.LValue {
	d.nested(depth)
	d.pos++ // '{'
	t := d.L.NewTable()
	d.skipSpace()
	if d.eat('}') {
		return t
	}
	for {
		d.skipSpace()
		if d.pos >= len(d.s) || d.s[d.pos] != '"' {
			d.fail("object key string", "invalid token")
		}
		k := d.str()
		d.skipSpace()
		if !d.eat(':') {
			d.fail("colon", "invalid token")
		}
		d.skipSpace()
		t.RawSetString(k, d.value(depth))
		d.skipSpace()
		if d.eat(',') {
			continue
		}
		if d.eat('}') {
			return t
		}
		d.fail("comma or object end", "invalid token")
	}
}

// eat consumes c if it comes next.
func (d *jsonDecoder) eat(c byte) bool {
	if d.pos < len(d.s) && d.s[d.pos] == c {
		d.pos++
		return true
	}
	return false
}

func (d *jsonDecoder) array(depth int) lua.LValue {
	d.nested(depth)
	d.pos++ // '['
	t := d.L.NewTable()
	d.skipSpace()
	if d.eat(']') {
		return t
	}
	for i := 1; ; i++ {
		d.skipSpace()
		t.RawSetInt(i, d.value(depth))
		d.skipSpace()
		if d.eat(',') {
			continue
		}
		if d.eat(']') {
			return t
		}
		d.fail("comma or array end", "invalid token")
	}
}

func (d *jsonDecoder) number() lua.LValue {
	start := d.pos
	for d.pos < len(d.s) && strings.IndexByte("+-0123456789.eE", d.s[d.pos]) >= 0 {
		d.pos++
	}
	f, err := strconv.ParseFloat(d.s[start:d.pos], 64)
	if err != nil && !strings.Contains(err.Error(), "range") {
		d.pos = start
		d.fail("value", "invalid number")
	}
	return lua.LNumber(f)
}

func (d *jsonDecoder) str() string {
	d.pos++ // opening quote
	var b strings.Builder
	for {
		if d.pos >= len(d.s) {
			d.fail("string end", "T_END")
		}
		c := d.s[d.pos]
		switch {
		case c == '"':
			d.pos++
			return b.String()
		case c < 0x20:
			d.fail("string", "control character")
		case c != '\\':
			b.WriteByte(c)
			d.pos++
			continue
		}
		if d.pos+1 >= len(d.s) {
			d.fail("escape", "T_END")
		}
		esc := d.s[d.pos+1]
		d.pos += 2
		switch esc {
		case '"', '\\', '/':
			b.WriteByte(esc)
		case 'b':
			b.WriteByte('\b')
		case 'f':
			b.WriteByte('\f')
		case 'n':
			b.WriteByte('\n')
		case 'r':
			b.WriteByte('\r')
		case 't':
			b.WriteByte('\t')
		case 'u':
			r := d.hex4()
			if utf16.IsSurrogate(r) {
				if !strings.HasPrefix(d.s[d.pos:], `\u`) {
					d.fail("surrogate pair", "invalid unicode escape")
				}
				d.pos += 2
				r = utf16.DecodeRune(r, d.hex4())
				if r == utf8.RuneError {
					d.fail("surrogate pair", "invalid unicode escape")
				}
			}
			b.WriteRune(r)
		default:
			d.pos -= 2
			d.fail("escape", "invalid escape code")
		}
	}
}

func (d *jsonDecoder) hex4() rune {
	if d.pos+4 > len(d.s) {
		d.fail("unicode escape", "T_END")
	}
	v, err := strconv.ParseUint(d.s[d.pos:d.pos+4], 16, 32)
	if err != nil {
		d.fail("unicode escape", "invalid unicode escape code")
	}
	d.pos += 4
	return rune(v)
}
