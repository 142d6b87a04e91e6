// Package router decides which key patterns match a key. Patterns follow
// Valkey's glob rules exactly (stringmatchlen in the server's util.c,
// case-sensitive), byte by byte, and an Index answers for many patterns at a
// cost that grows with the key's length rather than with the number of
// patterns.
//
// gobwas/glob is not used: it negates with [!..] instead of [^..], adds {a,b}
// alternation and separators, matches runes instead of bytes and rejects
// classes such as [a-z0-9], so it cannot express Valkey's rules.
package router

// maxNesting mirrors the server's protection against abusive patterns: past
// this many nested '*' the server answers "no match", and so do we.
const maxNesting = 1000

// Match reports whether key matches the glob pattern exactly as Valkey's
// KEYS, SCAN MATCH and PSUBSCRIBE do. Quirks are kept on purpose: a non-empty
// pattern never matches the empty key, ranges compare bytes as signed chars,
// an unclosed '[' takes the rest of the pattern as its class, '!' does not
// negate and a trailing '\' is a literal backslash.
func Match(pattern, key string) bool {
	skipLonger := false
	return match(pattern, key, &skipLonger, 0)
}

func match(p, s string, skipLonger *bool, nesting int) bool {
	if nesting > maxNesting {
		return false
	}
	for len(p) > 0 && len(s) > 0 {
		switch p[0] {
		case '*':
			for len(p) >= 2 && p[1] == '*' {
				p = p[1:]
			}
			if len(p) == 1 {
				return true
			}
			for len(s) > 0 {
				if match(p[1:], s, skipLonger, nesting+1) {
					return true
				}
				// The rest of the pattern matched nowhere later in the
				// string, so an earlier '*' taking more cannot help.
				if *skipLonger {
					return false
				}
				s = s[1:]
			}
			*skipLonger = true
			return false
		case '?':
			s = s[1:]
			p = p[1:]
		case '[':
			var ok bool
			ok, p = matchClass(p[1:], s[0])
			if !ok {
				return false
			}
			s = s[1:]
		case '\\':
			if len(p) >= 2 {
				p = p[1:]
			}
			fallthrough
		default:
			if p[0] != s[0] {
				return false
			}
			s = s[1:]
			p = p[1:]
		}
		if len(s) == 0 {
			for len(p) > 0 && p[0] == '*' {
				p = p[1:]
			}
			break
		}
	}
	return len(p) == 0 && len(s) == 0
}

// matchClass matches c against the class whose body starts at p (just after
// '['), and returns the pattern after the class.
func matchClass(p string, c byte) (bool, string) {
	negate := len(p) > 0 && p[0] == '^'
	if negate {
		p = p[1:]
	}
	matched := false
	for {
		switch {
		case len(p) >= 2 && p[0] == '\\':
			if p[1] == c {
				matched = true
			}
			p = p[2:]
		case len(p) == 0:
			// Unclosed class: the rest of the pattern was its body.
			return matched != negate, p
		case p[0] == ']':
			return matched != negate, p[1:]
		case len(p) >= 3 && p[1] == '-':
			// The server compares plain chars, which are signed on the
			// platforms it ships for: bytes >= 0x80 sort below ASCII.
			lo, hi, v := int8(p[0]), int8(p[2]), int8(c)
			if lo > hi {
				lo, hi = hi, lo
			}
			if v >= lo && v <= hi {
				matched = true
			}
			p = p[3:]
		default:
			if p[0] == c {
				matched = true
			}
			p = p[1:]
		}
	}
}

// shape describes a pattern by its literal ends, parsed the way Match parses.
type shape struct {
	literal bool   // no wildcard: the pattern matches exactly the key prefix
	prefix  string // bytes every matching key starts with
	suffix  string // bytes every matching key ends with
	// starOnly: the only wildcard is one run of '*' between prefix and
	// suffix, so the two ends decide a match without running Match.
	starOnly bool
}

// analyse reads a pattern token by token with the parsing rules of Match.
func analyse(p string) shape {
	var s shape
	var run []byte // the current run of literal bytes
	wild, starRuns, others := false, 0, 0
	prevStar := false
	for len(p) > 0 {
		var lit byte
		var isLit bool
		switch p[0] {
		case '*':
			if !prevStar {
				starRuns++
			}
			prevStar = true
			p = p[1:]
		case '?':
			others++
			prevStar = false
			p = p[1:]
		case '[':
			others++
			prevStar = false
			_, p = matchClass(p[1:], 0)
		case '\\':
			if len(p) >= 2 {
				p = p[1:]
			}
			fallthrough
		default:
			lit, isLit = p[0], true
			prevStar = false
			p = p[1:]
		}
		if isLit {
			run = append(run, lit)
			continue
		}
		if !wild {
			s.prefix = string(run)
			wild = true
		}
		run = run[:0]
	}
	if !wild {
		s.literal = true
		s.prefix = string(run)
		return s
	}
	s.suffix = string(run)
	s.starOnly = others == 0 && starRuns == 1
	return s
}

// matchShape answers Match for literal and star-only shapes.
func (s *shape) matchShape(key string) bool {
	if s.literal {
		return key == s.prefix
	}
	n := len(s.prefix) + len(s.suffix)
	// A non-empty pattern never matches the empty key.
	return len(key) >= max(n, 1) && key[:len(s.prefix)] == s.prefix && key[len(key)-len(s.suffix):] == s.suffix
}
