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
	_, err = c.Heartbeat(context.Background(), "n1", iungo.Health{NamespaceVersion: 1, Role: "primary", Runs: 7, Errors: 2, Triggers: 3})
	require.NoError(t, err)

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
			"# TYPE iungo_namespace_version gauge\niungo_namespace_version{namespace=\"shop\"} 1\n",
			`iungo_nodes{namespace="shop",health=`,
			`iungo_node_runs_total{namespace="shop",node="n1",role="primary"} 7`,
			`iungo_node_errors_total{namespace="shop",node="n1",role="primary"} 2`,
			`iungo_node_triggers{namespace="shop",node="n1",role="primary"} 3`,
			"# TYPE iungo_node_runs_total counter\n",
		} {
			assert.Contains(t, body, want)
		}
	}
}

// Ensure label values are escaped as the text format wants.
func TestMetricsLabel(t *testing.T) {
	assert.Equal(t, `n="a\"b\\c\nd"`, label("n", "a\"b\\c\nd"))
}
