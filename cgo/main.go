// Command cgo is the iungo module as a c-shared library (build/iungo.so):
// the C shim in shim.c and the Go trampolines that hand each callback to
// package module. It is the only package that imports "C".
package main

/*
#include <stdlib.h>
#include "shim.h"
*/
import "C"

import (
	"cmp"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"unsafe"

	"github.com/valkey-iungo/valkey-iungo/module"
)

func main() {}

// mod is the loaded module; the server calls into it from its main thread.
var mod *module.Module

// Set at load for the sync with iungo: the server's version and where
// iungo can reach this node.
var serverVersion, nodeAddress string

// cLevels holds the log levels as C strings for the life of the process.
var cLevels = map[module.LogLevel]*C.char{
	module.LogDebug:   C.CString(string(module.LogDebug)),
	module.LogVerbose: C.CString(string(module.LogVerbose)),
	module.LogNotice:  C.CString(string(module.LogNotice)),
	module.LogWarning: C.CString(string(module.LogWarning)),
}

// logLine writes one line to the server log, from any thread.
func logLine(level module.LogLevel, msg string) {
	lv, ok := cLevels[level]
	if !ok {
		lv = cLevels[module.LogWarning]
	}
	C.iungo_log(lv, cstr(msg), C.size_t(len(msg)))
}

// cstr points C at a Go string's bytes for the duration of one call.
func cstr(s string) *C.char {
	return (*C.char)(unsafe.Pointer(unsafe.StringData(s)))
}

// load builds the module during OnLoad: subcommands, configs, module
// arguments, INFO and the keyspace subscription.
func load(ctx *C.ValkeyModuleCtx, args []string) error {
	version := module.ServerVersion(C.iungo_server_version())
	serverVersion = version.String()
	features := module.FeaturesOf(version)
	e := features.ScriptErrors
	notAllowed, wrongArity, unknown := C.CString(e.NotAllowed), C.CString(e.WrongArity), C.CString(e.Unknown)
	C.iungo_set_script_errors(notAllowed, wrongArity, unknown)
	C.free(unsafe.Pointer(notAllowed))
	C.free(unsafe.Pointer(wrongArity))
	C.free(unsafe.Pointer(unknown))
	if C.iungo_register_persistence(ctx, boolInt(features.AtomicSlotMigration)) == 0 {
		return fmt.Errorf("cannot register the iungo-cfg aux data type or the server events")
	}
	m := module.New(module.Hooks{
		Log:             logLine,
		Filter:          setFilter,
		Store:           cstore{},
		MigrationEvents: func() uint64 { return uint64(C.iungo_migration_events()) },
	})
	m.SetServerVersion(version)
	mod = m // the config callbacks below reach it
	for i, o := range module.NumericOptions {
		name := C.CString(o.Name)
		ok := C.iungo_register_numeric(ctx, name, C.longlong(o.Default), C.longlong(o.Min), C.longlong(o.Max), C.int(i))
		C.free(unsafe.Pointer(name))
		if ok == 0 {
			return fmt.Errorf("cannot register the config iungo.%s", o.Name)
		}
	}
	for i, o := range module.StringOptions {
		name, def := C.CString(o.Name), C.CString(o.Default)
		ok := C.iungo_register_string(ctx, name, def, C.int(i), boolInt(o.Sensitive))
		C.free(unsafe.Pointer(name))
		C.free(unsafe.Pointer(def))
		if ok == 0 {
			return fmt.Errorf("cannot register the config iungo.%s", o.Name)
		}
	}
	if C.iungo_load_configs(ctx) == 0 {
		return fmt.Errorf("the iungo.* lines of the server config were refused; see the lines above")
	}
	if err := m.ApplyArgs(args); err != nil {
		return err
	}
	// The subcommands come after everything a user's input can refuse:
	// Valkey 8.1.0-8.1.4 may crash freeing the subcommands of a module
	// whose load fails (valkey-io/valkey#2753).
	category := C.iungo_add_acl_category(ctx) != 0
	if !category {
		logLine(module.LogNotice, "iungo: this server has no module ACL categories (Valkey 8.0+); the IUNGO subcommands are not in @iungo")
	}
	for _, noun := range module.Nouns() {
		// Changing triggers installs code that runs on every write: an
		// admin operation, like CONFIG SET. Setting categories replaces
		// those the admin flag implies, so they are named again.
		flags, categories := "admin deny-script", "admin dangerous"
		switch {
		case noun.Writes:
			flags += " may-replicate"
		case noun.ReadOnly:
			flags, categories = "readonly deny-script", ""
		}
		if category {
			categories = strings.TrimSpace("iungo " + categories)
		}
		name, cflags, ccats := C.CString(noun.Name), C.CString(flags), C.CString(categories)
		ok := C.iungo_create_subcommand(ctx, name, cflags, ccats)
		C.free(unsafe.Pointer(name))
		C.free(unsafe.Pointer(cflags))
		C.free(unsafe.Pointer(ccats))
		if ok == 0 {
			return fmt.Errorf("cannot create the subcommand IUNGO %s", strings.ToUpper(noun.Name))
		}
	}
	if C.iungo_register_info(ctx) == 0 {
		return fmt.Errorf("cannot register the INFO section")
	}
	if C.iungo_keep_go_signal_handlers(ctx) == 0 {
		return fmt.Errorf("cannot watch the server's signal handlers")
	}
	setCrashOutput(ctx)
	cluster := module.CtxFlags(C.iungo_ctx_flags(ctx))&module.FlagCluster != 0
	m.SetClusterMode(cluster)
	if cluster && C.iungo_watch_migrations(ctx, boolInt(features.CommandNames)) == 0 {
		return fmt.Errorf("cannot register the command filter that tells slot migration from writes")
	}
	if C.iungo_watch_key_values(ctx) == 0 {
		return fmt.Errorf("cannot watch the values of removed keys")
	}
	if C.iungo_watch_role(ctx) == 0 {
		return fmt.Errorf("cannot watch replication role changes")
	}
	nodeAddress = defaultAddress(ctx, cluster)
	// Once the startup load is over: the manifest again (it wins over
	// what the data restored), then the sync with iungo. Last, so that no
	// timer outlives a refused load.
	C.iungo_after_startup(ctx)
	logLine(module.LogNotice, fmt.Sprintf("iungo %s loaded on Valkey %s", module.ModuleVersion, serverVersion))
	return nil
}

// configGet reads a server config value.
func configGet(ctx *C.ValkeyModuleCtx, name string) string {
	cname := C.CString(name)
	defer C.free(unsafe.Pointer(cname))
	var n C.size_t
	p := C.iungo_config_get(ctx, cname, &n)
	if p == nil {
		return ""
	}
	defer C.iungo_free(unsafe.Pointer(p))
	return C.GoStringN(p, C.int(n))
}

// defaultAddress is where iungo reaches this node: in a cluster, the
// address it announces to the others (cluster-announce-hostname, -ip,
// -port); else, and for what is not announced, the first bind address (the
// host name when the server listens everywhere) and the port.
func defaultAddress(ctx *C.ValkeyModuleCtx, cluster bool) string {
	host := "127.0.0.1"
	if fields := strings.Fields(configGet(ctx, "bind")); len(fields) > 0 {
		host = strings.TrimPrefix(fields[0], "-")
	}
	if host == "*" || host == "0.0.0.0" || host == "::" || host == "::*" {
		if h, err := os.Hostname(); err == nil {
			host = h
		}
	}
	port := configGet(ctx, "port")
	if cluster {
		host = cmp.Or(configGet(ctx, "cluster-announce-hostname"), configGet(ctx, "cluster-announce-ip"), host)
		if p := configGet(ctx, "cluster-announce-port"); p != "" && p != "0" {
			port = p
		}
	}
	return net.JoinHostPort(host, port)
}

// setCrashOutput sends what the Go runtime prints when it dies (an
// unrecovered panic, a fatal error) to iungo-crash.log next to the server's
// log file, or in the server's directory when it logs to stdout.
func setCrashOutput(ctx *C.ValkeyModuleCtx) {
	dir := "."
	if logfile := configGet(ctx, "logfile"); logfile != "" {
		dir = filepath.Dir(logfile)
	}
	path := filepath.Join(dir, "iungo-crash.log")
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err == nil {
		err = debug.SetCrashOutput(f, debug.CrashOptions{})
		f.Close()
	}
	if err != nil {
		logLine(module.LogWarning, "iungo: Go crash output stays on stderr: "+err.Error())
	}
}

func boolInt(b bool) C.int {
	if b {
		return 1
	}
	return 0
}

// cstore is module.Store over the C record list that aux_save2 frames.
type cstore struct{}

func (cstore) Put(h uint64, rec []byte) uint64 {
	return uint64(C.iungo_store_put(C.uint64_t(h), bytesPtr(rec), C.size_t(len(rec))))
}

func (cstore) Delete(h uint64) { C.iungo_store_delete(C.uint64_t(h)) }

func (cstore) SetHeader(rec []byte, isDefault bool) {
	d := C.int(0)
	if isDefault {
		d = 1
	}
	C.iungo_store_set_header(bytesPtr(rec), C.size_t(len(rec)), d)
}

// Build packs the records into one buffer for one C call; it allocates
// nothing in C that Go keeps, and runs on any thread.
func (cstore) Build(records [][]byte) (uint64, []uint64) {
	total := 0
	for _, r := range records {
		total += len(r)
	}
	buf := make([]byte, 0, total)
	ends := make([]C.size_t, len(records))
	for i, r := range records {
		buf = append(buf, r...)
		ends[i] = C.size_t(len(buf))
	}
	handles := make([]uint64, len(records))
	var endsPtr *C.size_t
	var handlesPtr *C.uint64_t
	if len(records) > 0 {
		endsPtr, handlesPtr = &ends[0], (*C.uint64_t)(unsafe.Pointer(&handles[0]))
	}
	image := C.iungo_store_build(bytesPtr(buf), endsPtr, C.size_t(len(records)), handlesPtr)
	return uint64(image), handles
}

func (cstore) Swap(image uint64)    { C.iungo_store_swap(C.uint64_t(image)) }
func (cstore) Discard(image uint64) { C.iungo_store_discard(C.uint64_t(image)) }

// bytesPtr points C at a byte slice for the duration of one call.
func bytesPtr(b []byte) *C.char {
	if len(b) == 0 {
		return nil
	}
	return (*C.char)(unsafe.Pointer(&b[0]))
}

// setFilter hands the module's Filter to the shim. It runs on the main
// thread or under the server's lock, rarely: it packs its own buffers.
func setFilter(f module.Filter) {
	var names []byte
	var lens []C.size_t
	for _, ev := range f.Events {
		names = append(names, ev...)
		lens = append(lens, C.size_t(len(ev)))
	}
	var keys []byte
	if f.KeysChanged {
		// The layout iungo_set_filter reads: Any, then the four bitmaps.
		k := f.Keys
		keys = make([]byte, 0, 1+len(k.First1)+len(k.Last1)+len(k.First2)+len(k.Last2))
		keys = append(keys, 0)
		if k.Any {
			keys[0] = 1
		}
		keys = append(append(append(append(keys, k.First1[:]...), k.Last1[:]...), k.First2[:]...), k.Last2[:]...)
	}
	all := C.int(0)
	if f.AllEvents {
		all = 1
	}
	var lensPtr *C.size_t
	if len(lens) > 0 {
		lensPtr = &lens[0]
	}
	C.iungo_set_filter(C.int(f.Classes), all, bytesPtr(names), lensPtr, C.int(len(lens)),
		(*C.uchar)(unsafe.Pointer(bytesPtr(keys))), C.size_t(len(keys)))
}
