package router

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
)

// bruteForce is what the index must equal: every pattern checked with Match.
func bruteForce(patterns []string, key string) []string {
	var out []string
	for _, p := range patterns {
		if Match(p, key) {
			out = append(out, p)
		}
	}
	slices.Sort(out)
	return out
}

func lookupSorted(ix *Index[string], key string) []string {
	got := ix.Lookup(key, nil)
	slices.Sort(got)
	return got
}

// checkIndex fails when the index disagrees with brute force on key, or
// when Any disagrees with Lookup.
func checkIndex(t *testing.T, ix *Index[string], patterns []string, key string) {
	t.Helper()
	got, want := lookupSorted(ix, key), bruteForce(patterns, key)
	if !slices.Equal(got, want) {
		t.Fatalf("Lookup(%q) = %q, brute force over %q = %q", key, got, patterns, want)
	}
	if any := ix.Any(key); any != (len(want) > 0) {
		t.Fatalf("Any(%q) = %v, brute force found %q", key, any, want)
	}
	f, _ := ix.Filter()
	if len(want) > 0 && !f.MayMatch(key) {
		t.Fatalf("the filter drops %q, which %q match", key, want)
	}
	// Add and Remove keep the filter as a fresh index over the same
	// patterns would have it.
	fresh := NewIndex[string]()
	for _, p := range patterns {
		fresh.Add(p, p)
	}
	if ff, _ := fresh.Filter(); *ff != *f {
		t.Fatalf("the filter after adds and removes differs from a fresh one over %q", patterns)
	}
}

// Ensure the key filter drops keys no pattern's literal ends allow, and that
// its version moves only when it changes.
func TestKeyFilter(t *testing.T) {
	ix := NewIndex[string]()
	f, v0 := ix.Filter()
	if f.MayMatch("key:1") {
		t.Fatal("an empty filter lets a key through")
	}
	ix.Add("nomatch:1:*", "nomatch:1:*")
	if _, v1 := ix.Filter(); v1 == v0 {
		t.Fatal("a new bit did not change the version")
	}
	_, v1 := ix.Filter()
	ix.Add("nomatch:2:*", "nomatch:2:*") // the same bit
	if _, v2 := ix.Filter(); v2 != v1 {
		t.Fatal("the version changed with the filter unchanged")
	}
	patterns := []string{"nomatch:1:*", "nomatch:2:*", "*:done", "x", "*s"}
	for _, p := range patterns[2:] {
		ix.Add(p, p)
	}
	for key, want := range map[string]bool{
		"key:1": false, "nomatch:7": true, "no": true, "order:done": true, "x": true, "xy": true, "yx": false,
		"keys": true, "": false, "n": false,
	} {
		if got := f.MayMatch(key); got != want {
			t.Errorf("MayMatch(%q) = %v, want %v", key, got, want)
		}
	}
	ix.Add("[nk]*", "[nk]*")
	if !f.MayMatch("key:1") {
		t.Error("a pattern with no literal end must let every key through")
	}
	ix.Remove("[nk]*", "[nk]*")
	if f.MayMatch("key:1") {
		t.Error("removing the last pattern with no literal end must clear Any")
	}
	for _, p := range patterns {
		ix.Remove(p, p)
	}
	if *f != (KeyFilter{}) {
		t.Error("the filter of an emptied index is not empty")
	}
}

// Ensure add, lookup and remove keep the index equal to brute force,
// including after removals that prune and merge radix nodes.
func TestIndexAddRemove(t *testing.T) {
	patterns := []string{
		"order:*", "order:1*", "order:10*", "order:100", "*:done", "*done",
		"*", "?", "a?c", "[ab]*", "user:*:cart", "user:*", "", `lit\*`,
	}
	keys := []string{"", "order:", "order:1", "order:100", "order:1001", "x:done", "done", "a", "abc",
		"user:7:cart", "user:7", "lit*", "zz"}
	ix := NewIndex[string]()
	for _, p := range patterns {
		ix.Add(p, p)
	}
	if got, want := ix.Len(), len(patterns); got != want {
		t.Fatalf("Len() = %d, want %d", got, want)
	}
	for _, k := range keys {
		checkIndex(t, ix, patterns, k)
	}
	for len(patterns) > 0 {
		p := patterns[0]
		if !ix.Remove(p, p) {
			t.Fatalf("Remove(%q) = false, want true", p)
		}
		if ix.Remove(p, p) {
			t.Fatalf("second Remove(%q) = true, want false", p)
		}
		patterns = patterns[1:]
		for _, k := range keys {
			checkIndex(t, ix, patterns, k)
		}
	}
	if ix.Len() != 0 || len(ix.prefix.root.children) != 0 || len(ix.suffix.root.children) != 0 || len(ix.exact) != 0 {
		t.Fatalf("empty index keeps structure: len %d, prefix children %d, suffix children %d, exact %d",
			ix.Len(), len(ix.prefix.root.children), len(ix.suffix.root.children), len(ix.exact))
	}
}

// Ensure a value is removed only with its own pattern.
func TestIndexRemoveNeedsPattern(t *testing.T) {
	ix := NewIndex[int]()
	ix.Add("a*", 1)
	ix.Add("ab*", 2)
	if ix.Remove("ab*", 1) {
		t.Fatal(`Remove("ab*", 1) removed a value added under "a*"`)
	}
	if got := ix.Lookup("abc", nil); len(got) != 2 {
		t.Fatalf(`Lookup("abc") = %v, want both values`, got)
	}
}

// randomPattern draws from a small alphabet so that patterns and keys meet.
func randomPattern(r *rand.Rand) string {
	const atoms = "ab:*?[]^-\\"
	n := r.IntN(8)
	var b strings.Builder
	for range n {
		b.WriteByte(atoms[r.IntN(len(atoms))])
	}
	return b.String()
}

func randomKey(r *rand.Rand) string {
	const bytes = "ab:-]\\*\xe4"
	n := r.IntN(7)
	var b strings.Builder
	for range n {
		b.WriteByte(bytes[r.IntN(len(bytes))])
	}
	return b.String()
}

// Ensure the index equals brute force over many random pattern sets.
func TestIndexRandom(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for round := 0; round < 300; round++ {
		ix := NewIndex[string]()
		var patterns []string
		for range 1 + r.IntN(40) {
			p := randomPattern(r)
			if slices.Contains(patterns, p) {
				continue
			}
			patterns = append(patterns, p)
			ix.Add(p, p)
		}
		for range 10 {
			i := r.IntN(len(patterns))
			ix.Remove(patterns[i], patterns[i])
			patterns = slices.Delete(patterns, i, i+1)
			if len(patterns) == 0 {
				break
			}
		}
		for range 30 {
			checkIndex(t, ix, patterns, randomKey(r))
		}
	}
}

// FuzzIndex compares index lookups with checking every pattern. Patterns
// are the input's lines; bit i of removeMask removes the i-th pattern again.
func FuzzIndex(f *testing.F) {
	f.Add("order:*\n*:done\n*\nuser:*:cart", "order:1:done", uint64(0))
	f.Add("a*b\n[ab]*\n?\n\\*\nab", "ab", uint64(5))
	f.Add("x[a-\xff]\n[^\n[", "x\xff", uint64(2))
	f.Fuzz(func(t *testing.T, lines, key string, removeMask uint64) {
		ix := NewIndex[string]()
		var patterns []string
		for _, p := range strings.Split(lines, "\n") {
			if strings.Count(p, "*") > 100 || slices.Contains(patterns, p) {
				continue
			}
			patterns = append(patterns, p)
			ix.Add(p, p)
		}
		var kept []string
		for i, p := range patterns {
			if i < 64 && removeMask&(1<<i) != 0 {
				if !ix.Remove(p, p) {
					t.Fatalf("Remove(%q) = false after Add", p)
				}
				continue
			}
			kept = append(kept, p)
		}
		checkIndex(t, ix, kept, key)
		for i := 0; i <= len(key); i++ {
			checkIndex(t, ix, kept, key[:i])
		}
	})
}

// refMatch is an independent reference for Match: the pattern is parsed into
// tokens, then matched by dynamic programming instead of backtracking.
func refMatch(pattern, key string) bool {
	if key == "" {
		return pattern == ""
	}
	type token struct {
		star, any bool
		class     func(byte) bool
		lit       byte
	}
	var toks []token
	for i := 0; i < len(pattern); {
		switch c := pattern[i]; {
		case c == '*':
			toks = append(toks, token{star: true})
			i++
		case c == '?':
			toks = append(toks, token{any: true})
			i++
		case c == '[':
			i++
			neg := i < len(pattern) && pattern[i] == '^'
			if neg {
				i++
			}
			type rng struct{ lo, hi int8 }
			var set []rng
			for i < len(pattern) && pattern[i] != ']' {
				switch {
				case pattern[i] == '\\' && i+1 < len(pattern):
					set = append(set, rng{int8(pattern[i+1]), int8(pattern[i+1])})
					i += 2
				case i+2 < len(pattern) && pattern[i+1] == '-':
					lo, hi := int8(pattern[i]), int8(pattern[i+2])
					set = append(set, rng{min(lo, hi), max(lo, hi)})
					i += 3
				default:
					set = append(set, rng{int8(pattern[i]), int8(pattern[i])})
					i++
				}
			}
			i++ // past ']' (or past the end when unclosed)
			toks = append(toks, token{class: func(b byte) bool {
				for _, r := range set {
					if int8(b) >= r.lo && int8(b) <= r.hi {
						return !neg
					}
				}
				return neg
			}})
		case c == '\\' && i+1 < len(pattern):
			toks = append(toks, token{lit: pattern[i+1]})
			i += 2
		default:
			toks = append(toks, token{lit: c})
			i++
		}
	}
	// ok[j] after step i: the first i key bytes can be matched by toks[:j].
	ok := make([]bool, len(toks)+1)
	ok[0] = true
	for j, tk := range toks {
		ok[j+1] = ok[j] && tk.star
	}
	for i := 0; i < len(key); i++ {
		next := make([]bool, len(toks)+1)
		for j, tk := range toks {
			switch {
			case tk.star:
				next[j+1] = next[j] || ok[j+1]
			case tk.any:
				next[j+1] = ok[j]
			case tk.class != nil:
				next[j+1] = ok[j] && tk.class(key[i])
			default:
				next[j+1] = ok[j] && tk.lit == key[i]
			}
		}
		ok = next
	}
	return ok[len(toks)]
}

// FuzzMatch compares Match with the dynamic-programming reference.
func FuzzMatch(f *testing.F) {
	f.Add("a*b?[^c-a]\\", "axxbq\\")
	f.Add("[a-]x]", "x")
	f.Add("*[", "a[")
	f.Fuzz(func(t *testing.T, pattern, key string) {
		if strings.Count(pattern, "*") > 100 {
			t.Skip("past the nesting limit the server gives up on purpose")
		}
		if got, want := Match(pattern, key), refMatch(pattern, key); got != want {
			t.Fatalf("Match(%q, %q) = %v, reference says %v", pattern, key, got, want)
		}
	})
}

// Ensure the reference itself agrees with the server's recorded vectors, so
// FuzzMatch compares against something true.
func TestRefMatchVectors(t *testing.T) {
	for _, v := range loadVectors(t) {
		if got := refMatch(v.pattern, v.key); got != v.want {
			t.Fatalf("refMatch(%q, %q) = %v, valkey says %v", v.pattern, v.key, got, v.want)
		}
	}
}

// benchPatterns builds n trigger-like patterns of the shapes users write.
func benchPatterns(n int) []string {
	out := make([]string, 0, n)
	for i := range n {
		switch i % 4 {
		case 0:
			out = append(out, fmt.Sprintf("order:%d:*", i))
		case 1:
			out = append(out, fmt.Sprintf("*:session:%d", i))
		case 2:
			out = append(out, fmt.Sprintf("user:%d", i))
		default:
			out = append(out, fmt.Sprintf("cart:%d:item:?*", i))
		}
	}
	return out
}

// BenchmarkLookup looks keys up among 100, 10k and 100k patterns; half of the
// keys match one pattern, half match none.
func BenchmarkLookup(b *testing.B) {
	for _, n := range []int{100, 10_000, 100_000} {
		b.Run(fmt.Sprintf("patterns=%d", n), func(b *testing.B) {
			ix := NewIndex[int]()
			for i, p := range benchPatterns(n) {
				ix.Add(p, i)
			}
			keys := make([]string, 1024)
			for i := range keys {
				if i%2 == 0 {
					keys[i] = fmt.Sprintf("order:%d:status", (i*4)%n)
				} else {
					keys[i] = fmt.Sprintf("key:%d", i)
				}
			}
			var dst []int
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; b.Loop(); i++ {
				dst = ix.Lookup(keys[i%len(keys)], dst[:0])
			}
		})
	}
}

// BenchmarkMatch measures a single general pattern check.
func BenchmarkMatch(b *testing.B) {
	for b.Loop() {
		Match("user:*:cart:[0-9]?*", "user:12345:cart:7x")
	}
}
