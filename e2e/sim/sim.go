package sim

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"calico/cluster"
	"calico/store"
	"calico/store/etcdv3"
	"calico/store/ipam"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// Config is how a simulation runs.
type Config struct {
	// Clients are etcd clients; the first holds the store and IPAM, and
	// the emulated node load is spread over all of them.
	Clients []*clientv3.Client
	Store   *etcdv3.Store
	IPAM    *ipam.IPAM
	// Subnet holds the hosts' addresses: host i has its (i+1)th address.
	// It must sort below the real nodes' addresses, which then only
	// listen for the simulated hosts' BGP sessions.
	Subnet netip.Prefix
	// AddAddr and DelAddr put a host's address on the simulation's
	// interface and take it off (nil: the addresses are there).
	AddAddr, DelAddr func(netip.Prefix) error
	AS               uint32 // 64512 by default
	BGPPort          int    // 179 by default
	Log              *slog.Logger
}

// Sim is a simulation: simulated hosts, their view of the cluster's
// routing resources, and the load they put on etcd as nodes.
type Sim struct {
	cfg Config

	mu     sync.Mutex
	hosts  map[string]*Host
	byAddr map[netip.Addr]*Host
	next   int // the next host's index

	view    atomic.Pointer[routing]
	changed chan struct{}

	emu   emulation
	probe probe
}

// routing is what a host's BGP calculation reads besides its own: the
// nodes, BGP settings, pools and the etcd voters.
type routing struct {
	nodes   []*store.Node
	peers   []*store.BGPPeer
	configs []*store.BGPConfiguration
	pools   []*store.IPPool
	voters  []netip.Addr
}

// New starts a simulation with no hosts; it follows the datastore until
// ctx ends.
func New(ctx context.Context, cfg Config) (*Sim, error) {
	if cfg.AS == 0 {
		cfg.AS = 64512
	}
	if cfg.BGPPort == 0 {
		cfg.BGPPort = 179
	}
	s := &Sim{cfg: cfg, hosts: map[string]*Host{}, byAddr: map[netip.Addr]*Host{}, changed: make(chan struct{}, 1)}
	if err := s.follow(ctx); err != nil {
		return nil, err
	}
	go s.reconcileLoop(ctx)
	go s.probe.run(ctx, cfg.Clients[len(cfg.Clients)-1])
	return s, nil
}

// routingKinds are the kinds the hosts' BGP calculation reads.
var routingKinds = []*store.Kind{store.KindNode, store.KindBGPPeer, store.KindBGPConfiguration, store.KindIPPool}

// follow reads the routing kinds and then watches them (and polls the
// etcd member list for the voters) until ctx ends.
func (s *Sim) follow(ctx context.Context) error {
	cli := s.cfg.Clients[0]
	items := map[string]store.Resource{}
	var mu sync.Mutex
	var voters []netip.Addr
	publish := func() {
		r := &routing{voters: voters}
		for _, k := range slices.Sorted(maps.Keys(items)) {
			switch v := items[k].(type) {
			case *store.Node:
				r.nodes = append(r.nodes, v)
			case *store.BGPPeer:
				r.peers = append(r.peers, v)
			case *store.BGPConfiguration:
				r.configs = append(r.configs, v)
			case *store.IPPool:
				r.pools = append(r.pools, v)
			}
		}
		s.view.Store(r)
		select {
		case s.changed <- struct{}{}:
		default:
		}
	}
	for _, k := range routingKinds {
		prefix := store.ResourcePrefix + k.Plural + "/"
		resp, err := cli.Get(ctx, prefix, clientv3.WithPrefix())
		if err != nil {
			return fmt.Errorf("listing %s: %w", k.Plural, err)
		}
		for _, kv := range resp.Kvs {
			if id, ok := store.ParseKey(string(kv.Key)); ok {
				items[string(kv.Key)] = store.DecodeStored(id, kv.Value, kv.ModRevision)
			}
		}
		go func(rev int64) {
			for wr := range cli.Watch(clientv3.WithRequireLeader(ctx), prefix, clientv3.WithPrefix(), clientv3.WithRev(rev+1)) {
				mu.Lock()
				applyEvents(items, wr.Events)
				publish()
				mu.Unlock()
			}
		}(resp.Header.Revision)
	}
	mu.Lock()
	publish()
	mu.Unlock()
	go func() {
		for ctx.Err() == nil {
			lctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			list, err := cli.MemberList(lctx)
			cancel()
			if err == nil {
				vs := cluster.VoterAddrs(list.Members)
				mu.Lock()
				if !slices.Equal(vs, voters) {
					voters = vs
					publish()
				}
				mu.Unlock()
			}
			select {
			case <-ctx.Done():
			case <-time.After(2 * time.Second):
			}
		}
	}()
	return nil
}

// applyEvents brings items (resources by key) up to date with a watch's
// events.
func applyEvents(items map[string]store.Resource, events []*clientv3.Event) {
	for _, e := range events {
		k := string(e.Kv.Key)
		id, ok := store.ParseKey(k)
		switch {
		case !ok:
		case e.Type == clientv3.EventTypeDelete:
			delete(items, k)
		default:
			items[k] = store.DecodeStored(id, e.Kv.Value, e.Kv.ModRevision)
		}
	}
}

func (s *Sim) routing() *routing { return s.view.Load() }

// reconcileLoop brings every host in step with a change of the routing
// resources, at most every 200 ms.
func (s *Sim) reconcileLoop(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-s.changed:
		}
		for _, h := range s.Hosts() {
			h.reconcile()
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// Hosts are the simulated hosts, in the order they were made.
func (s *Sim) Hosts() []*Host {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := slices.Collect(maps.Values(s.hosts))
	slices.SortFunc(out, func(a, b *Host) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// size is how many simulated hosts there are.
func (s *Sim) size() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.hosts)
}

// Host is the host of that name, or nil.
func (s *Sim) Host(name string) *Host {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.hosts[name]
}

func (s *Sim) isSimulated(a netip.Addr) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.byAddr[a] != nil
}

// AddHost makes a new host: its address, its Node and its speaker.
func (s *Sim) AddHost(ctx context.Context) (*Host, error) {
	s.mu.Lock()
	i := s.next
	s.next++
	s.mu.Unlock()
	addr := s.cfg.Subnet.Addr()
	for range i + 1 {
		addr = addr.Next()
	}
	if !s.cfg.Subnet.Contains(addr) || addr == lastAddr(s.cfg.Subnet) {
		return nil, fmt.Errorf("subnet %s has no room for host %d", s.cfg.Subnet, i)
	}
	if s.cfg.AddAddr != nil {
		if err := s.cfg.AddAddr(netip.PrefixFrom(addr, s.cfg.Subnet.Bits())); err != nil {
			return nil, fmt.Errorf("adding address %s: %w", addr, err)
		}
	}
	h := &Host{Name: fmt.Sprintf("sim-%05d", i+1), Addr: addr, sim: s, workloads: map[string]*store.WorkloadEndpoint{}}
	h.sp = NewSpeaker(addr, s.cfg.AS, s.cfg.BGPPort, s.cfg.Log)
	s.mu.Lock()
	s.hosts[h.Name], s.byAddr[addr] = h, h
	s.mu.Unlock()
	if err := h.register(ctx); err != nil {
		s.forget(h)
		return nil, err
	}
	s.emu.start(s, h)
	s.cfg.Log.Debug("host joined", "host", h.Name, "addr", addr)
	return h, nil
}

// Leave takes a host out of the cluster (calico leave --force).
func (s *Sim) Leave(ctx context.Context, h *Host) error {
	s.emu.stop(h)
	if err := h.leave(ctx); err != nil {
		return err
	}
	s.forget(h)
	s.cfg.Log.Info("host left", "host", h.Name, "addr", h.Addr)
	return nil
}

// Die kills a host: its sessions drop, its data stays.
func (s *Sim) Die(h *Host) {
	s.emu.stop(h)
	h.die()
	s.cfg.Log.Info("host died", "host", h.Name, "addr", h.Addr)
}

// Revive restarts a dead host.
func (s *Sim) Revive(h *Host) { h.revive(); s.emu.start(s, h) }

func (s *Sim) forget(h *Host) {
	s.mu.Lock()
	delete(s.hosts, h.Name)
	delete(s.byAddr, h.Addr)
	s.mu.Unlock()
	if s.cfg.DelAddr != nil {
		s.cfg.DelAddr(netip.PrefixFrom(h.Addr, s.cfg.Subnet.Bits()))
	}
}

func lastAddr(p netip.Prefix) netip.Addr {
	b := p.Masked().Addr().As16()
	for i := p.Bits() + 96; i < 128; i++ {
		b[i/8] |= 1 << (7 - i%8)
	}
	return netip.AddrFrom16(b).Unmap()
}

// Grow adds hosts until there are n, each with perHost workloads (labels
// from label, profile "sim"), up to parallel hosts at once. Each host
// takes its workloads' addresses one after another (in parallel on one
// host they would only contend for its block) and writes their
// endpoints together (Host.addWorkloads): growing is set-up, not
// measured; Churn adds workloads one by one, as nodes do.
func (s *Sim) Grow(ctx context.Context, n, perHost, parallel int, label func(host, i int) map[string]string) error {
	todo := n - len(s.Hosts())
	if todo <= 0 {
		return nil
	}
	var mu sync.Mutex
	var errs []error
	fail := func(err error) { mu.Lock(); errs = append(errs, err); mu.Unlock() }
	idx := make(chan int)
	var wg sync.WaitGroup
	for range min(max(parallel, 1), todo) {
		wg.Go(func() {
			for i := range idx {
				if err := s.growHost(ctx, perHost, func(j int) map[string]string { return label(i, j) }); err != nil {
					fail(err)
				}
			}
		})
	}
	base := len(s.Hosts())
	for i := range todo {
		if ctx.Err() != nil {
			break
		}
		idx <- base + i
	}
	close(idx)
	wg.Wait()
	if len(errs) > 0 {
		return fmt.Errorf("%d of the changes failed, such as: %w", len(errs), errs[0])
	}
	return ctx.Err()
}

// growTries is how often Grow tries a host's step (its Node, its
// workloads) before giving up: on a loaded machine an etcd call of the
// simulation's can outlast the store's timeout (10 s) now and then, and
// near 1,000 hosts on two cores three tries in a row did (2026-12-05).
const growTries = 8

// growHost adds one host with perHost workloads, trying again (after 1,
// 2, ... 7 s) a step that failed, for the workloads still missing. A write
// that timed out but was done leaves an endpoint the host does not know
// of: growing is set-up, and the datastore (which the checks read) still
// says what there is.
func (s *Sim) growHost(ctx context.Context, perHost int, label func(j int) map[string]string) error {
	var h *Host
	var err error
	for try := range growTries {
		if try > 0 {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(time.Duration(try) * time.Second):
			}
			s.cfg.Log.Info("growing: trying again", "host", hostName(h), "try", try+1, "err", err)
		}
		if h == nil {
			if h, err = s.AddHost(ctx); err != nil {
				continue
			}
		}
		have := len(h.Workloads())
		if have >= perHost {
			return nil
		}
		if err = h.addWorkloads(ctx, perHost-have, func(j int) map[string]string { return label(have + j) }, "sim"); err == nil {
			return nil
		}
	}
	return err
}

func hostName(h *Host) string {
	if h == nil {
		return "(new)"
	}
	return h.Name
}

// Stop ends every host's sessions (with a Cease) and the emulation.
func (s *Sim) Stop() {
	for _, h := range s.Hosts() {
		s.emu.stop(h)
		h.sp.Stop(true)
	}
}

var errNoHost = errors.New("no such host")
