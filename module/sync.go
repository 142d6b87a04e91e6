package module

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/valkey-iungo/valkey-iungo/iungo"
	"github.com/valkey-iungo/valkey-iungo/scripting"
)

// Server is the server as background goroutines reach it.
type Server interface {
	// WithLock runs fn holding the server's global lock, with a context
	// whose replication goes out at once. Module state may only be touched
	// there or on the main thread.
	WithLock(fn func(Ctx))
}

// SyncOptions say where iungo is and who this node is.
type SyncOptions struct {
	Endpoint       string
	Namespace      string
	Token          string
	NodeID         string // default: NodeAddress
	NodeAddress    string // where iungo reaches this node; default host:port
	SyncEvery      time.Duration
	HeartbeatEvery time.Duration
	ValkeyVersion  string
	Timeout        time.Duration // of one request; iungo.DefaultTimeout if 0
}

// SyncState is what INFO shows of the sync.
type SyncState struct {
	Version    uint64 // the iungo version applied last
	LastSyncAt time.Time
	LastError  string
	LastApply  time.Duration // holding the server's lock to apply
	MaxApply   time.Duration
	Syncs      uint64
	Failures   uint64
	Registered bool
}

// errReplica means a replica does not apply what iungo sends: it follows
// its primary.
var errReplica = errors.New("this server is a replica: it follows its primary's configuration, not iungo's")

// errWritesPaused means a change from iungo waited pauseWait for writes to
// resume; the sync is retried every pauseRetry until it applies.
var errWritesPaused = errors.New("writes are paused (CLIENT PAUSE, FAILOVER or a manual cluster failover): the change from iungo waits until they resume")

const (
	pausePoll  = 20 * time.Millisecond
	pauseWait  = 10 * time.Second
	pauseRetry = time.Second
)

// syncRequest is an IUNGO SYNC waiting for the next sync.
type syncRequest struct {
	done func(version uint64, err error)
}

// syncer keeps the configuration in step with iungo. Its goroutine does
// the network, the checking and the compiling; only Install runs holding
// the server's lock.
type syncer struct {
	m      *Module
	server Server

	mu       sync.Mutex // guards the fields below
	opts     SyncOptions
	state    SyncState
	base     *Config // what was applied from iungo last, for deltas
	local    uint64  // the module's version right after that install
	compiled map[string]*scripting.Script
	started  bool

	requests chan syncRequest
	changed  chan struct{}
	stop     chan struct{}
}

func newSyncer(m *Module) *syncer {
	return &syncer{
		m:        m,
		requests: make(chan syncRequest, 64),
		changed:  make(chan struct{}, 1),
		stop:     make(chan struct{}),
	}
}

// StartSync starts syncing with iungo in the background once the server
// has loaded its data: server reaches the main thread; opts give the
// server's version and, unless iungo.node-address is set, its address.
func (m *Module) StartSync(server Server, opts SyncOptions) {
	s := m.sync
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.started {
		return
	}
	s.started, s.server = true, server
	s.opts.ValkeyVersion, s.opts.Timeout = opts.ValkeyVersion, opts.Timeout
	if s.opts.NodeAddress == "" {
		s.opts.NodeAddress = opts.NodeAddress
	}
	go s.loop()
}

// setSyncOption changes one sync option and wakes the loop.
func (s *syncer) setSyncOption(apply func(*SyncOptions)) {
	s.mu.Lock()
	apply(&s.opts)
	s.base = nil // another iungo or namespace: start from a snapshot
	s.state.Registered = false
	s.mu.Unlock()
	select {
	case s.changed <- struct{}{}:
	default:
	}
}

func (s *syncer) options() SyncOptions {
	s.mu.Lock()
	defer s.mu.Unlock()
	o := s.opts
	if o.NodeID == "" {
		o.NodeID = o.NodeAddress
	}
	return o
}

// State returns the sync's state, for INFO.
func (s *syncer) State() SyncState {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.state
}

func (s *syncer) client(o SyncOptions) *iungo.Client {
	return &iungo.Client{Endpoint: o.Endpoint, Namespace: o.Namespace, Token: o.Token, Timeout: o.Timeout}
}

// request asks for a sync now; done runs on the sync goroutine when it is
// over.
func (s *syncer) request(done func(uint64, error)) {
	select {
	case s.requests <- syncRequest{done: done}:
	default:
		done(0, errors.New("too many IUNGO SYNC waiting; try again"))
	}
}

const (
	minBackoff = time.Second
	maxBackoff = time.Minute
)

// loop registers, syncs, heartbeats and retries until the module goes.
func (s *syncer) loop() {
	defer func() {
		if r := recover(); r != nil {
			s.m.logf(LogWarning, "iungo: recovered from a panic in the sync loop: %v; restarting it", r)
			time.Sleep(minBackoff)
			go s.loop()
		}
	}()
	backoff := minBackoff
	var retry, heartbeat, periodic <-chan time.Time
	arm := func(d time.Duration) <-chan time.Time {
		if d <= 0 {
			return nil
		}
		return time.After(d)
	}
	syncNow := func() error {
		_, err := s.syncOnce()
		switch {
		case errors.Is(err, errWritesPaused):
			retry = time.After(pauseRetry) // not the network's fault: no backoff
		case err != nil:
			retry = time.After(backoff)
			backoff = min(2*backoff, maxBackoff)
		default:
			retry, backoff = nil, minBackoff
		}
		return err
	}
	reset := func() {
		o := s.options()
		retry, heartbeat, periodic = nil, nil, nil
		if o.Endpoint == "" {
			return
		}
		heartbeat, periodic = arm(o.HeartbeatEvery), arm(o.SyncEvery)
		retry = time.After(0) // register and sync at once
	}
	reset()
	for {
		select {
		case <-s.stop:
			return
		case <-s.changed:
			backoff = minBackoff
			reset()
		case req := <-s.requests:
			v, err := s.syncOnce()
			req.done(v, err)
			if errors.Is(err, errWritesPaused) {
				retry = time.After(pauseRetry)
			}
		case <-retry:
			_ = syncNow()
		case <-periodic:
			_ = syncNow()
			periodic = arm(s.options().SyncEvery)
		case <-heartbeat:
			if remote, err := s.heartbeat(); err == nil && remote > s.State().Version {
				_ = syncNow()
			}
			heartbeat = arm(s.options().HeartbeatEvery)
		}
	}
}

// role reads the node's role under the server's lock.
func (s *syncer) role() string {
	role := "primary"
	s.server.WithLock(func(ctx Ctx) {
		if ctx.Flags()&FlagReplica != 0 {
			role = "replica"
		}
	})
	return role
}

func (s *syncer) register(ctx context.Context, o SyncOptions) error {
	_, err := s.client(o).Register(ctx, iungo.Registration{
		NodeID: o.NodeID, Address: o.NodeAddress, ValkeyVersion: o.ValkeyVersion,
		ModuleVersion: ModuleVersion, Role: s.role(),
	})
	if err != nil {
		return fmt.Errorf("registering with iungo: %w", err)
	}
	s.mu.Lock()
	s.state.Registered = true
	s.mu.Unlock()
	return nil
}

// heartbeat reports health and returns iungo's version.
func (s *syncer) heartbeat() (uint64, error) {
	o := s.options()
	if o.Endpoint == "" {
		return 0, nil
	}
	h := iungo.Health{Role: "primary"}
	s.server.WithLock(func(ctx Ctx) {
		if ctx.Flags()&FlagReplica != 0 {
			h.Role = "replica"
		}
		h.Runs, h.Errors, h.Triggers = s.m.stats.Runs, s.m.stats.Errors, len(s.m.triggers)
	})
	st := s.State()
	h.SyncVersion, h.LastError = st.Version, st.LastError
	if !st.LastSyncAt.IsZero() {
		h.LastSyncAt = st.LastSyncAt.UTC().Format(time.RFC3339)
	}
	ctx, cancel := context.WithTimeout(context.Background(), iungo.DefaultTimeout)
	defer cancel()
	reply, err := s.client(o).Heartbeat(ctx, o.NodeID, h)
	if iungo.IsNotFound(err) {
		err = s.register(ctx, o)
	}
	if err != nil {
		s.fail(err)
		return 0, err
	}
	return reply.Version, nil
}

func (s *syncer) fail(err error) {
	s.mu.Lock()
	s.state.LastError = err.Error()
	s.state.Failures++
	s.mu.Unlock()
}

// syncOnce fetches what changed, prepares it off the main thread, and
// installs it holding the server's lock. On any error the configuration in
// force stays.
func (s *syncer) syncOnce() (version uint64, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("internal error in the sync: %v", r)
		}
		if err != nil {
			s.fail(err)
			s.m.logf(LogWarning, "iungo: sync failed: %v; the configuration in force stays", err)
		}
	}()
	o := s.options()
	if o.Endpoint == "" {
		return 0, errors.New("iungo.endpoint is not set")
	}
	if s.role() == "replica" {
		return 0, errReplica
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*iungo.DefaultTimeout)
	defer cancel()
	if !s.State().Registered {
		if err := s.register(ctx, o); err != nil {
			return 0, err
		}
	}
	s.mu.Lock()
	base, compiled := s.base, s.compiled
	s.mu.Unlock()
	since := uint64(0)
	if base != nil {
		since = base.SyncVersion
	}
	upd, err := s.client(o).Changes(ctx, since)
	if err != nil {
		return 0, err
	}
	var next Config
	switch {
	case upd.Snapshot != nil:
		next, err = SnapshotConfig(upd.Snapshot)
	case base != nil:
		next, err = ApplyChanges(*base, upd.Delta)
	default:
		err = errors.New("iungo sent a delta though no configuration from it is in force")
	}
	if err != nil {
		return 0, err
	}
	if base != nil && next.SyncVersion == base.SyncVersion && s.untouched() {
		s.succeeded(next, base, compiled, 0)
		return next.SyncVersion, nil
	}
	p, err := s.m.Prepare(next, func(name, source string) *scripting.Script {
		if c := compiled[name]; c != nil && c.Source == source {
			return c
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("iungo's configuration of version %d is refused: %w", next.SyncVersion, err)
	}
	var applyErr error
	var held time.Duration
	var local uint64
	for waited := time.Duration(0); ; waited += pausePoll {
		paused := false
		s.server.WithLock(func(ctx Ctx) {
			start := time.Now()
			defer func() { held = time.Since(start) }()
			switch {
			case ctx.Flags()&FlagReplica != 0:
				applyErr = errReplica
				return
			case ctx.WritesPaused():
				// Replicating now would abort the server: the prepared
				// change waits for writes to resume.
				paused = true
				return
			}
			m := s.m
			// Paused stays the operator's; the local version moves on by one.
			p.cfg.Paused, p.cfg.Version = m.paused, m.version+1
			m.Install(p, "iungo")
			ctx.ReplicateCommand(RestoreCommand(p.body.finish(m.header())))
			local = m.version
		})
		if !paused {
			break
		}
		if waited >= pauseWait {
			applyErr = errWritesPaused
			break
		}
		time.Sleep(pausePoll)
	}
	if applyErr != nil {
		p.Discard(s.m)
		return 0, applyErr
	}
	s.mu.Lock()
	s.local = local
	s.mu.Unlock()
	s.succeeded(next, &next, p.scripts, held)
	s.m.logf(LogNotice, "iungo: applied version %d from %s (namespace %s), %d scripts, %d triggers, in %v on the main thread",
		next.SyncVersion, o.Endpoint, o.Namespace, len(next.Scripts), len(next.Triggers), held)
	return next.SyncVersion, nil
}

// untouched reports whether the configuration is still the one the last
// sync installed: nothing changed it locally since.
func (s *syncer) untouched() bool {
	s.mu.Lock()
	local := s.local
	s.mu.Unlock()
	same := false
	s.server.WithLock(func(Ctx) { same = s.m.version == local })
	return same
}

func (s *syncer) succeeded(next Config, base *Config, compiled map[string]*scripting.Script, held time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.base, s.compiled = base, compiled
	s.state.Version, s.state.LastSyncAt, s.state.LastError = next.SyncVersion, time.Now(), ""
	s.state.Syncs++
	if held > 0 {
		s.state.LastApply = held
		s.state.MaxApply = max(s.state.MaxApply, held)
	}
}

// eventClasses reads iungo's event class names: absent means the default
// classes, an empty list none.
func eventClasses(names []string) (Class, error) {
	switch {
	case names == nil:
		return DefaultClasses, nil
	case len(names) == 0:
		return 0, nil
	}
	return ParseClasses([]string{strings.Join(names, ",")})
}

// SnapshotConfig turns iungo's snapshot into a Config.
func SnapshotConfig(sn *iungo.Snapshot) (Config, error) {
	c := Config{SyncVersion: sn.Version}
	var err error
	if c.Classes, err = eventClasses(sn.Events); err != nil {
		return c, err
	}
	for _, s := range sn.Scripts {
		c.Scripts = append(c.Scripts, ScriptDef{Name: s.Name, Source: s.Source})
	}
	for _, t := range sn.Triggers {
		c.Triggers = append(c.Triggers, TriggerDef{Pattern: t.Pattern, Events: t.Events, Script: t.Script, Enabled: t.Enabled})
	}
	return c, nil
}

// ApplyChanges turns base, of version d.From, into the configuration of
// version d.Version.
func ApplyChanges(base Config, d *iungo.Changes) (Config, error) {
	if base.SyncVersion != d.From {
		return base, fmt.Errorf("iungo sent a delta from version %d, the configuration in force is %d", d.From, base.SyncVersion)
	}
	c := Config{SyncVersion: d.Version, Classes: base.Classes}
	if d.Events != nil {
		var err error
		if c.Classes, err = eventClasses(d.Events); err != nil {
			return c, err
		}
	}
	unset := map[string]bool{}
	for _, name := range d.Scripts.Unset {
		unset[name] = true
	}
	set := map[string]string{}
	for _, sc := range d.Scripts.Set {
		set[sc.Name] = sc.Source
	}
	for _, sc := range base.Scripts {
		if src, ok := set[sc.Name]; ok {
			sc.Source = src
			delete(set, sc.Name)
		}
		if !unset[sc.Name] {
			c.Scripts = append(c.Scripts, sc)
		}
	}
	for _, sc := range d.Scripts.Set {
		if _, ok := set[sc.Name]; ok {
			c.Scripts = append(c.Scripts, ScriptDef{Name: sc.Name, Source: sc.Source})
		}
	}
	slices.SortFunc(c.Scripts, func(a, b ScriptDef) int { return strings.Compare(a.Name, b.Name) })
	key := func(pattern, events string) string {
		evs, _ := ParseEvents(events)
		return triggerID(pattern, evs)
	}
	gone := map[string]bool{}
	for _, k := range d.Triggers.Unset {
		gone[key(k.Pattern, k.Events)] = true
	}
	setT := map[string]iungo.Trigger{}
	for _, t := range d.Triggers.Set {
		setT[key(t.Pattern, t.Events)] = t
	}
	// A trigger removed and set again in one delta leaves its place and
	// goes to the end, as a new registration.
	for _, t := range base.Triggers {
		k := key(t.Pattern, t.Events)
		if gone[k] {
			continue
		}
		if nt, ok := setT[k]; ok {
			t.Script, t.Enabled = nt.Script, nt.Enabled
			delete(setT, k)
		}
		c.Triggers = append(c.Triggers, t)
	}
	for _, t := range d.Triggers.Set {
		if _, ok := setT[key(t.Pattern, t.Events)]; ok {
			c.Triggers = append(c.Triggers, TriggerDef{Pattern: t.Pattern, Events: t.Events, Script: t.Script, Enabled: t.Enabled})
		}
	}
	return c, nil
}
