package config

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
)

// The snapshot format: magic, then records, then the CRC-32 (IEEE, little
// endian) of everything before it. A record is a tag byte and fields;
// strings are a uvarint length and bytes, numbers uvarints, flags one byte.
//
//	'H' revision classes paused origin-version   once, anywhere
//	'O' namespace-id digest                      at most once: where from iungo
//	'S' name source                              a script
//	'T' pattern events script enabled            a trigger, in registration order
//	'W' pattern events script enabled window     a window trigger (window in ms), in the same order
//	'C' name schedule script enabled since last-run   a cron (times in Unix ms)
//
// The C shim frames the same records in a forked child (aux_save2), where
// Go must not run: records are built here and kept there.
const (
	SnapshotMagic = "IUNGOCF1"
	tagHeader     = 'H'
	tagOrigin     = 'O'
	tagScript     = 'S'
	tagTrigger    = 'T'
	tagWindow     = 'W'
	tagCron       = 'C'
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

// HeaderRecord encodes what a configuration holds besides its scripts and
// triggers.
func HeaderRecord(c *Config) []byte {
	b := []byte{tagHeader}
	b = binary.AppendUvarint(b, c.Revision)
	b = binary.AppendUvarint(b, uint64(c.Classes))
	b = appendBool(b, c.Paused)
	b = binary.AppendUvarint(b, c.Origin.Version)
	if c.Origin.NamespaceID != "" || c.Origin.Digest != "" {
		b = append(b, tagOrigin)
		b = appendString(b, c.Origin.NamespaceID)
		b = appendString(b, c.Origin.Digest)
	}
	return b
}

// ScriptRecord encodes a script.
func ScriptRecord(name, source string) []byte {
	b := appendString([]byte{tagScript}, name)
	return appendString(b, source)
}

// TriggerRecord encodes a trigger; events must be normalised. A window
// trigger has a record of its own, so that the records (and the digest) of
// a configuration without windows stay what they were.
func TriggerRecord(t TriggerDef) []byte {
	tag := byte(tagTrigger)
	if t.Window > 0 {
		tag = tagWindow
	}
	b := appendString([]byte{tag}, t.Pattern)
	b = appendString(b, t.Events)
	b = appendString(b, t.Script)
	b = appendBool(b, t.Enabled)
	if t.Window > 0 {
		b = binary.AppendUvarint(b, uint64(t.Window))
	}
	return b
}

// normalised returns t with its events normalised.
func (t TriggerDef) normalised() TriggerDef {
	evs, _ := ParseEvents(t.Events)
	t.Events = FormatEvents(evs)
	return t
}

// CronRecord encodes a cron.
func CronRecord(c CronDef) []byte {
	b := appendString([]byte{tagCron}, c.Name)
	b = appendString(b, c.Schedule)
	b = appendString(b, c.Script)
	b = appendBool(b, c.Enabled)
	b = binary.AppendUvarint(b, uint64(max(c.Since, 0)))
	return binary.AppendUvarint(b, uint64(max(c.LastRun, 0)))
}

// FrameSnapshot frames records into a snapshot; the C store does the same.
func FrameSnapshot(records ...[]byte) []byte {
	b := []byte(SnapshotMagic)
	for _, r := range records {
		b = append(b, r...)
	}
	return binary.LittleEndian.AppendUint32(b, crc32.ChecksumIEEE(b))
}

// Frame is a snapshot waiting for its header: the magic and the records
// with their running CRC, so that finishing it costs only the header.
type Frame struct {
	buf []byte
	crc uint32
}

// NewFrame frames records, with room for a header and the checksum, so
// that Finish, which runs on the server's main thread, allocates nothing.
func NewFrame(records [][]byte) Frame {
	n := len(SnapshotMagic) + 512
	for _, r := range records {
		n += len(r)
	}
	buf := make([]byte, 0, n)
	buf = append(buf, SnapshotMagic...)
	for _, r := range records {
		buf = append(buf, r...)
	}
	return Frame{buf: buf, crc: crc32.ChecksumIEEE(buf)}
}

// Finish appends the header and the checksum; the frame is used up.
func (f Frame) Finish(header []byte) []byte {
	b := append(f.buf, header...)
	return binary.LittleEndian.AppendUint32(b, crc32.Update(f.crc, crc32.IEEETable, header))
}

// Records encodes the scripts, triggers and crons of c, in that order.
func Records(c *Config) [][]byte {
	records := make([][]byte, 0, len(c.Scripts)+len(c.Triggers)+len(c.Crons))
	for _, s := range c.Scripts {
		records = append(records, ScriptRecord(s.Name, s.Source))
	}
	for _, t := range c.Triggers {
		records = append(records, TriggerRecord(t.normalised()))
	}
	for _, cr := range c.Crons {
		records = append(records, CronRecord(cr))
	}
	return records
}

// Encode encodes c as a snapshot.
func Encode(c Config) []byte {
	return NewFrame(Records(&c)).Finish(HeaderRecord(&c))
}

// Decode reads a snapshot. It checks the frame and the checksum, not the
// meaning: Validate does that.
func Decode(b []byte) (Config, error) {
	var c Config
	if len(b) < len(SnapshotMagic)+4 || string(b[:len(SnapshotMagic)]) != SnapshotMagic {
		return c, errors.New("not an iungo configuration snapshot (bad magic)")
	}
	body, sum := b[:len(b)-4], binary.LittleEndian.Uint32(b[len(b)-4:])
	if crc32.ChecksumIEEE(body) != sum {
		return c, errors.New("checksum mismatch: the snapshot is corrupt")
	}
	d := decoder{b: body[len(SnapshotMagic):]}
	header, origin := false, false
	for len(d.b) > 0 && d.err == nil {
		switch tag := d.byte(); tag {
		case tagHeader:
			if header {
				return c, errors.New("two header records")
			}
			header = true
			c.Revision = d.uvarint()
			c.Classes = Class(d.uvarint())
			c.Paused = d.bool()
			c.Origin.Version = d.uvarint()
		case tagOrigin:
			if origin {
				return c, errors.New("two origin records")
			}
			origin = true
			c.Origin.NamespaceID, c.Origin.Digest = d.string(), d.string()
		case tagScript:
			c.Scripts = append(c.Scripts, ScriptDef{Name: d.string(), Source: d.string()})
		case tagTrigger:
			c.Triggers = append(c.Triggers, TriggerDef{Pattern: d.string(), Events: d.string(), Script: d.string(), Enabled: d.bool()})
		case tagWindow:
			c.Triggers = append(c.Triggers, TriggerDef{Pattern: d.string(), Events: d.string(), Script: d.string(), Enabled: d.bool(),
				Window: int64(d.uvarint())})
		case tagCron:
			c.Crons = append(c.Crons, CronDef{Name: d.string(), Schedule: d.string(), Script: d.string(), Enabled: d.bool(),
				Since: int64(d.uvarint()), LastRun: int64(d.uvarint())})
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
