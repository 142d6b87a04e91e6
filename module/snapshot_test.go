package module

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/valkey-iungo/valkey-iungo/config"
)

// Ensure every change keeps the store, which the server saves, equal to the
// live configuration, trigger order included.
func TestStoreFollowsChanges(t *testing.T) {
	tm := newTestModule(t)
	for _, cmd := range [][]string{
		{"SCRIPT", "SET", "a", "return 1"},
		{"SCRIPT", "SET", "b", "return 2"},
		{"TRIGGER", "SET", "x:*", "set", "a"},
		{"TRIGGER", "SET", "y:*", "hset,set", "b"},
		{"TRIGGER", "SET", "z:*", "*", "a"},
		{"SCRIPT", "SET", "a", "return 3"},
		{"TRIGGER", "SET", "x:*", "set", "b"},
		{"TRIGGER", "DISABLE", "y:*", "set,hset"},
		{"TRIGGER", "UNSET", "z:*", "*"},
		{"SCRIPT", "SET", "c", "return 4"},
		{"SCRIPT", "UNSET", "c"},
		{"EVENT", "UNSET", "string"},
		{"PAUSE"},
	} {
		tm.mustDo(t, cmd...)
		saved, err := config.Decode(tm.store.snapshot())
		require.NoError(t, err)
		fresh := newTestModule(t)
		require.NoError(t, fresh.Replace(saved, "rdb"), "after %q", cmd)
		assert.Equal(t, tm.Config(), fresh.Config(), "after %q", cmd)
	}
}

// Ensure RESTORE replaces everything at once, keeps the counters of triggers
// that stay, and a bad snapshot changes nothing.
func TestRestore(t *testing.T) {
	tm := newTestModule(t)
	tm.mustDo(t, "SCRIPT", "SET", "a", "server.call('INCR', 'n')")
	tm.mustDo(t, "TRIGGER", "SET", "k", "set", "a")
	tm.ctx.event("set", "k")
	dump := tm.mustDo(t, "DUMP").(string)

	tm.mustDo(t, "SCRIPT", "SET", "b", "return 2")
	tm.mustDo(t, "TRIGGER", "SET", "other", "set", "b")
	tm.mustDo(t, "PAUSE")
	before := tm.state(t)
	versionBefore := tm.Revision()
	for _, bad := range []string{"garbage", dump[:len(dump)-1], string(config.Encode(config.Config{
		Scripts:  []config.ScriptDef{{Name: "s", Source: "return ("}},
		Triggers: nil,
	})), string(config.Encode(config.Config{Triggers: []config.TriggerDef{{Pattern: "k", Events: "set", Script: "missing", Enabled: true}}}))} {
		r := tm.ctx.do("RESTORE", bad)
		require.Contains(t, r, "-ERR")
		require.Equal(t, before, tm.state(t))
	}

	assert.Equal(t, "+OK", tm.ctx.do("RESTORE", dump))
	list := tm.mustDo(t, "TRIGGER", "LIST").([]any)
	require.Len(t, list, 1)
	assert.Equal(t, int64(1), list[0].(map[string]any)["runs"], "counters of a trigger that stays are kept")
	assert.False(t, tm.Paused())
	assert.Equal(t, versionBefore+1, tm.Revision(), "the version never goes back")
	tm.ctx.calls = nil
	tm.ctx.event("set", "k")
	assert.Len(t, tm.ctx.calls, 1, "restored triggers fire")
	tm.ctx.event("set", "other")
	assert.Len(t, tm.ctx.calls, 1, "removed triggers do not")
}

// Ensure Reset empties everything, as before a data load.
func TestReset(t *testing.T) {
	tm := newTestModule(t)
	tm.mustDo(t, "SCRIPT", "SET", "a", "return 1")
	tm.mustDo(t, "TRIGGER", "SET", "k", "set", "a")
	tm.mustDo(t, "EVENT", "UNSET", "all")
	tm.Reset()
	assert.Equal(t, config.Config{Classes: config.DefaultClasses}, tm.Config())
	assert.Empty(t, tm.store.records)
	assert.Empty(t, tm.store.images, "every built image was swapped in")
	assert.Equal(t, config.Class(0), tm.filter().Classes)
}

func writeFiles(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, body := range files {
		require.NoError(t, os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644))
	}
	return dir
}

// Ensure a manifest loads, applies on top of the current configuration and
// is applied once: applying it again changes nothing.
func TestManifest(t *testing.T) {
	dir := writeFiles(t, map[string]string{
		"points.lua": "server.call('INCR', 'points')",
		"clean.lua":  "server.call('DEL', KEYS[1])",
		"iungo.manifest": `# example
events hash string new   # exactly these
script points points.lua
script clean clean.lua
trigger order:* hset points
trigger "tmp key:*" del,expired clean disabled
`,
	})
	tm := newTestModule(t)
	tm.mustDo(t, "SCRIPT", "SET", "points", "return 'old'")
	tm.mustDo(t, "SCRIPT", "SET", "keep", "return 1")
	tm.mustDo(t, "TRIGGER", "SET", "order:*", "hset", "keep")
	tm.mustDo(t, "TRIGGER", "SET", "other:*", "set", "keep")
	require.NoError(t, tm.ApplyArgs([]string{"config", filepath.Join(dir, "iungo.manifest")}))

	c := tm.Config()
	assert.Equal(t, config.ClassHash|config.ClassString|config.ClassNew, c.Classes)
	assert.Equal(t, []config.ScriptDef{{Name: "clean", Source: "server.call('DEL', KEYS[1])"}, {Name: "keep", Source: "return 1"}, {Name: "points", Source: "server.call('INCR', 'points')"}}, c.Scripts)
	assert.Equal(t, []config.TriggerDef{
		{Pattern: "order:*", Events: "hset", Script: "points", Enabled: true},
		{Pattern: "other:*", Events: "set", Script: "keep", Enabled: true},
		{Pattern: "tmp key:*", Events: "del,expired", Script: "clean", Enabled: false},
	}, c.Triggers)
	assert.Equal(t, "manifest", tm.Source())
	assert.Equal(t, filepath.Join(dir, "iungo.manifest"), tm.ManifestPath())

	changed, err := tm.ApplyManifest()
	require.NoError(t, err)
	assert.False(t, changed, "a second application changes nothing")
	tm.Reset()
	changed, err = tm.ApplyManifest()
	require.NoError(t, err)
	assert.True(t, changed, "after a reset the manifest applies again")
	assert.Len(t, tm.Config().Triggers, 2)
}

// Ensure every manifest error names the file and line and says what is wrong.
func TestManifestErrors(t *testing.T) {
	dir := writeFiles(t, map[string]string{"ok.lua": "return 1", "bad.lua": "return ("})
	cases := []struct{ body, want string }{
		{"script a ok.lua\nscript a ok.lua", ":2: script \"a\" is defined twice"},
		{"script a missing.lua", ":1: script \"a\": open"},
		{"script a bad.lua", ":1: script \"a\" does not compile: line 1 (end of script)"},
		{"script a", ":1: want: script <name> <file>"},
		{"script a ok.lua\ntrigger k set b", ":2: trigger uses script \"b\", which the manifest does not define"},
		{"script a ok.lua\ntrigger k sett a", `:2: unknown event "sett"`},
		{"script a ok.lua\ntrigger \"\" set a", ":2: empty key pattern"},
		{"script a ok.lua\ntrigger k set a maybe", `:2: trigger state "maybe"`},
		{"script a ok.lua\ntrigger k set a\n\ntrigger k set a", ":4: trigger \"k\" set is already defined on line 2"},
		{"events hash bogus", `:1: unknown event class "bogus"`},
		{"paused perhaps", ":1: want: paused yes|no"},
		{"run everything", `:1: unknown directive "run"`},
		{`trigger "unclosed`, ":1: unclosed quote"},
		{"script bad/name ok.lua", ":1: script name \"bad/name\""},
	}
	for _, c := range cases {
		path := filepath.Join(dir, "m")
		require.NoError(t, os.WriteFile(path, []byte(c.body), 0o644))
		tm := newTestModule(t)
		err := tm.ApplyArgs([]string{"config", path})
		require.Error(t, err, c.body)
		assert.Contains(t, err.Error(), path+c.want, c.body)
		assert.Equal(t, config.Config{Classes: config.DefaultClasses}, tm.Config(), "a bad manifest changes nothing")
	}
	tm := newTestModule(t)
	err := tm.ApplyArgs([]string{"config", filepath.Join(dir, "nope")})
	require.ErrorContains(t, err, "no such file")
}
