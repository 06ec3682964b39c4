package sim

import (
	"context"
	"crypto/rand"
	"crypto/sha1"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"net"
	"net/netip"
	"slices"
	"sync"
	"time"

	"calico/node/calc"
	"calico/store"
	"calico/store/etcdv3"
	"calico/store/ipam"
)

// Host is one simulated host.
type Host struct {
	Name string
	Addr netip.Addr
	sim  *Sim
	sp   *Speaker

	mu        sync.Mutex
	workloads map[string]*store.WorkloadEndpoint // by workload name
	blocks    []netip.Prefix
	seq       int
	dead      bool
	// adding counts the workload adds under way: leave waits for them,
	// so that none writes an endpoint or takes a block after the host
	// has released its blocks.
	adding sync.WaitGroup
	// peers and meshed are what the last reconcile made of the topology.
	peers      []netip.Addr
	reflectors []string
	meshed     bool
}

// Namespace is where the simulated workloads are.
const Namespace = "sim"

var errNoWorkload = errors.New("no workload")

// register writes the host's Node, as a node registers itself.
func (h *Host) register(ctx context.Context) error {
	return etcdv3.RegisterNode(ctx, h.sim.cfg.Store, h.Name, netip.PrefixFrom(h.Addr, h.sim.cfg.Subnet.Bits()), netip.Prefix{}, nil)
}

// AddWorkload adds a workload as the node's workload service does (its
// reads and writes; nothing in the kernel): the pools that apply to the
// node, the profile (made if missing), an IPv4 address from IPAM, the
// WorkloadEndpoint, then the host's blocks are read again. It returns the
// endpoint as written (with its revision).
func (h *Host) AddWorkload(ctx context.Context, labels map[string]string, profile string) (*store.WorkloadEndpoint, error) {
	w, _, err := h.addWorkload(ctx, labels, profile)
	return w, err
}

// addWorkload is AddWorkload that also says when the endpoint's write
// started.
func (h *Host) addWorkload(ctx context.Context, labels map[string]string, profile string) (*store.WorkloadEndpoint, time.Time, error) {
	s := h.sim.cfg.Store
	h.mu.Lock()
	if h.dead {
		h.mu.Unlock()
		return nil, time.Time{}, fmt.Errorf("%s is dead or leaving", h.Name)
	}
	h.seq++
	name := fmt.Sprintf("w%d", h.seq)
	h.adding.Add(1)
	defer h.adding.Done()
	h.mu.Unlock()
	epName := store.WorkloadEndpointName(h.Name, "calico", name, "eth0")
	if _, err := etcdv3.GetOf[*store.WorkloadEndpoint](ctx, s, Namespace, epName); !errors.Is(err, store.ErrNotFound) {
		return nil, time.Time{}, fmt.Errorf("workload %s on %s: %v", name, h.Name, err)
	}
	pools, err := h.pools(ctx)
	if err != nil {
		return nil, time.Time{}, err
	}
	if err := ensureProfile(ctx, s, profile); err != nil {
		return nil, time.Time{}, err
	}
	cid := randomHex(8)
	handle := "calico." + cid
	addr, err := h.sim.cfg.IPAM.AutoAssign(ctx, handle, h.Name, pools, map[string]string{"node": h.Name, "namespace": Namespace, "workload": name})
	if err != nil {
		return nil, time.Time{}, err
	}
	w := h.endpoint(name, cid, labels, profile, addr)
	written := time.Now()
	if err := s.Create(ctx, w); err != nil {
		h.sim.cfg.IPAM.ReleaseByHandle(context.WithoutCancel(ctx), handle)
		return nil, time.Time{}, err
	}
	blocks, err := h.sim.cfg.IPAM.HostBlocks(ctx, h.Name)
	h.mu.Lock()
	h.workloads[name] = w
	if err == nil {
		h.blocks = blocks
	}
	h.mu.Unlock()
	h.reconcile()
	return w, written, nil
}

// addWorkloads adds n workloads at once, for growing the simulation
// fast: the same addresses (one AutoAssign each) and endpoints as
// AddWorkload's, without the workload service's checks before each (the
// pools and the profile are read once) and with the endpoints written
// together (store.ApplyAll, one transaction).
func (h *Host) addWorkloads(ctx context.Context, n int, label func(i int) map[string]string, profile string) error {
	s := h.sim.cfg.Store
	pools, err := h.pools(ctx)
	if err != nil {
		return err
	}
	if err := ensureProfile(ctx, s, profile); err != nil {
		return err
	}
	var ws []*store.WorkloadEndpoint
	for i := range n {
		h.mu.Lock()
		h.seq++
		name := fmt.Sprintf("w%d", h.seq)
		h.mu.Unlock()
		cid := randomHex(8)
		addr, err := h.sim.cfg.IPAM.AutoAssign(ctx, "calico."+cid, h.Name, pools, map[string]string{"node": h.Name, "namespace": Namespace, "workload": name})
		if err != nil {
			return err
		}
		ws = append(ws, h.endpoint(name, cid, label(i), profile, addr))
	}
	// The host's blocks before its endpoints: a reconcile (any Node's
	// change runs one on every host) that saw endpoints outside the
	// blocks it knows would advertise each as a borrowed /32 and withdraw
	// it when the blocks came, a burst the reflectors send to every
	// client: O(N) updates per workload added, O(N³) to grow to N hosts
	// (most of what growing to 1,000 cost before). A real node's watch
	// has the block (written by its IPAM) before the endpoint.
	blocks, err := h.sim.cfg.IPAM.HostBlocks(ctx, h.Name)
	if err != nil {
		return err
	}
	h.mu.Lock()
	h.blocks = blocks
	h.mu.Unlock()
	// A batch reads each of its resources first, all within the store's
	// timeout: small batches finish on a loaded machine, and each one
	// done counts, so that trying again writes only what is missing.
	for chunk := range slices.Chunk(ws, growBatch) {
		rs := make([]store.Resource, len(chunk))
		for i, w := range chunk {
			rs[i] = w
		}
		if _, err := s.ApplyAll(ctx, rs, true); err != nil {
			return err
		}
		h.mu.Lock()
		for _, w := range chunk {
			h.workloads[w.Spec.Workload] = w
		}
		h.mu.Unlock()
	}
	h.reconcile()
	return nil
}

// growBatch is how many endpoints addWorkloads writes in one transaction.
const growBatch = 25

// endpoint is a workload's WorkloadEndpoint, as node/workload makes it.
func (h *Host) endpoint(name, cid string, labels map[string]string, profile string, addr netip.Addr) *store.WorkloadEndpoint {
	w := store.KindWorkloadEndpoint.New().(*store.WorkloadEndpoint)
	w.Metadata.Name, w.Metadata.Namespace, w.Metadata.Labels = store.WorkloadEndpointName(h.Name, "calico", name, "eth0"), Namespace, maps.Clone(labels)
	w.Spec = store.WorkloadEndpointSpec{
		Orchestrator: "calico", Workload: name, Node: h.Name, ContainerID: cid, Endpoint: "eth0",
		Profiles: []string{profile}, InterfaceName: hostIface(Namespace, name),
		IPNetworks: []string{netip.PrefixFrom(addr, 32).String()}, MAC: randomMAC(),
	}
	return w
}

// pools are the IPv4 pools automatic assignment takes for this host
// (ipam.PoolsFor over the pools and the Node's labels).
func (h *Host) pools(ctx context.Context) ([]ipam.Pool, error) {
	all, err := etcdv3.ListOf[*store.IPPool](ctx, h.sim.cfg.Store, "")
	if err != nil {
		return nil, err
	}
	var labels map[string]string
	if n, err := etcdv3.GetOf[*store.Node](ctx, h.sim.cfg.Store, "", h.Name); err == nil {
		labels = n.Metadata.Labels
	}
	ps, _ := ipam.PoolsFor(all, labels)
	ps = slices.DeleteFunc(ps, func(p ipam.Pool) bool { return !p.CIDR.Addr().Is4() })
	if len(ps) == 0 {
		return nil, errors.New("no IPv4 pool applies to the simulated hosts")
	}
	return ps, nil
}

// RemoveWorkload removes a workload as the workload service does: the
// endpoint, then its addresses.
func (h *Host) RemoveWorkload(ctx context.Context, name string) error {
	h.mu.Lock()
	w := h.workloads[name]
	h.mu.Unlock()
	if w == nil {
		return fmt.Errorf("%w %s on %s", errNoWorkload, name, h.Name)
	}
	s := h.sim.cfg.Store
	if _, err := etcdv3.GetOf[*store.WorkloadEndpoint](ctx, s, Namespace, w.Metadata.Name); err != nil {
		return err
	}
	if _, err := s.Delete(ctx, store.IDOf(w), ""); err != nil && !errors.Is(err, store.ErrNotFound) {
		return err
	}
	if _, err := h.sim.cfg.IPAM.ReleaseByHandle(ctx, "calico."+w.Spec.ContainerID); err != nil {
		return err
	}
	h.mu.Lock()
	delete(h.workloads, name)
	h.mu.Unlock()
	h.reconcile()
	return nil
}

// Workloads are the names of the host's workloads.
func (h *Host) Workloads() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Sorted(maps.Keys(h.workloads))
}

// leave takes the host out as `calico leave --force` does: its workloads
// removed, then (as `calico node rm` would too) its blocks released and
// its Node deleted; its sessions end with a Cease.
func (h *Host) leave(ctx context.Context) error {
	h.mu.Lock()
	h.dead = true // no more changes from the churn
	h.mu.Unlock()
	h.adding.Wait()
	for _, name := range h.Workloads() {
		if err := h.RemoveWorkload(ctx, name); err != nil && !errors.Is(err, errNoWorkload) {
			return err
		}
	}
	if err := h.sim.cfg.IPAM.ReleaseHost(ctx, h.Name); err != nil {
		return err
	}
	if _, err := h.sim.cfg.Store.Delete(ctx, store.ID{Kind: store.KindNode, Name: h.Name}, ""); err != nil && !errors.Is(err, store.ErrNotFound) {
		return err
	}
	h.sp.Stop(true)
	return nil
}

// die ends the host's sessions without a word (a host killed or cut
// off); what it wrote stays in the datastore.
func (h *Host) die() {
	h.mu.Lock()
	h.dead = true
	h.mu.Unlock()
	h.sp.Stop(false)
}

// revive brings a dead host's sessions back.
func (h *Host) revive() {
	h.mu.Lock()
	h.dead = false
	h.peers = nil
	h.mu.Unlock()
	h.reconcile()
}

// reconcile makes the host's sessions and advertisements what the
// calculation says for it, as a node's agent does: calc.ComputeBGP over
// the nodes, BGP settings and pools, its own workloads and blocks. Only
// sessions to nodes that are not simulated are kept: between simulated
// hosts they would carry nothing the real nodes see.
func (h *Host) reconcile() {
	r := h.sim.routing()
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.dead || r == nil {
		return
	}
	in := calc.Input{Node: h.Name, Nodes: r.nodes, BGPPeers: r.peers, BGPConfigs: r.configs, Pools: r.pools,
		HostBlocks: h.blocks, Voters: r.voters}
	for _, w := range h.workloads {
		in.Workloads = append(in.Workloads, w)
	}
	out := calc.ComputeBGP(in)
	var peers []netip.Addr
	for _, p := range out.Peers {
		if p.Addr.Is4() && !h.sim.isSimulated(p.Addr) {
			peers = append(peers, p.Addr)
		}
	}
	h.reflectors, h.meshed = out.Reflectors, out.Meshed
	if out.Enabled && !slices.Equal(peers, h.peers) {
		h.sp.SetPeers(peers)
		h.peers = peers
	}
	h.sp.SetAdvertised(out.Advertise)
}

func ensureProfile(ctx context.Context, s *etcdv3.Store, name string) error {
	_, err := etcdv3.GetOf[*store.Profile](ctx, s, "", name)
	if !errors.Is(err, store.ErrNotFound) {
		return err
	}
	if err := s.Create(ctx, store.ClassicProfile(name)); err != nil && !errors.Is(err, store.ErrExists) {
		return err
	}
	return nil
}

// hostIface is the host side's name, as node/workload names a CLI
// workload's.
func hostIface(ns, name string) string {
	sum := sha1.Sum([]byte(ns + "." + name))
	return "cali" + hex.EncodeToString(sum[:])[:11]
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

func randomMAC() string {
	b := make([]byte, 6)
	rand.Read(b)
	b[0] = b[0]&0xfe | 0x02 // unicast, locally administered
	return net.HardwareAddr(b).String()
}

// timed runs f and returns how long it took.
func timed(f func() error) (time.Duration, error) {
	start := time.Now()
	err := f()
	return time.Since(start), err
}
