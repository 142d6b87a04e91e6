package config

import (
	"math/rand/v2"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func utc(s string) time.Time {
	t, err := time.Parse("2006-01-02 15:04:05", s)
	if err != nil {
		panic(err)
	}
	return t
}

// Ensure schedules run when cron users expect: steps, ranges, lists,
// names, Sunday as 0 or 7, the day-of-month OR day-of-week rule, macros,
// and @every on fixed multiples since the epoch.
func TestScheduleNext(t *testing.T) {
	for _, c := range []struct{ spec, after, want string }{
		{"* * * * *", "2026-12-05 10:00:30", "2026-12-05 10:01:00"},
		{"*/15 * * * *", "2026-12-05 10:01:00", "2026-12-05 10:15:00"},
		{"*/15 * * * *", "2026-12-05 10:45:00", "2026-12-05 11:00:00"},
		{"5/20 * * * *", "2026-12-05 10:06:00", "2026-12-05 10:25:00"},
		{"0 9-17/4 * * *", "2026-12-05 10:00:00", "2026-12-05 13:00:00"},
		{"30 2 * * *", "2026-12-05 02:30:00", "2026-12-06 02:30:00"},
		{"0 0 1 jan *", "2026-12-05 00:00:00", "2027-01-01 00:00:00"},
		{"0 0 * * mon-fri", "2026-12-05 12:00:00", "2026-12-07 00:00:00"}, // Saturday to Monday
		{"0 0 * * 7", "2026-12-05 12:00:00", "2026-12-06 00:00:00"},       // 7 is Sunday
		{"0 0 * * SUN", "2026-12-05 12:00:00", "2026-12-06 00:00:00"},
		{"0 0 13 * fri", "2026-12-05 12:00:00", "2026-12-11 00:00:00"}, // the 13th or a Friday
		{"0 0 29 2 *", "2026-03-01 00:00:00", "2028-02-29 00:00:00"},
		{"0 12 31 * *", "2026-11-15 00:00:00", "2026-12-31 12:00:00"},
		{"1,2,3 4 * * *", "2026-12-05 04:02:00", "2026-12-05 04:03:00"},
		{"@hourly", "2026-12-05 10:59:59", "2026-12-05 11:00:00"},
		{"@daily", "2026-12-05 10:00:00", "2026-12-06 00:00:00"},
		{"@weekly", "2026-12-05 10:00:00", "2026-12-06 00:00:00"},
		{"@monthly", "2026-12-05 10:00:00", "2027-01-01 00:00:00"},
		{"@yearly", "2026-12-05 10:00:00", "2027-01-01 00:00:00"},
		{"@every 10s", "2026-12-05 10:00:00", "2026-12-05 10:00:10"},
		{"@every 10s", "2026-12-05 10:00:09", "2026-12-05 10:00:10"},
		{"@every 1h30m", "2026-12-05 10:00:00", "2026-12-05 10:30:00"}, // multiples of 90 min since 1970
	} {
		s, err := ParseSchedule(c.spec)
		require.NoError(t, err, c.spec)
		assert.Equal(t, utc(c.want), s.Next(utc(c.after)), "%s after %s", c.spec, c.after)
	}
}

// Ensure a bad schedule is refused with what to fix.
func TestScheduleErrors(t *testing.T) {
	for spec, want := range map[string]string{
		"* * * *":           "want 5 fields",
		"60 * * * *":        `minute "60": want 0-59`,
		"* 24 * * *":        `hour "24": want 0-23`,
		"* * 0 * *":         `day of month "0": want 1-31`,
		"* * * 13 *":        `month "13": want 1-12 or a name (jan, feb, ...)`,
		"* * * * 8":         `day of week "8": want 0-7`,
		"* * * * funday":    `day of week "funday"`,
		"*/0 * * * *":       `minute step "0"`,
		"5-1 * * * *":       `minute range "5-1" runs backwards`,
		"0 0 30 2 *":        "never runs",
		"0 0 31 4,6,9,11 *": "never runs",
		"@every 500ms":      "at least 1s",
		"@every soon":       "at least 1s",
		"@sometimes":        "want 5 fields",
	} {
		_, err := ParseSchedule(spec)
		require.Error(t, err, spec)
		assert.Contains(t, err.Error(), want, spec)
	}
}

// Ensure Next's jumps give what a minute-by-minute search gives, for
// random schedules.
func TestScheduleNextMatchesSearch(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	field := func(min, max int) string {
		switch r.IntN(4) {
		case 0:
			return "*"
		case 1:
			return "*/" + strconv.Itoa(1+r.IntN(max))
		case 2:
			a := min + r.IntN(max-min+1)
			return strconv.Itoa(a) + "-" + strconv.Itoa(a+r.IntN(max-a+1))
		}
		return strconv.Itoa(min+r.IntN(max-min+1)) + "," + strconv.Itoa(min+r.IntN(max-min+1))
	}
	checked := 0
	for i := 0; i < 300; i++ {
		spec := field(0, 59) + " " + field(0, 23) + " " + field(1, 31) + " " + field(1, 12) + " " + field(0, 6)
		s, err := ParseSchedule(spec)
		if err != nil {
			continue // a day that no month has
		}
		after := utc("2026-01-01 00:00:00").Add(time.Duration(r.IntN(365*24*60)) * time.Minute)
		want := after.Truncate(time.Minute).Add(time.Minute)
		for limit := after.AddDate(2, 0, 0); want.Before(limit) && !s.matches(want); want = want.Add(time.Minute) {
		}
		if !want.Before(after.AddDate(2, 0, 0)) {
			continue // rarer than the search goes
		}
		require.Equal(t, want, s.Next(after), "%s after %v", spec, after)
		checked++
	}
	assert.Greater(t, checked, 200)
}

// Ensure Latest gives the last time a minute-by-minute search back from
// upTo finds after after, for random schedules and gaps up to two months,
// and for @every.
func TestScheduleLatest(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	specs := []string{"* * * * *", "*/15 * * * *", "0 0 * * *", "30 2 * * mon", "0 0 1 * *", "0 12 29 2 *", "5-10 3,4 * * *"}
	checked := 0
	for i := 0; i < 400; i++ {
		spec := specs[r.IntN(len(specs))]
		s, err := ParseSchedule(spec)
		require.NoError(t, err)
		after := utc("2026-01-01 00:00:00").Add(time.Duration(r.IntN(365*24*3600)) * time.Second)
		upTo := after.Add(time.Duration(r.IntN(60*24*3600)) * time.Second)
		var want time.Time
		for m := upTo.Truncate(time.Minute); m.After(after); m = m.Add(-time.Minute) {
			if s.matches(m) {
				want = m
				break
			}
		}
		require.Equal(t, want, s.Latest(after, upTo), "%s after %v up to %v", spec, after, upTo)
		if !want.IsZero() {
			checked++
		}
	}
	assert.Greater(t, checked, 200)
	every, err := ParseSchedule("@every 10s")
	require.NoError(t, err)
	assert.Equal(t, utc("2026-03-01 10:00:20"), every.Latest(utc("2026-03-01 10:00:00"), utc("2026-03-01 10:00:29")))
	assert.True(t, every.Latest(utc("2026-03-01 10:00:20"), utc("2026-03-01 10:00:29")).IsZero(), "nothing after the last run")
	assert.Equal(t, utc("2026-03-01 10:00:30"), every.Latest(utc("2026-03-01 10:00:20"), utc("2026-03-01 10:00:30")))
	year, err := ParseSchedule("0 0 1 1 *")
	require.NoError(t, err)
	assert.Equal(t, utc("2027-01-01 00:00:00"), year.Latest(utc("2020-06-01 00:00:00"), utc("2027-05-01 00:00:00")), "a gap of years costs a few steps")
}

// matches is the plain definition Next must agree with.
func (s Schedule) matches(t time.Time) bool {
	return s.minute&(1<<t.Minute()) != 0 && s.hour&(1<<t.Hour()) != 0 && s.month&(1<<int(t.Month())) != 0 && s.dayMatches(t)
}
