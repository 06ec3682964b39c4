package localapi

import (
	"fmt"
	"net/http/httptest"
	"strings"
	"testing"

	"calico/node/agent"
	"calico/node/agent/agenttest"
	"calico/node/api"
	"calico/store"
)

// TestPolicyTraceOverHTTP traces between workloads the agent has seen,
// through the handler and the client the CLI uses.
func TestPolicyTraceOverHTTP(t *testing.T) {
	srv, s, _ := newServer(t)
	ctx := t.Context()
	if _, err := srv.applyData(ctx, []byte(`apiVersion: projectcalico.org/v3
kind: GlobalNetworkPolicy
metadata: {name: db}
spec:
  order: 10
  selector: role == 'db'
  ingress:
  - {action: Log}
  - {action: Allow, protocol: TCP, destination: {ports: [5432]}}
  - {action: Deny, protocol: TCP}
`), "apply"); err != nil {
		t.Fatal(err)
	}
	if err := s.Create(ctx, store.ClassicProfile("a")); err != nil {
		t.Fatal(err)
	}
	web, db := agenttest.Workload("web", "cali1", "10.65.0.1"), agenttest.Workload("db", "cali2", "10.65.0.2")
	db.Metadata.Labels = map[string]string{"role": "db"}
	if err := s.Create(ctx, web); err != nil {
		t.Fatal(err)
	}
	if err := s.Create(ctx, db); err != nil {
		t.Fatal(err)
	}
	agenttest.WaitApplied(t, srv.Agent.(*agent.Agent), db)

	hs := httptest.NewServer(srv.Handler())
	defer hs.Close()
	c := api.NewClient("unused")
	c.SetBaseURL(hs.URL, hs.Client())
	trace := func(req api.TraceRequest) (api.Trace, error) {
		var out api.Trace
		err := c.Do(ctx, "POST", "/v1/policy/trace", nil, req, &out)
		return out, err
	}
	port := func(p int) *int { return &p }

	tr, err := trace(api.TraceRequest{From: api.WorkloadRef{Name: "web"}, To: api.WorkloadRef{Name: "db"}, Port: port(5432)})
	if err != nil {
		t.Fatal(err)
	}
	if !tr.Allowed || tr.Source.String() != "10.65.0.1" || tr.Destination.String() != "10.65.0.2" || tr.Protocol != "TCP" || !tr.Live {
		t.Errorf("trace to 5432 = %+v; want allowed, TCP 10.65.0.1 -> 10.65.0.2, live", tr)
	}
	if tr.Ingress.Reason != "allowed by rule 1 of GlobalNetworkPolicy db" || tr.Egress.Reason != "allowed by rule 0 of Profile a" {
		t.Errorf("reasons: egress %q, ingress %q", tr.Egress.Reason, tr.Ingress.Reason)
	}
	if st := tr.Ingress.Steps; len(st) != 2 || len(st[0].Rules) != 2 || st[0].Rules[0].Action != "Log" || st[1].Outcome != "not reached" {
		t.Errorf("ingress steps = %+v; want the policy (Log then Allow), then profile a not reached", st)
	}

	tr, err = trace(api.TraceRequest{From: api.WorkloadRef{Name: "web"}, To: api.WorkloadRef{Namespace: "default", Name: "db"}, Protocol: "tcp", Port: port(22)})
	if err != nil || tr.Allowed || tr.Reason != "denied at the ingress of default/db by rule 2 of GlobalNetworkPolicy db" {
		t.Errorf("trace to 22 = %v %q, %v", tr.Allowed, tr.Reason, err)
	}

	tr, err = trace(api.TraceRequest{From: api.WorkloadRef{Name: "web"}, To: api.WorkloadRef{Name: "db"}, Protocol: "icmp"})
	if err != nil || tr.Allowed || tr.Ingress.Reason != "denied: no policy allowed or passed (end of tier default)" || tr.ICMPType == nil || *tr.ICMPType != 8 {
		t.Errorf("ping = %+v, %v; want an echo request denied at the end of policies", tr, err)
	}

	for _, tc := range []struct {
		req  api.TraceRequest
		want string
	}{
		{api.TraceRequest{From: api.WorkloadRef{Name: "web"}, To: api.WorkloadRef{Name: "nothere"}, Port: port(80)}, "workload nothere does not exist in namespace default"},
		{api.TraceRequest{From: api.WorkloadRef{Name: "web", Namespace: "prod"}, To: api.WorkloadRef{Name: "db"}, Port: port(80)}, "workload web does not exist in namespace prod (found in namespace default)"},
		{api.TraceRequest{From: api.WorkloadRef{Name: "web"}, To: api.WorkloadRef{Name: "db"}}, "TCP needs --port"},
		{api.TraceRequest{From: api.WorkloadRef{Name: "web"}, To: api.WorkloadRef{Name: "db"}, Protocol: "icmp", Port: port(80)}, "ICMP has no ports"},
		{api.TraceRequest{From: api.WorkloadRef{Name: "web"}, To: api.WorkloadRef{Name: "db"}, Protocol: "icmpv6"}, "default/web has no IPv6 address"},
	} {
		if _, err := trace(tc.req); err == nil || err.Error() != tc.want && !strings.HasPrefix(err.Error(), tc.want) {
			t.Errorf("trace %+v = %v; want %q", tc.req, err, tc.want)
		}
	}
}

func TestTracePacket(t *testing.T) {
	n := func(v int) *int { return &v }
	for _, tc := range []struct {
		req  api.TraceRequest
		want string // the packet, or the error
	}{
		{api.TraceRequest{Port: n(5432)}, "{IPVersion:0 Protocol:6 SrcPort:0 DstPort:5432 ICMPType:0 ICMPCode:0}"},
		{api.TraceRequest{Protocol: "UDP", Port: n(53), SourcePort: n(5353), IPVersion: 6}, "{IPVersion:6 Protocol:17 SrcPort:5353 DstPort:53 ICMPType:0 ICMPCode:0}"},
		{api.TraceRequest{Protocol: "icmp"}, "{IPVersion:0 Protocol:1 SrcPort:0 DstPort:0 ICMPType:8 ICMPCode:0}"},
		{api.TraceRequest{Protocol: "ICMPv6", ICMPType: n(135)}, "{IPVersion:0 Protocol:58 SrcPort:0 DstPort:0 ICMPType:135 ICMPCode:0}"},
		{api.TraceRequest{Protocol: "icmp", ICMPType: n(3), ICMPCode: n(4)}, "{IPVersion:0 Protocol:1 SrcPort:0 DstPort:0 ICMPType:3 ICMPCode:4}"},
		{api.TraceRequest{Protocol: "47"}, "{IPVersion:0 Protocol:47 SrcPort:0 DstPort:0 ICMPType:0 ICMPCode:0}"},
		{api.TraceRequest{Protocol: "132", Port: n(9)}, "{IPVersion:0 Protocol:132 SrcPort:0 DstPort:9 ICMPType:0 ICMPCode:0}"},
		{api.TraceRequest{Protocol: "gre"}, `--protocol: "gre" is not a protocol`},
		{api.TraceRequest{Protocol: "udp"}, "UDP needs --port"},
		{api.TraceRequest{Port: n(0)}, "--port 0 is not a port (1-65535)"},
		{api.TraceRequest{Port: n(70000)}, "--port 70000 is not a port"},
		{api.TraceRequest{Protocol: "47", Port: n(1)}, "47 has no ports"},
		{api.TraceRequest{Protocol: "icmp", SourcePort: n(1)}, "ICMP has no ports"},
		{api.TraceRequest{Port: n(1), ICMPType: n(8)}, "--icmp-type and --icmp-code go with ICMP and ICMPv6, not TCP"},
		{api.TraceRequest{Protocol: "icmp", ICMPCode: n(1)}, "--icmp-code needs --icmp-type"},
		{api.TraceRequest{Protocol: "icmp", ICMPType: n(256)}, "--icmp-type 256 is not 0-255"},
		{api.TraceRequest{Port: n(1), IPVersion: 5}, "--ip-version 5 is not 4 or 6"},
	} {
		pkt, _, err := TracePacket(tc.req)
		got := ""
		if err != nil {
			got = err.Error()
		} else {
			got = fmt.Sprintf("%+v", pkt)
		}
		if !strings.HasPrefix(got, tc.want) {
			t.Errorf("TracePacket(%+v) = %s; want %s", tc.req, got, tc.want)
		}
	}
}
