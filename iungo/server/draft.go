package server

import (
	"cmp"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/valkey-iungo/valkey-iungo/config"
	"github.com/valkey-iungo/valkey-iungo/iungo"
)

// Content is a namespace's configuration without its version: what a
// draft holds and what each published version recorded.
type Content struct {
	Events   []string        `json:"events"`
	Scripts  []iungo.Script  `json:"scripts"`         // by name
	Triggers []iungo.Trigger `json:"triggers"`        // in registration order
	Crons    []iungo.Cron    `json:"crons,omitempty"` // by name
}

func contentOf(sn iungo.Snapshot) Content {
	return Content{Events: sn.Events, Scripts: sn.Scripts, Triggers: sn.Triggers, Crons: sn.Crons}
}

func (c Content) cron(name string) int {
	return slices.IndexFunc(c.Crons, func(cr iungo.Cron) bool { return cr.Name == name })
}

func (c Content) script(name string) int {
	return slices.IndexFunc(c.Scripts, func(s iungo.Script) bool { return s.Name == name })
}

func (c Content) trigger(pattern, events string) int {
	return slices.IndexFunc(c.Triggers, func(t iungo.Trigger) bool { return t.Pattern == pattern && t.Events == events })
}

// clone copies c's slices: edits never reach the value they started from.
func (c Content) clone() Content {
	return Content{Events: slices.Clone(c.Events), Scripts: slices.Clone(c.Scripts), Triggers: slices.Clone(c.Triggers), Crons: slices.Clone(c.Crons)}
}

// Draft is what the edits of a namespace prepare: nodes never see it until
// it is published.
type Draft struct {
	// BaseVersion is the published version the draft was compared with.
	BaseVersion uint64  `json:"base_version"`
	Pending     bool    `json:"pending"` // it differs from that version
	UpdatedAt   string  `json:"updated_at,omitempty"`
	Content     Content `json:"content"`
	Diff        Diff    `json:"diff"`
}

// Next is the version publishing the draft makes.
func (d Draft) Next() uint64 { return d.BaseVersion + 1 }

// Draft returns a namespace's draft: its live configuration when nothing
// is pending.
func (s *Store) Draft(ns string) (Draft, error) {
	live, err := snapshotContent(s.db, ns)
	if err != nil {
		return Draft{}, err
	}
	d := Draft{BaseVersion: live.Version, Content: contentOf(live)}
	var content string
	err = s.db.QueryRow(`SELECT content, updated_at FROM drafts WHERE ns = ?`, ns).Scan(&content, &d.UpdatedAt)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return d, nil
	case err != nil:
		return d, err
	}
	var c Content // not d.Content: decoding would reuse the live slices
	if err := json.Unmarshal([]byte(content), &c); err != nil {
		return d, fmt.Errorf("the draft of %q is unreadable: %w", ns, err)
	}
	d.Content = c
	d.Diff = diffContent(contentOf(live), d.Content)
	d.Pending = !d.Diff.Empty()
	return d, nil
}

// editDraft applies fn to the namespace's draft and keeps the result; a
// draft back to the live configuration is dropped.
func (s *Store) editDraft(ns string, fn func(c *Content) error) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	d, err := s.Draft(ns)
	if err != nil {
		return err
	}
	c := d.Content.clone()
	if err := fn(&c); err != nil {
		return err
	}
	live, err := snapshotContent(s.db, ns)
	if err != nil {
		return err
	}
	if diffContent(contentOf(live), c).Empty() {
		_, err = s.db.Exec(`DELETE FROM drafts WHERE ns = ?`, ns)
		return err
	}
	_, err = s.db.Exec(`INSERT INTO drafts (ns, content, updated_at) VALUES (?, ?, ?)
		ON CONFLICT (ns) DO UPDATE SET content = excluded.content, updated_at = excluded.updated_at`, ns, payload(c), now())
	return err
}

// DiscardDraft drops a namespace's pending edits.
func (s *Store) DiscardDraft(ns string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, err := namespace(s.db, ns); err != nil {
		return err
	}
	_, err := s.db.Exec(`DELETE FROM drafts WHERE ns = ?`, ns)
	return err
}

// badInput is err, a refusal of package config, as a bad request.
func badInput(err error) error {
	return fmt.Errorf("%w: %s", errBadRequest, strings.TrimPrefix(err.Error(), "ERR "))
}

// SetScript adds or replaces a script in the draft; it must compile.
func (s *Store) SetScript(ns, name, source string) error {
	if err := config.CheckScript(name, source); err != nil {
		return badInput(err)
	}
	return s.editDraft(ns, func(c *Content) error {
		if i := c.script(name); i >= 0 {
			c.Scripts[i].Source = source
			return nil
		}
		c.Scripts = append(c.Scripts, iungo.Script{Name: name, Source: source})
		slices.SortFunc(c.Scripts, func(a, b iungo.Script) int { return cmp.Compare(a.Name, b.Name) })
		return nil
	})
}

// DeleteScript removes a script no trigger of the draft uses.
func (s *Store) DeleteScript(ns, name string) error {
	return s.editDraft(ns, func(c *Content) error {
		users := 0
		for _, t := range c.Triggers {
			if t.Script == name {
				users++
			}
		}
		for _, cr := range c.Crons {
			if cr.Script == name {
				users++
			}
		}
		if users > 0 {
			return fmt.Errorf("%w: script %q is used by %d trigger(s) or cron(s); remove them or point them at another script first", ErrConflict, name, users)
		}
		i := c.script(name)
		if i < 0 {
			return fmt.Errorf("%w: script %q does not exist", ErrNotFound, name)
		}
		c.Scripts = slices.Delete(c.Scripts, i, i+1)
		return nil
	})
}

// SetTrigger adds a trigger to the draft or updates the script and state
// of the one with the same pattern and events.
func (s *Store) SetTrigger(ns string, t iungo.Trigger) error {
	events, err := config.CheckTrigger(t.Pattern, t.Events)
	if err == nil {
		err = config.CheckWindow(t.WindowMs)
	}
	if err != nil {
		return badInput(err)
	}
	t.Events = events
	return s.editDraft(ns, func(c *Content) error {
		if c.script(t.Script) < 0 {
			return fmt.Errorf("%w: unknown script %q", errBadRequest, t.Script)
		}
		if i := c.trigger(t.Pattern, t.Events); i >= 0 {
			c.Triggers[i] = t
			return nil
		}
		c.Triggers = append(c.Triggers, t)
		return nil
	})
}

// SetCron adds a cron to the draft or replaces the one of the same name.
func (s *Store) SetCron(ns string, cr iungo.Cron) error {
	if _, err := config.CheckCron(cr.Name, cr.Schedule); err != nil {
		return badInput(err)
	}
	return s.editDraft(ns, func(c *Content) error {
		if c.script(cr.Script) < 0 {
			return fmt.Errorf("%w: unknown script %q", errBadRequest, cr.Script)
		}
		if i := c.cron(cr.Name); i >= 0 {
			c.Crons[i] = cr
			return nil
		}
		c.Crons = append(c.Crons, cr)
		slices.SortFunc(c.Crons, func(a, b iungo.Cron) int { return cmp.Compare(a.Name, b.Name) })
		return nil
	})
}

// DeleteCron removes a cron from the draft.
func (s *Store) DeleteCron(ns, name string) error {
	return s.editDraft(ns, func(c *Content) error {
		i := c.cron(name)
		if i < 0 {
			return fmt.Errorf("%w: no cron %q", ErrNotFound, name)
		}
		c.Crons = slices.Delete(c.Crons, i, i+1)
		return nil
	})
}

// DeleteTrigger removes a trigger from the draft.
func (s *Store) DeleteTrigger(ns, pattern, events string) error {
	norm, err := config.CheckTrigger(pattern, events)
	if err != nil {
		return badInput(err)
	}
	return s.editDraft(ns, func(c *Content) error {
		i := c.trigger(pattern, norm)
		if i < 0 {
			return fmt.Errorf("%w: no trigger for pattern %q and events %q", ErrNotFound, pattern, norm)
		}
		c.Triggers = slices.Delete(c.Triggers, i, i+1)
		return nil
	})
}

// SetEvents sets the draft's enabled event classes, by name or letter.
func (s *Store) SetEvents(ns string, classes []string) error {
	names := []string{}
	if len(classes) > 0 {
		mask, err := config.ParseClasses(classes)
		if err != nil {
			return badInput(err)
		}
		names = config.ClassNames(mask)
	}
	return s.editDraft(ns, func(c *Content) error {
		c.Events = names
		return nil
	})
}

// ErrNothingToPublish says that the draft equals the live configuration.
var errNothingToPublish = fmt.Errorf("%w: nothing to publish: the draft is the live configuration", ErrConflict)

// Publish makes the namespace's draft its next version, recording who
// published it and why, and returns that version and what changed.
func (s *Store) Publish(ns, author, message string) (uint64, Diff, error) {
	if err := checkMeta(author, message); err != nil {
		return 0, Diff{}, err
	}
	var diff Diff
	v, err := s.mutate(ns, meta{author, message}, func(tx *sql.Tx) ([]change, error) {
		var content string
		err := tx.QueryRow(`SELECT content FROM drafts WHERE ns = ?`, ns).Scan(&content)
		if errors.Is(err, sql.ErrNoRows) {
			return nil, errNothingToPublish
		}
		if err != nil {
			return nil, err
		}
		var target Content
		if err := json.Unmarshal([]byte(content), &target); err != nil {
			return nil, fmt.Errorf("the draft of %q is unreadable: %w", ns, err)
		}
		var changes []change
		diff, changes, err = becomes(tx, ns, target)
		return changes, err
	})
	return v, diff, err
}

// Rollback publishes the content of an earlier version as a new version.
// Pending edits would be lost: it refuses unless discardDraft.
func (s *Store) Rollback(ns string, version uint64, author string, discardDraft bool) (uint64, Diff, error) {
	if err := checkMeta(author, ""); err != nil {
		return 0, Diff{}, err
	}
	var diff Diff
	message := fmt.Sprintf("roll back to version %d", version)
	v, err := s.mutate(ns, meta{author, message}, func(tx *sql.Tx) ([]change, error) {
		target, err := versionContent(tx, ns, version)
		if err != nil {
			return nil, err
		}
		var pending int
		if err := tx.QueryRow(`SELECT COUNT(*) FROM drafts WHERE ns = ?`, ns).Scan(&pending); err != nil {
			return nil, err
		}
		if pending > 0 && !discardDraft {
			return nil, fmt.Errorf("%w: the draft has unpublished edits; publish or discard them first, or roll back with discard_draft", ErrConflict)
		}
		var changes []change
		diff, changes, err = becomes(tx, ns, target)
		if err == nil && len(changes) == 0 {
			err = fmt.Errorf("%w: version %d is the live configuration already", ErrConflict, version)
		}
		return changes, err
	})
	return v, diff, err
}

// meta is who published a version, and why.
type meta struct{ author, message string }

// Limits on what a publisher writes.
const (
	maxAuthorBytes  = 128
	maxMessageBytes = 1024
)

func checkMeta(author, message string) error {
	if len(author) > maxAuthorBytes || len(message) > maxMessageBytes {
		return fmt.Errorf("%w: author is at most %d bytes, message %d", errBadRequest, maxAuthorBytes, maxMessageBytes)
	}
	return nil
}

// becomes turns the live configuration of ns into target, inside tx, and
// returns the difference and the changes it recorded. The order keeps
// every step valid: scripts arrive before the routes that use them and
// leave after.
func becomes(tx *sql.Tx, ns string, target Content) (Diff, []change, error) {
	live, err := snapshotContent(tx, ns)
	if err != nil {
		return Diff{}, nil, err
	}
	diff := diffContent(contentOf(live), target)
	var changes []change
	do := func(c change, query string, args ...any) error {
		changes = append(changes, c)
		_, err := tx.Exec(query, args...)
		return err
	}
	if diff.Events != nil {
		if err := do(change{"events", payload(target.Events)}, `UPDATE namespaces SET events = ? WHERE name = ?`, payload(target.Events), ns); err != nil {
			return diff, nil, err
		}
	}
	for _, sd := range diff.Scripts {
		if sd.Change == changeRemoved {
			continue
		}
		sc := target.Scripts[target.script(sd.Name)]
		if err := do(change{"script_set", payload(sc)}, `INSERT INTO scripts (ns, name, source) VALUES (?, ?, ?)
			ON CONFLICT (ns, name) DO UPDATE SET source = excluded.source`, ns, sc.Name, sc.Source); err != nil {
			return diff, nil, err
		}
	}
	for _, td := range diff.Triggers {
		if td.Change == changeRemoved || td.Change == changeMoved {
			k := iungo.TriggerKey{Pattern: td.Old.Pattern, Events: td.Old.Events}
			if err := do(change{"trigger_unset", payload(k)}, `DELETE FROM triggers WHERE ns = ? AND pattern = ? AND events = ?`, ns, k.Pattern, k.Events); err != nil {
				return diff, nil, err
			}
		}
	}
	for _, td := range diff.Triggers {
		if td.Change == changeRemoved {
			continue
		}
		t := *td.New
		if err := do(change{"trigger_set", payload(t)}, `INSERT INTO triggers (ns, seq, pattern, events, script, enabled, window_ms)
			VALUES (?, (SELECT COALESCE(MAX(seq), 0) + 1 FROM triggers WHERE ns = ?), ?, ?, ?, ?, ?)
			ON CONFLICT (ns, pattern, events) DO UPDATE SET script = excluded.script, enabled = excluded.enabled, window_ms = excluded.window_ms`,
			ns, ns, t.Pattern, t.Events, t.Script, t.Enabled, t.WindowMs); err != nil {
			return diff, nil, err
		}
	}
	for _, cd := range diff.Crons {
		if cd.Change == changeRemoved {
			if err := do(change{"cron_unset", payload(cd.Old.Name)}, `DELETE FROM crons WHERE ns = ? AND name = ?`, ns, cd.Old.Name); err != nil {
				return diff, nil, err
			}
			continue
		}
		cr := *cd.New
		if err := do(change{"cron_set", payload(cr)}, `INSERT INTO crons (ns, name, schedule, script, enabled) VALUES (?, ?, ?, ?, ?)
			ON CONFLICT (ns, name) DO UPDATE SET schedule = excluded.schedule, script = excluded.script, enabled = excluded.enabled`,
			ns, cr.Name, cr.Schedule, cr.Script, cr.Enabled); err != nil {
			return diff, nil, err
		}
	}
	for _, sd := range diff.Scripts {
		if sd.Change == changeRemoved {
			if err := do(change{"script_unset", payload(sd.Name)}, `DELETE FROM scripts WHERE ns = ? AND name = ?`, ns, sd.Name); err != nil {
				return diff, nil, err
			}
		}
	}
	if _, err := tx.Exec(`DELETE FROM drafts WHERE ns = ?`, ns); err != nil {
		return diff, nil, err
	}
	return diff, changes, nil
}

// VersionInfo is one published version.
type VersionInfo struct {
	Version uint64 `json:"version"`
	At      string `json:"at"`
	Author  string `json:"author"`
	Message string `json:"message"`
	// Changes counts what it changed: scripts, routes, event classes.
	Changes int `json:"changes"`
	// Recorded says whether its content is kept (versions published
	// before history was kept are not), which rollback needs.
	Recorded bool `json:"recorded"`
}

// VersionDetail is a version with its content and its difference from the
// version before it.
type VersionDetail struct {
	VersionInfo
	Content *Content `json:"content,omitempty"`
	Diff    *Diff    `json:"diff,omitempty"`
}

// maxVersionsListed bounds a history listing.
const maxVersionsListed = 500

// Versions lists a namespace's published versions, newest first.
func (s *Store) Versions(ns string) ([]VersionInfo, error) {
	if _, err := namespace(s.db, ns); err != nil {
		return nil, err
	}
	rows, err := s.db.Query(`SELECT v.version, v.at, v.author, v.message, v.content != '',
		(SELECT COUNT(*) FROM changes c WHERE c.ns = v.ns AND c.version = v.version)
		FROM versions v WHERE v.ns = ? ORDER BY v.version DESC LIMIT ?`, ns, maxVersionsListed)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []VersionInfo{}
	for rows.Next() {
		var v VersionInfo
		if err := rows.Scan(&v.Version, &v.At, &v.Author, &v.Message, &v.Recorded, &v.Changes); err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, rows.Err()
}

// Version returns one published version with its content and its
// difference from the version before it, where both are recorded.
func (s *Store) Version(ns string, version uint64) (VersionDetail, error) {
	var d VersionDetail
	if _, err := namespace(s.db, ns); err != nil {
		return d, err
	}
	err := s.db.QueryRow(`SELECT v.version, v.at, v.author, v.message, v.content != '',
		(SELECT COUNT(*) FROM changes c WHERE c.ns = v.ns AND c.version = v.version)
		FROM versions v WHERE v.ns = ? AND v.version = ?`, ns, version).
		Scan(&d.Version, &d.At, &d.Author, &d.Message, &d.Recorded, &d.Changes)
	if errors.Is(err, sql.ErrNoRows) {
		return d, fmt.Errorf("%w: namespace %q has no version %d (or it is older than the history kept)", ErrNotFound, ns, version)
	}
	if err != nil || !d.Recorded {
		return d, err
	}
	c, err := versionContent(s.db, ns, version)
	if err != nil {
		return d, err
	}
	d.Content = &c
	before := Content{}
	if version > 1 {
		if before, err = versionContent(s.db, ns, version-1); err != nil {
			return d, nil // the version before is not recorded: no diff
		}
	}
	diff := diffContent(before, c)
	d.Diff = &diff
	return d, nil
}

func versionContent(q querier, ns string, version uint64) (Content, error) {
	var content string
	err := q.QueryRow(`SELECT content FROM versions WHERE ns = ? AND version = ?`, ns, version).Scan(&content)
	if errors.Is(err, sql.ErrNoRows) {
		return Content{}, fmt.Errorf("%w: namespace %q has no version %d (or it is older than the history kept)", ErrNotFound, ns, version)
	}
	if err != nil {
		return Content{}, err
	}
	if content == "" {
		return Content{}, fmt.Errorf("%w: the content of version %d was not recorded (published before history was kept)", ErrNotFound, version)
	}
	var c Content
	err = json.Unmarshal([]byte(content), &c)
	return c, err
}

// publishedAt formats a version's time for people.
func publishedAt(at string) string {
	t, err := time.Parse(time.RFC3339, at)
	if err != nil {
		return at
	}
	return t.UTC().Format("2006-01-02 15:04:05 UTC")
}
