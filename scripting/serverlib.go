package scripting

import (
	"fmt"
	"math"
	"strconv"
	"strings"

	lua "github.com/yuin/gopher-lua"
)

// ReplyKind is the RESP2 type of a server reply.
type ReplyKind uint8

// Reply kinds.
const (
	ReplyNull ReplyKind = iota
	ReplyString
	ReplyStatus
	ReplyError
	ReplyInteger
	ReplyArray
)

// Reply is a server reply as RESP2 shapes it.
type Reply struct {
	Kind  ReplyKind
	Str   string // String, Status and Error text
	Int   int64
	Elems []Reply
}

// ErrorReply returns an error reply with msg.
func ErrorReply(msg string) Reply { return Reply{Kind: ReplyError, Str: msg} }

// denied commands are refused before they reach the server. Commands the
// server flags noscript (CONFIG, SHUTDOWN, MODULE, EVAL, FCALL, SCRIPT,
// MULTI, ...) are refused by the server itself, since calls run in script mode.
var denied = map[string]string{
	"iungo":    "trigger scripts cannot manage triggers",
	"flushall": "trigger scripts cannot flush the whole server",
	"flushdb":  "trigger scripts cannot flush a database",
	"swapdb":   "trigger scripts cannot swap databases",
	"select":   "trigger scripts run in the event's database; SELECT has no effect there",
	"debug":    "trigger scripts cannot call DEBUG",
}

// deniedLengths has bit n set when a denied name is n bytes long: most
// calls (GET, SET, HSET, INCR, ...) are cleared without a map lookup.
var deniedLengths = func() (bits uint64) {
	for name := range denied {
		bits |= 1 << len(name)
	}
	return bits
}()

// checkDenied returns why cmd is refused, or "".
func checkDenied(cmd string) string {
	var buf [16]byte
	if len(cmd) > len(buf) || deniedLengths&(1<<len(cmd)) == 0 {
		return ""
	}
	for i := 0; i < len(cmd); i++ {
		c := cmd[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		buf[i] = c
	}
	return denied[string(buf[:len(cmd)])]
}

func newServerLib(L *lua.LState, e *Engine) *lua.LTable {
	t := L.NewTable()
	L.SetFuncs(t, map[string]lua.LGFunction{
		"call":          func(L *lua.LState) int { return e.serverCall(L, true) },
		"pcall":         func(L *lua.LState) int { return e.serverCall(L, false) },
		"error_reply":   errorReplyFn,
		"status_reply":  statusReplyFn,
		"log":           e.serverLog,
		"acl_check_cmd": e.aclCheckCmd,
		"old_value":     e.oldValue,
	})
	t.RawSetString("LOG_DEBUG", lua.LNumber(LogDebug))
	t.RawSetString("LOG_VERBOSE", lua.LNumber(LogVerbose))
	t.RawSetString("LOG_NOTICE", lua.LNumber(LogNotice))
	t.RawSetString("LOG_WARNING", lua.LNumber(LogWarning))
	setVersionConstants(t, e.opts.ServerVersion)
	return t
}

// setVersionConstants sets what Valkey's Lua reports of the server: from
// 8.0 REDIS_VERSION stays at 7.2.4, the Redis version Valkey is compatible
// with, and VALKEY_VERSION and SERVER_NAME tell the real one.
func setVersionConstants(t *lua.LTable, v int) {
	if v == 0 {
		return
	}
	name := func(v int) lua.LString {
		return lua.LString(fmt.Sprintf("%d.%d.%d", v>>16&0xff, v>>8&0xff, v&0xff))
	}
	const redisCompat = 0x070204
	redis := v
	if v >= 0x080000 {
		redis = redisCompat
		t.RawSetString("VALKEY_VERSION", name(v))
		t.RawSetString("VALKEY_VERSION_NUM", lua.LNumber(v))
		t.RawSetString("SERVER_NAME", lua.LString("valkey"))
	}
	t.RawSetString("REDIS_VERSION", name(redis))
	t.RawSetString("REDIS_VERSION_NUM", lua.LNumber(redis))
}

// serverCall is server.call (raise on error) and server.pcall (return the
// error table).
func (e *Engine) serverCall(L *lua.LState, raise bool) int {
	fail := func(msg string) int {
		t := errorTable(L, msg)
		if raise {
			e.raise(L, t)
		}
		L.Push(t)
		return 1
	}
	args, msg := callArgs(L, e.args[:0])
	e.args = args[:0]
	if msg != "" {
		return fail(msg)
	}
	if why := checkDenied(args[0]); why != "" {
		return fail("ERR command '" + strings.ToLower(args[0]) + "' is not allowed: " + why)
	}
	if e.host == nil {
		return fail("ERR server.call is only available while a trigger runs")
	}
	if len(args) > 3 && (strings.EqualFold(args[0], "sort") || strings.EqualFold(args[0], "sort_ro")) {
		args = e.sortForScript(args)
	}
	r := e.host.Call(args)
	clear(args)
	if r.Kind == ReplyError && raise {
		e.raise(L, errorTable(L, r.Str))
	}
	L.Push(toLua(L, r))
	return 1
}

// sortForScript makes SORT of a set by a constant pattern (BY nosort)
// sort its members as strings, as the server does for scripts so that
// their effects do not depend on a set's order: the BY goes and ALPHA
// comes. With STORE the server does it for every client.
func (e *Engine) sortForScript(args []string) []string {
	by := -1
	for j := 2; j < len(args); j++ {
		switch {
		case strings.EqualFold(args[j], "by") && j+1 < len(args):
			if !strings.Contains(args[j+1], "*") {
				by = j
			}
			j++
		case strings.EqualFold(args[j], "limit"):
			j += 2
		case strings.EqualFold(args[j], "get"):
			j++
		case strings.EqualFold(args[j], "store"):
			return args
		}
	}
	if by < 0 {
		return args
	}
	if t := e.host.Call([]string{"TYPE", args[1]}); t.Kind != ReplyStatus || t.Str != "set" {
		return args
	}
	out := append(append(append([]string(nil), args[:by]...), args[by+2:]...), "ALPHA")
	return out
}

// oldValue is server.old_value(): what the key held before the event
// removed or replaced it, as the matching read returns it; nil when the
// event did not (or outside a trigger), nil and why when it was not kept.
func (e *Engine) oldValue(L *lua.LState) int {
	if e.old == nil {
		L.Push(lua.LNil)
		return 1
	}
	if e.old.Why != "" {
		L.Push(lua.LNil)
		L.Push(lua.LString(e.old.Why))
		return 2
	}
	L.Push(toLua(L, e.old.Value))
	return 1
}

// callArgs appends the call's arguments (the Lua arguments of a server
// function) to args, or says what is wrong with them.
func callArgs(L *lua.LState, args []string) ([]string, string) {
	n := L.GetTop()
	if n == 0 {
		return args, "ERR Please specify at least one argument for this call"
	}
	for i := 1; i <= n; i++ {
		switch v := L.Get(i).(type) {
		case lua.LString:
			args = append(args, string(v))
		case lua.LNumber:
			args = append(args, formatArg(float64(v)))
		default:
			return args, "ERR Command arguments must be strings or integers"
		}
	}
	return args, ""
}

// aclCheckCmd is server.acl_check_cmd(command, args...): whether the
// run's user may run it.
func (e *Engine) aclCheckCmd(L *lua.LState) int {
	args, msg := callArgs(L, nil)
	if msg != "" {
		e.raise(L, errorTable(L, msg))
	}
	if e.host == nil {
		e.raise(L, errorTable(L, "ERR server.acl_check_cmd is only available while a trigger runs"))
	}
	allowed, known := e.host.CheckACL(args)
	if !known {
		e.raise(L, errorTable(L, "ERR Invalid command passed to server.acl_check_cmd()"))
	}
	L.Push(lua.LBool(allowed))
	return 1
}

// raise raises server.call's error table, remembering the line of the
// call: the table has no room for it (scripts compare it with EVAL's),
// and a run that fails on it names the line.
func (e *Engine) raise(L *lua.LState, t *lua.LTable) {
	e.raised, e.raisedAt = t, L.Where(1)
	L.Error(t, 0)
}

// formatArg turns a Lua number into a command argument as Valkey does:
// integers as integers, others in the shortest form that reads back the same.
func formatArg(f float64) string {
	const limit = math.MaxInt64 / 2
	if f >= -limit && f <= limit && f == math.Trunc(f) {
		return strconv.FormatInt(int64(f), 10)
	}
	return formatShortest(f)
}

// formatShortest lays the shortest digits of f out like Valkey's fpconv_dtoa.
func formatShortest(f float64) string {
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
	}
	sign := ""
	if math.Signbit(f) {
		sign, f = "-", -f
	}
	e := strconv.FormatFloat(f, 'e', -1, 64) // d.ddde±XX
	mant, expStr, _ := strings.Cut(e, "e")
	digits := strings.Replace(mant, ".", "", 1)
	x, _ := strconv.Atoi(expStr)
	nd := len(digits)
	k := x - nd + 1 // decimal exponent of the last digit
	exp := x
	if exp < 0 {
		exp = -exp
	}
	var b strings.Builder
	b.WriteString(sign)
	switch {
	case k >= 0 && exp < nd+7:
		b.WriteString(digits)
		b.WriteString(strings.Repeat("0", k))
	case k < 0 && (k > -7 || exp < 4):
		if off := nd + k; off <= 0 {
			b.WriteString("0.")
			b.WriteString(strings.Repeat("0", -off))
			b.WriteString(digits)
		} else {
			b.WriteString(digits[:off])
			b.WriteByte('.')
			b.WriteString(digits[off:])
		}
	default:
		b.WriteByte(digits[0])
		if nd > 1 {
			b.WriteByte('.')
			b.WriteString(digits[1:])
		}
		b.WriteByte('e')
		if x < 0 {
			b.WriteByte('-')
		} else {
			b.WriteByte('+')
		}
		b.WriteString(strconv.Itoa(exp))
	}
	return b.String()
}

// toLua converts a reply as Valkey's scripting does for RESP2: integer ->
// number, bulk -> string, nil -> false, array -> table, status -> {ok=..},
// error -> {err=..}.
func toLua(L *lua.LState, r Reply) lua.LValue {
	switch r.Kind {
	case ReplyString:
		return lua.LString(r.Str)
	case ReplyInteger:
		return lua.LNumber(r.Int)
	case ReplyStatus:
		t := L.CreateTable(0, 1)
		t.RawSetString("ok", lua.LString(r.Str))
		return t
	case ReplyError:
		return errorTable(L, r.Str)
	case ReplyArray:
		t := L.CreateTable(len(r.Elems), 0)
		for i, el := range r.Elems {
			t.RawSetInt(i+1, toLua(L, el))
		}
		return t
	}
	return lua.LFalse
}

func errorTable(L *lua.LState, msg string) *lua.LTable {
	t := L.CreateTable(0, 1)
	t.RawSetString("err", lua.LString(msg))
	return t
}

// errorReplyFn is server.error_reply: like Valkey, a message whose first word
// is not an error code gets "ERR".
func errorReplyFn(L *lua.LState) int {
	if L.GetTop() != 1 || L.Get(1).Type() != lua.LTString {
		L.Push(errorTable(L, "ERR wrong number or type of arguments"))
		return 1
	}
	msg := strings.TrimPrefix(L.ToString(1), "-")
	if !strings.Contains(msg, " ") {
		msg = "ERR " + msg
	}
	L.Push(errorTable(L, strings.TrimRight(msg, "\r\n")))
	return 1
}

func statusReplyFn(L *lua.LState) int {
	if L.GetTop() != 1 || L.Get(1).Type() != lua.LTString {
		L.Push(errorTable(L, "ERR wrong number or type of arguments"))
		return 1
	}
	t := L.CreateTable(0, 1)
	t.RawSetString("ok", L.Get(1))
	L.Push(t)
	return 1
}

// serverLog is server.log(level, message, ...): the parts joined by spaces.
func (e *Engine) serverLog(L *lua.LState) int {
	n := L.GetTop()
	if n < 2 {
		L.Error(errorTable(L, "ERR server.log() requires two arguments or more."), 1)
	}
	lv, ok := L.Get(1).(lua.LNumber)
	if !ok {
		L.Error(errorTable(L, "ERR First argument must be a number (log level)."), 1)
	}
	level := int(lv)
	if level < LogDebug || level > LogWarning {
		L.Error(errorTable(L, "ERR Invalid log level."), 1)
	}
	parts := make([]string, 0, n-1)
	for i := 2; i <= n; i++ {
		if s, ok := L.Get(i).(lua.LString); ok {
			parts = append(parts, string(s))
		} else if num, ok := L.Get(i).(lua.LNumber); ok {
			parts = append(parts, num.String())
		}
	}
	if e.host != nil {
		e.host.Log(level, strings.Join(parts, " "))
	}
	return 0
}
