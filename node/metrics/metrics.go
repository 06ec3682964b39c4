// Package metrics owns the node's Prometheus metrics (a private registry:
// embedded etcd and GoBGP register theirs elsewhere) and its health
// endpoints. Metrics that Felix has with the same meaning carry Felix's
// name and type, so that Calico dashboards work; the rest are calico_*.
// It knows nothing of the node's parts: the node observes events into
// Metrics and hands it a State to read at each scrape.
package metrics

import (
	"context"
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Metrics are the node's metrics.
type Metrics struct {
	reg *prometheus.Registry

	applyTime     prometheus.Summary
	failures      prometheus.Counter
	calcTime      prometheus.Histogram
	nftTime       prometheus.Histogram
	nftChanges    *prometheus.CounterVec
	nftTxns       *prometheus.CounterVec
	bgpTime       prometheus.Histogram
	routeTime     prometheus.Histogram
	apiTime       *prometheus.HistogramVec
	pluginCalls   *prometheus.CounterVec
	leaderChanges prometheus.Counter
	etcdTime      *prometheus.HistogramVec
}

// latency buckets, from 100 µs to 10 s.
var buckets = []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}

// New makes the node's metrics; state is read at every scrape (it may be
// nil in tests). version goes into calico_build_info.
func New(version string, state func(ctx context.Context) State) *Metrics {
	m := &Metrics{reg: prometheus.NewRegistry()}
	m.applyTime = prometheus.NewSummary(prometheus.SummaryOpts{
		Name:       "felix_int_dataplane_apply_time_seconds",
		Help:       "Time in seconds for each programming pass of the dataplane (calculation, nftables, BGP and routes).",
		Objectives: map[float64]float64{0.5: 0.05, 0.9: 0.01, 0.99: 0.001},
	})
	m.failures = prometheus.NewCounter(prometheus.CounterOpts{
		// Felix's felix_int_dataplane_failures; promtool wants counters
		// to end in _total.
		Name: "calico_dataplane_failures_total",
		Help: "Number of times programming the dataplane failed (it is retried with back-off).",
	})
	hist := func(name, help string) prometheus.Histogram {
		return prometheus.NewHistogram(prometheus.HistogramOpts{Name: name, Help: help, Buckets: buckets})
	}
	m.calcTime = hist("calico_calc_time_seconds", "Time in seconds to calculate the dataplane from the datastore's state, per pass.")
	m.nftTime = hist("calico_nft_apply_seconds", "Time in seconds of one nftables Apply: read or recall the table, diff, one transaction.")
	m.bgpTime = hist("calico_bgp_update_seconds", "Time in seconds to hand the BGP speaker its peers and prefixes and read its routes, per pass.")
	m.routeTime = hist("calico_route_apply_seconds", "Time in seconds to make the kernel's routes of protocol 80 match, per pass.")
	m.nftChanges = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "calico_nft_changes_total",
		Help: "Changes sent to the kernel in nftables transactions, by kind (sets_added, elements_added, rules_added, …).",
	}, []string{"change"})
	m.nftTxns = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "calico_nft_transactions_total",
		Help: "nftables Applies, by where the driver learned the table's state (memory, memory+events, read-back, recreate) and whether it changed anything.",
	}, []string{"source", "changed"})
	m.apiTime = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "calico_api_request_duration_seconds",
		Help:    "Time in seconds to answer a request of the node's local API, by route and status code (route=\"POST /v1/workloads\" is adding a workload, from any front end).",
		Buckets: buckets,
	}, []string{"route", "code"})
	m.pluginCalls = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "calico_plugin_requests_total",
		Help: "Requests of the container runtime plugins (cni, docker), by plugin, operation and result (ok or error).",
	}, []string{"plugin", "operation", "result"})
	m.leaderChanges = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "calico_datastore_leader_changes_total",
		Help: "Changes of the etcd leader this node observed (it looks every 5 s).",
	})
	m.etcdTime = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "calico_datastore_request_duration_seconds",
		Help:    "Time in seconds of this node's unary etcd requests, by gRPC method and result (ok or error).",
		Buckets: buckets,
	}, []string{"method", "result"})
	m.reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		m.applyTime, m.failures, m.calcTime, m.nftTime, m.bgpTime, m.routeTime, m.nftChanges, m.nftTxns,
		m.apiTime, m.pluginCalls, m.leaderChanges, m.etcdTime,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "calico_build_info", Help: "Always 1; the version of the calico binary.", ConstLabels: prometheus.Labels{"version": version},
		}, func() float64 { return 1 }),
	)
	if state != nil {
		m.reg.MustRegister(&collector{state: state})
	}
	return m
}

// Registry is the metrics' registry (for tests).
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// Handler serves the metrics in Prometheus's text format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg, Timeout: 10 * time.Second})
}

// Pass is what one programming pass of the dataplane did.
type Pass struct {
	Took, Calc, Nft, BGP, Routes time.Duration
	Failed                       bool
	// NftSource and NftChanges are the nftables driver's report, when it
	// gave one: where it learned the table's state and what it changed.
	NftSource  string
	NftChanges map[string]int
}

// ObservePass records one programming pass.
func (m *Metrics) ObservePass(p Pass) {
	if m == nil {
		return
	}
	m.applyTime.Observe(p.Took.Seconds())
	if p.Failed {
		m.failures.Inc()
	}
	m.calcTime.Observe(p.Calc.Seconds())
	m.nftTime.Observe(p.Nft.Seconds())
	m.bgpTime.Observe(p.BGP.Seconds())
	m.routeTime.Observe(p.Routes.Seconds())
	if p.NftSource == "" {
		return
	}
	changed := false
	for k, v := range p.NftChanges {
		if v > 0 {
			m.nftChanges.WithLabelValues(k).Add(float64(v))
			changed = true
		}
	}
	m.nftTxns.WithLabelValues(p.NftSource, strconv.FormatBool(changed)).Inc()
}

// ObserveRequest records one request of the local API; plugin is the
// front end that sent it ("cni", or "" for the CLI and others).
func (m *Metrics) ObserveRequest(route string, code int, plugin string, took time.Duration) {
	if m == nil {
		return
	}
	m.apiTime.WithLabelValues(route, strconv.Itoa(code)).Observe(took.Seconds())
	if plugin != "" {
		result := "ok"
		if code >= 300 {
			result = "error"
		}
		m.PluginCall(plugin, route, result)
	}
}

// PluginCall counts one request of a container runtime's plugin: the CNI
// plugin's come through the local API (ObserveRequest); the Docker
// plugin, served by the node itself, calls this.
func (m *Metrics) PluginCall(plugin, operation, result string) {
	if m == nil {
		return
	}
	m.pluginCalls.WithLabelValues(plugin, operation, result).Inc()
}

// LeaderChanged counts a change of the etcd leader.
func (m *Metrics) LeaderChanged() {
	if m != nil {
		m.leaderChanges.Inc()
	}
}

// ObserveEtcd records one etcd request.
func (m *Metrics) ObserveEtcd(method string, err error, took time.Duration) {
	if m == nil {
		return
	}
	result := "ok"
	if err != nil {
		result = "error"
	}
	m.etcdTime.WithLabelValues(method, result).Observe(took.Seconds())
}
