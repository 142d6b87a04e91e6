package config

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func writeManifest(t *testing.T, text string) string {
	t.Helper()
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "a.lua"), []byte("return 1"), 0o600))
	path := filepath.Join(dir, "iungo.conf")
	require.NoError(t, os.WriteFile(path, []byte(text), 0o600))
	return path
}

// Ensure cron lines are read with their state, and bad ones are refused
// with the line and what to fix.
func TestManifestCrons(t *testing.T) {
	mf, err := LoadManifest(writeManifest(t, "script a a.lua\ncron daily \"0 0 * * *\" a\ncron tick \"@every 10s\" a disabled\n"))
	require.NoError(t, err)
	assert.Equal(t, []CronDef{
		{Name: "daily", Schedule: "0 0 * * *", Script: "a", Enabled: true},
		{Name: "tick", Schedule: "@every 10s", Script: "a"},
	}, mf.Crons)
	for text, want := range map[string]string{
		"script a a.lua\ncron x \"61 * * * *\" a\n":                        `:2: cron "x": schedule "61 * * * *": minute "61": want 0-59`,
		"script a a.lua\ncron x \"@every 1s\" b\n":                         ":2: cron uses script \"b\", which the manifest does not define",
		"script a a.lua\ncron x \"@every 1s\" a on\n":                      ":2: cron state \"on\": use enabled or disabled",
		"script a a.lua\ncron x \"@every 1s\" a\ncron x \"@every 2s\" a\n": ":3: cron \"x\" is already defined on line 2",
		"script a a.lua\ncron \"x y\" \"@every 1s\" a\n":                   `:2: cron "x y": cron name "x y" has ' '`,
	} {
		_, err := LoadManifest(writeManifest(t, text))
		require.Error(t, err, text)
		assert.Contains(t, err.Error(), want, text)
	}
}

// Ensure a manifest's cron keeps when it last ran unless its schedule or
// state changes.
func TestOverlayCrons(t *testing.T) {
	cur := []CronDef{
		{Name: "a", Schedule: "@every 1s", Script: "s", Enabled: true, Since: 5000, LastRun: 5000},
		{Name: "b", Schedule: "@every 1s", Script: "s", Enabled: true, Since: 6000, LastRun: 6000},
		{Name: "c", Schedule: "@every 1s", Script: "s", Enabled: true, Since: 7000, LastRun: 7000},
	}
	got := OverlayCrons(cur, []CronDef{
		{Name: "a", Schedule: "@every 1s", Script: "t", Enabled: true},
		{Name: "b", Schedule: "@every 2s", Script: "s", Enabled: true},
		{Name: "d", Schedule: "@every 1s", Script: "s"},
	})
	assert.Equal(t, []CronDef{
		{Name: "a", Schedule: "@every 1s", Script: "t", Enabled: true, Since: 5000, LastRun: 5000},
		{Name: "b", Schedule: "@every 2s", Script: "s", Enabled: true},
		{Name: "c", Schedule: "@every 1s", Script: "s", Enabled: true, Since: 7000, LastRun: 7000},
		{Name: "d", Schedule: "@every 1s", Script: "s"},
	}, got)
}
