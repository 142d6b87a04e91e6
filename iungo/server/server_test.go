package server

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/valkey-iungo/valkey-iungo/iungo"
)

// mustOpenServer serves a store with namespace "shop" (node token "tok")
// and admin token "adm".
func mustOpenServer(t *testing.T) (*Server, *httptest.Server) {
	t.Helper()
	s := New(mustOpenStore(t), "adm")
	_, err := s.Store.CreateNamespace("shop", "tok")
	require.NoError(t, err)
	hs := httptest.NewServer(s.Handler())
	t.Cleanup(hs.Close)
	return s, hs
}

func call(t *testing.T, method, u, token, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, u, strings.NewReader(body))
	require.NoError(t, err)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// Ensure the module's client and the server speak the same protocol:
// registration, heartbeat, snapshot and delta, signed and verified.
func TestClientAgainstServer(t *testing.T) {
	s, hs := mustOpenServer(t)
	ctx := context.Background()
	c := &iungo.Client{Endpoint: hs.URL, Namespace: "shop", Token: "tok"}
	_, err := c.Heartbeat(ctx, "n1", iungo.Health{})
	require.True(t, iungo.IsNotFound(err), "a heartbeat before registering is 404: %v", err)
	reply, err := c.Register(ctx, iungo.Registration{NodeID: "n1", Address: "127.0.0.1:1", Role: "primary"})
	require.NoError(t, err)
	assert.Equal(t, uint64(1), reply.Version)

	_, err = s.Store.SetScript("shop", "a", "return 1")
	require.NoError(t, err)
	_, err = s.Store.SetTrigger("shop", iungo.Trigger{Pattern: "k:*", Events: "set", Script: "a", Enabled: true})
	require.NoError(t, err)
	sn, err := c.Snapshot(ctx)
	require.NoError(t, err)
	assert.Equal(t, uint64(3), sn.Version)
	assert.Len(t, sn.Triggers, 1)

	upd, err := c.Changes(ctx, 0)
	require.NoError(t, err)
	require.NotNil(t, upd.Snapshot)
	_, err = s.Store.SetScript("shop", "b", "return 2")
	require.NoError(t, err)
	upd, err = c.Changes(ctx, 3)
	require.NoError(t, err)
	require.NotNil(t, upd.Delta)
	assert.Equal(t, []iungo.Script{{Name: "b", Source: "return 2"}}, upd.Delta.Scripts.Set)

	reply, err = c.Heartbeat(ctx, "n1", iungo.Health{SyncVersion: 3, Role: "primary", Runs: 5})
	require.NoError(t, err)
	assert.Equal(t, uint64(4), reply.Version)
	nodes, err := s.Store.Nodes("shop")
	require.NoError(t, err)
	require.Len(t, nodes, 1)
	assert.Equal(t, uint64(5), nodes[0].Runs)

	wrong := &iungo.Client{Endpoint: hs.URL, Namespace: "shop", Token: "nope"}
	_, err = wrong.Snapshot(ctx)
	require.ErrorContains(t, err, "401 unauthorized")
	other := &iungo.Client{Endpoint: hs.URL, Namespace: "nope", Token: "tok"}
	_, err = other.Snapshot(ctx)
	require.ErrorContains(t, err, `404 not_found: not found: namespace "nope" does not exist`)
}

// Ensure every configuration body is signed with the namespace's token.
func TestSignatures(t *testing.T) {
	_, hs := mustOpenServer(t)
	for _, path := range []string{"snapshot", "changes?since=0", "scripts", "triggers", "events"} {
		req, _ := http.NewRequest("GET", hs.URL+iungo.APIPrefix+"/namespaces/shop/"+path, nil)
		req.Header.Set("Authorization", "Bearer tok")
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		require.Equal(t, 200, resp.StatusCode, path)
		require.NoError(t, iungo.Verify("tok", body, resp.Header.Get(iungo.SignatureHeader)), path)
	}
}

// Ensure the admin API needs the admin token, answers with the protocol's
// error body, and refuses what the module would refuse.
func TestAdminAPI(t *testing.T) {
	_, hs := mustOpenServer(t)
	base := hs.URL + "/admin/v1/namespaces"
	code, body := call(t, "GET", base, "tok", "")
	assert.Equal(t, 401, code)
	assert.Contains(t, body, `"code":"unauthorized"`)

	for _, c := range []struct {
		method, path, body string
		code               int
		want               string
	}{
		{"POST", "", `{"name":"web","token":"t2"}`, 200, `"token":"t2"`},
		{"POST", "", `{"name":"web"}`, 409, `namespace \"web\" exists`},
		{"POST", "", `{"name":"bad name"}`, 400, "use 1 to 128 letters"},
		{"POST", "", `{"name":`, 400, "not the JSON expected"},
		{"PUT", "/shop/scripts/a", `{"source":"return ("}`, 400, `script \"a\" does not compile: line 1`},
		{"PUT", "/shop/scripts/a", `{"source":"return 1"}`, 200, `"version":2`},
		{"PUT", "/shop/triggers", `{"pattern":"k","events":"sett","script":"a"}`, 400, `unknown event \"sett\"`},
		{"PUT", "/shop/triggers", `{"pattern":"k","events":"set","script":"zz"}`, 400, `unknown script \"zz\"`},
		{"PUT", "/shop/triggers", `{"pattern":"k","events":"set","script":"a","enabled":true}`, 200, `"version":3`},
		{"DELETE", "/shop/scripts/a", "", 409, "is used by 1 trigger"},
		{"DELETE", "/shop/triggers", `{"pattern":"k","events":"del"}`, 404, "no trigger for pattern"},
		{"PUT", "/shop/events", `{"events":["hash","bogus"]}`, 400, `unknown event class \"bogus\"`},
		{"PUT", "/shop/events", `{"events":["hash","x"]}`, 200, `"version":4`},
		{"GET", "/shop", "", 200, `"events":["hash","expired"]`},
		{"GET", "/nope", "", 404, "does not exist"},
		{"POST", "/shop/push", "", 200, "[]"},
		{"GET", "/shop/nodes", "", 200, "[]"},
	} {
		code, body := call(t, c.method, base+c.path, "adm", c.body)
		assert.Equal(t, c.code, code, "%s %s: %s", c.method, c.path, body)
		assert.Contains(t, body, c.want, "%s %s", c.method, c.path)
	}
	code, body = call(t, "POST", hs.URL+"/admin/v1/check", "adm", `{"name":"x","source":"local = 1"}`)
	assert.Equal(t, 200, code)
	var check CheckResult
	require.NoError(t, json.Unmarshal([]byte(body), &check))
	assert.False(t, check.OK)
	assert.Contains(t, check.Error, "line 1")
}

// Ensure the UI asks for the admin token and then serves its pages, and a
// script that does not compile is shown back with the compiler's message.
func TestUI(t *testing.T) {
	_, hs := mustOpenServer(t)
	noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := noRedirect.Get(hs.URL + "/ui/ns/shop")
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusSeeOther, resp.StatusCode)
	assert.Equal(t, "/login", resp.Header.Get("Location"))

	resp, err = noRedirect.PostForm(hs.URL+"/login", url.Values{"token": {"wrong"}})
	require.NoError(t, err)
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	assert.Contains(t, string(body), "That is not the admin token")

	get := func(path string) string {
		req, _ := http.NewRequest("GET", hs.URL+path, nil)
		req.AddCookie(&http.Cookie{Name: sessionCookie, Value: "adm"})
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		require.Equal(t, 200, resp.StatusCode, path)
		return string(b)
	}
	assert.Contains(t, get("/"), `href="/ui/ns/shop"`)
	page := get("/ui/ns/shop")
	for _, id := range []string{`id="push"`, `id="route-pattern"`, `id="script-new"`, `id="nodes"`, `value="hash"`} {
		assert.Contains(t, page, id)
	}
	assert.Contains(t, get("/ui/ns/shop/new-script"), `id="script-source"`)
	assert.Contains(t, get("/static/style.css"), "--accent")

	form := url.Values{"name": {"bad"}, "source": {"return ("}}
	req, _ := http.NewRequest("POST", hs.URL+"/ui/ns/shop/scripts", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.AddCookie(&http.Cookie{Name: sessionCookie, Value: "adm"})
	resp, err = http.DefaultClient.Do(req)
	require.NoError(t, err)
	body, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	assert.Contains(t, string(body), "Not saved: script &#34;bad&#34; does not compile: line 1")
	assert.Contains(t, string(body), "return (", "the unsaved source comes back")
}
