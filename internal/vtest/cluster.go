package vtest

import (
	"context"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/valkey-io/valkey-go"
)

// Cluster is a Valkey Cluster of real servers on loopback, each with the
// module loaded (unless Options say otherwise).
type Cluster struct {
	Nodes  []*Server
	Client valkey.Client // cluster-aware: follows slots, redirects and failovers

	t testing.TB
}

// StartCluster starts primaries primaries with replicas replicas each, made
// into one cluster by valkey-cli --cluster create, and waits until every
// node sees the cluster ok and every replica is in sync.
func StartCluster(tb testing.TB, primaries, replicas int, opts Options) *Cluster {
	tb.Helper()
	opts.Config = append([]string{
		"cluster-enabled yes", "cluster-config-file nodes.conf",
		"cluster-node-timeout 1000", // fast failovers for tests
		"cluster-replica-validity-factor 0",
	}, opts.Config...)
	c := &Cluster{t: tb}
	n := primaries * (1 + replicas)
	addrs := make([]string, n)
	for i := range n {
		s := Start(tb, opts)
		c.Nodes = append(c.Nodes, s)
		addrs[i] = s.Addr
	}
	args := append([]string{"--cluster", "create"}, addrs...)
	args = append(args, "--cluster-replicas", strconv.Itoa(replicas), "--cluster-yes")
	if out, err := Command(tb, "valkey-cli", args...).CombinedOutput(); err != nil {
		tb.Fatalf("vtest: valkey-cli --cluster create: %v\n%s", err, out)
	}
	c.WaitHealthy(60 * time.Second)
	cl, err := valkey.NewClient(valkey.ClientOption{InitAddress: addrs, DisableCache: true})
	if err != nil {
		tb.Fatalf("vtest: cluster client: %v", err)
	}
	c.Client = cl
	tb.Cleanup(cl.Close)
	return c
}

// WaitHealthy waits until every live node reports cluster_state:ok and
// agrees on the slots, and every replica's link to its primary is up.
func (c *Cluster) WaitHealthy(within time.Duration) {
	c.t.Helper()
	Eventually(c.t, within, "the cluster is ok and its replicas in sync", func() bool {
		for _, s := range c.Live() {
			info, err := s.Do("CLUSTER", "INFO").ToString()
			if err != nil || !strings.Contains(info, "cluster_state:ok") {
				return false
			}
			repl, err := s.Do("INFO", "replication").ToString()
			if err != nil || strings.Contains(repl, "role:slave") && !strings.Contains(repl, "master_link_status:up") {
				return false
			}
		}
		if out, err := Command(c.t, "valkey-cli", "--cluster", "check", c.Live()[0].Addr).CombinedOutput(); err != nil ||
			!strings.Contains(string(out), "[OK] All 16384 slots covered") || strings.Contains(string(out), "[WARNING]") {
			return false
		}
		return true
	})
}

// Live returns the nodes whose process runs.
func (c *Cluster) Live() []*Server {
	var out []*Server
	for _, s := range c.Nodes {
		if s.cmd != nil && s.Alive() {
			out = append(out, s)
		}
	}
	return out
}

// Primaries returns the live nodes that are primaries now.
func (c *Cluster) Primaries() []*Server {
	return slices.DeleteFunc(c.Live(), func(s *Server) bool { return !s.IsPrimary() })
}

// IsPrimary reports whether the node is a primary now.
func (s *Server) IsPrimary() bool {
	info, err := s.Do("INFO", "replication").ToString()
	return err == nil && strings.Contains(info, "role:master")
}

// ID is the node's cluster node id.
func (s *Server) ID() string {
	id, err := s.Do("CLUSTER", "MYID").ToString()
	if err != nil {
		s.t.Fatalf("CLUSTER MYID on %s: %v", s.Addr, err)
	}
	return id
}

// Owner returns the live primary that serves slot now, as the first live
// node's CLUSTER SLOTS says.
func (c *Cluster) Owner(slot int) *Server {
	c.t.Helper()
	ranges, err := c.Live()[0].Do("CLUSTER", "SLOTS").ToArray()
	if err != nil {
		c.t.Fatalf("vtest: CLUSTER SLOTS: %v", err)
	}
	for _, r := range ranges {
		parts, _ := r.ToArray()
		if len(parts) < 3 {
			continue
		}
		lo, _ := parts[0].AsInt64()
		hi, _ := parts[1].AsInt64()
		node, _ := parts[2].ToArray()
		if len(node) < 2 || int64(slot) < lo || int64(slot) > hi {
			continue
		}
		port, _ := node[1].AsInt64()
		for _, s := range c.Live() {
			if int64(s.Port) == port {
				return s
			}
		}
	}
	c.t.Fatalf("vtest: no live primary serves slot %d", slot)
	return nil
}

// Do runs a command through the cluster-aware client.
func (c *Cluster) Do(args ...string) valkey.ValkeyResult {
	return c.Client.Do(context.Background(), c.Client.B().Arbitrary(args...).Build())
}
