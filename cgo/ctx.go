package main

/*
#include "shim.h"
*/
import "C"

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"
	"unsafe"

	"github.com/valkey-iungo/valkey-iungo/module"
	"github.com/valkey-iungo/valkey-iungo/scripting"
)

// serverCtx is module.Ctx over the ValkeyModuleCtx of one callback.
type serverCtx struct{ c *C.ValkeyModuleCtx }

var _ module.Ctx = serverCtx{}

func (x serverCtx) Flags() module.CtxFlags { return module.CtxFlags(C.iungo_ctx_flags(x.c)) }
func (x serverCtx) DB() int                { return int(C.iungo_selected_db(x.c)) }
func (x serverCtx) Replicate()             { C.iungo_replicate_verbatim(x.c) }

// AddJob is only asked of an eventCtx.
func (x serverCtx) AddJob(id uint64) bool { return false }

// The call buffers are reused: calls only come from the main thread and
// never nest (the events a call raises only queue jobs).
var (
	callBuf  []byte
	callLens []C.size_t
)

// packArgs packs args into callBuf and callLens for one C call.
func packArgs(args []string) {
	callBuf, callLens = callBuf[:0], callLens[:0]
	for _, a := range args {
		callBuf = append(callBuf, a...)
		callLens = append(callLens, C.size_t(len(a)))
	}
}

func argsPtr() *C.char { return bytesPtr(callBuf) }

func (x serverCtx) Call(args []string) scripting.Reply {
	packArgs(args)
	var n C.size_t
	out := C.iungo_call(x.c, argsPtr(), &callLens[0], C.int(len(args)), &n)
	r, rest, err := decodeReply(unsafe.Slice((*byte)(unsafe.Pointer(out)), int(n)))
	if err != nil || len(rest) != 0 {
		return scripting.ErrorReply("ERR internal error: unreadable reply")
	}
	return r
}

func (x serverCtx) CheckACL(args []string) (allowed, known bool) {
	packArgs(args)
	switch C.iungo_acl_check(x.c, argsPtr(), &callLens[0], C.int(len(args))) {
	case 1:
		return true, true
	case 0:
		return false, true
	}
	return false, false
}

// AttachUser and DetachUser serve jobs, which the shim starts with the
// module's own user attached and ends by detaching any user.
func (x serverCtx) AttachUser(name string) error {
	if name == "" {
		return nil
	}
	if C.iungo_attach_user(x.c, cstr(name), C.size_t(len(name))) == 0 {
		return fmt.Errorf("script user %q (iungo.script-user) does not exist", name)
	}
	return nil
}

func (x serverCtx) DetachUser() {}

// eventCtx is the Ctx of a keyspace event, whose flags the shim has read,
// and jobCtx that of a post-notification job, whose db it has read: one
// call into C fewer each. They live in package variables because a pointer
// in an interface costs no allocation; events never nest in events, nor
// jobs in jobs, and claim takes a fresh one if that ever changed.
type eventCtx struct {
	serverCtx
	flags module.CtxFlags
	job   uint64 // the job the shim adds once OnEvent returns, or 0
	busy  bool
}

func (x *eventCtx) Flags() module.CtxFlags { return x.flags }

// AddJob leaves the job to the shim, which adds it when goOnEvent returns:
// one call into C fewer. Events queue at most one job each.
func (x *eventCtx) AddJob(id uint64) bool {
	x.job = id
	return true
}

type jobCtx struct {
	serverCtx
	db   int
	busy bool
}

func (x *jobCtx) DB() int { return x.db }

var (
	theEventCtx eventCtx
	theJobCtx   jobCtx
)

func claimEventCtx(c *C.ValkeyModuleCtx, flags C.int) *eventCtx {
	x := &theEventCtx
	if x.busy {
		x = &eventCtx{}
	}
	*x = eventCtx{serverCtx: serverCtx{c}, flags: module.CtxFlags(flags), busy: true}
	return x
}

func claimJobCtx(c *C.ValkeyModuleCtx, db C.int) *jobCtx {
	x := &theJobCtx
	if x.busy {
		x = &jobCtx{}
	}
	*x = jobCtx{serverCtx: serverCtx{c}, db: int(db), busy: true}
	return x
}

// Key flags of VALKEYMODULE_CMD_KEY_*: read-only, and read-write,
// overwrite, remove.
const (
	keyReadOnly   = 1 << 0
	keyWriteFlags = 1<<1 | 1<<2 | 1<<3
)

func (x serverCtx) CommandKeys(args []string) []module.KeyRef {
	packArgs(args)
	var pos, flags [64]C.int
	n := int(C.iungo_command_keys(x.c, argsPtr(), &callLens[0], C.int(len(args)), &pos[0], &flags[0], C.int(len(pos))))
	keys := make([]module.KeyRef, 0, max(n, 0))
	for i := 0; i < n; i++ {
		write := flags[i]&keyWriteFlags != 0
		if flags[i] == 0 {
			// Valkey 8.0 reports no key flags: the command's own flag
			// says whether it only reads.
			write = !x.readOnly(args[0])
		}
		keys = append(keys, module.KeyRef{Pos: int(pos[i]), Write: write})
	}
	return keys
}

// readOnlyCommands caches COMMAND INFO's readonly flag by command name;
// only the main thread uses it.
var readOnlyCommands = map[string]bool{}

func (x serverCtx) readOnly(name string) bool {
	name = strings.ToLower(name)
	ro, ok := readOnlyCommands[name]
	if !ok {
		ro = C.iungo_command_readonly(x.c, cstr(name), C.size_t(len(name))) != 0
		if len(readOnlyCommands) < 1024 {
			readOnlyCommands[name] = ro
		}
	}
	return ro
}

func (x serverCtx) ReplicateCommand(args []string) {
	packArgs(args)
	C.iungo_replicate(x.c, argsPtr(), &callLens[0], C.int(len(args)))
}

func (x serverCtx) ReplicateRestore(snap []byte) {
	C.iungo_replicate_restore(x.c, bytesPtr(snap), C.size_t(len(snap)), 0)
}

func (x serverCtx) Primary() string {
	var buf [300]C.char
	n := C.iungo_primary_address(x.c, &buf[0], C.size_t(len(buf)))
	return C.GoStringN(&buf[0], C.int(n))
}

func (x serverCtx) WritesPaused() bool { return C.iungo_writes_paused() != 0 }
func (x serverCtx) OutOfMemory() bool  { return C.iungo_out_of_memory(x.c) != 0 }

// Blocked clients wait here, by id, for their finish: C holds only the id.
var (
	finishesMu sync.Mutex
	finishes   = map[uint64]func(module.Ctx){}
	finishID   uint64
)

func (x serverCtx) Block() (func(func(module.Ctx)), error) {
	bc := C.iungo_block(x.c)
	if bc == nil {
		return nil, errors.New("ERR this client cannot wait here (MULTI or a script)")
	}
	var once sync.Once
	return func(finish func(module.Ctx)) {
		once.Do(func() {
			finishesMu.Lock()
			finishID++
			id := finishID
			finishes[id] = finish
			finishesMu.Unlock()
			C.iungo_unblock(bc, C.uint64_t(id))
		})
	}, nil
}

// finishBlocked runs a blocked command's finish on the main thread.
func finishBlocked(x serverCtx, id uint64) {
	finishesMu.Lock()
	finish, ok := finishes[id]
	delete(finishes, id)
	finishesMu.Unlock()
	if !ok {
		x.ReplyError("ERR internal error in iungo: lost the answer of a blocked command")
		return
	}
	finish(x)
}

// Timers: functions to run on the main thread later, by id.
var (
	timersMu sync.Mutex
	timers   = map[uint64]func(serverCtx){}
	timerID  uint64
)

// after runs fn on the main thread in d.
func after(x serverCtx, d time.Duration, fn func(serverCtx)) {
	timersMu.Lock()
	timerID++
	id := timerID
	timers[id] = fn
	timersMu.Unlock()
	C.iungo_timer(x.c, C.longlong(d.Milliseconds()), C.uint64_t(id))
}

func fireTimer(x serverCtx, id uint64) {
	timersMu.Lock()
	fn, ok := timers[id]
	delete(timers, id)
	timersMu.Unlock()
	if ok {
		fn(x)
	}
}

// lockServer is module.Server: the server's global lock for goroutines.
type lockServer struct{}

func (lockServer) WithLock(fn func(module.Ctx)) {
	ctx := C.iungo_lock()
	defer C.iungo_unlock(ctx)
	fn(serverCtx{ctx})
}

func (x serverCtx) ReplyError(msg string) {
	msg = oneLine(msg)
	C.iungo_reply_error(x.c, cstr(msg), C.size_t(len(msg)))
}

func (x serverCtx) ReplyStatus(s string) {
	s = oneLine(s)
	C.iungo_reply_status(x.c, cstr(s), C.size_t(len(s)))
}

func (x serverCtx) ReplyInt(n int64)     { C.iungo_reply_int(x.c, C.longlong(n)) }
func (x serverCtx) ReplyString(s string) { C.iungo_reply_string(x.c, cstr(s), C.size_t(len(s))) }
func (x serverCtx) ReplyArray(n int)     { C.iungo_reply_array(x.c, C.long(n)) }
func (x serverCtx) ReplyMap(n int)       { C.iungo_reply_map(x.c, C.long(n)) }

// oneLine keeps error and status replies on one RESP line.
func oneLine(s string) string {
	if strings.ContainsAny(s, "\r\n") {
		s = strings.NewReplacer("\r\n", " ", "\n", " ", "\r", " ").Replace(s)
	}
	return s
}

// A reply from iungo_call is serialised in host byte order as one tag byte
// and a 64-bit word, then any payload:
//
//	'$' len, bytes   bulk string
//	'+' len, bytes   status
//	'-' len, bytes   error
//	':' value        integer
//	'*' count        array, then count replies
//	'_' 0            null (bulk or array)
var errShortReply = errors.New("short reply")

func decodeReply(b []byte) (scripting.Reply, []byte, error) {
	if len(b) < 9 {
		return scripting.Reply{}, nil, errShortReply
	}
	tag, word, b := b[0], binary.NativeEndian.Uint64(b[1:9]), b[9:]
	bytes := func() (string, []byte, error) {
		if uint64(len(b)) < word {
			return "", nil, errShortReply
		}
		return string(b[:word]), b[word:], nil
	}
	var r scripting.Reply
	var err error
	switch tag {
	case '$':
		r.Kind = scripting.ReplyString
		r.Str, b, err = bytes()
	case '+':
		r.Kind = scripting.ReplyStatus
		r.Str, b, err = bytes()
	case '-':
		r.Kind = scripting.ReplyError
		r.Str, b, err = bytes()
	case ':':
		r.Kind, r.Int = scripting.ReplyInteger, int64(word)
	case '*':
		if word > uint64(len(b)) { // every element takes at least 9 bytes
			return r, nil, errShortReply
		}
		r.Kind = scripting.ReplyArray
		r.Elems = make([]scripting.Reply, word)
		for i := range r.Elems {
			if r.Elems[i], b, err = decodeReply(b); err != nil {
				return r, nil, err
			}
		}
	case '_':
		r.Kind = scripting.ReplyNull
	default:
		return r, nil, errors.New("unknown reply tag")
	}
	return r, b, err
}

// rateLimit lets a few panic reports a second through to the log.
type rateLimit struct {
	mu     sync.Mutex
	window time.Time
	n      int
}

var panicLog rateLimit

func (r *rateLimit) allow() (bool, int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if now := time.Now(); now.Sub(r.window) >= time.Second {
		r.window, r.n = now, 0
	}
	r.n++
	return r.n <= 5, r.n
}
