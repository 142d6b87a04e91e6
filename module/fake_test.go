package module

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/valkey-iungo/valkey-iungo/config"
	"github.com/valkey-iungo/valkey-iungo/scripting"
)

// fakeCtx plays the server: it queues accepted jobs first in, first out,
// answers calls through onCall, and builds the reply as a tree.
type fakeCtx struct {
	m          *Module
	flags      CtxFlags
	db         int
	rejectJobs bool
	jobs       []uint64
	calls      [][]string
	onCall     func(args []string) scripting.Reply
	replicated int
	users      []string // AttachUser calls
	attached   bool
	propagated [][]string // ReplicateCommand calls
	noBlock    bool       // Block fails, as in MULTI
	paused     bool       // WritesPaused
	oom        bool       // OutOfMemory
	finishes   chan func(Ctx)
	blockedNow bool // the last command blocked its client

	reply reply
}

// reply builds a command's reply: status "+OK", error "-ERR ...", int64,
// string, []any for arrays and map[string]any for maps.
type reply struct {
	root  any
	stack []*container
}

type container struct {
	want  int
	items []any
	isMap bool
}

func (r *reply) add(v any) {
	for {
		if len(r.stack) == 0 {
			r.root = v
			return
		}
		top := r.stack[len(r.stack)-1]
		top.items = append(top.items, v)
		if len(top.items) < top.want {
			return
		}
		r.stack = r.stack[:len(r.stack)-1]
		v = top.value()
	}
}

func (c *container) value() any {
	if !c.isMap {
		return append([]any{}, c.items...)
	}
	m := map[string]any{}
	for i := 0; i+1 < len(c.items); i += 2 {
		m[fmt.Sprint(c.items[i])] = c.items[i+1]
	}
	return m
}

func (r *reply) open(n int, isMap bool) {
	c := &container{want: n, isMap: isMap}
	if isMap {
		c.want = 2 * n
	}
	if c.want == 0 {
		r.add(c.value())
		return
	}
	r.stack = append(r.stack, c)
}

func (c *fakeCtx) Flags() CtxFlags { return c.flags }

// AttachUser fails for "ghost", like a user the server does not know.
func (c *fakeCtx) AttachUser(name string) error {
	if name == "ghost" {
		return fmt.Errorf("script user %q does not exist", name)
	}
	c.users = append(c.users, name)
	c.attached = true
	return nil
}

func (c *fakeCtx) DetachUser() { c.attached = false }

func (c *fakeCtx) ReplicateCommand(args []string) {
	c.propagated = append(c.propagated, append([]string(nil), args...))
}

func (c *fakeCtx) ReplicateRestore(snap []byte) {
	c.propagated = append(c.propagated, []string{"IUNGO", "RESTORE", string(snap)})
}

// restores returns the snapshots of the IUNGO RESTOREs propagated so far.
func (c *fakeCtx) restores() [][]byte {
	var out [][]byte
	for _, args := range c.propagated {
		if len(args) == 3 && args[1] == "RESTORE" {
			out = append(out, []byte(args[2]))
		}
	}
	return out
}

func (c *fakeCtx) WritesPaused() bool { return c.paused }
func (c *fakeCtx) Primary() string    { return "" }
func (c *fakeCtx) OutOfMemory() bool  { return c.oom }

// Block hands the finish to finishes; do (or finish) runs it on the test's
// goroutine, which plays the main thread.
func (c *fakeCtx) Block() (func(func(Ctx)), error) {
	if c.noBlock {
		return nil, fmt.Errorf("cannot block here")
	}
	if c.finishes == nil {
		c.finishes = make(chan func(Ctx), 16)
	}
	c.blockedNow = true
	ch := c.finishes
	return func(finish func(Ctx)) { ch <- finish }, nil
}

// finish waits for the next unblocked command and writes its reply.
func (c *fakeCtx) finish() any {
	select {
	case f := <-c.finishes:
		c.reply = reply{}
		f(c)
		return c.reply.root
	case <-time.After(10 * time.Second):
		panic("a blocked command never finished")
	}
}

// CommandKeys knows that the first argument after the command is a key,
// written unless the command is GET.
func (c *fakeCtx) CommandKeys(args []string) []KeyRef {
	if len(args) < 2 {
		return nil
	}
	return []KeyRef{{Pos: 1, Write: !strings.EqualFold(args[0], "GET")}}
}
func (c *fakeCtx) DB() int    { return c.db }
func (c *fakeCtx) Replicate() { c.replicated++ }

func (c *fakeCtx) AddJob(id uint64) bool {
	if c.rejectJobs {
		return false
	}
	c.jobs = append(c.jobs, id)
	return true
}

func (c *fakeCtx) CheckACL(args []string) (allowed, known bool) { return true, true }

func (c *fakeCtx) Call(args []string) scripting.Reply {
	c.calls = append(c.calls, append([]string(nil), args...))
	if c.onCall != nil {
		return c.onCall(args)
	}
	return scripting.Reply{Kind: scripting.ReplyStatus, Str: "OK"}
}

func (c *fakeCtx) ReplyError(msg string) { c.reply.add("-" + msg) }
func (c *fakeCtx) ReplyStatus(s string)  { c.reply.add("+" + s) }
func (c *fakeCtx) ReplyInt(n int64)      { c.reply.add(n) }
func (c *fakeCtx) ReplyString(s string)  { c.reply.add(s) }
func (c *fakeCtx) ReplyArray(n int)      { c.reply.open(n, false) }
func (c *fakeCtx) ReplyMap(n int)        { c.reply.open(n, true) }

// drain runs queued jobs the way the server does after each command.
func (c *fakeCtx) drain() {
	for len(c.jobs) > 0 {
		id := c.jobs[0]
		c.jobs = c.jobs[1:]
		c.m.RunJob(c, id)
	}
}

// do runs an IUNGO command given as words and returns its reply, waiting
// for it if the command blocked its client.
func (c *fakeCtx) do(words ...string) any {
	if r := c.start(words...); !c.blockedNow {
		return r
	}
	return c.finish()
}

// start runs an IUNGO command and returns its reply, nil if it blocked.
func (c *fakeCtx) start(words ...string) any {
	c.reply, c.blockedNow = reply{}, false
	c.m.Command(c, append([]string{"IUNGO"}, words...))
	if len(c.reply.stack) != 0 {
		panic(fmt.Sprintf("incomplete reply to %q", words))
	}
	return c.reply.root
}

// event raises a keyspace event as the server would, then runs the jobs.
func (c *fakeCtx) event(event, key string) {
	c.m.OnEvent(c, event, key)
	c.drain()
}

type testModule struct {
	*Module
	ctx     *fakeCtx
	logs    []string
	filters []Filter
	store   *memStore
}

// memStore is the C store in Go: records by handle, framed in handle order.
type memStore struct {
	header  []byte
	records map[uint64][]byte
	next    uint64
	images  map[uint64]map[uint64][]byte
}

func newMemStore() *memStore {
	return &memStore{records: map[uint64][]byte{}, images: map[uint64]map[uint64][]byte{}}
}

func (s *memStore) Build(records [][]byte) (uint64, []uint64) {
	img := map[uint64][]byte{}
	handles := make([]uint64, len(records))
	for i, r := range records {
		s.next++
		handles[i] = s.next
		img[s.next] = append([]byte(nil), r...)
	}
	s.next++
	s.images[s.next] = img
	return s.next, handles
}

func (s *memStore) Swap(image uint64) {
	s.records = s.images[image]
	delete(s.images, image)
}

func (s *memStore) Put(h uint64, rec []byte) uint64 {
	if h == 0 {
		s.next++
		h = s.next
	}
	s.records[h] = append([]byte(nil), rec...)
	return h
}

func (s *memStore) Delete(h uint64)              { delete(s.records, h) }
func (s *memStore) Discard(image uint64)         { delete(s.images, image) }
func (s *memStore) SetHeader(rec []byte, _ bool) { s.header = append([]byte(nil), rec...) }
func (s *memStore) Clear()                       { clear(s.records) }

// snapshot frames the store as the C side does for aux_save and DUMP.
func (s *memStore) snapshot() []byte {
	handles := make([]uint64, 0, len(s.records))
	for h := range s.records {
		handles = append(handles, h)
	}
	slices.Sort(handles)
	recs := [][]byte{s.header}
	for _, h := range handles {
		recs = append(recs, s.records[h])
	}
	return config.FrameSnapshot(recs...)
}

func newTestModule(t *testing.T) *testModule {
	t.Helper()
	tm := &testModule{}
	tm.store = newMemStore()
	tm.Module = New(Hooks{
		Log:    func(level LogLevel, msg string) { tm.logs = append(tm.logs, string(level)+": "+msg) },
		Filter: func(f Filter) { tm.filters = append(tm.filters, f) },
		Store:  tm.store,
	})
	t.Cleanup(tm.Close)
	tm.ctx = &fakeCtx{m: tm.Module, flags: FlagPrimary}
	return tm
}

// filter is the last Filter the module handed the C shim.
func (tm *testModule) filter() Filter { return tm.filters[len(tm.filters)-1] }

// mustDo runs a command that must succeed.
func (tm *testModule) mustDo(t *testing.T, words ...string) any {
	t.Helper()
	r := tm.ctx.do(words...)
	if s, ok := r.(string); ok && strings.HasPrefix(s, "-") {
		t.Fatalf("IUNGO %s: %s", strings.Join(words, " "), s)
	}
	return r
}
