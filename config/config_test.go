package config

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
)

// Ensure names follow one rule everywhere.
func TestValidName(t *testing.T) {
	for name, ok := range map[string]bool{"shop-prod": true, "10.0.0.5:6379": true, "a.b_c": true,
		"": false, "a b": false, "ü": false, strings.Repeat("a", 129): false} {
		assert.Equal(t, ok, ValidName(name), name)
	}
}
