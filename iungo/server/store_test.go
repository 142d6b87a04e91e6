package server

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/valkey-iungo/valkey-iungo/iungo"
)

func mustOpenStore(tb testing.TB) *Store {
	tb.Helper()
	s, err := OpenStore(tb.TempDir())
	require.NoError(tb, err)
	tb.Cleanup(func() { s.Close() })
	return s
}

// Ensure a delta from any earlier version, applied as the module applies
// it, gives exactly the current snapshot and its digest, across random
// changes (empty event lists included), for several seeds.
func TestChangesFoldToSnapshot(t *testing.T) {
	checks := 0
	for seed := uint64(1); seed <= 4; seed++ {
		checks += foldChanges(t, seed)
	}
	t.Logf("%d deltas compared with snapshots", checks)
}

func foldChanges(t *testing.T, seed uint64) int {
	s := mustOpenStore(t)
	_, err := s.CreateNamespace("shop", "tok")
	require.NoError(t, err)
	r := rand.New(rand.NewPCG(seed, 4))
	snapshots := map[uint64]iungo.Snapshot{}
	record := func() {
		sn, err := s.Snapshot("shop")
		require.NoError(t, err)
		snapshots[sn.Version] = sn
	}
	record()
	scripts := []string{"a", "b", "c"}
	patterns := []string{"k:*", "x", "order:*", "*"}
	events := []string{"set", "hset,set", "del", "*"}
	classes := [][]string{{}, {"hash"}, {"hash", "string"}, {"new", "keymiss"}, {"all"}}
	checks := 0
	for step := 0; step < 80; step++ {
		// One to three edits of the draft, then a publish.
		for edits := 1 + r.IntN(3); edits > 0; edits-- {
			var err error
			switch r.IntN(8) {
			case 0, 1:
				err = s.SetScript("shop", scripts[r.IntN(3)], fmt.Sprintf("return %d", step))
			case 2:
				err = s.DeleteScript("shop", scripts[r.IntN(3)])
			case 3:
				err = s.SetTrigger("shop", iungo.Trigger{Pattern: patterns[r.IntN(4)], Events: events[r.IntN(4)], Script: scripts[r.IntN(3)], Enabled: r.IntN(2) == 0, WindowMs: []int64{0, 0, 1000}[r.IntN(3)]})
			case 4:
				err = s.DeleteTrigger("shop", patterns[r.IntN(4)], events[r.IntN(4)])
			case 5:
				err = s.SetEvents("shop", classes[r.IntN(len(classes))])
			case 6:
				err = s.SetCron("shop", iungo.Cron{Name: scripts[r.IntN(3)], Schedule: []string{"@daily", "@every 10s"}[r.IntN(2)], Script: scripts[r.IntN(3)], Enabled: r.IntN(2) == 0})
			case 7:
				err = s.DeleteCron("shop", scripts[r.IntN(3)])
			}
			if err != nil && !errors.Is(err, ErrNotFound) && !errors.Is(err, ErrConflict) && !errors.Is(err, errBadRequest) {
				require.NoError(t, err)
			}
		}
		draft, err := s.Draft("shop")
		require.NoError(t, err)
		if _, _, err := s.Publish("shop", "test", ""); errors.Is(err, errNothingToPublish) {
			require.False(t, draft.Pending)
			continue
		} else {
			require.NoError(t, err)
		}
		live, err := s.Snapshot("shop")
		require.NoError(t, err)
		require.Equal(t, draft.Content, contentOf(live), "what is published is the draft")
		record()
		current := snapshots[uint64(len(snapshots))]
		want, err := current.Config()
		require.NoError(t, err)
		require.Equal(t, current.Digest, iungo.ContentDigest(want), "the published digest is the content's")
		for v, sn := range snapshots {
			answer, err := s.Changes("shop", v)
			require.NoError(t, err)
			if full, ok := answer.(iungo.Snapshot); ok {
				require.Equal(t, iungo.KindSnapshot, full.Kind)
				continue
			}
			d := answer.(iungo.Changes)
			base, err := sn.Config()
			require.NoError(t, err)
			got, err := d.Apply(base)
			require.NoError(t, err)
			require.Equal(t, want, got, "seed %d, from version %d to %d", seed, v, current.Version)
			checks++
		}
	}
	return checks
}

// Ensure the store refuses what the module would refuse, with its words.
func TestStoreValidation(t *testing.T) {
	s := mustOpenStore(t)
	_, err := s.CreateNamespace("shop", "")
	require.NoError(t, err)
	_, err = s.CreateNamespace("shop", "")
	require.ErrorIs(t, err, ErrConflict)
	_, err = s.CreateNamespace("bad name", "")
	require.ErrorIs(t, err, errBadRequest)
	err = s.SetScript("shop", "a", "return (")
	require.ErrorContains(t, err, `script "a" does not compile: line 1 (end of script)`)
	err = s.SetTrigger("shop", iungo.Trigger{Pattern: "k", Events: "sett", Script: "a"})
	require.ErrorContains(t, err, `unknown event "sett"`)
	err = s.SetTrigger("shop", iungo.Trigger{Pattern: "k", Events: "set", Script: "a"})
	require.ErrorContains(t, err, `unknown script "a"`)
	require.ErrorIs(t, s.SetScript("nope", "a", "return 1"), ErrNotFound)
	require.NoError(t, s.SetScript("shop", "a", "return 1"))
	require.NoError(t, s.SetTrigger("shop", iungo.Trigger{Pattern: "k", Events: "SET,hset", Script: "a", Enabled: true}))
	require.ErrorContains(t, s.SetTrigger("shop", iungo.Trigger{Pattern: "w", Events: "incrby", Script: "a", WindowMs: 50}), "window of 50 ms; use 100 ms")
	require.NoError(t, s.SetTrigger("shop", iungo.Trigger{Pattern: "w", Events: "incrby", Script: "a", Enabled: true, WindowMs: 60000}))
	require.ErrorIs(t, s.DeleteScript("shop", "a"), ErrConflict)
	_, _, err = s.Publish("shop", "test", "")
	require.NoError(t, err)
	sn, err := s.Snapshot("shop")
	require.NoError(t, err)
	assert.Equal(t, []iungo.Trigger{{Pattern: "k", Events: "hset,set", Script: "a", Enabled: true},
		{Pattern: "w", Events: "incrby", Script: "a", Enabled: true, WindowMs: 60000}}, sn.Triggers)
	assert.Equal(t, uint64(2), sn.Version)
	err = s.SetEvents("shop", []string{"bogus"})
	require.ErrorContains(t, err, `unknown event class "bogus"`)
	_, _, err = s.Publish("shop", "test", "")
	require.ErrorIs(t, err, errNothingToPublish)
	_, _, err = s.Publish("shop", string(make([]byte, maxAuthorBytes+1)), "")
	require.ErrorIs(t, err, errBadRequest)
}

// Ensure a manifest's crons and windows are imported with the rest.
func TestImportManifestCrons(t *testing.T) {
	s := mustOpenStore(t)
	_, err := s.CreateNamespace("shop", "node-token-0123456789abcdef")
	require.NoError(t, err)
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "a.lua"), []byte("return 1"), 0o600))
	path := filepath.Join(dir, "iungo.manifest")
	require.NoError(t, os.WriteFile(path, []byte("script a a.lua\ntrigger k:* incrby a window 60000\ncron daily @daily a disabled\n"), 0o600))
	require.NoError(t, s.ImportManifest("shop", path))
	snap, err := s.Snapshot("shop")
	require.NoError(t, err)
	assert.Equal(t, []iungo.Cron{{Name: "daily", Schedule: "@daily", Script: "a"}}, snap.Crons)
	assert.Equal(t, int64(60000), snap.Triggers[0].WindowMs)
	require.ErrorIs(t, s.DeleteScript("shop", "a"), ErrConflict)
	require.ErrorContains(t, s.SetCron("shop", iungo.Cron{Name: "x", Schedule: "61 * * * *", Script: "a"}), `minute "61"`)
	require.ErrorContains(t, s.SetCron("shop", iungo.Cron{Name: "x", Schedule: "@daily", Script: "nope"}), `unknown script "nope"`)
}
