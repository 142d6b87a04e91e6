package itest

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/valkey-iungo/valkey-iungo/internal/vtest"
	"github.com/valkey-iungo/valkey-iungo/iungo/server"
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

// page drives one browser tab in a test, on the iungo-server at base.
type page struct {
	t    *testing.T
	ctx  context.Context
	base string
}

func (p page) do(steps ...chromedp.Action[chromedp.Void]) {
	p.t.Helper()
	require.NoError(p.t, chromedp.Do(p.ctx, steps...))
}

func (p page) text(sel string) string {
	p.t.Helper()
	v, err := chromedp.Run(p.ctx, chromedp.Text(sel))
	require.NoError(p.t, err, sel)
	return v
}

func (p page) eval(js string) string {
	p.t.Helper()
	v, err := chromedp.Run(p.ctx, chromedp.Evaluate[string](js))
	require.NoError(p.t, err, js)
	return v
}

// answerConfirms makes the page's confirm dialogs answer yes or no, and
// keep what they asked in window.asked.
func (p page) answerConfirms(yes bool) {
	p.t.Helper()
	p.eval(fmt.Sprintf(`window.asked = ""; window.confirm = (m) => { window.asked = m; return %t; }; ""`, yes))
}

func (p page) login() {
	p.t.Helper()
	p.do(
		chromedp.Navigate(p.url("/login")),
		chromedp.SendKeys("#token", "adm"),
		chromedp.SendKeys("#login-name", "ana"),
		chromedp.Click("#login"),
		chromedp.WaitVisible(`a[href="/ui/ns/shop"]`),
	)
}

func (p page) url(path string) string { return p.base + path }

// Ensure the console's whole loop through the web UI: a broken script is
// caught by Check with its line marked; edits wait in a draft that a push
// does not send; Review shows the diff and Publish makes the version the
// node runs; a failing route's error shows with its key and line; the
// dry-run button runs the draft on the node without writing; History rolls
// back; a node is removed after a confirmation.
func TestUIBrowserIntegration(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test")
	}
	srv := startIungo(t)
	node := startNode(t, at(t, srv))
	vtest.Eventually(t, 10*time.Second, "the node registered", func() bool { return len(nodes(t, srv).Nodes) == 1 })
	p := page{t, browser(t), srv.URL()}
	p.login()
	p.do(
		chromedp.Navigate(p.url("/ui/ns/shop")),
		chromedp.Click("#script-new"),
		chromedp.WaitVisible("#script-source"),
		chromedp.SendKeys("#script-name", "mark"),
		chromedp.SetValue("#script-source", "local v = 'yes'\nserver.call('SET', 'seen:' .. KEYS[1], v"),
		chromedp.Click("#script-check"),
		chromedp.WaitVisible("#check-result.err"),
	)
	assert.Contains(t, p.text("#check-result"), "does not compile: line 2")
	assert.Equal(t, "2", p.text("#gutter .err-line"), "the error's line is marked")
	// Tab indents in the editor instead of leaving it.
	p.do(chromedp.SetValue("#script-source", "return 1"))
	p.eval(`document.getElementById("script-source").setSelectionRange(0, 0); ""`)
	p.do(chromedp.SendKeys("#script-source", kb.Tab))
	assert.Equal(t, "  return 1", p.eval(`document.getElementById("script-source").value`))

	p.do(
		chromedp.SetValue("#script-source", "local v = 'yes'\nserver.call('SET', 'seen:' .. KEYS[1], v)"),
		chromedp.Click("#script-save"),
		chromedp.WaitVisible("#msg"),
	)
	assert.Contains(t, p.text("#msg"), "Script mark saved in the draft")
	// A refused route comes back as typed, with the reason.
	p.do(
		chromedp.SendKeys("#route-pattern", "web:*"),
		chromedp.SendKeys("#route-events", "sett"),
		chromedp.SetValue("#route-script", "mark"),
		chromedp.Click("#route-add"),
		chromedp.WaitVisible("#err"),
	)
	assert.Contains(t, p.text("#err"), `unknown event "sett"`)
	assert.Equal(t, "web:*", p.eval(`document.getElementById("route-pattern").value`))
	p.do(
		chromedp.SetValue("#route-events", "set"),
		chromedp.SetValue("#route-window", "50"),
		chromedp.Click("#route-add"),
		chromedp.WaitVisible(`//*[@id="err"][contains(., "window of 50 ms; use 100 ms to 86400000 ms")]`),
	)
	assert.Equal(t, "50", p.eval(`document.getElementById("route-window").value`))
	p.eval(`document.getElementById("route-window").value = ""`)
	p.do(
		chromedp.Click("#route-add"),
		chromedp.WaitVisible(`//table[@id="routes"]//code[text()="web:*"]`),
		chromedp.WaitVisible("#draft-banner"),
	)
	assert.Contains(t, p.text("#draft-banner"), "2 unpublished changes")
	p.do(chromedp.Click("#push"), chromedp.WaitVisible("#push-results"))
	assert.Contains(t, p.text("#push-results"), "runs version 1", "a push sends what is published, not the draft")
	node.MustDo("SET", "web:1", "x")
	assert.Equal(t, int64(0), num(t, node, "EXISTS", "seen:web:1"))

	p.do(chromedp.Click("#review"), chromedp.WaitVisible("#publish"))
	diff := p.text(".diff")
	assert.Contains(t, diff, "+ server.call('SET', 'seen:' .. KEYS[1], v)")
	assert.Contains(t, diff, "web:*")
	p.do(
		chromedp.SendKeys("#publish-message", "mark web keys"),
		chromedp.Click("#publish"),
		chromedp.WaitVisible("#draft-none"),
	)
	assert.Contains(t, p.text("#msg"), "Published version 2")
	p.do(chromedp.Click("#push"), chromedp.WaitVisible("#push-results"))
	assert.Contains(t, p.text("#push-results"), "runs version 2")
	assert.Contains(t, p.text("#nodes"), node.Addr)
	node.MustDo("SET", "web:2", "x")
	assert.Equal(t, "yes", str(t, node, "GET", "seen:web:2"), "the published route runs on the node")

	// A failing script: its error shows on its route, with key and line.
	p.do(
		chromedp.Navigate(p.url("/ui/ns/shop/new-script")),
		chromedp.WaitVisible("#script-source"),
		chromedp.SendKeys("#script-name", "double"),
		chromedp.SetValue("#script-source", "local missing = nil\nreturn missing * 2"),
		chromedp.Click("#script-save"),
		chromedp.WaitVisible("#msg"),
		chromedp.SendKeys("#route-pattern", "bad:*"),
		chromedp.SendKeys("#route-events", "set"),
		chromedp.SetValue("#route-script", "double"),
		chromedp.Click("#route-add"),
		chromedp.WaitVisible(`//table[@id="routes"]//code[text()="bad:*"]`),
		chromedp.Click("#review"),
		chromedp.WaitVisible("#publish"),
		chromedp.Click("#publish"),
		chromedp.WaitVisible("#draft-none"),
		chromedp.Click("#push"),
		chromedp.WaitVisible("#push-results"),
	)
	node.MustDo("SET", "bad:7", "x")
	vtest.Eventually(t, 15*time.Second, "the route shows the error", func() bool {
		p.do(chromedp.Navigate(p.url("/ui/ns/shop")), chromedp.WaitVisible("#routes"))
		return strings.Contains(p.text("#routes"), "bad:7")
	})
	routes := p.text("#routes")
	assert.Contains(t, routes, "line 2: cannot perform mul operation between nil and number")
	assert.Regexp(t, `bad:7\s+2\s`, routes, "the key, then the line")
	// The line links to the script, the line marked.
	p.do(chromedp.Click(`//table[@id="routes"]//a[@class="line"]`), chromedp.WaitVisible("#gutter .err-line"))
	assert.Equal(t, "2", p.text("#gutter .err-line"))
	assert.Contains(t, p.eval("location.pathname"), "/scripts/double")

	// Dry run of the draft on the node: the error's line is marked; a
	// writing script lists its write, which does not run.
	p.do(
		chromedp.Navigate(p.url("/ui/ns/shop/scripts/double")),
		chromedp.WaitVisible("#try-run"),
		chromedp.SetValue("#try-key", "bad:8"),
		chromedp.Click("#try-run"),
		chromedp.WaitVisible(`//p[@id="try-error"][contains(., "line 2")]`),
	)
	assert.Equal(t, "2", p.text("#gutter .err-line"))
	p.do(
		chromedp.Navigate(p.url("/ui/ns/shop/scripts/mark")),
		chromedp.WaitVisible("#try-run"),
		chromedp.SetValue("#script-source", "local v = 'dry'\nserver.log(server.LOG_NOTICE, 'hi')\nserver.call('SET', 'seen:' .. KEYS[1], v)\nreturn v"),
		chromedp.SetValue("#try-key", "web:9"),
		chromedp.Click("#try-run"),
		chromedp.WaitVisible(`//pre[@id="try-writes"][contains(., "SET")]`),
	)
	assert.Equal(t, "SET seen:web:9 dry", p.text("#try-writes"))
	assert.Equal(t, `"dry"`, p.text("#try-returned"))
	assert.Equal(t, "notice: hi", p.text("#try-logs"))
	assert.Equal(t, int64(0), num(t, node, "EXISTS", "seen:web:9"), "a dry run writes nothing")

	// History: version 2 rolled back as version 4; the node runs it.
	p.do(
		chromedp.Navigate(p.url("/ui/ns/shop/versions")),
		chromedp.WaitVisible("#versions"),
	)
	history := p.text("#versions")
	assert.Contains(t, history, "mark web keys")
	assert.Contains(t, history, "ana")
	p.do(chromedp.Navigate(p.url("/ui/ns/shop/versions/2")), chromedp.WaitVisible("#rollback"))
	p.answerConfirms(false)
	p.do(chromedp.Click("#rollback"))
	assert.Contains(t, p.eval("window.asked"), "Publish the content of version 2 as a new version?")
	p.answerConfirms(true)
	p.do(chromedp.Click("#rollback"), chromedp.WaitVisible("#msg"))
	assert.Contains(t, p.text("#msg"), "version 4 has the content of version 2", "declined once, then done once")
	p.do(chromedp.Click("#push"), chromedp.WaitVisible("#push-results"))
	assert.Contains(t, p.text("#push-results"), "runs version 4")
	assert.Len(t, triggerList(t, node), 1, "version 2 had one route: bad:* is gone")

	// A cron: a refused schedule comes back as typed; published, the node has it.
	p.do(
		chromedp.SendKeys("#cron-name", "tick"),
		chromedp.SendKeys("#cron-schedule", "@every 100ms"),
		chromedp.SetValue("#cron-script", "mark"),
		chromedp.Click("#cron-add"),
		chromedp.WaitVisible(`//*[@id="err"][contains(., "at least 1s")]`),
	)
	assert.Equal(t, "@every 100ms", p.eval(`document.getElementById("cron-schedule").value`))
	p.do(
		chromedp.SetValue("#cron-schedule", "@every 1m"),
		chromedp.Click("#cron-add"),
		chromedp.WaitVisible(`//table[@id="crons"]//code[text()="@every 1m"]`),
		chromedp.Click("#review"),
		chromedp.WaitVisible("#publish"),
	)
	assert.Contains(t, p.text(".diff"), "Crons")
	p.do(chromedp.Click("#publish"), chromedp.WaitVisible("#draft-none"), chromedp.Click("#push"), chromedp.WaitVisible("#push-results"))
	assert.Contains(t, p.text("#push-results"), "runs version 5")
	assert.Equal(t, "@every 1m", cronField(t, node, "schedule"))

	// Removing a node asks first.
	p.answerConfirms(false)
	remove := `//table[@id="nodes"]//button[text()="Remove"]`
	p.do(chromedp.Click(remove))
	assert.Contains(t, p.eval("window.asked"), "Remove node ")
	require.Len(t, nodes(t, srv).Nodes, 1, "declined: nothing removed")
	p.answerConfirms(true)
	// The old page's #msg stays until the new page loads.
	p.do(chromedp.Click(remove), chromedp.WaitVisible(`//p[@id="msg"][contains(., "removed")]`))
	assert.Contains(t, p.text("#msg"), "Node ")
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

// Ensure every console page fits a 1400x1000 desktop and a 390-wide phone:
// nothing makes the page scroll sideways (wide tables scroll inside
// themselves), and the main controls are on screen. Set
// IUNGO_SCREENSHOTS=<dir> to keep a screenshot of each page.
func TestUILayoutBrowserIntegration(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test")
	}
	srv := startIungo(t)
	node := startNode(t, at(t, srv))
	adminDo(t, srv, "PUT", "/scripts/order-points", `{"source":"local amount = tonumber(server.call('HGET', KEYS[1], 'amount'))\nserver.call('INCRBY', 'points', amount)"}`, nil)
	adminDo(t, srv, "PUT", "/triggers", `{"pattern":"{u1}:order:*","events":"hset","script":"order-points","enabled":true}`, nil)
	adminDo(t, srv, "POST", "/publish", `{"message":"loyalty points for completed orders, credited once per order"}`, nil)
	adminDo(t, srv, "PUT", "/scripts/order-points", `{"source":"local amount = tonumber(server.call('HGET', KEYS[1], 'amount')) or 0\nserver.call('INCRBY', 'points', amount)"}`, nil)
	push(t, srv)
	node.MustDo("HSET", "{u1}:order:1", "status", "new")
	vtest.Eventually(t, 10*time.Second, "the node reported its error", func() bool {
		var v server.RoutesView
		adminDo(t, srv, "GET", "/routes", "", &v)
		return len(v.RecentErrors) == 1
	})
	id := nodes(t, srv).Nodes[0].ID
	p := page{t, browser(t), srv.URL()}
	p.login()
	pages := map[string]string{
		"namespace": "/ui/ns/shop", "script": "/ui/ns/shop/scripts/order-points", "publish": "/ui/ns/shop/publish",
		"history": "/ui/ns/shop/versions", "version": "/ui/ns/shop/versions/2", "node": "/ui/ns/shop/nodes/" + id,
		"namespaces": "/",
	}
	shots := os.Getenv("IUNGO_SCREENSHOTS")
	for _, size := range [][2]int64{{1400, 1000}, {390, 844}} {
		for name, path := range pages {
			p.do(chromedp.EmulateViewport(size[0], size[1]), chromedp.Navigate(p.url(path)), chromedp.WaitVisible("main"))
			overflow := p.eval(`String(document.documentElement.scrollWidth - window.innerWidth)`)
			assert.Equal(t, "0", overflow, "%s at %dx%d scrolls sideways by %s px", name, size[0], size[1], overflow)
			if shots != "" {
				png, err := chromedp.Run(p.ctx, chromedp.FullScreenshot(100))
				require.NoError(t, err)
				require.NoError(t, os.WriteFile(filepath.Join(shots, fmt.Sprintf("%s-%d.png", name, size[0])), png, 0o644))
			}
		}
	}
}
