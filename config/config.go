// Package config is the trigger configuration as every part of iungo sees
// it: the module inside valkey-server, the iungo client and the reference
// iungo server. It holds the names and their rules, event names and event
// classes, the validation of scripts and triggers, the snapshot codec that
// RDB files, the AOF, replication and IUNGO DUMP/RESTORE carry, the startup
// manifest, and the digest that identifies a configuration by its content.
//
// It is plain Go with no state: the engine that runs a configuration is in
// package module.
package config

import (
	"fmt"

	"github.com/valkey-iungo/valkey-iungo/scripting"
)

// Config is a whole configuration. Counters are not part of it.
type Config struct {
	// Revision is the node's own counter, bumped by every change.
	Revision uint64
	// Origin says which iungo configuration this one is, if it came from
	// iungo.
	Origin  Origin
	Classes Class
	Paused  bool
	Scripts []ScriptDef // by name
	// Triggers in registration order, which is the order they run in.
	Triggers []TriggerDef
	Crons    []CronDef // by name
}

// Origin identifies a configuration published by iungo: the namespace's
// identity (a restored iungo keeps it, a recreated namespace gets a new
// one), its version there, and the digest of what that version holds. The
// zero Origin means the configuration did not come from iungo.
type Origin struct {
	NamespaceID string
	Version     uint64
	Digest      string
}

// ScriptDef is a script by name and source.
type ScriptDef struct {
	Name   string
	Source string
}

// TriggerDef is a trigger as configured.
type TriggerDef struct {
	Pattern string
	Events  string // as IUNGO TRIGGER SET takes it, e.g. "hset,set" or "*"
	Script  string
	Enabled bool
	// Window, in ms, makes it a window trigger: its events are gathered
	// and its script runs once per window. 0: it runs for every event.
	Window int64
}

// Window lengths, in ms.
const (
	MinWindow = 100
	MaxWindow = 24 * 60 * 60 * 1000
)

// CheckWindow says what is wrong with a window length in ms (0: none).
func CheckWindow(ms int64) error {
	if ms != 0 && (ms < MinWindow || ms > MaxWindow) {
		return fmt.Errorf("window of %d ms; use %d ms to %d ms (one day)", ms, MinWindow, MaxWindow)
	}
	return nil
}

// CronDef is a cron as configured, and when it last ran.
type CronDef struct {
	Name     string
	Schedule string
	Script   string
	Enabled  bool
	// Since is the time (Unix ms) after which the schedule's times are
	// due: the scheduled time of the last run, or when the cron was set or
	// enabled since; 0 until the primary first sees it. LastRun is the
	// scheduled time of the last run, 0 for none. State that travels with
	// the configuration (RDB, AOF, replication, DUMP) so that one scheduled
	// time runs once, on whichever node is primary; Digest leaves it out.
	Since, LastRun int64
}

// CheckCron checks a cron's name and schedule, as IUNGO CRON SET does.
func CheckCron(name, schedule string) (Schedule, error) {
	if err := CheckName("cron name", name); err != nil {
		return Schedule{}, err
	}
	return ParseSchedule(schedule)
}

// Limits on names and patterns.
const (
	MaxNameBytes    = 128
	MaxPatternBytes = 1024
)

// ValidName reports whether s is a valid namespace, node or script name:
// 1 to 128 letters, digits, '_', '-', '.' or ':'.
func ValidName(s string) bool {
	if s == "" || len(s) > MaxNameBytes {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !nameByte(s[i]) {
			return false
		}
	}
	return true
}

func nameByte(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_' || c == '-' || c == '.' || c == ':'
}

// CheckName says what is wrong with a name, or nil; what names the thing
// ("script name", "namespace", ...).
func CheckName(what, name string) error {
	if ValidName(name) {
		return nil
	}
	if name == "" || len(name) > MaxNameBytes {
		return fmt.Errorf("%s must be 1 to %d bytes", what, MaxNameBytes)
	}
	i := 0
	for nameByte(name[i]) {
		i++
	}
	return fmt.Errorf("%s %q has %q; use letters, digits, '_', '-', '.' or ':'", what, name, name[i])
}

// ParseTrigger checks a trigger's pattern and event list and returns the
// events normalised (nil: every event).
func ParseTrigger(pattern, events string) ([]string, error) {
	switch {
	case pattern == "":
		return nil, fmt.Errorf("empty key pattern; use a glob like order:* or * for every key")
	case len(pattern) > MaxPatternBytes:
		return nil, fmt.Errorf("key pattern of %d bytes; the limit is %d", len(pattern), MaxPatternBytes)
	}
	return ParseEvents(events)
}

// CheckTrigger checks a trigger's pattern and events, as IUNGO TRIGGER SET
// does, and returns the events normalised.
func CheckTrigger(pattern, events string) (string, error) {
	evs, err := ParseTrigger(pattern, events)
	if err != nil {
		return "", err
	}
	return FormatEvents(evs), nil
}

// CompileScript checks a script's name and compiles its source.
func CompileScript(name, source string) (*scripting.Script, error) {
	if err := CheckName("script name", name); err != nil {
		return nil, err
	}
	return scripting.Compile(name, source)
}

// CheckScript checks a script's name and compiles its source, as IUNGO
// SCRIPT SET does.
func CheckScript(name, source string) error {
	_, err := CompileScript(name, source)
	return err
}

// TriggerID identifies a trigger by pattern and normalised event list.
func TriggerID(pattern string, events []string) string {
	return pattern + "\x00" + FormatEvents(events)
}
