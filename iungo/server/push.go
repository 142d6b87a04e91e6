package server

import (
	"context"
	"strings"
	"sync"
	"time"

	"github.com/valkey-io/valkey-go"

	"github.com/valkey-iungo/valkey-iungo/module"
)

// PushResult is what one node answered to IUNGO SYNC.
type PushResult struct {
	Node    string `json:"node"`
	Address string `json:"address"`
	Version int64  `json:"version,omitempty"`
	Error   string `json:"error,omitempty"`
}

// pushTimeout bounds one node's answer: the node fetches, compiles and
// installs before it answers.
const pushTimeout = 30 * time.Second

// Push sends IUNGO SYNC to every primary node of a namespace, all at once,
// and returns their answers. Replicas follow their primary.
func (s *Server) Push(ctx context.Context, ns string) ([]PushResult, error) {
	if _, err := s.Store.Namespace(ns); err != nil {
		return nil, err
	}
	nodes, err := s.Store.Nodes(ns)
	if err != nil {
		return nil, err
	}
	results := make([]PushResult, len(nodes))
	var wg sync.WaitGroup
	for i, n := range nodes {
		results[i] = PushResult{Node: n.ID, Address: n.Address}
		if n.Role == "replica" {
			results[i].Error = "skipped: a replica follows its primary"
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
			results[i].Version, results[i].Error = s.pushOne(ctx, n.Address)
		}()
	}
	wg.Wait()
	return results, nil
}

func (s *Server) pushOne(ctx context.Context, addr string) (int64, string) {
	c, err := valkey.NewClient(valkey.ClientOption{
		InitAddress: []string{addr}, Username: s.NodeUser, Password: s.NodePassword,
		DisableCache: true, ConnWriteTimeout: pushTimeout,
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

// Health sums a node up: ok, behind (an older version), error (its last
// sync failed), or stale (no heartbeat for a minute).
func Health(n Node, version uint64, now time.Time) string {
	switch {
	case now.Sub(n.LastSeen) > time.Minute:
		return "stale"
	case n.LastError != "":
		return "error"
	case n.Role != "replica" && n.SyncVersion < version:
		return "behind"
	}
	return "ok"
}

// CheckResult is the verdict on a script source.
type CheckResult struct {
	OK    bool   `json:"ok"`
	Error string `json:"error,omitempty"`
}

// checkScript compiles a script with the module's own scripting package.
func checkScript(name, source string) CheckResult {
	if name == "" {
		name = "script"
	}
	if err := module.CheckScript(name, source); err != nil {
		return CheckResult{Error: strings.TrimPrefix(err.Error(), "ERR ")}
	}
	return CheckResult{OK: true}
}
