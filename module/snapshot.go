package module

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"runtime/debug"

	"github.com/valkey-iungo/valkey-iungo/router"
	"github.com/valkey-iungo/valkey-iungo/scripting"
)

// Config is the whole configuration: what the RDB, IUNGO DUMP/RESTORE and
// iungo sync carry. Counters are not part of it.
type Config struct {
	Version     uint64
	SyncVersion uint64 // the iungo namespace version it came from, 0 if none
	Classes     Class
	Paused      bool
	Scripts     []ScriptDef
	Triggers    []TriggerDef // in registration order
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
	// Build makes a new set of records, on any thread, and returns it with
	// one handle per record; Swap makes it the current set and frees the
	// old one, whose handles must not be used again.
	Build(records [][]byte) (image uint64, handles []uint64)
	Swap(image uint64)
	// Discard frees a built set that will not be swapped in.
	Discard(image uint64)
}

// The snapshot format: magic, then records, then the CRC-32 (IEEE, little
// endian) of everything before it. A record is a tag byte and fields;
// strings are a uvarint length and bytes, numbers uvarints, flags one byte.
//
//	'H' version classes paused syncversion   once, anywhere
//	'S' name source                          a script
//	'T' pattern events script enabled        a trigger, in registration order
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

func headerRecord(version uint64, classes Class, paused bool, syncVersion uint64) []byte {
	b := []byte{tagHeader}
	b = binary.AppendUvarint(b, version)
	b = binary.AppendUvarint(b, uint64(classes))
	b = appendBool(b, paused)
	return binary.AppendUvarint(b, syncVersion)
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

// frame is a snapshot waiting for its header: the magic and the records
// with their running CRC, so that finishing it costs only the header.
type frame struct {
	buf []byte
	crc uint32
}

func newFrame(records [][]byte) frame {
	n := len(SnapshotMagic) + 64
	for _, r := range records {
		n += len(r)
	}
	buf := make([]byte, 0, n)
	buf = append(buf, SnapshotMagic...)
	for _, r := range records {
		buf = append(buf, r...)
	}
	return frame{buf: buf, crc: crc32.ChecksumIEEE(buf)}
}

// finish appends the header and the checksum; the frame is used up.
func (f frame) finish(header []byte) []byte {
	b := append(f.buf, header...)
	return binary.LittleEndian.AppendUint32(b, crc32.Update(f.crc, crc32.IEEETable, header))
}

// configRecords encodes the scripts and triggers of c.
func configRecords(c Config) [][]byte {
	records := make([][]byte, 0, len(c.Scripts)+len(c.Triggers))
	for _, s := range c.Scripts {
		records = append(records, scriptRecord(s.Name, s.Source))
	}
	for _, t := range c.Triggers {
		evs, _ := ParseEvents(t.Events)
		records = append(records, triggerRecord(&Trigger{Pattern: t.Pattern, Events: evs, Script: t.Script, Enabled: t.Enabled}))
	}
	return records
}

// EncodeConfig encodes c as a snapshot.
func EncodeConfig(c Config) []byte {
	return newFrame(configRecords(c)).finish(headerRecord(c.Version, c.Classes, c.Paused, c.SyncVersion))
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
			c.SyncVersion = d.uvarint()
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

// RestoreCommand is IUNGO RESTORE <snapshot>, the one command that carries
// a whole configuration to replicas and the AOF.
func RestoreCommand(snapshot []byte) []string {
	return []string{"IUNGO", "RESTORE", string(snapshot)}
}

// Config returns the current configuration.
func (m *Module) Config() Config {
	c := Config{Version: m.version, SyncVersion: m.syncVersion, Classes: m.classes, Paused: m.paused}
	for _, name := range m.ScriptNames() {
		c.Scripts = append(c.Scripts, ScriptDef{Name: name, Source: m.scripts[name].Source})
	}
	for _, t := range m.sortedTriggers() {
		c.Triggers = append(c.Triggers, TriggerDef{Pattern: t.Pattern, Events: FormatEvents(t.Events), Script: t.Script, Enabled: t.Enabled})
	}
	return c
}

// Prepared is a checked, compiled configuration ready to install: scripts
// compiled, index built, records encoded and stored. Prepare does all of it
// and touches no module state, so it can run off the main thread; Install
// then only swaps it in.
type Prepared struct {
	cfg           Config
	scripts       map[string]*scripting.Script
	scriptHandles map[string]uint64
	triggers      map[string]*Trigger
	index         *router.Index[*Trigger]
	listen        listenCounts
	image         uint64 // in the Store
	body          frame  // the snapshot without its header, for replication
	installed     bool
}

// Prepare checks and compiles c. reuse, when not nil, returns an already
// compiled script with the same name and source. It only reads m.store,
// which is safe from any goroutine.
func (m *Module) Prepare(c Config, reuse func(name, source string) *scripting.Script) (*Prepared, error) {
	p := &Prepared{
		cfg:           c,
		scripts:       make(map[string]*scripting.Script, len(c.Scripts)),
		scriptHandles: make(map[string]uint64, len(c.Scripts)),
		triggers:      make(map[string]*Trigger, len(c.Triggers)),
		index:         router.NewIndex[*Trigger](),
	}
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
	order := make([]*Trigger, 0, len(c.Triggers))
	for i, td := range c.Triggers {
		evs, err := parseTriggerKey(td.Pattern, td.Events)
		if err != nil {
			return nil, err
		}
		if _, ok := p.scripts[td.Script]; !ok {
			return nil, errorf("trigger %q %s uses unknown script %q", td.Pattern, td.Events, td.Script)
		}
		t := &Trigger{Pattern: td.Pattern, Events: evs, Script: td.Script, Enabled: td.Enabled, seq: uint64(i + 1)}
		if _, dup := p.triggers[t.ID()]; dup {
			return nil, errorf("trigger %q %s appears twice", td.Pattern, FormatEvents(evs))
		}
		p.triggers[t.ID()] = t
		order = append(order, t)
		if t.Enabled {
			p.index.Add(t.Pattern, t)
			p.listen.add(t, 1)
		}
	}
	records := configRecords(c)
	var handles []uint64
	p.image, handles = m.store.Build(records)
	for i, s := range c.Scripts {
		p.scriptHandles[s.Name] = handles[i]
	}
	for i, t := range order {
		t.handle = handles[len(c.Scripts)+i]
	}
	p.body = newFrame(records)
	return p, nil
}

// Discard frees a Prepared that will not be installed.
func (p *Prepared) Discard(m *Module) {
	if !p.installed {
		p.installed = true
		m.store.Discard(p.image)
	}
}

// reuseCompiled lets Prepare keep the compiled form of unchanged scripts.
// Only for Prepare on the main thread.
func (m *Module) reuseCompiled(name, source string) *scripting.Script {
	if s, ok := m.scripts[name]; ok && s.Source == source {
		return s
	}
	return nil
}

// Install swaps a prepared configuration in at once; it runs on the main
// thread, or holding the server's lock. Triggers that exist in both keep
// their counters. The version becomes the snapshot's, exactly, so that a
// replayed or replicated snapshot mirrors the primary. A Prepared installs
// once.
func (m *Module) Install(p *Prepared, source string) {
	if p.installed {
		panic("module: a Prepared installed twice")
	}
	p.installed = true
	for id, old := range m.triggers {
		old.removed = true
		if t, ok := p.triggers[id]; ok {
			t.Runs, t.Errors, t.LastError = old.Runs, old.Errors, old.LastError
		}
	}
	m.scripts, m.scriptHandles = p.scripts, p.scriptHandles
	m.triggers, m.index = p.triggers, p.index
	m.listen = p.listen
	m.nextSeq = uint64(len(p.triggers))
	m.classes, m.paused = p.cfg.Classes, p.cfg.Paused
	m.version, m.syncVersion = p.cfg.Version, p.cfg.SyncVersion
	m.source = source
	m.store.Swap(p.image)
	m.storeHeader()
	m.refreshFilter()
	if len(p.triggers)+len(p.scripts) >= bigConfig {
		go giveBackMemory()
	}
}

// bigConfig is the size of configuration past which installing one leaves
// enough garbage (the old configuration, decoding buffers) to be worth a
// collection right away rather than at the next GC.
const bigConfig = 10_000

// giveBackMemory collects the garbage of a big install and returns the free
// pages to the OS, off the main thread.
func giveBackMemory() {
	defer func() { _ = recover() }()
	debug.FreeOSMemory()
}

// Replace prepares and installs c on the main thread: all or nothing.
func (m *Module) Replace(c Config, source string) error {
	p, err := m.Prepare(c, m.reuseCompiled)
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
	if err := m.Replace(Config{Classes: DefaultClasses}, "none"); err != nil {
		panic("module: the empty configuration does not install: " + err.Error())
	}
}
