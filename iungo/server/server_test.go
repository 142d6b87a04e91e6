package server

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"regexp"
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

// publishNow publishes the draft of "shop".
func publishNow(t *testing.T, s *Store) uint64 {
	t.Helper()
	v, _, err := s.Publish("shop", "test", "")
	require.NoError(t, err)
	return v
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
	ns, err := s.Store.Namespace("shop")
	require.NoError(t, err)
	pub, err := iungo.ParsePublicKey(ns.PublicKey())
	require.NoError(t, err)
	c := &iungo.Client{Endpoint: hs.URL, Namespace: "shop", Token: "tok", PublicKey: pub}
	_, err = c.Heartbeat(ctx, "n1", iungo.Health{Role: "primary"})
	require.True(t, iungo.IsNotFound(err), "a heartbeat before registering is 404: %v", err)
	reply, err := c.Register(ctx, iungo.Registration{NodeID: "n1", Address: "127.0.0.1:1", Role: "primary"})
	require.NoError(t, err)
	assert.Equal(t, uint64(1), reply.Version)

	require.NoError(t, s.Store.SetScript("shop", "a", "return 1"))
	publishNow(t, s.Store)
	require.NoError(t, s.Store.SetTrigger("shop", iungo.Trigger{Pattern: "k:*", Events: "set", Script: "a", Enabled: true}))
	sn, err := c.Snapshot(ctx)
	require.NoError(t, err)
	assert.Equal(t, uint64(2), sn.Version, "nodes never see a draft")
	assert.Empty(t, sn.Triggers)
	publishNow(t, s.Store)
	sn, err = c.Snapshot(ctx)
	require.NoError(t, err)
	assert.Equal(t, uint64(3), sn.Version)
	assert.Len(t, sn.Triggers, 1)

	upd, err := c.Changes(ctx, 0)
	require.NoError(t, err)
	require.NotNil(t, upd.Snapshot)
	require.NoError(t, s.Store.SetScript("shop", "b", "return 2"))
	publishNow(t, s.Store)
	upd, err = c.Changes(ctx, 3)
	require.NoError(t, err)
	require.NotNil(t, upd.Delta)
	assert.Equal(t, []iungo.Script{{Name: "b", Source: "return 2"}}, upd.Delta.Scripts.Set)
	assert.Equal(t, sn.Digest, upd.Delta.FromDigest)
	assert.Nil(t, upd.Delta.Events, "events did not change")

	reply, err = c.Heartbeat(ctx, "n1", iungo.Health{NamespaceVersion: 3, Role: "primary", Runs: 5})
	require.NoError(t, err)
	assert.Equal(t, uint64(4), reply.Version)
	nodes, err := s.Store.Nodes("shop")
	require.NoError(t, err)
	require.Len(t, nodes, 1)
	assert.Equal(t, uint64(5), nodes[0].Runs)

	wrong := &iungo.Client{Endpoint: hs.URL, Namespace: "shop", Token: "nope", PublicKey: pub}
	_, err = wrong.Snapshot(ctx)
	require.ErrorContains(t, err, "401 unauthorized")
	other := &iungo.Client{Endpoint: hs.URL, Namespace: "nope", Token: "tok", PublicKey: pub}
	_, errOther := other.Snapshot(ctx)
	assert.Equal(t, err.Error(), errOther.Error(), "a missing namespace answers as a wrong token does")
}

// Ensure every configuration body is signed with the namespace's key, and
// with nothing a node holds.
func TestSignatures(t *testing.T) {
	s, hs := mustOpenServer(t)
	ns, err := s.Store.Namespace("shop")
	require.NoError(t, err)
	pub, err := iungo.ParsePublicKey(ns.PublicKey())
	require.NoError(t, err)
	web, err := s.Store.CreateNamespace("web", "tok2")
	require.NoError(t, err)
	assert.NotEqual(t, ns.PublicKey(), web.PublicKey(), "a key per namespace")
	for _, path := range []string{"snapshot", "changes?since=0", "scripts", "triggers", "events"} {
		req, _ := http.NewRequest("GET", hs.URL+iungo.APIPrefix+"/namespaces/shop/"+path, nil)
		req.Header.Set("Authorization", "Bearer tok")
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		require.Equal(t, 200, resp.StatusCode, path)
		require.NoError(t, iungo.Verify(pub, body, resp.Header.Get(iungo.SignatureHeader)), path)
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
		{"POST", "", `{"name":"bad name"}`, 400, "use letters, digits"},
		{"POST", "", `{"name":`, 400, "not the JSON expected"},
		{"PUT", "/shop/scripts/a", `{"source":"return ("}`, 400, `script \"a\" does not compile: line 1`},
		{"PUT", "/shop/scripts/a", `{"source":"return 1"}`, 200, `{"version":1,"pending":1,"published":false}`},
		{"PUT", "/shop/triggers", `{"pattern":"k","events":"sett","script":"a"}`, 400, `unknown event \"sett\"`},
		{"PUT", "/shop/triggers", `{"pattern":"k","events":"set","script":"zz"}`, 400, `unknown script \"zz\"`},
		{"PUT", "/shop/triggers", `{"pattern":"k","events":"set","script":"a","enabled":true}`, 200, `"pending":2`},
		{"DELETE", "/shop/scripts/a", "", 409, "is used by 1 trigger"},
		{"DELETE", "/shop/triggers", `{"pattern":"k","events":"del"}`, 404, "no trigger for pattern"},
		{"PUT", "/shop/events", `{"events":["hash","bogus"]}`, 400, `unknown event class \"bogus\"`},
		{"PUT", "/shop/events", `{"events":["hash","x"]}`, 200, `"pending":3`},
		{"GET", "/shop", "", 200, `"version":1`},
		{"GET", "/shop/draft", "", 200, `"pending":true`},
		{"POST", "/shop/publish", `{"author":"ana","message":"first routes"}`, 200, `"version":2`},
		{"POST", "/shop/publish", "", 409, "nothing to publish"},
		{"GET", "/shop", "", 200, `"events":["hash","expired"]`},
		{"PUT", "/shop/scripts/b?publish=true", `{"source":"return 2"}`, 200, `{"version":3,"pending":0,"published":true}`},
		{"GET", "/shop/versions", "", 200, `{"version":2,"at":`},
		{"GET", "/shop/versions/2", "", 200, `"author":"ana","message":"first routes","changes":3,"recorded":true`},
		{"GET", "/shop/versions/9", "", 404, "has no version 9"},
		{"GET", "/shop/versions/x", "", 400, "not a version number"},
		{"POST", "/shop/versions/2/rollback", "", 200, `"version":4`},
		{"POST", "/shop/versions/4/rollback", "", 409, "is the live configuration already"},
		{"GET", "/nope", "", 404, "does not exist"},
		{"POST", "/shop/push", "", 200, "[]"},
		{"GET", "/shop/nodes", "", 200, `"in_step":true,"nodes":[]`},
		{"DELETE", "/shop/nodes/ghost", "", 404, `no node \"ghost\"`},
		{"PUT", "/shop/push-credentials", `{"user":"pusher","password":"pw"}`, 200, "ok"},
		{"GET", "/shop", "", 200, `"digest":"sha256:`},
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

// login logs in to the UI and returns a client that keeps the session
// cookie, and the session's CSRF token.
func login(t *testing.T, hs *httptest.Server) (*http.Client, string) {
	t.Helper()
	jar, err := cookiejar.New(nil)
	require.NoError(t, err)
	c := &http.Client{Jar: jar}
	resp, err := c.PostForm(hs.URL+"/login", url.Values{"token": {"adm"}})
	require.NoError(t, err)
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	m := regexp.MustCompile(`name="csrf" value="([0-9a-f]+)"`).FindStringSubmatch(string(body))
	require.NotNil(t, m, "a logged-in page carries the CSRF token")
	for _, ck := range jar.Cookies(mustURL(t, hs.URL)) {
		require.NotEqual(t, "adm", ck.Value, "the cookie is a session id, not the admin token")
	}
	return c, m[1]
}

func mustURL(t *testing.T, s string) *url.URL {
	u, err := url.Parse(s)
	require.NoError(t, err)
	return u
}

// postForm posts a UI form with the given headers.
func postForm(t *testing.T, c *http.Client, u string, form url.Values, headers map[string]string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest("POST", u, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	resp, err := c.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// Ensure the UI asks for the admin token and then serves its pages, and a
// script that does not compile is shown back with the compiler's message.
func TestUI(t *testing.T) {
	s, hs := mustOpenServer(t)
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

	c, csrf := login(t, hs)
	get := func(path string) string {
		resp, err := c.Get(hs.URL + path)
		require.NoError(t, err)
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		require.Equal(t, 200, resp.StatusCode, path)
		return string(b)
	}
	assert.Contains(t, get("/"), `href="/ui/ns/shop"`)
	page := get("/ui/ns/shop")
	for _, id := range []string{`id="push"`, `id="route-pattern"`, `id="script-new"`, `id="nodes"`, `value="hash"`, `id="public-key"`} {
		assert.Contains(t, page, id)
	}
	assert.Contains(t, get("/ui/ns/shop/new-script"), `id="script-source"`)
	assert.Contains(t, get("/static/style.css"), "--accent")

	code, body2 := postForm(t, c, hs.URL+"/ui/ns/shop/scripts", url.Values{"name": {"bad"}, "source": {"return ("}, "csrf": {csrf}}, nil)
	assert.Equal(t, 200, code)
	assert.Contains(t, body2, "Not saved: script &#34;bad&#34; does not compile: line 1")
	assert.Contains(t, body2, "return (", "the unsaved source comes back")

	code, body2 = postForm(t, c, hs.URL+"/ui/namespaces", url.Values{"name": {"bad name"}, "token": {"t0k"}, "csrf": {csrf}}, nil)
	assert.Equal(t, 200, code)
	assert.Contains(t, body2, "Namespace not created:")
	assert.Contains(t, body2, `value="bad name"`, "the form keeps what was typed")
	assert.Contains(t, body2, `value="t0k"`)

	code, body2 = postForm(t, c, hs.URL+"/ui/ns/shop/delete", url.Values{"confirm": {"shoe"}, "csrf": {csrf}}, nil)
	assert.Equal(t, 200, code)
	assert.Contains(t, body2, "not removed: type the namespace&#39;s name, shop, to confirm")
	code, _ = postForm(t, c, hs.URL+"/ui/ns/shop/delete", url.Values{"confirm": {"shop"}, "csrf": {csrf}}, nil)
	assert.Equal(t, 200, code)
	_, err = s.Store.Namespace("shop")
	require.ErrorIs(t, err, ErrNotFound, "removed once its name was typed")
}

// Ensure UI requests that change anything need the session's CSRF token
// and the UI's own origin (another port of the same host is same-site,
// which SameSite=Strict lets through), and logging out revokes the
// session on the server.
func TestUICSRFAndSessions(t *testing.T) {
	s, hs := mustOpenServer(t)
	c, csrf := login(t, hs)
	add := func(form url.Values, headers map[string]string) int {
		code, _ := postForm(t, c, hs.URL+"/ui/ns/shop/scripts", form, headers)
		return code
	}
	script := url.Values{"name": {"evil"}, "source": {"return 1"}}
	assert.Equal(t, 403, add(script, nil), "no CSRF token")
	withToken := url.Values{"name": {"evil"}, "source": {"return 1"}, "csrf": {"0123"}}
	assert.Equal(t, 403, add(withToken, nil), "a wrong CSRF token")
	withToken.Set("csrf", csrf)
	assert.Equal(t, 403, add(withToken, map[string]string{"Origin": "http://127.0.0.1:9"}), "another origin")
	assert.Equal(t, 403, add(withToken, map[string]string{"Sec-Fetch-Site": "same-site"}), "another port of the same host")
	sn, err := s.Store.Snapshot("shop")
	require.NoError(t, err)
	assert.Empty(t, sn.Scripts, "nothing was saved")
	assert.Equal(t, 200, add(withToken, map[string]string{"Origin": hs.URL, "Sec-Fetch-Site": "same-origin"}))

	// The cookie, copied before logout, is worth nothing after it.
	cookies := c.Jar.Cookies(mustURL(t, hs.URL))
	code, _ := postForm(t, c, hs.URL+"/logout", url.Values{"csrf": {csrf}}, nil)
	assert.Equal(t, 200, code) // the login page, after the redirect
	stale := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	req, _ := http.NewRequest("GET", hs.URL+"/ui/ns/shop", nil)
	for _, ck := range cookies {
		req.AddCookie(ck)
	}
	resp, err := stale.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusSeeOther, resp.StatusCode, "the session ended on the server")

	// Messages travel in the session, never in the URL.
	resp, err = http.Get(hs.URL + "/login?err=%3Cb%3EYour+token+expired%2C+use+evil.example%3C%2Fb%3E")
	require.NoError(t, err)
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	assert.NotContains(t, string(b), "evil.example")
}
