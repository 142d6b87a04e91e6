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

// cronRuns is the scheduled times (Unix seconds) the "tick" cron pushed to
// the list runs, oldest first.
func cronRuns(t *testing.T, s *vtest.Server) []int64 {
	t.Helper()
	words, err := s.Do("LRANGE", "runs", "0", "-1").AsStrSlice()
	require.NoError(t, err)
	out := make([]int64, len(words))
	for i, w := range words {
		name, at, ok := strings.Cut(w, "@")
		require.True(t, ok, w)
		require.Equal(t, "tick", name)
		out[i], err = strconv.ParseInt(at, 10, 64)
		require.NoError(t, err)
	}
	return out
}

// setTickCron installs the cron "tick", every second, pushing its name and
// scheduled time, and counting the keys it was given (none).
func setTickCron(t *testing.T, s *vtest.Server) {
	t.Helper()
	s.MustDo("IUNGO", "SCRIPT", "SET", "tick", "server.call('RPUSH', 'runs', ARGV[1] .. '@' .. ARGV[2]) server.call('INCRBY', 'keys', #KEYS)")
	s.MustDo("IUNGO", "CRON", "SET", "tick", "@every 1s", "tick")
}

// waitRuns waits until the list holds at least n runs.
func waitRuns(t *testing.T, s *vtest.Server, n int) []int64 {
	t.Helper()
	vtest.Eventually(t, time.Duration(n+5)*time.Second, strconv.Itoa(n)+" cron runs", func() bool {
		return len(cronRuns(t, s)) >= n
	})
	return cronRuns(t, s)
}

// strictlyIncreasing fails unless each time is after the one before it:
// never twice for one time.
func strictlyIncreasing(t *testing.T, runs []int64) {
	t.Helper()
	for i := 1; i < len(runs); i++ {
		require.Greater(t, runs[i], runs[i-1], "runs %v", runs)
	}
}

// cronField is a field of the cron's IUNGO CRON LIST entry on s.
func cronField(t *testing.T, s *vtest.Server, name string) string {
	t.Helper()
	list, err := s.Do("IUNGO", "CRON", "LIST").ToArray()
	require.NoError(t, err)
	require.Len(t, list, 1)
	m, err := list[0].AsMap()
	require.NoError(t, err)
	return field(t, m, name)
}

// Ensure an @every 1s cron runs about once a second, once per scheduled
// time, with KEYS empty and ARGV its name and time, and shows in CRON LIST
// and INFO.
func TestCronEverySecondIntegration(t *testing.T) {
	s := vtest.Start(t, vtest.Options{})
	setTickCron(t, s)
	start := time.Now()
	runs := waitRuns(t, s, 4)
	elapsed := time.Since(start)
	strictlyIncreasing(t, runs)
	assert.LessOrEqual(t, len(runs), int(elapsed.Seconds())+1, "no more than one run a second")
	// A tick the server delays past a whole second (a loaded machine) makes
	// one run stand for two times: allow one such.
	assert.LessOrEqual(t, runs[len(runs)-1]-runs[0], int64(len(runs)), "about one run a second: %v", runs)
	assert.Equal(t, "0", str(t, s, "GET", "keys"))
	assert.Equal(t, "1", cronField(t, s, "enabled"))
	assert.NotEmpty(t, cronField(t, s, "next_run"))
	assert.Equal(t, time.Unix(runs[len(runs)-1], 0).UTC().Format(time.RFC3339), cronField(t, s, "last_run")[:20])
	assert.Equal(t, "1", infoField(t, s, "crons"))

	s.MustDo("IUNGO", "CRON", "DISABLE", "tick")
	n := len(cronRuns(t, s))
	time.Sleep(1500 * time.Millisecond) // a disabled cron's times must pass
	assert.Len(t, cronRuns(t, s), n, "a disabled cron does not run")
	assert.Equal(t, "", cronField(t, s, "next_run"))
	s.MustDo("IUNGO", "CRON", "ENABLE", "tick")
	runs = waitRuns(t, s, n+1)
	assert.GreaterOrEqual(t, runs[n]-runs[n-1], int64(2), "the times missed while disabled do not run: %v", runs)
	require.ErrorContains(t, s.Do("IUNGO", "SCRIPT", "UNSET", "tick").Error(), "used by crons")
	s.MustDo("IUNGO", "CRON", "UNSET", "tick")
	s.MustDo("IUNGO", "SCRIPT", "UNSET", "tick")
}

// Ensure bad crons are refused with what to fix.
func TestCronRefusedIntegration(t *testing.T) {
	s := vtest.Start(t, vtest.Options{})
	s.MustDo("IUNGO", "SCRIPT", "SET", "s", "return 1")
	for _, c := range []struct{ schedule, script, want string }{
		{"@every 100ms", "s", "at least 1s"},
		{"61 * * * *", "s", `minute "61": want 0-59`},
		{"0 0 30 2 *", "s", "never runs"},
		{"@every 1s", "nope", "unknown script"},
	} {
		require.ErrorContains(t, s.Do("IUNGO", "CRON", "SET", "c", c.schedule, c.script).Error(), c.want)
	}
	require.ErrorContains(t, s.Do("IUNGO", "CRON", "MARK", "c", "1", "RAN").Error(), "not by clients")
	list, err := s.Do("IUNGO", "CRON", "LIST").ToArray()
	require.NoError(t, err)
	assert.Empty(t, list, "nothing refused was set")
}

// Ensure a cron and when it last ran survive DEBUG RELOAD and a restart,
// and the times missed while the server was down run once, for the latest.
func TestCronRestartIntegration(t *testing.T) {
	s := vtest.Start(t, vtest.Options{Config: []string{"appendonly yes", "appendfsync always"}})
	setTickCron(t, s)
	waitRuns(t, s, 2)
	s.MustDo("DEBUG", "RELOAD")
	assert.NotEmpty(t, cronField(t, s, "last_run"))
	before := cronRuns(t, s)
	s.Shutdown("SAVE")
	time.Sleep(2500 * time.Millisecond) // scheduled times pass while the server is down
	s.StartAgain()
	runs := waitRuns(t, s, len(before)+2)
	strictlyIncreasing(t, runs)
	// 2.5 s down: at least two times passed, and one run stands for them.
	assert.GreaterOrEqual(t, runs[len(before)]-runs[len(before)-1], int64(2), "one run for the times missed: %v", runs)
	assert.Equal(t, runs[len(before)+1]-runs[len(before)], int64(1), "then every second again: %v", runs)
}

// Ensure a replica never runs a cron but takes its primary's runs and
// marks, and once promoted goes on from the last time that ran: nothing
// twice, nothing lost.
func TestCronFailoverIntegration(t *testing.T) {
	a := vtest.Start(t, vtest.Options{})
	b := startReplica(t, a)
	setTickCron(t, a)
	waitRuns(t, a, 3)
	require.Equal(t, int64(1), num(t, a, "WAIT", "1", "5000"))
	assert.Equal(t, "0", cronField(t, b, "runs"), "the replica ran nothing")
	assert.Equal(t, cronField(t, a, "last_run"), cronField(t, b, "last_run"), "the replica has the primary's marks")

	b.MustDo("REPLICAOF", "NO", "ONE")
	a.MustDo("REPLICAOF", "127.0.0.1", portOf(b))
	vtest.Eventually(t, 20*time.Second, "old primary follows the new one", func() bool {
		return strings.Contains(str(t, a, "INFO", "replication"), "master_link_status:up")
	})
	aRuns := cronField(t, a, "runs")
	n := len(cronRuns(t, b))
	runs := waitRuns(t, b, n+3)
	strictlyIncreasing(t, runs)
	assert.NotEqual(t, "0", cronField(t, b, "runs"), "the new primary runs the cron")
	require.Equal(t, int64(1), num(t, b, "WAIT", "1", "5000"))
	assert.Equal(t, aRuns, cronField(t, a, "runs"), "the demoted primary stopped")
	assert.Equal(t, runs, cronRuns(t, a), "the demoted primary has every run, once")
}

// Ensure a cron from the manifest is set at startup and keeps its marks
// across a restart with the same manifest.
func TestCronManifestIntegration(t *testing.T) {
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "tick.lua"), []byte("server.call('RPUSH', 'runs', ARGV[1] .. '@' .. ARGV[2])"), 0o644))
	manifest := filepath.Join(dir, "iungo.conf")
	require.NoError(t, os.WriteFile(manifest, []byte("script tick tick.lua\ncron tick \"@every 1s\" tick\n"), 0o644))
	s := vtest.Start(t, vtest.Options{ModuleArgs: []string{"config", manifest}})
	runs := waitRuns(t, s, 2)
	strictlyIncreasing(t, runs)
	assert.Contains(t, str(t, s, "IUNGO", "DUMP"), "@every 1s")
}

// Ensure the README's cron example puts the day's planned coupons in force
// and clears the redemptions, for the day of its scheduled time.
func TestCronExampleIntegration(t *testing.T) {
	s := vtest.Start(t, vtest.Options{})
	src, err := os.ReadFile(filepath.Join(vtest.Root(t), "testdata", "examples", "daily-coupons.lua"))
	require.NoError(t, err)
	s.MustDo("IUNGO", "SCRIPT", "SET", "daily-coupons", string(src))
	day := time.Now().UTC().Format("2006-01-02")
	s.MustDo("HSET", "coupons:day:"+day, "SAVE10", "10")
	s.MustDo("HSET", "coupons:today", "OLD5", "5")
	s.MustDo("SADD", "coupons:redeemed", "u1", "u2")
	// Every second rather than at midnight; the script reads the date
	// from the scheduled time it is given.
	s.MustDo("IUNGO", "CRON", "SET", "daily-coupons", "@every 1s", "daily-coupons")
	vtest.Eventually(t, 10*time.Second, "the coupons rotated", func() bool {
		return s.Do("GET", "coupons:date").Error() == nil
	})
	today, err := s.Do("HGETALL", "coupons:today").AsStrMap()
	require.NoError(t, err)
	assert.Equal(t, map[string]string{"SAVE10": "10"}, today)
	assert.Equal(t, int64(0), num(t, s, "EXISTS", "coupons:redeemed", "coupons:day:"+day))
	assert.Contains(t, []string{day, time.Now().UTC().Format("2006-01-02")}, str(t, s, "GET", "coupons:date"))
	assert.Equal(t, "0", cronField(t, s, "errors"), cronField(t, s, "last_error"))
}
