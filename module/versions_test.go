package module

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

// Ensure each supported version gets the wording its own Lua uses (read
// from each server binary) and its features.
func TestFeaturesOf(t *testing.T) {
	cases := []struct {
		version                         ServerVersion
		names, atomic                   bool
		notAllowed, wrongArity, unknown string
	}{
		{Version(7, 2, 4), false, false, "This Redis command", "calling Redis command", "Unknown Redis command"},
		{Version(8, 0, 1), false, false, "This Redis command", "calling command", "Unknown command"},
		{Version(8, 1, 1), true, false, "This Redis command", "calling command", "Unknown command"},
		{Version(9, 0, 0), true, true, "This Redis command", "calling command", "Unknown command"},
		{Version(9, 1, 2), true, true, "This Valkey command", "calling command", "Unknown command"},
	}
	for _, c := range cases {
		f := FeaturesOf(c.version)
		assert.Equal(t, c.names, f.CommandNames, c.version)
		assert.Equal(t, c.atomic, f.AtomicSlotMigration, c.version)
		assert.Contains(t, f.ScriptErrors.NotAllowed, c.notAllowed, c.version)
		assert.Contains(t, f.ScriptErrors.WrongArity, c.wrongArity, c.version)
		assert.Contains(t, f.ScriptErrors.Unknown, c.unknown, c.version)
	}
	assert.Equal(t, "9.1.2", Version(9, 1, 2).String())
}
