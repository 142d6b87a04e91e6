package server

import (
	"context"
	"net/http"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/valkey-iungo/valkey-iungo/iungo"
)

// Ensure /healthz answers without a token and /metrics gives namespaces and
// nodes in Prometheus' format to the metrics token or the admin token only;
// the metrics token opens nothing else.
func TestMetricsAndHealth(t *testing.T) {
	s, hs := mustOpenServer(t)
	s.MetricsToken = "met"
	code, body := call(t, "GET", hs.URL+"/healthz", "", "")
	assert.Equal(t, http.StatusOK, code)
	assert.Equal(t, "ok\n", body)

	ns, err := s.Store.Namespace("shop")
	require.NoError(t, err)
	pub, err := iungo.ParsePublicKey(ns.PublicKey())
	require.NoError(t, err)
	c := &iungo.Client{Endpoint: hs.URL, Namespace: "shop", Token: "tok", PublicKey: pub}
	_, err = c.Register(context.Background(), iungo.Registration{NodeID: "n1", Address: "127.0.0.1:1", Role: "primary"})
	require.NoError(t, err)
	require.NoError(t, s.Store.SetScript("shop", "a", "return 1"))
	require.NoError(t, s.Store.SetTrigger("shop", iungo.Trigger{Pattern: "k:*", Events: "set", Script: "a", Enabled: true}))
	publishNow(t, s.Store)
	_, err = c.Heartbeat(context.Background(), "n1", iungo.Health{NamespaceVersion: 1, Role: "primary", Runs: 7, Errors: 2, Triggers: 3,
		Syncs: 4, SyncFailures: 1,
		TriggerStats: []iungo.TriggerStats{{Pattern: "k:*", Events: "set", Runs: 7, Errors: 2, RunUs: 1500000, MaxRunUs: 900000}}})
	require.NoError(t, err)
	results, err := s.Push(context.Background(), "shop")
	require.NoError(t, err)
	require.Len(t, results, 1)
	require.NotEmpty(t, results[0].Error, "nothing listens at 127.0.0.1:1")

	for _, token := range []string{"", "tok", "wrong"} {
		code, _ = call(t, "GET", hs.URL+"/metrics", token, "")
		assert.Equal(t, http.StatusUnauthorized, code, "token %q", token)
	}
	code, _ = call(t, "GET", hs.URL+"/admin/v1/namespaces", "met", "")
	assert.Equal(t, http.StatusUnauthorized, code, "the metrics token reads metrics only")

	for _, token := range []string{"met", "adm"} {
		code, body = call(t, "GET", hs.URL+"/metrics", token, "")
		require.Equal(t, http.StatusOK, code, body)
		for _, want := range []string{
			"# TYPE iungo_namespace_version gauge\niungo_namespace_version{namespace=\"shop\"} 2\n",
			`iungo_nodes{namespace="shop",health=`,
			`iungo_node_runs_total{namespace="shop",node="n1",role="primary"} 7`,
			`iungo_node_errors_total{namespace="shop",node="n1",role="primary"} 2`,
			`iungo_node_triggers{namespace="shop",node="n1",role="primary"} 3`,
			"# TYPE iungo_node_runs_total counter\n",
			`iungo_node_syncs_total{namespace="shop",node="n1",role="primary"} 4`,
			`iungo_node_sync_failures_total{namespace="shop",node="n1",role="primary"} 1`,
			`iungo_pushes_total{namespace="shop",result="failed"} 1`,
			`iungo_pushes_total{namespace="shop",result="ok"} 0`,
			`iungo_route_runs_total{namespace="shop",pattern="k:*",events="set",script="a"} 7`,
			`iungo_route_errors_total{namespace="shop",pattern="k:*",events="set",script="a"} 2`,
			`iungo_route_run_seconds_total{namespace="shop",pattern="k:*",events="set",script="a"} 1.5`,
			`iungo_route_run_seconds_max{namespace="shop",pattern="k:*",events="set",script="a"} 0.9`,
		} {
			assert.Contains(t, body, want)
		}
	}
}

// Ensure label values are escaped as the text format wants.
func TestMetricsLabel(t *testing.T) {
	assert.Equal(t, `n="a\"b\\c\nd"`, label("n", "a\"b\\c\nd"))
}
