package server

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/valkey-iungo/valkey-iungo/iungo"
)

// Ensure a line diff keeps three lines of context around each change and
// folds the rest.
func TestDiffLines(t *testing.T) {
	var old []string
	for i := 1; i <= 20; i++ {
		old = append(old, "line "+string(rune('a'+i)))
	}
	changed := append([]string(nil), old...)
	changed[9] = "new j"
	got := diffLines(strings.Join(old, "\n")+"\n", strings.Join(changed, "\n")+"\n")
	assert.Equal(t, []DiffLine{
		{"@", "6 unchanged lines"},
		{" ", old[6]}, {" ", old[7]}, {" ", old[8]},
		{"-", old[9]}, {"+", "new j"},
		{" ", old[10]}, {" ", old[11]}, {" ", old[12]},
		{"@", "7 unchanged lines"},
	}, got)
	assert.Equal(t, []DiffLine{{"+", "a"}, {"+", "b"}}, diffLines("", "a\nb"))
	assert.Equal(t, []DiffLine{{" ", "a"}, {"-", "b"}, {" ", "c"}, {"+", "d"}}, diffLines("a\nb\nc", "a\nc\nd"))
}

// Ensure a draft that reorders routes publishes in the draft's order:
// routes run in registration order on the nodes.
func TestPublishKeepsRouteOrder(t *testing.T) {
	s := mustOpenStore(t)
	_, err := s.CreateNamespace("shop", "tok")
	require.NoError(t, err)
	require.NoError(t, s.SetScript("shop", "a", "return 1"))
	for _, p := range []string{"p1", "p2", "p3"} {
		require.NoError(t, s.SetTrigger("shop", iungo.Trigger{Pattern: p, Events: "set", Script: "a", Enabled: true}))
	}
	_, _, err = s.Publish("shop", "t", "")
	require.NoError(t, err)
	require.NoError(t, s.DeleteTrigger("shop", "p1", "set"))
	require.NoError(t, s.SetTrigger("shop", iungo.Trigger{Pattern: "p1", Events: "set", Script: "a", Enabled: true}))
	d, err := s.Draft("shop")
	require.NoError(t, err)
	require.Len(t, d.Diff.Triggers, 1)
	assert.Equal(t, changeMoved, d.Diff.Triggers[0].Change)
	_, _, err = s.Publish("shop", "t", "")
	require.NoError(t, err)
	sn, err := s.Snapshot("shop")
	require.NoError(t, err)
	var order []string
	for _, tr := range sn.Triggers {
		order = append(order, tr.Pattern)
	}
	assert.Equal(t, []string{"p2", "p3", "p1"}, order)
}

// Ensure a rollback never drops unpublished edits silently, and that an
// edit back to the live content leaves no draft.
func TestRollbackAndDraft(t *testing.T) {
	s := mustOpenStore(t)
	_, err := s.CreateNamespace("shop", "tok")
	require.NoError(t, err)
	require.NoError(t, s.SetScript("shop", "a", "return 1"))
	_, _, err = s.Publish("shop", "t", "")
	require.NoError(t, err)
	require.NoError(t, s.SetScript("shop", "a", "return 2"))
	d, err := s.Draft("shop")
	require.NoError(t, err)
	require.True(t, d.Pending)
	require.NoError(t, s.SetScript("shop", "a", "return 1"))
	d, err = s.Draft("shop")
	require.NoError(t, err)
	assert.False(t, d.Pending, "back to the live content: nothing pending")

	require.NoError(t, s.SetScript("shop", "b", "return 3"))
	_, _, err = s.Rollback("shop", 1, "t", false)
	require.ErrorIs(t, err, ErrConflict)
	require.ErrorContains(t, err, "unpublished edits")
	v, diff, err := s.Rollback("shop", 1, "t", true)
	require.NoError(t, err)
	assert.Equal(t, uint64(3), v)
	require.Len(t, diff.Scripts, 1)
	assert.Equal(t, changeRemoved, diff.Scripts[0].Change)
	d, err = s.Draft("shop")
	require.NoError(t, err)
	assert.False(t, d.Pending)
	assert.Empty(t, d.Content.Scripts)
}
