// Package iungo is version 2 of the iungo protocol (docs/iungo-protocol.md):
// its wire types, its signatures, the conversions between the wire and
// package config, and the short-lived HTTP client the module uses. The
// reference server in iungo/server speaks it too.
package iungo

import (
	"crypto/ed25519"
	"encoding/base64"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/valkey-iungo/valkey-iungo/config"
)

// APIPrefix starts every path of version 2.
const APIPrefix = "/api/v2"

// SignatureHeader carries the namespace's Ed25519 signature of a
// configuration body: "ed25519=" and the signature in standard base64.
const SignatureHeader = "Iungo-Signature"

// Kinds of a changes response.
const (
	KindDelta    = "delta"
	KindSnapshot = "snapshot"
)

// Script is a Lua source by name.
type Script struct {
	Name   string `json:"name"`
	Source string `json:"source"`
}

// Trigger runs Script for Events on keys matching Pattern; with WindowMs,
// once per window of that many ms, for the events gathered.
type Trigger struct {
	Pattern  string `json:"pattern"`
	Events   string `json:"events"`
	Script   string `json:"script"`
	Enabled  bool   `json:"enabled"`
	WindowMs int64  `json:"window_ms,omitempty"`
}

// def is t as package config has it.
func (t Trigger) def() config.TriggerDef {
	return config.TriggerDef{Pattern: t.Pattern, Events: t.Events, Script: t.Script, Enabled: t.Enabled, Window: t.WindowMs}
}

// Cron runs Script at the times of Schedule (README, "Crons").
type Cron struct {
	Name     string `json:"name"`
	Schedule string `json:"schedule"`
	Script   string `json:"script"`
	Enabled  bool   `json:"enabled"`
}

func (c Cron) def() config.CronDef {
	return config.CronDef{Name: c.Name, Schedule: c.Schedule, Script: c.Script, Enabled: c.Enabled}
}

// TriggerKey identifies a trigger.
type TriggerKey struct {
	Pattern string `json:"pattern"`
	Events  string `json:"events"`
}

// Snapshot is a namespace's whole configuration at one version.
type Snapshot struct {
	Namespace string `json:"namespace"`
	// NamespaceID is the namespace's identity: made when it was created,
	// kept by backups.
	NamespaceID string    `json:"namespace_id"`
	Kind        string    `json:"kind,omitempty"`
	Version     uint64    `json:"version"`
	Digest      string    `json:"digest"` // config.Digest of the configuration, unpaused
	Events      []string  `json:"events"`
	Scripts     []Script  `json:"scripts"`
	Triggers    []Trigger `json:"triggers"`
	Crons       []Cron    `json:"crons,omitempty"` // by name
}

// Changes is a delta: what turns version From (whose digest is FromDigest)
// into Version (whose digest is Digest).
type Changes struct {
	Namespace   string `json:"namespace"`
	NamespaceID string `json:"namespace_id"`
	Kind        string `json:"kind"`
	From        uint64 `json:"from"`
	FromDigest  string `json:"from_digest"`
	Version     uint64 `json:"version"`
	Digest      string `json:"digest"`
	// Events, when present, replaces the enabled classes; an empty list
	// means none.
	Events  *[]string `json:"events,omitempty"`
	Scripts struct {
		Set   []Script `json:"set,omitempty"`
		Unset []string `json:"unset,omitempty"`
	} `json:"scripts"`
	Triggers struct {
		Set   []Trigger    `json:"set,omitempty"`
		Unset []TriggerKey `json:"unset,omitempty"`
	} `json:"triggers"`
	Crons struct {
		Set   []Cron   `json:"set,omitempty"`
		Unset []string `json:"unset,omitempty"`
	} `json:"crons"`
}

// Update is the answer to "changes since": exactly one of Delta and
// Snapshot is set.
type Update struct {
	Delta    *Changes
	Snapshot *Snapshot
}

// Registration is what a node says when it registers.
type Registration struct {
	NodeID        string `json:"node_id"`
	Address       string `json:"address"`
	ValkeyVersion string `json:"valkey_version"`
	ModuleVersion string `json:"module_version"`
	Role          string `json:"role"`
}

// Health is what a node reports in a heartbeat.
type Health struct {
	// NamespaceVersion and ConfigDigest say which configuration the node
	// runs: the version of the namespace it came from (0: none) and the
	// digest of what is in force (config.Digest).
	NamespaceVersion uint64 `json:"namespace_version"`
	ConfigDigest     string `json:"config_digest"`
	LastSyncAt       string `json:"last_sync_at"`
	LastError        string `json:"last_error"`
	Runs             uint64 `json:"runs"`
	Errors           uint64 `json:"errors"`
	Triggers         int    `json:"triggers"`
	Role             string `json:"role"`
	// Primary is the host:port of the primary a replica follows.
	Primary string `json:"primary,omitempty"`
	// Syncs and SyncFailures count the node's syncs since it loaded the
	// module: applied (or found current), and failed.
	Syncs        uint64 `json:"syncs"`
	SyncFailures uint64 `json:"sync_failures"`
	// TriggerStats are the node's counters per trigger, in registration
	// order, as many as fit in MaxStatsBytes; TriggersOmitted counts the
	// rest.
	TriggerStats    []TriggerStats `json:"trigger_stats,omitempty"`
	TriggersOmitted int            `json:"triggers_omitted,omitempty"`
	// RecentErrors are the node's latest trigger errors, newest first, at
	// most MaxRecentErrors.
	RecentErrors []RunError `json:"recent_errors,omitempty"`
}

// Bounds of the run statistics of a heartbeat: with them it stays well
// under the node API's 64 KiB body limit.
const (
	MaxStatsBytes         = 32 << 10
	MaxRecentErrors       = 16
	MaxErrorMessageBytes  = 512
	MaxErrorKeyBytes      = 128
	MaxReportedEventBytes = 32
)

// TriggerStats is what one trigger's runs did on a node since it was set,
// or reset with IUNGO TRIGGER RESET.
type TriggerStats struct {
	Pattern  string `json:"pattern"`
	Events   string `json:"events"`
	Runs     uint64 `json:"runs"`
	Errors   uint64 `json:"errors"`
	RunUs    uint64 `json:"run_us"`     // all its runs together
	MaxRunUs uint64 `json:"max_run_us"` // its longest run
}

// RunError is one failed or skipped trigger run.
type RunError struct {
	Pattern string `json:"pattern"`
	Events  string `json:"events"`
	At      string `json:"at"` // RFC 3339, UTC, milliseconds
	Event   string `json:"event"`
	Key     string `json:"key"`            // at most MaxErrorKeyBytes
	Line    int    `json:"line,omitempty"` // of the script, when known
	Message string `json:"message"`        // at most MaxErrorMessageBytes
}

// VersionReply answers registrations and heartbeats.
type VersionReply struct {
	NodeID  string `json:"node_id,omitempty"`
	Version uint64 `json:"version"`
}

// ErrorBody is the body of every non-2xx response.
type ErrorBody struct {
	Error struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

// Error codes.
const (
	CodeBadRequest   = "bad_request"
	CodeUnauthorized = "unauthorized"
	CodeNotFound     = "not_found"
	CodeConflict     = "conflict"
	CodeTooLarge     = "too_large"
	CodeInternal     = "internal"
)

// Sign returns the Iungo-Signature value of body under a namespace's key.
func Sign(key ed25519.PrivateKey, body []byte) string {
	return "ed25519=" + base64.StdEncoding.EncodeToString(ed25519.Sign(key, body))
}

// Verify checks a signature header value against body and the namespace's
// public key.
func Verify(key ed25519.PublicKey, body []byte, signature string) error {
	if signature == "" {
		return fmt.Errorf("the response has no %s header", SignatureHeader)
	}
	b64, ok := strings.CutPrefix(strings.TrimSpace(signature), "ed25519=")
	sig, err := base64.StdEncoding.DecodeString(b64)
	if !ok || err != nil || !ed25519.Verify(key, body, sig) {
		return fmt.Errorf("the %s does not match the body and the namespace's public key (iungo.public-key): forged, tampered with or corrupted", SignatureHeader)
	}
	return nil
}

// PublicKeyString is how a namespace's public key is written: standard
// base64 of its 32 bytes.
func PublicKeyString(key ed25519.PublicKey) string { return base64.StdEncoding.EncodeToString(key) }

// ParsePublicKey reads a public key written by PublicKeyString.
func ParsePublicKey(s string) (ed25519.PublicKey, error) {
	b, err := base64.StdEncoding.DecodeString(strings.TrimSpace(s))
	if err != nil || len(b) != ed25519.PublicKeySize {
		return nil, errors.New("an iungo public key is 44 characters of base64 (32 bytes); iungo-server prints the namespace's")
	}
	return ed25519.PublicKey(b), nil
}

// eventClasses reads event class names: an empty list means none.
func eventClasses(names []string) (config.Class, error) {
	if len(names) == 0 {
		return 0, nil
	}
	return config.ParseClasses([]string{strings.Join(names, ",")})
}

// Config turns a snapshot into a configuration, with its origin.
func (sn *Snapshot) Config() (config.Config, error) {
	c := config.Config{Origin: config.Origin{NamespaceID: sn.NamespaceID, Version: sn.Version, Digest: sn.Digest}}
	if sn.Events == nil {
		return c, errors.New("the snapshot has no events list (an empty list means no event class)")
	}
	var err error
	if c.Classes, err = eventClasses(sn.Events); err != nil {
		return c, err
	}
	for _, s := range sn.Scripts {
		c.Scripts = append(c.Scripts, config.ScriptDef{Name: s.Name, Source: s.Source})
	}
	slices.SortFunc(c.Scripts, func(a, b config.ScriptDef) int { return strings.Compare(a.Name, b.Name) })
	for _, t := range sn.Triggers {
		c.Triggers = append(c.Triggers, t.def())
	}
	for _, cr := range sn.Crons {
		c.Crons = append(c.Crons, cr.def())
	}
	slices.SortFunc(c.Crons, func(a, b config.CronDef) int { return strings.Compare(a.Name, b.Name) })
	return c, nil
}

// SnapshotOf turns a configuration into a snapshot of namespace ns.
func SnapshotOf(ns string, c config.Config) Snapshot {
	sn := Snapshot{Namespace: ns, NamespaceID: c.Origin.NamespaceID, Version: c.Origin.Version, Digest: c.Origin.Digest,
		Events: config.ClassNames(c.Classes), Scripts: []Script{}, Triggers: []Trigger{}}
	if sn.Events == nil {
		sn.Events = []string{}
	}
	for _, s := range c.Scripts {
		sn.Scripts = append(sn.Scripts, Script{Name: s.Name, Source: s.Source})
	}
	for _, t := range c.Triggers {
		sn.Triggers = append(sn.Triggers, Trigger{Pattern: t.Pattern, Events: t.Events, Script: t.Script, Enabled: t.Enabled, WindowMs: t.Window})
	}
	for _, cr := range c.Crons {
		sn.Crons = append(sn.Crons, Cron{Name: cr.Name, Schedule: cr.Schedule, Script: cr.Script, Enabled: cr.Enabled})
	}
	return sn
}

// Apply turns base, the configuration of version d.From, into that of
// version d.Version. It checks that base is the configuration the delta
// starts from (its origin), not the result: compare Digest afterwards.
func (d *Changes) Apply(base config.Config) (config.Config, error) {
	if base.Origin.NamespaceID != d.NamespaceID || base.Origin.Version != d.From || base.Origin.Digest != d.FromDigest {
		return base, fmt.Errorf("iungo sent a delta from version %d (%s), the configuration in force is version %d (%s)",
			d.From, d.FromDigest, base.Origin.Version, base.Origin.Digest)
	}
	c := config.Config{Origin: config.Origin{NamespaceID: d.NamespaceID, Version: d.Version, Digest: d.Digest}, Classes: base.Classes}
	if d.Events != nil {
		var err error
		if c.Classes, err = eventClasses(*d.Events); err != nil {
			return c, err
		}
	}
	unset := map[string]bool{}
	for _, name := range d.Scripts.Unset {
		unset[name] = true
	}
	set := map[string]string{}
	for _, sc := range d.Scripts.Set {
		set[sc.Name] = sc.Source
	}
	for _, sc := range base.Scripts {
		if src, ok := set[sc.Name]; ok {
			sc.Source = src
			delete(set, sc.Name)
		}
		if !unset[sc.Name] {
			c.Scripts = append(c.Scripts, sc)
		}
	}
	for _, sc := range d.Scripts.Set {
		if _, ok := set[sc.Name]; ok {
			c.Scripts = append(c.Scripts, config.ScriptDef{Name: sc.Name, Source: sc.Source})
		}
	}
	slices.SortFunc(c.Scripts, func(a, b config.ScriptDef) int { return strings.Compare(a.Name, b.Name) })
	key := func(pattern, events string) string {
		evs, _ := config.ParseEvents(events)
		return config.TriggerID(pattern, evs)
	}
	gone := map[string]bool{}
	for _, k := range d.Triggers.Unset {
		gone[key(k.Pattern, k.Events)] = true
	}
	setT := map[string]Trigger{}
	for _, t := range d.Triggers.Set {
		setT[key(t.Pattern, t.Events)] = t
	}
	// A trigger removed and set again in one delta leaves its place and
	// goes to the end, as a new registration.
	for _, t := range base.Triggers {
		k := key(t.Pattern, t.Events)
		if gone[k] {
			continue
		}
		if nt, ok := setT[k]; ok {
			t.Script, t.Enabled, t.Window = nt.Script, nt.Enabled, nt.WindowMs
			delete(setT, k)
		}
		c.Triggers = append(c.Triggers, t)
	}
	for _, t := range d.Triggers.Set {
		if _, ok := setT[key(t.Pattern, t.Events)]; ok {
			c.Triggers = append(c.Triggers, t.def())
		}
	}
	var crons []config.CronDef
	for _, cr := range d.Crons.Set {
		crons = append(crons, cr.def())
	}
	c.Crons = config.OverlayCrons(slices.DeleteFunc(slices.Clone(base.Crons), func(cr config.CronDef) bool {
		return slices.Contains(d.Crons.Unset, cr.Name)
	}), crons)
	return c, nil
}

// ContentDigest is the digest iungo publishes for a configuration: that
// of its content unpaused, since pausing is each node's own decision.
func ContentDigest(c config.Config) string {
	c.Paused = false
	return config.Digest(c)
}

// ErrorLine is the script line a run's error names ("... line 5: ..."),
// or 0.
func ErrorLine(msg string) int {
	for rest := msg; ; {
		i := strings.Index(rest, "line ")
		if i < 0 {
			return 0
		}
		if i == 0 || rest[i-1] == ' ' {
			n, digits := 0, 0
			for _, c := range rest[i+5:] {
				if c < '0' || c > '9' || digits == 9 {
					break
				}
				n, digits = n*10+int(c-'0'), digits+1
			}
			if digits > 0 {
				return n
			}
		}
		rest = rest[i+5:]
	}
}
