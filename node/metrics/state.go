package metrics

import (
	"context"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// State is what the node is at the time of a scrape.
type State struct {
	// Resync is felix_resync_state: 1 waiting for the datastore, 2 a
	// resync is under way (the copy is the state cache of an earlier run,
	// or the datastore does not answer), 3 in sync.
	Resync int
	Ready  bool
	// Programmed: the dataplane was programmed at least once.
	Programmed bool

	// This host's dataplane, as the last pass programmed it.
	LocalEndpoints, LocalHostEndpoints, LocalPolicies, LocalSelectors, Routes int
	// Table is the size of table inet calico; nil when unknown.
	Table *Table

	// The cluster as the node's copy of the datastore holds it.
	Hosts, WorkloadEndpoints, HostEndpoints, Policies, Profiles, Tiers int

	// Rules are the per-rule counters of the policies on this host.
	Rules []Rule
	// RulesDropped counts rules left out past MaxRuleSeries.
	RulesDropped int

	// BGPSessions counts the sessions by state (established, active, …).
	BGPSessions               map[string]int
	BGPAdvertised, BGPLearned int

	// Members counts the hosts gossip knows, by state (alive, dead, left).
	Members map[string]int
	// Role is this node's etcd role: voter, learner or client.
	Role string

	Datastore Datastore
	Pools     []Pool

	// Problems counts the node's problems now, by kind; ProblemsReported
	// those that appeared since the start.
	Problems, ProblemsReported map[string]uint64

	// RouteLists and RouteListTime are how many times the route driver
	// read the kernel's routes, and how long that took in all.
	RouteLists    int64
	RouteListTime time.Duration
}

// Table is the size of the nftables table.
type Table struct{ Chains, Rules, Sets, Elements int }

// Rule is one policy rule's counters on this host.
type Rule struct {
	Tier, Kind, Policy, Direction, Action string
	Index                                 int
	Packets, Bytes                        uint64
}

// MaxRuleSeries bounds the per-rule series of one scrape (each rule gives
// two); the rest are counted in calico_policy_rule_series_dropped.
const MaxRuleSeries = 5000

// Datastore is the datastore as this node saw it last (it looks every
// 5 s).
type Datastore struct {
	// Known: the node has looked at least once.
	Known   bool
	Healthy bool
	// Revision is etcd's; Applied the revision this host's dataplane was
	// last programmed from; Cached the one its copy is at.
	Revision, Applied, Cached int64
	// Lag is how many revisions the newest resource in etcd was ahead of
	// the node's copy when the node last looked.
	Lag     int64
	Members int
	// LastEvent is when the node's copy last changed.
	LastEvent time.Time
}

// Pool is one IP pool's use.
type Pool struct {
	Name, CIDR string
	// Size is the number of addresses in the pool.
	Size float64
	// InUse counts the addresses allocated in the whole cluster, when
	// Counted (by a few hosts only: see PoolCounters); Blocks the
	// blocks affine to this host.
	InUse, Blocks int
	Counted       bool
}

// PoolCounters is how many hosts of a cluster count the addresses in use
// in every pool: counting reads every block of the cluster, which every
// host doing every 30 s would make the datastore's load grow with the
// square of the cluster's size.
const PoolCounters = 3

type collector struct {
	state func(ctx context.Context) State
}

func desc(name, help string, labels ...string) *prometheus.Desc {
	return prometheus.NewDesc(name, help, labels, nil)
}

var (
	dResync     = desc("felix_resync_state", "The node's datastore sync: 1 waiting for the datastore, 2 resync in progress (enforcing a saved state, or the datastore does not answer), 3 in sync.")
	dReady      = desc("calico_ready", "1 when the node is ready (/readiness answers 200): the datastore is in sync and the dataplane programmed.")
	dEndpoints  = desc("felix_active_local_endpoints", "Number of active endpoints on this host (workload and host endpoints).")
	dPolicies   = desc("felix_active_local_policies", "Number of active policy chains on this host (one per policy or profile and direction).")
	dSelectors  = desc("felix_active_local_selectors", "Number of active selectors on this host (each is a named set).")
	dRoutes     = desc("calico_routes", "Routes of protocol 80 this node programmed (its workloads, blackholed blocks and routes learned by BGP).")
	dTable      = desc("calico_nft_table_objects", "Objects in table inet calico, by kind: chains, rules, sets, elements.", "kind")
	dHosts      = desc("felix_cluster_num_hosts", "Total number of Calico hosts in the cluster (Node resources).")
	dWEPs       = desc("felix_cluster_num_workload_endpoints", "Total number of workload endpoints in the cluster.")
	dHEPs       = desc("felix_cluster_num_host_endpoints", "Total number of host endpoints in the cluster.")
	dNumPol     = desc("felix_cluster_num_policies", "Total number of policies in the cluster (global and namespaced).")
	dProfiles   = desc("felix_cluster_num_profiles", "Total number of profiles in the cluster.")
	dTiers      = desc("felix_cluster_num_tiers", "Total number of tiers in the cluster.")
	ruleLabels  = []string{"tier", "kind", "policy", "direction", "rule", "action"}
	dPackets    = desc("calico_policy_rule_packets_total", "Packets a policy or profile rule decided on this host (the first packet of each flow it allows; every packet it denies).", ruleLabels...)
	dBytes      = desc("calico_policy_rule_bytes_total", "Bytes of the packets counted by calico_policy_rule_packets_total.", ruleLabels...)
	dDropped    = desc("calico_policy_rule_series_dropped", "Rules left out of calico_policy_rule_*_total because the host has more than the bound.")
	dSessions   = desc("calico_bgp_sessions", "BGP sessions of this node, by state.", "state")
	dAdvertised = desc("calico_bgp_routes_advertised", "Prefixes this node advertises over BGP.")
	dLearned    = desc("calico_bgp_routes_learned", "Routes learned by BGP that this node installed.")
	dMembers    = desc("calico_cluster_members", "Hosts gossip knows, by state (alive, dead, left).", "state")
	dRole       = desc("calico_etcd_role", "1 for this node's etcd role: voter, learner or client.", "role")
	dDSHealthy  = desc("calico_datastore_healthy", "1 when the datastore had a leader when the node last looked.")
	dDSRev      = desc("calico_datastore_revision", "The datastore's revision when the node last looked.")
	dDSApplied  = desc("calico_dataplane_revision", "The datastore revision this host's dataplane was last programmed from.")
	dDSLag      = desc("calico_datastore_watch_lag_revisions", "How many revisions etcd (all its writes) was ahead of the node's copy of the datastore when the node last looked (every 30 s; 0 when the watch keeps up: it caught up within 2 s).")
	dDSMembers  = desc("calico_datastore_members", "etcd members (voters and learners).")
	dEventAge   = desc("felix_watch_last_event_age_seconds", "Seconds since the node's copy of the datastore last changed.")
	dPoolSize   = desc("calico_ipam_pool_addresses", "Addresses in an IP pool.", "pool", "cidr")
	dPoolUse    = desc("calico_ipam_addresses_in_use", "Addresses allocated in an IP pool, in the whole cluster (read every 30 s by three hosts picked by a hash of their names; take the max over hosts).", "pool", "cidr")
	dPoolBlocks = desc("calico_ipam_blocks", "Address blocks of an IP pool affine to this host.", "pool", "cidr")
	dProblems   = desc("calico_problems", "Problems the node has now (data it cannot use as written, routes that wait or were refused, BGP sessions that do not establish, …), by kind; `calico status` lists them.", "kind")
	dReported   = desc("calico_problems_reported_total", "Problems that appeared since the node started, by kind.", "kind")
	dRouteList  = desc("felix_route_table_list_seconds", "Time in seconds to read the kernel's routes and links (at start, and again every resync period or after a failure; between those the route driver trusts what it programmed).")
)

func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{dResync, dReady, dEndpoints, dPolicies, dSelectors, dRoutes, dTable, dHosts, dWEPs, dHEPs,
		dNumPol, dProfiles, dTiers, dPackets, dBytes, dDropped, dSessions, dAdvertised, dLearned, dMembers, dRole,
		dDSHealthy, dDSRev, dDSApplied, dDSLag, dDSMembers, dEventAge, dPoolSize, dPoolUse, dPoolBlocks, dProblems, dReported, dRouteList} {
		ch <- d
	}
}

func gauge(ch chan<- prometheus.Metric, d *prometheus.Desc, v float64, labels ...string) {
	ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
}

func boolf(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	s := c.state(ctx)
	gauge(ch, dResync, float64(s.Resync))
	gauge(ch, dReady, boolf(s.Ready))
	if s.Programmed {
		gauge(ch, dEndpoints, float64(s.LocalEndpoints+s.LocalHostEndpoints))
		gauge(ch, dPolicies, float64(s.LocalPolicies))
		gauge(ch, dSelectors, float64(s.LocalSelectors))
		gauge(ch, dRoutes, float64(s.Routes))
	}
	if t := s.Table; t != nil {
		gauge(ch, dTable, float64(t.Chains), "chains")
		gauge(ch, dTable, float64(t.Rules), "rules")
		gauge(ch, dTable, float64(t.Sets), "sets")
		gauge(ch, dTable, float64(t.Elements), "elements")
	}
	if s.Resync > 1 {
		gauge(ch, dHosts, float64(s.Hosts))
		gauge(ch, dWEPs, float64(s.WorkloadEndpoints))
		gauge(ch, dHEPs, float64(s.HostEndpoints))
		gauge(ch, dNumPol, float64(s.Policies))
		gauge(ch, dProfiles, float64(s.Profiles))
		gauge(ch, dTiers, float64(s.Tiers))
	}
	if s.Programmed {
		ch <- prometheus.MustNewConstSummary(dRouteList, uint64(s.RouteLists), s.RouteListTime.Seconds(), nil)
	}
	c.collectRules(ch, s)
	c.collectCluster(ch, s)
	for _, k := range problemKinds(s) {
		gauge(ch, dProblems, float64(s.Problems[k]), k)
		ch <- prometheus.MustNewConstMetric(dReported, prometheus.CounterValue, float64(s.ProblemsReported[k]), k)
	}
}

func (c *collector) collectRules(ch chan<- prometheus.Metric, s State) {
	for _, r := range s.Rules {
		l := []string{r.Tier, r.Kind, r.Policy, r.Direction, strconv.Itoa(r.Index), r.Action}
		ch <- prometheus.MustNewConstMetric(dPackets, prometheus.CounterValue, float64(r.Packets), l...)
		ch <- prometheus.MustNewConstMetric(dBytes, prometheus.CounterValue, float64(r.Bytes), l...)
	}
	gauge(ch, dDropped, float64(s.RulesDropped))
}

func (c *collector) collectCluster(ch chan<- prometheus.Metric, s State) {
	for _, st := range []string{"established", "idle", "connect", "active", "opensent", "openconfirm"} {
		gauge(ch, dSessions, float64(s.BGPSessions[st]), st)
	}
	for st, n := range s.BGPSessions {
		switch st {
		case "established", "idle", "connect", "active", "opensent", "openconfirm":
		default:
			gauge(ch, dSessions, float64(n), st)
		}
	}
	gauge(ch, dAdvertised, float64(s.BGPAdvertised))
	gauge(ch, dLearned, float64(s.BGPLearned))
	for _, st := range []string{"alive", "dead", "left"} {
		gauge(ch, dMembers, float64(s.Members[st]), st)
	}
	for _, r := range []string{"voter", "learner", "client"} {
		gauge(ch, dRole, boolf(s.Role == r), r)
	}
	if d := s.Datastore; d.Known {
		gauge(ch, dDSHealthy, boolf(d.Healthy))
		gauge(ch, dDSRev, float64(d.Revision))
		gauge(ch, dDSMembers, float64(d.Members))
		gauge(ch, dDSLag, float64(d.Lag))
	}
	if s.Datastore.Applied > 0 {
		gauge(ch, dDSApplied, float64(s.Datastore.Applied))
	}
	if !s.Datastore.LastEvent.IsZero() {
		gauge(ch, dEventAge, time.Since(s.Datastore.LastEvent).Seconds())
	}
	for _, p := range s.Pools {
		gauge(ch, dPoolSize, p.Size, p.Name, p.CIDR)
		if p.Counted {
			gauge(ch, dPoolUse, float64(p.InUse), p.Name, p.CIDR)
		}
		gauge(ch, dPoolBlocks, float64(p.Blocks), p.Name, p.CIDR)
	}
}

// problemKinds are the kinds always shown (at 0 when there is none), and
// any other the node reported.
func problemKinds(s State) []string {
	kinds := []string{"data", "interface", "route", "bgp", "failsafe", "clock", "disk"}
	for _, m := range []map[string]uint64{s.Problems, s.ProblemsReported} {
		for k := range m {
			if !contains(kinds, k) {
				kinds = append(kinds, k)
			}
		}
	}
	return kinds
}

func contains(ss []string, s string) bool {
	for _, x := range ss {
		if x == s {
			return true
		}
	}
	return false
}
