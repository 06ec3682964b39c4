package cli

import (
	"encoding/json"
	"log/slog"
	"strings"
	"testing"

	"calico/internal/testutil"
	"calico/node/agent"
	"calico/node/agent/agenttest"
	"calico/node/api"
	"calico/node/localapi"
	"calico/store"
	"calico/store/etcdv3"
	"calico/store/ipam"
)

// startNode serves a node's API on dir's socket, with an agent on fake
// drivers, until the test ends; it returns once the agent has seen rs.
func startNode(t *testing.T, dir string, rs ...store.Resource) {
	t.Helper()
	cli := testutil.StartEtcd(t)
	s, im := etcdv3.New(cli), ipam.New(cli)
	if err := etcdv3.EnsureInitialized(t.Context(), s); err != nil {
		t.Fatal(err)
	}
	a, _, _ := agenttest.Run(t, t.TempDir(), agent.FromStore(s, im))
	srv := &localapi.Server{Info: localapi.Info{Name: agenttest.Node, DataDir: dir}, Store: s, IPAM: im, Agent: a,
		Log: slog.New(slog.NewTextHandler(t.Output(), nil))}
	if err := srv.Listen(); err != nil {
		t.Fatal(err)
	}
	go srv.Serve()
	t.Cleanup(func() { srv.Shutdown() })
	for _, r := range rs {
		if err := s.Create(t.Context(), r); err != nil {
			t.Fatal(err)
		}
	}
	if len(rs) > 0 {
		agenttest.WaitApplied(t, a, rs[len(rs)-1])
	}
}

func testWorkload(ns, name, ip string, labels map[string]string, profiles ...string) *store.WorkloadEndpoint {
	w := store.KindWorkloadEndpoint.New().(*store.WorkloadEndpoint)
	w.Metadata.Name, w.Metadata.Namespace, w.Metadata.Labels = store.WorkloadEndpointName("n1", "calico", name, "eth0"), ns, labels
	w.Spec = store.WorkloadEndpointSpec{Node: "n1", Orchestrator: "calico", Workload: name, Endpoint: "eth0",
		InterfaceName: "cali" + name, IPNetworks: []string{ip + "/32"}, Profiles: profiles}
	return w
}

func TestPolicyTraceCommand(t *testing.T) {
	dir := t.TempDir()
	deny := store.KindGlobalNetworkPolicy.New().(*store.GlobalNetworkPolicy)
	deny.Metadata.Name = "deny-db"
	order := 10.0
	tcp, _ := store.ParseProtocol("TCP")
	deny.Spec = store.GlobalNetworkPolicySpec{Order: &order, Selector: "role == 'db'", Types: []string{"Ingress"}, Ingress: []store.Rule{
		{Action: "Log"},
		{Action: "Deny", Protocol: &tcp, Source: store.EntityRule{Selector: "has(web)"}, Destination: store.EntityRule{Ports: []store.Port{{First: 5432, Last: 5432}}}},
	}}
	startNode(t, dir, store.ClassicProfile("web"), store.ClassicProfile("db"), deny,
		testWorkload("default", "web1", "10.65.0.1", nil, "web"),
		testWorkload("prod", "db1", "10.65.0.2", map[string]string{"role": "db"}, "db", "web"))

	code, out, errs := run("policy", "trace", "--from", "web1", "--to", "prod/db1", "--port", "5432", "--data-dir", dir)
	if code != 0 {
		t.Fatalf("policy trace: exit %d, %s", code, errs)
	}
	for _, want := range []string{
		"TCP 10.65.0.1 -> 10.65.0.2 port 5432 (IPv4, the first packet of a new flow)",
		"egress of default/web1 (node n1): allowed by rule 0 of Profile web",
		"ingress of prod/db1 (node n1): denied by rule 1 of GlobalNetworkPolicy deny-db",
		"logged, continues",
		"deny               1 Deny  TCP from selector (has(web)) to ports 5432\n",
		"2  Profile db                   not reached        -\n",
		"not reached",
		"denied at the ingress of prod/db1 by rule 1 of GlobalNetworkPolicy deny-db",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("policy trace output lacks %q:\n%s", want, out)
		}
	}

	for _, l := range strings.Split(out, "\n") {
		if strings.HasSuffix(l, " ") {
			t.Errorf("trailing spaces in %q", l)
		}
	}

	code, out, errs = run("policy", "trace", "--from", "web1", "--to", "db1", "--to-namespace", "prod", "--port", "80", "-o", "json", "--data-dir", dir)
	var tr api.Trace
	if code != 0 || json.Unmarshal([]byte(out), &tr) != nil {
		t.Fatalf("policy trace -o json: exit %d, %s%s", code, out, errs)
	}
	// Port 80 passes the Deny, but a policy applied and none allowed: the
	// profiles are not reached.
	if tr.Allowed || tr.Ingress.Reason != "denied: no policy allowed or passed (end of tier default)" || len(tr.Ingress.Steps) != 3 ||
		tr.Ingress.Steps[0].Outcome != "no rule matched" || tr.Ingress.Steps[2].Outcome != "not reached" {
		t.Errorf("trace to port 80 = %+v", tr)
	}

	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"--from", "web1", "--to", "db1", "--port", "80"}, 3, "workload db1 does not exist in namespace default (found in namespace prod)"},
		{[]string{"--from", "ghost", "--to", "prod/db1", "--port", "80"}, 3, "workload ghost does not exist in namespace default"},
		{[]string{"--from", "web1", "--to", "prod/db1", "-p", "icmpv6"}, 2, "default/web1 has no IPv6 address (it has 10.65.0.1)"},
		{[]string{"--from", "web1", "--to", "prod/db1"}, 2, "TCP needs --port"},
		{[]string{"--to", "prod/db1", "--port", "1"}, 2, "policy trace needs --from NAME"},
		{[]string{"--from", "web1", "--to", "prod/db1", "-p", "icmp", "--port", "1"}, 2, "ICMP has no ports"},
		{[]string{"--from", "web1", "--to", "prod/db1", "--to-namespace", "dev", "--port", "1"}, 2, "--to prod/db1 and --to-namespace dev disagree"},
		{[]string{"--from", "web1", "--to", "db1", "extra"}, 2, "takes no arguments"},
	} {
		code, _, errs := run(append(append([]string{"policy", "trace"}, tc.args...), "--data-dir", dir)...)
		if code != tc.code || !strings.Contains(errs, tc.want) || strings.Count(strings.TrimSpace(errs), "\n") > 0 {
			t.Errorf("calico policy trace %s: exit %d, stderr %q; want exit %d and one line containing %q", strings.Join(tc.args, " "), code, errs, tc.code, tc.want)
		}
	}
}
