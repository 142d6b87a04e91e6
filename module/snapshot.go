package module

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"

	"github.com/valkey-iungo/valkey-iungo/router"
	"github.com/valkey-iungo/valkey-iungo/scripting"
)

// Config is the whole configuration: what the RDB, IUNGO DUMP/RESTORE and
// iungo sync carry. Counters are not part of it.
type Config struct {
	Version  uint64
	Classes  Class
	Paused   bool
	Scripts  []ScriptDef
	Triggers []TriggerDef // in registration order
}

// ScriptDef is a script by name and source.
type ScriptDef struct {
	Name   string
	Source string
}

// TriggerDef is a trigger as configured.
type TriggerDef struct {
	Pattern string
	Events  string // as IUNGO TRIGGER SET takes it, e.g. "hset,set" or "*"
	Script  string
	Enabled bool
}

// Store keeps the configuration as encoded records where C can frame them
// without Go: the server saves aux data in a forked child, where Go code
// must not run. Handles are the store's, 0 meaning "new".
type Store interface {
	Put(handle uint64, record []byte) uint64
	Delete(handle uint64)
	// SetHeader stores the header record; isDefault says that it holds
	// the default classes, unpaused, so that an empty store need not be
	// saved at all.
	SetHeader(record []byte, isDefault bool)
	Clear()
}

// The snapshot format: magic, then records, then the CRC-32 (IEEE, little
// endian) of everything before it. A record is a tag byte and fields;
// strings are a uvarint length and bytes, numbers uvarints, flags one byte.
//
//	'H' version classes paused     once, first
//	'S' name source                a script
//	'T' pattern events script enabled   a trigger, in registration order
const (
	SnapshotMagic = "IUNGOCF1"
	tagHeader     = 'H'
	tagScript     = 'S'
	tagTrigger    = 'T'
)

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

func appendBool(b []byte, v bool) []byte {
	if v {
		return append(b, 1)
	}
	return append(b, 0)
}

func headerRecord(version uint64, classes Class, paused bool) []byte {
	b := []byte{tagHeader}
	b = binary.AppendUvarint(b, version)
	b = binary.AppendUvarint(b, uint64(classes))
	return appendBool(b, paused)
}

func scriptRecord(name, source string) []byte {
	b := appendString([]byte{tagScript}, name)
	return appendString(b, source)
}

func triggerRecord(t *Trigger) []byte {
	b := appendString([]byte{tagTrigger}, t.Pattern)
	b = appendString(b, FormatEvents(t.Events))
	b = appendString(b, t.Script)
	return appendBool(b, t.Enabled)
}

// FrameSnapshot frames records into a snapshot; the C store does the same.
func FrameSnapshot(records ...[]byte) []byte {
	b := []byte(SnapshotMagic)
	for _, r := range records {
		b = append(b, r...)
	}
	return binary.LittleEndian.AppendUint32(b, crc32.ChecksumIEEE(b))
}

// EncodeConfig encodes c as a snapshot.
func EncodeConfig(c Config) []byte {
	records := [][]byte{headerRecord(c.Version, c.Classes, c.Paused)}
	for _, s := range c.Scripts {
		records = append(records, scriptRecord(s.Name, s.Source))
	}
	for _, t := range c.Triggers {
		evs, _ := ParseEvents(t.Events)
		records = append(records, triggerRecord(&Trigger{Pattern: t.Pattern, Events: evs, Script: t.Script, Enabled: t.Enabled}))
	}
	return FrameSnapshot(records...)
}

// DecodeConfig reads a snapshot. It checks the frame and the checksum, not
// the meaning: Prepare does that.
func DecodeConfig(b []byte) (Config, error) {
	var c Config
	if len(b) < len(SnapshotMagic)+4 || string(b[:len(SnapshotMagic)]) != SnapshotMagic {
		return c, errors.New("not an iungo configuration snapshot (bad magic)")
	}
	body, sum := b[:len(b)-4], binary.LittleEndian.Uint32(b[len(b)-4:])
	if crc32.ChecksumIEEE(body) != sum {
		return c, errors.New("checksum mismatch: the snapshot is corrupt")
	}
	d := decoder{b: body[len(SnapshotMagic):]}
	header := false
	for len(d.b) > 0 && d.err == nil {
		switch tag := d.byte(); tag {
		case tagHeader:
			if header {
				return c, errors.New("two header records")
			}
			header = true
			c.Version = d.uvarint()
			c.Classes = Class(d.uvarint())
			c.Paused = d.bool()
		case tagScript:
			c.Scripts = append(c.Scripts, ScriptDef{Name: d.string(), Source: d.string()})
		case tagTrigger:
			c.Triggers = append(c.Triggers, TriggerDef{Pattern: d.string(), Events: d.string(), Script: d.string(), Enabled: d.bool()})
		default:
			return c, fmt.Errorf("unknown record tag %q at byte %d", tag, d.pos())
		}
	}
	if d.err != nil {
		return c, d.err
	}
	if !header {
		return c, errors.New("no header record")
	}
	return c, nil
}

type decoder struct {
	b    []byte
	read int
	err  error
}

func (d *decoder) pos() int { return len(SnapshotMagic) + d.read }

func (d *decoder) fail(what string) {
	if d.err == nil {
		d.err = fmt.Errorf("truncated %s at byte %d", what, d.pos())
	}
	d.b = nil
}

func (d *decoder) byte() byte {
	if len(d.b) < 1 {
		d.fail("record")
		return 0
	}
	v := d.b[0]
	d.b, d.read = d.b[1:], d.read+1
	return v
}

func (d *decoder) bool() bool {
	switch d.byte() {
	case 0:
		return false
	case 1:
		return true
	}
	if d.err == nil {
		d.err = fmt.Errorf("bad flag at byte %d", d.pos()-1)
	}
	return false
}

func (d *decoder) uvarint() uint64 {
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.fail("number")
		return 0
	}
	d.b, d.read = d.b[n:], d.read+n
	return v
}

func (d *decoder) string() string {
	n := d.uvarint()
	if d.err != nil || n > uint64(len(d.b)) {
		d.fail("string")
		return ""
	}
	s := string(d.b[:n])
	d.b, d.read = d.b[n:], d.read+int(n)
	return s
}

// Config returns the current configuration.
func (m *Module) Config() Config {
	c := Config{Version: m.version, Classes: m.classes, Paused: m.paused}
	for _, name := range m.ScriptNames() {
		c.Scripts = append(c.Scripts, ScriptDef{Name: name, Source: m.scripts[name].Source})
	}
	for _, t := range m.sortedTriggers() {
		c.Triggers = append(c.Triggers, TriggerDef{Pattern: t.Pattern, Events: FormatEvents(t.Events), Script: t.Script, Enabled: t.Enabled})
	}
	return c
}

// Prepared is a checked, compiled configuration ready to install. Prepare
// does the slow work and touches no module state, so it can run off the
// main thread.
type Prepared struct {
	cfg      Config
	scripts  map[string]*scripting.Script
	triggers []*Trigger
	index    *router.Index[*Trigger]
}

// Prepare checks and compiles c. reuse, when not nil, returns an already
// compiled script with the same name and source.
func Prepare(c Config, reuse func(name, source string) *scripting.Script) (*Prepared, error) {
	p := &Prepared{cfg: c, scripts: make(map[string]*scripting.Script, len(c.Scripts)), index: router.NewIndex[*Trigger]()}
	if c.Classes&^ClassesSubscribed != 0 {
		return nil, errorf("unknown event class bits %#x", int(c.Classes&^ClassesSubscribed))
	}
	for _, s := range c.Scripts {
		if err := checkName(s.Name); err != nil {
			return nil, err
		}
		if _, dup := p.scripts[s.Name]; dup {
			return nil, errorf("script %q appears twice", s.Name)
		}
		var compiled *scripting.Script
		if reuse != nil {
			compiled = reuse(s.Name, s.Source)
		}
		if compiled == nil {
			var err error
			if compiled, err = scripting.Compile(s.Name, s.Source); err != nil {
				return nil, &Error{Code: "ERR", Message: err.Error()}
			}
		}
		p.scripts[s.Name] = compiled
	}
	seen := make(map[string]bool, len(c.Triggers))
	for i, td := range c.Triggers {
		evs, err := parseTriggerKey(td.Pattern, td.Events)
		if err != nil {
			return nil, err
		}
		if _, ok := p.scripts[td.Script]; !ok {
			return nil, errorf("trigger %q %s uses unknown script %q", td.Pattern, td.Events, td.Script)
		}
		t := &Trigger{Pattern: td.Pattern, Events: evs, Script: td.Script, Enabled: td.Enabled, seq: uint64(i + 1)}
		if seen[t.ID()] {
			return nil, errorf("trigger %q %s appears twice", td.Pattern, FormatEvents(evs))
		}
		seen[t.ID()] = true
		p.triggers = append(p.triggers, t)
		if t.Enabled {
			p.index.Add(t.Pattern, t)
		}
	}
	return p, nil
}

// reuseCompiled lets Prepare keep the compiled form of unchanged scripts.
// Only for Prepare on the main thread.
func (m *Module) reuseCompiled(name, source string) *scripting.Script {
	if s, ok := m.scripts[name]; ok && s.Source == source {
		return s
	}
	return nil
}

// Install swaps a prepared configuration in at once. Triggers that exist in
// both keep their counters. The version becomes the snapshot's, exactly, so
// that a replayed or replicated snapshot mirrors the primary.
func (m *Module) Install(p *Prepared, source string) {
	old := m.triggers
	for _, t := range old {
		t.removed = true
	}
	m.scripts = p.scripts
	m.triggers = make(map[string]*Trigger, len(p.triggers))
	m.index = p.index
	m.listen, m.listenAll = map[string]int{}, 0
	for _, t := range p.triggers {
		if prev, ok := old[t.ID()]; ok {
			t.Runs, t.Errors, t.LastError = prev.Runs, prev.Errors, prev.LastError
		}
		m.triggers[t.ID()] = t
		if t.Enabled {
			m.listenTo(t, 1)
		}
	}
	m.nextSeq = uint64(len(p.triggers))
	m.classes, m.paused = p.cfg.Classes, p.cfg.Paused
	m.version = p.cfg.Version
	m.source = source
	m.rebuildStore()
	m.refreshFilter()
}

// Replace prepares and installs c on the main thread: all or nothing.
func (m *Module) Replace(c Config, source string) error {
	p, err := Prepare(c, m.reuseCompiled)
	if err != nil {
		return err
	}
	m.Install(p, source)
	return nil
}

// Reset empties the configuration, as before any data was loaded: the
// server calls it when it starts loading an RDB or AOF, so that what the
// data holds, or nothing, becomes the configuration.
func (m *Module) Reset() {
	m.Install(&Prepared{cfg: Config{Classes: DefaultClasses}, scripts: map[string]*scripting.Script{}, index: router.NewIndex[*Trigger]()}, "none")
}

// rebuildStore writes the whole configuration into the store again.
func (m *Module) rebuildStore() {
	m.store.Clear()
	m.storeHeader()
	clear(m.scriptHandles)
	for _, name := range m.ScriptNames() {
		m.scriptHandles[name] = m.store.Put(0, scriptRecord(name, m.scripts[name].Source))
	}
	for _, t := range m.sortedTriggers() {
		t.handle = m.store.Put(0, triggerRecord(t))
	}
}
