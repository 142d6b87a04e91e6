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
	for _, noun := range module.Nouns() {
		flags := "deny-script"
		if noun.Writes {
			flags += " may-replicate"
		}
		name, cflags := C.CString(noun.Name), C.CString(flags)
		ok := C.iungo_create_subcommand(ctx, name, cflags)
		C.free(unsafe.Pointer(name))
		C.free(unsafe.Pointer(cflags))
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
	C.iungo_subscribe(ctx, C.int(module.ClassesSubscribed))
	v := int(C.iungo_server_version())
	logLine(module.LogNotice, fmt.Sprintf("iungo %s loaded on Valkey %d.%d.%d", Version, v>>16&0xff, v>>8&0xff, v&0xff))
	return nil
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
