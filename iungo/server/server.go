// Package server is the reference iungo server: it stores namespaces,
// their scripts, triggers and event classes in an embedded SQLite file,
// serves the node API of docs/iungo-protocol.md and a token-protected admin
// API, pushes IUNGO SYNC to the nodes, and serves a web UI, all from one
// binary with nothing else to install.
package server

import (
	"cmp"
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/valkey-iungo/valkey-iungo/iungo"
)

// Server serves the node API, the admin API and the UI.
type Server struct {
	Store      *Store
	AdminToken string
	// MetricsToken, if set, reads GET /metrics and nothing else.
	MetricsToken string
	Log          *log.Logger
	// Timeouts of every connection; the defaults when zero.
	ReadTimeout, WriteTimeout, IdleTimeout time.Duration

	sessions sessions
	pushes   pushCounts
	ln       net.Listener
	srv      *http.Server
}

// New returns a server over store, whose admin API and UI want adminToken.
func New(store *Store, adminToken string) *Server {
	return &Server{Store: store, AdminToken: adminToken, Log: log.New(io.Discard, "", 0)}
}

// Timeouts of every connection: a client that sends or reads slowly is cut
// off. Writes may take a push's time.
const (
	readTimeout  = 30 * time.Second
	writeTimeout = pushTimeout + 10*time.Second
	idleTimeout  = 60 * time.Second
)

// Open starts listening on addr (host:port; port 0 picks one).
func (s *Server) Open(addr string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	s.ln = ln
	read := cmp.Or(s.ReadTimeout, readTimeout)
	s.srv = &http.Server{Handler: s.Handler(), ReadHeaderTimeout: min(read, 10*time.Second), ReadTimeout: read,
		WriteTimeout: cmp.Or(s.WriteTimeout, writeTimeout), IdleTimeout: cmp.Or(s.IdleTimeout, idleTimeout)}
	go func() {
		defer func() {
			if r := recover(); r != nil {
				s.Log.Printf("iungo-server: panic serving: %v", r)
			}
		}()
		if err := s.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.Log.Printf("iungo-server: %v", err)
		}
	}()
	return nil
}

// URL is where the server listens, e.g. http://127.0.0.1:7379.
func (s *Server) URL() string { return "http://" + s.ln.Addr().String() }

// Close stops the server.
func (s *Server) Close() error {
	if s.srv == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return s.srv.Shutdown(ctx)
}

// Handler routes every request.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	api := iungo.APIPrefix + "/namespaces/{ns}"
	mux.HandleFunc("POST "+api+"/nodes", s.node(s.handleRegister))
	mux.HandleFunc("POST "+api+"/nodes/{id}/heartbeat", s.node(s.handleHeartbeat))
	mux.HandleFunc("GET "+api+"/snapshot", s.node(s.handleSnapshot))
	mux.HandleFunc("GET "+api+"/changes", s.node(s.handleChanges))
	mux.HandleFunc("GET "+api+"/{part}", s.node(s.handlePart))

	admin := "/admin/v1/namespaces"
	mux.HandleFunc("GET "+admin, s.admin(s.handleListNamespaces))
	mux.HandleFunc("POST "+admin, s.admin(s.handleCreateNamespace))
	mux.HandleFunc("GET "+admin+"/{ns}", s.admin(s.handleGetNamespace))
	mux.HandleFunc("DELETE "+admin+"/{ns}", s.admin(s.handleDeleteNamespace))
	mux.HandleFunc("PUT "+admin+"/{ns}/scripts/{name}", s.admin(s.handlePutScript))
	mux.HandleFunc("DELETE "+admin+"/{ns}/scripts/{name}", s.admin(s.handleDeleteScript))
	mux.HandleFunc("PUT "+admin+"/{ns}/triggers", s.admin(s.handlePutTrigger))
	mux.HandleFunc("DELETE "+admin+"/{ns}/triggers", s.admin(s.handleDeleteTrigger))
	mux.HandleFunc("PUT "+admin+"/{ns}/crons", s.admin(s.handlePutCron))
	mux.HandleFunc("DELETE "+admin+"/{ns}/crons", s.admin(s.handleDeleteCron))
	mux.HandleFunc("PUT "+admin+"/{ns}/events", s.admin(s.handlePutEvents))
	mux.HandleFunc("GET "+admin+"/{ns}/draft", s.admin(s.handleGetDraft))
	mux.HandleFunc("DELETE "+admin+"/{ns}/draft", s.admin(s.handleDiscardDraft))
	mux.HandleFunc("POST "+admin+"/{ns}/publish", s.admin(s.handlePublish))
	mux.HandleFunc("GET "+admin+"/{ns}/versions", s.admin(s.handleVersions))
	mux.HandleFunc("GET "+admin+"/{ns}/versions/{v}", s.admin(s.handleVersion))
	mux.HandleFunc("POST "+admin+"/{ns}/versions/{v}/rollback", s.admin(s.handleRollback))
	mux.HandleFunc("GET "+admin+"/{ns}/nodes", s.admin(s.handleNodes))
	mux.HandleFunc("GET "+admin+"/{ns}/routes", s.admin(s.handleRoutes))
	mux.HandleFunc("DELETE "+admin+"/{ns}/nodes/{id}", s.admin(s.handleDeleteNode))
	mux.HandleFunc("PUT "+admin+"/{ns}/push-credentials", s.admin(s.handlePushCredentials))
	mux.HandleFunc("POST "+admin+"/{ns}/push", s.admin(s.handlePush))
	mux.HandleFunc("PUT "+admin+"/{ns}/try-credentials", s.admin(s.handleTryCredentials))
	mux.HandleFunc("POST "+admin+"/{ns}/try", s.admin(s.handleTry))
	mux.HandleFunc("POST /admin/v1/check", s.admin(s.handleCheck))
	mux.HandleFunc("GET /healthz", s.handleHealth)
	mux.HandleFunc("GET /metrics", s.metrics(s.handleMetrics))

	s.routeUI(mux)
	return limitBodies(mux)
}

// Bodies a request may send: nodes send small JSON, the admin API and the
// UI scripts of up to 1 MiB, escaped.
const (
	maxNodeBody  = 64 << 10
	maxAdminBody = 8 << 20
)

// limitBodies caps every request's body before any handler reads it.
func limitBodies(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		limit := int64(maxAdminBody)
		if strings.HasPrefix(r.URL.Path, iungo.APIPrefix+"/") {
			limit = maxNodeBody
		}
		r.Body = http.MaxBytesReader(w, r.Body, limit)
		next.ServeHTTP(w, r)
	})
}

// apiError writes the protocol's error body.
func apiError(w http.ResponseWriter, err error) {
	status, code := http.StatusInternalServerError, iungo.CodeInternal
	switch {
	case errors.Is(err, ErrNotFound):
		status, code = http.StatusNotFound, iungo.CodeNotFound
	case errors.Is(err, ErrConflict):
		status, code = http.StatusConflict, iungo.CodeConflict
	case errors.Is(err, errBadRequest):
		status, code = http.StatusBadRequest, iungo.CodeBadRequest
	case errors.Is(err, errUnauthorized):
		status, code = http.StatusUnauthorized, iungo.CodeUnauthorized
	case errors.Is(err, errTooLarge):
		status, code = http.StatusRequestEntityTooLarge, iungo.CodeTooLarge
	}
	var body iungo.ErrorBody
	body.Error.Code, body.Error.Message = code, err.Error()
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(body)
}

var (
	errUnauthorized = errors.New("unauthorized")
	errTooLarge     = errors.New("too large")
)

func readJSON(r *http.Request, out any) error {
	data, err := io.ReadAll(r.Body)
	var tooBig *http.MaxBytesError
	if errors.As(err, &tooBig) {
		return fmt.Errorf("%w: the body is over %d bytes", errTooLarge, tooBig.Limit)
	}
	if err != nil {
		return fmt.Errorf("%w: %v", errBadRequest, err)
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("%w: the body is not the JSON expected: %v", errBadRequest, err)
	}
	return nil
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}

func bearer(r *http.Request) string {
	return strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
}

func equalTokens(a, b string) bool {
	return a != "" && subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1
}

// node checks the namespace's token. A missing namespace and a wrong
// token get the same answer: the node API tells nobody which namespaces
// exist.
func (s *Server) node(h func(w http.ResponseWriter, r *http.Request, ns Namespace)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		ns, err := s.Store.Namespace(r.PathValue("ns"))
		if errors.Is(err, ErrNotFound) || err == nil && !equalTokens(bearer(r), ns.Token) {
			apiError(w, fmt.Errorf("%w: wrong or missing bearer token, or no such namespace", errUnauthorized))
			return
		}
		if err != nil {
			apiError(w, err)
			return
		}
		h(w, r, ns)
	}
}

// signed writes a configuration body with the namespace's signature.
func signed(w http.ResponseWriter, ns Namespace, v any) {
	body, err := json.Marshal(v)
	if err != nil {
		apiError(w, err)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set(iungo.SignatureHeader, iungo.Sign(ns.Key, body))
	_, _ = w.Write(body)
}

// handleRegister is POST /api/v1/namespaces/{ns}/nodes.
func (s *Server) handleRegister(w http.ResponseWriter, r *http.Request, ns Namespace) {
	var reg iungo.Registration
	if err := readJSON(r, &reg); err != nil {
		apiError(w, err)
		return
	}
	v, err := s.Store.RegisterNode(ns.Name, reg)
	if err != nil {
		apiError(w, err)
		return
	}
	s.Log.Printf("iungo-server: node %s (%s) registered in %s", reg.NodeID, reg.Address, ns.Name)
	writeJSON(w, iungo.VersionReply{NodeID: reg.NodeID, Version: v})
}

// handleHeartbeat is POST /api/v1/namespaces/{ns}/nodes/{id}/heartbeat.
func (s *Server) handleHeartbeat(w http.ResponseWriter, r *http.Request, ns Namespace) {
	var h iungo.Health
	if err := readJSON(r, &h); err != nil {
		apiError(w, err)
		return
	}
	v, err := s.Store.Heartbeat(ns.Name, r.PathValue("id"), h)
	if err != nil {
		apiError(w, err)
		return
	}
	writeJSON(w, iungo.VersionReply{Version: v})
}

// handleSnapshot is GET /api/v1/namespaces/{ns}/snapshot.
func (s *Server) handleSnapshot(w http.ResponseWriter, r *http.Request, ns Namespace) {
	sn, err := s.Store.Snapshot(ns.Name)
	if err != nil {
		apiError(w, err)
		return
	}
	signed(w, ns, sn)
}

// handleChanges is GET /api/v1/namespaces/{ns}/changes?since=N.
func (s *Server) handleChanges(w http.ResponseWriter, r *http.Request, ns Namespace) {
	var since uint64
	if v := r.URL.Query().Get("since"); v != "" {
		if _, err := fmt.Sscan(v, &since); err != nil {
			apiError(w, fmt.Errorf("%w: since=%q is not a version", errBadRequest, v))
			return
		}
	}
	c, err := s.Store.Changes(ns.Name, since)
	if err != nil {
		apiError(w, err)
		return
	}
	signed(w, ns, c)
}

// handlePart is GET /api/v1/namespaces/{ns}/{scripts|triggers|events}.
func (s *Server) handlePart(w http.ResponseWriter, r *http.Request, ns Namespace) {
	sn, err := s.Store.Snapshot(ns.Name)
	if err != nil {
		apiError(w, err)
		return
	}
	out := map[string]any{"namespace": ns.Name, "version": sn.Version}
	switch part := r.PathValue("part"); part {
	case "scripts":
		out[part] = sn.Scripts
	case "triggers":
		out[part] = sn.Triggers
	case "events":
		out[part] = sn.Events
	default:
		apiError(w, fmt.Errorf("%w: no such resource %q", ErrNotFound, part))
		return
	}
	signed(w, ns, out)
}

// admin checks the admin token in the Authorization header. The UI's
// session cookie is not enough here: a browser sends it on its own.
func (s *Server) admin(h http.HandlerFunc) http.HandlerFunc {
	return withBearer("admin token", func() []string { return []string{s.AdminToken} }, h)
}

// withBearer runs h for requests whose bearer token is one of tokens();
// empty tokens let nobody in.
func withBearer(what string, tokens func() []string, h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		t := bearer(r)
		for _, want := range tokens() {
			if equalTokens(t, want) {
				h(w, r)
				return
			}
		}
		apiError(w, fmt.Errorf("%w: wrong or missing %s", errUnauthorized, what))
	}
}

// handleListNamespaces is GET /admin/v1/namespaces.
func (s *Server) handleListNamespaces(w http.ResponseWriter, r *http.Request) {
	list, err := s.Store.Namespaces()
	if err != nil {
		apiError(w, err)
		return
	}
	out := []map[string]any{}
	for _, ns := range list {
		out = append(out, namespaceJSON(ns))
	}
	writeJSON(w, out)
}

// namespaceJSON is what the admin API shows of a namespace: what a node
// needs to follow it (the token and the public key it pins), never the
// signing key or the push password.
func namespaceJSON(ns Namespace) map[string]any {
	return map[string]any{"name": ns.Name, "id": ns.ID, "token": ns.Token, "public_key": ns.PublicKey(),
		"version": ns.Version, "push_user": ns.PushUser, "try_user": ns.TryUser}
}

// handleCreateNamespace is POST /admin/v1/namespaces {"name", "token"}.
func (s *Server) handleCreateNamespace(w http.ResponseWriter, r *http.Request) {
	var in struct{ Name, Token string }
	if err := readJSON(r, &in); err != nil {
		apiError(w, err)
		return
	}
	ns, err := s.Store.CreateNamespace(in.Name, in.Token)
	if err != nil {
		apiError(w, err)
		return
	}
	writeJSON(w, namespaceJSON(ns))
}

// handleGetNamespace is GET /admin/v1/namespaces/{ns}: its snapshot.
func (s *Server) handleGetNamespace(w http.ResponseWriter, r *http.Request) {
	sn, err := s.Store.Snapshot(r.PathValue("ns"))
	if err != nil {
		apiError(w, err)
		return
	}
	writeJSON(w, sn)
}

// EditReply answers an edit: the draft changed, nodes did not (unless
// the edit asked ?publish=true, which publishes the whole draft).
type EditReply struct {
	// Version is the published version nodes run or will run.
	Version uint64 `json:"version"`
	// Pending counts what the draft changes against it.
	Pending   int  `json:"pending"`
	Published bool `json:"published"`
}

// editReply answers an edit of a namespace's draft, publishing it first
// when the request asks ?publish=true.
func (s *Server) editReply(w http.ResponseWriter, r *http.Request, err error) {
	if err != nil {
		apiError(w, err)
		return
	}
	ns := r.PathValue("ns")
	var reply EditReply
	if r.URL.Query().Get("publish") == "true" {
		v, _, err := s.Store.Publish(ns, author(r, "admin API"), "")
		if err != nil && !errors.Is(err, errNothingToPublish) {
			apiError(w, err)
			return
		}
		reply.Published = err == nil && v > 0
	}
	d, err := s.Store.Draft(ns)
	if err != nil {
		apiError(w, err)
		return
	}
	reply.Version, reply.Pending = d.BaseVersion, d.Diff.Count()
	writeJSON(w, reply)
}

// author is who the request says publishes: the Iungo-Author header of the
// admin API, else def. The admin token is one: the name is the caller's
// word, kept for the history, not an identity.
func author(r *http.Request, def string) string {
	if a := strings.TrimSpace(r.Header.Get("Iungo-Author")); a != "" {
		return a
	}
	return def
}

// handleGetDraft is GET /admin/v1/namespaces/{ns}/draft.
func (s *Server) handleGetDraft(w http.ResponseWriter, r *http.Request) {
	d, err := s.Store.Draft(r.PathValue("ns"))
	if err != nil {
		apiError(w, err)
		return
	}
	writeJSON(w, d)
}

// handleDiscardDraft is DELETE /admin/v1/namespaces/{ns}/draft.
func (s *Server) handleDiscardDraft(w http.ResponseWriter, r *http.Request) {
	if err := s.Store.DiscardDraft(r.PathValue("ns")); err != nil {
		apiError(w, err)
		return
	}
	writeJSON(w, map[string]bool{"discarded": true})
}

// PublishReply is the version a publish or a rollback made, and what it
// changed.
type PublishReply struct {
	Version uint64 `json:"version"`
	Diff    Diff   `json:"diff"`
}

// handlePublish is POST /admin/v1/namespaces/{ns}/publish {"author", "message"}.
func (s *Server) handlePublish(w http.ResponseWriter, r *http.Request) {
	var in struct{ Author, Message string }
	if err := readOptionalJSON(r, &in); err != nil {
		apiError(w, err)
		return
	}
	v, diff, err := s.Store.Publish(r.PathValue("ns"), cmp.Or(in.Author, author(r, "admin API")), in.Message)
	if err != nil {
		apiError(w, err)
		return
	}
	s.Log.Printf("iungo-server: %s published version %d", r.PathValue("ns"), v)
	writeJSON(w, PublishReply{Version: v, Diff: diff})
}

// handleVersions is GET /admin/v1/namespaces/{ns}/versions.
func (s *Server) handleVersions(w http.ResponseWriter, r *http.Request) {
	list, err := s.Store.Versions(r.PathValue("ns"))
	if err != nil {
		apiError(w, err)
		return
	}
	writeJSON(w, list)
}

func versionParam(r *http.Request) (uint64, error) {
	var v uint64
	if _, err := fmt.Sscan(r.PathValue("v"), &v); err != nil || v == 0 {
		return 0, fmt.Errorf("%w: %q is not a version number", errBadRequest, r.PathValue("v"))
	}
	return v, nil
}

// handleVersion is GET /admin/v1/namespaces/{ns}/versions/{v}.
func (s *Server) handleVersion(w http.ResponseWriter, r *http.Request) {
	v, err := versionParam(r)
	if err != nil {
		apiError(w, err)
		return
	}
	d, err := s.Store.Version(r.PathValue("ns"), v)
	if err != nil {
		apiError(w, err)
		return
	}
	writeJSON(w, d)
}

// handleRollback is POST /admin/v1/namespaces/{ns}/versions/{v}/rollback
// {"author", "discard_draft"}.
func (s *Server) handleRollback(w http.ResponseWriter, r *http.Request) {
	v, err := versionParam(r)
	if err != nil {
		apiError(w, err)
		return
	}
	var in struct {
		Author       string
		DiscardDraft bool `json:"discard_draft"`
	}
	if err := readOptionalJSON(r, &in); err != nil {
		apiError(w, err)
		return
	}
	nv, diff, err := s.Store.Rollback(r.PathValue("ns"), v, cmp.Or(in.Author, author(r, "admin API")), in.DiscardDraft)
	if err != nil {
		apiError(w, err)
		return
	}
	s.Log.Printf("iungo-server: %s rolled back to version %d as version %d", r.PathValue("ns"), v, nv)
	writeJSON(w, PublishReply{Version: nv, Diff: diff})
}

// readOptionalJSON is readJSON for bodies that may be empty.
func readOptionalJSON(r *http.Request, out any) error {
	if r.ContentLength == 0 {
		return nil
	}
	return readJSON(r, out)
}

// handlePutScript is PUT /admin/v1/namespaces/{ns}/scripts/{name} {"source"}.
func (s *Server) handlePutScript(w http.ResponseWriter, r *http.Request) {
	var in struct{ Source string }
	if err := readJSON(r, &in); err != nil {
		apiError(w, err)
		return
	}
	s.editReply(w, r, s.Store.SetScript(r.PathValue("ns"), r.PathValue("name"), in.Source))
}

// handleDeleteScript is DELETE /admin/v1/namespaces/{ns}/scripts/{name}.
func (s *Server) handleDeleteScript(w http.ResponseWriter, r *http.Request) {
	s.editReply(w, r, s.Store.DeleteScript(r.PathValue("ns"), r.PathValue("name")))
}

// handlePutTrigger is PUT /admin/v1/namespaces/{ns}/triggers
// {"pattern", "events", "script", "enabled"}.
func (s *Server) handlePutTrigger(w http.ResponseWriter, r *http.Request) {
	var t iungo.Trigger
	if err := readJSON(r, &t); err != nil {
		apiError(w, err)
		return
	}
	s.editReply(w, r, s.Store.SetTrigger(r.PathValue("ns"), t))
}

// handleDeleteTrigger is DELETE /admin/v1/namespaces/{ns}/triggers
// {"pattern", "events"}.
func (s *Server) handleDeleteTrigger(w http.ResponseWriter, r *http.Request) {
	var k iungo.TriggerKey
	if err := readJSON(r, &k); err != nil {
		apiError(w, err)
		return
	}
	s.editReply(w, r, s.Store.DeleteTrigger(r.PathValue("ns"), k.Pattern, k.Events))
}

// handlePutCron is PUT /admin/v1/namespaces/{ns}/crons
// {"name", "schedule", "script", "enabled"}.
func (s *Server) handlePutCron(w http.ResponseWriter, r *http.Request) {
	var cr iungo.Cron
	if err := readJSON(r, &cr); err != nil {
		apiError(w, err)
		return
	}
	s.editReply(w, r, s.Store.SetCron(r.PathValue("ns"), cr))
}

// handleDeleteCron is DELETE /admin/v1/namespaces/{ns}/crons {"name"}.
func (s *Server) handleDeleteCron(w http.ResponseWriter, r *http.Request) {
	var in struct{ Name string }
	if err := readJSON(r, &in); err != nil {
		apiError(w, err)
		return
	}
	s.editReply(w, r, s.Store.DeleteCron(r.PathValue("ns"), in.Name))
}

// handlePutEvents is PUT /admin/v1/namespaces/{ns}/events {"events": [...]}.
func (s *Server) handlePutEvents(w http.ResponseWriter, r *http.Request) {
	var in struct{ Events []string }
	if err := readJSON(r, &in); err != nil {
		apiError(w, err)
		return
	}
	s.editReply(w, r, s.Store.SetEvents(r.PathValue("ns"), in.Events))
}

// handleNodes is GET /admin/v1/namespaces/{ns}/nodes: each node with its
// health, and whether all nodes run the namespace's version.
func (s *Server) handleNodes(w http.ResponseWriter, r *http.Request) {
	view, err := s.nodesView(r.PathValue("ns"))
	if err != nil {
		apiError(w, err)
		return
	}
	writeJSON(w, view)
}

// NodesView is what iungo knows of a namespace's nodes.
type NodesView struct {
	Version uint64 `json:"version"`
	Digest  string `json:"digest"`
	// InStep says that every node reports the namespace's version and its
	// content.
	InStep bool       `json:"in_step"`
	Nodes  []NodeView `json:"nodes"`
}

// NodeView is one node as the API and the UI show it.
type NodeView struct {
	Node
	Health   string `json:"health"`
	LastSeen string `json:"last_seen"`
}

func (s *Server) nodesView(name string) (NodesView, error) {
	ns, err := s.Store.Namespace(name)
	if err != nil {
		return NodesView{}, err
	}
	nodes, err := s.Store.Nodes(ns.Name)
	if err != nil {
		return NodesView{}, err
	}
	digest, paused := s.Store.Digests(ns.Name, ns.Version)
	v := NodesView{Version: ns.Version, Digest: digest, InStep: true, Nodes: []NodeView{}}
	now := time.Now()
	for _, n := range nodes {
		h := Health(n, ns.Version, digest, paused, now)
		v.InStep = v.InStep && InStep(h)
		v.Nodes = append(v.Nodes, NodeView{Node: n, Health: h, LastSeen: n.LastSeen.Format(time.RFC3339)})
	}
	return v, nil
}

// handleDeleteNamespace is DELETE /admin/v1/namespaces/{ns}.
func (s *Server) handleDeleteNamespace(w http.ResponseWriter, r *http.Request) {
	if err := s.Store.DeleteNamespace(r.PathValue("ns")); err != nil {
		apiError(w, err)
		return
	}
	s.Log.Printf("iungo-server: namespace %s removed", r.PathValue("ns"))
	writeJSON(w, map[string]bool{"deleted": true})
}

// handleDeleteNode is DELETE /admin/v1/namespaces/{ns}/nodes/{id}.
func (s *Server) handleDeleteNode(w http.ResponseWriter, r *http.Request) {
	if err := s.Store.DeleteNode(r.PathValue("ns"), r.PathValue("id")); err != nil {
		apiError(w, err)
		return
	}
	writeJSON(w, map[string]bool{"deleted": true})
}

// handlePushCredentials is PUT /admin/v1/namespaces/{ns}/push-credentials
// {"user", "password"}: what pushes to this namespace's nodes AUTH with.
func (s *Server) handlePushCredentials(w http.ResponseWriter, r *http.Request) {
	var in struct{ User, Password string }
	if err := readJSON(r, &in); err != nil {
		apiError(w, err)
		return
	}
	if err := s.Store.SetPushCredentials(r.PathValue("ns"), in.User, in.Password); err != nil {
		apiError(w, err)
		return
	}
	writeJSON(w, map[string]bool{"ok": true})
}

// handleTryCredentials is PUT /admin/v1/namespaces/{ns}/try-credentials
// {"user", "password"}: what dry runs on this namespace's nodes AUTH with.
func (s *Server) handleTryCredentials(w http.ResponseWriter, r *http.Request) {
	var in struct{ User, Password string }
	if err := readJSON(r, &in); err != nil {
		apiError(w, err)
		return
	}
	if err := s.Store.SetTryCredentials(r.PathValue("ns"), in.User, in.Password); err != nil {
		apiError(w, err)
		return
	}
	writeJSON(w, map[string]bool{"ok": true})
}

// TryRequest asks for a dry run of a script source on one node.
type TryRequest struct {
	Node   string `json:"node"`
	Script string `json:"script"` // its name, for the messages
	Source string `json:"source"`
	Key    string `json:"key"`
	Event  string `json:"event"` // default set
}

// handleTry is POST /admin/v1/namespaces/{ns}/try: a TryRequest.
func (s *Server) handleTry(w http.ResponseWriter, r *http.Request) {
	var in TryRequest
	if err := readJSON(r, &in); err != nil {
		apiError(w, err)
		return
	}
	res, err := s.Try(r.Context(), r.PathValue("ns"), in)
	if err != nil {
		apiError(w, err)
		return
	}
	writeJSON(w, res)
}

// handlePush is POST /admin/v1/namespaces/{ns}/push.
func (s *Server) handlePush(w http.ResponseWriter, r *http.Request) {
	results, err := s.Push(r.Context(), r.PathValue("ns"))
	if err != nil {
		apiError(w, err)
		return
	}
	writeJSON(w, results)
}

// handleCheck is POST /admin/v1/check {"name", "source"}: compiles a
// script without saving it.
func (s *Server) handleCheck(w http.ResponseWriter, r *http.Request) {
	var in struct{ Name, Source string }
	if err := readJSON(r, &in); err != nil {
		apiError(w, err)
		return
	}
	writeJSON(w, checkScript(in.Name, in.Source))
}
