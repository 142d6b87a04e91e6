package scripting

import "strings"

// Lua 5.1 patterns (string.find, match, gmatch, gsub), matched by our own
// backtracking matcher instead of gopher-lua's: that one recurses once per
// subject byte, never looks at the watchdog, and held the server for
// minutes on patterns such as '^%s*(.-)%s*$' over a long value. This one
// follows the Lua 5.1 reference manual (section 5.4.1), recurses only once
// per pattern item, as Lua's own matcher does, refuses patterns that would
// recurse deeper than maxMatchDepth, and asks stop every few thousand steps
// whether the run was cancelled.

// Limits of one match.
const (
	maxCaptures   = 32  // LUA_MAXCAPTURES
	maxMatchDepth = 200 // Lua 5.2's MAXCCALLS; Lua 5.1 had no limit
	stopEvery     = 4096
)

const (
	capUnfinished = -1
	capPosition   = -2
)

// patternError is raised (as a panic, recovered by the library function) for
// a malformed pattern or a stopped run; msg is the Lua error message.
type patternError struct{ msg string }

// matcher matches one pattern against one subject.
type matcher struct {
	src, pat string
	level    int // captures in use
	capture  [maxCaptures]struct{ init, len int }
	depth    int
	steps    int
	stop     func() bool // reports whether the run was stopped
}

func newMatcher(src, pat string, stop func() bool) *matcher {
	// Lua 5.1 reads patterns as C strings: a zero byte ends them (%z
	// matches one).
	if i := strings.IndexByte(pat, 0); i >= 0 {
		pat = pat[:i]
	}
	return &matcher{src: src, pat: pat, stop: stop}
}

func (m *matcher) fail(msg string) { panic(patternError{msg}) }

// step counts work and gives up once the watchdog stopped the run.
func (m *matcher) step() {
	m.steps++
	if m.steps%stopEvery == 0 && m.stop != nil && m.stop() {
		m.fail(errStoppedMessage)
	}
}

// errStoppedMessage ends a match the watchdog cancelled; the run's own
// error (timeout, memory, budget) is what the caller reports.
const errStoppedMessage = "pattern matching stopped: the script was stopped"

// reset prepares a new attempt at another position.
func (m *matcher) reset() { m.level, m.depth = 0, 0 }

// patAt returns the pattern byte at p, or 0 past its end (the C string's
// terminator, which the reference algorithm tests for).
func (m *matcher) patAt(p int) byte {
	if p < len(m.pat) {
		return m.pat[p]
	}
	return 0
}

// classEnd returns the index just past the single-character class at p.
func (m *matcher) classEnd(p int) int {
	c := m.patAt(p)
	p++
	switch c {
	case '%':
		if p >= len(m.pat) {
			m.fail("malformed pattern (ends with '%')")
		}
		return p + 1
	case '[':
		if m.patAt(p) == '^' {
			p++
		}
		for { // the first byte of a set is in it, even ']'
			if p >= len(m.pat) {
				m.fail("malformed pattern (missing ']')")
			}
			c := m.pat[p]
			p++
			if c == '%' && p < len(m.pat) {
				p++
			}
			if m.patAt(p) == ']' {
				return p + 1
			}
		}
	}
	return p
}

// classMatches reports whether c is in the class %cl (C locale).
func classMatches(c, cl byte) bool {
	var res bool
	switch cl | 0x20 { // lower case
	case 'a':
		res = isAlpha(c)
	case 'c':
		res = c < 32 || c == 127
	case 'd':
		res = '0' <= c && c <= '9'
	case 'l':
		res = 'a' <= c && c <= 'z'
	case 'p':
		res = isPunct(c)
	case 's':
		res = c == ' ' || '\t' <= c && c <= '\r'
	case 'u':
		res = 'A' <= c && c <= 'Z'
	case 'w':
		res = isAlpha(c) || '0' <= c && c <= '9'
	case 'x':
		res = '0' <= c && c <= '9' || 'a' <= c|0x20 && c|0x20 <= 'f'
	case 'z':
		res = c == 0
	default:
		return cl == c
	}
	if 'A' <= cl && cl <= 'Z' {
		return !res
	}
	return res
}

func isAlpha(c byte) bool { return 'a' <= c|0x20 && c|0x20 <= 'z' }

func isPunct(c byte) bool {
	return '!' <= c && c <= '~' && !isAlpha(c) && !('0' <= c && c <= '9')
}

// setMatches reports whether c is in the set [...] from p (at '[') to ec
// (at its closing ']').
func (m *matcher) setMatches(c byte, p, ec int) bool {
	sig := true
	if m.pat[p+1] == '^' {
		sig = false
		p++
	}
	for p++; p < ec; p++ {
		switch {
		case m.pat[p] == '%':
			p++
			if classMatches(c, m.pat[p]) {
				return sig
			}
		case m.patAt(p+1) == '-' && p+2 < ec:
			p += 2
			if m.pat[p-2] <= c && c <= m.pat[p] {
				return sig
			}
		case m.pat[p] == c:
			return sig
		}
	}
	return !sig
}

// singleMatches reports whether the subject byte at s matches the class
// from p to ep.
func (m *matcher) singleMatches(s, p, ep int) bool {
	if s >= len(m.src) {
		return false
	}
	c := m.src[s]
	switch m.pat[p] {
	case '.':
		return true
	case '%':
		return classMatches(c, m.pat[p+1])
	case '[':
		return m.setMatches(c, p, ep-1)
	}
	return m.pat[p] == c
}

// match matches the pattern from p at subject position s and returns the
// end of the match, or -1.
func (m *matcher) match(s, p int) int {
	m.depth++
	if m.depth > maxMatchDepth {
		m.fail("pattern too complex")
	}
	defer func() { m.depth-- }()
	for {
		m.step()
		if p >= len(m.pat) {
			return s
		}
		switch m.pat[p] {
		case '(':
			if m.patAt(p+1) == ')' {
				return m.startCapture(s, p+2, capPosition)
			}
			return m.startCapture(s, p+1, capUnfinished)
		case ')':
			return m.endCapture(s, p+1)
		case '%':
			switch c := m.patAt(p + 1); {
			case c == 'b':
				if s = m.matchBalance(s, p+2); s == -1 {
					return -1
				}
				p += 4
				continue
			case c == 'f':
				p += 2
				if m.patAt(p) != '[' {
					m.fail("missing '[' after '%f' in pattern")
				}
				ep := m.classEnd(p)
				var prev, cur byte
				if s > 0 {
					prev = m.src[s-1]
				}
				if s < len(m.src) {
					cur = m.src[s]
				}
				if m.setMatches(prev, p, ep-1) || !m.setMatches(cur, p, ep-1) {
					return -1
				}
				p = ep
				continue
			case '0' <= c && c <= '9':
				if s = m.matchCapture(s, c); s == -1 {
					return -1
				}
				p += 2
				continue
			}
		case '$':
			if p+1 == len(m.pat) {
				if s == len(m.src) {
					return s
				}
				return -1
			}
		}
		ep := m.classEnd(p)
		ok := m.singleMatches(s, p, ep)
		switch m.patAt(ep) {
		case '?':
			if ok {
				if res := m.match(s+1, ep+1); res != -1 {
					return res
				}
			}
			p = ep + 1
			continue
		case '*':
			return m.maxExpand(s, p, ep)
		case '+':
			if !ok {
				return -1
			}
			return m.maxExpand(s+1, p, ep)
		case '-':
			return m.minExpand(s, p, ep)
		}
		if !ok {
			return -1
		}
		s, p = s+1, ep
	}
}

func (m *matcher) maxExpand(s, p, ep int) int {
	i := 0
	for m.singleMatches(s+i, p, ep) {
		m.step()
		i++
	}
	for ; i >= 0; i-- {
		if res := m.match(s+i, ep+1); res != -1 {
			return res
		}
	}
	return -1
}

func (m *matcher) minExpand(s, p, ep int) int {
	for {
		if res := m.match(s, ep+1); res != -1 {
			return res
		}
		if !m.singleMatches(s, p, ep) {
			return -1
		}
		s++
	}
}

func (m *matcher) startCapture(s, p, what int) int {
	if m.level >= maxCaptures {
		m.fail("too many captures")
	}
	m.capture[m.level].init, m.capture[m.level].len = s, what
	m.level++
	res := m.match(s, p)
	if res == -1 {
		m.level--
	}
	return res
}

func (m *matcher) endCapture(s, p int) int {
	l := -1
	for i := m.level - 1; i >= 0; i-- {
		if m.capture[i].len == capUnfinished {
			l = i
			break
		}
	}
	if l < 0 {
		m.fail("invalid pattern capture")
	}
	m.capture[l].len = s - m.capture[l].init
	res := m.match(s, p)
	if res == -1 {
		m.capture[l].len = capUnfinished
	}
	return res
}

func (m *matcher) matchBalance(s, p int) int {
	if p+1 >= len(m.pat) {
		m.fail("unbalanced pattern")
	}
	if s >= len(m.src) || m.src[s] != m.pat[p] {
		return -1
	}
	open, close, depth := m.pat[p], m.pat[p+1], 1
	for s++; s < len(m.src); s++ {
		m.step()
		switch m.src[s] {
		case close:
			if depth--; depth == 0 {
				return s + 1
			}
		case open:
			depth++
		}
	}
	return -1
}

func (m *matcher) matchCapture(s int, c byte) int {
	l := int(c) - '1'
	if l < 0 || l >= m.level || m.capture[l].len == capUnfinished {
		m.fail("invalid capture index")
	}
	n := m.capture[l].len
	if len(m.src)-s >= n && m.src[m.capture[l].init:m.capture[l].init+n] == m.src[s:s+n] {
		return s + n
	}
	return -1
}

// captureValue is capture i of a match from s to e: a string, or a
// position (1-based) for (). With no captures, capture 0 is the match.
type captureValue struct {
	str   string
	pos   int
	isPos bool
}

func (m *matcher) captureAt(i, s, e int) captureValue {
	if i >= m.level {
		if i != 0 {
			m.fail("invalid capture index")
		}
		return captureValue{str: m.src[s:e]}
	}
	c := m.capture[i]
	switch c.len {
	case capUnfinished:
		m.fail("unfinished capture")
	case capPosition:
		return captureValue{pos: c.init + 1, isPos: true}
	}
	return captureValue{str: m.src[c.init : c.init+c.len]}
}

// patternSpecials are the bytes that make a pattern more than plain text.
const patternSpecials = "^$*+?.([%-"

// hasSpecials reports whether pat (up to a zero byte, as Lua 5.1 reads it)
// needs the matcher.
func hasSpecials(pat string) bool {
	if i := strings.IndexByte(pat, 0); i >= 0 {
		pat = pat[:i]
	}
	return strings.ContainsAny(pat, patternSpecials)
}
