package itest

import (
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/valkey-iungo/valkey-iungo/internal/vtest"
	"github.com/valkey-iungo/valkey-iungo/iungo/server"
)

// The control-plane attacks of issue 10 against a real node.

// switchProxy stands between nodes and iungo: it forwards to the current
// backend, or answers with a recorded response (a replay).
type switchProxy struct {
	*httptest.Server
	mu      sync.Mutex
	backend *url.URL
	replay  *recorded
}

type recorded struct {
	body      []byte
	signature string
}

func newSwitchProxy(t *testing.T, backend string) *switchProxy {
	p := &switchProxy{}
	p.point(t, backend)
	p.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p.mu.Lock()
		backend, replay := p.backend, p.replay
		p.mu.Unlock()
		if replay != nil && strings.HasSuffix(r.URL.Path, "/changes") {
			w.Header().Set("Iungo-Signature", replay.signature)
			_, _ = w.Write(replay.body)
			return
		}
		httputil.NewSingleHostReverseProxy(backend).ServeHTTP(w, r)
	}))
	t.Cleanup(p.Close)
	return p
}

func (p *switchProxy) point(t *testing.T, backend string) {
	u, err := url.Parse(backend)
	require.NoError(t, err)
	p.mu.Lock()
	p.backend, p.replay = u, nil
	p.mu.Unlock()
}

// record fetches a signed answer from iungo, as an eavesdropper would.
func record(t *testing.T, srv *server.Server, path string) *recorded {
	t.Helper()
	req, _ := http.NewRequest("GET", srv.URL()+"/api/v2/namespaces/shop/"+path, nil)
	req.Header.Set("Authorization", "Bearer tok")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	require.Equal(t, 200, resp.StatusCode, string(body))
	return &recorded{body, resp.Header.Get("Iungo-Signature")}
}

func syncErr(t *testing.T, node *vtest.Server) string {
	t.Helper()
	err := node.Do("IUNGO", "SYNC").Error()
	require.Error(t, err)
	return err.Error()
}

// Ensure a captured, validly signed older configuration replayed to a node
// is refused: it moved a node from version 4 back to 2.
func TestReplayRefusedIntegration(t *testing.T) {
	srv := startIungo(t)
	proxy := newSwitchProxy(t, srv.URL())
	ep := at(t, srv)
	ep.URL = proxy.URL
	adminCall(t, srv, "PUT", "/scripts/a", `{"source":"return 1"}`, nil)
	old := record(t, srv, "changes?since=0") // version 2
	adminCall(t, srv, "PUT", "/scripts/b", `{"source":"return 2"}`, nil)
	adminCall(t, srv, "PUT", "/scripts/c", `{"source":"return 3"}`, nil)
	node := startNode(t, ep, "heartbeat-s", "0")
	vtest.Eventually(t, 10*time.Second, "synced to 4", func() bool { return infoField(t, node, "namespace_version") == "4" })
	dumped := dump(t, node)

	proxy.mu.Lock()
	proxy.replay = old
	proxy.mu.Unlock()
	msg := syncErr(t, node)
	assert.Contains(t, msg, "iungo sent version 2, older than version 4 in force")
	assert.Equal(t, "4", infoField(t, node, "namespace_version"))
	assert.Equal(t, dumped, dump(t, node), "nothing changed")
	assert.Contains(t, infoField(t, node, "sync_last_error"), "older than version 4")
}

// Ensure a node refuses the "same" version from an iungo restored from a
// backup, which reused version numbers for other content, shows it in
// iungo, and moves on once iungo publishes a newer version.
func TestRestoredIungoRefusedIntegration(t *testing.T) {
	dir := t.TempDir()
	open := func() *server.Server {
		store, err := server.OpenStore(dir)
		require.NoError(t, err)
		srv := server.New(store, "adm")
		require.NoError(t, srv.Open("127.0.0.1:0"))
		return srv
	}
	srv := open()
	_, err := srv.Store.CreateNamespace("shop", "tok")
	require.NoError(t, err)
	proxy := newSwitchProxy(t, srv.URL())
	ep := at(t, srv)
	ep.URL = proxy.URL
	adminCall(t, srv, "PUT", "/scripts/a", `{"source":"return 1"}`, nil)
	adminCall(t, srv, "PUT", "/scripts/b", `{"source":"return 1"}`, nil)
	adminCall(t, srv, "PUT", "/scripts/c", `{"source":"return 1"}`, nil) // version 4

	// A backup at version 4: close, copy, reopen.
	require.NoError(t, srv.Close())
	require.NoError(t, srv.Store.Close())
	backup := t.TempDir()
	copyFile(t, filepath.Join(dir, "iungo.db"), filepath.Join(backup, "iungo.db"))
	srv = open()
	proxy.point(t, srv.URL())
	adminCall(t, srv, "PUT", "/scripts/d", `{"source":"return 'first 5'"}`, nil)
	adminCall(t, srv, "PUT", "/scripts/e", `{"source":"return 'first 6'"}`, nil)
	node := startNode(t, ep, "heartbeat-s", "1")
	vtest.Eventually(t, 10*time.Second, "synced to 6", func() bool { return infoField(t, node, "namespace_version") == "6" })

	// Restore the backup; two other changes make another "version 6".
	require.NoError(t, srv.Close())
	require.NoError(t, srv.Store.Close())
	for _, f := range []string{"iungo.db-wal", "iungo.db-shm"} {
		_ = os.Remove(filepath.Join(dir, f))
	}
	copyFile(t, filepath.Join(backup, "iungo.db"), filepath.Join(dir, "iungo.db"))
	srv = open()
	t.Cleanup(func() { srv.Close(); srv.Store.Close() })
	proxy.point(t, srv.URL())
	adminCall(t, srv, "PUT", "/scripts/x", `{"source":"return 'other 5'"}`, nil)
	adminCall(t, srv, "PUT", "/scripts/y", `{"source":"return 'other 6'"}`, nil)
	msg := syncErr(t, node)
	assert.Contains(t, msg, "iungo's version 6 holds")
	assert.Contains(t, msg, "but version 6 in force holds")
	assert.Equal(t, "5", infoField(t, node, "scripts"), "the old version 6 stays")
	vtest.Eventually(t, 10*time.Second, "iungo shows the node is not in step", func() bool {
		v := nodes(t, srv)
		return len(v.Nodes) == 1 && v.Nodes[0].Health == "error" && !v.InStep
	})

	adminCall(t, srv, "PUT", "/scripts/z", `{"source":"return 'seven'"}`, nil)
	v, err := node.Do("IUNGO", "SYNC").AsInt64()
	require.NoError(t, err)
	assert.Equal(t, int64(7), v, "a newer version moves the node on")
	assert.Equal(t, "6", infoField(t, node, "scripts"))
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(to, b, 0o600))
}
