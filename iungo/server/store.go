package server

import (
	"cmp"
	"crypto/ed25519"
	"crypto/rand"
	"database/sql"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	_ "modernc.org/sqlite" // the embedded, pure-Go SQLite driver

	"github.com/valkey-iungo/valkey-iungo/config"
	"github.com/valkey-iungo/valkey-iungo/iungo"
)

// historyLength is how many changes per namespace the store keeps for
// deltas; older versions get a snapshot.
const historyLength = 1000

// Errors the API maps to HTTP statuses.
var (
	ErrNotFound = errors.New("not found")
	ErrConflict = errors.New("conflict")
)

// Namespace groups nodes that share one configuration.
type Namespace struct {
	Name  string
	ID    string // identity: made at creation, kept by backups
	Token string
	// Key signs the namespace's configurations; nodes pin its public half.
	Key       ed25519.PrivateKey
	Version   uint64
	Events    []string
	CreatedAt time.Time
	// PushUser and PushPassword authenticate pushes to this namespace's
	// nodes, if set.
	PushUser, PushPassword string
	// TryUser and TryPassword authenticate dry runs (IUNGO TRY) on this
	// namespace's nodes, if set.
	TryUser, TryPassword string
}

// PublicKey is the key nodes pin (iungo.public-key), as text.
func (ns Namespace) PublicKey() string {
	return iungo.PublicKeyString(ns.Key.Public().(ed25519.PublicKey))
}

// Node is what a node said at registration and in its last heartbeat.
type Node struct {
	Namespace        string
	ID               string
	Address          string
	ValkeyVersion    string
	ModuleVersion    string
	Role             string
	RegisteredAt     time.Time
	LastSeen         time.Time
	NamespaceVersion uint64 // the version of the namespace the node runs
	ConfigDigest     string // the digest of what it runs
	LastSyncAt       string
	LastError        string
	Runs, Errors     uint64
	Triggers         int
	Primary          string // the primary a replica follows
	Syncs            uint64
	SyncFailures     uint64
	// What its triggers' runs did, as its last heartbeat said.
	TriggerStats    []iungo.TriggerStats `json:"trigger_stats"`
	TriggersOmitted int                  `json:"triggers_omitted"`
	RecentErrors    []iungo.RunError     `json:"recent_errors"`
}

// Store keeps namespaces, their configurations, their change history and
// their nodes in an SQLite database file, readable by its owner only: it
// holds the tokens and the signing keys.
type Store struct {
	db       *sql.DB
	mu       sync.Mutex // one writer at a time
	MaxNodes int        // per namespace; DefaultMaxNodes if 0
}

// DefaultMaxNodes bounds the nodes one namespace may register.
const DefaultMaxNodes = 1000

// Limits on what a node may send.
const (
	maxAddressBytes = 255
	maxVersionBytes = 64
	maxErrorBytes   = 1024
)

const schema = `
CREATE TABLE IF NOT EXISTS namespaces (
	name TEXT PRIMARY KEY, id TEXT NOT NULL, token TEXT NOT NULL, signing_key TEXT NOT NULL,
	version INTEGER NOT NULL, events TEXT NOT NULL, created_at TEXT NOT NULL,
	push_user TEXT NOT NULL DEFAULT '', push_password TEXT NOT NULL DEFAULT '');
CREATE TABLE IF NOT EXISTS versions (
	ns TEXT NOT NULL, version INTEGER NOT NULL, digest TEXT NOT NULL, paused_digest TEXT NOT NULL,
	at TEXT NOT NULL, PRIMARY KEY (ns, version));
CREATE TABLE IF NOT EXISTS drafts (
	ns TEXT PRIMARY KEY, content TEXT NOT NULL, updated_at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS scripts (
	ns TEXT NOT NULL, name TEXT NOT NULL, source TEXT NOT NULL, PRIMARY KEY (ns, name));
CREATE TABLE IF NOT EXISTS triggers (
	ns TEXT NOT NULL, seq INTEGER NOT NULL, pattern TEXT NOT NULL, events TEXT NOT NULL,
	script TEXT NOT NULL, enabled INTEGER NOT NULL, PRIMARY KEY (ns, pattern, events));
CREATE TABLE IF NOT EXISTS crons (ns TEXT NOT NULL, name TEXT NOT NULL, schedule TEXT NOT NULL,
	script TEXT NOT NULL, enabled INTEGER NOT NULL, PRIMARY KEY (ns, name));
CREATE TABLE IF NOT EXISTS changes (
	ns TEXT NOT NULL, version INTEGER NOT NULL, op TEXT NOT NULL, payload TEXT NOT NULL,
	PRIMARY KEY (ns, version, op, payload));
CREATE TABLE IF NOT EXISTS nodes (
	ns TEXT NOT NULL, id TEXT NOT NULL, address TEXT NOT NULL, valkey_version TEXT NOT NULL,
	module_version TEXT NOT NULL, role TEXT NOT NULL, registered_at TEXT NOT NULL,
	last_seen TEXT NOT NULL, namespace_version INTEGER NOT NULL DEFAULT 0, config_digest TEXT NOT NULL DEFAULT '',
	last_sync_at TEXT NOT NULL DEFAULT '',
	last_error TEXT NOT NULL DEFAULT '', runs INTEGER NOT NULL DEFAULT 0, errors INTEGER NOT NULL DEFAULT 0,
	triggers INTEGER NOT NULL DEFAULT 0, primary_address TEXT NOT NULL DEFAULT '', PRIMARY KEY (ns, id));
`

// OpenStore opens (creating it if needed) the database in dir. The
// directory and the files are its owner's only.
func OpenStore(dir string) (*Store, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	path := filepath.Join(dir, "iungo.db")
	for _, name := range []string{path, path + "-wal", path + "-shm"} {
		f, err := os.OpenFile(name, os.O_RDWR|os.O_CREATE, 0o600)
		if err != nil {
			return nil, err
		}
		f.Close()
		if err := os.Chmod(name, 0o600); err != nil {
			return nil, err
		}
	}
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(5000)&_pragma=journal_mode(WAL)")
	if err != nil {
		return nil, err
	}
	db.SetMaxOpenConns(1)
	if _, err := db.Exec(schema); err != nil {
		db.Close()
		return nil, fmt.Errorf("creating the schema: %w", err)
	}
	if err := migrate(db); err != nil {
		db.Close()
		return nil, fmt.Errorf("updating the schema: %w", err)
	}
	return &Store{db: db}, nil
}

// columnsAdded are the columns later releases added to tables that older
// databases already have.
var columnsAdded = []struct{ table, column, def string }{
	{"versions", "content", "TEXT NOT NULL DEFAULT ''"},
	{"versions", "author", "TEXT NOT NULL DEFAULT ''"},
	{"versions", "message", "TEXT NOT NULL DEFAULT ''"},
	{"namespaces", "try_user", "TEXT NOT NULL DEFAULT ''"},
	{"namespaces", "try_password", "TEXT NOT NULL DEFAULT ''"},
	{"nodes", "syncs", "INTEGER NOT NULL DEFAULT 0"},
	{"nodes", "sync_failures", "INTEGER NOT NULL DEFAULT 0"},
	{"nodes", "trigger_stats", "TEXT NOT NULL DEFAULT '[]'"},
	{"nodes", "recent_errors", "TEXT NOT NULL DEFAULT '[]'"},
	{"triggers", "window_ms", "INTEGER NOT NULL DEFAULT 0"},
}

func migrate(db *sql.DB) error {
	for _, c := range columnsAdded {
		var n int
		if err := db.QueryRow(`SELECT COUNT(*) FROM pragma_table_info(?) WHERE name = ?`, c.table, c.column).Scan(&n); err != nil {
			return err
		}
		if n == 0 {
			if _, err := db.Exec(`ALTER TABLE ` + c.table + ` ADD COLUMN ` + c.column + ` ` + c.def); err != nil {
				return err
			}
		}
	}
	return nil
}

// Close closes the database.
func (s *Store) Close() error { return s.db.Close() }

// NewToken returns a random token.
func NewToken() string {
	b := make([]byte, 24)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func now() string { return time.Now().UTC().Format(time.RFC3339) }

// CreateNamespace creates an empty namespace with the default event
// classes; an empty token gets a random one.
func (s *Store) CreateNamespace(name, token string) (Namespace, error) {
	if err := config.CheckName("namespace", name); err != nil {
		return Namespace{}, fmt.Errorf("%w: %v", errBadRequest, err)
	}
	if token == "" {
		token = NewToken()
	}
	_, key, err := ed25519.GenerateKey(nil)
	if err != nil {
		return Namespace{}, err
	}
	events := config.ClassNames(config.DefaultClasses)
	initial := config.Config{Classes: config.DefaultClasses}
	s.mu.Lock()
	defer s.mu.Unlock()
	tx, err := s.db.Begin()
	if err != nil {
		return Namespace{}, err
	}
	defer tx.Rollback()
	t := now()
	_, err = tx.Exec(`INSERT INTO namespaces (name, id, token, signing_key, version, events, created_at) VALUES (?, ?, ?, ?, 1, ?, ?)`,
		name, NewToken()[:32], token, base64.StdEncoding.EncodeToString(key.Seed()), payload(events), t)
	if err != nil {
		if strings.Contains(err.Error(), "UNIQUE") {
			return Namespace{}, fmt.Errorf("%w: namespace %q exists", ErrConflict, name)
		}
		return Namespace{}, err
	}
	first := Content{Events: events, Scripts: []iungo.Script{}, Triggers: []iungo.Trigger{}}
	if err := recordVersion(tx, name, 1, initial, first, meta{author: "iungo", message: "namespace created"}, t); err != nil {
		return Namespace{}, err
	}
	if err := tx.Commit(); err != nil {
		return Namespace{}, err
	}
	return s.Namespace(name)
}

// errBadRequest marks errors of what the caller sent.
var errBadRequest = errors.New("bad request")

// Namespaces lists the namespaces by name.
func (s *Store) Namespaces() ([]Namespace, error) {
	rows, err := s.db.Query(`SELECT name FROM namespaces ORDER BY name`)
	if err != nil {
		return nil, err
	}
	var names []string
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			rows.Close()
			return nil, err
		}
		names = append(names, n)
	}
	rows.Close()
	out := make([]Namespace, 0, len(names))
	for _, n := range names {
		ns, err := s.Namespace(n)
		if err != nil {
			return nil, err
		}
		out = append(out, ns)
	}
	return out, nil
}

// Namespace returns one namespace.
func (s *Store) Namespace(name string) (Namespace, error) {
	return namespace(s.db, name)
}

type querier interface {
	QueryRow(query string, args ...any) *sql.Row
	Query(query string, args ...any) (*sql.Rows, error)
}

func namespace(q querier, name string) (Namespace, error) {
	var ns Namespace
	var events, created, seed string
	err := q.QueryRow(`SELECT name, id, token, signing_key, version, events, created_at, push_user, push_password,
		try_user, try_password FROM namespaces WHERE name = ?`, name).
		Scan(&ns.Name, &ns.ID, &ns.Token, &seed, &ns.Version, &events, &created, &ns.PushUser, &ns.PushPassword,
			&ns.TryUser, &ns.TryPassword)
	if errors.Is(err, sql.ErrNoRows) {
		return ns, fmt.Errorf("%w: namespace %q does not exist", ErrNotFound, name)
	}
	if err != nil {
		return ns, err
	}
	ns.CreatedAt, _ = time.Parse(time.RFC3339, created)
	b, err := base64.StdEncoding.DecodeString(seed)
	if err != nil || len(b) != ed25519.SeedSize {
		return ns, fmt.Errorf("namespace %q: its signing key is unreadable", name)
	}
	ns.Key = ed25519.NewKeyFromSeed(b)
	err = json.Unmarshal([]byte(events), &ns.Events)
	return ns, err
}

// Snapshot returns a namespace's whole configuration.
func (s *Store) Snapshot(name string) (iungo.Snapshot, error) {
	return snapshot(s.db, name)
}

func snapshot(q querier, name string) (iungo.Snapshot, error) {
	sn, err := snapshotContent(q, name)
	if err != nil {
		return sn, err
	}
	if err := q.QueryRow(`SELECT digest FROM versions WHERE ns = ? AND version = ?`, name, sn.Version).Scan(&sn.Digest); err != nil {
		return sn, fmt.Errorf("namespace %q has no digest for version %d: %w", name, sn.Version, err)
	}
	return sn, nil
}

// snapshotContent is the snapshot without its digest.
func snapshotContent(q querier, name string) (iungo.Snapshot, error) {
	ns, err := namespace(q, name)
	if err != nil {
		return iungo.Snapshot{}, err
	}
	sn := iungo.Snapshot{Namespace: name, NamespaceID: ns.ID, Version: ns.Version, Events: ns.Events,
		Scripts: []iungo.Script{}, Triggers: []iungo.Trigger{}}
	rows, err := q.Query(`SELECT name, source FROM scripts WHERE ns = ? ORDER BY name`, name)
	if err != nil {
		return sn, err
	}
	for rows.Next() {
		var sc iungo.Script
		if err := rows.Scan(&sc.Name, &sc.Source); err != nil {
			rows.Close()
			return sn, err
		}
		sn.Scripts = append(sn.Scripts, sc)
	}
	rows.Close()
	rows, err = q.Query(`SELECT pattern, events, script, enabled, window_ms FROM triggers WHERE ns = ? ORDER BY seq`, name)
	if err != nil {
		return sn, err
	}
	defer rows.Close()
	for rows.Next() {
		var t iungo.Trigger
		if err := rows.Scan(&t.Pattern, &t.Events, &t.Script, &t.Enabled, &t.WindowMs); err != nil {
			return sn, err
		}
		sn.Triggers = append(sn.Triggers, t)
	}
	if err := rows.Err(); err != nil {
		return sn, err
	}
	rows.Close()
	rows, err = q.Query(`SELECT name, schedule, script, enabled FROM crons WHERE ns = ? ORDER BY name`, name)
	if err != nil {
		return sn, err
	}
	defer rows.Close()
	for rows.Next() {
		var cr iungo.Cron
		if err := rows.Scan(&cr.Name, &cr.Schedule, &cr.Script, &cr.Enabled); err != nil {
			return sn, err
		}
		sn.Crons = append(sn.Crons, cr)
	}
	return sn, rows.Err()
}

// change is one entry of a namespace's history.
type change struct {
	op      string // script_set, script_unset, trigger_set, trigger_unset, events
	payload string // JSON
}

// mutate runs fn in a transaction that bumps the namespace's version and
// records fn's changes under it, with who made them and why; it returns
// the new version.
func (s *Store) mutate(name string, m meta, fn func(tx *sql.Tx) ([]change, error)) (uint64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	tx, err := s.db.Begin()
	if err != nil {
		return 0, err
	}
	defer tx.Rollback()
	var version uint64
	if err := tx.QueryRow(`SELECT version FROM namespaces WHERE name = ?`, name).Scan(&version); err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return 0, fmt.Errorf("%w: namespace %q does not exist", ErrNotFound, name)
		}
		return 0, err
	}
	changes, err := fn(tx)
	if err != nil {
		return 0, err
	}
	version++
	if _, err := tx.Exec(`UPDATE namespaces SET version = ? WHERE name = ?`, version, name); err != nil {
		return 0, err
	}
	for _, c := range changes {
		if _, err := tx.Exec(`INSERT OR REPLACE INTO changes (ns, version, op, payload) VALUES (?, ?, ?, ?)`, name, version, c.op, c.payload); err != nil {
			return 0, err
		}
	}
	// The digest of what the new version holds: nodes check that the
	// version they apply names exactly this.
	sn, err := snapshotContent(tx, name)
	if err != nil {
		return 0, err
	}
	c, err := sn.Config()
	if err != nil {
		return 0, err
	}
	if err := recordVersion(tx, name, version, c, contentOf(sn), m, now()); err != nil {
		return 0, err
	}
	if _, err := tx.Exec(`DELETE FROM changes WHERE ns = ? AND version <= ?`, name, int64(version)-historyLength); err != nil {
		return 0, err
	}
	if _, err := tx.Exec(`DELETE FROM versions WHERE ns = ? AND version <= ?`, name, int64(version)-historyLength); err != nil {
		return 0, err
	}
	return version, tx.Commit()
}

// recordVersion keeps a version: its content, who published it and why,
// and its digests: of its content, and of its content paused, which is
// what a node paused on it reports.
func recordVersion(tx *sql.Tx, ns string, version uint64, c config.Config, content Content, m meta, at string) error {
	paused := c
	paused.Paused = true
	_, err := tx.Exec(`INSERT OR REPLACE INTO versions (ns, version, digest, paused_digest, at, content, author, message)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
		ns, version, iungo.ContentDigest(c), config.Digest(paused), at, payload(content), m.author, m.message)
	return err
}

func payload(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// Changes returns what changed since a version: a delta when the history
// reaches back that far, else a snapshot.
func (s *Store) Changes(name string, since uint64) (any, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ns, err := namespace(s.db, name)
	if err != nil {
		return nil, err
	}
	var oldest sql.NullInt64
	if err := s.db.QueryRow(`SELECT MIN(version) FROM changes WHERE ns = ?`, name).Scan(&oldest); err != nil {
		return nil, err
	}
	full := func() (any, error) {
		sn, err := snapshot(s.db, name)
		sn.Kind = iungo.KindSnapshot
		return sn, err
	}
	digest := func(v uint64) (string, error) {
		var d string
		err := s.db.QueryRow(`SELECT digest FROM versions WHERE ns = ? AND version = ?`, name, v).Scan(&d)
		return d, err
	}
	if since == 0 || since > ns.Version || !oldest.Valid && since != ns.Version || oldest.Valid && since+1 < uint64(oldest.Int64) {
		return full()
	}
	d := iungo.Changes{Namespace: name, NamespaceID: ns.ID, Kind: iungo.KindDelta, From: since, Version: ns.Version}
	if d.FromDigest, err = digest(since); err != nil {
		return full()
	}
	if d.Digest, err = digest(ns.Version); err != nil {
		return nil, err
	}
	if since == ns.Version {
		return d, nil
	}
	rows, err := s.db.Query(`SELECT op, payload FROM changes WHERE ns = ? AND version > ? ORDER BY version, rowid`, name, since)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	scripts := map[string]*iungo.Script{} // nil: unset
	var scriptOrder []string
	crons := map[string]*iungo.Cron{}
	var cronOrder []string
	type tk = iungo.TriggerKey
	triggers := map[tk]*iungo.Trigger{}
	var triggerOrder []tk
	for rows.Next() {
		var op, p string
		if err := rows.Scan(&op, &p); err != nil {
			return nil, err
		}
		var err error
		switch op {
		case "script_set":
			var sc iungo.Script
			err = json.Unmarshal([]byte(p), &sc)
			latest(&scriptOrder, scripts, sc.Name, &sc)
		case "script_unset":
			var n string
			err = json.Unmarshal([]byte(p), &n)
			latest(&scriptOrder, scripts, n, nil)
		case "trigger_set":
			var t iungo.Trigger
			err = json.Unmarshal([]byte(p), &t)
			k := tk{Pattern: t.Pattern, Events: t.Events}
			if old, seen := triggers[k]; seen && old == nil {
				// Removed then added again: it goes to the end, as in
				// the table's registration order.
				triggerOrder = slices.DeleteFunc(triggerOrder, func(x tk) bool { return x == k })
				delete(triggers, k)
				d.Triggers.Unset = append(d.Triggers.Unset, k)
			}
			latest(&triggerOrder, triggers, k, &t)
		case "trigger_unset":
			var k tk
			err = json.Unmarshal([]byte(p), &k)
			latest(&triggerOrder, triggers, k, nil)
		case "cron_set":
			var cr iungo.Cron
			err = json.Unmarshal([]byte(p), &cr)
			latest(&cronOrder, crons, cr.Name, &cr)
		case "cron_unset":
			var n string
			err = json.Unmarshal([]byte(p), &n)
			latest(&cronOrder, crons, n, nil)
		case "events":
			var events []string
			err = json.Unmarshal([]byte(p), &events)
			d.Events = &events
		}
		if err != nil {
			return nil, fmt.Errorf("change %s of namespace %q is unreadable: %w", op, name, err)
		}
	}
	for _, n := range scriptOrder {
		if sc := scripts[n]; sc != nil {
			d.Scripts.Set = append(d.Scripts.Set, *sc)
		} else {
			d.Scripts.Unset = append(d.Scripts.Unset, n)
		}
	}
	for _, k := range triggerOrder {
		if t := triggers[k]; t != nil {
			d.Triggers.Set = append(d.Triggers.Set, *t)
		} else {
			d.Triggers.Unset = append(d.Triggers.Unset, k)
		}
	}
	for _, n := range cronOrder {
		if cr := crons[n]; cr != nil {
			d.Crons.Set = append(d.Crons.Set, *cr)
		} else {
			d.Crons.Unset = append(d.Crons.Unset, n)
		}
	}
	return d, rows.Err()
}

// latest records v as k's latest state (nil: removed), keeping the order
// in which keys first changed.
func latest[K comparable, V any](order *[]K, m map[K]*V, k K, v *V) {
	if _, seen := m[k]; !seen {
		*order = append(*order, k)
	}
	m[k] = v
}

// RegisterNode records a node's registration and returns the namespace's
// version.
func (s *Store) RegisterNode(ns string, r iungo.Registration) (uint64, error) {
	if err := checkRegistration(r); err != nil {
		return 0, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	n, err := namespace(s.db, ns)
	if err != nil {
		return 0, err
	}
	var address string
	err = s.db.QueryRow(`SELECT address FROM nodes WHERE ns = ? AND id = ?`, ns, r.NodeID).Scan(&address)
	switch {
	case err == nil && address != r.Address:
		// Pushes carry the namespace's credentials: a node token must
		// not redirect another node's pushes.
		return 0, fmt.Errorf("%w: node %q is registered at %s, not %s; an admin can remove it (DELETE /admin/v1/namespaces/%s/nodes/%s) to register it anew",
			ErrConflict, r.NodeID, address, r.Address, ns, r.NodeID)
	case errors.Is(err, sql.ErrNoRows):
		var count int
		if err := s.db.QueryRow(`SELECT COUNT(*) FROM nodes WHERE ns = ?`, ns).Scan(&count); err != nil {
			return 0, err
		}
		if max := cmp.Or(s.MaxNodes, DefaultMaxNodes); count >= max {
			return 0, fmt.Errorf("%w: namespace %q has %d nodes, its limit; an admin can remove nodes", ErrConflict, ns, max)
		}
	case err != nil:
		return 0, err
	}
	t := now()
	_, err = s.db.Exec(`INSERT INTO nodes (ns, id, address, valkey_version, module_version, role, registered_at, last_seen)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (ns, id) DO UPDATE SET
		valkey_version = excluded.valkey_version, module_version = excluded.module_version, role = excluded.role,
		registered_at = excluded.registered_at, last_seen = excluded.last_seen`,
		ns, r.NodeID, r.Address, r.ValkeyVersion, r.ModuleVersion, r.Role, t, t)
	return n.Version, err
}

// checkRegistration bounds every field a node sends at registration.
func checkRegistration(r iungo.Registration) error {
	if err := config.CheckName("node id", r.NodeID); err != nil {
		return fmt.Errorf("%w: %v", errBadRequest, err)
	}
	host, port, err := net.SplitHostPort(r.Address)
	if err != nil || host == "" || port == "" || len(r.Address) > maxAddressBytes {
		return fmt.Errorf("%w: address %q: want host:port, at most %d bytes", errBadRequest, truncate(r.Address), maxAddressBytes)
	}
	if len(r.ValkeyVersion) > maxVersionBytes || len(r.ModuleVersion) > maxVersionBytes {
		return fmt.Errorf("%w: versions are at most %d bytes", errBadRequest, maxVersionBytes)
	}
	return checkRole(r.Role)
}

func checkRole(role string) error {
	if role != "primary" && role != "replica" {
		return fmt.Errorf("%w: role %q: want primary or replica", errBadRequest, truncate(role))
	}
	return nil
}

// truncate keeps what a caller sent short in an error message.
func truncate(s string) string {
	if len(s) > 64 {
		return s[:64] + "..."
	}
	return s
}

// Heartbeat records a node's health and returns the namespace's version.
func (s *Store) Heartbeat(ns, id string, h iungo.Health) (uint64, error) {
	if err := checkRole(h.Role); err != nil {
		return 0, err
	}
	if len(h.LastError) > maxErrorBytes || len(h.LastSyncAt) > maxVersionBytes || len(h.ConfigDigest) > maxVersionBytes+16 ||
		len(h.Primary) > maxAddressBytes {
		return 0, fmt.Errorf("%w: last_error is at most %d bytes, primary %d, last_sync_at and config_digest %d",
			errBadRequest, maxErrorBytes, maxAddressBytes, maxVersionBytes)
	}
	if err := checkRunReport(h); err != nil {
		return 0, err
	}
	stats := struct {
		Stats   []iungo.TriggerStats `json:"stats"`
		Omitted int                  `json:"omitted"`
	}{h.TriggerStats, h.TriggersOmitted}
	s.mu.Lock()
	defer s.mu.Unlock()
	n, err := namespace(s.db, ns)
	if err != nil {
		return 0, err
	}
	res, err := s.db.Exec(`UPDATE nodes SET last_seen = ?, namespace_version = ?, config_digest = ?, last_sync_at = ?,
		last_error = ?, runs = ?, errors = ?, triggers = ?, role = ?, primary_address = ?, trigger_stats = ?, recent_errors = ?,
		syncs = ?, sync_failures = ? WHERE ns = ? AND id = ?`,
		now(), h.NamespaceVersion, h.ConfigDigest, h.LastSyncAt, h.LastError, h.Runs, h.Errors, h.Triggers, h.Role, h.Primary,
		payload(stats), payload(nonNilErrors(h.RecentErrors)), h.Syncs, h.SyncFailures, ns, id)
	if err != nil {
		return 0, err
	}
	if c, _ := res.RowsAffected(); c == 0 {
		return 0, fmt.Errorf("%w: node %q is not registered in %q; register first", ErrNotFound, id, ns)
	}
	return n.Version, nil
}

// checkRunReport bounds the run statistics of a heartbeat: the node API's
// body limit bounds their number.
func checkRunReport(h iungo.Health) error {
	if len(h.RecentErrors) > iungo.MaxRecentErrors || h.TriggersOmitted < 0 {
		return fmt.Errorf("%w: at most %d recent errors", errBadRequest, iungo.MaxRecentErrors)
	}
	for _, t := range h.TriggerStats {
		if len(t.Pattern) > config.MaxPatternBytes || len(t.Events) > maxEventsBytes {
			return fmt.Errorf("%w: trigger_stats: a pattern is at most %d bytes, events %d", errBadRequest, config.MaxPatternBytes, maxEventsBytes)
		}
	}
	for _, e := range h.RecentErrors {
		if len(e.Pattern) > config.MaxPatternBytes || len(e.Events) > maxEventsBytes || len(e.At) > maxVersionBytes ||
			len(e.Event) > iungo.MaxReportedEventBytes || len(e.Key) > iungo.MaxErrorKeyBytes || len(e.Message) > iungo.MaxErrorMessageBytes {
			return fmt.Errorf("%w: recent_errors: key at most %d bytes, message %d, event %d",
				errBadRequest, iungo.MaxErrorKeyBytes, iungo.MaxErrorMessageBytes, iungo.MaxReportedEventBytes)
		}
	}
	return nil
}

// maxEventsBytes bounds an event list as a node reports it.
const maxEventsBytes = 512

func nonNilErrors(e []iungo.RunError) []iungo.RunError {
	if e == nil {
		return []iungo.RunError{}
	}
	return e
}

// DeleteNamespace removes a namespace with its configuration, history,
// draft and nodes. Its nodes keep what they run, and fail to sync.
func (s *Store) DeleteNamespace(name string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	tx, err := s.db.Begin()
	if err != nil {
		return err
	}
	defer tx.Rollback()
	res, err := tx.Exec(`DELETE FROM namespaces WHERE name = ?`, name)
	if err != nil {
		return err
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("%w: namespace %q does not exist", ErrNotFound, name)
	}
	for _, table := range []string{"versions", "drafts", "scripts", "triggers", "crons", "changes", "nodes"} {
		if _, err := tx.Exec(`DELETE FROM `+table+` WHERE ns = ?`, name); err != nil {
			return err
		}
	}
	return tx.Commit()
}

// DeleteNode forgets a node; it may register again.
func (s *Store) DeleteNode(ns, id string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	res, err := s.db.Exec(`DELETE FROM nodes WHERE ns = ? AND id = ?`, ns, id)
	if err != nil {
		return err
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("%w: no node %q in namespace %q", ErrNotFound, id, ns)
	}
	return nil
}

// SetPushCredentials sets the ACL user and password pushes to the
// namespace's nodes authenticate with; empty: none.
func (s *Store) SetPushCredentials(ns, user, password string) error {
	return s.setCredentials(ns, "push", user, password)
}

// SetTryCredentials sets the ACL user and password dry runs on the
// namespace's nodes authenticate with; empty: none.
func (s *Store) SetTryCredentials(ns, user, password string) error {
	return s.setCredentials(ns, "try", user, password)
}

func (s *Store) setCredentials(ns, which, user, password string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	res, err := s.db.Exec(`UPDATE namespaces SET `+which+`_user = ?, `+which+`_password = ? WHERE name = ?`, user, password, ns)
	if err != nil {
		return err
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("%w: namespace %q does not exist", ErrNotFound, ns)
	}
	return nil
}

// Digests returns the digests of a version of a namespace, unpaused and
// paused, or "" when it is not known (older than the history kept).
func (s *Store) Digests(ns string, version uint64) (digest, paused string) {
	_ = s.db.QueryRow(`SELECT digest, paused_digest FROM versions WHERE ns = ? AND version = ?`, ns, version).Scan(&digest, &paused)
	return digest, paused
}

// Nodes lists a namespace's nodes by id.
func (s *Store) Nodes(ns string) ([]Node, error) {
	rows, err := s.db.Query(`SELECT id, address, valkey_version, module_version, role, registered_at, last_seen,
		namespace_version, config_digest, last_sync_at, last_error, runs, errors, triggers, primary_address,
		trigger_stats, recent_errors, syncs, sync_failures FROM nodes WHERE ns = ? ORDER BY id`, ns)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []Node
	for rows.Next() {
		n := Node{Namespace: ns}
		var reg, seen, stats, recent string
		if err := rows.Scan(&n.ID, &n.Address, &n.ValkeyVersion, &n.ModuleVersion, &n.Role, &reg, &seen,
			&n.NamespaceVersion, &n.ConfigDigest, &n.LastSyncAt, &n.LastError, &n.Runs, &n.Errors, &n.Triggers, &n.Primary,
			&stats, &recent, &n.Syncs, &n.SyncFailures); err != nil {
			return nil, err
		}
		var st struct {
			Stats   []iungo.TriggerStats `json:"stats"`
			Omitted int                  `json:"omitted"`
		}
		// What a node reported is shown as far as it is readable.
		_ = json.Unmarshal([]byte(stats), &st)
		_ = json.Unmarshal([]byte(recent), &n.RecentErrors)
		n.TriggerStats, n.TriggersOmitted = st.Stats, st.Omitted
		n.RegisteredAt, _ = time.Parse(time.RFC3339, reg)
		n.LastSeen, _ = time.Parse(time.RFC3339, seen)
		out = append(out, n)
	}
	return out, rows.Err()
}

// ImportManifest loads a module manifest (scripts by file, triggers, event
// classes) into an empty namespace, for a first start.
func (s *Store) ImportManifest(ns, path string) error {
	mf, err := config.LoadManifest(path)
	if err != nil {
		return err
	}
	for _, sc := range mf.Scripts {
		if err := s.SetScript(ns, sc.Name, sc.Source); err != nil {
			return err
		}
	}
	for _, t := range mf.Triggers {
		if err := s.SetTrigger(ns, iungo.Trigger{Pattern: t.Pattern, Events: t.Events, Script: t.Script, Enabled: t.Enabled, WindowMs: t.Window}); err != nil {
			return err
		}
	}
	for _, cr := range mf.Crons {
		if err := s.SetCron(ns, iungo.Cron{Name: cr.Name, Schedule: cr.Schedule, Script: cr.Script, Enabled: cr.Enabled}); err != nil {
			return err
		}
	}
	if mf.Classes != nil {
		if err := s.SetEvents(ns, config.ClassNames(*mf.Classes)); err != nil {
			return err
		}
	}
	_, _, err = s.Publish(ns, "iungo-server --import", "imported from "+filepath.Base(path))
	if errors.Is(err, errNothingToPublish) {
		return nil
	}
	return err
}
