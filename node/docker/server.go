// Package docker is calico's Docker network and IPAM plugins, served by
// the node on Docker's legacy plugin sockets: the network driver
// "calico" (calico.sock) and the IPAM driver "calico-ipam"
// (calico-ipam.sock). A Docker network is a profile of the same name,
// addresses come from the cluster's pools, and every endpoint is wired by
// the node's workload service (orchestrator libnetwork), as `calico
// workload add` and CNI containers are. The package owns the mapping
// from Docker's calls to those, and the garbage collection of what Docker
// removed while the node was away.
package docker

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
	"sync"
	"time"

	"calico/node/api"
	"calico/store/etcdv3"
	"calico/store/ipam"
)

// Socket names in the plugin dir: Docker names a legacy plugin after its
// socket.
const (
	NetworkSocket = "calico.sock"
	IPAMSocket    = "calico-ipam.sock"
)

// DefaultPluginDir is where Docker looks for plugin sockets.
const DefaultPluginDir = "/run/docker/plugins"

// DefaultEngineSocket is the Docker Engine API's usual socket.
const DefaultEngineSocket = "/var/run/docker.sock"

// Config says where the plugins are served and where the Docker Engine
// answers. The zero Config serves nothing.
type Config struct {
	// PluginDir is where the sockets are made; "" serves no plugin.
	PluginDir string
	// EngineSocket is the Docker Engine API's unix socket, asked for the
	// names and labels of networks (the driver's calls carry only ids)
	// and for the endpoints that exist (garbage collection).
	EngineSocket string
}

// Workloads is what the plugins need of the node's workload service;
// *workload.Service is one.
type Workloads interface {
	Add(ctx context.Context, req api.WorkloadAdd) (*api.Workload, error)
	RemoveAttachment(ctx context.Context, a api.Attachment) error
	Pools(ctx context.Context) ([]ipam.Pool, error)
}

// Server serves the two plugins of one node.
type Server struct {
	Config
	Node      string
	Workloads Workloads
	Store     *etcdv3.Store
	IPAM      *ipam.IPAM
	Engine    Engine
	Log       *slog.Logger
	// Observe, when set, is told of every call Docker makes: its
	// operation ("NetworkDriver.CreateEndpoint"), status code and time.
	Observe func(operation string, code int, took time.Duration)

	mu sync.Mutex
	// networks caches what the Engine said of each network, by id.
	networks map[string]*network
	// live are the endpoint ids and addresses this run made and Docker
	// has not removed yet: garbage collection leaves them, whatever
	// Docker's list (read a moment earlier) says.
	live map[string]bool
	// kick asks the garbage collector for a pass.
	kick chan struct{}

	servers []*http.Server
	paths   []string
	work    sync.WaitGroup
	// life is the context of the server's own work (making a new
	// network's profile, the garbage collector), done at Shutdown (as
	// http.Server's BaseContext is the requests').
	life   context.Context
	cancel context.CancelFunc
}

// Listen makes the plugin sockets, replacing stale ones of an earlier
// run (the data dir's lock says the node is this host's only one).
func (s *Server) Listen() error {
	s.mu.Lock()
	s.networks, s.live, s.kick = map[string]*network{}, map[string]bool{}, make(chan struct{}, 1)
	s.mu.Unlock()
	s.life, s.cancel = context.WithCancel(context.Background())
	if err := os.MkdirAll(s.PluginDir, 0o755); err != nil {
		return fmt.Errorf("making Docker's plugin dir: %w", err)
	}
	for _, p := range []struct {
		name    string
		handler http.Handler
	}{{NetworkSocket, s.networkHandler()}, {IPAMSocket, s.ipamHandler()}} {
		path := filepath.Join(s.PluginDir, p.name)
		os.Remove(path)
		ln, err := net.Listen("unix", path)
		if err != nil {
			s.Shutdown()
			return fmt.Errorf("listening on %s: %w", path, err)
		}
		if err := os.Chmod(path, 0o600); err != nil {
			ln.Close()
			s.Shutdown()
			return err
		}
		srv := &http.Server{Handler: observed(p.handler, s.Observe), ReadHeaderTimeout: 10 * time.Second}
		s.servers, s.paths = append(s.servers, srv), append(s.paths, path)
		s.work.Go(func() {
			if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				s.Log.Error("serving Docker's plugin socket", "socket", path, "err", err)
			}
		})
	}
	return nil
}

// Start listens and starts the garbage collector, which runs until
// Shutdown.
func (s *Server) Start() error {
	if err := s.Listen(); err != nil {
		return err
	}
	s.work.Go(func() { s.collector(s.life) })
	return nil
}

// Shutdown stops answering (waiting up to 5 s for calls under way) and
// removes the sockets.
func (s *Server) Shutdown() {
	if s.cancel != nil {
		s.cancel()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, srv := range s.servers {
		srv.Shutdown(ctx)
	}
	s.work.Wait()
	for _, p := range s.paths {
		os.Remove(p)
	}
	s.servers, s.paths = nil, nil
}

// maxBody bounds a call's body; Docker's are a few hundred bytes.
const maxBody = 1 << 20

// routes is one plugin's calls.
type routes map[string]http.HandlerFunc

// handler answers the plugin's calls; an unknown one gets 404 (Docker
// takes that as "not implemented").
func (s *Server) handler(rs routes) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h, ok := rs[r.URL.Path]
		if !ok || r.Method != http.MethodPost {
			s.Log.Debug("unknown Docker plugin call", "method", r.Method, "path", r.URL.Path)
			msg := fmt.Sprintf("calico: unknown call %s %s", r.Method, r.URL.Path)
			writeJSON(w, http.StatusNotFound, errorReply{Err: msg, Error: msg})
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, maxBody)
		h(w, r)
	})
}

// call turns f into a handler: the body (none is an empty request)
// decoded into In, f's reply or its error (HTTP 200 with Err, as Docker
// reads a driver's failure).
func call[In, Out any](s *Server, f func(context.Context, In) (Out, error)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		var in In
		body, err := io.ReadAll(r.Body)
		if err == nil && len(body) > 0 {
			err = json.Unmarshal(body, &in)
		}
		if err != nil {
			msg := fmt.Sprintf("calico: reading %s: %v", r.URL.Path, err)
			writeJSON(w, http.StatusBadRequest, errorReply{Err: msg, Error: msg})
			return
		}
		out, err := f(r.Context(), in)
		took := time.Since(start)
		if err != nil {
			s.Log.Warn("Docker plugin call failed", "call", r.URL.Path, "took", took, "err", err)
			msg := "calico: " + err.Error()
			writeJSON(w, http.StatusOK, errorReply{Err: msg, Error: msg})
			return
		}
		s.Log.Debug("Docker plugin call", "call", r.URL.Path, "took", took)
		writeJSON(w, http.StatusOK, out)
	}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/vnd.docker.plugins.v1.2+json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

// activated answers /Plugin.Activate with what the socket implements.
func activated(what string, then func()) func(context.Context, empty) (activation, error) {
	return func(context.Context, empty) (activation, error) {
		if then != nil {
			then()
		}
		return activation{Implements: []string{what}}, nil
	}
}

// markLive records what this run made (an endpoint id, an address),
// unmarkLive that Docker removed it.
func (s *Server) markLive(keys ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, k := range keys {
		s.live[k] = true
	}
}

func (s *Server) unmarkLive(keys ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, k := range keys {
		delete(s.live, k)
	}
}

func (s *Server) isLive(key string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.live[key]
}

// addrKey is an address's key in live.
func addrKey(a netip.Addr) string { return "addr/" + a.String() }
