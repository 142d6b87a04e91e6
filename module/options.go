package module

import (
	"strconv"
	"strings"
	"time"
)

// Options are the module's settings: module arguments at load, and
// CONFIG SET/GET iungo.<name> at run time.
type Options struct {
	MaxDepth      int           // max-depth
	ScriptTimeout time.Duration // script-timeout-ms
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

// ApplyArgs applies module arguments given as name value pairs, as in
// "loadmodule iungo.so max-depth 8 config /etc/valkey/iungo.manifest". Names
// may carry the "iungo." prefix. "config" loads and applies a manifest.
func (m *Module) ApplyArgs(args []string) error {
	if len(args)%2 != 0 {
		return errorf("module arguments come in name value pairs; got %d words", len(args))
	}
	for i := 0; i < len(args); i += 2 {
		name := strings.TrimPrefix(strings.ToLower(args[i]), "iungo.")
		if name == "config" {
			if err := m.UseManifest(args[i+1]); err != nil {
				return err
			}
			continue
		}
		idx := -1
		for j, o := range NumericOptions {
			if o.Name == name {
				idx = j
			}
		}
		if idx < 0 {
			return errorf("unknown module argument %q; known: config, %s", args[i], optionNames())
		}
		v, err := strconv.ParseInt(args[i+1], 10, 64)
		if err != nil {
			return errorf("module argument %s wants an integer, got %q", name, args[i+1])
		}
		if err := m.SetNumericOption(idx, v); err != nil {
			return err
		}
	}
	return nil
}

func optionNames() string {
	names := make([]string, len(NumericOptions))
	for i, o := range NumericOptions {
		names[i] = o.Name
	}
	return strings.Join(names, ", ")
}
