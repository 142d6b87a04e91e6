package server

import (
	"net/http"
	"slices"
	"strings"

	"github.com/valkey-iungo/valkey-iungo/iungo"
)

// RoutesView is what the nodes' triggers did, per route of the published
// version, summed over the nodes that reported it.
type RoutesView struct {
	Version uint64      `json:"version"`
	Routes  []RouteView `json:"routes"`
	// RecentErrors are the newest errors of all routes and nodes.
	RecentErrors []NodeError `json:"recent_errors"`
}

// RouteView is one route with its runs summed over nodes, and per node.
type RouteView struct {
	iungo.Trigger
	Runs     uint64      `json:"runs"`
	Errors   uint64      `json:"errors"`
	RunUs    uint64      `json:"run_us"`
	MaxRunUs uint64      `json:"max_run_us"` // the longest run on any node
	Nodes    []RouteNode `json:"nodes"`
	// RecentErrors are its newest errors on any node.
	RecentErrors []NodeError `json:"recent_errors"`
}

// AvgRunUs is the mean time of a run.
func (r RouteView) AvgRunUs() uint64 {
	if r.Runs == 0 {
		return 0
	}
	return r.RunUs / r.Runs
}

// RouteNode is a route's counters on one node.
type RouteNode struct {
	Node string `json:"node"`
	iungo.TriggerStats
}

// NodeError is an error as one node reported it, with the script of its
// route in the published version ("" when that route is gone).
type NodeError struct {
	Node   string `json:"node"`
	Script string `json:"script"`
	iungo.RunError
}

// Errors kept per route and for the namespace in a RoutesView.
const (
	routeErrorsShown = 10
	errorsShown      = 20
)

func (s *Server) routesView(ns string) (RoutesView, error) {
	sn, err := s.Store.Snapshot(ns)
	if err != nil {
		return RoutesView{}, err
	}
	nodes, err := s.Store.Nodes(ns)
	if err != nil {
		return RoutesView{}, err
	}
	v := RoutesView{Version: sn.Version, Routes: []RouteView{}, RecentErrors: []NodeError{}}
	index := map[iungo.TriggerKey]int{}
	for i, t := range sn.Triggers {
		index[iungo.TriggerKey{Pattern: t.Pattern, Events: t.Events}] = i
		v.Routes = append(v.Routes, RouteView{Trigger: t, Nodes: []RouteNode{}, RecentErrors: []NodeError{}})
	}
	for _, n := range nodes {
		for _, st := range n.TriggerStats {
			i, ok := index[iungo.TriggerKey{Pattern: st.Pattern, Events: st.Events}]
			if !ok {
				continue // a route the published version no longer has
			}
			r := &v.Routes[i]
			r.Runs, r.Errors, r.RunUs = r.Runs+st.Runs, r.Errors+st.Errors, r.RunUs+st.RunUs
			r.MaxRunUs = max(r.MaxRunUs, st.MaxRunUs)
			r.Nodes = append(r.Nodes, RouteNode{Node: n.ID, TriggerStats: st})
		}
		for _, e := range n.RecentErrors {
			ne := NodeError{Node: n.ID, RunError: e}
			i, ok := index[iungo.TriggerKey{Pattern: e.Pattern, Events: e.Events}]
			if ok {
				ne.Script = v.Routes[i].Script
				v.Routes[i].RecentErrors = append(v.Routes[i].RecentErrors, ne)
			}
			v.RecentErrors = append(v.RecentErrors, ne)
		}
	}
	v.RecentErrors = newest(v.RecentErrors, errorsShown)
	for i := range v.Routes {
		v.Routes[i].RecentErrors = newest(v.Routes[i].RecentErrors, routeErrorsShown)
	}
	return v, nil
}

// newest sorts errors newest first and keeps n.
func newest(errs []NodeError, n int) []NodeError {
	slices.SortStableFunc(errs, func(a, b NodeError) int { return strings.Compare(b.At, a.At) })
	return errs[:min(len(errs), n)]
}

// handleRoutes is GET /admin/v1/namespaces/{ns}/routes.
func (s *Server) handleRoutes(w http.ResponseWriter, r *http.Request) {
	v, err := s.routesView(r.PathValue("ns"))
	if err != nil {
		apiError(w, err)
		return
	}
	writeJSON(w, v)
}
