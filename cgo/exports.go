package main

// The //export trampolines the C shim calls. A file with //export may only
// declare in its C preamble, so the C lives in shim.c. Each trampoline
// converts its arguments, calls package module, and recovers any panic into
// an error reply or a log line: nothing in Go may take the server down.

/*
#include "shim.h"
*/
import "C"

import (
	"fmt"
	"runtime/debug"
	"strings"
	"time"
	"unsafe"

	"github.com/valkey-iungo/valkey-iungo/config"
	"github.com/valkey-iungo/valkey-iungo/module"
	"github.com/valkey-iungo/valkey-iungo/scripting"
)

// logPanic logs a recovered panic with its stack, at most a few a second.
func logPanic(where string, r any) {
	if ok, _ := panicLog.allow(); ok {
		logLine(module.LogWarning, fmt.Sprintf("iungo: recovered from a panic in %s: %v\n%s", where, r, debug.Stack()))
	}
}

//export goOnLoad
func goOnLoad(ctx *C.ValkeyModuleCtx, argv **C.ValkeyModuleString, argc C.int) (ok C.int) {
	defer func() {
		if r := recover(); r != nil {
			logPanic("OnLoad", r)
			ok = 0
		}
	}()
	if err := load(ctx, readArgs(argv, argc, 0)); err != nil {
		logLine(module.LogWarning, "iungo: "+strings.TrimPrefix(err.Error(), "ERR ")+". Load refused.")
		mod = nil
		return 0
	}
	return 1
}

// goOnEvent returns the id of the post-notification job the shim must add
// for the event, or 0.
//
//export goOnEvent
func goOnEvent(ctx *C.ValkeyModuleCtx, flags C.int, event *C.char, elen C.size_t, key *C.char, klen C.size_t) (job C.uint64_t) {
	x := claimEventCtx(ctx, flags)
	defer func() {
		x.busy = false
		if r := recover(); r != nil {
			logPanic("a keyspace event", r)
			job = 0
		}
	}()
	if mod == nil {
		return 0
	}
	mod.OnEvent(x,
		unsafe.String((*byte)(unsafe.Pointer(event)), int(elen)),
		unsafe.String((*byte)(unsafe.Pointer(key)), int(klen)))
	return C.uint64_t(x.job)
}

// goJobRefused drops a job the server would not take.
//
//export goJobRefused
func goJobRefused(id C.uint64_t) {
	defer func() {
		if r := recover(); r != nil {
			logPanic("a refused job", r)
		}
	}()
	if mod != nil {
		mod.DropJob(uint64(id))
	}
}

//export goRunJob
func goRunJob(ctx *C.ValkeyModuleCtx, id C.uint64_t, db C.int) {
	x := claimJobCtx(ctx, db)
	defer func() {
		x.busy = false
		if r := recover(); r != nil {
			logPanic("a trigger job", r)
		}
	}()
	if mod != nil {
		mod.RunJob(x, uint64(id))
	}
}

//export goCommand
func goCommand(ctx *C.ValkeyModuleCtx, argv **C.ValkeyModuleString, argc C.int) {
	sc := serverCtx{ctx}
	defer func() {
		if r := recover(); r != nil {
			logPanic("IUNGO", r)
			sc.ReplyError(fmt.Sprintf("ERR internal error in iungo: %v", r))
		}
	}()
	if mod == nil {
		sc.ReplyError("ERR iungo is not loaded")
		return
	}
	mod.Command(sc, readArgs(argv, argc, 0))
}

//export goConfigGetNumeric
func goConfigGetNumeric(idx C.int) (v C.longlong) {
	defer func() {
		if r := recover(); r != nil {
			logPanic("CONFIG GET", r)
		}
	}()
	return C.longlong(mod.GetOption(int(idx)))
}

//export goConfigSetNumeric
func goConfigSetNumeric(idx C.int, val C.longlong, msg *C.char, size C.size_t) (ok C.int) {
	defer func() {
		if r := recover(); r != nil {
			logPanic("CONFIG SET", r)
			ok = 0
		}
	}()
	if err := mod.SetNumericOption(int(idx), int64(val)); err != nil {
		writeCString(msg, size, strings.TrimPrefix(err.Error(), "ERR "))
		return 0
	}
	return 1
}

//export goConfigGetString
func goConfigGetString(idx C.int, buf *C.char, size C.size_t) (n C.size_t) {
	defer func() {
		if r := recover(); r != nil {
			logPanic("CONFIG GET", r)
			n = 0
		}
	}()
	v := mod.GetStringOption(int(idx))
	return C.size_t(copy(unsafe.Slice((*byte)(unsafe.Pointer(buf)), int(size)), v))
}

//export goConfigSetString
func goConfigSetString(idx C.int, v *C.char, n C.size_t, msg *C.char, size C.size_t) (ok C.int) {
	defer func() {
		if r := recover(); r != nil {
			logPanic("CONFIG SET", r)
			ok = 0
		}
	}()
	if err := mod.SetStringOption(int(idx), C.GoStringN(v, C.int(n))); err != nil {
		writeCString(msg, size, strings.TrimPrefix(err.Error(), "ERR "))
		return 0
	}
	return 1
}

// writeCString copies s into a C buffer of size bytes, NUL-terminated.
func writeCString(dst *C.char, size C.size_t, s string) {
	buf := unsafe.Slice((*byte)(unsafe.Pointer(dst)), int(size))
	buf[copy(buf[:len(buf)-1], s)] = 0
}

//export goInfo
func goInfo(ictx *C.ValkeyModuleInfoCtx, forCrashReport C.int) {
	// A crash report runs inside the server's signal handler: stay out.
	if forCrashReport != 0 || mod == nil {
		return
	}
	defer func() {
		if r := recover(); r != nil {
			logPanic("INFO", r)
		}
	}()
	C.iungo_info_section(ictx)
	for _, f := range mod.Info() {
		switch v := f.Value.(type) {
		case int64:
			C.iungo_info_int(ictx, cstr(f.Name), C.size_t(len(f.Name)), C.longlong(v))
		default:
			s := fmt.Sprint(v)
			C.iungo_info_string(ictx, cstr(f.Name), C.size_t(len(f.Name)), cstr(s), C.size_t(len(s)))
		}
	}
}

// readArgs copies argv[from:] into Go strings.
func readArgs(argv **C.ValkeyModuleString, argc C.int, from int) []string {
	args := make([]string, 0, max(int(argc)-from, 0))
	for i := from; i < int(argc); i++ {
		var n C.size_t
		p := C.iungo_arg(argv, C.int(i), &n)
		args = append(args, C.GoStringN(p, C.int(n)))
	}
	return args
}

//export goAuxLoad
func goAuxLoad(buf *C.char, n C.size_t) (ok C.int) {
	defer func() {
		if r := recover(); r != nil {
			logPanic("RDB load", r)
			ok = 0
		}
	}()
	snap := C.GoBytes(unsafe.Pointer(buf), C.int(n))
	cfg, err := config.Decode(snap)
	if err == nil {
		err = mod.Replace(cfg, "rdb")
	}
	if err != nil {
		logLine(module.LogWarning, "iungo: cannot load the iungo configuration from the RDB: "+
			strings.TrimPrefix(err.Error(), "ERR ")+"; nothing was applied.")
		return 0
	}
	return 1
}

//export goLoadingStarted
func goLoadingStarted() { withModule("loading", (*module.Module).Reset) }

//export goForkBorn
func goForkBorn(ctx *C.ValkeyModuleCtx) {
	defer func() {
		if r := recover(); r != nil {
			logPanic("fork", r)
		}
	}()
	// An AOF rewrite drops the IUNGO commands of the old AOF, and without
	// the RDB preamble its base holds no aux data: start the new AOF part
	// with the whole configuration.
	if mod == nil || C.iungo_aof_rewrite_in_progress(ctx) == 0 {
		return
	}
	restoreIntoNewAOF(serverCtx{ctx})
}

// restoreIntoNewAOF writes IUNGO RESTORE of the whole configuration to the
// AOF. While writes are paused, propagating would abort the server: it
// tries again every 100 ms. The rewrite opened its new incremental file
// before it forked, so a later RESTORE still lands after the new base.
func restoreIntoNewAOF(x serverCtx) {
	if x.WritesPaused() {
		after(x, 100*time.Millisecond, restoreIntoNewAOF)
		return
	}
	snap := config.Encode(mod.Config())
	C.iungo_replicate_restore(x.c, bytesPtr(snap), C.size_t(len(snap)), 1)
}

//export goFinishBlocked
func goFinishBlocked(ctx *C.ValkeyModuleCtx, id C.uint64_t) {
	sc := serverCtx{ctx}
	defer func() {
		if r := recover(); r != nil {
			logPanic("a blocked IUNGO command", r)
			sc.ReplyError(fmt.Sprintf("ERR internal error in iungo: %v", r))
		}
	}()
	finishBlocked(sc, uint64(id))
}

//export goTimer
func goTimer(ctx *C.ValkeyModuleCtx, id C.uint64_t) {
	defer func() {
		if r := recover(); r != nil {
			logPanic("a timer", r)
		}
	}()
	fireTimer(serverCtx{ctx}, uint64(id))
}

//export goAfterStartup
func goAfterStartup(ctx *C.ValkeyModuleCtx) {
	defer func() {
		if r := recover(); r != nil {
			logPanic("startup", r)
		}
	}()
	changed, err := mod.ApplyManifest()
	switch {
	case err != nil:
		logLine(module.LogWarning, "iungo: manifest not applied after the data load: "+err.Error())
	case changed:
		// Replicas and the AOF learn the result as one RESTORE.
		serverCtx{ctx}.ReplicateRestore(config.Encode(mod.Config()))
		logLine(module.LogNotice, "iungo: applied the manifest "+mod.ManifestPath()+" over the loaded data")
	}
	opts := module.SyncOptions{ValkeyVersion: serverVersion, NodeAddress: nodeAddress}
	if module.CtxFlags(C.iungo_ctx_flags(ctx))&module.FlagCluster != 0 {
		// In a cluster a node is known by its cluster node id.
		var buf [64]C.char
		opts.NodeID = C.GoStringN(&buf[0], C.int(C.iungo_cluster_myid(ctx, &buf[0], C.size_t(len(buf)))))
	}
	mod.StartSync(lockServer{}, opts)
	after(serverCtx{ctx}, 0, tickCrons)
}

// tickCrons runs a due cron, if any, on the main thread, and ticks again:
// the module's timer runs as long as the server does.
func tickCrons(x serverCtx) {
	next := time.Second
	func() {
		defer func() {
			if r := recover(); r != nil {
				logPanic("a cron tick", r)
			}
		}()
		C.iungo_run_begin(x.c)
		defer C.iungo_run_end(x.c)
		next = mod.Tick(x, time.Now())
	}()
	after(x, next, tickCrons)
}

//export goRoleChanged
func goRoleChanged() { withModule("a role change", (*module.Module).RoleChanged) }

//export goShutdown
func goShutdown() { withModule("the shutdown", (*module.Module).Shutdown) }

// withModule runs a server event's handler on the loaded module,
// recovering a panic into a log line.
func withModule(what string, handle func(*module.Module)) {
	defer func() {
		if r := recover(); r != nil {
			logPanic(what, r)
		}
	}()
	if mod != nil {
		handle(mod)
	}
}

//export goOldValueWanted
func goOldValueWanted(k *C.char, n C.size_t, how C.int) (max C.longlong) {
	defer func() {
		if r := recover(); r != nil {
			logPanic("a key's old value", r)
			max = 0
		}
	}()
	if mod == nil {
		return 0
	}
	return C.longlong(mod.OldValueWanted(unsafe.String((*byte)(unsafe.Pointer(k)), int(n)), int(how)))
}

//export goOldValue
func goOldValue(k *C.char, n C.size_t, buf *C.char, blen C.size_t, valueType, over, how C.int) {
	defer func() {
		if r := recover(); r != nil {
			logPanic("a key's old value", r)
		}
	}()
	if mod == nil {
		return
	}
	var value scripting.Reply
	if over == 0 && valueType != 0 {
		v, rest, err := decodeReply(unsafe.Slice((*byte)(unsafe.Pointer(buf)), int(blen)))
		if err != nil || len(rest) != 0 {
			return
		}
		value = v
	}
	key := C.GoStringN(k, C.int(n))
	mod.SetOldValue(key, value, int(valueType), over != 0, int(how))
}
