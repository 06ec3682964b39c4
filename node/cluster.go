package node

import (
	"context"
	"fmt"
	"net/http"

	"calico/node/api"
)

// Membership is what the node's API needs of the cluster; `calico up`
// adapts package cluster to it (node does not import cluster).
type Membership interface {
	// Role is this host's role now: voter, learner or client.
	Role() string
	Nodes(ctx context.Context) ([]api.Node, error)
	// Leave takes this host out of the cluster; the node stops after.
	Leave(ctx context.Context) error
	// RemoveNode removes a host that is gone for good.
	RemoveNode(ctx context.Context, name string) error
}

func (s *Server) clusterRoutes(mux *http.ServeMux) {
	mux.HandleFunc("GET /v1/nodes", handle(s.Cluster.Nodes))
	mux.HandleFunc("DELETE /v1/nodes/{name}", func(w http.ResponseWriter, r *http.Request) {
		reply(w, struct{}{}, s.Cluster.RemoveNode(r.Context(), r.PathValue("name")))
	})
	mux.HandleFunc("POST /v1/leave", func(w http.ResponseWriter, r *http.Request) {
		err := s.leave(r.Context(), r.URL.Query().Get("force") == "true")
		reply(w, struct{}{}, err)
		if err == nil && s.Stop != nil {
			s.Stop()
		}
	})
}

// leave removes this host's workloads (only with force while any remain)
// and takes the host out of the cluster.
func (s *Server) leave(ctx context.Context, force bool) error {
	all, err := s.ListWorkloads(ctx)
	if err != nil {
		return err
	}
	var ws []api.Workload
	for _, w := range all {
		if w.Node == s.Name {
			ws = append(ws, w)
		}
	}
	if len(ws) > 0 && !force {
		return fmt.Errorf("%d workload(s) remain on this host (%s…): remove them first, or leave with --force to remove them", len(ws), ws[0].Name)
	}
	for _, w := range ws {
		if err := s.RemoveWorkload(ctx, w.Namespace, w.Name); err != nil {
			return fmt.Errorf("removing workload %s: %w", w.Name, err)
		}
	}
	return s.Cluster.Leave(ctx)
}
