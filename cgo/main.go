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
	"fmt"
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

// Version is the module's version, as the server's MODULE LIST shows it
// (encoded in shim.c as 100).
const Version = "0.1.0"

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
	if C.iungo_register_persistence(ctx) == 0 {
		return fmt.Errorf("cannot register the iungo-cfg aux data type or the server events")
	}
	m := module.New(module.Hooks{
		Log:    logLine,
		Filter: func(c module.Class) { C.iungo_set_filter(C.int(c)) },
		Store:  cstore{},
	})
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
		ok := C.iungo_register_string(ctx, name, def, C.int(i))
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
	if m.ManifestPath() != "" {
		// The manifest wins over what the data load restores: apply it
		// again once the startup load is over.
		C.iungo_after_startup(ctx)
	}
	if C.iungo_register_info(ctx) == 0 {
		return fmt.Errorf("cannot register the INFO section")
	}
	if C.iungo_keep_go_signal_handlers(ctx) == 0 {
		return fmt.Errorf("cannot watch the server's signal handlers")
	}
	setCrashOutput(ctx)
	m.SetClusterMode(module.CtxFlags(C.iungo_ctx_flags(ctx))&module.FlagCluster != 0)
	C.iungo_subscribe(ctx, C.int(module.ClassesSubscribed))
	v := int(C.iungo_server_version())
	logLine(module.LogNotice, fmt.Sprintf("iungo %s loaded on Valkey %d.%d.%d", Version, v>>16&0xff, v>>8&0xff, v&0xff))
	return nil
}

// setCrashOutput sends what the Go runtime prints when it dies (an
// unrecovered panic, a fatal error) to iungo-crash.log next to the server's
// log file, or in the server's directory when it logs to stdout.
func setCrashOutput(ctx *C.ValkeyModuleCtx) {
	dir := "."
	name := C.CString("logfile")
	defer C.free(unsafe.Pointer(name))
	var n C.size_t
	if p := C.iungo_config_get(ctx, name, &n); p != nil {
		if logfile := C.GoStringN(p, C.int(n)); logfile != "" {
			dir = filepath.Dir(logfile)
		}
		C.iungo_free(unsafe.Pointer(p))
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

func (cstore) Clear() { C.iungo_store_clear() }

// bytesPtr points C at a byte slice for the duration of one call.
func bytesPtr(b []byte) *C.char {
	if len(b) == 0 {
		return nil
	}
	return (*C.char)(unsafe.Pointer(&b[0]))
}
