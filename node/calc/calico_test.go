package calc

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"calico/store"
)

func tierDoc(name, spec string) string {
	return "---\napiVersion: projectcalico.org/v3\nkind: Tier\nmetadata: {name: " + name + "}\nspec: {" + spec + "}\n"
}

func gns(name, labels, nets string) string {
	return "---\napiVersion: projectcalico.org/v3\nkind: GlobalNetworkSet\nmetadata: {name: " + name + ", labels: {" + labels + "}}\nspec: {nets: [" + nets + "]}\n"
}

// TestCalicoSemantics traces packets through what Calico users rely on:
// tiers, network sets, global(), named ports, host-only policies, and
// data the node must enforce fail-closed.
func TestCalicoSemantics(t *testing.T) {
	dbWithPorts := strings.Replace(webDB, "ipNetworks: [10.65.1.1/32", "ports: [{name: pg, protocol: TCP, port: 5432}], ipNetworks: [10.65.1.1/32", 1)
	for _, tc := range []struct {
		name, yaml string
		pkt        Packet
		// broken adds a problem (field: message) to the named policy, as
		// the datastore reports data it cannot use.
		broken, brokenField string
		ingress, steps      string
		problem             string // a reported problem contains it
	}{
		{
			name: "a Pass goes on to the next tier, whose policy allows",
			yaml: webDB + tierDoc("sec", "order: 100") +
				gnp("sec-pass", "tier: sec, selector: role == 'db', ingress: [{action: Pass, source: {selector: role == 'web'}}]") +
				gnp("allow-web", "order: 1, selector: role == 'db', ingress: [{action: Allow, source: {selector: role == 'web'}}]"),
			pkt: tcp(5432), ingress: "allowed by rule 0 of GlobalNetworkPolicy allow-web",
			steps: "GlobalNetworkPolicy sec-pass=pass[p0]; GlobalNetworkPolicy allow-web=allow[a0]; Profile b=not reached[]",
		},
		{
			name: "tier order beats policy order",
			yaml: webDB + tierDoc("sec", "order: 100") +
				gnp("sec-deny", "tier: sec, order: 1000, selector: role == 'db', ingress: [{action: Deny}]") +
				gnp("allow-web", "order: 1, selector: role == 'db', ingress: [{action: Allow}]"),
			pkt: tcp(5432), ingress: "denied by rule 0 of GlobalNetworkPolicy sec-deny",
		},
		{
			name: "end of a Deny tier drops what no policy passed",
			yaml: webDB + tierDoc("sec", "order: 100") +
				gnp("sec-ops", "tier: sec, selector: role == 'db', ingress: [{action: Pass, source: {selector: role == 'ops'}}]") +
				gnp("allow-web", "selector: role == 'db', ingress: [{action: Allow}]"),
			pkt: tcp(5432), ingress: "denied: no policy allowed or passed (end of tier sec)",
		},
		{
			name: "a Pass tier goes on",
			yaml: webDB + tierDoc("sec", "order: 100, defaultAction: Pass") +
				gnp("sec-ops", "tier: sec, selector: role == 'db', ingress: [{action: Deny, source: {selector: role == 'ops'}}]") +
				gnp("allow-web", "selector: role == 'db', ingress: [{action: Allow}]"),
			pkt: tcp(5432), ingress: "allowed by rule 0 of GlobalNetworkPolicy allow-web",
		},
		{
			name: "a tier that does not exist comes last and drops at its end",
			yaml: webDB + gnp("ghost-allow", "tier: ghost, selector: role == 'db', ingress: [{action: Allow}]") +
				gnp("deny-web", "selector: role == 'db', ingress: [{action: Deny, source: {selector: role == 'web'}}]"),
			pkt: tcp(5432), ingress: "denied by rule 0 of GlobalNetworkPolicy deny-web", problem: `Tier "ghost" does not exist`,
		},
		{
			name: "a GlobalNetworkSet denies its nets",
			yaml: webDB + gns("blocklist", "list: bad", "10.65.0.0/24") +
				gnp("blocklist", "order: 1, selector: all(), ingress: [{action: Deny, source: {selector: list == 'bad'}}, {action: Allow}]"),
			pkt: tcp(5432), ingress: "denied by rule 0 of GlobalNetworkPolicy blocklist",
		},
		{
			name: "a network set not holding the source does not deny",
			yaml: webDB + gns("blocklist", "list: bad", "192.0.2.0/24, 10.65.0.2") +
				gnp("blocklist", "order: 1, selector: all(), ingress: [{action: Deny, source: {selector: list == 'bad'}}, {action: Allow}]"),
			pkt: tcp(5432), ingress: "allowed by rule 1 of GlobalNetworkPolicy blocklist",
		},
		{
			name: "global() picks no namespaced workload",
			yaml: webDB + gnp("from-global", "selector: role == 'db', ingress: [{action: Allow, source: {namespaceSelector: global()}}]"),
			pkt:  tcp(5432), ingress: "denied: no policy allowed or passed (end of tier default)",
		},
		{
			name: "a named port is the port the endpoint gives it",
			yaml: dbWithPorts + gnp("pg", "selector: role == 'db', ingress: [{action: Allow, protocol: TCP, destination: {ports: [pg]}}]"),
			pkt:  tcp(5432), ingress: "allowed by rule 0 of GlobalNetworkPolicy pg",
		},
		{
			name: "a named port is not another port",
			yaml: dbWithPorts + gnp("pg", "selector: role == 'db', ingress: [{action: Allow, destination: {ports: [pg]}}]"),
			pkt:  tcp(80), ingress: "denied: no policy allowed or passed (end of tier default)",
		},
		{
			name: "numeric and named ports in one list: either matches",
			yaml: dbWithPorts + gnp("mixed", "selector: role == 'db', ingress: [{action: Allow, protocol: TCP, destination: {ports: [pg, 80]}}]"),
			pkt:  tcp(80), ingress: "allowed by rule 0 of GlobalNetworkPolicy mixed",
		},
		{
			name: "numeric and named ports in one list: the named one",
			yaml: dbWithPorts + gnp("mixed", "selector: role == 'db', ingress: [{action: Allow, protocol: TCP, destination: {ports: [pg, 80]}}]"),
			pkt:  tcp(5432), ingress: "allowed by rule 0 of GlobalNetworkPolicy mixed",
		},
		{
			name: "numeric and named ports in one list: neither",
			yaml: dbWithPorts + gnp("mixed", "selector: role == 'db', ingress: [{action: Allow, protocol: TCP, destination: {ports: [pg, 80]}}]"),
			pkt:  tcp(443), ingress: "denied: no policy allowed or passed (end of tier default)",
		},
		{
			name: "doNotTrack and preDNAT policies never apply to workloads",
			yaml: webDB + gnp("raw", "doNotTrack: true, applyOnForward: true, selector: all(), ingress: [{action: Allow}]") +
				gnp("pre", "preDNAT: true, applyOnForward: true, selector: all(), ingress: [{action: Allow}]"),
			pkt: tcp(5432), ingress: "denied: no profile allowed",
		},
		{
			name:   "a broken notSelector in an Allow matches nothing",
			yaml:   webDB + gnp("allow", "selector: role == 'db', ingress: [{action: Allow, source: {notSelector: role == 'ops'}}]"),
			broken: "allow", brokenField: "spec.ingress[0].source.notSelector",
			pkt: tcp(5432), ingress: "denied: no policy allowed or passed (end of tier default)", problem: "the rule matches nothing",
		},
		{
			name:   "an unsupported serviceAccounts in a Deny denies without it",
			yaml:   webDB + gnp("deny", "selector: role == 'db', ingress: [{action: Deny, source: {selector: role == 'web'}}, {action: Allow}]"),
			broken: "deny", brokenField: "spec.ingress[0].source.serviceAccounts",
			pkt: tcp(5432), ingress: "denied by rule 0 of GlobalNetworkPolicy deny", problem: "the rule denies without source.serviceAccounts",
		},
		{
			name:   "a broken net in a Deny denies without nets",
			yaml:   webDB + gnp("deny", "selector: role == 'db', ingress: [{action: Deny, source: {nets: [192.0.2.0/24]}}, {action: Allow}]"),
			broken: "deny", brokenField: "spec.ingress[0].source.nets[0]",
			pkt: tcp(5432), ingress: "denied by rule 0 of GlobalNetworkPolicy deny", problem: "the rule denies without source.nets",
		},
		{
			name:   "a policy with a problem outside its rules denies what it selects",
			yaml:   webDB + gnp("allow", "selector: role == 'db', ingress: [{action: Allow}]"),
			broken: "allow", brokenField: "spec.serviceAccountSelector",
			pkt: tcp(5432), ingress: "denied by rule 0 of GlobalNetworkPolicy allow", problem: "it denies everything it selects",
		},
		{
			name: "a policy that cannot be read denies everything, first",
			yaml: webDB + tierDoc("sec", "order: 1") + gnp("allow", "tier: sec, selector: role == 'db', ingress: [{action: Allow}]") +
				gnp("unreadable", "selector: role == 'nothing'"),
			broken: "unreadable", brokenField: "",
			pkt: tcp(5432), ingress: "denied by rule 0 of GlobalNetworkPolicy unreadable", problem: "cannot be read",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := decode(t, "h1", tc.yaml)
			if tc.broken != "" {
				for _, g := range in.GlobalPolicies {
					if g.Metadata.Name == tc.broken {
						g.Metadata.Problems = append(g.Metadata.Problems, store.FieldError{Field: tc.brokenField, Msg: "cannot be used"})
					}
				}
			}
			r, err := Trace(in, findWorkload(t, in, "default/web"), findWorkload(t, in, "default/db"), tc.pkt)
			if err != nil {
				t.Fatal(err)
			}
			if r.Ingress.Reason != tc.ingress {
				t.Errorf("ingress: %q\nwant     %q\nsteps: %s\nproblems: %q", r.Ingress.Reason, tc.ingress, outcomes(r.Ingress), r.Problems)
			}
			if tc.steps != "" && outcomes(r.Ingress) != tc.steps {
				t.Errorf("ingress steps:\n %s\nwant\n %s", outcomes(r.Ingress), tc.steps)
			}
			d := Compute(in)
			if err := d.Ruleset.Validate(); err != nil && !strings.Contains(err.Error(), "not rendered yet") {
				t.Errorf("the ruleset does not validate: %v", err)
			}
			found := tc.problem == "" && len(r.Problems) == 0
			for _, p := range r.Problems {
				found = found || tc.problem != "" && strings.Contains(p, tc.problem)
			}
			if !found {
				t.Errorf("problems %q; want one containing %q", d.Problems, tc.problem)
			}
		})
	}
}

// TestUnenforceableEndpointsDrop: a workload endpoint with a problem, and
// two that claim one address, get empty paths.
func TestUnenforceableEndpointsDrop(t *testing.T) {
	in := decode(t, "h1", classic+
		wep("h1", "default", "a1", "cali1", "", "a", "10.65.0.1/32")+
		wep("h1", "default", "a2", "cali2", "", "a", "10.65.0.2/32")+
		wep("h1", "default", "a3", "cali3", "", "a", "10.65.0.2/32")+
		wep("h1", "default", "a4", "cali4", "", "a", "10.65.0.4/32"))
	in.Workloads[0].Metadata.Problems = []store.FieldError{{Field: "spec.ipNATs", Msg: "is not supported here"}}
	d := Compute(in)
	open := map[string]bool{}
	for _, w := range d.Ruleset.Workloads {
		open[w.Iface] = len(w.Ingress.Names())+len(w.Egress.Names()) > 0
	}
	if fmt.Sprint(open) != "map[cali1:false cali2:false cali3:false cali4:true]" {
		t.Errorf("interfaces with a policy: %v; want cali4 alone", open)
	}
	if len(d.Problems) != 3 {
		t.Errorf("problems = %q; want the unsupported field (as data, and what the node does), and the address conflict", d.Problems)
	}
}

// TestAddressOfAnotherHost: an endpoint of this host and one of another
// host that claim one address (one was written past IPAM) cannot both be
// right: this host's drops everything, and the conflict is reported.
func TestAddressOfAnotherHost(t *testing.T) {
	in := decode(t, "h1", classic+
		wep("h1", "default", "mine", "cali1", "", "a", "10.65.0.1/32")+
		wep("h1", "default", "other", "cali2", "", "a", "10.65.0.2/32")+
		wep("h2", "default", "theirs", "cali1", "", "a", "10.65.0.1/32"))
	d := Compute(in)
	for _, w := range d.Ruleset.Workloads {
		open := len(w.Ingress.Names())+len(w.Egress.Names()) > 0
		if (w.Iface == "cali1") == (open || len(w.Addrs) > 0) {
			t.Errorf("%s: addresses %v, open %v; want cali1 closed and without addresses, cali2 open", w.Iface, w.Addrs, open)
		}
	}
	for _, r := range d.Routes {
		if r.Dst.Addr() == netip.MustParseAddr("10.65.0.1") {
			t.Errorf("routes %v to the address in conflict", r)
		}
	}
	if len(d.Problems) != 1 || !strings.Contains(d.Problems[0], "h2-calico-theirs") || !strings.Contains(d.Problems[0], "address 10.65.0.1") {
		t.Errorf("problems = %q; want the conflict with h2's endpoint", d.Problems)
	}
}

// TestHostEndpointStages: host endpoints found by expectedIPs, and the
// policies of each stage.
func TestHostEndpointStages(t *testing.T) {
	in := decode(t, "h1", `---
apiVersion: projectcalico.org/v3
kind: HostEndpoint
metadata: {name: by-ip, labels: {role: edge}}
spec: {node: h1, expectedIPs: [192.0.2.10]}
---
apiVersion: projectcalico.org/v3
kind: HostEndpoint
metadata: {name: nowhere, labels: {role: edge}}
spec: {node: h1, expectedIPs: [198.51.100.1]}
`+gnp("normal", "selector: role == 'edge', ingress: [{action: Allow}]")+
		gnp("fwd", "applyOnForward: true, selector: role == 'edge', ingress: [{action: Allow}]")+
		gnp("pre", "preDNAT: true, applyOnForward: true, selector: role == 'edge', ingress: [{action: Deny}]")+
		gnp("raw", "doNotTrack: true, applyOnForward: true, selector: role == 'edge', ingress: [{action: Allow}], egress: [{action: Allow}]"))
	in.HostInterfaces = map[string][]netip.Addr{"eth0": {netip.MustParseAddr("192.0.2.10")}, "eth1": {netip.MustParseAddr("192.0.2.11")}}
	d := Compute(in)
	if len(d.Ruleset.HostEndpoints) != 1 || d.Ruleset.HostEndpoints[0].Iface != "eth0" {
		t.Fatalf("host endpoints = %+v; want by-ip on eth0", d.Ruleset.HostEndpoints)
	}
	h := d.Ruleset.HostEndpoints[0]
	for _, c := range []struct {
		stage string
		got   []string
		want  []string
	}{
		{"ingress", h.Ingress.Names(), []string{"gnp-fwd", "gnp-normal"}},
		{"forward ingress", h.ForwardIngress.Names(), []string{"gnp-fwd"}},
		{"pre-DNAT", h.PreDNAT.Names(), []string{"gnp-pre"}},
		{"untracked ingress", h.UntrackedIngress.Names(), []string{"gnp-raw"}},
		{"untracked egress", h.UntrackedEgress.Names(), []string{"gnp-raw"}},
	} {
		if !slices.Equal(c.got, c.want) {
			t.Errorf("%s policies = %v; want %v", c.stage, c.got, c.want)
		}
	}
	if len(h.PreDNAT.Tiers) != 1 || !h.PreDNAT.Tiers[0].DefaultPass {
		t.Errorf("pre-DNAT tiers = %+v; want one that passes at its end", h.PreDNAT.Tiers)
	}
	if !slices.ContainsFunc(d.Problems, func(p string) bool {
		return strings.Contains(p, "HostEndpoint nowhere: no interface of this host has any of its expectedIPs")
	}) {
		t.Errorf("problems = %q; want the host endpoint that matches no interface", d.Problems)
	}
}

// TestGlobalSelectsOnlyTheUnnamespaced: a rule's namespaceSelector
// global() holds host endpoints' expected addresses and global network
// sets' nets, never a namespaced endpoint's or network set's.
func TestGlobalSelectsOnlyTheUnnamespaced(t *testing.T) {
	in := decode(t, "h1", webDB+gns("g", "kind: x", "192.0.2.0/24")+`---
apiVersion: projectcalico.org/v3
kind: NetworkSet
metadata: {name: n, namespace: default, labels: {kind: x}}
spec: {nets: [198.51.100.0/24]}
---
apiVersion: projectcalico.org/v3
kind: HostEndpoint
metadata: {name: h, labels: {kind: x}}
spec: {node: h9, interfaceName: eth0, expectedIPs: [203.0.113.1]}
`+gnp("from-global", "selector: role == 'db', ingress: [{action: Allow, source: {namespaceSelector: global(), selector: kind == 'x'}}]")+
		gnp("from-all", "selector: role == 'db', ingress: [{action: Allow, source: {selector: kind == 'x'}}]"))
	in.Node = "h2"
	d := Compute(in)
	sets := map[string]string{}
	for _, p := range d.Ruleset.Policies {
		if len(p.Ingress) == 1 {
			sets[p.Name] = p.Ingress[0].Src.Set
		}
	}
	for _, s := range d.Ruleset.Sets {
		got := fmt.Sprint(s.Members, s.Nets)
		switch s.Name {
		case sets["gnp-from-global"]:
			if got != "[203.0.113.1] [192.0.2.0/24]" {
				t.Errorf("global() set = %s; want the host endpoint and the global network set", got)
			}
		case sets["gnp-from-all"]:
			if !strings.Contains(got, "198.51.100.0/24") || !strings.Contains(got, "203.0.113.1") {
				t.Errorf("all-namespaces set = %s; want all three", got)
			}
		}
	}
}
