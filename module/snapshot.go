package module

import (
	"fmt"
	"runtime/debug"
	"time"

	"github.com/valkey-iungo/valkey-iungo/config"
	"github.com/valkey-iungo/valkey-iungo/router"
	"github.com/valkey-iungo/valkey-iungo/scripting"
)

// Store keeps the configuration as encoded records where C can frame them
// without Go: the server saves aux data in a forked child, where Go code
// must not run. Handles are the store's, 0 meaning "new".
type Store interface {
	Put(handle uint64, record []byte) uint64
	Delete(handle uint64)
	// SetHeader stores the header record; isDefault says that it holds
	// the default classes, unpaused, so that an empty store need not be
	// saved at all.
	SetHeader(record []byte, isDefault bool)
	// Build makes a new set of records, on any thread, and returns it with
	// one handle per record; Swap makes it the current set and frees the
	// old one, whose handles must not be used again.
	Build(records [][]byte) (image uint64, handles []uint64)
	Swap(image uint64)
	// Discard frees a built set that will not be swapped in.
	Discard(image uint64)
}

// Config returns the current configuration.
func (m *Module) Config() config.Config {
	c := config.Config{Revision: m.revision, Origin: m.origin, Classes: m.classes, Paused: m.paused}
	for _, name := range m.ScriptNames() {
		c.Scripts = append(c.Scripts, config.ScriptDef{Name: name, Source: m.scripts[name].Source})
	}
	for _, t := range m.sortedTriggers() {
		c.Triggers = append(c.Triggers, t.def())
	}
	c.Crons = m.cronDefs()
	return c
}

// Prepared is a checked, compiled configuration ready to install: scripts
// compiled, index built, records encoded and stored. Prepare does all of it
// and touches no module state, so it can run off the main thread; Install
// then only swaps it in.
type Prepared struct {
	cfg           config.Config
	scripts       map[string]*scripting.Script
	scriptHandles map[string]uint64
	triggers      map[string]*Trigger
	crons         map[string]*Cron
	index         *router.Index[*Trigger]
	listen        listenCounts
	image         uint64       // in the Store
	body          config.Frame // the snapshot without its header, for replication
	// The configuration's digests, unpaused and paused: computed here, off
	// the main thread, since the paused flag is only known at Install.
	digests   [2]string
	installed bool
}

// Prepare checks and compiles c. reuse, when not nil, returns an already
// compiled script with the same name and source. It only reads m.store,
// which is safe from any goroutine.
func (m *Module) Prepare(c config.Config, reuse func(name, source string) *scripting.Script) (*Prepared, error) {
	p := &Prepared{
		cfg:           c,
		scripts:       make(map[string]*scripting.Script, len(c.Scripts)),
		scriptHandles: make(map[string]uint64, len(c.Scripts)),
		triggers:      make(map[string]*Trigger, len(c.Triggers)),
		index:         router.NewIndex[*Trigger](),
	}
	if c.Classes&^config.ClassesSubscribed != 0 {
		return nil, errorf("unknown event class bits %#x", int(c.Classes&^config.ClassesSubscribed))
	}
	for _, s := range c.Scripts {
		if err := config.CheckName("script name", s.Name); err != nil {
			return nil, err
		}
		if _, dup := p.scripts[s.Name]; dup {
			return nil, errorf("script %q appears twice", s.Name)
		}
		var compiled *scripting.Script
		if reuse != nil {
			compiled = reuse(s.Name, s.Source)
		}
		if compiled == nil {
			var err error
			if compiled, err = scripting.Compile(s.Name, s.Source); err != nil {
				return nil, &Error{Code: "ERR", Message: err.Error()}
			}
		}
		p.scripts[s.Name] = compiled
	}
	order := make([]*Trigger, 0, len(c.Triggers))
	for i, td := range c.Triggers {
		evs, err := config.ParseTrigger(td.Pattern, td.Events)
		if err != nil {
			return nil, err
		}
		if _, ok := p.scripts[td.Script]; !ok {
			return nil, errorf("trigger %q %s uses unknown script %q", td.Pattern, td.Events, td.Script)
		}
		if err := m.checkWindow(td.Window); err != nil {
			return nil, fmt.Errorf("trigger %q %s: %w", td.Pattern, td.Events, err)
		}
		t := &Trigger{Pattern: td.Pattern, Events: evs, Script: td.Script, Enabled: td.Enabled, seq: uint64(i + 1),
			Window: time.Duration(td.Window) * time.Millisecond}
		if _, dup := p.triggers[t.ID()]; dup {
			return nil, errorf("trigger %q %s appears twice", td.Pattern, config.FormatEvents(evs))
		}
		p.triggers[t.ID()] = t
		order = append(order, t)
		if t.Enabled {
			p.index.Add(t.Pattern, t)
			p.listen.add(t, 1)
		}
	}
	if m.cluster && len(c.Crons) > 0 {
		return nil, errCronCluster
	}
	var err error
	if p.crons, err = prepareCrons(c.Crons, p.scripts); err != nil {
		return nil, err
	}
	records := config.Records(&c)
	var handles []uint64
	p.image, handles = m.store.Build(records)
	for i, s := range c.Scripts {
		p.scriptHandles[s.Name] = handles[i]
	}
	for i, t := range order {
		t.handle = handles[len(c.Scripts)+i]
	}
	for i, cd := range c.Crons {
		p.crons[cd.Name].handle = handles[len(c.Scripts)+len(order)+i]
	}
	p.body = config.NewFrame(records)
	for i, paused := range []bool{false, true} {
		c.Paused = paused
		p.digests[i] = config.Digest(c)
	}
	return p, nil
}

// Discard frees a Prepared that will not be installed.
func (p *Prepared) Discard(m *Module) {
	if !p.installed {
		p.installed = true
		m.store.Discard(p.image)
	}
}

// reuseCompiled lets Prepare keep the compiled form of unchanged scripts.
// Only for Prepare on the main thread.
func (m *Module) reuseCompiled(name, source string) *scripting.Script {
	if s, ok := m.scripts[name]; ok && s.Source == source {
		return s
	}
	return nil
}

// Install swaps a prepared configuration in at once; it runs on the main
// thread, or holding the server's lock. Triggers that exist in both keep
// their counters. The version becomes the snapshot's, exactly, so that a
// replayed or replicated snapshot mirrors the primary. A Prepared installs
// once.
func (m *Module) Install(p *Prepared, source string) {
	if p.installed {
		panic("module: a Prepared installed twice")
	}
	p.installed = true
	for id, old := range m.triggers {
		old.removed = true
		if t, ok := p.triggers[id]; ok {
			t.RunStats = old.RunStats
		}
	}
	oldCrons := m.crons
	m.scripts, m.scriptHandles = p.scripts, p.scriptHandles
	m.triggers, m.index = p.triggers, p.index
	m.crons = p.crons
	m.listen = p.listen
	m.nextSeq = uint64(len(p.triggers))
	m.classes, m.paused = p.cfg.Classes, p.cfg.Paused
	m.revision, m.origin = p.cfg.Revision, p.cfg.Origin
	m.digests = p.digests
	m.windowCheck = true
	m.source = source
	m.store.Swap(p.image)
	for name, c := range m.crons {
		old, ok := oldCrons[name]
		if !ok {
			continue
		}
		c.RunStats = old.RunStats
		// What carries no state (iungo, a manifest) keeps this node's
		// for the same schedule and state: no time runs twice.
		if c.Since == 0 && c.LastRun == 0 && old.Schedule.String() == c.Schedule.String() && old.Enabled == c.Enabled {
			c.Since, c.LastRun = old.Since, old.LastRun
			c.handle = m.store.Put(c.handle, c.record())
		}
	}
	m.storeHeader()
	m.refreshFilter()
	if len(p.triggers)+len(p.scripts) >= bigConfig {
		go giveBackMemory()
	}
}

// bigConfig is the size of configuration past which installing one leaves
// enough garbage (the old configuration, decoding buffers) to be worth a
// collection right away rather than at the next GC.
const bigConfig = 10_000

// giveBackMemory collects the garbage of a big install and returns the free
// pages to the OS, off the main thread.
func giveBackMemory() {
	defer func() { _ = recover() }()
	debug.FreeOSMemory()
}

// Replace prepares and installs c on the main thread: all or nothing.
func (m *Module) Replace(c config.Config, source string) error {
	p, err := m.Prepare(c, m.reuseCompiled)
	if err != nil {
		return err
	}
	m.Install(p, source)
	return nil
}

// Reset empties the configuration, as before any data was loaded: the
// server calls it when it starts loading an RDB or AOF, so that what the
// data holds, or nothing, becomes the configuration.
func (m *Module) Reset() {
	if err := m.Replace(config.Config{Classes: config.DefaultClasses}, "none"); err != nil {
		panic("module: the empty configuration does not install: " + err.Error())
	}
}
