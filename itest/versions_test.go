package itest

import (
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/valkey-iungo/valkey-iungo/internal/vtest"
	"github.com/valkey-iungo/valkey-iungo/module"
)

// serverVersion is the version of the server under test.
func serverVersion(t *testing.T, s *vtest.Server) module.ServerVersion {
	t.Helper()
	info := str(t, s, "INFO", "server")
	var version string
	for _, line := range strings.Split(info, "\r\n") {
		// valkey_version from 8.0; 7.2 has only redis_version.
		if v, ok := strings.CutPrefix(line, "valkey_version:"); ok {
			version = v
			break
		}
		if v, ok := strings.CutPrefix(line, "redis_version:"); ok {
			version = v
		}
	}
	var major, minor, patch int
	_, err := fmt.Sscanf(version, "%d.%d.%d", &major, &minor, &patch)
	require.NoError(t, err, "server version %q", version)
	return module.Version(major, minor, patch)
}

// Ensure a shutdown leaves nothing behind: the sync loop stops with the
// server, and on 9.x, which unloads modules at shutdown, the one line it
// logs for iungo is the expected refusal (see README, Valkey versions).
func TestShutdownIntegration(t *testing.T) {
	s := vtest.Start(t, vtest.Options{})
	s.Shutdown("NOSAVE")
	log := s.Log()
	assert.Contains(t, log, "iungo: the server shuts down")
	for _, line := range strings.Split(log, "\n") {
		if strings.Contains(line, "unload") && strings.Contains(line, "iungo") {
			assert.Contains(t, line, "Failed to unload module iungo: the module exports one or more module-side data types", line)
		}
	}
}
