package router

import "slices"

// Index maps glob patterns to values and finds the values whose pattern
// matches a key. A lookup walks the key once through a literal map, a radix
// tree of literal prefixes and one of reversed literal suffixes, then checks
// only the patterns found there plus those with no literal end at all
// ("*", "?x?", ...), which are few in practice.
//
// An Index is not safe for concurrent use.
type Index[V comparable] struct {
	exact  map[string][]*entry[V]
	ends   endPairs // first and last bytes of the exact keys: most keys skip the map
	prefix radix[V] // patterns whose literal prefix is at least as long as their suffix
	suffix radix[V] // the others with a literal suffix, stored reversed
	always []*entry[V]
	n      int
	filter filterCounts
}

type entry[V comparable] struct {
	pattern string
	shape   shape
	value   V
}

func (e *entry[V]) matches(key string) bool {
	if e.shape.literal || e.shape.starOnly {
		return e.shape.matchShape(key)
	}
	return Match(e.pattern, key)
}

// NewIndex returns an empty Index.
func NewIndex[V comparable]() *Index[V] {
	return &Index[V]{exact: make(map[string][]*entry[V])}
}

// Len returns the number of (pattern, value) pairs in the index.
func (ix *Index[V]) Len() int { return ix.n }

// Add indexes value under pattern. Adding the same pair twice makes Lookup
// return the value twice.
func (ix *Index[V]) Add(pattern string, value V) {
	e := &entry[V]{pattern: pattern, shape: analyse(pattern), value: value}
	switch s := &e.shape; {
	case s.literal:
		ix.exact[s.prefix] = append(ix.exact[s.prefix], e)
		ix.ends.add(s.prefix, 1)
	case s.prefix != "" && len(s.prefix) >= len(s.suffix):
		ix.prefix.insert(s.prefix, e)
	case s.suffix != "":
		ix.suffix.insert(reverse(s.suffix), e)
	default:
		ix.always = append(ix.always, e)
	}
	ix.n++
	ix.filter.add(&e.shape, 1)
}

// Remove drops one (pattern, value) pair and reports whether it was there.
func (ix *Index[V]) Remove(pattern string, value V) bool {
	s := analyse(pattern)
	var ok bool
	switch {
	case s.literal:
		var list []*entry[V]
		list, ok = removeEntry(ix.exact[s.prefix], pattern, value)
		if ok {
			ix.ends.add(s.prefix, -1)
		}
		if len(list) == 0 {
			delete(ix.exact, s.prefix)
		} else {
			ix.exact[s.prefix] = list
		}
	case s.prefix != "" && len(s.prefix) >= len(s.suffix):
		ok = ix.prefix.remove(s.prefix, pattern, value)
	case s.suffix != "":
		ok = ix.suffix.remove(reverse(s.suffix), pattern, value)
	default:
		ix.always, ok = removeEntry(ix.always, pattern, value)
	}
	if ok {
		ix.n--
		ix.filter.add(&s, -1)
	}
	return ok
}

// Filter returns the index's KeyFilter, kept up to date by Add and Remove,
// and a version that changes whenever the filter does. The caller must not
// change it.
func (ix *Index[V]) Filter() (*KeyFilter, uint64) { return &ix.filter.f, ix.filter.version }

// Lookup appends to dst the value of every pattern that matches key, in no
// particular order, and returns the extended slice.
func (ix *Index[V]) Lookup(key string, dst []V) []V {
	if ix.ends.has(key) {
		for _, e := range ix.exact[key] {
			dst = append(dst, e.value)
		}
	}
	dst = ix.prefix.collect(key, false, dst)
	dst = ix.suffix.collect(key, true, dst)
	for _, e := range ix.always {
		if e.matches(key) {
			dst = append(dst, e.value)
		}
	}
	return dst
}

// Any reports whether some pattern matches key, without collecting values.
func (ix *Index[V]) Any(key string) bool {
	if ix.ends.has(key) && len(ix.exact[key]) > 0 || ix.prefix.any(key, false) || ix.suffix.any(key, true) {
		return true
	}
	for _, e := range ix.always {
		if e.matches(key) {
			return true
		}
	}
	return false
}

// endPairs is a set of (first byte, last byte) pairs of strings, counted so
// that strings can leave it: one bit tells a lookup whether the exact map
// can hold its key, without hashing the key.
type endPairs struct {
	bits   [256 * 256 / 8]byte
	counts map[int]int
}

func pairOf(s string) int {
	if s == "" {
		return 0 // shares a pair with "\x00\x00": a false positive is harmless
	}
	return int(s[0])<<8 | int(s[len(s)-1])
}

func (p *endPairs) add(s string, delta int) {
	if p.counts == nil {
		p.counts = map[int]int{}
	}
	i := pairOf(s)
	n := p.counts[i] + delta
	if n == 0 {
		delete(p.counts, i)
		p.bits[i>>3] &^= 1 << (i & 7)
	} else {
		p.counts[i] = n
		p.bits[i>>3] |= 1 << (i & 7)
	}
}

func (p *endPairs) has(s string) bool {
	i := pairOf(s)
	return p.bits[i>>3]>>(i&7)&1 != 0
}

func removeEntry[V comparable](list []*entry[V], pattern string, value V) ([]*entry[V], bool) {
	for i, e := range list {
		if e.value == value && e.pattern == pattern {
			return slices.Delete(list, i, i+1), true
		}
	}
	return list, false
}

func reverse(s string) string {
	b := []byte(s)
	slices.Reverse(b)
	return string(b)
}

// radix is a compressed trie: every node's label is the part of the indexed
// string on the edge leading into it, and entries sit at the node where their
// string ends.
type radix[V comparable] struct {
	root node[V]
}

type node[V comparable] struct {
	label    string
	children []*node[V] // sorted by first label byte, which is unique
	firsts   []byte     // the children's first label bytes, searched without loading them
	entries  []*entry[V]
}

// child returns the child whose label starts with b, or nil. It runs at
// every node a lookup passes, so it searches the compact firsts, not the
// children themselves.
func (n *node[V]) child(b byte) *node[V] {
	lo, hi := 0, len(n.firsts)
	for lo < hi {
		mid := int(uint(lo+hi) >> 1)
		if n.firsts[mid] < b {
			lo = mid + 1
		} else {
			hi = mid
		}
	}
	if lo < len(n.firsts) && n.firsts[lo] == b {
		return n.children[lo]
	}
	return nil
}

// childIndex returns where the child starting with b is, or would go.
func (n *node[V]) childIndex(b byte) (int, *node[V]) {
	i, found := slices.BinarySearch(n.firsts, b)
	if found {
		return i, n.children[i]
	}
	return i, nil
}

func (t *radix[V]) insert(s string, e *entry[V]) {
	n := &t.root
	for len(s) > 0 {
		i, c := n.childIndex(s[0])
		if c == nil {
			n.children = slices.Insert(n.children, i, &node[V]{label: s, entries: []*entry[V]{e}})
			n.firsts = slices.Insert(n.firsts, i, s[0])
			return
		}
		common := commonPrefixLen(c.label, s)
		if common < len(c.label) {
			// mid starts with the same byte as c: n.firsts[i] holds.
			mid := &node[V]{label: c.label[:common], children: []*node[V]{c}, firsts: []byte{c.label[common]}}
			c.label = c.label[common:]
			n.children[i] = mid
			c = mid
		}
		n, s = c, s[common:]
	}
	n.entries = append(n.entries, e)
}

func (t *radix[V]) remove(s, pattern string, value V) bool {
	return removeFrom(&t.root, s, pattern, value)
}

// removeFrom removes the entry below n and prunes or merges the child it went
// through, so add/remove cycles do not leave empty chains behind.
func removeFrom[V comparable](n *node[V], s, pattern string, value V) bool {
	if len(s) == 0 {
		var ok bool
		n.entries, ok = removeEntry(n.entries, pattern, value)
		return ok
	}
	i, c := n.childIndex(s[0])
	if c == nil || len(s) < len(c.label) || s[:len(c.label)] != c.label {
		return false
	}
	if !removeFrom(c, s[len(c.label):], pattern, value) {
		return false
	}
	if len(c.entries) == 0 {
		switch len(c.children) {
		case 0:
			n.children = slices.Delete(n.children, i, i+1)
			n.firsts = slices.Delete(n.firsts, i, i+1)
		case 1:
			only := c.children[0]
			only.label = c.label + only.label
			n.children[i] = only
		}
	}
	return true
}

// collect appends the values of the entries on key's path that match key.
// With fromEnd the tree holds reversed strings and key is read backwards.
func (t *radix[V]) collect(key string, fromEnd bool, dst []V) []V {
	n := &t.root
	rest := len(key) // bytes of key not yet consumed
	for {
		for _, e := range n.entries {
			if e.matches(key) {
				dst = append(dst, e.value)
			}
		}
		if rest == 0 {
			return dst
		}
		c := n.next(key, rest, fromEnd)
		if c == nil {
			return dst
		}
		n, rest = c, rest-len(c.label)
	}
}

func (t *radix[V]) any(key string, fromEnd bool) bool {
	n := &t.root
	rest := len(key)
	for {
		for _, e := range n.entries {
			if e.matches(key) {
				return true
			}
		}
		if rest == 0 {
			return false
		}
		c := n.next(key, rest, fromEnd)
		if c == nil {
			return false
		}
		n, rest = c, rest-len(c.label)
	}
}

// next returns the child whose label continues key at the first unconsumed
// byte (or the last, with fromEnd), or nil.
func (n *node[V]) next(key string, rest int, fromEnd bool) *node[V] {
	pos := len(key) - rest
	if fromEnd {
		c := n.child(key[rest-1])
		if c == nil || len(c.label) > rest {
			return nil
		}
		for j := 1; j < len(c.label); j++ {
			if c.label[j] != key[rest-1-j] {
				return nil
			}
		}
		return c
	}
	c := n.child(key[pos])
	if c == nil || len(c.label) > rest || key[pos:pos+len(c.label)] != c.label {
		return nil
	}
	return c
}

func commonPrefixLen(a, b string) int {
	n := min(len(a), len(b))
	for i := 0; i < n; i++ {
		if a[i] != b[i] {
			return i
		}
	}
	return n
}
