package node

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"calico/node/api"
	"calico/store"
	"calico/store/ipam"
)

// Server is the node's local API: the CLI's way into the datastore and
// into this host.
type Server struct {
	Name      string
	ClusterID string
	Role      string
	IPv4      string
	IPv6      string
	Version   string
	DataDir   string
	Store     *store.Store
	IPAM      *ipam.IPAM
	Agent     *Agent
	Cluster   Membership
	// Stop stops the node (after `calico leave`).
	Stop func()
	Log  *slog.Logger

	mu      sync.Mutex // serialises workload changes on this host
	started time.Time
}

// Serve answers on <data-dir>/calico.sock (root only) until ctx is done.
func (s *Server) Serve(ctx context.Context) error {
	s.started = time.Now()
	path := filepath.Join(s.DataDir, api.SocketName)
	os.Remove(path) // a stale socket of an earlier run; the data dir lock says we own it
	ln, err := net.Listen("unix", path)
	if err != nil {
		return fmt.Errorf("listening on %s: %w", path, err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		ln.Close()
		return err
	}
	srv := &http.Server{Handler: s.Handler(), ReadHeaderTimeout: 10 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case <-ctx.Done():
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(sctx)
		os.Remove(path)
		return nil
	case err := <-errc:
		return err
	}
}

// Handler routes the API's requests.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/status", handle(s.status))
	mux.HandleFunc("POST /v1/workloads", handleBody(s.AddWorkload))
	mux.HandleFunc("GET /v1/workloads", handle(s.ListWorkloads))
	mux.HandleFunc("DELETE /v1/workloads/{ns}/{name}", func(w http.ResponseWriter, r *http.Request) {
		reply(w, struct{}{}, s.RemoveWorkload(r.Context(), r.PathValue("ns"), r.PathValue("name")))
	})
	mux.HandleFunc("POST /v1/resources", func(w http.ResponseWriter, r *http.Request) {
		data, err := io.ReadAll(r.Body)
		if err != nil {
			reply(w, nil, err)
			return
		}
		out, err := s.applyData(r.Context(), data, r.URL.Query().Get("mode"))
		reply(w, out, err)
	})
	mux.HandleFunc("GET /v1/resources/{kind}", func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		out, err := s.getResources(r.Context(), r.PathValue("kind"), q.Get("namespace"), q.Get("name"))
		reply(w, out, err)
	})
	mux.HandleFunc("DELETE /v1/resources/{kind}/{name}", func(w http.ResponseWriter, r *http.Request) {
		out, err := s.deleteResource(r.Context(), r.PathValue("kind"), r.URL.Query().Get("namespace"), r.PathValue("name"))
		reply(w, out, err)
	})
	mux.HandleFunc("GET /v1/ipam/blocks", handle(s.ipamBlocks))
	mux.HandleFunc("GET /v1/ipam/address", func(w http.ResponseWriter, r *http.Request) {
		out, err := s.ipamAddress(r.Context(), r.URL.Query().Get("ip"))
		reply(w, out, err)
	})
	mux.HandleFunc("GET /v1/ipam/check", handle(s.ipamCheck))
	mux.HandleFunc("POST /v1/ipam/release", func(w http.ResponseWriter, r *http.Request) {
		reply(w, struct{}{}, s.ipamRelease(r.Context(), r.URL.Query().Get("ip")))
	})
	mux.HandleFunc("GET /v1/bgp/routes", handle(s.bgpRoutes))
	s.statsRoutes(mux)
	s.traceRoutes(mux)
	if s.Cluster != nil {
		s.clusterRoutes(mux)
	}
	return mux
}

func handle[T any](f func(context.Context) (T, error)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		out, err := f(r.Context())
		reply(w, out, err)
	}
}

func handleBody[In, Out any](f func(context.Context, In) (Out, error)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		var in In
		d := json.NewDecoder(r.Body)
		d.DisallowUnknownFields()
		if err := d.Decode(&in); err != nil {
			reply(w, nil, fmt.Errorf("reading the request: %w", err))
			return
		}
		out, err := f(r.Context(), in)
		reply(w, out, err)
	}
}

func reply(w http.ResponseWriter, out any, err error) {
	w.Header().Set("Content-Type", "application/json")
	if err != nil {
		code := http.StatusBadRequest
		switch {
		case errors.Is(err, store.ErrNotFound):
			code = http.StatusNotFound
		case errors.Is(err, store.ErrExists), errors.Is(err, store.ErrConflict):
			code = http.StatusConflict
		}
		w.WriteHeader(code)
		json.NewEncoder(w).Encode(api.Error{Error: err.Error()})
		return
	}
	json.NewEncoder(w).Encode(out)
}

func (s *Server) status(ctx context.Context) (api.Status, error) {
	st := api.Status{
		Node: s.Name, ClusterID: s.ClusterID, Version: s.Version, IPv4: s.IPv4, IPv6: s.IPv6,
		Role: s.Role, Uptime: time.Since(s.started).Round(time.Second),
	}
	if s.Cluster != nil {
		st.Role = s.Cluster.Role()
	}
	hctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	h := s.Store.Health(hctx)
	_, live, _, serr := s.Agent.cache.state()
	st.Datastore = api.Datastore{Endpoints: h.Endpoints, Healthy: h.Healthy, Leader: h.Leader, Members: h.Members, Revision: h.Revision, InSync: live}
	if h.Err != nil {
		st.Datastore.Error = h.Err.Error()
	} else if serr != nil {
		st.Datastore.Error = serr.Error()
	}
	last := s.Agent.Last()
	st.Dataplane = api.Dataplane{
		LastApply: last.At, Took: last.Took, Revision: last.Revision, Endpoints: last.Endpoints,
		Policies: last.Policies, Sets: last.Sets, Routes: last.Routes, FromSnapshot: last.FromSnapshot,
	}
	if last.Err != nil {
		st.Dataplane.Error = last.Err.Error()
	}
	st.Workloads = last.Endpoints
	var err error
	if st.BGP, err = s.bgpSessions(hctx); err != nil {
		st.Dataplane.Error = strings.TrimPrefix(st.Dataplane.Error+"; ", "; ") + "BGP: " + err.Error()
	}
	if h.Healthy {
		pools, err := s.listPools(hctx)
		if err != nil {
			return st, err
		}
		st.Pools = pools
		if s.Cluster != nil {
			if st.Nodes, err = s.Cluster.Nodes(hctx); err != nil {
				return st, err
			}
		}
	}
	return st, nil
}

func (s *Server) bgpSessions(ctx context.Context) ([]api.BGPSession, error) {
	ps, err := s.Agent.BGPPeers(ctx)
	out := make([]api.BGPSession, 0, len(ps))
	for _, p := range ps {
		out = append(out, api.BGPSession{
			Peer: p.Addr.String(), AS: p.AS, Type: p.Type, Node: p.Name, State: p.State, Since: p.Since,
			Received: p.Received, Advertised: p.Advertised,
		})
	}
	return out, err
}

func (s *Server) bgpRoutes(context.Context) (api.BGPRoutes, error) {
	adv, inst := s.Agent.BGPRoutes()
	out := api.BGPRoutes{Advertised: []string{}, Installed: []api.BGPRoute{}}
	for _, p := range adv {
		out.Advertised = append(out.Advertised, p.String())
	}
	for _, r := range inst {
		br := api.BGPRoute{Dst: r.Dst.String()}
		for _, v := range r.Via {
			br.Via = append(br.Via, v.String())
		}
		out.Installed = append(out.Installed, br)
	}
	return out, nil
}

func (s *Server) listPools(ctx context.Context) ([]api.Pool, error) {
	pools, err := store.ListOf[*store.IPPool](ctx, s.Store, "")
	if err != nil {
		return nil, err
	}
	out := []api.Pool{}
	for _, p := range pools {
		cidr, _ := store.ParseCIDR(p.Spec.CIDR)
		n, _ := s.IPAM.InUse(ctx, cidr)
		out = append(out, api.Pool{Name: p.Metadata.Name, CIDR: p.Spec.CIDR, BlockSize: p.Spec.BlockSize,
			InUse: n, Disabled: p.Spec.Disabled, NAT: p.Spec.NATOutgoing})
	}
	return out, nil
}

func parseRev(s string) (int64, error) { return strconv.ParseInt(s, 10, 64) }
