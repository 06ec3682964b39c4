package docker

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"net/netip"
	"path/filepath"
	"slices"
	"sync"
	"testing"

	"calico/internal/testutil"
	"calico/node/api"
	"calico/node/workload"
	"calico/store"
	"calico/store/etcdv3"
	"calico/store/ipam"
)

// fakeEngine is a Docker Engine that knows the networks it is given.
type fakeEngine struct {
	mu   sync.Mutex
	nets map[string]*EngineNetwork
	err  error
}

func (f *fakeEngine) Network(_ context.Context, id string) (*EngineNetwork, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return nil, f.err
	}
	n, ok := f.nets[id]
	if !ok {
		return nil, ErrNoNetwork
	}
	c := *n
	return &c, nil
}

func (f *fakeEngine) Networks(context.Context) ([]EngineNetwork, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return nil, f.err
	}
	var out []EngineNetwork
	for _, k := range slices.Sorted(maps.Keys(f.nets)) {
		out = append(out, *f.nets[k])
	}
	return out, nil
}

func (f *fakeEngine) put(n EngineNetwork) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.nets == nil {
		f.nets = map[string]*EngineNetwork{}
	}
	f.nets[n.ID] = &n
}

// fakeWorkloads is a workload service that writes endpoints without
// wiring anything, and lists the store's pools.
type fakeWorkloads struct {
	store *etcdv3.Store
	node  string

	mu      sync.Mutex
	adds    []api.WorkloadAdd
	removes []string
}

func (f *fakeWorkloads) Add(ctx context.Context, req api.WorkloadAdd) (*api.Workload, error) {
	f.mu.Lock()
	f.adds = append(f.adds, req)
	f.mu.Unlock()
	w := store.KindWorkloadEndpoint.New().(*store.WorkloadEndpoint)
	w.Metadata.Namespace = workload.OrchestratorLibnetwork
	w.Metadata.Name = store.WorkloadEndpointName(f.node, workload.OrchestratorLibnetwork, workload.OrchestratorLibnetwork, req.ContainerID)
	host, _ := workload.DockerInterfaces(req.ContainerID)
	w.Spec = store.WorkloadEndpointSpec{Orchestrator: workload.OrchestratorLibnetwork, Workload: workload.OrchestratorLibnetwork,
		Node: f.node, Endpoint: req.ContainerID, InterfaceName: host, Profiles: []string{req.Network}}
	for _, ip := range req.IPs {
		a := netip.MustParseAddr(ip)
		w.Spec.IPNetworks = append(w.Spec.IPNetworks, netip.PrefixFrom(a, a.BitLen()).String())
	}
	if err := f.store.Create(ctx, w); err != nil {
		return nil, err
	}
	return &api.Workload{Endpoint: w.Metadata.Name, Interface: host}, nil
}

func (f *fakeWorkloads) RemoveAttachment(ctx context.Context, a api.Attachment) error {
	f.mu.Lock()
	f.removes = append(f.removes, a.ContainerID)
	f.mu.Unlock()
	name := store.WorkloadEndpointName(f.node, workload.OrchestratorLibnetwork, workload.OrchestratorLibnetwork, a.ContainerID)
	_, err := f.store.Delete(ctx, store.ID{Kind: store.KindWorkloadEndpoint, Namespace: workload.OrchestratorLibnetwork, Name: name}, "")
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	return err
}

func (f *fakeWorkloads) Pools(ctx context.Context) ([]ipam.Pool, error) {
	pools, err := etcdv3.ListOf[*store.IPPool](ctx, f.store, "")
	var out []ipam.Pool
	for _, p := range pools {
		cidr, _ := store.ParseCIDR(p.Spec.CIDR)
		if !p.Spec.Disabled {
			out = append(out, ipam.Pool{CIDR: cidr, BlockSize: p.Spec.BlockSize})
		}
	}
	return out, err
}

// harness is a Server of node n1 over a test etcd with pools
// 10.65.0.0/16 and fd00:65::/48, serving its sockets in a temp dir.
type harness struct {
	t      testing.TB
	s      *Server
	engine *fakeEngine
	wl     *fakeWorkloads
}

func newHarness(t testing.TB, wl Workloads) *harness {
	cli := testutil.StartEtcd(t)
	st := etcdv3.New(cli)
	for _, p := range []string{"10.65.0.0/16", "fd00:65::/48"} {
		cidr := netip.MustParsePrefix(p)
		if err := st.Create(t.Context(), store.NewPool(store.PoolName(cidr), cidr)); err != nil {
			t.Fatal(err)
		}
	}
	h := &harness{t: t, engine: &fakeEngine{}}
	if wl == nil {
		h.wl = &fakeWorkloads{store: st, node: "n1"}
		wl = h.wl
	}
	h.s = &Server{Config: Config{PluginDir: t.TempDir()}, Node: "n1", Workloads: wl, Store: st, IPAM: ipam.New(cli),
		Engine: h.engine, Log: slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))}
	if err := h.s.Listen(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(h.s.Shutdown)
	return h
}

// post makes a call as Docker does (a JSON body, no Content-Type) and
// decodes the reply into out; it returns the HTTP status and the
// error the reply carries.
func (h *harness) post(socket, path string, in, out any) (int, string) {
	h.t.Helper()
	c := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", filepath.Join(h.s.PluginDir, socket))
	}}}
	var body io.Reader = http.NoBody
	if in != nil {
		b, _ := json.Marshal(in)
		body = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(http.MethodPost, "http://plugin"+path, body)
	req.Header.Set("Accept", "application/vnd.docker.plugins.v1.2+json")
	resp, err := c.Do(req)
	if err != nil {
		h.t.Fatalf("POST %s: %v", path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var e errorReply
	json.Unmarshal(b, &e)
	if e.Err != e.Error {
		h.t.Errorf("POST %s: Err %q and Error %q differ", path, e.Err, e.Error)
	}
	if out != nil && e.Err == "" {
		if err := json.Unmarshal(b, out); err != nil {
			h.t.Fatalf("POST %s answered %s: %v", path, b, err)
		}
	}
	return resp.StatusCode, e.Err
}

// must is post that fails the test on an error.
func (h *harness) must(socket, path string, in, out any) {
	h.t.Helper()
	if status, e := h.post(socket, path, in, out); status != http.StatusOK || e != "" {
		h.t.Fatalf("POST %s = %d %q", path, status, e)
	}
}

// nowDataplane is a dataplane that is always programmed.
type nowDataplane struct{}

func (nowDataplane) WaitApplied(context.Context, int64) error { return nil }
func (nowDataplane) Applied() int64                           { return 1 << 62 }
