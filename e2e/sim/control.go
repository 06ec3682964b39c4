package sim

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"sort"
	"strconv"
	"time"

	"calico/store"
)

// The control API: JSON over HTTP on a unix socket, for the tests and
// the scale benchmark (Client).
//
//	POST /grow      Grow{Hosts, PerHost, Apps, Parallel}   -> Stats
//	POST /churn     Churn                                  -> ChurnResult
//	POST /workload  WorkloadReq{Host, App}                 -> WorkloadInfo (one added)
//	POST /remove    WorkloadReq{Host, Name}
//	POST /host      HostReq{Op: add|leave|die|revive, Host, PerHost, Apps}
//	POST /emulate   {"on": bool}
//	GET  /stats                                            -> Stats
//	GET  /hosts[?workloads=1]                              -> []HostInfo (with workloads)
//	GET  /host?name=NAME                                   -> HostInfo
//	POST /latency   {"n": int}                             -> Latency (etcd, from here)
//	GET  /etcd                                             -> []EtcdStatus

// Grow asks for hosts until there are Hosts, each with PerHost workloads.
type Grow struct {
	Hosts, PerHost, Apps, Parallel int
}

// WorkloadReq names a host (any live one when empty) and a workload.
type WorkloadReq struct {
	Host string
	Name string
	App  int
}

// WorkloadInfo is a workload added: Took is the whole add (IPAM
// included), Created when its endpoint's write started, WatchLag from
// then to the simulation's own watcher (one more node's watch) receiving
// it.
type WorkloadInfo struct {
	Host, Name string
	Addr       netip.Addr
	Revision   int64
	Took       time.Duration
	Created    time.Time
	WatchLag   time.Duration
}

// HostReq is a change to one host.
type HostReq struct {
	Op, Host      string
	PerHost, Apps int
}

// HostInfo is one host as the simulation has it.
type HostInfo struct {
	Name       string
	Addr       netip.Addr
	Dead       bool
	Blocks     []netip.Prefix
	Advertised []netip.Prefix        // what its speaker advertises
	Workloads  map[string]netip.Addr // by name
	Peers      []netip.Addr          // its sessions' peers
	Up         int                   // sessions established
	Reflectors []string
	Meshed     bool
}

// Stats sums the hosts up.
type Stats struct {
	Hosts, Dead, Workloads int
	// Sessions and Up count every host's sessions and those
	// established; Received the updates sent to the hosts.
	Sessions, Up int
	Received     int64
	// HostRoutes counts the single-address prefixes (borrowed
	// addresses) the hosts ever advertised: none while every
	// workload's address is in a block of its host's.
	HostRoutes int64
	// PeerSets counts the hosts by the set of peers they have (as
	// "a,b,c"): the topology seen from the simulated side.
	PeerSets map[string]int
	// Emulated node load: watch events received, reads made, errors.
	Events, Reads, Errors int64
	// ProbeEvents counts the events one node's watch received.
	ProbeEvents int64
}

// Latency is etcd's request latency as the simulation sees it (ms).
type Latency struct {
	Put, Get []float64
}

// EtcdStatus is one etcd member's status.
type EtcdStatus struct {
	Endpoint        string
	DBSize, InUse   int64
	Leader, Version string
	RaftIndex       uint64
}

// Handler serves the control API.
func (s *Sim) Handler(ctx context.Context) http.Handler {
	mux := http.NewServeMux()
	handle := func(pattern string, f func(r *http.Request) (any, error)) {
		mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
			out, err := f(r)
			if err != nil {
				http.Error(w, err.Error(), http.StatusInternalServerError)
				return
			}
			w.Header().Set("Content-Type", "application/json")
			json.NewEncoder(w).Encode(out)
		})
	}
	handle("POST /grow", func(r *http.Request) (any, error) {
		var g Grow
		if err := json.NewDecoder(r.Body).Decode(&g); err != nil {
			return nil, err
		}
		err := s.Grow(ctx, g.Hosts, g.PerHost, g.Parallel, func(h, i int) map[string]string {
			return AppLabels((h*g.PerHost + i) % max(g.Apps, 1))
		})
		return s.Stats(), err
	})
	handle("POST /churn", func(r *http.Request) (any, error) {
		var c Churn
		if err := json.NewDecoder(r.Body).Decode(&c); err != nil {
			return nil, err
		}
		return s.Churn(ctx, c), nil
	})
	handle("POST /workload", func(r *http.Request) (any, error) { return s.addWorkload(ctx, r) })
	handle("POST /remove", func(r *http.Request) (any, error) {
		var req WorkloadReq
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
			return nil, err
		}
		h := s.Host(req.Host)
		if h == nil {
			return nil, fmt.Errorf("%w: %s", errNoHost, req.Host)
		}
		return struct{}{}, h.RemoveWorkload(ctx, req.Name)
	})
	handle("POST /host", func(r *http.Request) (any, error) { return s.hostOp(ctx, r) })
	handle("POST /emulate", func(r *http.Request) (any, error) {
		var req struct{ On bool }
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
			return nil, err
		}
		s.Emulate(req.On)
		return struct{}{}, nil
	})
	handle("GET /stats", func(*http.Request) (any, error) { return s.Stats(), nil })
	handle("GET /hosts", func(r *http.Request) (any, error) { return s.HostInfos(r.URL.Query().Get("workloads") != ""), nil })
	handle("GET /host", func(r *http.Request) (any, error) {
		h := s.Host(r.URL.Query().Get("name"))
		if h == nil {
			return nil, fmt.Errorf("%w: %q", errNoHost, r.URL.Query().Get("name"))
		}
		return h.info(true), nil
	})
	handle("POST /latency", func(r *http.Request) (any, error) {
		var req struct{ N int }
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
			return nil, err
		}
		return s.Latency(ctx, req.N)
	})
	handle("GET /etcd", func(r *http.Request) (any, error) { return s.EtcdStatus(r.Context()) })
	return mux
}

func (s *Sim) addWorkload(ctx context.Context, r *http.Request) (any, error) {
	var req WorkloadReq
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		return nil, err
	}
	h := s.Host(req.Host)
	if req.Host == "" {
		h = s.randomHost()
	}
	if h == nil {
		return nil, fmt.Errorf("%w: %q", errNoHost, req.Host)
	}
	start := time.Now()
	w, created, err := h.addWorkload(ctx, AppLabels(req.App), "sim")
	if err != nil {
		return nil, err
	}
	rev, _ := strconv.ParseInt(w.Metadata.ResourceVersion, 10, 64)
	p, _ := store.ParseCIDR(w.Spec.IPNetworks[0])
	info := WorkloadInfo{Host: h.Name, Name: w.Spec.Workload, Addr: p.Addr(), Revision: rev, Took: time.Since(start), Created: created}
	if at, ok := s.probe.arrival(rev); ok {
		info.WatchLag = at.Sub(created)
	}
	return info, nil
}

func (s *Sim) hostOp(ctx context.Context, r *http.Request) (any, error) {
	var req HostReq
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		return nil, err
	}
	if req.Op == "add" {
		h, err := s.AddHost(ctx)
		if err != nil {
			return nil, err
		}
		for i := range req.PerHost {
			if _, err := h.AddWorkload(ctx, AppLabels(i%max(req.Apps, 1)), "sim"); err != nil {
				return nil, err
			}
		}
		h.reconcile()
		return h.info(false), nil
	}
	h := s.Host(req.Host)
	if h == nil {
		return nil, fmt.Errorf("%w: %s", errNoHost, req.Host)
	}
	switch req.Op {
	case "leave":
		return struct{}{}, s.Leave(ctx, h)
	case "die":
		s.Die(h)
	case "revive":
		s.Revive(h)
	default:
		return nil, fmt.Errorf("unknown host operation %q", req.Op)
	}
	return h.info(false), nil
}

// Stats sums up the hosts.
func (s *Sim) Stats() Stats {
	st := Stats{PeerSets: map[string]int{},
		Events: s.emu.Events.Load(), Reads: s.emu.Reads.Load(), Errors: s.emu.Errors.Load(), ProbeEvents: s.probe.events.Load()}
	for _, h := range s.Hosts() {
		st.Hosts++
		if h.isDead() {
			st.Dead++
		}
		st.Workloads += len(h.Workloads())
		up, all := h.sp.Established()
		st.Sessions += all
		st.Up += up
		st.Received += h.sp.Received()
		st.HostRoutes += h.sp.HostRoutes()
		key := ""
		for i, p := range h.sp.Peers() {
			if i > 0 {
				key += ","
			}
			key += p.String()
		}
		st.PeerSets[key]++
	}
	return st
}

// HostInfos describes every host (with their workloads, if asked).
func (s *Sim) HostInfos(workloads bool) []HostInfo {
	var out []HostInfo
	for _, h := range s.Hosts() {
		out = append(out, h.info(workloads))
	}
	return out
}

func (h *Host) info(workloads bool) HostInfo {
	h.mu.Lock()
	defer h.mu.Unlock()
	hi := HostInfo{Name: h.Name, Addr: h.Addr, Dead: h.dead, Blocks: slices.Clone(h.blocks), Workloads: map[string]netip.Addr{},
		Reflectors: h.reflectors, Meshed: h.meshed}
	for name, w := range h.workloads {
		if !workloads {
			break
		}
		if p, err := store.ParseCIDR(w.Spec.IPNetworks[0]); err == nil {
			hi.Workloads[name] = p.Addr()
		}
	}
	hi.Advertised = slices.SortedFunc(slices.Values(h.sp.advertised()), netip.Prefix.Compare)
	hi.Peers = h.sp.Peers()
	hi.Up, _ = h.sp.Established()
	return hi
}

// Latency times n puts and n linearizable gets of a scratch key.
func (s *Sim) Latency(ctx context.Context, n int) (Latency, error) {
	var l Latency
	cli := s.cfg.Clients[0]
	for i := range n {
		d, err := timed(func() error {
			_, err := cli.Put(ctx, "/calico-sim/latency", strconv.Itoa(i))
			return err
		})
		if err != nil {
			return l, err
		}
		l.Put = append(l.Put, ms(d))
		d, err = timed(func() error {
			_, err := cli.Get(ctx, "/calico-sim/latency")
			return err
		})
		if err != nil {
			return l, err
		}
		l.Get = append(l.Get, ms(d))
	}
	sort.Float64s(l.Put)
	sort.Float64s(l.Get)
	return l, nil
}

// EtcdStatus asks every endpoint for its status.
func (s *Sim) EtcdStatus(ctx context.Context) ([]EtcdStatus, error) {
	cli := s.cfg.Clients[0]
	var out []EtcdStatus
	for _, ep := range cli.Endpoints() {
		st, err := cli.Status(ctx, ep)
		if err != nil {
			return nil, fmt.Errorf("status of %s: %w", ep, err)
		}
		out = append(out, EtcdStatus{Endpoint: ep, DBSize: st.DbSize, InUse: st.DbSizeInUse, Version: st.Version,
			Leader: strconv.FormatUint(st.Leader, 16), RaftIndex: st.RaftIndex})
	}
	return out, nil
}

// Client talks to a simulation's control socket.
type Client struct{ http *http.Client }

// NewClient is a client of the control socket at path.
func NewClient(path string) *Client {
	return &Client{http: &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", path)
		},
	}}}
}

// Do sends a request (in, if not nil, as JSON) and decodes the answer
// into out (if not nil).
func (c *Client) Do(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, "http://sim"+path, body)
	if err != nil {
		return err
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s %s: %s", method, path, bytes.TrimSpace(b))
	}
	if out == nil {
		return nil
	}
	return json.Unmarshal(b, out)
}
