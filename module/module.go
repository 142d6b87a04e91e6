// Package module is the trigger engine inside valkey-server: the registry of
// scripts, triggers and event classes, the IUNGO commands, and the path from
// a keyspace event to the scripts it fires. It reaches the server only
// through Ctx, which the cgo package implements, so it builds and tests
// without C or a server.
//
// A Module is not safe for concurrent use: the server calls it from its main
// thread only.
package module

import (
	"cmp"
	"fmt"
	"slices"
	"time"

	"github.com/valkey-iungo/valkey-iungo/config"
	"github.com/valkey-iungo/valkey-iungo/router"
	"github.com/valkey-iungo/valkey-iungo/scripting"
)

// CtxFlags are the server's context flags, with the values of
// VALKEYMODULE_CTX_FLAGS_*.
type CtxFlags int

// Context flags the module acts on.
const (
	FlagPrimary    CtxFlags = 1 << 2
	FlagReplica    CtxFlags = 1 << 3
	FlagCluster    CtxFlags = 1 << 5
	FlagMaxmemory  CtxFlags = 1 << 8  // maxmemory is set
	FlagReplicated CtxFlags = 1 << 12 // the command came from the primary (or a slot import)
	FlagLoading    CtxFlags = 1 << 13 // loading RDB or AOF
)

// Ctx is the server as one callback sees it. It is valid only during that
// callback.
type Ctx interface {
	Flags() CtxFlags
	// AddJob schedules RunJob(id) after the current execution unit and
	// reports whether the server accepted it.
	AddJob(id uint64) bool
	// DB is the selected database.
	DB() int
	// Call runs a command with the effects replicated.
	Call(args []string) scripting.Reply
	// CheckACL reports whether the user of the calls (see AttachUser) may
	// run a command, and whether the command exists.
	CheckACL(args []string) (allowed, known bool)
	// Replicate propagates the current command as it was received.
	Replicate()
	// AttachUser makes the following calls run as, and be checked against
	// the ACL of, the named user ("" is the module's own user); DetachUser
	// ends that.
	AttachUser(name string) error
	DetachUser()
	// CommandKeys returns the key arguments of a command.
	CommandKeys(args []string) []KeyRef
	// Block blocks the client of the current command. The returned
	// function, to be called once from any goroutine, unblocks it: finish
	// then runs on the main thread with the reply's context and writes
	// the reply. It fails where a client cannot block (MULTI, scripts).
	Block() (unblock func(finish func(Ctx)), err error)
	// WritesPaused reports whether the server pauses writes (CLIENT PAUSE
	// WRITE or ALL, FAILOVER, a manual cluster failover): nothing may be
	// written or replicated then, or the server aborts.
	WritesPaused() bool
	// Primary is the host:port of the primary a replica follows, or "".
	Primary() string
	// OutOfMemory reports whether the server would refuse a write that
	// may grow memory now, as it refuses to start a script that may
	// write: maxmemory is set and the last command found it exceeded.
	OutOfMemory() bool
	// ReplicateCommand propagates args as a command to replicas and the
	// AOF.
	ReplicateCommand(args []string)
	// ReplicateRestore propagates IUNGO RESTORE <snapshot>: a command
	// whose argument may be megabytes, handed over without a copy.
	ReplicateRestore(snapshot []byte)
	ReplyWriter
}

// ReplyWriter writes a command's reply.
type ReplyWriter interface {
	ReplyError(msg string)
	ReplyStatus(s string)
	ReplyInt(n int64)
	ReplyString(s string)
	ReplyArray(n int)
	ReplyMap(n int)
}

// LogLevel is a server log level: "debug", "verbose", "notice", "warning".
type LogLevel string

// Log levels.
const (
	LogDebug   LogLevel = "debug"
	LogVerbose LogLevel = "verbose"
	LogNotice  LogLevel = "notice"
	LogWarning LogLevel = "warning"
)

// ModuleVersion is the module's version.
const ModuleVersion = "0.1.0"

// Limits on names and patterns.
const (
	MaxNameBytes    = 128
	MaxPatternBytes = 1024
)

// Trigger runs Script for the events in Events on keys matching Pattern.
type Trigger struct {
	Pattern string
	Events  []string // sorted; nil means every event
	Script  string
	Enabled bool
	// Window, when not 0, makes it a window trigger (see window.go).
	Window time.Duration
	RunStats

	windowSkipped string // the window key whose OOM wait was last recorded
	winID         string // windowID, once computed
	seq           uint64 // registration order
	removed       bool
	handle        uint64 // in the Store
}

// RunStats is what a trigger's runs did on this node, since it was set or
// reset: the node's own, never replicated.
type RunStats struct {
	Runs      uint64
	Errors    uint64
	LastError string
	// RunTime is the time its runs took in all, MaxRunTime the longest.
	RunTime, MaxRunTime time.Duration
	// Recent are its latest errors, oldest first, at most maxRecentErrors.
	Recent []RunError
	// Gathered counts the events a window trigger gathered.
	Gathered uint64
}

// RunError is one failed or skipped run, its texts valid UTF-8 within
// the bounds heartbeats report (iungo.MaxErrorKeyBytes, ...).
type RunError struct {
	At         time.Time
	Event, Key string
	Line       int // of the script, 0 when unknown
	Message    string
}

// maxRecentErrors is how many errors a trigger keeps.
const maxRecentErrors = 3

// ID identifies a trigger by pattern and normalised event list.
func (t *Trigger) ID() string { return config.TriggerID(t.Pattern, t.Events) }

// def is the trigger as configured.
func (t *Trigger) def() config.TriggerDef {
	return config.TriggerDef{Pattern: t.Pattern, Events: config.FormatEvents(t.Events), Script: t.Script, Enabled: t.Enabled,
		Window: t.Window.Milliseconds()}
}

// record encodes the trigger for the Store.
func (t *Trigger) record() []byte {
	return config.TriggerRecord(t.def())
}

func (t *Trigger) wants(event string) bool {
	return t.Events == nil || slices.Contains(t.Events, event)
}

// Stats are counters since load.
type Stats struct {
	Events      uint64 // events that reached OnEvent: what the C filter let through
	Runs        uint64 // script runs
	Errors      uint64 // failed runs and runs not made (skips of every kind)
	DepthSkips  uint64 // events not fired because of max-depth
	BudgetSkips uint64 // runs not made: the command's budget or run cap was used up
	PauseSkips  uint64 // runs not made: writes were paused
	OOMSkips    uint64 // runs not made: the server was out of memory
	CronRuns    uint64 // runs of crons, also counted in Runs
	WindowRuns  uint64 // runs of window triggers, also counted in Runs
	Gathered    uint64 // events window triggers gathered
	// WindowOverflows counts events not gathered: their window already
	// held iungo.window-max-keys keys.
	WindowOverflows uint64
}

// Module holds the whole trigger configuration and runs triggers.
type Module struct {
	opts Options
	// serverVersion is the server's version, for the scripts' constants.
	serverVersion ServerVersion
	// oldValues are the values of keys just removed or replaced, until the
	// event that follows takes them (or the next job clears them).
	oldValues map[string]keptValue
	scripts   map[string]*scripting.Script
	triggers  map[string]*Trigger
	crons     map[string]*Cron
	// windowCheck says the next tick must look for gathered windows: the
	// configuration, the data or the role changed since it last found none.
	windowCheck bool
	index       *router.Index[*Trigger] // enabled triggers only
	listen      listenCounts            // the events enabled triggers listen to
	classes     config.Class
	paused      bool
	nextSeq     uint64
	revision    uint64        // bumped by every change
	origin      config.Origin // the iungo configuration this one is, if any
	digests     [2]string     // config.Digest of the configuration unpaused and paused, "" until asked

	engine  *scripting.Engine
	host    jobHost
	jobs    jobQueue
	nextJob uint64
	depth   int        // depth of the job running now, 0 outside jobs
	unit    unit       // the jobs of the client command running now
	match   []*Trigger // routing buffer, reused
	cluster bool       // the server runs in cluster mode

	debugEventPanic bool // IUNGO DEBUG EVENTPANIC armed

	sync          *syncer
	stats         Stats
	source        string // what last changed the configuration
	manifest      *config.Manifest
	store         Store
	scriptHandles map[string]uint64
	log           func(LogLevel, string)
	errLog        rateLimit
	onFilter      func(Filter)
	migrations    func() uint64
	filterKeys    *router.KeyFilter // the key filter last handed to onFilter
	filterVersion uint64            // and its version then
}

// Hooks connect a Module to the server; any may be nil.
type Hooks struct {
	// Log receives the module's log lines.
	Log func(LogLevel, string)
	// Filter receives what the C shim must let through to OnEvent,
	// whenever the configuration changes.
	Filter func(Filter)
	// Store keeps the configuration for saving in a forked child.
	Store Store
	// MigrationEvents counts the events of slot migration the C shim
	// kept from triggers, for INFO.
	MigrationEvents func() uint64
}

// New returns a Module with the default options and event classes.
func New(h Hooks) *Module {
	if h.Log == nil {
		h.Log = func(LogLevel, string) {}
	}
	if h.Filter == nil {
		h.Filter = func(Filter) {}
	}
	if h.Store == nil {
		h.Store = nopStore{}
	}
	if h.MigrationEvents == nil {
		h.MigrationEvents = func() uint64 { return 0 }
	}
	m := &Module{
		scripts:       map[string]*scripting.Script{},
		triggers:      map[string]*Trigger{},
		crons:         map[string]*Cron{},
		index:         router.NewIndex[*Trigger](),
		classes:       config.DefaultClasses,
		source:        "none",
		store:         h.Store,
		scriptHandles: map[string]uint64{},
		log:           h.Log,
		onFilter:      h.Filter,
		migrations:    h.MigrationEvents,
		errLog:        rateLimit{perSecond: 10},
	}
	m.host.m = m
	m.sync = newSyncer(m)
	m.engine = scripting.NewEngine(m.engineOptions())
	for _, o := range NumericOptions {
		o.set(m, o.Default)
	}
	for _, o := range StringOptions {
		_ = o.set(m, o.Default)
	}
	m.storeHeader()
	m.refreshFilter()
	return m
}

type nopStore struct{}

func (nopStore) Put(uint64, []byte) uint64 { return 0 }
func (nopStore) Delete(uint64)             {}
func (nopStore) SetHeader([]byte, bool)    {}
func (nopStore) Swap(uint64)               {}
func (nopStore) Discard(uint64)            {}

func (nopStore) Build(records [][]byte) (uint64, []uint64) {
	return 0, make([]uint64, len(records))
}

// header is the header record of the configuration in force.
func (m *Module) header() []byte {
	return config.HeaderRecord(&config.Config{Revision: m.revision, Classes: m.classes, Paused: m.paused, Origin: m.origin})
}

func (m *Module) storeHeader() {
	m.store.SetHeader(m.header(), m.classes == config.DefaultClasses && !m.paused && m.origin == config.Origin{})
}

// Close stops the script engine's watchdog.
func (m *Module) Close() { m.engine.Close() }

func (m *Module) logf(level LogLevel, format string, args ...any) {
	m.log(level, fmt.Sprintf(format, args...))
}

func (m *Module) engineOptions() scripting.Options {
	return scripting.Options{
		Timeout:       m.opts.ScriptTimeout,
		UnitBudget:    m.commandBudget(),
		MemoryLimit:   m.opts.ScriptMemory,
		Logf:          func(format string, args ...any) { m.logf(LogWarning, format, args...) },
		ServerVersion: int(m.serverVersion),
	}
}

// SetServerVersion tells the module the server's version, for what
// scripts read of it (server.VALKEY_VERSION, ...).
func (m *Module) SetServerVersion(v ServerVersion) {
	m.serverVersion = v
	m.engine.SetOptions(m.engineOptions())
}

// commandBudget is the time the trigger runs of one client command may
// take together.
func (m *Module) commandBudget() time.Duration {
	if m.opts.CommandBudget > 0 {
		return m.opts.CommandBudget
	}
	return m.opts.ScriptTimeout
}

// ConfigDigest identifies the configuration in force by its content
// (config.Digest), computed once per change: Install brings it along,
// computed off the main thread.
func (m *Module) ConfigDigest() string {
	i := 0
	if m.paused {
		i = 1
	}
	if m.digests[i] == "" {
		m.digests[i] = config.Digest(m.Config())
	}
	return m.digests[i]
}

// changed records a configuration change.
func (m *Module) changed() {
	m.digests = [2]string{}
	m.windowCheck = true
	m.bump()
}

// bump records a change that leaves the digests as they are.
func (m *Module) bump() {
	m.revision++
	m.storeHeader()
	m.refreshFilter()
}

// Source says what last changed the configuration: none, commands, aof,
// replication, rdb, restore or manifest.
func (m *Module) Source() string { return m.source }

// Filter is what the C shim checks before it hands an event to OnEvent, so
// that events no trigger can want cost no call into Go: the event's class,
// its name and the key's literal ends (see router.KeyFilter).
type Filter struct {
	Classes   config.Class // classes that may fire a trigger; 0 when nothing can
	AllEvents bool         // some enabled trigger wants every event name
	Events    []string     // else the names enabled triggers want, sorted
	// Keys is the key filter of the enabled triggers' patterns, valid until
	// the next Filter; KeysChanged says whether it differs from the last.
	Keys        *router.KeyFilter
	KeysChanged bool
}

// refreshFilter hands the C shim its Filter after a change.
func (m *Module) refreshFilter() {
	f := Filter{Classes: m.classes, AllEvents: m.listen.all > 0}
	if m.paused || m.index.Len() == 0 {
		f.Classes = 0
	}
	if !f.AllEvents {
		f.Events = make([]string, 0, len(m.listen.byName))
		for ev := range m.listen.byName {
			f.Events = append(f.Events, ev)
		}
		slices.Sort(f.Events)
	}
	var version uint64
	f.Keys, version = m.index.Filter()
	f.KeysChanged = f.Keys != m.filterKeys || version != m.filterVersion
	m.filterKeys, m.filterVersion = f.Keys, version
	m.onFilter(f)
}

// SetClusterMode tells the module that the server runs in cluster mode, where
// scripts may only write keys of the triggering key's hash slot.
func (m *Module) SetClusterMode(on bool) { m.cluster = on }

// Revision is bumped by every configuration change.
func (m *Module) Revision() uint64 { return m.revision }

// Stats returns the counters since load.
func (m *Module) Stats() Stats { return m.stats }

// SetScript compiles source and installs it as name, replacing any older
// version at once. A script that does not compile changes nothing.
func (m *Module) SetScript(name, source string) error {
	s, err := compileScript(name, source)
	if err != nil {
		return err
	}
	m.installScript(s)
	return nil
}

// compileScript checks a script's name and compiles it; it touches no
// module state, so it may run on any goroutine.
func compileScript(name, source string) (*scripting.Script, error) {
	if err := config.CheckName("script name", name); err != nil {
		return nil, err
	}
	s, err := scripting.Compile(name, source)
	if err != nil {
		return nil, &Error{Code: "ERR", Message: err.Error()}
	}
	return s, nil
}

// installScript puts a compiled script in force.
func (m *Module) installScript(s *scripting.Script) {
	m.scripts[s.Name] = s
	m.scriptHandles[s.Name] = m.store.Put(m.scriptHandles[s.Name], config.ScriptRecord(s.Name, s.Source))
	m.changed()
}

// UnsetScript removes a script no trigger uses.
func (m *Module) UnsetScript(name string) error {
	if _, ok := m.scripts[name]; !ok {
		return unknownScript(name)
	}
	var users []string
	for _, t := range m.sortedTriggers() {
		if t.Script == name {
			users = append(users, t.Pattern+" "+config.FormatEvents(t.Events))
		}
	}
	if len(users) > 0 {
		return errorf("script %q is used by triggers [%s]; unset them or point them at another script first", name, joinQuoted(users))
	}
	if users = m.cronUsers(name); len(users) > 0 {
		return errorf("script %q is used by crons [%s]; unset them or point them at another script first", name, joinQuoted(users))
	}
	delete(m.scripts, name)
	m.store.Delete(m.scriptHandles[name])
	delete(m.scriptHandles, name)
	m.changed()
	return nil
}

// Script returns a script's source.
func (m *Module) Script(name string) (string, error) {
	s, ok := m.scripts[name]
	if !ok {
		return "", unknownScript(name)
	}
	return s.Source, nil
}

// SetTrigger creates the trigger (pattern, events), enabled, or points the
// existing one at another script and window (0: none); it reports whether
// it created one.
func (m *Module) SetTrigger(pattern, events, script string, window time.Duration) (bool, error) {
	evs, err := config.ParseTrigger(pattern, events)
	if err != nil {
		return false, err
	}
	if _, ok := m.scripts[script]; !ok {
		return false, unknownScript(script)
	}
	if err := m.checkWindow(window.Milliseconds()); err != nil {
		return false, err
	}
	if t, ok := m.triggers[config.TriggerID(pattern, evs)]; ok {
		t.Script, t.Window = script, window
		t.handle = m.store.Put(t.handle, t.record())
		m.changed()
		return false, nil
	}
	m.nextSeq++
	t := &Trigger{Pattern: pattern, Events: evs, Script: script, Enabled: true, Window: window, seq: m.nextSeq}
	m.triggers[t.ID()] = t
	m.activate(t)
	t.handle = m.store.Put(0, t.record())
	m.changed()
	return true, nil
}

// UnsetTrigger removes the trigger (pattern, events).
func (m *Module) UnsetTrigger(pattern, events string) error {
	t, err := m.trigger(pattern, events)
	if err != nil {
		return err
	}
	if t.Enabled {
		m.deactivate(t)
	}
	t.removed = true
	delete(m.triggers, t.ID())
	m.store.Delete(t.handle)
	m.changed()
	return nil
}

// EnableTrigger enables or disables the trigger (pattern, events).
func (m *Module) EnableTrigger(pattern, events string, on bool) error {
	t, err := m.trigger(pattern, events)
	if err != nil {
		return err
	}
	if t.Enabled != on {
		t.Enabled = on
		if on {
			m.activate(t)
		} else {
			m.deactivate(t)
		}
		t.handle = m.store.Put(t.handle, t.record())
	}
	m.changed()
	return nil
}

func (m *Module) trigger(pattern, events string) (*Trigger, error) {
	evs, err := config.ParseTrigger(pattern, events)
	if err != nil {
		return nil, err
	}
	t, ok := m.triggers[config.TriggerID(pattern, evs)]
	if !ok {
		return nil, errorf("no trigger for pattern %q and events %q; IUNGO TRIGGER LIST shows the triggers", pattern, config.FormatEvents(evs))
	}
	return t, nil
}

// activate puts an enabled trigger where routing finds it.
func (m *Module) activate(t *Trigger) {
	m.index.Add(t.Pattern, t)
	m.listen.add(t, 1)
}

func (m *Module) deactivate(t *Trigger) {
	m.index.Remove(t.Pattern, t)
	m.listen.add(t, -1)
}

// listenCounts counts enabled triggers by the event names they listen to.
type listenCounts struct {
	byName map[string]int
	all    int // triggers listening to every event
}

// add counts (delta 1) or uncounts (-1) the events t listens to.
func (c *listenCounts) add(t *Trigger, delta int) {
	if t.Events == nil {
		c.all += delta
	}
	if c.byName == nil {
		c.byName = map[string]int{}
	}
	for _, ev := range t.Events {
		if c.byName[ev] += delta; c.byName[ev] == 0 {
			delete(c.byName, ev)
		}
	}
}

// wants reports whether some enabled trigger listens to event.
func (c *listenCounts) wants(event string) bool { return c.all > 0 || c.byName[event] > 0 }

// Triggers returns the triggers in registration order.
func (m *Module) Triggers() []*Trigger { return m.sortedTriggers() }

func (m *Module) sortedTriggers() []*Trigger {
	out := make([]*Trigger, 0, len(m.triggers))
	for _, t := range m.triggers {
		out = append(out, t)
	}
	slices.SortFunc(out, func(a, b *Trigger) int { return cmp.Compare(a.seq, b.seq) })
	return out
}

// ScriptNames returns the script names in sorted order.
func (m *Module) ScriptNames() []string {
	names := make([]string, 0, len(m.scripts))
	for name := range m.scripts {
		names = append(names, name)
	}
	slices.Sort(names)
	return names
}

// SetClasses enables (on) or disables the event classes in mask.
func (m *Module) SetClasses(mask config.Class, on bool) {
	if on {
		m.classes |= mask
	} else {
		m.classes &^= mask
	}
	m.changed()
}

// Classes returns the enabled event classes.
func (m *Module) Classes() config.Class { return m.classes }

// SetPaused stops (true) or restarts all triggers.
func (m *Module) SetPaused(paused bool) {
	m.paused = paused
	m.bump() // the digest of either state stays valid
}

// Paused reports whether triggers are paused.
func (m *Module) Paused() bool { return m.paused }

// CheckScript checks a script's name and compiles its source, as IUNGO
// SCRIPT SET does.
func CheckScript(name, source string) error {
	_, err := compileScript(name, source)
	return err
}

// CheckTrigger checks a trigger's pattern and events, as IUNGO TRIGGER SET
// does, and returns the events normalised.
func CheckTrigger(pattern, events string) (string, error) {
	evs, err := config.ParseTrigger(pattern, events)
	if err != nil {
		return "", err
	}
	return config.FormatEvents(evs), nil
}

func unknownScript(name string) error {
	return errorf("unknown script %q; IUNGO SCRIPT LIST shows the scripts", name)
}

func joinQuoted(items []string) string {
	out := ""
	for i, s := range items {
		if i > 0 {
			out += ", "
		}
		out += fmt.Sprintf("%q", s)
	}
	return out
}

// rateLimit lets through perSecond log lines a second and counts the rest.
type rateLimit struct {
	perSecond  int
	window     time.Time
	inWindow   int
	suppressed int
}

// allow reports whether a line may be logged now; when a window with
// suppressed lines ends, it also returns how many were suppressed.
func (r *rateLimit) allow(now time.Time) (ok bool, suppressed int) {
	if now.Sub(r.window) >= time.Second {
		suppressed = r.suppressed
		r.window, r.inWindow, r.suppressed = now, 0, 0
	}
	if r.inWindow < r.perSecond {
		r.inWindow++
		return true, suppressed
	}
	r.suppressed++
	return false, suppressed
}
