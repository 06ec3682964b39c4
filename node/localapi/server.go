package localapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"time"

	"calico/bgp"
	"calico/internal/quote"
	"calico/nft"
	"calico/node/agent"
	"calico/node/api"
	"calico/node/calc"
	"calico/node/route"
	"calico/node/workload"
	"calico/store"
	"calico/store/etcdv3"
	"calico/store/ipam"
)

// Server is the node's local API: the CLI's way into the datastore and
// into this host.
type Server struct {
	Info      Info
	Store     *etcdv3.Store
	IPAM      *ipam.IPAM
	Agent     Agent
	Workloads *workload.Service
	// Members is the cluster's side of the node; nil serves no cluster
	// routes (tests).
	Members Membership
	// Stop stops the node (after `calico leave`).
	Stop func()
	// Health, when set, is the node's liveness and readiness verdict.
	Health func(ctx context.Context) api.Health
	// Observe, when set, is told of every request: its route (the
	// pattern it matched), status code, the front end that sent it
	// (api.ClientHeader: "cni", or "" for the CLI) and how long it took.
	Observe func(route string, code int, client string, took time.Duration)
	// Diags are what `calico diags` reads of the node beyond the other
	// routes.
	Diags Diagnostics
	Log   *slog.Logger

	started time.Time
	ln      net.Listener
	http    *http.Server
}

// Info is what the node is.
type Info struct {
	Name, ClusterID, Role, Version, DataDir string
	IPv4, IPv6                              string
	// ClientFiles are the CA, certificate and key files a datastore client
	// on this host authenticates with (cluster.ClientFiles).
	ClientFiles [3]string
	// DataFormat is the data dir's format.
	DataFormat int
}

// Agent is what the API reads of the agent; *agent.Agent is one.
type Agent interface {
	Sync() agent.SyncState
	Last() agent.Applied
	View() (in calc.Input, rev int64, ok bool)
	Counters(ctx context.Context) ([]nft.Counter, error)
	BGPPeers(ctx context.Context) ([]bgp.PeerStatus, error)
	BGPAdvertised(ctx context.Context, addr netip.Addr) (int, error)
	BGPRoutes() (advertised []netip.Prefix, installed []route.Route)
	Problems() []agent.Problem
}

// Listen opens <data-dir>/calico.sock (root only), for Serve.
func (s *Server) Listen() error {
	s.started = time.Now()
	path := filepath.Join(s.Info.DataDir, api.SocketName)
	os.Remove(path) // a stale socket of an earlier run; the data dir lock says we own it
	ln, err := net.Listen("unix", path)
	if err != nil {
		return fmt.Errorf("listening on %s: %w", path, err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		ln.Close()
		return err
	}
	s.ln = ln
	s.http = &http.Server{Handler: s.Handler(), ReadHeaderTimeout: 10 * time.Second}
	return nil
}

// Serve answers on the socket Listen opened until Shutdown.
func (s *Server) Serve() error {
	if err := s.http.Serve(s.ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// Shutdown stops answering: it waits up to 5 s for the requests under
// way, then removes the socket.
func (s *Server) Shutdown() error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err := s.http.Shutdown(ctx)
	os.Remove(filepath.Join(s.Info.DataDir, api.SocketName))
	return err
}

// Handler routes the API's requests.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/status", handle(s, s.status))
	mux.HandleFunc("GET /v1/version", handle(s, func(context.Context) (api.VersionInfo, error) {
		return api.VersionInfo{Version: s.Info.Version, DataFormat: s.Info.DataFormat}, nil
	}))
	mux.HandleFunc("POST /v1/workloads", handleBody(s, s.Workloads.Add))
	mux.HandleFunc("GET /v1/workloads", handle(s, s.Workloads.List))
	mux.HandleFunc("DELETE /v1/workloads/{ns}/{name}", func(w http.ResponseWriter, r *http.Request) {
		s.reply(w, struct{}{}, s.Workloads.Remove(r.Context(), r.PathValue("ns"), r.PathValue("name")))
	})
	mux.HandleFunc("POST /v1/attachments/remove", handleBody(s, func(ctx context.Context, a api.Attachment) (struct{}, error) {
		return struct{}{}, s.Workloads.RemoveAttachment(ctx, a)
	}))
	mux.HandleFunc("POST /v1/attachments/check", handleBody(s, func(ctx context.Context, a api.Attachment) (struct{}, error) {
		return struct{}{}, s.Workloads.Check(ctx, a)
	}))
	mux.HandleFunc("POST /v1/attachments/gc", handleBody(s, s.Workloads.GC))
	mux.HandleFunc("POST /v1/ipam/allocate", handleBody(s, s.Workloads.Allocate))
	mux.HandleFunc("POST /v1/ipam/release-handle", handleBody(s, func(ctx context.Context, r api.IPAMRelease) (struct{}, error) {
		return struct{}{}, s.Workloads.Release(ctx, r)
	}))
	mux.HandleFunc("POST /v1/ipam/gc", handleBody(s, s.Workloads.GCAddresses))
	mux.HandleFunc("POST /v1/resources", func(w http.ResponseWriter, r *http.Request) {
		data, err := io.ReadAll(r.Body)
		if err != nil {
			s.reply(w, nil, bodyError(err))
			return
		}
		out, err := s.applyData(r.Context(), data, r.URL.Query().Get("mode"))
		s.reply(w, out, err)
	})
	mux.HandleFunc("GET /v1/resources/{kind}", func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		out, err := s.getResources(r.Context(), r.PathValue("kind"), q.Get("namespace"), q.Get("name"))
		s.reply(w, out, err)
	})
	mux.HandleFunc("DELETE /v1/resources/{kind}/{name}", func(w http.ResponseWriter, r *http.Request) {
		out, err := s.deleteResource(r.Context(), r.PathValue("kind"), r.URL.Query().Get("namespace"), r.PathValue("name"))
		s.reply(w, out, err)
	})
	mux.HandleFunc("GET /v1/ipam/blocks", handle(s, s.ipamBlocks))
	mux.HandleFunc("GET /v1/ipam/address", func(w http.ResponseWriter, r *http.Request) {
		out, err := s.ipamAddress(r.Context(), r.URL.Query().Get("ip"))
		s.reply(w, out, err)
	})
	mux.HandleFunc("GET /v1/ipam/check", handle(s, s.ipamCheck))
	mux.HandleFunc("POST /v1/ipam/release", func(w http.ResponseWriter, r *http.Request) {
		s.reply(w, struct{}{}, s.ipamRelease(r.Context(), r.URL.Query().Get("ip")))
	})
	mux.HandleFunc("GET /v1/bgp/routes", handle(s, s.bgpRoutes))
	mux.HandleFunc("GET /v1/pools", handle(s, s.listPools))
	s.statsRoutes(mux)
	s.traceRoutes(mux)
	s.diagsRoutes(mux)
	if s.Members != nil {
		s.clusterRoutes(mux)
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r.Body = http.MaxBytesReader(w, r.Body, MaxBody)
		if r.Method != http.MethodGet && s.Members != nil {
			if full := s.Members.DiskFull(); full != "" {
				s.reply(w, nil, api.Errorf(api.Unavailable, "%s: changes are refused until there is room (the node keeps enforcing its last state)", full))
				return
			}
		}
		_, pattern := mux.Handler(r)
		if pattern == "" {
			s.reply(w, nil, api.Errorf(api.NotFound, "the node's API has no %s %s (is the calico command older or newer than the node?)", r.Method, quote.Clip(r.URL.Path)))
			return
		}
		if s.Observe == nil {
			mux.ServeHTTP(w, r)
			return
		}
		start, cw := time.Now(), &codeWriter{ResponseWriter: w, code: http.StatusOK}
		mux.ServeHTTP(cw, r)
		s.Observe(pattern, cw.code, r.Header.Get(api.ClientHeader), time.Since(start))
	})
}

// codeWriter remembers the status code of a reply.
type codeWriter struct {
	http.ResponseWriter
	code int
}

func (w *codeWriter) WriteHeader(code int) {
	w.code = code
	w.ResponseWriter.WriteHeader(code)
}

// MaxBody bounds a request's body (README, "Resources").
const MaxBody = 2 << 20

// bodyError says why a request's body could not be read.
func bodyError(err error) error {
	var tooLarge *http.MaxBytesError
	if errors.As(err, &tooLarge) {
		return api.Errorf(api.BadRequest, "the request is larger than the API takes (%d MiB): apply the input in parts", MaxBody>>20)
	}
	return api.Errorf(api.BadRequest, "reading the request: %w", err)
}

// maxError bounds the message of a failed request.
const maxError = 8 << 10

func handle[T any](s *Server, f func(context.Context) (T, error)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		out, err := f(r.Context())
		s.reply(w, out, err)
	}
}

func handleBody[In, Out any](s *Server, f func(context.Context, In) (Out, error)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		var in In
		d := json.NewDecoder(r.Body)
		d.DisallowUnknownFields()
		if err := d.Decode(&in); err != nil {
			s.reply(w, nil, bodyError(err))
			return
		}
		out, err := f(r.Context(), in)
		s.reply(w, out, err)
	}
}

func (s *Server) reply(w http.ResponseWriter, out any, err error) {
	w.Header().Set("Content-Type", "application/json")
	if err != nil {
		class := classify(err)
		w.WriteHeader(class.Status())
		msg := err.Error()
		if _, classed := api.ClassOf(err); class == api.Unavailable && !classed && s.Members != nil {
			if why := s.Members.Unanswered(); why != "" {
				msg = why + " (" + msg + ")"
			}
		}
		if len(msg) > maxError {
			msg = msg[:maxError] + "… (the rest of this message is cut)"
		}
		json.NewEncoder(w).Encode(api.Error{Error: msg, Field: api.FieldOf(err)})
		return
	}
	json.NewEncoder(w).Encode(out)
}

// classify is the class of an error: the one it carries, or the one its
// datastore error implies. An error of no known class is internal.
func classify(err error) api.Class {
	if c, ok := api.ClassOf(err); ok {
		return c
	}
	var invalid *store.InvalidError
	switch {
	case errors.Is(err, store.ErrNotFound):
		return api.NotFound
	case errors.Is(err, store.ErrExists), errors.Is(err, store.ErrConflict), errors.Is(err, store.ErrInUse):
		return api.Conflict
	case errors.As(err, &invalid):
		return api.BadRequest
	case etcdv3.IsUnavailable(err):
		return api.Unavailable
	}
	return api.Internal
}

func (s *Server) status(ctx context.Context) (api.Status, error) {
	i := s.Info
	st := api.Status{
		Node: i.Name, ClusterID: i.ClusterID, Version: i.Version, IPv4: i.IPv4, IPv6: i.IPv6,
		Role: i.Role, Uptime: time.Since(s.started).Round(time.Second),
	}
	if s.Members != nil {
		st.Role = s.Members.Role()
		if full := s.Members.DiskFull(); full != "" {
			st.Problems = append(st.Problems, full+": this host's etcd member is stopped and changes are refused until there is room")
		}
	}
	hctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	h := s.Store.Health(hctx)
	sync := s.Agent.Sync()
	st.Datastore = api.Datastore{Endpoints: h.Endpoints, Healthy: h.Healthy, Leader: h.Leader, Members: h.Members, Revision: h.Revision, InSync: sync.Live}
	st.Datastore.CAFile, st.Datastore.CertFile, st.Datastore.KeyFile = i.ClientFiles[0], i.ClientFiles[1], i.ClientFiles[2]
	if h.Err != nil {
		st.Datastore.Error = h.Err.Error()
	} else if sync.Err != nil {
		st.Datastore.Error = sync.Err.Error()
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
	for _, p := range s.Agent.Problems() {
		st.Problems = append(st.Problems, p.String())
		st.ProblemDetails = append(st.ProblemDetails, api.Problem(p))
	}
	if s.Health != nil {
		h := s.Health(ctx)
		st.Health = &h
	}
	if in, _, ok := s.Agent.View(); ok {
		st.WorkloadsDown = workload.Down(i.Name, in.Workloads)
	}
	bctx, bcancel := context.WithTimeout(ctx, 2*time.Second)
	defer bcancel()
	var err error
	if st.BGP, err = s.bgpSessions(bctx); err != nil {
		st.Dataplane.Error = strings.TrimPrefix(st.Dataplane.Error+"; ", "; ") + "BGP: " + err.Error()
	}
	if h.Healthy {
		s.readPoolsAndNodes(ctx, &st)
	}
	return st, nil
}

// statusReadTimeout bounds each of the status's reads of the datastore
// beyond its health: the pools (with every IPAM block, to count their
// use) and the member list.
const statusReadTimeout = 3 * time.Second

// readPoolsAndNodes adds the pools and the member list to a status. What
// cannot be read in time (a busy etcd of a thousand hosts) is a problem
// the status reports, not a failed status: a person or a script asking
// how the node is gets the rest.
func (s *Server) readPoolsAndNodes(ctx context.Context, st *api.Status) {
	pctx, cancel := context.WithTimeout(ctx, statusReadTimeout)
	defer cancel()
	pools, uncounted, err := s.readPools(pctx)
	switch {
	case err != nil:
		st.Problems = append(st.Problems, "the IP pools could not be read: "+err.Error())
	case uncounted != nil:
		st.Problems = append(st.Problems, "the IP pools' addresses in use could not be counted (shown as unknown): "+uncounted.Error())
		fallthrough
	default:
		st.Pools = pools
	}
	if s.Members == nil {
		return
	}
	nctx, ncancel := context.WithTimeout(ctx, statusReadTimeout)
	defer ncancel()
	if st.Nodes, err = s.Members.Nodes(nctx); err != nil {
		st.Problems = append(st.Problems, "the cluster's nodes could not be read: "+err.Error())
	}
}

// countAdvertisedMax is how many established sessions a status counts
// the advertised routes of: each count walks the routes sent to that
// peer, so a route reflector of hundreds of hosts would spend seconds
// of its BGP speaker's time on one status; beyond it the counts read -1.
const countAdvertisedMax = 64

func (s *Server) bgpSessions(ctx context.Context) ([]api.BGPSession, error) {
	ps, err := s.Agent.BGPPeers(ctx)
	up := 0
	for _, p := range ps {
		if p.State == "established" {
			up++
		}
	}
	out := make([]api.BGPSession, 0, len(ps))
	var errs []error
	for _, p := range ps {
		b := api.BGPSession{
			Peer: p.Addr.String(), AS: p.AS, Type: p.Type, Node: p.Name, State: p.State, Since: p.Since,
			Received: p.Received,
		}
		switch {
		case p.State != "established":
		case up > countAdvertisedMax:
			b.Advertised = -1
		default:
			n, err := s.Agent.BGPAdvertised(ctx, p.Addr)
			if err != nil {
				errs = append(errs, err)
			}
			b.Advertised = n
		}
		out = append(out, b)
	}
	return out, errors.Join(append([]error{err}, errs...)...)
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
	out, uncounted, err := s.readPools(ctx)
	if err == nil && uncounted != nil {
		err = fmt.Errorf("counting the IP pools' addresses in use: %w", uncounted)
	}
	return out, err
}

// readPools reads the pools and counts each one's addresses in use; a
// pool whose count fails reads InUse -1 (unknown), never a wrong count,
// and uncounted says why.
func (s *Server) readPools(ctx context.Context) (out []api.Pool, uncounted, err error) {
	pools, err := etcdv3.ListOf[*store.IPPool](ctx, s.Store, "")
	if err != nil {
		return nil, nil, err
	}
	out = []api.Pool{}
	for _, p := range pools {
		cidr, _ := store.ParseCIDR(p.Spec.CIDR)
		n, cerr := s.IPAM.InUse(ctx, cidr)
		if cerr != nil {
			n, uncounted = -1, cerr
		}
		out = append(out, api.Pool{Name: p.Metadata.Name, CIDR: p.Spec.CIDR, BlockSize: p.Spec.BlockSize,
			InUse: n, Disabled: p.Spec.Disabled, NAT: p.Spec.NATOutgoing})
	}
	return out, uncounted, nil
}
