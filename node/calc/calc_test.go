package calc

import (
	"flag"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"calico/nft"
	"calico/store"
)

var update = flag.Bool("update", false, "rewrite the golden files")

// decode reads resources from YAML into an Input.
func decode(t *testing.T, node, y string) Input {
	t.Helper()
	in := Input{Node: node}
	if strings.TrimSpace(y) == "" {
		return in
	}
	rs, err := store.Decode([]byte(y))
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rs {
		if err := store.Validate(r); err != nil {
			t.Fatal(err)
		}
		in.Add(r)
	}
	return in
}

func wep(node, ns, name, iface string, labels string, profiles string, ips ...string) string {
	return `---
apiVersion: projectcalico.org/v3
kind: WorkloadEndpoint
metadata: {name: ` + node + `-calico-` + name + `-eth0, namespace: ` + ns + `, labels: {` + labels + `}}
spec: {node: ` + node + `, orchestrator: calico, workload: ` + name + `, endpoint: eth0, interfaceName: ` + iface + `, profiles: [` + profiles + `], ipNetworks: [` + strings.Join(ips, ", ") + `]}
`
}

const classic = `---
apiVersion: projectcalico.org/v3
kind: Profile
metadata: {name: a}
spec: {labelsToApply: {a: ''}, ingress: [{action: Allow, source: {selector: has(a)}}], egress: [{action: Allow}]}
---
apiVersion: projectcalico.org/v3
kind: Profile
metadata: {name: b}
spec: {labelsToApply: {b: ''}, ingress: [{action: Allow, source: {selector: has(b)}}], egress: [{action: Allow}]}
`

func TestCompute(t *testing.T) {
	for _, tc := range []struct{ name, yaml string }{
		{"empty", ""},
		{"classic profiles", classic +
			wep("h1", "default", "a1", "cali1", "", "a", "10.65.0.1/32", "'fd00:65::1/128'") +
			wep("h1", "default", "a2", "cali2", "", "a", "10.65.0.2/32") +
			wep("h1", "default", "b1", "cali3", "", "b", "10.65.0.3/32") +
			wep("h2", "default", "a3", "cali9", "", "a", "10.65.1.1/32")},
		{"missing profile", wep("h1", "default", "x", "cali1", "", "nothere", "10.65.0.1/32")},
		{"policies in order", classic + `---
apiVersion: projectcalico.org/v3
kind: GlobalNetworkPolicy
metadata: {name: zz-first}
spec: {order: 10, selector: role == 'db', ingress: [{action: Deny, source: {selector: role == 'bad'}}]}
---
apiVersion: projectcalico.org/v3
kind: GlobalNetworkPolicy
metadata: {name: aa-second}
spec: {order: 100, selector: role == 'db', ingress: [{action: Allow, protocol: TCP, source: {selector: role == 'web'}, destination: {ports: [5432, '6000:6010']}}]}
---
apiVersion: projectcalico.org/v3
kind: GlobalNetworkPolicy
metadata: {name: unordered}
spec: {selector: all(), types: [Egress], egress: [{action: Pass}]}
---
apiVersion: projectcalico.org/v3
kind: NetworkPolicy
metadata: {name: ns-pol, namespace: prod}
spec: {order: 100, selector: role == 'db', ingress: [{action: Allow, source: {selector: role == 'web'}}]}
---
apiVersion: projectcalico.org/v3
kind: FelixConfiguration
metadata: {name: default}
spec: {defaultEndpointToHostAction: Accept}
` +
			wep("h1", "default", "db", "cali1", "role: db", "a", "10.65.0.1/32") +
			wep("h1", "prod", "db", "cali2", "role: db", "a", "10.65.0.2/32") +
			wep("h2", "default", "web", "cali8", "role: web", "a", "10.65.1.1/32") +
			wep("h2", "prod", "web", "cali9", "role: web", "a", "10.65.1.2/32")},
		{"host endpoints", classic + `---
apiVersion: projectcalico.org/v3
kind: HostEndpoint
metadata: {name: h1-all, labels: {host: h1}}
spec: {node: h1, interfaceName: '*'}
---
apiVersion: projectcalico.org/v3
kind: HostEndpoint
metadata: {name: h1-eth1, labels: {host: h1, nic: data}}
spec: {node: h1, interfaceName: eth1, profiles: [a]}
---
apiVersion: projectcalico.org/v3
kind: HostEndpoint
metadata: {name: h2-all, labels: {host: h2}}
spec: {node: h2, interfaceName: '*', expectedIPs: [172.31.1.12]}
---
apiVersion: projectcalico.org/v3
kind: GlobalNetworkPolicy
metadata: {name: host-http}
spec: {selector: has(host), ingress: [{action: Allow, protocol: TCP, source: {selector: has(a)}, destination: {ports: [8080]}}], egress: [{action: Allow, destination: {selector: has(host)}}]}
---
apiVersion: projectcalico.org/v3
kind: GlobalNetworkPolicy
metadata: {name: in-namespaces}
spec: {selector: all(), namespaceSelector: all(), ingress: [{action: Deny}]}
---
apiVersion: projectcalico.org/v3
kind: NetworkPolicy
metadata: {name: everyone, namespace: default}
spec: {selector: all(), ingress: [{action: Deny}]}
---
apiVersion: projectcalico.org/v3
kind: FelixConfiguration
metadata: {name: default}
spec: {failsafeInboundHostPorts: [{protocol: tcp, port: 2222}], failsafeOutboundHostPorts: []}
---
apiVersion: projectcalico.org/v3
kind: FelixConfiguration
metadata: {name: node.h1}
spec: {failsafeInboundHostPorts: [{protocol: TCP, port: 22, net: 172.31.0.0/16}, {protocol: udp, port: 7946}]}
` + wep("h1", "default", "a1", "cali1", "", "a", "10.65.0.1/32")},
		{"nat outgoing", `---
apiVersion: projectcalico.org/v3
kind: IPPool
metadata: {name: nat}
spec: {cidr: 10.65.0.0/16, natOutgoing: true}
---
apiVersion: projectcalico.org/v3
kind: IPPool
metadata: {name: nat6}
spec: {cidr: 'fd00:65::/48', natOutgoing: true, disabled: true}
---
apiVersion: projectcalico.org/v3
kind: IPPool
metadata: {name: routed}
spec: {cidr: 10.66.0.0/16}
`},
		{"no nat outgoing", `---
apiVersion: projectcalico.org/v3
kind: IPPool
metadata: {name: routed}
spec: {cidr: 10.66.0.0/16}
`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := decode(t, "h1", tc.yaml)
			in.HostBlocks = []netip.Prefix{netip.MustParsePrefix("10.65.0.0/26")}
			got := Compute(in)
			if len(got.Problems) > 0 {
				t.Errorf("problems: %v", got.Problems)
			}
			golden := filepath.Join("testdata", strings.ReplaceAll(tc.name, " ", "-")+".golden")
			if *update {
				os.MkdirAll("testdata", 0o755)
				os.WriteFile(golden, []byte(got.String()), 0o644)
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatal(err)
			}
			if got.String() != string(want) {
				t.Errorf("Compute:\n%s\nwant:\n%s", got, want)
			}
			// And the table it compiles to, in nft's syntax.
			tbl, err := nft.Render(got.Ruleset)
			if err != nil {
				t.Fatal(err)
			}
			golden = strings.TrimSuffix(golden, ".golden") + ".nft.golden"
			if *update {
				os.WriteFile(golden, []byte(tbl.String()), 0o644)
			}
			if want, err = os.ReadFile(golden); err != nil {
				t.Fatal(err)
			}
			if tbl.String() != string(want) {
				t.Errorf("the compiled table differs from %s:\n%s", golden, tbl)
			}
			if again := Compute(in); again.String() != got.String() {
				t.Errorf("Compute is not deterministic")
			}
		})
	}
}

// TestClassicSemantics checks the meaning of the classic profile set up
// rather than its rendering: a's set holds a's members on every host and
// nobody else.
func TestClassicSemantics(t *testing.T) {
	in := decode(t, "h1", classic+
		wep("h1", "default", "a1", "cali1", "", "a", "10.65.0.1/32")+
		wep("h1", "default", "b1", "cali3", "", "b", "10.65.0.3/32")+
		wep("h2", "default", "a3", "cali9", "", "a", "10.65.1.1/32"))
	d := Compute(in)
	var a1 nft.Endpoint
	for _, w := range d.Ruleset.Workloads {
		if w.Iface == "cali1" {
			a1 = w
		}
	}
	if len(a1.Ingress.Tiers) != 0 || len(a1.Ingress.Profiles) != 1 || a1.Ingress.Profiles[0] != "pro-a" {
		t.Fatalf("a1 ingress path = %+v; want profile pro-a only", a1.Ingress)
	}
	var pro nft.Policy
	for _, p := range d.Ruleset.Policies {
		if p.Name == "pro-a" {
			pro = p
		}
	}
	set := pro.Ingress[0].Src.Set
	for _, s := range d.Ruleset.Sets {
		if s.Name == set {
			if got := fmt.Sprint(s.Members); got != "[10.65.0.1 10.65.1.1]" {
				t.Errorf("profile a's set = %s; want the a members on both hosts", got)
			}
			return
		}
	}
	t.Fatalf("profile a's rule refers to set %q, which is not in the ruleset", set)
}

func TestBadSelectorIsAProblemNotAFailure(t *testing.T) {
	in := decode(t, "h1", classic+wep("h1", "default", "a1", "cali1", "", "a", "10.65.0.1/32"))
	in.Profiles[0].Spec.Ingress[0].Source.Selector = "has(" // written by something else
	d := Compute(in)
	if len(d.Problems) != 1 || len(d.Ruleset.Workloads) != 1 {
		t.Errorf("problems = %v, workloads = %d; want one problem and the workload still there", d.Problems, len(d.Ruleset.Workloads))
	}
	for _, s := range d.Ruleset.Sets {
		if len(s.Members) != 0 {
			t.Errorf("the set of an unparsable selector has members %v", s.Members)
		}
	}
}

// TestDataValidationWouldRefuse feeds the calculation what validation
// refuses today but the datastore may hold (written by another tool or an
// older version): the table must still render, with the problems
// reported and nothing widened.
func TestDataValidationWouldRefuse(t *testing.T) {
	in := decode(t, "h1", classic+`---
apiVersion: projectcalico.org/v3
kind: GlobalNetworkPolicy
metadata: {name: g}
spec: {selector: all(), namespaceSelector: all(), ingress: [{action: Deny, source: {nets: [10.1.0.0/16]}}, {action: Allow, source: {notNets: [10.2.0.0/16]}}]}
---
apiVersion: projectcalico.org/v3
kind: FelixConfiguration
metadata: {name: default}
spec: {failsafeInboundHostPorts: [{protocol: tcp, port: 22, net: 10.0.0.0/8}, {protocol: tcp, port: 2379, net: 10.0.0.0/8}]}
---
apiVersion: projectcalico.org/v3
kind: HostEndpoint
metadata: {name: eth}
spec: {node: h1, interfaceName: eth0}
---
apiVersion: projectcalico.org/v3
kind: HostEndpoint
metadata: {name: loop}
spec: {node: h1, interfaceName: eth1}
`+wep("h1", "default", "a1", "cali1", "", "a", "10.65.0.1/32"))
	g := in.GlobalPolicies[0]
	g.Spec.Ingress[0].Source.Nets = []string{"::ffff:10.1.0.0/112"} // = 10.1.0.0/16
	g.Spec.Ingress[1].Source.NotNets = []string{"10.2.0.0/33"}      // unusable
	f := in.Felix[0]
	(*f.Spec.FailsafeInboundHostPorts)[0].Net = "::ffff:10.0.0.0/104"
	(*f.Spec.FailsafeInboundHostPorts)[1].Net = "nonsense"
	for _, h := range in.HostEndpoints {
		if h.Metadata.Name == "loop" {
			h.Spec.InterfaceName = "lo"
		}
	}
	d := Compute(in)
	if _, err := nft.Render(d.Ruleset); err != nil {
		t.Fatalf("the table does not render: %v", err)
	}
	if len(d.Problems) != 3 {
		t.Errorf("problems = %q; want the unusable net, the failsafe net and the loopback host endpoint", d.Problems)
	}
	var pol nft.Policy
	for _, p := range d.Ruleset.Policies {
		if p.Name == "gnp-g" {
			pol = p
		}
	}
	if len(pol.Ingress) != 2 || fmt.Sprint(pol.Ingress[0].Src.Nets) != "[10.1.0.0/16]" {
		t.Fatalf("rule 0 = %+v; want the mapped net read as 10.1.0.0/16", pol.Ingress)
	}
	empty := false
	for _, s := range d.Ruleset.Sets {
		empty = empty || (s.Name == pol.Ingress[1].Src.Set && len(s.Members) == 0)
	}
	if !empty {
		t.Errorf("rule 1 with an unusable notNets = %+v; want it to need an address of an empty set", pol.Ingress[1])
	}
	if fs := fmt.Sprint(d.Ruleset.FailsafeIn); fs != "[tcp:10.0.0.0/8:22]" {
		t.Errorf("failsafe in = %s; want the mapped net as IPv4 and the nonsense one left out", fs)
	}
	if len(d.Ruleset.HostEndpoints) != 1 || d.Ruleset.HostEndpoints[0].Iface != "eth0" {
		t.Errorf("host endpoints = %+v; want eth0 alone", d.Ruleset.HostEndpoints)
	}
}
