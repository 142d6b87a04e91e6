package iungo

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/valkey-iungo/valkey-iungo/config"
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

// Ensure crons and windows survive the wire: a snapshot round trip, and a
// delta that sets, changes and removes crons gives what the snapshot of the
// new version gives.
func TestCronsAndWindowsOnTheWire(t *testing.T) {
	base := config.Config{Classes: config.DefaultClasses,
		Origin:   config.Origin{NamespaceID: "id", Version: 1},
		Scripts:  []config.ScriptDef{{Name: "s", Source: "return 1"}},
		Triggers: []config.TriggerDef{{Pattern: "click:*", Events: "incrby", Script: "s", Enabled: true, Window: 60000}},
		Crons: []config.CronDef{
			{Name: "a", Schedule: "@daily", Script: "s", Enabled: true},
			{Name: "b", Schedule: "@hourly", Script: "s", Enabled: true},
		},
	}
	sn := SnapshotOf("shop", base)
	back, err := sn.Config()
	require.NoError(t, err)
	assert.Equal(t, base.Triggers, back.Triggers)
	assert.Equal(t, base.Crons, back.Crons)

	base.Origin.Digest = ContentDigest(base)
	d := Changes{NamespaceID: "id", From: 1, FromDigest: base.Origin.Digest, Version: 2}
	d.Crons.Set = []Cron{{Name: "c", Schedule: "@every 10s", Script: "s"}, {Name: "a", Schedule: "@weekly", Script: "s", Enabled: true}}
	d.Crons.Unset = []string{"b"}
	d.Triggers.Set = []Trigger{{Pattern: "click:*", Events: "incrby", Script: "s", Enabled: true, WindowMs: 1000}}
	next, err := d.Apply(base)
	require.NoError(t, err)
	assert.Equal(t, []config.CronDef{
		{Name: "a", Schedule: "@weekly", Script: "s", Enabled: true},
		{Name: "c", Schedule: "@every 10s", Script: "s"},
	}, next.Crons)
	assert.Equal(t, int64(1000), next.Triggers[0].Window)
}
