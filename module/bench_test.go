package module

import (
	"testing"

	"github.com/valkey-iungo/valkey-iungo/scripting"
)

// benchCtx plays the server for benchmarks: it keeps the last job and
// answers every call with an integer, allocating nothing itself.
type benchCtx struct {
	fakeCtx
	job uint64
	n   int64
}

func (c *benchCtx) AddJob(id uint64) bool        { c.job = id; return true }
func (c *benchCtx) AttachUser(name string) error { return nil }
func (c *benchCtx) DetachUser()                  {}

func (c *benchCtx) Call([]string) scripting.Reply {
	c.n++
	return scripting.Reply{Kind: scripting.ReplyInteger, Int: c.n}
}

// BenchmarkEventToScript is the Go side of make bench's trigger scenario:
// an event on a matching key, its job, and the script's one INCR.
func BenchmarkEventToScript(b *testing.B) {
	m := New(Hooks{})
	defer m.Close()
	if err := m.SetScript("count", "server.call('INCR', 'counter')"); err != nil {
		b.Fatal(err)
	}
	if _, err := m.SetTrigger("key:*", "set", "count", 0); err != nil {
		b.Fatal(err)
	}
	ctx := &benchCtx{fakeCtx: fakeCtx{flags: FlagPrimary}}
	b.ReportAllocs()
	for b.Loop() {
		m.OnEvent(ctx, "set", "key:000000012345")
		m.RunJob(ctx, ctx.job)
	}
	if m.Stats().Errors != 0 || ctx.n == 0 {
		b.Fatalf("runs failed: %+v, %d calls", m.Stats(), ctx.n)
	}
}
