package localapi

import (
	"context"
	"net/http"

	"calico/node/api"
)

// Membership is the cluster's side of the node: its role, the nodes, and
// leaving or removing hosts (which also clears their workloads, addresses
// and Node in the datastore).
type Membership interface {
	// Role is this host's role now: voter, learner or client.
	Role() string
	Nodes(ctx context.Context) ([]api.Node, error)
	// Leave takes this host out of the cluster (with force after removing
	// its workloads; without, refused while any remain); the node stops
	// after.
	Leave(ctx context.Context, force bool) error
	// RemoveNode removes a host that is gone for good.
	RemoveNode(ctx context.Context, name string) error
	// Unanswered says why the datastore does not answer ("" when it
	// cannot tell): which voters are down.
	Unanswered() string
	// DiskFull says why this host's etcd member is stopped for lack of
	// room in the data dir, or "".
	DiskFull() string
}

func (s *Server) clusterRoutes(mux *http.ServeMux) {
	mux.HandleFunc("GET /v1/nodes", handle(s, s.Members.Nodes))
	mux.HandleFunc("DELETE /v1/nodes/{name}", func(w http.ResponseWriter, r *http.Request) {
		s.reply(w, struct{}{}, s.Members.RemoveNode(r.Context(), r.PathValue("name")))
	})
	mux.HandleFunc("POST /v1/leave", func(w http.ResponseWriter, r *http.Request) {
		err := s.Members.Leave(r.Context(), r.URL.Query().Get("force") == "true")
		s.reply(w, struct{}{}, err)
		if err == nil && s.Stop != nil {
			s.Stop()
		}
	})
}
