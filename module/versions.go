package module

import "fmt"

// ServerVersion is a Valkey version as ValkeyModule_GetServerVersion
// encodes it: 0x00MMmmpp.
type ServerVersion int

// Version builds a ServerVersion.
func Version(major, minor, patch int) ServerVersion {
	return ServerVersion(major<<16 | minor<<8 | patch)
}

func (v ServerVersion) String() string {
	return fmt.Sprintf("%d.%d.%d", int(v)>>16&0xff, int(v)>>8&0xff, int(v)&0xff)
}

// Features is what the module does differently by server version: every
// version difference is decided here, from the version the server reports
// at load. (What depends on an API being present, like ACL categories, is
// decided by the API's presence instead.)
type Features struct {
	// CommandNames: a keyspace notification runs on the client of the
	// command that raised it (8.1+), so the command's name tells slot
	// migration from writes; before, a command filter records it.
	CommandNames bool
	// AtomicSlotMigration: CLUSTER MIGRATESLOTS exists (9.0+) and is
	// refused while a module that does not declare it handles it is loaded.
	AtomicSlotMigration bool
	// ScriptErrors is how the server's own Lua words the errors of a call
	// that never ran, so that a trigger reads what EVAL reads there.
	ScriptErrors ScriptErrors
}

// ScriptErrors are the messages of calls a script may not make.
type ScriptErrors struct {
	NotAllowed string // a command flagged noscript
	WrongArity string
	Unknown    string
}

// FeaturesOf returns the features of a server version.
func FeaturesOf(v ServerVersion) Features {
	f := Features{
		CommandNames:        v >= Version(8, 1, 0),
		AtomicSlotMigration: v >= Version(9, 0, 0),
		ScriptErrors: ScriptErrors{
			NotAllowed: "ERR This Redis command is not allowed from script",
			WrongArity: "ERR Wrong number of args calling command from script",
			Unknown:    "ERR Unknown command called from script",
		},
	}
	if v < Version(8, 0, 0) {
		f.ScriptErrors.WrongArity = "ERR Wrong number of args calling Redis command from script"
		f.ScriptErrors.Unknown = "ERR Unknown Redis command called from script"
	}
	if v >= Version(9, 1, 0) {
		// Lua became a module in 9.1, and reworded this one.
		f.ScriptErrors.NotAllowed = "ERR This Valkey command is not allowed from script"
	}
	return f
}
