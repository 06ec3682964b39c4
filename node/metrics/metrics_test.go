package metrics

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"calico/node/api"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/client_golang/prometheus/testutil/promlint"
)

func sample(context.Context) State {
	return State{
		Resync: 3, Ready: true, Programmed: true,
		LocalEndpoints: 3, LocalHostEndpoints: 1, LocalPolicies: 4, LocalSelectors: 2, Routes: 7,
		Table: &Table{Chains: 9, Rules: 27, Sets: 6, Elements: 4},
		Hosts: 3, WorkloadEndpoints: 9, Policies: 2, Profiles: 1, Tiers: 3,
		Rules:       []Rule{{Tier: "default", Kind: "GlobalNetworkPolicy", Policy: "web", Direction: "ingress", Action: "Allow", Index: 0, Packets: 5, Bytes: 300}},
		BGPSessions: map[string]int{"established": 2, "weird": 1}, BGPAdvertised: 1, BGPLearned: 2,
		Members: map[string]int{"alive": 3}, Role: "voter",
		Datastore: Datastore{Known: true, Healthy: true, Revision: 40, Applied: 38, Cached: 38, Members: 3, LastEvent: time.Now()},
		Pools:     []Pool{{Name: "p", CIDR: "10.65.0.0/16", Size: 65536, InUse: 9, Blocks: 1, Counted: true}, {Name: "q", CIDR: "10.66.0.0/16", Size: 65536, Blocks: 2}},
		Problems:  map[string]uint64{"data": 1}, ProblemsReported: map[string]uint64{"data": 2, "other": 1},
		RouteLists: 4, RouteListTime: 10 * time.Millisecond,
	}
}

// TestLint: the exposition passes promtool's lint (the same checks as
// `promtool check metrics`).
func TestLint(t *testing.T) {
	m := New("v-test", sample)
	m.ObservePass(Pass{Took: time.Millisecond, NftSource: "memory", NftChanges: map[string]int{"rules_added": 3}})
	m.ObserveRequest("POST /v1/workloads", 200, "cni", 20*time.Millisecond)
	m.ObserveEtcd("/etcdserverpb.KV/Range", errors.New("x"), time.Millisecond)
	m.LeaderChanged()
	mfs, err := m.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	problems, err := promlint.NewWithMetricFamilies(mfs).Lint()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("lint: %s: %s", p.Metric, p.Text)
	}
}

func TestValues(t *testing.T) {
	m := New("v-test", sample)
	m.ObserveRequest("POST /v1/workloads", 500, "cni", time.Millisecond)
	m.PluginCall("docker", "CreateEndpoint", "ok")
	want := `
# HELP felix_active_local_endpoints Number of active endpoints on this host (workload and host endpoints).
# TYPE felix_active_local_endpoints gauge
felix_active_local_endpoints 4
# HELP calico_plugin_requests_total Requests of the container runtime plugins (cni, docker), by plugin, operation and result (ok or error).
# TYPE calico_plugin_requests_total counter
calico_plugin_requests_total{operation="CreateEndpoint",plugin="docker",result="ok"} 1
calico_plugin_requests_total{operation="POST /v1/workloads",plugin="cni",result="error"} 1
# HELP calico_policy_rule_packets_total Packets a policy or profile rule decided on this host (the first packet of each flow it allows; every packet it denies).
# TYPE calico_policy_rule_packets_total counter
calico_policy_rule_packets_total{action="Allow",direction="ingress",kind="GlobalNetworkPolicy",policy="web",rule="0",tier="default"} 5
# HELP felix_route_table_list_seconds Time in seconds to read the kernel's routes and links (at start, and again every resync period or after a failure; between those the route driver trusts what it programmed).
# TYPE felix_route_table_list_seconds summary
felix_route_table_list_seconds_sum 0.01
felix_route_table_list_seconds_count 4
`
	if err := testutil.GatherAndCompare(m.Registry(), strings.NewReader(want), "felix_active_local_endpoints", "calico_plugin_requests_total", "calico_policy_rule_packets_total", "felix_route_table_list_seconds"); err != nil {
		t.Error(err)
	}
	got, err := testutil.GatherAndCount(m.Registry(), "calico_problems")
	if err != nil || got != 8 { // the seven kinds and "other"
		t.Errorf("calico_problems: %d series (%v), want 8", got, err)
	}
	// Pool q was not counted by this host: its use is not exported
	// (as 0 it would pull a sum or min over hosts down).
	for name, want := range map[string]int{"calico_ipam_pool_addresses": 2, "calico_ipam_blocks": 2, "calico_ipam_addresses_in_use": 1} {
		if got, err := testutil.GatherAndCount(m.Registry(), name); err != nil || got != want {
			t.Errorf("%s: %d series (%v), want %d", name, got, err, want)
		}
	}
}

// TestNilMetrics: the node calls these whether metrics are on or not.
func TestNilMetrics(t *testing.T) {
	var m *Metrics
	m.ObservePass(Pass{})
	m.ObserveRequest("x", 200, "cni", 0)
	m.PluginCall("docker", "x", "ok")
	m.LeaderChanged()
	m.ObserveEtcd("x", nil, 0)
}

func TestHealthHandler(t *testing.T) {
	h := api.Health{Live: true, Ready: false, Reason: "the datastore is not in sync"}
	srv := httptest.NewServer(HealthHandler(func(context.Context) api.Health { return h }))
	defer srv.Close()
	for _, tc := range []struct {
		path string
		code int
		body string
	}{
		{"/liveness", 200, "live\n"},
		{"/readiness", 503, "not ready: the datastore is not in sync\n"},
	} {
		resp, err := http.Get(srv.URL + tc.path)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tc.code || string(b) != tc.body {
			t.Errorf("GET %s: %d %q, want %d %q", tc.path, resp.StatusCode, b, tc.code, tc.body)
		}
	}
}
