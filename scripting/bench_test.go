package scripting

import "testing"

// incrHost answers every call with an integer, as INCR would, and keeps
// nothing: the benchmark measures the engine, not the host.
type incrHost struct{ n int64 }

func (h *incrHost) Call([]string) Reply            { h.n++; return Reply{Kind: ReplyInteger, Int: h.n} }
func (h *incrHost) Log(int, string)                {}
func (h *incrHost) CheckACL([]string) (bool, bool) { return true, true }

// BenchmarkRun is one trigger run of the benchmark's script: one
// server.call, as make bench's trigger scenario does.
func BenchmarkRun(b *testing.B) {
	for _, bc := range []struct{ name, src string }{
		{"incr", "server.call('INCR', 'counter')"},
		{"keys", "return server.call('HSET', KEYS[1], 'event', ARGV[1])"},
		{"changes-keys", "KEYS[2] = 'x' server.call('INCR', 'counter')"}, // the next run rebuilds its tables
	} {
		b.Run(bc.name, func(b *testing.B) {
			e := NewEngine(Options{})
			defer e.Close()
			s, err := Compile("bench", bc.src)
			if err != nil {
				b.Fatal(err)
			}
			h := &incrHost{}
			in := Input{Key: "key:000000012345", Event: "set", DB: 0}
			b.ReportAllocs()
			for b.Loop() {
				if err := e.Run(s, in, h); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
