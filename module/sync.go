package module

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/valkey-iungo/valkey-iungo/config"
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
	PublicKey      string // the namespace's: only what it signed is applied
	NodeID         string // default: NodeAddress
	NodeAddress    string // where iungo reaches this node; default host:port
	SyncEvery      time.Duration
	HeartbeatEvery time.Duration
	ValkeyVersion  string
	Timeout        time.Duration // of one request; iungo.DefaultTimeout if 0
}

// SyncState is what INFO shows of the sync.
type SyncState struct {
	LastSyncAt time.Time
	LastError  string
	LastApply  time.Duration // holding the server's lock to apply
	MaxApply   time.Duration
	Syncs      uint64
	Failures   uint64
	Registered bool
}

// errReplica means the node is a replica, which applies what its primary
// replicates, not what iungo sends: syncOnce answers it as a success.
var errReplica = errors.New("this server is a replica: it follows its primary's configuration, not iungo's")

// errWritesPaused means a change from iungo waited pauseWait for writes to
// resume; the sync is retried every pauseRetry until it applies.
var errWritesPaused = errors.New("writes are paused (CLIENT PAUSE, FAILOVER or a manual cluster failover): the change from iungo waits until they resume")

// maxReportedError is as much of its last error as a node reports: iungo
// takes no more.
const maxReportedError = 1024

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
	// running makes syncs one at a time: each reads the state the one
	// before it left (registered, base).
	running sync.Mutex

	mu       sync.Mutex // guards the fields below
	opts     SyncOptions
	state    SyncState
	base     *config.Config // what was applied from iungo last, for deltas
	local    uint64         // the module's revision right after that install
	compiled map[string]*scripting.Script
	started  bool
	// rebind lets the next configuration come from another namespace
	// identity, or be older: the operator pointed the node elsewhere.
	rebind bool
	// defaultNodeID is the node id unless iungo.node-id is set: the
	// cluster node id in a cluster, else the node's address.
	defaultNodeID string

	requests    chan syncRequest
	changed     chan struct{}
	roleChanged chan struct{} // the node became a primary or a replica
	stop        chan struct{}
	stopOnce    sync.Once
}

func newSyncer(m *Module) *syncer {
	return &syncer{
		m:           m,
		requests:    make(chan syncRequest, 64),
		changed:     make(chan struct{}, 1),
		roleChanged: make(chan struct{}, 1),
		stop:        make(chan struct{}),
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
	s.defaultNodeID = opts.NodeID
	go s.loop()
}

// setSyncOption changes one sync option and wakes the loop.
func (s *syncer) setSyncOption(apply func(*SyncOptions)) {
	s.mu.Lock()
	apply(&s.opts)
	s.base = nil // another iungo or namespace: start from a snapshot
	s.rebind = true
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
		o.NodeID = cmp.Or(s.defaultNodeID, o.NodeAddress)
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
			if remote, err := s.heartbeat(); err == nil && remote != s.inForceVersion() {
				_ = syncNow()
			}
			heartbeat = arm(s.options().HeartbeatEvery)
		case <-s.roleChanged:
			// Tell iungo at once, so that its next push finds the new
			// primary; a new primary syncs.
			if s.options().Endpoint != "" {
				if _, err := s.heartbeat(); err == nil {
					_ = syncNow()
				}
			}
		}
	}
}

// Shutdown stops the sync with the server: no request to iungo leaves a
// node that is going away. The module is never unloaded (it owns a data
// type, and a Go runtime cannot leave a process), so this is its last word.
func (m *Module) Shutdown() {
	m.sync.stopOnce.Do(func() { close(m.sync.stop) })
	m.logf(LogNotice, "iungo: the server shuts down; the sync with iungo stopped")
}

// RoleChanged tells the sync that the node became a primary or a replica.
func (m *Module) RoleChanged() {
	m.windowCheck = true // a promoted replica runs what its primary gathered
	select {
	case m.sync.roleChanged <- struct{}{}:
	default:
	}
}

// inForceVersion is the namespace version of the configuration in force.
func (s *syncer) inForceVersion() uint64 {
	var v uint64
	s.server.WithLock(func(Ctx) { v = s.m.origin.Version })
	return v
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
			h.Role, h.Primary = "replica", ctx.Primary()
		}
		m := s.m
		h.Runs, h.Errors, h.Triggers = m.stats.Runs, m.stats.Errors, len(m.triggers)
		h.NamespaceVersion, h.ConfigDigest = m.origin.Version, m.ConfigDigest()
		h.TriggerStats, h.TriggersOmitted, h.RecentErrors = m.runReport()
	})
	st := s.State()
	h.LastError = st.LastError[:min(len(st.LastError), maxReportedError)]
	h.Syncs, h.SyncFailures = st.Syncs, st.Failures
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

// checkOptions says what is missing before a node can follow iungo.
func checkOptions(o SyncOptions) error {
	switch {
	case o.Endpoint == "":
		return errors.New("iungo.endpoint is not set")
	case o.Namespace == "":
		return errors.New("iungo.namespace is not set: CONFIG SET iungo.namespace <the namespace this node follows>")
	case o.PublicKey == "":
		return errors.New("iungo.public-key is not set: CONFIG SET iungo.public-key <the namespace's public key, which iungo-server prints>")
	}
	return nil
}

// syncOnce fetches what changed, prepares it off the main thread, and
// installs it holding the server's lock. On any error the configuration in
// force stays. A configuration older than the one in force, or another one
// under the same version, or from another namespace identity, is refused:
// only iungo's private key signs, but anyone can replay what it signed, and
// a restored iungo can reuse versions.
func (s *syncer) syncOnce() (version uint64, err error) {
	s.running.Lock()
	defer s.running.Unlock()
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("internal error in the sync: %v", r)
		}
		switch {
		case errors.Is(err, errReplica):
			// It became a replica meanwhile: it follows its primary now.
			version, err = s.inForceVersion(), nil
			s.succeeded(nil, nil, 0)
		case err != nil:
			s.fail(err)
			s.m.logf(LogWarning, "iungo: sync failed: %v; the configuration in force stays", err)
		}
	}()
	o := s.options()
	if err := checkOptions(o); err != nil {
		return 0, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*iungo.DefaultTimeout)
	defer cancel()
	if !s.State().Registered {
		if err := s.register(ctx, o); err != nil {
			return 0, err
		}
	}
	if s.role() == "replica" {
		// A replica applies what its primary replicates: nothing to fetch,
		// and nothing wrong.
		return 0, errReplica
	}
	client := s.client(o)
	if client.PublicKey, err = iungo.ParsePublicKey(o.PublicKey); err != nil {
		return 0, fmt.Errorf("iungo.public-key: %w", err)
	}
	s.mu.Lock()
	base, compiled, rebind := s.base, s.compiled, s.rebind
	s.mu.Unlock()
	cur, base := s.inForce(base)
	next, err := fetch(ctx, client, base)
	if err != nil {
		return 0, err
	}
	if err := checkForward(cur, next.Origin, rebind); err != nil {
		return 0, err
	}
	if next.Origin == cur && (base != nil || s.holds(next)) {
		s.succeeded(&next, compiled, 0)
		return next.Origin.Version, nil
	}
	p, err := s.m.Prepare(next, func(name, source string) *scripting.Script {
		if c := compiled[name]; c != nil && c.Source == source {
			return c
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("iungo's configuration of version %d is refused: %w", next.Origin.Version, err)
	}
	held, local, err := s.install(p, cur, rebind)
	if err != nil {
		p.Discard(s.m)
		return 0, err
	}
	s.mu.Lock()
	s.local, s.rebind = local, false
	s.mu.Unlock()
	s.succeeded(&next, p.scripts, held)
	s.m.logf(LogNotice, "iungo: applied version %d from %s (namespace %s), %d scripts, %d triggers, in %v on the main thread",
		next.Origin.Version, o.Endpoint, o.Namespace, len(next.Scripts), len(next.Triggers), held)
	return next.Origin.Version, nil
}

// inForce returns the origin of the configuration in force, and base if
// it still is that configuration, unchanged since the sync installed it
// (nil otherwise: the sync then asks for a snapshot).
func (s *syncer) inForce(base *config.Config) (config.Origin, *config.Config) {
	var cur config.Origin
	s.server.WithLock(func(Ctx) {
		cur = s.m.origin
		if base != nil && (s.m.revision != s.local || base.Origin != cur) {
			base = nil
		}
	})
	return cur, base
}

// holds reports whether the configuration in force has next's content,
// e.g. after a restart: its digest is computed once per change.
func (s *syncer) holds(next config.Config) bool {
	paused := next
	paused.Paused = true
	unpausedDigest, pausedDigest := iungo.ContentDigest(next), config.Digest(paused)
	held := false
	s.server.WithLock(func(Ctx) {
		want := unpausedDigest
		if s.m.paused {
			want = pausedDigest
		}
		held = want == s.m.ConfigDigest()
	})
	return held
}

// fetch asks iungo for what changed since base (everything without one)
// and returns the configuration it describes, checked against iungo's
// digest. A delta that does not fit base, or does not give the digest it
// announces, is dropped for a snapshot.
func fetch(ctx context.Context, c *iungo.Client, base *config.Config) (config.Config, error) {
	since := uint64(0)
	if base != nil {
		since = base.Origin.Version
	}
	upd, err := c.Changes(ctx, since)
	if err != nil {
		return config.Config{}, err
	}
	if upd.Delta != nil {
		if base != nil {
			if next, err := upd.Delta.Apply(*base); err == nil && iungo.ContentDigest(next) == next.Origin.Digest {
				return next, nil
			}
		}
		if upd, err = c.Changes(ctx, 0); err != nil {
			return config.Config{}, err
		}
		if upd.Snapshot == nil {
			return config.Config{}, errors.New("iungo answered a request for everything with a delta")
		}
	}
	next, err := upd.Snapshot.Config()
	if err != nil {
		return next, err
	}
	switch {
	case next.Origin.NamespaceID == "":
		return next, errors.New("iungo's snapshot has no namespace_id")
	case iungo.ContentDigest(next) != next.Origin.Digest:
		return next, fmt.Errorf("iungo's snapshot of version %d does not hold what its digest %s says", next.Origin.Version, next.Origin.Digest)
	}
	return next, nil
}

// checkForward refuses a configuration that would not move the node
// forward from cur: another identity, an older version, or another content
// under the same version. rebind allows the first two once.
func checkForward(cur, next config.Origin, rebind bool) error {
	switch {
	case cur.NamespaceID == "":
		return nil
	case next.NamespaceID != cur.NamespaceID && !rebind:
		return fmt.Errorf("iungo answers for namespace identity %s, this node follows %s: the namespace was recreated, or another iungo answers. Refused; to follow it, CONFIG SET iungo.namespace or iungo.endpoint again",
			next.NamespaceID, cur.NamespaceID)
	case next.NamespaceID != cur.NamespaceID:
		return nil
	case next.Version < cur.Version && !rebind:
		return fmt.Errorf("iungo sent version %d, older than version %d in force: a replayed answer, or iungo restored from a backup. Refused; publish a newer version in iungo",
			next.Version, cur.Version)
	case next.Version == cur.Version && next.Digest != cur.Digest:
		return fmt.Errorf("iungo's version %d holds %s, but version %d in force holds %s: iungo was restored from a backup, or the answer is a forgery. Refused; publish a newer version in iungo",
			next.Version, next.Digest, cur.Version, cur.Digest)
	}
	return nil
}

// install swaps p in holding the server's lock, once writes are not
// paused (replicating then would abort the server: the change waits, at
// most pauseWait), and replicates it as one IUNGO RESTORE. What is in force
// must still be cur, or another sync or a replicated change got there
// first.
func (s *syncer) install(p *Prepared, cur config.Origin, rebind bool) (held time.Duration, local uint64, err error) {
	for waited := time.Duration(0); ; waited += pausePoll {
		paused := false
		s.server.WithLock(func(ctx Ctx) {
			start := time.Now()
			defer func() { held = time.Since(start) }()
			m := s.m
			switch {
			case ctx.Flags()&FlagReplica != 0:
				err = errReplica
			case ctx.WritesPaused():
				paused = true
			case m.origin != cur:
				err = checkForward(m.origin, p.cfg.Origin, rebind)
			}
			if err != nil || paused {
				return
			}
			// Paused stays the operator's; the revision moves on by one.
			p.cfg.Paused, p.cfg.Revision = m.paused, m.revision+1
			m.Install(p, "iungo")
			ctx.ReplicateRestore(p.body.Finish(m.header()))
			local = m.revision
		})
		if !paused {
			return held, local, err
		}
		if waited >= pauseWait {
			return held, 0, errWritesPaused
		}
		time.Sleep(pausePoll)
	}
}

func (s *syncer) succeeded(base *config.Config, compiled map[string]*scripting.Script, held time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.base, s.compiled = base, compiled
	s.state.LastSyncAt, s.state.LastError = time.Now(), ""
	s.state.Syncs++
	if held > 0 {
		s.state.LastApply = held
		s.state.MaxApply = max(s.state.MaxApply, held)
	}
}
