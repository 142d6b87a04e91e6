package server

import (
	"cmp"
	"embed"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/valkey-iungo/valkey-iungo/config"
	"github.com/valkey-iungo/valkey-iungo/iungo"
)

//go:embed ui
var uiFiles embed.FS

var pages = map[string]*template.Template{}

func init() {
	for _, name := range []string{"login", "namespaces", "namespace", "script", "publish", "versions", "version", "node"} {
		pages[name] = template.Must(template.New(name).Funcs(template.FuncMap{"usec": usec, "errorList": errorList}).
			ParseFS(uiFiles, "ui/layout.html", "ui/diff.html", "ui/"+name+".html"))
	}
}

// page is what every template gets.
type page struct {
	Title, Namespace, Msg, Err string
	LoggedIn                   bool
	CSRF                       string // every form sends it back
	PublicKey                  string // of the namespace: what nodes pin

	Namespaces []Namespace
	Draft      Draft // the content pages show and edit
	Scripts    []scriptRow
	Classes    []classBox
	Nodes      []nodeRow
	InStep     bool
	Pushed     []PushResult
	RouteForm  iungo.Trigger // what the route form shows: kept when refused
	CronForm   iungo.Cron    // the same for the cron form

	New          bool
	Name, Source string
	CheckError   string
	Token        string // what the new-namespace form had, when refused

	Versions []VersionInfo
	Version  VersionDetail
	Author   string

	Routes       []routeRow
	RecentErrors []NodeError
	Node         NodeView
	Line         int // of the script, to mark in the editor
}

// routeRow is a route of the draft with what its live version did.
type routeRow struct {
	iungo.Trigger
	Draft string     // "new", "changed" or "" against the live version
	Live  *RouteView // nil when the live version has no such route
}

type scriptRow struct {
	Name          string
	Bytes, Routes int
}

type classBox struct {
	Name string
	On   bool
}

type nodeRow = NodeView

func (s *Server) routeUI(mux *http.ServeMux) {
	static, _ := fs.Sub(uiFiles, "ui")
	mux.Handle("GET /static/style.css", http.StripPrefix("/static/", http.FileServerFS(static)))
	mux.Handle("GET /static/script.js", http.StripPrefix("/static/", http.FileServerFS(static)))
	mux.Handle("GET /static/app.js", http.StripPrefix("/static/", http.FileServerFS(static)))
	mux.HandleFunc("GET /login", s.handleLoginPage)
	mux.HandleFunc("POST /login", s.handleLogin)
	mux.HandleFunc("POST /logout", s.ui(s.handleLogout))
	mux.HandleFunc("POST /ui/check", s.ui(s.handleCheck))
	mux.HandleFunc("POST /ui/ns/{ns}/nodes/delete", s.ui(s.handleUIDeleteNode))
	mux.HandleFunc("GET /{$}", s.ui(s.handleHome))
	mux.HandleFunc("POST /ui/namespaces", s.ui(s.handleUICreateNamespace))
	mux.HandleFunc("GET /ui/ns/{ns}", s.ui(s.handleUINamespace))
	mux.HandleFunc("POST /ui/ns/{ns}/push", s.ui(s.handleUIPush))
	mux.HandleFunc("GET /ui/ns/{ns}/new-script", s.ui(s.handleUINewScript))
	mux.HandleFunc("GET /ui/ns/{ns}/scripts/{name}", s.ui(s.handleUIScript))
	mux.HandleFunc("POST /ui/ns/{ns}/scripts", s.ui(s.handleUISaveScript))
	mux.HandleFunc("POST /ui/ns/{ns}/scripts/delete", s.ui(s.handleUIDeleteScript))
	mux.HandleFunc("POST /ui/ns/{ns}/routes", s.ui(s.handleUISaveRoute))
	mux.HandleFunc("POST /ui/ns/{ns}/routes/toggle", s.ui(s.handleUISaveRoute))
	mux.HandleFunc("POST /ui/ns/{ns}/routes/delete", s.ui(s.handleUIDeleteRoute))
	mux.HandleFunc("POST /ui/ns/{ns}/crons", s.ui(s.handleUISaveCron))
	mux.HandleFunc("POST /ui/ns/{ns}/crons/delete", s.ui(s.handleUIDeleteCron))
	mux.HandleFunc("POST /ui/ns/{ns}/events", s.ui(s.handleUIEvents))
	mux.HandleFunc("GET /ui/ns/{ns}/nodes/{id}", s.ui(s.handleUINode))
	mux.HandleFunc("POST /ui/ns/{ns}/delete", s.ui(s.handleUIDeleteNamespace))
	mux.HandleFunc("POST /ui/ns/{ns}/try", s.ui(s.handleTry))
	mux.HandleFunc("GET /ui/ns/{ns}/publish", s.ui(s.handleUIPublishPage))
	mux.HandleFunc("POST /ui/ns/{ns}/publish", s.ui(s.handleUIPublish))
	mux.HandleFunc("POST /ui/ns/{ns}/draft/discard", s.ui(s.handleUIDiscard))
	mux.HandleFunc("GET /ui/ns/{ns}/versions", s.ui(s.handleUIVersions))
	mux.HandleFunc("GET /ui/ns/{ns}/versions/{v}", s.ui(s.handleUIVersion))
	mux.HandleFunc("POST /ui/ns/{ns}/versions/{v}/rollback", s.ui(s.handleUIRollback))
}

func (s *Server) render(w http.ResponseWriter, r *http.Request, name string, p page) {
	if sess := sessionOf(r); sess != nil {
		p.LoggedIn, p.CSRF = true, sess.csrf
		msg, err := s.sessions.takeFlash(sess)
		p.Msg, p.Err = cmp.Or(p.Msg, msg), cmp.Or(p.Err, err)
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Content-Security-Policy", "default-src 'self'; frame-ancestors 'none'")
	w.Header().Set("X-Frame-Options", "DENY")
	if err := pages[name].ExecuteTemplate(w, "layout", p); err != nil {
		s.Log.Printf("iungo-server: rendering %s: %v", name, err)
	}
}

// back redirects to the namespace page, which shows a message or an error
// once: it travels in the session, never in the URL.
func (s *Server) back(w http.ResponseWriter, r *http.Request, ns string, err error, msg string) {
	if err != nil {
		s.sessions.flash(sessionOf(r), "", errText(err))
	} else {
		s.sessions.flash(sessionOf(r), msg, "")
	}
	http.Redirect(w, r, "/ui/ns/"+url.PathEscape(ns), http.StatusSeeOther)
}

// errText drops the wrapping sentinel from an error for people.
func errText(err error) string {
	s := err.Error()
	for _, prefix := range []string{"bad request: ", "not found: ", "conflict: "} {
		s = strings.TrimPrefix(s, prefix)
	}
	return strings.TrimPrefix(s, "ERR ")
}

func (s *Server) handleLoginPage(w http.ResponseWriter, r *http.Request) {
	s.render(w, r, "login", page{Title: "Log in"})
}

func (s *Server) handleLogin(w http.ResponseWriter, r *http.Request) {
	if !sameOrigin(r) {
		http.Error(w, "Forbidden: log in from iungo-server's own page.", http.StatusForbidden)
		return
	}
	if !equalTokens(r.PostFormValue("token"), s.AdminToken) {
		s.render(w, r, "login", page{Title: "Log in", Err: "That is not the admin token."})
		return
	}
	sess := s.sessions.create()
	sess.author = strings.TrimSpace(r.PostFormValue("name"))
	if len(sess.author) > maxAuthorBytes {
		sess.author = sess.author[:maxAuthorBytes]
	}
	s.setSessionCookie(w, r, sess.id, int(sessionTTL/time.Second))
	http.Redirect(w, r, "/", http.StatusSeeOther)
}

// handleLogout ends the session on the server: the cookie is worth nothing
// afterwards, wherever a copy of it went.
func (s *Server) handleLogout(w http.ResponseWriter, r *http.Request) {
	s.sessions.delete(sessionOf(r).id)
	s.setSessionCookie(w, r, "", -1)
	http.Redirect(w, r, "/login", http.StatusSeeOther)
}

func (s *Server) handleHome(w http.ResponseWriter, r *http.Request) {
	list, err := s.Store.Namespaces()
	p := page{Title: "Namespaces", Namespaces: list}
	if err != nil {
		p.Err = err.Error()
	}
	s.render(w, r, "namespaces", p)
}

func (s *Server) handleUICreateNamespace(w http.ResponseWriter, r *http.Request) {
	name, token := strings.TrimSpace(r.FormValue("name")), strings.TrimSpace(r.FormValue("token"))
	ns, err := s.Store.CreateNamespace(name, token)
	if err != nil {
		// The form comes back as typed, with the reason.
		list, _ := s.Store.Namespaces()
		s.render(w, r, "namespaces", page{Title: "Namespaces", Namespaces: list, Name: name, Token: token,
			Err: "Namespace not created: " + errText(err)})
		return
	}
	s.back(w, r, ns.Name, nil, "Namespace "+ns.Name+" created; its node token is "+ns.Token)
}

// namespacePage gathers everything the namespace page shows: the draft,
// which edits change, and the nodes, which run the published version.
func (s *Server) namespacePage(ns string) (page, error) {
	d, err := s.Store.Draft(ns)
	if err != nil {
		return page{}, err
	}
	p := page{Title: ns, Namespace: ns, Draft: d, RouteForm: iungo.Trigger{Enabled: true}, CronForm: iungo.Cron{Enabled: true}}
	routes := map[string]int{}
	for _, t := range d.Content.Triggers {
		routes[t.Script]++
	}
	for _, cr := range d.Content.Crons {
		routes[cr.Script]++
	}
	for _, sc := range d.Content.Scripts {
		p.Scripts = append(p.Scripts, scriptRow{Name: sc.Name, Bytes: len(sc.Source), Routes: routes[sc.Name]})
	}
	on := map[string]bool{}
	for _, e := range d.Content.Events {
		on[e] = true
	}
	for _, name := range config.ClassNames(config.ClassesSubscribed) {
		p.Classes = append(p.Classes, classBox{Name: name, On: on[name]})
	}
	runs, err := s.routesView(ns)
	if err != nil {
		return p, err
	}
	live := map[iungo.TriggerKey]*RouteView{}
	for i, rt := range runs.Routes {
		live[iungo.TriggerKey{Pattern: rt.Pattern, Events: rt.Events}] = &runs.Routes[i]
	}
	for _, t := range d.Content.Triggers {
		row := routeRow{Trigger: t, Live: live[iungo.TriggerKey{Pattern: t.Pattern, Events: t.Events}]}
		switch {
		case row.Live == nil:
			row.Draft = "new"
		case row.Live.Trigger != t:
			row.Draft = "changed"
		}
		p.Routes = append(p.Routes, row)
	}
	p.RecentErrors = runs.RecentErrors
	view, err := s.nodesView(ns)
	if err != nil {
		return p, err
	}
	for _, n := range view.Nodes {
		n.LastSeen = n.Node.LastSeen.Local().Format("15:04:05")
		p.Nodes = append(p.Nodes, n)
	}
	p.InStep = view.InStep
	if n, err := s.Store.Namespace(ns); err == nil {
		p.PublicKey = n.PublicKey()
	}
	return p, nil
}

func (s *Server) handleUINamespace(w http.ResponseWriter, r *http.Request) {
	p, err := s.namespacePage(r.PathValue("ns"))
	if err != nil {
		s.uiNotFound(w, r, err)
		return
	}
	s.render(w, r, "namespace", p)
}

func (s *Server) uiNotFound(w http.ResponseWriter, r *http.Request, err error) {
	if errors.Is(err, ErrNotFound) {
		w.WriteHeader(http.StatusNotFound)
	}
	s.render(w, r, "namespaces", page{Title: "Not found", Err: errText(err)})
}

func (s *Server) handleUIPush(w http.ResponseWriter, r *http.Request) {
	ns := r.PathValue("ns")
	results, err := s.Push(r.Context(), ns)
	p, perr := s.namespacePage(ns)
	if perr != nil {
		s.uiNotFound(w, r, perr)
		return
	}
	p.Pushed = results
	// A node that answered runs what it answered: the nodes table says so
	// before its next heartbeat does.
	for _, res := range results {
		for i := range p.Nodes {
			if n := &p.Nodes[i]; n.ID == res.Node && res.Error == "" && res.Skipped == "" {
				n.NamespaceVersion, n.LastError = uint64(res.Version), ""
				if n.NamespaceVersion == p.Draft.BaseVersion {
					n.Health = "ok"
				}
			}
		}
	}
	p.InStep = true
	for _, n := range p.Nodes {
		p.InStep = p.InStep && InStep(n.Health)
	}
	switch failed := Failed(results); {
	case err != nil:
		p.Err = errText(err)
	case len(results) == 0:
		p.Err = "No node has registered in this namespace yet."
	case failed > 0:
		p.Err = "Push failed on " + plural(failed, "node") + " of " + strconv.Itoa(len(results)) + ": see below."
	default:
		p.Msg = "Pushed to " + plural(len(results), "node") + "."
	}
	s.render(w, r, "namespace", p)
}

func plural(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return strconv.Itoa(n) + " " + what + "s"
}

func (s *Server) handleUINewScript(w http.ResponseWriter, r *http.Request) {
	ns := r.PathValue("ns")
	if _, err := s.Store.Namespace(ns); err != nil {
		s.uiNotFound(w, r, err)
		return
	}
	s.render(w, r, "script", s.scriptPage(page{Title: "New script", Namespace: ns, New: true,
		Source: "-- KEYS[1] is the key, ARGV[1] the event, ARGV[2] the database.\nserver.call('INCR', 'seen:' .. ARGV[1])\n"}))
}

func (s *Server) handleUIScript(w http.ResponseWriter, r *http.Request) {
	ns, name := r.PathValue("ns"), r.PathValue("name")
	d, err := s.Store.Draft(ns)
	if err != nil {
		s.uiNotFound(w, r, err)
		return
	}
	if i := d.Content.script(name); i >= 0 {
		line, _ := strconv.Atoi(r.URL.Query().Get("line"))
		s.render(w, r, "script", s.scriptPage(page{Title: name, Namespace: ns, Name: name, Source: d.Content.Scripts[i].Source, Line: line}))
		return
	}
	s.uiNotFound(w, r, fmt.Errorf("%w: no script %s in the draft of %s", ErrNotFound, name, ns))
}

// handleUISaveScript compiles before saving: a script that does not
// compile comes back with the compiler's message, unsaved, as typed.
func (s *Server) handleUISaveScript(w http.ResponseWriter, r *http.Request) {
	ns, name, source := r.PathValue("ns"), strings.TrimSpace(r.FormValue("name")), r.FormValue("source")
	if err := s.Store.SetScript(ns, name, source); err != nil {
		s.render(w, r, "script", s.scriptPage(page{Title: cmp.Or(name, "New script"), Namespace: ns, New: r.FormValue("new") == "1",
			Name: name, Source: source, CheckError: errText(err), Err: "Not saved: " + errText(err), Line: iungo.ErrorLine(err.Error())}))
		return
	}
	s.back(w, r, ns, nil, "Script "+name+" saved in the draft: publish to send it to the nodes.")
}

func (s *Server) handleUIDeleteScript(w http.ResponseWriter, r *http.Request) {
	ns, name := r.PathValue("ns"), r.FormValue("name")
	err := s.Store.DeleteScript(ns, name)
	s.back(w, r, ns, err, "Script "+name+" deleted from the draft.")
}

// handleUISaveRoute saves a route in the draft; a refused route comes back
// in the form as typed, with the reason.
func (s *Server) handleUISaveRoute(w http.ResponseWriter, r *http.Request) {
	ns := r.PathValue("ns")
	t := iungo.Trigger{
		Pattern: r.FormValue("pattern"), Events: strings.TrimSpace(r.FormValue("events")),
		Script: r.FormValue("script"), Enabled: r.FormValue("enabled") == "1",
	}
	var err error
	if w := strings.TrimSpace(r.FormValue("window_ms")); w != "" && w != "0" {
		if t.WindowMs, err = strconv.ParseInt(w, 10, 64); err != nil || t.WindowMs <= 0 {
			err = fmt.Errorf("window %q: give a length in ms, such as 60000, or leave it empty", w)
		}
	}
	if err == nil {
		err = s.Store.SetTrigger(ns, t)
	}
	if err != nil {
		s.refusedForm(w, r, ns, func(p *page) { p.RouteForm, p.Err = t, "Route not saved: "+errText(err) })
		return
	}
	s.back(w, r, ns, nil, "Route "+t.Pattern+" "+t.Events+" → "+t.Script+" saved in the draft.")
}

func (s *Server) handleUIDeleteRoute(w http.ResponseWriter, r *http.Request) {
	ns := r.PathValue("ns")
	err := s.Store.DeleteTrigger(ns, r.FormValue("pattern"), r.FormValue("events"))
	s.back(w, r, ns, err, "Route deleted from the draft.")
}

// handleUISaveCron saves a cron in the draft; a refused cron comes back in
// the form as typed, with the reason.
func (s *Server) handleUISaveCron(w http.ResponseWriter, r *http.Request) {
	ns := r.PathValue("ns")
	cr := iungo.Cron{Name: strings.TrimSpace(r.FormValue("name")), Schedule: strings.TrimSpace(r.FormValue("schedule")),
		Script: r.FormValue("script"), Enabled: r.FormValue("enabled") == "1"}
	if err := s.Store.SetCron(ns, cr); err != nil {
		s.refusedForm(w, r, ns, func(p *page) { p.CronForm, p.Err = cr, "Cron not saved: "+errText(err) })
		return
	}
	s.back(w, r, ns, nil, "Cron "+cr.Name+" ("+cr.Schedule+" → "+cr.Script+") saved in the draft.")
}

// refusedForm shows the namespace page again with a refused form as typed
// and the reason, which keep sets.
func (s *Server) refusedForm(w http.ResponseWriter, r *http.Request, ns string, keep func(*page)) {
	p, err := s.namespacePage(ns)
	if err != nil {
		s.uiNotFound(w, r, err)
		return
	}
	keep(&p)
	s.render(w, r, "namespace", p)
}

func (s *Server) handleUIDeleteCron(w http.ResponseWriter, r *http.Request) {
	ns := r.PathValue("ns")
	err := s.Store.DeleteCron(ns, r.FormValue("name"))
	s.back(w, r, ns, err, "Cron deleted from the draft.")
}

func (s *Server) handleUIEvents(w http.ResponseWriter, r *http.Request) {
	ns := r.PathValue("ns")
	if err := r.ParseForm(); err != nil {
		s.back(w, r, ns, err, "")
		return
	}
	err := s.Store.SetEvents(ns, r.Form["class"])
	s.back(w, r, ns, err, "Event classes saved in the draft.")
}

func (s *Server) handleUIDeleteNode(w http.ResponseWriter, r *http.Request) {
	ns, id := r.PathValue("ns"), r.FormValue("id")
	err := s.Store.DeleteNode(ns, id)
	s.back(w, r, ns, err, "Node "+id+" removed; it registers again at its next heartbeat unless it stops following "+ns+".")
}

// handleUIPublishPage shows the draft's difference from the live version.
func (s *Server) handleUIPublishPage(w http.ResponseWriter, r *http.Request) {
	ns := r.PathValue("ns")
	d, err := s.Store.Draft(ns)
	if err != nil {
		s.uiNotFound(w, r, err)
		return
	}
	s.render(w, r, "publish", page{Title: "Publish " + ns, Namespace: ns, Draft: d, Author: sessionOf(r).author})
}

func (s *Server) handleUIPublish(w http.ResponseWriter, r *http.Request) {
	ns := r.PathValue("ns")
	by := cmp.Or(strings.TrimSpace(r.FormValue("author")), sessionOf(r).author, "web UI")
	v, diff, err := s.Store.Publish(ns, by, strings.TrimSpace(r.FormValue("message")))
	if err != nil {
		s.back(w, r, ns, err, "")
		return
	}
	s.Log.Printf("iungo-server: %s published version %d", ns, v)
	s.back(w, r, ns, nil, "Published version "+strconv.FormatUint(v, 10)+" ("+plural(diff.Count(), "change")+
		"): nodes take it at their next heartbeat, or now with Push to nodes.")
}

func (s *Server) handleUIDiscard(w http.ResponseWriter, r *http.Request) {
	ns := r.PathValue("ns")
	s.back(w, r, ns, s.Store.DiscardDraft(ns), "Draft discarded: it is the live version again.")
}

func (s *Server) handleUIVersions(w http.ResponseWriter, r *http.Request) {
	ns := r.PathValue("ns")
	list, err := s.Store.Versions(ns)
	if err != nil {
		s.uiNotFound(w, r, err)
		return
	}
	for i := range list {
		list[i].At = publishedAt(list[i].At)
	}
	s.render(w, r, "versions", page{Title: "History of " + ns, Namespace: ns, Versions: list})
}

func (s *Server) handleUIVersion(w http.ResponseWriter, r *http.Request) {
	ns := r.PathValue("ns")
	v, err := versionParam(r)
	if err == nil {
		var d VersionDetail
		if d, err = s.Store.Version(ns, v); err == nil {
			d.At = publishedAt(d.At)
			dr, _ := s.Store.Draft(ns)
			s.render(w, r, "version", page{Title: fmt.Sprintf("%s version %d", ns, v), Namespace: ns, Version: d, Draft: dr})
			return
		}
	}
	s.uiNotFound(w, r, err)
}

func (s *Server) handleUIRollback(w http.ResponseWriter, r *http.Request) {
	ns := r.PathValue("ns")
	v, err := versionParam(r)
	if err != nil {
		s.back(w, r, ns, err, "")
		return
	}
	by := cmp.Or(sessionOf(r).author, "web UI")
	nv, _, err := s.Store.Rollback(ns, v, by, r.FormValue("discard_draft") == "1")
	s.back(w, r, ns, err, fmt.Sprintf("Rolled back: version %d has the content of version %d; nodes take it at their next heartbeat, or now with Push to nodes.", nv, v))
}

// errorListView is what the errors template shows: a namespace's errors,
// whose lines link to its scripts.
type errorListView struct {
	Namespace string
	Errors    []NodeError
}

func errorList(ns string, errs []NodeError) errorListView { return errorListView{ns, errs} }

// handleUINode shows one node: its health and what its triggers did.
func (s *Server) handleUINode(w http.ResponseWriter, r *http.Request) {
	ns, id := r.PathValue("ns"), r.PathValue("id")
	view, err := s.nodesView(ns)
	if err != nil {
		s.uiNotFound(w, r, err)
		return
	}
	for _, n := range view.Nodes {
		if n.ID == id {
			n.LastSeen = publishedAt(n.LastSeen)
			var errs []NodeError
			routes, _ := s.routesView(ns)
			for _, e := range routes.RecentErrors {
				if e.Node == id {
					errs = append(errs, e)
				}
			}
			s.render(w, r, "node", page{Title: "Node " + id, Namespace: ns, Node: n, RecentErrors: errs})
			return
		}
	}
	s.uiNotFound(w, r, fmt.Errorf("%w: no node %q in namespace %q", ErrNotFound, id, ns))
}

// usec shows microseconds for people: µs, ms or s.
func usec(us uint64) string {
	switch {
	case us < 1000:
		return strconv.FormatUint(us, 10) + " µs"
	case us < 1000000:
		return strconv.FormatFloat(float64(us)/1e3, 'f', 1, 64) + " ms"
	}
	return strconv.FormatFloat(float64(us)/1e6, 'f', 2, 64) + " s"
}

// scriptPage adds to a script page the nodes a dry run may use.
func (s *Server) scriptPage(p page) page {
	if view, err := s.nodesView(p.Namespace); err == nil {
		p.Nodes = view.Nodes
	}
	return p
}

// handleUIDeleteNamespace removes a namespace once its name is typed again.
func (s *Server) handleUIDeleteNamespace(w http.ResponseWriter, r *http.Request) {
	ns := r.PathValue("ns")
	if r.FormValue("confirm") != ns {
		s.back(w, r, ns, fmt.Errorf("not removed: type the namespace's name, %s, to confirm", ns), "")
		return
	}
	if err := s.Store.DeleteNamespace(ns); err != nil {
		s.back(w, r, ns, err, "")
		return
	}
	s.Log.Printf("iungo-server: namespace %s removed", ns)
	s.sessions.flash(sessionOf(r), "Namespace "+ns+" removed; its nodes keep what they run and report sync errors until they follow another namespace.", "")
	http.Redirect(w, r, "/", http.StatusSeeOther)
}
