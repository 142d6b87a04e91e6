package server

import (
	"fmt"
	"net/http"
	"sort"
	"strings"
	"time"
)

// GET /healthz answers 200 while the store answers, 503 otherwise: for a
// load balancer or an orchestrator's probe. It needs no token and tells
// nothing.
func (s *Server) handleHealth(w http.ResponseWriter, r *http.Request) {
	if _, err := s.Store.Namespaces(); err != nil {
		http.Error(w, "store unavailable\n", http.StatusServiceUnavailable)
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	fmt.Fprintln(w, "ok")
}

// metrics lets in the metrics token (if set) or the admin token: a
// Prometheus scraper needs to read, never to change anything.
func (s *Server) metrics(h http.HandlerFunc) http.HandlerFunc {
	return withBearer("metrics token", func() []string { return []string{s.MetricsToken, s.AdminToken} }, h)
}

// handleMetrics is GET /metrics in Prometheus' text format: namespaces,
// nodes by health and role, and what each node reports in its heartbeats.
func (s *Server) handleMetrics(w http.ResponseWriter, r *http.Request) {
	list, err := s.Store.Namespaces()
	if err != nil {
		apiError(w, err)
		return
	}
	var b metricsText
	b.help("iungo_namespace_version", "gauge", "The namespace's published configuration version.")
	b.help("iungo_namespace_in_step", "gauge", "1 when every node of the namespace runs its version and content.")
	b.help("iungo_nodes", "gauge", "Nodes by health and role.")
	b.help("iungo_node_namespace_version", "gauge", "The namespace version a node runs.")
	b.help("iungo_node_runs_total", "counter", "Trigger runs a node reported since its module loaded.")
	b.help("iungo_node_errors_total", "counter", "Trigger errors a node reported since its module loaded.")
	b.help("iungo_node_triggers", "gauge", "Triggers a node runs.")
	b.help("iungo_node_last_seen_timestamp_seconds", "gauge", "When iungo last heard from a node.")
	b.help("iungo_node_syncs_total", "counter", "Syncs a node applied or found current since its module loaded.")
	b.help("iungo_node_sync_failures_total", "counter", "Syncs that failed on a node since its module loaded.")
	b.help("iungo_pushes_total", "counter", "Push answers since iungo-server started, by result: ok, failed, skipped (replicas).")
	b.help("iungo_route_runs_total", "counter", "Runs of a route of the published version, summed over the nodes' reports.")
	b.help("iungo_route_errors_total", "counter", "Errors of a route, summed over the nodes' reports.")
	b.help("iungo_route_run_seconds_total", "counter", "Time the runs of a route took, summed over the nodes' reports.")
	b.help("iungo_route_run_seconds_max", "gauge", "The longest run of a route any node reported.")
	for _, ns := range list {
		view, err := s.nodesView(ns.Name)
		if err != nil {
			apiError(w, err)
			return
		}
		nsl := label("namespace", ns.Name)
		b.add("iungo_namespace_version", nsl, float64(view.Version))
		b.add("iungo_namespace_in_step", nsl, boolFloat(view.InStep))
		counts := map[[2]string]int{}
		for _, n := range view.Nodes {
			counts[[2]string{n.Health, n.Role}]++
			l := nsl + "," + label("node", n.ID) + "," + label("role", n.Role)
			b.add("iungo_node_namespace_version", l, float64(n.NamespaceVersion))
			b.add("iungo_node_runs_total", l, float64(n.Runs))
			b.add("iungo_node_errors_total", l, float64(n.Errors))
			b.add("iungo_node_triggers", l, float64(n.Triggers))
			b.add("iungo_node_last_seen_timestamp_seconds", l, float64(n.Node.LastSeen.UnixMilli())/1000)
			b.add("iungo_node_syncs_total", l, float64(n.Syncs))
			b.add("iungo_node_sync_failures_total", l, float64(n.SyncFailures))
		}
		keys := make([][2]string, 0, len(counts))
		for k := range counts {
			keys = append(keys, k)
		}
		sort.Slice(keys, func(i, j int) bool { return keys[i][0]+keys[i][1] < keys[j][0]+keys[j][1] })
		for _, k := range keys {
			b.add("iungo_nodes", nsl+","+label("health", k[0])+","+label("role", k[1]), float64(counts[k]))
		}
		for _, result := range []string{"ok", "failed", "skipped"} {
			b.add("iungo_pushes_total", nsl+","+label("result", result), float64(s.pushes.get(ns.Name, result)))
		}
		routes, err := s.routesView(ns.Name)
		if err != nil {
			apiError(w, err)
			return
		}
		for _, rt := range routes.Routes {
			l := nsl + "," + label("pattern", rt.Pattern) + "," + label("events", rt.Events) + "," + label("script", rt.Script)
			b.add("iungo_route_runs_total", l, float64(rt.Runs))
			b.add("iungo_route_errors_total", l, float64(rt.Errors))
			b.add("iungo_route_run_seconds_total", l, float64(rt.RunUs)/1e6)
			b.add("iungo_route_run_seconds_max", l, float64(rt.MaxRunUs)/1e6)
		}
	}
	b.help("iungo_scrape_timestamp_seconds", "gauge", "When this page was made.")
	b.add("iungo_scrape_timestamp_seconds", "", float64(time.Now().UnixMilli())/1000)
	w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
	_, _ = w.Write([]byte(b.String()))
}

// metricsText builds the text format: every family's HELP and TYPE, then
// its samples, families in the order their help was given.
type metricsText struct {
	order   []string
	head    map[string]string
	samples map[string][]string
}

func (b *metricsText) help(name, kind, text string) {
	if b.head == nil {
		b.head, b.samples = map[string]string{}, map[string][]string{}
	}
	b.order = append(b.order, name)
	b.head[name] = fmt.Sprintf("# HELP %s %s\n# TYPE %s %s\n", name, text, name, kind)
}

func (b *metricsText) add(name, labels string, v float64) {
	if labels != "" {
		labels = "{" + labels + "}"
	}
	b.samples[name] = append(b.samples[name], fmt.Sprintf("%s%s %g\n", name, labels, v))
}

func (b *metricsText) String() string {
	var out strings.Builder
	for _, name := range b.order {
		out.WriteString(b.head[name])
		for _, s := range b.samples[name] {
			out.WriteString(s)
		}
	}
	return out.String()
}

// label is one name="value" pair, the value escaped as the format wants.
func label(name, value string) string {
	value = strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`).Replace(value)
	return name + `="` + value + `"`
}

func boolFloat(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
