package itest

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/valkey-iungo/valkey-iungo/internal/vtest"
)

// setClicks installs the README's window example with one-second windows.
func setClicks(t *testing.T, s *vtest.Server) {
	t.Helper()
	src, err := os.ReadFile(filepath.Join(vtest.Root(t), "testdata", "examples", "clicks-per-window.lua"))
	require.NoError(t, err)
	s.MustDo("IUNGO", "SCRIPT", "SET", "clicks-per-window", string(src))
	s.MustDo("IUNGO", "TRIGGER", "SET", "click:*", "incrby", "clicks-per-window", "WINDOW", "1000")
}

// click makes n clicks on each site, spread over about d.
func click(t *testing.T, s *vtest.Server, sites []string, n int, d time.Duration, made map[string]int) {
	t.Helper()
	for i := range n {
		for _, site := range sites {
			s.MustDo("INCRBY", "click:"+site, "1")
			made[site]++
		}
		if i%10 == 9 {
			time.Sleep(d / time.Duration(n/10)) // clicks spread over several windows
		}
	}
}

// waitWindowsRun waits until no gathered window is left.
func waitWindowsRun(t *testing.T, s *vtest.Server) {
	t.Helper()
	vtest.Eventually(t, 10*time.Second, "every window ran", func() bool {
		return num(t, s, "EXISTS", "__iungo:windows") == 0
	})
}

// clickTotals reads clicks:total, and checks that the per-window sets add
// up to it, each window counted once.
func clickTotals(t *testing.T, s *vtest.Server) map[string]int {
	t.Helper()
	windows, err := s.Do("LRANGE", "clicks:windows", "0", "-1").AsStrSlice()
	require.NoError(t, err)
	seen := map[string]bool{}
	sum := map[string]int{}
	for _, w := range windows {
		require.False(t, seen[w], "window %s ran twice: %v", w, windows)
		seen[w] = true
		scores, err := s.Do("ZRANGE", "clicks:"+w, "0", "-1", "WITHSCORES").AsZScores()
		require.NoError(t, err)
		for _, z := range scores {
			sum[z.Member] += int(z.Score)
		}
	}
	total, err := s.Do("ZRANGE", "clicks:total", "0", "-1", "WITHSCORES").AsZScores()
	require.NoError(t, err)
	out := map[string]int{}
	for _, z := range total {
		out[z.Member] = int(z.Score)
	}
	assert.Equal(t, out, sum, "the windows add up to the total")
	return out
}

// Ensure the window example counts exactly the clicks made, over several
// windows, with KEYS, counts and bounds as documented, and a window runs
// only once it has ended.
func TestWindowClicksIntegration(t *testing.T) {
	s := vtest.Start(t, vtest.Options{})
	setClicks(t, s)
	made := map[string]int{}
	start := time.Now()
	click(t, s, []string{"a", "b"}, 60, 2500*time.Millisecond, made)
	waitWindowsRun(t, s)
	windows, err := s.Do("LRANGE", "clicks:windows", "0", "-1").AsStrSlice()
	require.NoError(t, err)
	assert.GreaterOrEqual(t, len(windows), 2, "several windows")
	for _, w := range windows {
		ms, err := strconv.ParseInt(w, 10, 64)
		require.NoError(t, err)
		assert.Zero(t, ms%1000, "windows start on whole seconds")
		assert.GreaterOrEqual(t, ms, start.UnixMilli()-1000)
	}
	assert.Equal(t, made, clickTotals(t, s))
	list := triggerList(t, s)
	require.Len(t, list, 1)
	assert.Equal(t, "1000", field(t, list[0], "window_ms"))
	assert.Equal(t, strconv.Itoa(made["a"]+made["b"]), field(t, list[0], "gathered"))
	assert.NotEqual(t, "0", infoField(t, s, "window_runs"))
}

// Ensure nothing gathered is lost or counted twice across a failover in
// the middle of the clicks, and a replica gathers and runs nothing.
func TestWindowFailoverIntegration(t *testing.T) {
	a := vtest.Start(t, vtest.Options{})
	b := startReplica(t, a)
	setClicks(t, a)
	made := map[string]int{}
	click(t, a, []string{"a", "b", "c"}, 40, 1500*time.Millisecond, made)
	require.Equal(t, int64(1), num(t, a, "WAIT", "1", "5000"))
	assert.Equal(t, "0", field(t, triggerList(t, b)[0], "runs"), "the replica ran nothing")
	assert.Equal(t, "0", field(t, triggerList(t, b)[0], "gathered"), "the replica gathered nothing itself")

	b.MustDo("REPLICAOF", "NO", "ONE")
	a.MustDo("REPLICAOF", "127.0.0.1", portOf(b))
	vtest.Eventually(t, 20*time.Second, "old primary follows the new one", func() bool {
		return strings.Contains(str(t, a, "INFO", "replication"), "master_link_status:up")
	})
	click(t, b, []string{"a", "b", "c"}, 40, 1500*time.Millisecond, made)
	waitWindowsRun(t, b)
	assert.Equal(t, made, clickTotals(t, b))
	require.Equal(t, int64(1), num(t, b, "WAIT", "1", "5000"))
	assert.Equal(t, made, clickTotals(t, a), "the demoted primary has the same counts")
}

// Ensure windows survive a restart: what was gathered before it runs after.
func TestWindowRestartIntegration(t *testing.T) {
	s := vtest.Start(t, vtest.Options{Config: []string{"appendonly yes", "appendfsync always"}})
	setClicks(t, s)
	made := map[string]int{}
	click(t, s, []string{"a"}, 20, 0, made)
	s.Restart() // SIGINT at once: the window is still open, in the AOF
	waitWindowsRun(t, s)
	assert.Equal(t, made, clickTotals(t, s))
	require.ErrorContains(t, s.Do("IUNGO", "TRIGGER", "SET", "k", "set", "clicks-per-window", "WINDOW", "50").Error(), "window of 50 ms; use 100 ms to 86400000 ms")
}
