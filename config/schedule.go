package config

import (
	"fmt"
	"math/bits"
	"strconv"
	"strings"
	"time"
)

// Schedule is when a cron runs, in UTC: a 5-field cron expression
// (minute hour day-of-month month day-of-week) or "@every <duration>".
// Its times are fixed by the schedule alone, never by when a server
// started, so every node agrees on which time a run is for.
type Schedule struct {
	text  string
	every time.Duration // > 0 for @every: runs at the multiples of it since the Unix epoch

	minute, hour, dom, month, dow uint64 // bit i set: value i matches
	// A day matches both day fields when neither is *, else either (as
	// Vixie cron: "0 0 1 * MON" is the 1st and every Monday).
	domStar, dowStar bool
}

// MinEvery is the shortest @every.
const MinEvery = time.Second

// maxScheduleBytes bounds a schedule's text.
const maxScheduleBytes = 256

var scheduleMacros = map[string]string{
	"@yearly": "0 0 1 1 *", "@annually": "0 0 1 1 *", "@monthly": "0 0 1 * *",
	"@weekly": "0 0 * * 0", "@daily": "0 0 * * *", "@midnight": "0 0 * * *", "@hourly": "0 * * * *",
}

type scheduleField struct {
	name     string
	min, max int
	names    []string // names[i] is value min+i
}

var scheduleFields = [5]scheduleField{
	{name: "minute", min: 0, max: 59},
	{name: "hour", min: 0, max: 23},
	{name: "day of month", min: 1, max: 31},
	{name: "month", min: 1, max: 12, names: []string{"jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"}},
	{name: "day of week", min: 0, max: 7, names: []string{"sun", "mon", "tue", "wed", "thu", "fri", "sat"}},
}

// ParseSchedule parses a schedule, refusing one that never runs.
func ParseSchedule(text string) (Schedule, error) {
	s := Schedule{text: strings.TrimSpace(text)}
	if len(s.text) > maxScheduleBytes {
		return s, fmt.Errorf("schedule of %d bytes; the limit is %d", len(s.text), maxScheduleBytes)
	}
	spec := strings.ToLower(s.text)
	if rest, ok := strings.CutPrefix(spec, "@every "); ok {
		d, err := time.ParseDuration(strings.TrimSpace(rest))
		if err != nil || d < MinEvery {
			return s, fmt.Errorf("schedule %q: @every wants a duration of at least %v, such as 10s, 5m or 1h30m", text, MinEvery)
		}
		s.every = d
		return s, nil
	}
	if m, ok := scheduleMacros[spec]; ok {
		spec = m
	}
	parts := strings.Fields(spec)
	if len(parts) != 5 {
		return s, fmt.Errorf("schedule %q: want 5 fields (minute hour day-of-month month day-of-week), @hourly, @daily, @weekly, @monthly, @yearly or @every <duration>", text)
	}
	sets := [5]*uint64{&s.minute, &s.hour, &s.dom, &s.month, &s.dow}
	for i, p := range parts {
		set, err := parseScheduleField(p, scheduleFields[i])
		if err != nil {
			return s, fmt.Errorf("schedule %q: %v", text, err)
		}
		*sets[i] = set
	}
	if s.dow&(1<<7) != 0 { // 7 is Sunday too
		s.dow |= 1
	}
	s.domStar, s.dowStar = parts[2] == "*" || strings.HasPrefix(parts[2], "*/"), parts[4] == "*" || strings.HasPrefix(parts[4], "*/")
	// Every day-of-month exists in some month of a leap year within 8
	// years: a schedule with no run by then has none.
	from := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	if s.Next(from).IsZero() {
		return s, fmt.Errorf("schedule %q never runs (no such day in those months)", text)
	}
	return s, nil
}

func parseScheduleField(p string, f scheduleField) (uint64, error) {
	var set uint64
	for _, item := range strings.Split(p, ",") {
		rng, stepText, hasStep := strings.Cut(item, "/")
		lo, hi := f.min, f.max
		if rng != "*" {
			a, b, isRange := strings.Cut(rng, "-")
			var err error
			if lo, err = scheduleValue(a, f); err != nil {
				return 0, err
			}
			hi = lo
			if isRange {
				if hi, err = scheduleValue(b, f); err != nil {
					return 0, err
				}
				if hi < lo {
					return 0, fmt.Errorf("%s range %q runs backwards", f.name, rng)
				}
			} else if hasStep {
				hi = f.max // "5/15": from 5 to the end, every 15
			}
		}
		step := 1
		if hasStep {
			n, err := strconv.Atoi(stepText)
			if err != nil || n < 1 || n > f.max {
				return 0, fmt.Errorf("%s step %q: want a whole number from 1 to %d", f.name, stepText, f.max)
			}
			step = n
		}
		for v := lo; v <= hi; v += step {
			set |= 1 << v
		}
	}
	return set, nil
}

func scheduleValue(text string, f scheduleField) (int, error) {
	for i, n := range f.names {
		if text == n {
			return f.min + i, nil
		}
	}
	v, err := strconv.Atoi(text)
	if err != nil || v < f.min || v > f.max {
		names := ""
		if f.names != nil {
			names = " or a name (" + f.names[0] + ", " + f.names[1] + ", ...)"
		}
		return 0, fmt.Errorf("%s %q: want %d-%d%s", f.name, text, f.min, f.max, names)
	}
	return v, nil
}

// String is the schedule as it was written.
func (s Schedule) String() string { return s.text }

// Every is the period of an @every schedule, 0 for a cron expression.
func (s Schedule) Every() time.Duration { return s.every }

// Next returns the first time of the schedule strictly after t, in UTC,
// or the zero time if there is none within 8 years.
func (s Schedule) Next(t time.Time) time.Time {
	t = t.UTC()
	if s.every > 0 {
		d := int64(s.every)
		n := t.UnixNano()
		next := (n/d + 1) * d
		if n < 0 && n%d != 0 {
			next -= d
		}
		return time.Unix(0, next).UTC()
	}
	t = t.Truncate(time.Minute).Add(time.Minute)
	limit := t.AddDate(8, 0, 0)
	for t.Before(limit) {
		switch {
		case s.month&(1<<int(t.Month())) == 0:
			t = time.Date(t.Year(), t.Month()+1, 1, 0, 0, 0, 0, time.UTC)
		case !s.dayMatches(t):
			t = time.Date(t.Year(), t.Month(), t.Day()+1, 0, 0, 0, 0, time.UTC)
		case s.hour&(1<<t.Hour()) == 0:
			t = t.Truncate(time.Hour).Add(time.Hour)
		case s.minute&(1<<t.Minute()) == 0:
			// Jump to the next minute set in this hour, if any.
			rest := s.minute >> (t.Minute() + 1)
			if rest == 0 {
				t = t.Truncate(time.Hour).Add(time.Hour)
			} else {
				t = t.Add(time.Duration(bits.TrailingZeros64(rest)+1) * time.Minute)
			}
		default:
			return t
		}
	}
	return time.Time{}
}

// Latest returns the last time of the schedule strictly after after and
// not after upTo, or the zero time if there is none: the one run a cron
// owes after a gap, however long.
func (s Schedule) Latest(after, upTo time.Time) time.Time {
	if !upTo.After(after) {
		return time.Time{}
	}
	if s.every > 0 {
		d := int64(s.every)
		n := upTo.UnixNano()
		last := n / d * d
		if n < 0 && n%d != 0 {
			last -= d
		}
		if t := time.Unix(0, last).UTC(); t.After(after) {
			return t
		}
		return time.Time{}
	}
	// Look back in growing windows: the first that holds a time holds few.
	for _, back := range []time.Duration{time.Minute, time.Hour, 24 * time.Hour, 32 * 24 * time.Hour, 366 * 24 * time.Hour, 9 * 366 * 24 * time.Hour} {
		from := upTo.Add(-back)
		if !from.After(after) {
			from = after
		}
		t := s.Next(from)
		if t.IsZero() || t.After(upTo) {
			if from.Equal(after) {
				return time.Time{}
			}
			continue
		}
		for {
			next := s.Next(t)
			if next.IsZero() || next.After(upTo) {
				return t
			}
			t = next
		}
	}
	return time.Time{}
}

func (s Schedule) dayMatches(t time.Time) bool {
	dom, dow := s.dom&(1<<t.Day()) != 0, s.dow&(1<<int(t.Weekday())) != 0
	if s.domStar || s.dowStar {
		return dom && dow
	}
	return dom || dow
}
