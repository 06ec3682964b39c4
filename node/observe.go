package node

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"slices"
	"sort"
	"sync/atomic"
	"time"

	"calico/node/agent"
	"calico/node/api"
	"calico/node/calc"
	"calico/node/metrics"
	"calico/node/syscheck"
	"calico/store"
	"calico/store/etcdv3"
	"calico/store/ipam"
)

// observed are the parts the metrics and health endpoints read, once the
// node has started them all.
type observed struct {
	agent   *agent.Agent
	cluster clusterPart
	store   *etcdv3.Store
	ipam    *ipam.IPAM
	name    string
}

// observers are the node's metrics (--metrics-addr) and health endpoints
// (--health-addr): HTTP servers that answer from the start of the node to
// its end, and what they read.
type observers struct {
	metrics *metrics.Metrics // nil without --metrics-addr
	servers []*http.Server
	parts   atomic.Pointer[observed]
	// table is the size of the nftables table after the last pass that
	// knew it.
	table atomic.Pointer[metrics.Table]
	// ds is the datastore's health when the node last looked (every 5 s,
	// with metrics on); leader is the leader it saw then.
	ds     atomic.Pointer[etcdv3.Health]
	leader string
	lag    atomic.Int64
	// pools are the pools' use when the node last looked: a scrape does
	// not wait for etcd.
	pools atomic.Pointer[[]metrics.Pool]
	// stopping is set when the node starts to stop.
	stopping atomic.Bool
	// rules are the per-rule counters as last read from the kernel.
	rules ruleCache
	// notUp is since when each BGP peer has not been established.
	notUp map[string]time.Time
}

// listenObservers opens the metrics and health endpoints the config asks
// for; a port that is taken stops the node's start.
func (n *node) listenObservers() error {
	o := &n.obs
	if addr := n.cfg.MetricsAddr; addr != "" {
		o.metrics = metrics.New(n.cfg.Version, n.metricsState)
		mux := http.NewServeMux()
		mux.Handle("GET /metrics", o.metrics.Handler())
		if err := n.listenHTTP("metrics", addr, mux); err != nil {
			return err
		}
	}
	if addr := n.cfg.HealthAddr; addr != "" {
		if err := n.listenHTTP("health checks", addr, metrics.HealthHandler(n.health)); err != nil {
			return err
		}
	}
	return nil
}

func (n *node) listenHTTP(what, addr string, h http.Handler) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listening for %s on %s: %w", what, addr, err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	n.obs.servers = append(n.obs.servers, srv)
	n.log.Info("serving "+what, "addr", ln.Addr().String())
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			n.log.Warn("serving "+what+" stopped", "err", err)
		}
	}()
	return nil
}

// closeObservers stops the metrics and health endpoints.
func (n *node) closeObservers() {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	for _, s := range n.obs.servers {
		s.Shutdown(ctx)
	}
}

// observePass is the agent's report of one pass, for the metrics.
func (n *node) observePass(a agent.Applied) {
	if r := a.Firewall; r != nil && r.Sized {
		n.obs.table.Store(&metrics.Table{Chains: r.Chains, Rules: r.Rules, Sets: r.Sets, Elements: r.Elements})
	}
	m := n.obs.metrics
	if m == nil {
		return
	}
	p := metrics.Pass{Took: a.Took, Calc: a.CalcTook, Nft: a.NftTook, BGP: a.BGPTook, Routes: a.RoutesTook, Failed: a.Err != nil}
	if r := a.Firewall; r != nil {
		c := r.Changed
		p.NftSource = r.Source
		p.NftChanges = map[string]int{
			"sets_added": c.SetsAdded, "sets_deleted": c.SetsDeleted, "elements_added": c.ElemsAdded, "elements_deleted": c.ElemsDeleted,
			"chains_added": c.ChainsAdded, "chains_deleted": c.ChainsDeleted, "chains_flushed": c.ChainsFlushed, "rules_added": c.RulesAdded,
		}
		if c.Recreated {
			p.NftChanges["tables_recreated"] = 1
		}
	}
	m.ObservePass(p)
}

// health is the node's liveness and readiness: live while the loops the
// watchdog probes answer; ready once the dataplane is programmed and
// while the node's copy of the datastore follows etcd.
func (n *node) health(ctx context.Context) api.Health {
	var h api.Health
	if err := n.svc.check(ctx, 2*time.Second); err != nil {
		h.LiveReason = err.Error()
	} else {
		h.Live = true
	}
	h.Ready, h.Reason = n.readiness()
	return h
}

func (n *node) readiness() (bool, string) {
	o := n.obs.parts.Load()
	switch {
	case n.obs.stopping.Load():
		return false, "the node is stopping"
	case o == nil:
		return false, "the node is starting"
	case !o.agent.IsProgrammed():
		return false, "the dataplane is not programmed yet"
	}
	sync, last := o.agent.Sync(), o.agent.Last()
	switch {
	case sync.FromDisk:
		return false, "the datastore is not read yet: enforcing the state of the last run"
	case !sync.Live && sync.Err != nil:
		return false, "the datastore is not in sync (the node enforces the last state it read): " + sync.Err.Error()
	case !sync.Live:
		return false, "the datastore is not in sync (the node enforces the last state it read)"
	case !last.OwnOK:
		return false, "the last programming of this host's dataplane failed: " + errString(last.Err)
	}
	return true, ""
}

func errString(err error) string {
	if err == nil {
		return "no error"
	}
	return err.Error()
}

// watchLoop looks at the node every 5 s for what no event tells: BGP
// sessions that do not establish (problems), every minute the other
// hosts' clocks (problems), and, with metrics on, the datastore's health
// and leader (every 30 s the watch's lag and the pools' use).
func (n *node) watchLoop(ctx context.Context) {
	t := time.NewTicker(5 * time.Second)
	defer t.Stop()
	for i := 0; ; i++ {
		o := n.obs.parts.Load()
		if o != nil {
			n.bgpProblems(ctx, o)
			if n.obs.metrics != nil {
				n.lookAtDatastore(ctx, o, i%6 == 0)
			}
			if i%12 == 0 {
				clockProblems(ctx, o)
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// bgpGrace is how long a BGP session may stay down before it is a
// problem: a peer that restarts is back well within it.
const bgpGrace = 90 * time.Second

func (n *node) bgpProblems(ctx context.Context, o *observed) {
	pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	peers, err := o.agent.BGPPeers(pctx)
	if err != nil {
		return
	}
	if n.obs.notUp == nil {
		n.obs.notUp = map[string]time.Time{}
	}
	now, seen := time.Now(), map[string]bool{}
	var ps []agent.Problem
	for _, p := range peers {
		key := p.Addr.String()
		if p.State == "established" {
			continue
		}
		seen[key] = true
		since, ok := n.obs.notUp[key]
		if !ok {
			since = now
			n.obs.notUp[key] = now
		}
		if now.Sub(since) >= bgpGrace {
			what := "BGP peer " + key
			if p.Name != "" {
				what += " (node " + p.Name + ")"
			}
			ps = append(ps, agent.Problem{Kind: agent.ProblemBGP, Resource: what,
				Message: fmt.Sprintf("the session has not been established for over %s; calico status shows its state", bgpGrace)})
		}
	}
	for k := range n.obs.notUp {
		if !seen[k] {
			delete(n.obs.notUp, k)
		}
	}
	o.agent.SetProblems("bgp", ps)
}

// lookAtDatastore records the datastore's health and counts leader
// changes; more (every 30 s) also measures the watch's lag and the
// pools' use (which reads every IPAM block on PoolCounters hosts only).
func (n *node) lookAtDatastore(ctx context.Context, o *observed, more bool) {
	hctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	h := o.store.Health(hctx)
	if more {
		if lag, ok := watchLag(hctx, o, h.Revision); ok {
			n.obs.lag.Store(lag)
		}
		if pools, err := poolUse(ctx, o); err == nil {
			n.obs.pools.Store(&pools)
		}
	}
	if h.Leader != "" {
		if n.obs.leader != "" && h.Leader != n.obs.leader {
			n.obs.metrics.LeaderChanged()
		}
		n.obs.leader = h.Leader
	}
	n.obs.ds.Store(&h)
}

// metricsState is what the metrics read at a scrape.
func (n *node) metricsState(ctx context.Context) metrics.State {
	s := metrics.State{Resync: 1}
	o := n.obs.parts.Load()
	if o == nil {
		return s
	}
	a := o.agent
	sync, last := a.Sync(), a.Last()
	switch {
	case sync.Live:
		s.Resync = 3
	case sync.Revision > 0:
		s.Resync = 2
	}
	s.Ready, _ = n.readiness()
	s.Programmed = !last.At.IsZero()
	s.LocalEndpoints, s.LocalHostEndpoints, s.LocalPolicies, s.LocalSelectors, s.Routes = last.Endpoints, last.HostEndpoints, last.Policies, last.Sets, last.Routes
	s.Table = n.obs.table.Load()
	if n.routes != nil {
		s.RouteLists, s.RouteListTime = n.routes.Lists()
	}
	if in, _, ok := a.View(); ok {
		s.Hosts, s.WorkloadEndpoints, s.HostEndpoints = len(in.Nodes), len(in.Workloads), len(in.HostEndpoints)
		s.Policies, s.Profiles, s.Tiers = len(in.GlobalPolicies)+len(in.Policies), len(in.Profiles), len(in.Tiers)
		s.Rules, s.RulesDropped = n.obs.rules.get(ctx, a, in)
	}
	n.clusterState(ctx, o, &s)
	s.Datastore.Cached, s.Datastore.Applied, s.Datastore.LastEvent = sync.Revision, a.Applied(), sync.Changed
	if h := n.obs.ds.Load(); h != nil {
		s.Datastore.Known, s.Datastore.Healthy, s.Datastore.Revision, s.Datastore.Members = true, h.Healthy, h.Revision, h.Members
		s.Datastore.Lag = n.obs.lag.Load()
	}
	if p := n.obs.pools.Load(); p != nil {
		s.Pools = *p
	}
	s.Problems = map[string]uint64{}
	for _, p := range a.Problems() {
		s.Problems[p.Kind]++
	}
	if o.cluster.DiskFull() != "" {
		s.Problems[agent.ProblemDisk]++
	}
	s.ProblemsReported = a.ProblemsReported()
	return s
}

// clusterState fills in BGP and gossip.
func (n *node) clusterState(ctx context.Context, o *observed, s *metrics.State) {
	pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	s.BGPSessions = map[string]int{}
	if peers, err := o.agent.BGPPeers(pctx); err == nil {
		for _, p := range peers {
			s.BGPSessions[p.State]++
		}
	}
	adv, inst := o.agent.BGPRoutes()
	s.BGPAdvertised, s.BGPLearned = len(adv), len(inst)
	s.Members = map[string]int{}
	for _, m := range o.cluster.GossipMembers() {
		s.Members[m.State]++
	}
	s.Role = o.cluster.Role()
}

// watchLag is how many revisions etcd (all its writes, not only the
// resources') is ahead of the node's copy of the datastore: it asks the
// watch for progress (etcdv3.Store.RequestProgress) and gives the copy up
// to 2 s to reach rev, etcd's revision just read. It costs the same at
// any size of cluster (reading the newest resource's revision did not:
// etcd sorts every key to answer that, and every host asked).
func watchLag(ctx context.Context, o *observed, rev int64) (int64, bool) {
	if rev == 0 || !o.agent.Sync().Live {
		return 0, false
	}
	if err := o.store.RequestProgress(ctx); err != nil {
		return 0, false
	}
	wait := time.NewTimer(2 * time.Second)
	defer wait.Stop()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		at := o.agent.Sync().Revision
		if at >= rev {
			return 0, true
		}
		select {
		case <-ctx.Done():
			return 0, false
		case <-wait.C:
			return rev - at, true
		case <-tick.C:
		}
	}
}

// poolUse reads each pool's use from the datastore.
func poolUse(ctx context.Context, o *observed) ([]metrics.Pool, error) {
	pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	pools, err := etcdv3.ListOf[*store.IPPool](pctx, o.store, "")
	if err != nil {
		return nil, err
	}
	blocks, _ := o.ipam.HostBlocks(pctx, o.name)
	count := countsPools(o)
	var out []metrics.Pool
	for _, p := range pools {
		cidr, err := store.ParseCIDR(p.Spec.CIDR)
		if err != nil {
			continue
		}
		mp := metrics.Pool{Name: p.Metadata.Name, CIDR: cidr.String(), Counted: count}
		if count {
			if mp.InUse, err = o.ipam.InUse(pctx, cidr); err != nil {
				return nil, err
			}
		}
		mp.Size = float64(uint64(1) << min(cidr.Addr().BitLen()-cidr.Bits(), 63))
		for _, b := range blocks {
			if cidr.Overlaps(b) {
				mp.Blocks++
			}
		}
		out = append(out, mp)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// countsPools says whether this host is one of the metrics.PoolCounters
// that count the pools' addresses in use, picked among the live members
// by a hash of their names: every host that sees the same members picks
// the same ones, and a host that dies hands its turn on.
func countsPools(o *observed) bool {
	names := []string{o.name}
	for _, m := range o.cluster.GossipMembers() {
		if m.State == "alive" && m.Name != o.name {
			names = append(names, m.Name)
		}
	}
	return slices.Contains(calc.PickByHash(names, metrics.PoolCounters), o.name)
}

// logSystemChecks runs `calico checksystem`'s checks (but the ports,
// which the node takes) and logs what is not OK, as warnings.
func (n *node) logSystemChecks(ctx context.Context) {
	for _, r := range n.parts.checkSystem(ctx, n.cfg.DataDir) {
		if r.Status != syscheck.OK && !r.Optional {
			n.log.Warn("checksystem: "+r.Check+": "+r.Detail, "status", string(r.Status))
		}
	}
}

// maxSkew is how far apart two hosts' clocks may be before it is a
// problem: the estimate is good to about a second.
const maxSkew = 3 * time.Second

// clockProblems compares the clocks of the live hosts with this one's.
func clockProblems(ctx context.Context, o *observed) {
	var ps []agent.Problem
	for _, m := range o.cluster.GossipMembers() {
		if m.Name == o.name || m.State != "alive" {
			continue
		}
		sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		skew, err := o.cluster.ClockSkew(sctx, m)
		cancel()
		if err != nil || skew.Abs() <= maxSkew {
			continue
		}
		way := "ahead of"
		if skew < 0 {
			way = "behind"
		}
		ps = append(ps, agent.Problem{Kind: agent.ProblemClock, Resource: "node " + m.Name,
			Message: fmt.Sprintf("its clock is more than %s %s this host's: etcd and the cluster's certificates need clocks that agree; run an NTP client on every host", maxSkew, way)})
	}
	o.agent.SetProblems("clock", ps)
}
