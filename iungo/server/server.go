// Package server is the reference iungo server: it stores namespaces,
// their scripts, triggers and event classes in an embedded SQLite file,
// serves the node API of docs/iungo-protocol.md and a token-protected admin
// API, pushes IUNGO SYNC to the nodes, and serves a web UI, all from one
// binary with nothing else to install.
package server

import (
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
	// NodeUser and NodePassword authenticate pushes to the nodes, if set.
	NodeUser, NodePassword string
	Log                    *log.Logger

	ln  net.Listener
	srv *http.Server
}

// New returns a server over store, whose admin API and UI want adminToken.
func New(store *Store, adminToken string) *Server {
	return &Server{Store: store, AdminToken: adminToken, Log: log.New(io.Discard, "", 0)}
}

// Open starts listening on addr (host:port; port 0 picks one).
func (s *Server) Open(addr string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	s.ln = ln
	s.srv = &http.Server{Handler: s.Handler(), ReadHeaderTimeout: 10 * time.Second}
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
	mux.HandleFunc("PUT "+admin+"/{ns}/scripts/{name}", s.admin(s.handlePutScript))
	mux.HandleFunc("DELETE "+admin+"/{ns}/scripts/{name}", s.admin(s.handleDeleteScript))
	mux.HandleFunc("PUT "+admin+"/{ns}/triggers", s.admin(s.handlePutTrigger))
	mux.HandleFunc("DELETE "+admin+"/{ns}/triggers", s.admin(s.handleDeleteTrigger))
	mux.HandleFunc("PUT "+admin+"/{ns}/events", s.admin(s.handlePutEvents))
	mux.HandleFunc("GET "+admin+"/{ns}/nodes", s.admin(s.handleNodes))
	mux.HandleFunc("POST "+admin+"/{ns}/push", s.admin(s.handlePush))
	mux.HandleFunc("POST /admin/v1/check", s.admin(s.handleCheck))

	s.routeUI(mux)
	return mux
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

// maxRequestBytes bounds what a request body may hold.
const maxRequestBytes = 8 << 20

func readJSON(r *http.Request, out any) error {
	data, err := io.ReadAll(io.LimitReader(r.Body, maxRequestBytes+1))
	if err != nil {
		return fmt.Errorf("%w: %v", errBadRequest, err)
	}
	if len(data) > maxRequestBytes {
		return fmt.Errorf("%w: the body is over %d MiB", errTooLarge, maxRequestBytes>>20)
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

// node checks the namespace's token and hands the token on, for signing.
func (s *Server) node(h func(w http.ResponseWriter, r *http.Request, ns Namespace)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		ns, err := s.Store.Namespace(r.PathValue("ns"))
		if err != nil {
			apiError(w, err)
			return
		}
		if !equalTokens(bearer(r), ns.Token) {
			apiError(w, fmt.Errorf("%w: wrong or missing bearer token for namespace %q", errUnauthorized, ns.Name))
			return
		}
		h(w, r, ns)
	}
}

// signed writes a configuration body with its signature.
func signed(w http.ResponseWriter, token string, v any) {
	body, err := json.Marshal(v)
	if err != nil {
		apiError(w, err)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set(iungo.SignatureHeader, iungo.Sign(token, body))
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
	signed(w, ns.Token, sn)
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
	signed(w, ns.Token, c)
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
	signed(w, ns.Token, out)
}

// admin checks the admin token, from the Authorization header or the UI's
// session cookie.
func (s *Server) admin(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if !s.isAdmin(r) {
			apiError(w, fmt.Errorf("%w: wrong or missing admin token", errUnauthorized))
			return
		}
		h(w, r)
	}
}

func (s *Server) isAdmin(r *http.Request) bool {
	if equalTokens(bearer(r), s.AdminToken) {
		return true
	}
	c, err := r.Cookie(sessionCookie)
	return err == nil && equalTokens(c.Value, s.AdminToken)
}

// handleListNamespaces is GET /admin/v1/namespaces.
func (s *Server) handleListNamespaces(w http.ResponseWriter, r *http.Request) {
	list, err := s.Store.Namespaces()
	if err != nil {
		apiError(w, err)
		return
	}
	type item struct {
		Name    string `json:"name"`
		Token   string `json:"token"`
		Version uint64 `json:"version"`
	}
	out := []item{}
	for _, ns := range list {
		out = append(out, item{ns.Name, ns.Token, ns.Version})
	}
	writeJSON(w, out)
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
	writeJSON(w, map[string]any{"name": ns.Name, "token": ns.Token, "version": ns.Version})
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

func versionReply(w http.ResponseWriter, v uint64, err error) {
	if err != nil {
		apiError(w, err)
		return
	}
	writeJSON(w, iungo.VersionReply{Version: v})
}

// handlePutScript is PUT /admin/v1/namespaces/{ns}/scripts/{name} {"source"}.
func (s *Server) handlePutScript(w http.ResponseWriter, r *http.Request) {
	var in struct{ Source string }
	if err := readJSON(r, &in); err != nil {
		apiError(w, err)
		return
	}
	v, err := s.Store.SetScript(r.PathValue("ns"), r.PathValue("name"), in.Source)
	versionReply(w, v, err)
}

// handleDeleteScript is DELETE /admin/v1/namespaces/{ns}/scripts/{name}.
func (s *Server) handleDeleteScript(w http.ResponseWriter, r *http.Request) {
	v, err := s.Store.DeleteScript(r.PathValue("ns"), r.PathValue("name"))
	versionReply(w, v, err)
}

// handlePutTrigger is PUT /admin/v1/namespaces/{ns}/triggers
// {"pattern", "events", "script", "enabled"}.
func (s *Server) handlePutTrigger(w http.ResponseWriter, r *http.Request) {
	var t iungo.Trigger
	if err := readJSON(r, &t); err != nil {
		apiError(w, err)
		return
	}
	v, err := s.Store.SetTrigger(r.PathValue("ns"), t)
	versionReply(w, v, err)
}

// handleDeleteTrigger is DELETE /admin/v1/namespaces/{ns}/triggers
// {"pattern", "events"}.
func (s *Server) handleDeleteTrigger(w http.ResponseWriter, r *http.Request) {
	var k iungo.TriggerKey
	if err := readJSON(r, &k); err != nil {
		apiError(w, err)
		return
	}
	v, err := s.Store.DeleteTrigger(r.PathValue("ns"), k.Pattern, k.Events)
	versionReply(w, v, err)
}

// handlePutEvents is PUT /admin/v1/namespaces/{ns}/events {"events": [...]}.
func (s *Server) handlePutEvents(w http.ResponseWriter, r *http.Request) {
	var in struct{ Events []string }
	if err := readJSON(r, &in); err != nil {
		apiError(w, err)
		return
	}
	v, err := s.Store.SetEvents(r.PathValue("ns"), in.Events)
	versionReply(w, v, err)
}

// handleNodes is GET /admin/v1/namespaces/{ns}/nodes.
func (s *Server) handleNodes(w http.ResponseWriter, r *http.Request) {
	ns, err := s.Store.Namespace(r.PathValue("ns"))
	if err != nil {
		apiError(w, err)
		return
	}
	nodes, err := s.Store.Nodes(ns.Name)
	if err != nil {
		apiError(w, err)
		return
	}
	out := []map[string]any{}
	for _, n := range nodes {
		out = append(out, map[string]any{
			"id": n.ID, "address": n.Address, "role": n.Role, "valkey_version": n.ValkeyVersion,
			"module_version": n.ModuleVersion, "sync_version": n.SyncVersion, "last_sync_at": n.LastSyncAt,
			"last_error": n.LastError, "runs": n.Runs, "errors": n.Errors, "triggers": n.Triggers,
			"last_seen": n.LastSeen.Format(time.RFC3339), "health": Health(n, ns.Version, time.Now()),
		})
	}
	writeJSON(w, out)
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
