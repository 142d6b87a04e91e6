package router

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
)

// vector is one (pattern, key, match) row recorded from a real valkey-server.
type vector struct {
	pattern, key string
	want         bool
}

// unescapeVector decodes the \xHH escapes of the vectors file; a literal
// backslash is itself written \x5c, so every backslash starts an escape.
func unescapeVector(s string) (string, error) {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '\\' {
			b.WriteByte(s[i])
			continue
		}
		if i+4 > len(s) || s[i+1] != 'x' {
			return "", fmt.Errorf("bad escape at %d in %q", i, s)
		}
		v, err := strconv.ParseUint(s[i+2:i+4], 16, 8)
		if err != nil {
			return "", fmt.Errorf("bad escape at %d in %q: %w", i, s, err)
		}
		b.WriteByte(byte(v))
		i += 3
	}
	return b.String(), nil
}

func loadVectors(tb testing.TB) []vector {
	tb.Helper()
	f, err := os.Open("../testdata/glob-vectors.tsv")
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	var out []vector
	sc := bufio.NewScanner(f)
	for line := 1; sc.Scan(); line++ {
		fields := strings.Split(sc.Text(), "\t")
		if len(fields) != 3 || (fields[2] != "0" && fields[2] != "1") {
			tb.Fatalf("glob-vectors.tsv:%d: want pattern<TAB>key<TAB>0|1, got %q", line, sc.Text())
		}
		p, err := unescapeVector(fields[0])
		if err != nil {
			tb.Fatalf("glob-vectors.tsv:%d: %v", line, err)
		}
		k, err := unescapeVector(fields[1])
		if err != nil {
			tb.Fatalf("glob-vectors.tsv:%d: %v", line, err)
		}
		out = append(out, vector{p, k, fields[2] == "1"})
	}
	if err := sc.Err(); err != nil {
		tb.Fatal(err)
	}
	return out
}

// Ensure Match agrees with valkey-server on every recorded vector.
func TestMatchVectors(t *testing.T) {
	vectors := loadVectors(t)
	if got, want := len(vectors), 113000; got != want {
		t.Fatalf("vectors: got %d rows, want %d", got, want)
	}
	wrong := 0
	for _, v := range vectors {
		if got := Match(v.pattern, v.key); got != v.want {
			wrong++
			if wrong <= 20 {
				t.Errorf("Match(%q, %q) = %v, valkey says %v", v.pattern, v.key, got, v.want)
			}
		}
	}
	if wrong > 0 {
		t.Fatalf("%d of %d vectors disagree with valkey-server", wrong, len(vectors))
	}
}

// Ensure an index holding every vector pattern finds exactly the matches the
// server recorded.
func TestIndexVectors(t *testing.T) {
	vectors := loadVectors(t)
	ix := NewIndex[string]()
	seen := map[string]bool{}
	for _, v := range vectors {
		if !seen[v.pattern] {
			seen[v.pattern] = true
			ix.Add(v.pattern, v.pattern)
		}
	}
	var buf []string
	for _, v := range vectors {
		buf = ix.Lookup(v.key, buf[:0])
		found := false
		for _, p := range buf {
			if p == v.pattern {
				found = true
			}
		}
		if found != v.want {
			t.Fatalf("Lookup(%q) found %q = %v, valkey says %v", v.key, v.pattern, found, v.want)
		}
	}
}

// Ensure the quirks of the server's matcher are kept, each by name.
func TestMatchQuirks(t *testing.T) {
	cases := []struct {
		name, pattern, key string
		want               bool
	}{
		{"star does not match the empty key", "*", "", false},
		{"empty pattern matches the empty key", "", "", true},
		{"empty pattern matches nothing else", "", "a", false},
		{"double star is one star", "a**b", "axyb", true},
		{"star crosses slashes", "a*b", "a/x/b", true},
		{"trailing stars after the key ends", "ab***", "ab", true},
		{"question mark is one byte", "?", "\xe4", true},
		{"question mark is not two bytes", "?", "ab", false},
		{"caret negates", "[^a]", "b", true},
		{"caret negates a match", "[^a]", "a", false},
		{"bang is literal", "[!a]", "!", true},
		{"bang does not negate", "[!a]", "b", false},
		{"reversed range is swapped", "[z-a]", "m", true},
		{"escape inside class", `[\]]`, "]", true},
		{"escaped star is literal", `a\*`, "a*", true},
		{"escaped star is not a wildcard", `a\*`, "ab", false},
		{"trailing backslash is literal", `a\`, `a\`, true},
		{"unclosed class takes the rest", "[ab", "b", true},
		{"unclosed class is one byte", "[ab", "ab", false},
		{"lone bracket matches nothing", "[", "[", false},
		{"unclosed negation matches any byte", "[^", "x", true},
		{"range to ] continues the class", "[a-]x]", "x", true},
		{"empty class matches nothing", "[]a]", "]a]", false},
		{"no alternation", "{a,b}", "a", false},
		{"braces are literal", "{a,b}", "{a,b}", true},
		// [a-\xff] is the signed range [-1, 97]: it holds 'A' and \xff but
		// neither 'b' nor \xe4 (-28).
		{"signed range holds ASCII below its end", "[a-\xff]", "A", true},
		{"signed range holds its high end", "[a-\xff]", "\xff", true},
		{"signed range drops ASCII above its end", "[a-\xff]", "b", false},
		{"signed range drops lower high bytes", "[a-\xff]", "\xe4", false},
		{"nesting past 1000 stars gives up", strings.Repeat("*a", 1001), strings.Repeat("a", 1001), false},
		{"nesting at 1000 stars still matches", strings.Repeat("*a", 1000), strings.Repeat("a", 1000), true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := Match(c.pattern, c.key); got != c.want {
				t.Fatalf("Match(%q, %q) = %v, want %v", c.pattern, c.key, got, c.want)
			}
		})
	}
}

// Ensure the literal and star-only shortcuts answer exactly like Match.
func TestShapeShortcuts(t *testing.T) {
	patterns := []string{"", "a", "abc", `a\*b`, "*", "**", "a*", "*a", "a*b", "ab*ba", "a**b", `\**\*`, "order:*", "*:done"}
	keys := []string{"", "a", "b", "ab", "aba", "abba", "ababa", "a*b", "axb", "*", "**", "order:1", "order:", "x:done", ":done"}
	for _, p := range patterns {
		s := analyse(p)
		if !s.literal && !s.starOnly {
			t.Fatalf("analyse(%q): want a literal or star-only shape, got %+v", p, s)
		}
		for _, k := range keys {
			if got, want := s.matchShape(k), Match(p, k); got != want {
				t.Errorf("shape of %q on %q = %v, Match says %v", p, k, got, want)
			}
		}
	}
}

// Ensure analyse finds the literal ends the way Match parses.
func TestAnalyse(t *testing.T) {
	cases := []struct {
		pattern, prefix, suffix string
		literal, starOnly       bool
	}{
		{"order:*", "order:", "", false, true},
		{"*:done", "", ":done", false, true},
		{`a\*b`, "a*b", "", true, false},
		{"a?b*c", "a", "c", false, false},
		{"[ab]x", "", "x", false, false},
		{"x[ab", "x", "", false, false},
		{`x\`, `x\`, "", true, false},
		{"a*b*c", "a", "c", false, false},
	}
	for _, c := range cases {
		s := analyse(c.pattern)
		if s.prefix != c.prefix || s.suffix != c.suffix || s.literal != c.literal || s.starOnly != c.starOnly {
			t.Errorf("analyse(%q) = %+v, want prefix %q suffix %q literal %v starOnly %v",
				c.pattern, s, c.prefix, c.suffix, c.literal, c.starOnly)
		}
	}
}
