package server

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/valkey-io/valkey-go"

	"github.com/valkey-iungo/valkey-iungo/config"
	"github.com/valkey-iungo/valkey-iungo/iungo"
)

// PushResult is what one node answered to IUNGO SYNC.
type PushResult struct {
	Node    string `json:"node"`
	Address string `json:"address"`
	Version int64  `json:"version,omitempty"`
	Error   string `json:"error,omitempty"`
	Skipped string `json:"skipped,omitempty"` // why no push was sent
}

// pushTimeout bounds one node's answer: the node fetches, compiles and
// installs before it answers.
const pushTimeout = 30 * time.Second

// Push sends IUNGO SYNC to every primary node of a namespace, all at once,
// each on a connection of its own to that node only, and returns their
// answers. Replicas follow their primary.
func (s *Server) Push(ctx context.Context, name string) ([]PushResult, error) {
	ns, err := s.Store.Namespace(name)
	if err != nil {
		return nil, err
	}
	nodes, err := s.Store.Nodes(name)
	if err != nil {
		return nil, err
	}
	results := make([]PushResult, len(nodes))
	var wg sync.WaitGroup
	for i, n := range nodes {
		results[i] = PushResult{Node: n.ID, Address: n.Address}
		if n.Role == "replica" {
			results[i].Skipped = "a replica follows its primary"
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() {
				if r := recover(); r != nil {
					results[i].Error = "internal error"
				}
			}()
			results[i].Version, results[i].Error = pushOne(ctx, n.Address, ns.PushUser, ns.PushPassword)
		}()
	}
	wg.Wait()
	s.pushes.count(name, results)
	return results, nil
}

// pushCounts counts push answers per namespace and result since the
// server started, for /metrics.
type pushCounts struct {
	mu sync.Mutex
	m  map[[2]string]uint64 // {namespace, ok|failed|skipped}
}

func (p *pushCounts) count(ns string, results []PushResult) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.m == nil {
		p.m = map[[2]string]uint64{}
	}
	for _, r := range results {
		result := "ok"
		switch {
		case r.Error != "":
			result = "failed"
		case r.Skipped != "":
			result = "skipped"
		}
		p.m[[2]string{ns, result}]++
	}
}

func (p *pushCounts) get(ns, result string) uint64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.m[[2]string{ns, result}]
}

// Failed counts the results that are failures.
func Failed(results []PushResult) int {
	n := 0
	for _, r := range results {
		if r.Error != "" {
			n++
		}
	}
	return n
}

func pushOne(ctx context.Context, addr, user, password string) (int64, string) {
	// ForceSingleClient: valkey-go would otherwise discover a cluster and
	// send the keyless IUNGO SYNC to any of its nodes.
	c, err := valkey.NewClient(valkey.ClientOption{
		InitAddress: []string{addr}, Username: user, Password: password,
		ForceSingleClient: true, DisableCache: true, DisableRetry: true, ConnWriteTimeout: pushTimeout,
	})
	if err != nil {
		return 0, err.Error()
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(ctx, pushTimeout)
	defer cancel()
	v, err := c.Do(ctx, c.B().Arbitrary("IUNGO", "SYNC").Build()).AsInt64()
	if err != nil {
		return 0, err.Error()
	}
	return v, ""
}

// Health sums a node up:
//
//	stale     no heartbeat for a minute
//	error     its last sync failed (last_error says why)
//	behind    it runs an older version than the namespace's
//	diverged  it claims the namespace's version (or a newer one) with
//	          other content: a replay, or a restored iungo
//	ok        a primary that runs the namespace's version, content included
//	following a replica that runs it, as its primary replicated it
//
// digest and paused are the namespace version's digests.
func Health(n Node, version uint64, digest, paused string, now time.Time) string {
	switch {
	case now.Sub(n.LastSeen) > time.Minute:
		return "stale"
	case n.LastError != "":
		return "error"
	case n.NamespaceVersion < version:
		return "behind"
	case n.NamespaceVersion > version || n.ConfigDigest != digest && n.ConfigDigest != paused:
		return "diverged"
	case n.Role == "replica":
		return "following"
	}
	return "ok"
}

// InStep reports whether a health says the node runs the namespace's
// version.
func InStep(health string) bool { return health == "ok" || health == "following" }

// CheckResult is the verdict on a script source.
type CheckResult struct {
	OK    bool   `json:"ok"`
	Error string `json:"error,omitempty"`
}

// checkScript compiles a script as the module does.
func checkScript(name, source string) CheckResult {
	if name == "" {
		name = "script"
	}
	if err := config.CheckScript(name, source); err != nil {
		return CheckResult{Error: strings.TrimPrefix(err.Error(), "ERR ")}
	}
	return CheckResult{OK: true}
}

// TryResult is what a node answered to IUNGO TRY: the script's return
// value as valkey-cli shows it, its error (with its line), its log lines,
// the writes it attempted (none ran) and its run time.
type TryResult struct {
	Node     string   `json:"node"`
	Returned string   `json:"returned"`
	Error    string   `json:"error"`
	Line     int      `json:"line,omitempty"` // of the error, when known
	Logs     []string `json:"logs"`
	Writes   []string `json:"writes"`
	RunUs    int64    `json:"run_us"`
}

// tryTimeout bounds a dry run's answer: compile and one run.
const tryTimeout = 10 * time.Second

// Try runs a script source once on one node of a namespace, dry: the node
// compiles it and answers what it would do without writing. It connects
// with the namespace's try credentials.
func (s *Server) Try(ctx context.Context, name string, req TryRequest) (TryResult, error) {
	ns, err := s.Store.Namespace(name)
	if err != nil {
		return TryResult{}, err
	}
	if req.Key == "" {
		return TryResult{}, fmt.Errorf("%w: a key to run the script for is needed", errBadRequest)
	}
	if err := config.CheckScript(cmp.Or(req.Script, "draft"), req.Source); err != nil {
		return TryResult{}, badInput(err)
	}
	nodes, err := s.Store.Nodes(name)
	if err != nil {
		return TryResult{}, err
	}
	i := slices.IndexFunc(nodes, func(n Node) bool { return n.ID == req.Node })
	if i < 0 {
		return TryResult{}, fmt.Errorf("%w: no node %q in namespace %q", ErrNotFound, req.Node, name)
	}
	c, err := valkey.NewClient(valkey.ClientOption{
		InitAddress: []string{nodes[i].Address}, Username: ns.TryUser, Password: ns.TryPassword,
		ForceSingleClient: true, DisableCache: true, DisableRetry: true, ConnWriteTimeout: tryTimeout,
	})
	if err != nil {
		return TryResult{}, fmt.Errorf("node %s (%s): %w", req.Node, nodes[i].Address, err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(ctx, tryTimeout)
	defer cancel()
	args := []string{"TRY", cmp.Or(req.Script, "draft"), req.Source, req.Key}
	if req.Event != "" {
		args = append(args, req.Event)
	}
	m, err := c.Do(ctx, c.B().Arbitrary("IUNGO").Args(args...).Build()).AsMap()
	if err != nil {
		return TryResult{}, fmt.Errorf("node %s (%s): %w", req.Node, nodes[i].Address, err)
	}
	res := TryResult{Node: req.Node, Logs: []string{}, Writes: []string{}}
	for k, v := range m {
		switch k {
		case "returned":
			res.Returned, _ = v.ToString()
		case "error":
			res.Error, _ = v.ToString()
		case "run_us":
			res.RunUs, _ = v.AsInt64()
		case "logs":
			res.Logs, _ = v.AsStrSlice()
		case "writes":
			res.Writes, _ = v.AsStrSlice()
		}
	}
	res.Line = iungo.ErrorLine(res.Error)
	return res, nil
}
