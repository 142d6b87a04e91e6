package router

// KeyFilter summarises an Index in a few bitmaps that answer "can any
// pattern match this key?" from the key's first and last two bytes, with no
// false negatives. It is small and flat so that the module's C shim can
// keep a copy and drop most events for keys no trigger wants without a call
// into Go.
//
// Each pattern sets one bit: its literal prefix's first two bytes, or first
// byte if the prefix is one byte long; else its literal suffix's last two
// bytes, or last byte; a pattern with neither ("*", "?x*", "[ab]*") makes
// Any true.
type KeyFilter struct {
	Any    bool
	First1 [256 / 8]byte       // by key[0]
	Last1  [256 / 8]byte       // by key[len-1]
	First2 [256 * 256 / 8]byte // by key[0]<<8 | key[1]
	Last2  [256 * 256 / 8]byte // by key[len-2]<<8 | key[len-1]
}

// MayMatch reports whether some pattern of the filter could match key.
func (f *KeyFilter) MayMatch(key string) bool {
	n := len(key)
	switch {
	case f.Any:
		return true
	case n == 0:
		return false
	case bit(f.First1[:], int(key[0])) || bit(f.Last1[:], int(key[n-1])):
		return true
	}
	return n >= 2 && (bit(f.First2[:], int(key[0])<<8|int(key[1])) || bit(f.Last2[:], int(key[n-2])<<8|int(key[n-1])))
}

func bit(m []byte, i int) bool { return m[i>>3]>>(i&7)&1 != 0 }

// filterCounts counts the patterns behind each bit of a KeyFilter, so that
// removing a pattern clears a bit only when it was the last one there.
type filterCounts struct {
	f       KeyFilter
	any     int
	counts  map[int]int // by map<<16 | bit, see slot
	version uint64      // bumped whenever f changes
}

// The bitmaps of a KeyFilter, as slot numbers them.
const (
	mapFirst1 = iota
	mapLast1
	mapFirst2
	mapLast2
)

// slot returns the bit a pattern of shape s sets, as map<<16 | bit, or -1
// when it sets Any.
func slot(s *shape) int {
	p, x := s.prefix, s.suffix
	switch {
	case len(p) >= 2:
		return mapFirst2<<16 | int(p[0])<<8 | int(p[1])
	case len(p) == 1:
		return mapFirst1<<16 | int(p[0])
	case s.literal:
		return -1 // the empty pattern
	case len(x) >= 2:
		return mapLast2<<16 | int(x[len(x)-2])<<8 | int(x[len(x)-1])
	case len(x) == 1:
		return mapLast1<<16 | int(x[0])
	}
	return -1
}

// add counts (delta 1) or uncounts (-1) a pattern of shape s.
func (c *filterCounts) add(s *shape, delta int) {
	k := slot(s)
	if k < 0 {
		c.any += delta
		if any := c.any > 0; any != c.f.Any {
			c.f.Any = any
			c.version++
		}
		return
	}
	if c.counts == nil {
		c.counts = map[int]int{}
	}
	before := c.counts[k]
	if after := before + delta; after == 0 {
		delete(c.counts, k)
	} else {
		c.counts[k] = after
	}
	if (before == 0) == (before+delta == 0) {
		return // the bit stays as it was
	}
	var m []byte
	switch k >> 16 {
	case mapFirst1:
		m = c.f.First1[:]
	case mapLast1:
		m = c.f.Last1[:]
	case mapFirst2:
		m = c.f.First2[:]
	default:
		m = c.f.Last2[:]
	}
	i := k & 0xffff
	m[i>>3] ^= 1 << (i & 7) // set on the first pattern, clear after the last
	c.version++
}
