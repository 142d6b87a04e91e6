package iungo

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

// Ensure the script line of a run's error is found where the engine puts
// it, and not in a script's name.
func TestErrorLine(t *testing.T) {
	for msg, want := range map[string]int{
		`script "a": line 5: WRONGTYPE`:                       5,
		`line 12: boom`:                                       12,
		`script "pipeline 3": line 7: x`:                      7,
		`script "a" does not compile: line 1 (end of script)`: 1,
		`timed out after 100ms`:                               0,
		`script "a": line x: y`:                               0,
	} {
		assert.Equal(t, want, ErrorLine(msg), msg)
	}
}
