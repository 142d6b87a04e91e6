package module

import (
	"math"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	"github.com/valkey-iungo/valkey-iungo/config"
	"github.com/valkey-iungo/valkey-iungo/iungo"
)

// Modes: in production the configuration comes from iungo, and local
// IUNGO changes are refused.
const (
	ModeDev        = "dev"
	ModeProduction = "production"
)

// Options are the module's settings: module arguments at load, and
// CONFIG SET/GET iungo.<name> at run time.
type Options struct {
	MaxDepth      int           // max-depth
	ScriptTimeout time.Duration // script-timeout-ms
	CommandBudget time.Duration // command-budget-ms; 0: ScriptTimeout
	CommandRuns   int           // command-max-runs
	ScriptMemory  int64         // script-memory-mb, in bytes
	WindowMaxKeys int64         // window-max-keys
	GoMaxProcs    int           // go-maxprocs
	GoMemoryLimit int64         // go-memory-limit-mb, in bytes; 0 means none
	Mode          string        // mode
	ScriptUser    string        // script-user; "" means the module's own user
	DebugCommands bool          // debug-commands
	OldValueMax   int64         // old-value-max-bytes; 0: none kept
}

// NumericOption describes one integer option for the server's config table.
type NumericOption struct {
	Name     string
	Default  int64
	Min, Max int64
	Help     string
	get      func(*Module) int64
	set      func(*Module, int64)
}

// StringOption describes one string option; set refuses a bad value with
// a message. Sensitive ones are hidden from the server's logs.
type StringOption struct {
	Name      string
	Default   string
	Sensitive bool
	Help      string
	get       func(*Module) string
	set       func(*Module, string) error
}

// syncString is a string option of the sync with iungo.
func syncString(name, help string, sensitive bool, field func(*SyncOptions) *string, check func(string) error) StringOption {
	return StringOption{
		Name: name, Sensitive: sensitive, Help: help,
		get: func(m *Module) string {
			m.sync.mu.Lock()
			defer m.sync.mu.Unlock()
			return *field(&m.sync.opts)
		},
		set: func(m *Module, v string) error {
			if check != nil && v != "" {
				if err := check(v); err != nil {
					return err
				}
			}
			m.sync.setSyncOption(func(o *SyncOptions) { *field(o) = v })
			return nil
		},
	}
}

// syncSeconds is a numeric option of the sync, in seconds.
func syncSeconds(name string, def int64, help string, field func(*SyncOptions) *time.Duration) NumericOption {
	return NumericOption{
		Name: name, Default: def, Min: 0, Max: 86_400, Help: help,
		get: func(m *Module) int64 {
			m.sync.mu.Lock()
			defer m.sync.mu.Unlock()
			return int64(*field(&m.sync.opts) / time.Second)
		},
		set: func(m *Module, v int64) {
			m.sync.setSyncOption(func(o *SyncOptions) { *field(o) = time.Duration(v) * time.Second })
		},
	}
}

func checkEndpoint(v string) error {
	if !strings.HasPrefix(v, "http://") && !strings.HasPrefix(v, "https://") {
		return errorf("endpoint %q must start with http:// or https://", v)
	}
	return nil
}

func checkPublicKey(v string) error {
	if _, err := iungo.ParsePublicKey(v); err != nil {
		return errorf("public-key: %v", err)
	}
	return nil
}

func checkProtocolName(v string) error {
	if !config.ValidName(v) {
		return errorf("%q must be 1 to 128 letters, digits, '_', '-', '.' or ':'", v)
	}
	return nil
}

// NumericOptions are registered with the server as iungo.<Name>.
var NumericOptions = []NumericOption{
	{
		Name: "max-depth", Default: 4, Min: 1, Max: 64,
		Help: "levels of triggers fired by the writes of trigger scripts; deeper events are skipped and counted as errors",
		get:  func(m *Module) int64 { return int64(m.opts.MaxDepth) },
		set:  func(m *Module, v int64) { m.opts.MaxDepth = int(v) },
	},
	{
		Name: "script-timeout-ms", Default: 100, Min: 1, Max: 60_000,
		Help: "longest run of one script before the watchdog stops it",
		get:  func(m *Module) int64 { return m.opts.ScriptTimeout.Milliseconds() },
		set: func(m *Module, v int64) {
			m.opts.ScriptTimeout = time.Duration(v) * time.Millisecond
			m.engine.SetOptions(m.engineOptions())
		},
	},
	{
		Name: "command-budget-ms", Default: 0, Min: 0, Max: 60_000,
		Help: "time all the trigger runs one client command causes may take together (its whole cascade); past it the run in progress is stopped and the rest are not run; 0: script-timeout-ms",
		get:  func(m *Module) int64 { return m.opts.CommandBudget.Milliseconds() },
		set: func(m *Module, v int64) {
			m.opts.CommandBudget = time.Duration(v) * time.Millisecond
			m.engine.SetOptions(m.engineOptions())
		},
	},
	{
		Name: "command-max-runs", Default: 10_000, Min: 1, Max: 10_000_000,
		Help: "trigger runs one client command may cause (its whole cascade); the rest are not run",
		get:  func(m *Module) int64 { return int64(m.opts.CommandRuns) },
		set:  func(m *Module, v int64) { m.opts.CommandRuns = int(v) },
	},
	{
		Name: "old-value-max-bytes", Default: 1 << 20, Min: 0, Max: 1 << 30,
		Help: "largest old value (server.old_value) kept for a trigger's script; 0 keeps none",
		get:  func(m *Module) int64 { return m.opts.OldValueMax },
		set:  func(m *Module, v int64) { m.opts.OldValueMax = v },
	},
	{
		Name: "window-max-keys", Default: 10_000, Min: 1, Max: 1_000_000,
		Help: "distinct keys one window of a window trigger may gather; the events of further keys are not counted, each an error",
		get:  func(m *Module) int64 { return m.opts.WindowMaxKeys },
		set:  func(m *Module, v int64) { m.opts.WindowMaxKeys = v },
	},
	{
		Name: "script-memory-mb", Default: 64, Min: 1, Max: 16_384,
		Help: "Go heap one run may grow by, and the largest result of one builtin call",
		get:  func(m *Module) int64 { return m.opts.ScriptMemory >> 20 },
		set: func(m *Module, v int64) {
			m.opts.ScriptMemory = v << 20
			m.engine.SetOptions(m.engineOptions())
		},
	},
	{
		Name: "go-maxprocs", Default: 2, Min: 1, Max: 1024,
		Help: "threads the Go runtime may run at once (GOMAXPROCS)",
		get:  func(m *Module) int64 { return int64(m.opts.GoMaxProcs) },
		set: func(m *Module, v int64) {
			m.opts.GoMaxProcs = int(v)
			runtime.GOMAXPROCS(int(v))
		},
	},
	syncSeconds("sync-interval-s", 60, "seconds between safety syncs with iungo; 0: only on heartbeats and IUNGO SYNC",
		func(o *SyncOptions) *time.Duration { return &o.SyncEvery }),
	syncSeconds("heartbeat-s", 10, "seconds between heartbeats to iungo; 0: none",
		func(o *SyncOptions) *time.Duration { return &o.HeartbeatEvery }),
	{
		Name: "go-memory-limit-mb", Default: 1024, Min: 0, Max: 1 << 30,
		Help: "soft limit of the Go heap (GOMEMLIMIT); 0 means none. Valkey's maxmemory does not see the Go heap",
		get:  func(m *Module) int64 { return m.opts.GoMemoryLimit >> 20 },
		set: func(m *Module, v int64) {
			m.opts.GoMemoryLimit = v << 20
			limit := int64(math.MaxInt64) // no limit
			if v > 0 {
				limit = v << 20
			}
			debug.SetMemoryLimit(limit)
		},
	},
}

// StringOptions are registered with the server as iungo.<Name>.
var StringOptions = []StringOption{
	syncString("endpoint", "URL of the iungo server, e.g. http://127.0.0.1:7379; empty: no iungo", false,
		func(o *SyncOptions) *string { return &o.Endpoint }, checkEndpoint),
	syncString("namespace", "the iungo namespace whose configuration this node follows", false,
		func(o *SyncOptions) *string { return &o.Namespace }, checkProtocolName),
	syncString("token", "bearer token of the iungo namespace", true,
		func(o *SyncOptions) *string { return &o.Token }, nil),
	syncString("public-key", "the iungo namespace's public key: only configurations signed with its private key are applied", false,
		func(o *SyncOptions) *string { return &o.PublicKey }, checkPublicKey),
	syncString("node-id", "this node's id at iungo; default: node-address", false,
		func(o *SyncOptions) *string { return &o.NodeID }, checkProtocolName),
	syncString("node-address", "host:port where iungo reaches this node to send IUNGO SYNC; default: the bind address and port", false,
		func(o *SyncOptions) *string { return &o.NodeAddress }, nil),
	{
		Name: "mode", Default: ModeDev,
		Help: "dev: IUNGO commands change the configuration; production: only iungo does (IUNGO SYNC, the manifest)",
		get:  func(m *Module) string { return m.opts.Mode },
		set: func(m *Module, v string) error {
			if v != ModeDev && v != ModeProduction {
				return errorf("mode must be %s or %s, got %q", ModeDev, ModeProduction, v)
			}
			m.opts.Mode = v
			return nil
		},
	},
	{
		Name: "script-user", Default: "",
		Help: "ACL user whose permissions every server.call of a script is checked against; empty: the module's own user, with full access",
		get:  func(m *Module) string { return m.opts.ScriptUser },
		set: func(m *Module, v string) error {
			if strings.ContainsAny(v, " \t\r\n") {
				return errorf("script-user %q has a space; ACL user names have none", v)
			}
			m.opts.ScriptUser = v
			return nil
		},
	},
	{
		Name: "debug-commands", Default: "no",
		Help: "yes enables IUNGO DEBUG, which provokes panics to test crash-proofing",
		get: func(m *Module) string {
			if m.opts.DebugCommands {
				return "yes"
			}
			return "no"
		},
		set: func(m *Module, v string) error {
			if v != "yes" && v != "no" {
				return errorf("debug-commands must be yes or no, got %q", v)
			}
			m.opts.DebugCommands = v == "yes"
			return nil
		},
	},
}

// Options returns the current options.
func (m *Module) Options() Options { return m.opts }

// GetOption returns the value of a numeric option by index.
func (m *Module) GetOption(i int) int64 { return NumericOptions[i].get(m) }

// SetNumericOption sets a numeric option by index; the server has checked
// the range already when it comes through CONFIG SET.
func (m *Module) SetNumericOption(i int, v int64) error {
	o := NumericOptions[i]
	if v < o.Min || v > o.Max {
		return errorf("%s must be between %d and %d, got %d", o.Name, o.Min, o.Max, v)
	}
	o.set(m, v)
	return nil
}

// GetStringOption returns the value of a string option by index.
func (m *Module) GetStringOption(i int) string { return StringOptions[i].get(m) }

// SetStringOption sets a string option by index, or refuses a bad value.
func (m *Module) SetStringOption(i int, v string) error { return StringOptions[i].set(m, v) }

// ApplyArgs applies module arguments given as name value pairs, as in
// "loadmodule iungo.so max-depth 8 config /etc/valkey/iungo.manifest". Names
// may carry the "iungo." prefix. "config" loads and applies a manifest.
func (m *Module) ApplyArgs(args []string) error {
	if len(args)%2 != 0 {
		return errorf("module arguments come in name value pairs; got %d words", len(args))
	}
	for i := 0; i < len(args); i += 2 {
		name, value := strings.TrimPrefix(strings.ToLower(args[i]), "iungo."), args[i+1]
		if err := m.applyArg(name, value); err != nil {
			return err
		}
	}
	return nil
}

func (m *Module) applyArg(name, value string) error {
	if name == "config" {
		return m.UseManifest(value)
	}
	for i, o := range NumericOptions {
		if o.Name == name {
			v, err := strconv.ParseInt(value, 10, 64)
			if err != nil {
				return errorf("module argument %s wants an integer, got %q", name, value)
			}
			return m.SetNumericOption(i, v)
		}
	}
	for i, o := range StringOptions {
		if o.Name == name {
			return m.SetStringOption(i, value)
		}
	}
	return errorf("unknown module argument %q; known: config, %s", name, optionNames())
}

func optionNames() string {
	var names []string
	for _, o := range NumericOptions {
		names = append(names, o.Name)
	}
	for _, o := range StringOptions {
		names = append(names, o.Name)
	}
	return strings.Join(names, ", ")
}
