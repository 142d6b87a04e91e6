package config

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"slices"
	"strings"
)

// Digest identifies a configuration by its content: its scripts (by name),
// its triggers in registration order with their state and window, its event classes
// and the paused flag. It leaves out where the configuration came from and
// the node's revision, so two nodes with the same configuration have the
// same digest however they got it (IUNGO commands, iungo, RDB, AOF,
// replication). It is "sha256:" and 64 hex digits.
func Digest(c Config) string {
	scripts := slices.Clone(c.Scripts)
	slices.SortFunc(scripts, func(a, b ScriptDef) int { return strings.Compare(a.Name, b.Name) })
	h := sha256.New()
	var b []byte
	b = binary.AppendUvarint(b, uint64(c.Classes))
	b = appendBool(b, c.Paused)
	b = binary.AppendUvarint(b, uint64(len(scripts)))
	h.Write(b)
	for _, s := range scripts {
		h.Write(ScriptRecord(s.Name, s.Source))
	}
	h.Write(binary.AppendUvarint(nil, uint64(len(c.Triggers))))
	for _, t := range c.Triggers {
		h.Write(TriggerRecord(t.normalised()))
	}
	// Crons only when there are some, so that the digest of a
	// configuration without crons is what it always was. When they last
	// ran is each node's state, not configuration.
	if len(c.Crons) > 0 {
		crons := slices.Clone(c.Crons)
		slices.SortFunc(crons, func(a, b CronDef) int { return strings.Compare(a.Name, b.Name) })
		h.Write(binary.AppendUvarint(nil, uint64(len(crons))))
		for _, cr := range crons {
			h.Write(CronRecord(CronDef{Name: cr.Name, Schedule: cr.Schedule, Script: cr.Script, Enabled: cr.Enabled}))
		}
	}
	return "sha256:" + hex.EncodeToString(h.Sum(nil))
}
