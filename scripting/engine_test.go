package scripting

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// fakeHost records calls and answers from a table keyed by command name.
type fakeHost struct {
	calls   [][]string
	replies map[string]Reply
	logs    []string
}

func (h *fakeHost) Call(args []string) Reply {
	h.calls = append(h.calls, append([]string(nil), args...))
	if r, ok := h.replies[strings.ToUpper(args[0])]; ok {
		return r
	}
	return Reply{Kind: ReplyStatus, Str: "OK"}
}

func (h *fakeHost) CheckACL(args []string) (allowed, known bool) {
	return !strings.EqualFold(args[0], "denied"), !strings.EqualFold(args[0], "nosuch")
}

func (h *fakeHost) Log(level int, msg string) {
	h.logs = append(h.logs, string(rune('0'+level))+":"+msg)
}

// newTestEngine returns an engine; without a timeout in opts, runs get
// ten seconds, so that a loaded machine cannot fail a test that is not
// about time.
func newTestEngine(t *testing.T, opts Options) *Engine {
	t.Helper()
	if opts.Timeout == 0 {
		opts.Timeout = 10 * time.Second
	}
	e := NewEngine(opts)
	t.Cleanup(e.Close)
	return e
}

func mustCompile(t *testing.T, name, src string) *Script {
	t.Helper()
	s, err := Compile(name, src)
	require.NoError(t, err)
	return s
}

// run compiles and runs src once with a default input.
func run(t *testing.T, e *Engine, h Host, src string) error {
	t.Helper()
	return e.Run(mustCompile(t, "t", src), Input{Key: "order:1", Event: "hset", DB: 3}, h)
}

// Ensure compile errors name the script and carry the line number.
func TestCompileError(t *testing.T) {
	_, err := Compile("points", "local x = 1\nlocal y = = 2\n")
	require.Error(t, err)
	assert.Contains(t, err.Error(), `script "points" does not compile`)
	assert.Contains(t, err.Error(), "line 2 (column 11) near '=': syntax error")

	_, err = Compile("points", "local x = 1\nif x then\n")
	require.ErrorContains(t, err, "line 3 (end of script)")
}

// Ensure oversized sources are refused before parsing.
func TestCompileTooLarge(t *testing.T) {
	_, err := Compile("big", strings.Repeat(" ", MaxSourceBytes+1))
	require.ErrorContains(t, err, "the limit is")
}

// Ensure KEYS and ARGV carry key, event and db, and the key stays binary.
func TestRunInputs(t *testing.T) {
	e := newTestEngine(t, Options{})
	h := &fakeHost{}
	s := mustCompile(t, "t", `server.call('SET', 'out', KEYS[1], ARGV[1], ARGV[2], #KEYS, #ARGV)`)
	require.NoError(t, e.Run(s, Input{Key: "k\x00\xff", Event: "expired", DB: 7}, h))
	require.Equal(t, [][]string{{"SET", "out", "k\x00\xff", "expired", "7", "1", "2"}}, h.calls)
}

// Ensure server replies reach Lua with Valkey's RESP2 conversions.
func TestReplyConversion(t *testing.T) {
	e := newTestEngine(t, Options{})
	h := &fakeHost{replies: map[string]Reply{
		"INT":    {Kind: ReplyInteger, Int: 42},
		"BULK":   {Kind: ReplyString, Str: "v"},
		"NIL":    {Kind: ReplyNull},
		"STATUS": {Kind: ReplyStatus, Str: "OK"},
		"ERR":    {Kind: ReplyError, Str: "ERR bad"},
		"ARR": {Kind: ReplyArray, Elems: []Reply{
			{Kind: ReplyInteger, Int: 1}, {Kind: ReplyNull}, {Kind: ReplyString, Str: "x"},
			{Kind: ReplyArray, Elems: []Reply{{Kind: ReplyString, Str: "y"}}},
		}},
	}}
	err := run(t, e, h, `
		assert(server.call('INT') == 42)
		assert(server.call('BULK') == 'v')
		assert(server.call('NIL') == false)
		assert(server.call('STATUS').ok == 'OK')
		local e = server.pcall('ERR')
		assert(type(e) == 'table' and e.err == 'ERR bad')
		local a = server.call('ARR')
		assert(#a == 4 and a[1] == 1 and a[2] == false and a[3] == 'x' and a[4][1] == 'y')
	`)
	require.NoError(t, err)
}

// Ensure server.call raises the error reply, which fails the run with its
// text, while pcall lets the script go on.
func TestCallErrorFailsRun(t *testing.T) {
	e := newTestEngine(t, Options{})
	h := &fakeHost{replies: map[string]Reply{"INCR": ErrorReply("ERR value is not an integer or out of range")}}
	err := run(t, e, h, `server.call('INCR', 'x')`)
	var re *RunError
	require.ErrorAs(t, err, &re)
	assert.Equal(t, "line 1: ERR value is not an integer or out of range", re.Message)
	err = run(t, e, h, "local a = 1\nlocal function f() server.call('INCR', 'x') end\n\nf()")
	require.ErrorAs(t, err, &re)
	assert.Equal(t, "line 2: ERR value is not an integer or out of range", re.Message, "the line of the call")

	// As in Valkey, pcall catches a server error as its message.
	require.NoError(t, run(t, e, h, `local ok, err = pcall(server.call, 'INCR', 'x'); assert(not ok and err == 'ERR value is not an integer or out of range')`))
	require.NoError(t, run(t, e, h, `local ok, err = pcall(function() server.call('INCR', 'x') end); assert(not ok and err:find('^ERR value'))`))
	// server.pcall returns the error table.
	require.NoError(t, run(t, e, h, `local r = server.pcall('INCR', 'x'); assert(r.err == 'ERR value is not an integer or out of range')`))
}

// Ensure a script can fail on purpose by returning an error reply.
func TestReturnedErrorFailsRun(t *testing.T) {
	e := newTestEngine(t, Options{})
	err := run(t, e, &fakeHost{}, `return server.error_reply('NOPOINTS user has no points')`)
	require.ErrorContains(t, err, "NOPOINTS user has no points")
	err = run(t, e, &fakeHost{}, `return redis.error_reply('oops')`)
	require.ErrorContains(t, err, "ERR oops")
	require.NoError(t, run(t, e, &fakeHost{}, `return server.status_reply('FINE')`))
}

// Ensure arguments are checked and numbers formatted as Valkey does.
func TestCallArguments(t *testing.T) {
	e := newTestEngine(t, Options{})
	h := &fakeHost{}
	require.NoError(t, run(t, e, h, `server.call('SET', 'k', 3, 0.1, -2.5, 1e21, 1.5e-7, 2^53)`))
	assert.Equal(t, []string{"SET", "k", "3", "0.1", "-2.5", "1e+21", "1.5e-7", "9007199254740992"}, h.calls[0])

	err := run(t, e, h, `server.call()`)
	require.ErrorContains(t, err, "Please specify at least one argument")
	err = run(t, e, h, `server.call('SET', 'k', {})`)
	require.ErrorContains(t, err, "must be strings or integers")
}

// Ensure refused commands never reach the server.
func TestDeniedCommands(t *testing.T) {
	e := newTestEngine(t, Options{})
	for _, cmd := range []string{"IUNGO", "flushall", "FlushDB", "SELECT", "swapdb", "DEBUG"} {
		h := &fakeHost{}
		err := run(t, e, h, `server.call('`+cmd+`', 'x')`)
		require.ErrorContains(t, err, "is not allowed", cmd)
		require.Empty(t, h.calls, cmd)
	}
}

// Ensure server.log joins its parts and checks its level.
func TestLog(t *testing.T) {
	e := newTestEngine(t, Options{})
	h := &fakeHost{}
	require.NoError(t, run(t, e, h, `server.log(server.LOG_WARNING, 'credited', 120, 'points')`))
	assert.Equal(t, []string{"3:credited 120 points"}, h.logs)
	require.ErrorContains(t, run(t, e, h, `server.log(9, 'x')`), "Invalid log level")
	require.ErrorContains(t, run(t, e, h, `server.log('x')`), "two arguments")
}

// Ensure a runaway loop is stopped near the timeout and the engine keeps
// working afterwards.
func TestTimeout(t *testing.T) {
	e := newTestEngine(t, Options{Timeout: 40 * time.Millisecond})
	start := time.Now()
	err := run(t, e, &fakeHost{}, `while true do end`)
	elapsed := time.Since(start)
	require.ErrorIs(t, err, ErrTimeout)
	assert.Contains(t, err.Error(), "timed out after 40ms")
	assert.GreaterOrEqual(t, elapsed, 40*time.Millisecond, "never before the timeout")
	assert.Less(t, elapsed, 2*time.Second, "the watchdog must stop the loop")
	require.NoError(t, run(t, e, &fakeHost{}, `local n = 0 for i = 1, 1000 do n = n + i end assert(n == 500500)`))
}

// Ensure unbounded recursion is a script error.
func TestRecursionDepth(t *testing.T) {
	e := newTestEngine(t, Options{MaxCallDepth: 50})
	err := run(t, e, &fakeHost{}, `local function f(n) return f(n + 1) + 1 end return f(1)`)
	require.ErrorContains(t, err, "stack overflow")
	require.NoError(t, run(t, e, &fakeHost{}, `local function f(n) if n == 0 then return 0 end return f(n-1) + 1 end assert(f(40) == 40)`))
}

// Ensure Run refuses to nest, since the Lua state is shared.
func TestNoNestedRun(t *testing.T) {
	e := newTestEngine(t, Options{})
	inner := mustCompile(t, "inner", `return 1`)
	h := &nestingHost{e: e, inner: inner}
	require.NoError(t, run(t, e, h, `server.call('NEST')`))
	require.Error(t, h.err)
	assert.Contains(t, h.err.Error(), "cannot run while another one runs")
}

type nestingHost struct {
	fakeHost
	e     *Engine
	inner *Script
	err   error
}

func (h *nestingHost) Call(args []string) Reply {
	h.err = h.e.Run(h.inner, Input{}, h)
	return Reply{Kind: ReplyStatus, Str: "OK"}
}

// Ensure the error text of a plain error() has the position but no traceback.
func TestErrorMessage(t *testing.T) {
	e := newTestEngine(t, Options{})
	err := e.Run(mustCompile(t, "credit", "\n\nerror('no user')"), Input{}, &fakeHost{})
	var re *RunError
	require.True(t, errors.As(err, &re))
	assert.Equal(t, "credit", re.Script)
	assert.Equal(t, "line 3: no user", re.Message)
	assert.NotContains(t, err.Error(), "traceback")
}

// Ensure builtins that Go runs to completion are capped before they allocate.
func TestBuiltinCaps(t *testing.T) {
	e := newTestEngine(t, Options{})
	h := &fakeHost{}
	require.ErrorContains(t, run(t, e, h, `string.rep('x', 1e9)`), "over the")
	require.ErrorContains(t, run(t, e, h, `("x"):rep(1e9)`), "over the")
	require.ErrorContains(t, run(t, e, h, `string.format('%999999999d', 1)`), "invalid format")
	require.ErrorContains(t, run(t, e, h, `
		local t = {} local s = string.rep('x', 1024*1024)
		for i = 1, 100 do t[i] = s end
		table.concat(t)`), "over the")
	require.NoError(t, run(t, e, h, `assert(string.rep('ab', 3) == 'ababab') assert(string.format('%5.2f', 1) == ' 1.00')
		assert(table.concat({1, 'a'}, '-') == '1-a')`))
}

// Ensure a script that keeps growing a table or a string is stopped near
// the memory limit, and the engine keeps working.
func TestMemoryLimit(t *testing.T) {
	for name, src := range map[string]string{
		"table":  `local t = {} while true do t[#t + 1] = string.rep('x', 1000) .. #t end`,
		"string": `local s = 'x' while true do s = s .. s end`,
	} {
		t.Run(name, func(t *testing.T) {
			e := newTestEngine(t, Options{Timeout: 20 * time.Second, MemoryLimit: 16 << 20})
			start := time.Now()
			err := run(t, e, &fakeHost{}, src)
			require.ErrorIs(t, err, ErrMemory)
			assert.Contains(t, err.Error(), "used more than 16 MB of memory")
			assert.Less(t, time.Since(start), 10*time.Second)
			require.NoError(t, run(t, e, &fakeHost{}, `return 1`))
		})
	}
}

// Ensure garbage alone does not count: a loop allocating far more than the
// limit while keeping little alive runs to its end.
func TestMemoryLimitIgnoresGarbage(t *testing.T) {
	e := newTestEngine(t, Options{Timeout: 20 * time.Second, MemoryLimit: 16 << 20})
	err := run(t, e, &fakeHost{}, `
		local n = 0
		for i = 1, 300000 do
			local s = string.rep('y', 200) .. i   -- 60 MB of garbage in all
			n = n + #s
		end
		assert(n > 60000000)`)
	require.NoError(t, err)
}

// Ensure gsub's result is capped as it grows, whatever the replacement:
// the cap or the watchdog's memory limit stops it, whichever sees it first.
func TestGsubCap(t *testing.T) {
	e := newTestEngine(t, Options{MemoryLimit: 1 << 20})
	for _, repl := range []string{`string.rep('b', 2000)`, `function() return string.rep('b', 2000) end`} {
		err := run(t, e, &fakeHost{}, `string.gsub(string.rep('a', 1000), 'a', `+repl+`)`)
		if !errors.Is(err, ErrMemory) {
			require.ErrorContains(t, err, "string.gsub: result over the 1048576-byte limit", repl)
		}
	}
	require.NoError(t, run(t, e, &fakeHost{}, `assert(string.gsub('aaa', 'a', 'bb') == 'bbbbbb')`))
}

// Ensure the runs of one unit share its budget: once it is used up, the
// run in progress is stopped and later runs of the unit do not start; the
// next unit starts afresh.
func TestUnitBudget(t *testing.T) {
	e := newTestEngine(t, Options{Timeout: time.Second, UnitBudget: 60 * time.Millisecond})
	spin := mustCompile(t, "spin", `local t = 0 for i = 1, 1e12 do t = t + i end`)
	short := mustCompile(t, "short", `return 1`)
	in := Input{Key: "k", Event: "set"}

	e.BeginUnit()
	start := time.Now()
	err := e.Run(spin, in, &fakeHost{})
	require.ErrorIs(t, err, ErrBudget)
	assert.Contains(t, err.Error(), "the runs of one command may take 60ms in all")
	assert.Less(t, time.Since(start), 500*time.Millisecond)
	assert.True(t, e.UnitExhausted())
	require.ErrorIs(t, e.Run(short, in, &fakeHost{}), ErrBudget, "no run starts in a unit past its budget")
	e.EndUnit()

	e.BeginUnit()
	require.NoError(t, e.Run(short, in, &fakeHost{}))
	e.EndUnit()
}

// Ensure a run that alone takes its timeout is reported as timed out when
// the unit's budget equals the timeout (the default), whichever limit the
// watchdog's ticks see first.
func TestTimeoutWinsOverEqualBudget(t *testing.T) {
	e := newTestEngine(t, Options{Timeout: 20 * time.Millisecond, UnitBudget: 20 * time.Millisecond})
	spin := mustCompile(t, "spin", `while true do end`)
	in := Input{Key: "k", Event: "set"}
	for i := 0; i < 5; i++ {
		e.BeginUnit()
		// Let a tick see the unit before the run begins, as a busy CI
		// machine's late ticks did (the module's own gap is microseconds).
		time.Sleep(idleTick + 2*time.Millisecond)
		err := e.Run(spin, in, &fakeHost{})
		e.EndUnit()
		require.ErrorIs(t, err, ErrTimeout, "run %d: %v", i, err)
	}
}

// Ensure runs that each stay within their own timeout still end when
// together they pass the unit's budget.
func TestUnitBudgetAcrossRuns(t *testing.T) {
	e := newTestEngine(t, Options{Timeout: time.Second, UnitBudget: 100 * time.Millisecond})
	sleepy := mustCompile(t, "sleepy", `local n = 0 for i = 1, 5e4 do n = n + i end`)
	in := Input{Key: "k", Event: "set"}
	e.BeginUnit()
	defer e.EndUnit()
	start := time.Now()
	runs := 0
	for ; runs < 100000; runs++ {
		if err := e.Run(sleepy, in, &fakeHost{}); err != nil {
			require.ErrorIs(t, err, ErrBudget)
			break
		}
	}
	assert.Greater(t, runs, 1, "several runs fit in the budget")
	assert.Less(t, time.Since(start), 600*time.Millisecond)
}
