package module

import (
	"strconv"
	"strings"
)

// SlotCount is the number of hash slots of a Valkey cluster.
const SlotCount = 16384

// KeySlot returns the hash slot of key as a Valkey cluster computes it:
// CRC16 (XMODEM) of the key, or of the part between the first '{' and the
// next '}' when that part is not empty.
func KeySlot(key string) int {
	if i := strings.IndexByte(key, '{'); i >= 0 {
		if j := strings.IndexByte(key[i+1:], '}'); j > 0 {
			key = key[i+1 : i+1+j]
		}
	}
	return int(crc16(key) % SlotCount)
}

func crc16(s string) uint16 {
	var crc uint16
	for i := 0; i < len(s); i++ {
		crc ^= uint16(s[i]) << 8
		for range 8 {
			if crc&0x8000 != 0 {
				crc = crc<<1 ^ 0x1021
			} else {
				crc <<= 1
			}
		}
	}
	return crc
}

// KeyRef is a key argument of a command: its position in the arguments and
// whether the command writes it.
type KeyRef struct {
	Pos   int
	Write bool
}

// checkSlots refuses a command that reads or writes a key of another hash
// slot than the triggering key: a call from a module is not redirected, so
// the key would be read or written on this node while it belongs to
// another, or moves there.
func checkSlots(args []string, keys []KeyRef, trigger string, slot int) string {
	for _, k := range keys {
		if k.Pos <= 0 || k.Pos >= len(args) {
			continue
		}
		if s := KeySlot(args[k.Pos]); s != slot {
			access := "read"
			if k.Write {
				access = "write"
			}
			return "ERR cross-slot " + access + " refused: " + quoteKey(args[k.Pos]) + " hashes to slot " + strconv.Itoa(s) +
				" but the triggering key " + quoteKey(trigger) + " to slot " + strconv.Itoa(slot) +
				"; keep them together with a hash tag, e.g. {user42}:order and {user42}:points"
		}
	}
	return ""
}
