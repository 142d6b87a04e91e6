// Package scripting compiles trigger scripts written in Lua and runs them in
// a sandbox that looks like Valkey's own scripting: KEYS and ARGV, the
// server (alias redis) library and cjson, over base, string, table and math.
//
// Compile is safe for concurrent use, so scripts can be compiled off the
// server's main thread. An Engine is not: the module runs every script on the
// main thread, one at a time.
package scripting

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	lua "github.com/yuin/gopher-lua"
	"github.com/yuin/gopher-lua/parse"
)

func init() {
	// With the Lua 5.0 compatibility on, every vararg call builds an "arg"
	// table; Valkey's Lua 5.1 has no such table either.
	lua.CompatVarArg = false
}

// MaxSourceBytes is the largest script source Compile accepts.
const MaxSourceBytes = 1 << 20

// Script is a compiled script. It is immutable and may be shared.
type Script struct {
	Name   string
	Source string
	proto  *lua.FunctionProto
}

// Compile parses and compiles source. The error names the script and carries
// the compiler's message with its line number. Size and nesting are bounded
// (MaxSourceBytes, MaxNesting), so that compiling takes time and memory in
// proportion to the source, about 0.25 ms and 50 KB per KB.
func Compile(name, source string) (*Script, error) {
	if len(source) > MaxSourceBytes {
		return nil, fmt.Errorf("script %q is %d bytes; the limit is %d", name, len(source), MaxSourceBytes)
	}
	if err := checkNesting(source); err != nil {
		return nil, fmt.Errorf("script %q does not compile: %v", name, err)
	}
	chunk, err := parse.Parse(strings.NewReader(source), name)
	if err != nil {
		return nil, fmt.Errorf("script %q does not compile: %s", name, compileMessage(err, source))
	}
	if err := checkDepth(chunk); err != nil {
		return nil, fmt.Errorf("script %q does not compile: %v", name, err)
	}
	proto, err := lua.Compile(chunk, name)
	if err != nil {
		return nil, fmt.Errorf("script %q does not compile: %s", name, compileMessage(err, source))
	}
	return &Script{Name: name, Source: source, proto: proto}, nil
}

// compileMessage always names a line: the parser reports errors at the end
// of the source without one.
func compileMessage(err error, source string) string {
	var pe *parse.Error
	var ce *lua.CompileError
	switch {
	case errors.As(err, &pe) && pe.Pos.Line == parse.EOF:
		return fmt.Sprintf("line %d (end of script): %s", strings.Count(source, "\n")+1, pe.Message)
	case errors.As(err, &pe):
		return fmt.Sprintf("line %d (column %d) near '%s': %s", pe.Pos.Line, pe.Pos.Column, pe.Token, pe.Message)
	case errors.As(err, &ce):
		return fmt.Sprintf("line %d: %s", ce.Line, ce.Message)
	}
	return strings.TrimSpace(err.Error())
}

// Input is what one run of a script sees: KEYS[1] = Key, ARGV[1] = Event,
// ARGV[2] = DB as a decimal string.
type Input struct {
	Key   string
	Event string
	DB    int
	// Old is what the key held when the event removed or replaced its
	// value (server.old_value()); nil otherwise.
	Old *OldValue
	// Args, when not nil, is ARGV instead, and Keys KEYS: a run that no
	// one key caused, a cron's (no keys) or a window's.
	Keys, Args []string
}

// OldValue is a key's value just before an event removed or replaced it,
// as the matching read returns it (GET, LRANGE, HGETALL, SMEMBERS, ZRANGE
// WITHSCORES), or why it was not kept.
type OldValue struct {
	Value Reply
	Why   string // not empty: not kept, and why
}

// Host is the server as a running script reaches it.
type Host interface {
	// Call runs one command; errors come back as a ReplyError.
	Call(args []string) Reply
	// Log writes msg to the server log at level (LogDebug..LogWarning).
	Log(level int, msg string)
	// CheckACL reports whether the run's user may run a command, and
	// whether the command exists (server.acl_check_cmd).
	CheckACL(args []string) (allowed, known bool)
}

// Log levels of server.log, numbered as in Valkey.
const (
	LogDebug = iota
	LogVerbose
	LogNotice
	LogWarning
)

// Options bound every run of an Engine.
type Options struct {
	// Timeout stops a run that takes longer; 0 means DefaultTimeout.
	Timeout time.Duration
	// MemoryLimit stops a run whose Go heap grew by more bytes, and caps
	// what one builtin call may build; 0 means DefaultMemoryLimit.
	MemoryLimit int64
	// MaxCallDepth bounds nested Lua calls (recursion); 0 means DefaultMaxCallDepth.
	MaxCallDepth int
	// UnitBudget bounds all the runs of one unit (BeginUnit to EndUnit)
	// together; 0 means no bound beyond each run's Timeout.
	UnitBudget time.Duration
	// Logf receives the engine's own problems (never a script's); may be nil.
	Logf func(format string, args ...any)
	// ServerVersion is the server's version, 0x00MMmmpp, for the version
	// constants of the server library; 0 leaves them out.
	ServerVersion int
}

// Defaults for Options.
const (
	DefaultTimeout      = 100 * time.Millisecond
	DefaultMemoryLimit  = 64 << 20
	DefaultMaxCallDepth = 200
)

// ErrTimeout means a run was stopped for taking too long, ErrMemory for
// growing the heap past the limit, ErrBudget for running when its unit had
// used up its budget (it was stopped, or not started).
var (
	ErrTimeout = errors.New("script timed out")
	ErrMemory  = errors.New("script used too much memory")
	ErrBudget  = errors.New("the unit's time budget is used up")
)

// RunError is a failed run: the message the script raised or returned as
// {err=...}, or the reason the engine stopped it.
type RunError struct {
	Script  string
	Message string
	cause   error
}

func (e *RunError) Error() string { return "script " + strconv.Quote(e.Script) + ": " + e.Message }

// Unwrap returns ErrTimeout, ErrMemory or ErrBudget for runs the watchdog
// stopped.
func (e *RunError) Unwrap() error { return e.cause }

// Engine runs compiled scripts in one sandboxed Lua state.
type Engine struct {
	opts    Options
	L       *lua.LState
	sandbox *sandbox
	host    Host      // the host of the run in progress
	old     *OldValue // and its key's old value
	running bool
	args    []string // reused by server.call
	// The last error table server.call raised, and where ("name:line:").
	raised   *lua.LTable
	raisedAt string
	wd       *watchdog
}

// NewEngine returns an Engine; Close stops its watchdog.
func NewEngine(opts Options) *Engine {
	e := &Engine{}
	e.wd = newWatchdog(e.logf)
	e.SetOptions(opts)
	e.reset()
	go e.wd.loop()
	return e
}

// SetOptions changes the limits for the next runs.
func (e *Engine) SetOptions(opts Options) {
	if opts.Timeout <= 0 {
		opts.Timeout = DefaultTimeout
	}
	if opts.MaxCallDepth <= 0 {
		opts.MaxCallDepth = DefaultMaxCallDepth
	}
	if opts.MemoryLimit <= 0 {
		opts.MemoryLimit = DefaultMemoryLimit
	}
	rebuild := e.opts.MaxCallDepth != opts.MaxCallDepth || e.opts.ServerVersion != opts.ServerVersion
	e.opts = opts
	e.wd.setLimits(opts.Timeout, opts.MemoryLimit, opts.UnitBudget)
	if rebuild && e.L != nil {
		e.reset()
	}
}

// Close stops the watchdog. The Engine must not be used afterwards.
func (e *Engine) Close() {
	e.wd.close()
	if e.L != nil {
		e.L.Close()
	}
}

func (e *Engine) logf(format string, args ...any) {
	if e.opts.Logf != nil {
		e.opts.Logf(format, args...)
	}
}

// reset builds a fresh Lua state; used at start and after an engine panic.
func (e *Engine) reset() {
	if e.L != nil {
		e.L.Close()
	}
	e.L = lua.NewState(lua.Options{
		SkipOpenLibs:  true,
		CallStackSize: e.opts.MaxCallDepth,
		// The data stack grows to hold what unpack may return (Lua 5.1's
		// limit) besides the frames of deep calls.
		RegistrySize:    lua.RegistrySize,
		RegistryMaxSize: lua.RegistrySize + 2*maxUnpack,
	})
	e.sandbox = newSandbox(e.L, e)
	e.wd.needFresh = true // the new state has no context yet
}

// Run runs s once for in, reaching the server through h. It returns nil or
// a *RunError; it never panics.
func (e *Engine) Run(s *Script, in Input, h Host) error {
	_, err := e.run(s, in, h, false)
	return err
}

// Try is Run that also returns what the script returned, converted as
// EVAL converts it for a client (see toReply).
func (e *Engine) Try(s *Script, in Input, h Host) (Reply, error) {
	return e.run(s, in, h, true)
}

func (e *Engine) run(s *Script, in Input, h Host, keep bool) (result Reply, err error) {
	if e.running {
		// Scripts only run from post-notification jobs, which never nest.
		return result, &RunError{Script: s.Name, Message: "a script cannot run while another one runs"}
	}
	if e.wd.unitExhausted() {
		return result, e.budgetError(s.Name)
	}
	e.running, e.host, e.old = true, h, in.Old
	L := e.L
	defer func() {
		if r := recover(); r != nil {
			e.wd.end()
			e.logf("scripting: panic while running %q: %v", s.Name, r)
			e.reset()
			result, err = Reply{}, &RunError{Script: s.Name, Message: fmt.Sprintf("internal error: %v", r)}
		}
		e.running, e.host, e.old = false, nil, nil
	}()

	fn := e.sandbox.function(s.proto)
	fn.Env = e.sandbox.runEnv(in)
	e.wd.begin(L)
	callErr := L.CallByParam(lua.P{Fn: fn, NRet: 1, Protect: true})
	stopped := e.wd.end()
	var ret lua.LValue = lua.LNil
	if callErr == nil {
		ret = L.Get(-1)
		if keep {
			result = toReply(ret, 0)
		}
	}
	L.SetTop(0)
	e.sandbox.clean()
	defer func() { e.raised, e.raisedAt = nil, "" }()
	if stopped != nil {
		// The stack keeps what the stopped run built above its top:
		// start over so that the memory can go.
		e.reset()
	}
	switch {
	case stopped == ErrTimeout:
		return result, &RunError{Script: s.Name, Message: fmt.Sprintf("timed out after %v", e.opts.Timeout), cause: ErrTimeout}
	case stopped == ErrMemory:
		return result, &RunError{Script: s.Name, Message: fmt.Sprintf("used more than %d MB of memory", e.opts.MemoryLimit>>20), cause: ErrMemory}
	case stopped == ErrBudget:
		return result, e.budgetError(s.Name)
	case callErr != nil:
		return result, &RunError{Script: s.Name, Message: e.errorMessage(callErr, s.Name)}
	}
	if t, ok := ret.(*lua.LTable); ok {
		if msg, ok := t.RawGetString("err").(lua.LString); ok {
			return result, &RunError{Script: s.Name, Message: string(msg)}
		}
	}
	return result, nil
}

// toReply converts a script's return value as EVAL does: numbers truncate
// to integers, false and nil are null, true is 1, a table with ok or err
// is a status or an error, another table an array up to its first nil.
func toReply(v lua.LValue, depth int) Reply {
	switch v := v.(type) {
	case lua.LString:
		return Reply{Kind: ReplyString, Str: string(v)}
	case lua.LNumber:
		return Reply{Kind: ReplyInteger, Int: toInteger(float64(v))}
	case lua.LBool:
		if v {
			return Reply{Kind: ReplyInteger, Int: 1}
		}
	case *lua.LTable:
		if s, ok := v.RawGetString("ok").(lua.LString); ok {
			return Reply{Kind: ReplyStatus, Str: string(s)}
		}
		if s, ok := v.RawGetString("err").(lua.LString); ok {
			return Reply{Kind: ReplyError, Str: string(s)}
		}
		if depth >= maxReplyDepth {
			return Reply{Kind: ReplyError, Str: "ERR reached lua stack limit"}
		}
		out := Reply{Kind: ReplyArray}
		for i := 1; ; i++ {
			el := v.RawGetInt(i)
			if el == lua.LNil {
				break
			}
			out.Elems = append(out.Elems, toReply(el, depth+1))
		}
		return out
	}
	return Reply{Kind: ReplyNull}
}

// maxReplyDepth bounds the nesting of a converted return value.
const maxReplyDepth = 100

func (e *Engine) budgetError(script string) error {
	return &RunError{Script: script, cause: ErrBudget,
		Message: fmt.Sprintf("not run to the end: the runs of one command may take %v in all", e.opts.UnitBudget)}
}

// BeginUnit starts a unit: the runs until EndUnit share UnitBudget. Units
// do not nest.
func (e *Engine) BeginUnit() { e.wd.beginUnit() }

// EndUnit ends the unit BeginUnit started.
func (e *Engine) EndUnit() { e.wd.endUnit() }

// UnitExhausted reports whether the unit in progress used up its budget:
// its next runs would be refused with ErrBudget.
func (e *Engine) UnitExhausted() bool { return e.wd.unitExhausted() }

// errorMessage extracts what the script raised, without the traceback,
// starting with its line ("line 5: ...") where it is known: Lua's own
// "script:5:" prefix, or the line of the server.call that raised it.
func (e *Engine) errorMessage(err error, script string) string {
	var api *lua.ApiError
	if !errors.As(err, &api) {
		return err.Error()
	}
	if t, ok := api.Object.(*lua.LTable); ok {
		if msg, ok := t.RawGetString("err").(lua.LString); ok {
			if t == e.raised {
				return withLine(e.raisedAt, script, string(msg))
			}
			return string(msg)
		}
	}
	if api.Object != nil && api.Object != lua.LNil {
		msg := api.Object.String()
		if rest, ok := strings.CutPrefix(msg, script+":"); ok {
			if i := strings.Index(rest, ": "); i > 0 && isNumber(rest[:i]) {
				return "line " + rest[:i] + ": " + rest[i+2:]
			}
		}
		return msg
	}
	return api.Error()
}

// withLine prefixes msg with the line of where ("script:line:").
func withLine(where, script, msg string) string {
	if line, ok := strings.CutPrefix(where, script+":"); ok && isNumber(strings.TrimSuffix(line, ":")) {
		return "line " + strings.TrimSuffix(line, ":") + ": " + msg
	}
	return msg
}

func isNumber(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !isDigit(s[i]) {
			return false
		}
	}
	return true
}

// watchdog cancels the Lua state's context when a run outlives the timeout,
// when its unit outlives the unit budget, or when it grows the Go heap
// (objects and goroutine stacks) past the memory limit. A run costs an
// atomic store and a compare-and-swap, a unit one atomic store at each end:
// no lock, clock read, context, timer or metrics read (a clock read alone
// costs 20-45 ns on the machines we measured).
//
// It wakes every idleTick; once it sees a run or a unit it wakes every
// busyTick until that ends. Ages count from the tick that first saw the
// run or unit, so either is stopped between its limit and one idleTick
// later, never early. It reads the heap at every tick: a run first seen at
// a tick started after the previous one, so the heap read then is the run's
// baseline and all it allocated counts.
type watchdog struct {
	// state is the current run's number << 2, | runningBit while it runs,
	// | stoppedBit once the loop stopped it. The running thread sets and
	// clears runningBit; the loop sets stoppedBit, holding mu.
	state atomic.Uint64
	// unit is the current unit's number << 2, | runningBit while it is
	// open, | stoppedBit once the loop found its budget used up.
	unit atomic.Uint64
	// unitFirstRun is the number the unit's first run gets.
	unitFirstRun atomic.Uint64

	mu       sync.Mutex
	timeout  time.Duration
	budget   time.Duration // of a unit; 0: none
	memLimit int64
	ctx      context.Context
	cancel   context.CancelFunc
	why      error // why the loop stopped a run
	done     chan struct{}
	logf     func(string, ...any)

	// Owned by the running thread.
	run       uint64
	unitNum   uint64
	needFresh bool // the context was cancelled: the next run needs a new one

	// Owned by the loop.
	seenRun    uint64    // the run seen at the previous tick, 0 if none
	seenAt     time.Time // when the loop first saw it
	seenUnit   uint64    // the unit seen at the previous tick, 0 if none
	seenUnitAt time.Time
	baseline   uint64 // heap bytes before seenRun started
	lastHeap   uint64
	confirmed  bool // a GC already confirmed the growth of seenRun
	freeAfter  bool // a run was stopped for memory: free it once it ended
	heap       []metrics.Sample
}

const (
	idleTick   = 10 * time.Millisecond
	busyTick   = time.Millisecond
	runningBit = 1
	stoppedBit = 2
)

func newWatchdog(logf func(string, ...any)) *watchdog {
	return &watchdog{
		done:      make(chan struct{}),
		logf:      logf,
		needFresh: true,
		heap: []metrics.Sample{
			{Name: "/memory/classes/heap/objects:bytes"},
			{Name: "/memory/classes/heap/stacks:bytes"},
		},
	}
}

func (w *watchdog) setLimits(timeout time.Duration, memLimit int64, budget time.Duration) {
	w.mu.Lock()
	w.timeout, w.memLimit, w.budget = timeout, memLimit, budget
	w.mu.Unlock()
}

func (w *watchdog) beginUnit() {
	w.unitFirstRun.Store(w.run + 1)
	w.unitNum++
	w.unit.Store(w.unitNum<<2 | runningBit)
}

func (w *watchdog) endUnit() { w.unit.Store(w.unitNum << 2) }

func (w *watchdog) unitExhausted() bool { return w.unit.Load()&stoppedBit != 0 }

// begin arms the watchdog, giving L a fresh context if the last one fired.
func (w *watchdog) begin(L *lua.LState) {
	if w.needFresh {
		w.mu.Lock()
		if w.cancel != nil {
			w.cancel()
		}
		w.ctx, w.cancel = context.WithCancel(context.Background())
		w.mu.Unlock()
		L.SetContext(w.ctx)
		w.needFresh = false
	}
	w.run++
	w.state.Store(w.run<<2 | runningBit)
}

// stopped reports whether the loop stopped the run in progress: Go code
// that runs long inside one Lua instruction asks it now and then.
func (w *watchdog) stopped() bool { return w.state.Load()&stoppedBit != 0 }

// end disarms the watchdog and returns why it stopped the run, or nil.
func (w *watchdog) end() error {
	if w.state.CompareAndSwap(w.run<<2|runningBit, w.run<<2) {
		return nil
	}
	// The loop stopped this run: it set why before the stopped bit.
	w.mu.Lock()
	why := w.why
	w.mu.Unlock()
	w.state.Store(w.run << 2)
	w.needFresh = true
	return why
}

// stop cancels the run in state s unless it has ended meanwhile.
func (w *watchdog) stop(s uint64, why error) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.state.CompareAndSwap(s, s|stoppedBit) {
		return false
	}
	w.why = why
	w.cancel()
	return true
}

// readHeap returns the bytes of heap objects and goroutine stacks: a run
// can grow either.
func (w *watchdog) readHeap() uint64 {
	metrics.Read(w.heap)
	var total uint64
	for _, s := range w.heap {
		if s.Value.Kind() == metrics.KindUint64 {
			total += s.Value.Uint64()
		}
	}
	return total
}

// check looks at the run and the unit in progress and returns how long to
// sleep.
func (w *watchdog) check() time.Duration {
	heap, now := w.readHeap(), time.Now()
	s, u := w.state.Load(), w.unit.Load()
	w.mu.Lock()
	timeout, limit, budget := w.timeout, w.memLimit, w.budget
	w.mu.Unlock()
	running := s&(runningBit|stoppedBit) == runningBit
	if running && s>>2 != w.seenRun {
		w.seenRun, w.seenAt, w.baseline, w.confirmed = s>>2, now, w.lastHeap, false
	}
	if running && now.Sub(w.seenAt) >= timeout && w.stop(s, ErrTimeout) {
		running = false
	}
	unitOpen := u&(runningBit|stoppedBit) == runningBit
	switch {
	case !unitOpen:
		w.seenUnit = 0
	case u>>2 != w.seenUnit:
		w.seenUnit, w.seenUnitAt = u>>2, now
	case budget > 0 && now.Sub(w.seenUnitAt) >= budget && w.unit.CompareAndSwap(u, u|stoppedBit):
		// The run in progress belongs to this unit: runs start only
		// inside the unit that the CAS just found still open. When it is
		// the unit's first run and the budget is no larger than the
		// timeout, it used up its own time, however the ticks fell.
		why := ErrBudget
		if running && s>>2 == w.unitFirstRun.Load() && timeout <= budget {
			why = ErrTimeout
		}
		if running && w.stop(s, why) {
			running = false
		}
		unitOpen = false
	}
	if !running {
		w.seenRun, w.lastHeap = 0, heap
		if w.freeAfter && w.state.Load()&runningBit == 0 {
			// The stopped run has returned and dropped its Lua state:
			// collect it and give the memory back to the OS.
			w.freeAfter = false
			debug.FreeOSMemory()
			w.lastHeap = w.readHeap()
		}
		if unitOpen {
			return busyTick
		}
		return idleTick
	}
	w.lastHeap = heap
	if heap > w.baseline && int64(heap-w.baseline) > limit {
		if !w.confirmed {
			// Garbage counts until a GC: make sure the growth is live.
			w.confirmed = true
			runtime.GC()
			if heap = w.readHeap(); heap <= w.baseline || int64(heap-w.baseline) <= limit {
				return busyTick
			}
		}
		if w.stop(s, ErrMemory) {
			w.freeAfter = true
		}
	}
	return busyTick
}

func (w *watchdog) loop() {
	defer func() {
		if r := recover(); r != nil {
			w.logf("scripting: watchdog panic: %v; restarting it", r)
			go w.loop()
		}
	}()
	t := time.NewTimer(idleTick)
	defer t.Stop()
	for {
		select {
		case <-w.done:
			return
		case <-t.C:
			t.Reset(w.check())
		}
	}
}

func (w *watchdog) close() {
	select {
	case <-w.done:
	default:
		close(w.done)
	}
}
