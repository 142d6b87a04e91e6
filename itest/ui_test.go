package itest

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/valkey-iungo/valkey-iungo/internal/vtest"
)

// browser starts headless Chromium (Debian's) with the flags this machine
// needs: no sandbox as root, and none of the background networking a
// closed network refuses.
func browser(t *testing.T) context.Context {
	t.Helper()
	path, err := exec.LookPath("chromium")
	require.NoError(t, err, "chromium is a test dependency (scripts/install-deps.sh)")
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path),
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.UserDataDir(t.TempDir()),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("no-first-run", true),
	)
	alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelCtx := chromedp.NewContext(alloc)
	ctx, cancelTimeout := context.WithTimeout(ctx, 90*time.Second)
	t.Cleanup(func() {
		cancelTimeout()
		cancelCtx()
		cancelAlloc()
	})
	return ctx
}

// Ensure the whole loop through the web UI: log in, write a script (a
// broken version is caught by Check before saving), add a route, push, and
// the route takes effect on a node.
func TestUIBrowserIntegration(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test")
	}
	srv := startIungo(t)
	node := startNode(t, at(t, srv))
	vtest.Eventually(t, 10*time.Second, "the node registered", func() bool { return len(nodes(t, srv).Nodes) == 1 })
	ctx := browser(t)
	text := func(sel string) string {
		t.Helper()
		v, err := chromedp.Run(ctx, chromedp.Text(sel))
		require.NoError(t, err, sel)
		return v
	}
	require.NoError(t, chromedp.Do(ctx,
		chromedp.Navigate(srv.URL()+"/login"),
		chromedp.SendKeys("#token", "adm"),
		chromedp.Click("#login"),
		chromedp.WaitVisible(`a[href="/ui/ns/shop"]`),
		chromedp.Click(`a[href="/ui/ns/shop"]`),
		chromedp.WaitVisible("#script-new"),
		chromedp.Click("#script-new"),
		chromedp.WaitVisible("#script-source"),
		chromedp.SendKeys("#script-name", "mark"),
		chromedp.SetValue("#script-source", "server.call('SET', 'seen:' .. KEYS[1], 'yes'"),
		chromedp.Click("#script-check"),
		chromedp.WaitVisible("#check-result.err"),
	))
	checked := text("#check-result")
	require.NoError(t, chromedp.Do(ctx,
		chromedp.SetValue("#script-source", "server.call('SET', 'seen:' .. KEYS[1], 'yes')"),
		chromedp.Click("#script-save"),
		chromedp.WaitVisible("#msg"),
	))
	saved := text("#msg")
	require.NoError(t, chromedp.Do(ctx,
		chromedp.SendKeys("#route-pattern", "web:*"),
		chromedp.SendKeys("#route-events", "set"),
		chromedp.SetValue("#route-script", "mark"),
		chromedp.Click("#route-add"),
		// The old page's #msg is still there until the new one loads.
		chromedp.WaitVisible(`//table[@id="routes"]//code[text()="web:*"]`),
	))
	routed := text("#msg")
	require.NoError(t, chromedp.Do(ctx,
		chromedp.Click("#push"),
		chromedp.WaitVisible("#push-results"),
	))
	pushed, nodes := text("#push-results"), text("#nodes")
	assert.Contains(t, checked, "does not compile: line 1", "Check shows the compiler's message before saving")
	assert.Contains(t, saved, "Script mark saved")
	assert.Contains(t, routed, "Route web:* set")
	assert.Contains(t, pushed, "version 3")
	assert.Contains(t, nodes, node.Addr)

	node.MustDo("SET", "web:1", "x")
	assert.Equal(t, "yes", str(t, node, "GET", "seen:web:1"), "the route made in the UI runs on the node")
	assert.True(t, strings.HasPrefix(infoField(t, node, "config_source"), "iungo"))
}

// Ensure a page on another local port cannot act through a logged-in
// browser: it auto-posted a script, a route to it and a push, and the
// script ran on every node. The forms now carry a CSRF token and the
// server checks where a request comes from.
func TestUICSRFBrowserIntegration(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test")
	}
	srv := startIungo(t)
	evil := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		fmt.Fprintf(w, `<!doctype html><body>
<form id="f" method="post" action="%s/ui/ns/shop/scripts">
<input name="name" value="evil"><textarea name="source">server.call('FLUSHALL')</textarea></form>
<script>document.getElementById('f').submit()</script></body>`, srv.URL())
	}))
	defer evil.Close()
	ctx := browser(t)
	require.NoError(t, chromedp.Do(ctx,
		chromedp.Navigate(srv.URL()+"/login"),
		chromedp.SendKeys("#token", "adm"),
		chromedp.Click("#login"),
		chromedp.WaitVisible(`a[href="/ui/ns/shop"]`),
		chromedp.Navigate(evil.URL),
		// The page posts itself to iungo-server, which answers Forbidden.
		chromedp.WaitVisible(`//body[contains(., "Forbidden")]`),
	))
	sn, err := srv.Store.Snapshot("shop")
	require.NoError(t, err)
	assert.Empty(t, sn.Scripts, "the cross-origin post saved nothing")
}
