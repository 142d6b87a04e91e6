package config

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// Manifest is a startup file (module argument "config <path>"): scripts by
// file, triggers and event classes, one directive a line:
//
//	# comments start with #
//	events all new                      # enabled classes: exactly these
//	paused no                           # yes or no
//	script order-points order-points.lua   # file relative to the manifest
//	trigger order:* hset order-points [enabled|disabled]
//	trigger "key with spaces:*" del,expired order-points
//	trigger click:* incrby clicks enabled window 60000
//	cron daily-coupons "0 0 * * *" coupons [enabled|disabled]
//
// Fields are separated by spaces; a field in double quotes may hold spaces,
// '#' and Go escapes such as \x00. Triggers and crons may only use scripts
// the manifest defines.
type Manifest struct {
	Path     string
	Scripts  []ScriptDef
	Triggers []TriggerDef
	Crons    []CronDef
	Classes  *Class // nil: the manifest does not set them
	Paused   *bool
}

// LoadManifest reads a manifest and checks it whole, compiling its scripts.
// Its errors name the file and line and say what is wrong.
func LoadManifest(path string) (*Manifest, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("manifest %s: %v", path, err)
	}
	data, err := os.ReadFile(abs)
	if err != nil {
		return nil, fmt.Errorf("manifest %s: %v", abs, err)
	}
	mf := &Manifest{Path: abs}
	defined := map[string]bool{}
	triggerLines := map[string]int{}
	cronLines := map[string]int{}
	type use struct {
		line         int
		what, script string
	}
	var usedAt []use
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(nil, 1<<20)
	for line := 1; sc.Scan(); line++ {
		fail := func(format string, args ...any) error {
			return fmt.Errorf("manifest %s:%d: %s", abs, line, fmt.Sprintf(format, args...))
		}
		fields, err := splitFields(sc.Text())
		if err != nil {
			return nil, fail("%v", err)
		}
		if len(fields) == 0 {
			continue
		}
		switch dir, args := fields[0], fields[1:]; dir {
		case "script":
			if len(args) != 2 {
				return nil, fail("want: script <name> <file>")
			}
			name, file := args[0], args[1]
			if err := CheckName("script name", name); err != nil {
				return nil, fail("%v", err)
			}
			if defined[name] {
				return nil, fail("script %q is defined twice", name)
			}
			if !filepath.IsAbs(file) {
				file = filepath.Join(filepath.Dir(abs), file)
			}
			src, err := os.ReadFile(file)
			if err != nil {
				return nil, fail("script %q: %v", name, err)
			}
			if err := CheckScript(name, string(src)); err != nil {
				return nil, fail("%v (file %s)", err, file)
			}
			defined[name] = true
			mf.Scripts = append(mf.Scripts, ScriptDef{Name: name, Source: string(src)})
		case "trigger":
			if len(args) < 3 || len(args) > 6 {
				return nil, fail("want: trigger <key-pattern> <events> <script> [enabled|disabled] [window <ms>]")
			}
			rest := args[3:]
			var window int64
			if n := len(rest); n >= 2 && rest[n-2] == "window" {
				var err error
				if window, err = strconv.ParseInt(rest[n-1], 10, 64); err != nil || window <= 0 {
					return nil, fail("trigger window %q: want a length in ms, such as 60000", rest[n-1])
				}
				if err := CheckWindow(window); err != nil {
					return nil, fail("trigger %v", err)
				}
				rest = rest[:n-2]
			}
			if len(rest) > 1 {
				return nil, fail("want: trigger <key-pattern> <events> <script> [enabled|disabled] [window <ms>]")
			}
			evs, err := ParseTrigger(args[0], args[1])
			if err != nil {
				return nil, fail("%v", err)
			}
			enabled, err := parseState(rest)
			if err != nil {
				return nil, fail("trigger %v", err)
			}
			id := TriggerID(args[0], evs)
			if prev, dup := triggerLines[id]; dup {
				return nil, fail("trigger %q %s is already defined on line %d", args[0], FormatEvents(evs), prev)
			}
			triggerLines[id] = line
			usedAt = append(usedAt, use{line, "trigger", args[2]})
			mf.Triggers = append(mf.Triggers, TriggerDef{Pattern: args[0], Events: FormatEvents(evs), Script: args[2], Enabled: enabled, Window: window})
		case "cron":
			if len(args) < 3 || len(args) > 4 {
				return nil, fail("want: cron <name> \"<schedule>\" <script> [enabled|disabled]")
			}
			if _, err := CheckCron(args[0], args[1]); err != nil {
				return nil, fail("cron %q: %v", args[0], err)
			}
			enabled, err := parseState(args[3:])
			if err != nil {
				return nil, fail("cron %v", err)
			}
			if prev, dup := cronLines[args[0]]; dup {
				return nil, fail("cron %q is already defined on line %d", args[0], prev)
			}
			cronLines[args[0]] = line
			usedAt = append(usedAt, use{line, "cron", args[2]})
			mf.Crons = append(mf.Crons, CronDef{Name: args[0], Schedule: args[1], Script: args[2], Enabled: enabled})
		case "events":
			c, err := ParseClasses(args)
			if err != nil {
				return nil, fail("%v", err)
			}
			mf.Classes = &c
		case "paused":
			if len(args) != 1 || (args[0] != "yes" && args[0] != "no") {
				return nil, fail("want: paused yes|no")
			}
			p := args[0] == "yes"
			mf.Paused = &p
		default:
			return nil, fail("unknown directive %q; use script, trigger, cron, events or paused", dir)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("manifest %s: %v", abs, err)
	}
	for _, u := range usedAt {
		if !defined[u.script] {
			return nil, fmt.Errorf("manifest %s:%d: %s uses script %q, which the manifest does not define", abs, u.line, u.what, u.script)
		}
	}
	return mf, nil
}

// parseState reads the optional last field of a trigger or cron line.
func parseState(args []string) (bool, error) {
	if len(args) == 0 || args[0] == "enabled" {
		return true, nil
	}
	if args[0] == "disabled" {
		return false, nil
	}
	return false, fmt.Errorf("state %q: use enabled or disabled", args[0])
}

// splitFields splits a line into fields, honouring double quotes and
// stopping at a '#' outside them.
func splitFields(line string) ([]string, error) {
	var out []string
	for i := 0; i < len(line); {
		switch c := line[i]; {
		case c == ' ' || c == '\t' || c == '\r':
			i++
		case c == '#':
			return out, nil
		case c == '"':
			j := i + 1
			for ; j < len(line) && line[j] != '"'; j++ {
				if line[j] == '\\' {
					j++
				}
			}
			if j >= len(line) {
				return nil, fmt.Errorf("unclosed quote at column %d", i+1)
			}
			s, err := strconv.Unquote(line[i : j+1])
			if err != nil {
				return nil, fmt.Errorf("bad quoted field at column %d: %v", i+1, err)
			}
			out = append(out, s)
			i = j + 1
		default:
			j := i
			for j < len(line) && !strings.ContainsRune(" \t\r", rune(line[j])) {
				j++
			}
			out = append(out, line[i:j])
			i = j
		}
	}
	return out, nil
}

// Overlay returns c with the manifest applied on top: its scripts replace
// those of the same name, its triggers set the script and state of the same
// (pattern, events) or are added, its crons replace those of the same name,
// and its events and paused lines, when present, replace the current ones.
func (mf *Manifest) Overlay(c Config) Config {
	out := Config{Revision: c.Revision, Origin: c.Origin, Classes: c.Classes, Paused: c.Paused}
	defined := map[string]bool{}
	for _, s := range mf.Scripts {
		defined[s.Name] = true
	}
	for _, s := range c.Scripts {
		if !defined[s.Name] {
			out.Scripts = append(out.Scripts, s)
		}
	}
	out.Scripts = append(out.Scripts, mf.Scripts...)
	// Scripts have no order; Config lists them by name.
	slices.SortFunc(out.Scripts, func(a, b ScriptDef) int { return strings.Compare(a.Name, b.Name) })
	byID := map[string]TriggerDef{}
	for _, t := range mf.Triggers {
		evs, _ := ParseEvents(t.Events)
		byID[TriggerID(t.Pattern, evs)] = t
	}
	for _, t := range c.Triggers {
		evs, _ := ParseEvents(t.Events)
		id := TriggerID(t.Pattern, evs)
		if mt, ok := byID[id]; ok {
			t.Script, t.Enabled, t.Window = mt.Script, mt.Enabled, mt.Window
			delete(byID, id)
		}
		out.Triggers = append(out.Triggers, t)
	}
	for _, t := range mf.Triggers {
		evs, _ := ParseEvents(t.Events)
		if _, ok := byID[TriggerID(t.Pattern, evs)]; ok {
			out.Triggers = append(out.Triggers, t)
		}
	}
	out.Crons = OverlayCrons(c.Crons, mf.Crons)
	if mf.Classes != nil {
		out.Classes = *mf.Classes
	}
	if mf.Paused != nil {
		out.Paused = *mf.Paused
	}
	return out
}

// OverlayCrons returns cur with over's crons replacing those of the same
// name, by name. A cron whose schedule and state stay keeps when it last
// ran; any other starts over from when the primary first sees it.
func OverlayCrons(cur, over []CronDef) []CronDef {
	byName := map[string]CronDef{}
	for _, c := range cur {
		byName[c.Name] = c
	}
	for _, c := range over {
		if old, ok := byName[c.Name]; ok && old.Schedule == c.Schedule && old.Enabled == c.Enabled {
			c.Since, c.LastRun = old.Since, old.LastRun
		}
		byName[c.Name] = c
	}
	out := make([]CronDef, 0, len(byName))
	for _, c := range byName {
		out = append(out, c)
	}
	slices.SortFunc(out, func(a, b CronDef) int { return strings.Compare(a.Name, b.Name) })
	if len(out) == 0 {
		return nil
	}
	return out
}
