// Package itest holds the integration tests: each starts its own
// valkey-server on a free loopback port with build/iungo.so loaded (package
// internal/vtest) and checks what clients can observe. They are skipped
// under -short; make test builds the module and runs them.
package itest
