package calc

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"

	"calico/nft"
	"calico/store"
)

// gnp and np write a GlobalNetworkPolicy and a NetworkPolicy with the
// given spec (flow-style YAML without the braces).
func gnp(name, spec string) string {
	return "---\napiVersion: projectcalico.org/v3\nkind: GlobalNetworkPolicy\nmetadata: {name: " + name + "}\nspec: {" + spec + "}\n"
}

func np(ns, name, spec string) string {
	return "---\napiVersion: projectcalico.org/v3\nkind: NetworkPolicy\nmetadata: {name: " + name + ", namespace: " + ns + "}\nspec: {" + spec + "}\n"
}

// The workloads of most cases: web (profile a) on h1 and db (profile b)
// on h2, both dual-stack, in namespace default.
var webDB = classic +
	wep("h1", "default", "web", "cali1", "role: web", "a", "10.65.0.1/32", "'fd00:65::1/128'") +
	wep("h2", "default", "db", "cali2", "role: db", "b", "10.65.1.1/32", "'fd00:65:1::1/128'")

func tcp(port uint16) Packet { return Packet{Protocol: 6, DstPort: port} }

// findWorkload is the endpoint of workload ns/name.
func findWorkload(t *testing.T, in Input, ref string) *store.WorkloadEndpoint {
	t.Helper()
	ns, name, _ := strings.Cut(ref, "/")
	for _, w := range in.Workloads {
		if w.Metadata.Namespace == ns && w.Spec.Workload == name {
			return w
		}
	}
	t.Fatalf("no workload %s", ref)
	return nil
}

// outcomes lists a path's steps as "ref=outcome[rule indexes]".
func outcomes(p PathTrace) string {
	var out []string
	for _, s := range p.Steps {
		hits := ""
		for _, h := range s.Rules {
			hits += fmt.Sprintf("%s%d", strings.ToLower(h.Action[:1]), h.Index)
		}
		out = append(out, s.Ref()+"="+string(s.Outcome)+"["+hits+"]")
	}
	return strings.Join(out, "; ")
}

func TestTrace(t *testing.T) {
	const profileEgress = "allowed by rule 0 of Profile a"
	for _, tc := range []struct {
		name, yaml, from, to string
		pkt                  Packet
		egress, ingress      string // the reasons
		steps                string // the ingress steps, when given
		src, dst             string // the addresses, when given
	}{
		{
			name: "no policies: profiles decide",
			yaml: webDB, from: "default/web", to: "default/db", pkt: tcp(5432),
			egress: profileEgress, ingress: "denied: no profile allowed",
			steps: "Profile b=no rule matched[]", src: "10.65.0.1", dst: "10.65.1.1",
		},
		{
			name: "same profile: allowed by its rule",
			yaml: webDB + wep("h2", "default", "web2", "cali3", "", "a", "10.65.1.2/32"), from: "default/web", to: "default/web2", pkt: tcp(80),
			egress: profileEgress, ingress: "allowed by rule 0 of Profile a",
		},
		{
			name: "allow by selector",
			yaml: webDB + gnp("db-from-web", "order: 10, selector: role == 'db', ingress: [{action: Allow, protocol: UDP}, {action: Allow, protocol: TCP, source: {selector: role == 'web'}, destination: {ports: [5432]}}]"),
			from: "default/web", to: "default/db", pkt: tcp(5432),
			egress: profileEgress, ingress: "allowed by rule 1 of GlobalNetworkPolicy db-from-web",
			steps: "GlobalNetworkPolicy db-from-web=allow[a1]; Profile b=not reached[]",
		},
		{
			name: "selector does not pick the source: end of policies",
			yaml: webDB + wep("h1", "default", "other", "cali4", "role: other", "a", "10.65.0.9/32") +
				gnp("db-from-web", "order: 10, selector: role == 'db', ingress: [{action: Allow, protocol: TCP, source: {selector: role == 'web'}}]"),
			from: "default/other", to: "default/db", pkt: tcp(5432),
			egress: profileEgress, ingress: "denied: no policy allowed or passed (end of tier default)",
			steps: "GlobalNetworkPolicy db-from-web=no rule matched[]; Profile b=not reached[]",
		},
		{
			name: "wrong port: end of policies",
			yaml: webDB + gnp("db-from-web", "order: 10, selector: role == 'db', ingress: [{action: Allow, protocol: TCP, source: {selector: role == 'web'}, destination: {ports: [5432]}}]"),
			from: "default/web", to: "default/db", pkt: tcp(5433),
			egress: profileEgress, ingress: "denied: no policy allowed or passed (end of tier default)",
		},
		{
			name: "deny before allow by order, not by name",
			yaml: webDB +
				gnp("aa-allow", "order: 100, selector: role == 'db', ingress: [{action: Allow}]") +
				gnp("zz-deny", "order: 10, selector: role == 'db', ingress: [{action: Deny, protocol: UDP}, {action: Deny, source: {selector: role == 'web'}}]"),
			from: "default/web", to: "default/db", pkt: tcp(5432),
			egress: profileEgress, ingress: "denied by rule 1 of GlobalNetworkPolicy zz-deny",
			steps: "GlobalNetworkPolicy zz-deny=deny[d1]; GlobalNetworkPolicy aa-allow=not reached[]; Profile b=not reached[]",
		},
		{
			name: "allow first when its order is lower",
			yaml: webDB +
				gnp("aa-allow", "order: 1, selector: role == 'db', ingress: [{action: Allow}]") +
				gnp("zz-deny", "order: 10, selector: role == 'db', ingress: [{action: Deny}]"),
			from: "default/web", to: "default/db", pkt: tcp(5432),
			egress: profileEgress, ingress: "allowed by rule 0 of GlobalNetworkPolicy aa-allow",
		},
		{
			name: "pass skips to the profiles, which allow",
			yaml: webDB + wep("h2", "default", "db2", "cali3", "role: db", "a", "10.65.1.2/32") +
				gnp("pass", "order: 1, selector: role == 'db', ingress: [{action: Pass}]") +
				gnp("deny", "order: 2, selector: role == 'db', ingress: [{action: Deny}]"),
			from: "default/web", to: "default/db2", pkt: tcp(5432),
			egress: profileEgress, ingress: "allowed by rule 0 of Profile a",
			steps: "GlobalNetworkPolicy pass=pass[p0]; GlobalNetworkPolicy deny=skipped (an earlier policy passed)[]; Profile a=allow[a0]",
		},
		{
			name: "pass skips to the profiles, which do not allow",
			yaml: webDB + gnp("pass", "order: 1, selector: role == 'db', ingress: [{action: Pass}]"),
			from: "default/web", to: "default/db", pkt: tcp(5432),
			egress: profileEgress, ingress: "denied: no profile allowed",
		},
		{
			name: "port range",
			yaml: webDB + gnp("range", "selector: role == 'db', ingress: [{action: Allow, protocol: TCP, destination: {ports: [5432, '6000:6010']}}]"),
			from: "default/web", to: "default/db", pkt: tcp(6010),
			egress: profileEgress, ingress: "allowed by rule 0 of GlobalNetworkPolicy range",
		},
		{
			name: "port just past a range",
			yaml: webDB + gnp("range", "selector: role == 'db', ingress: [{action: Allow, protocol: TCP, destination: {ports: [5432, '6000:6010']}}]"),
			from: "default/web", to: "default/db", pkt: tcp(6011),
			egress: profileEgress, ingress: "denied: no policy allowed or passed (end of tier default)",
		},
		{
			name: "notPorts",
			yaml: webDB + gnp("not22", "selector: role == 'db', ingress: [{action: Allow, protocol: TCP, destination: {notPorts: ['20:22']}}]"),
			from: "default/web", to: "default/db", pkt: tcp(22),
			egress: profileEgress, ingress: "denied: no policy allowed or passed (end of tier default)",
		},
		{
			name: "the protocol must match",
			yaml: webDB + gnp("udp", "selector: role == 'db', ingress: [{action: Allow, protocol: UDP, destination: {ports: [53]}}]"),
			from: "default/web", to: "default/db", pkt: tcp(53),
			egress: profileEgress, ingress: "denied: no policy allowed or passed (end of tier default)",
		},
		{
			name: "notProtocol",
			yaml: webDB + gnp("not-udp", "selector: role == 'db', ingress: [{action: Allow, notProtocol: UDP}]"),
			from: "default/web", to: "default/db", pkt: tcp(53),
			egress: profileEgress, ingress: "allowed by rule 0 of GlobalNetworkPolicy not-udp",
		},
		{
			name: "notNets excludes the source",
			yaml: webDB + gnp("not-h1", "selector: role == 'db', ingress: [{action: Allow, source: {notNets: [10.65.0.0/24]}}]"),
			from: "default/web", to: "default/db", pkt: tcp(5432),
			egress: profileEgress, ingress: "denied: no policy allowed or passed (end of tier default)",
		},
		{
			name: "notNets of the other family keeps the rule out of IPv6",
			yaml: webDB + gnp("not-elsewhere", "selector: role == 'db', ingress: [{action: Allow, source: {notNets: [192.168.0.0/16]}}]"),
			from: "default/web", to: "default/db", pkt: Packet{IPVersion: 6, Protocol: 6, DstPort: 5432},
			egress: profileEgress, ingress: "denied: no policy allowed or passed (end of tier default)",
			src: "fd00:65::1", dst: "fd00:65:1::1",
		},
		{
			name: "notNets of the other family, IPv4 matches",
			yaml: webDB + gnp("not-elsewhere", "selector: role == 'db', ingress: [{action: Allow, source: {notNets: [192.168.0.0/16]}}]"),
			from: "default/web", to: "default/db", pkt: tcp(5432),
			egress: profileEgress, ingress: "allowed by rule 0 of GlobalNetworkPolicy not-elsewhere",
		},
		{
			name: "IPv6 nets",
			yaml: webDB + gnp("v6", "selector: role == 'db', ingress: [{action: Allow, source: {nets: ['fd00:65::/64', 10.99.0.0/16]}}]"),
			from: "default/web", to: "default/db", pkt: Packet{IPVersion: 6, Protocol: 17, DstPort: 53},
			egress: profileEgress, ingress: "allowed by rule 0 of GlobalNetworkPolicy v6",
		},
		{
			name: "the same nets over IPv4",
			yaml: webDB + gnp("v6", "selector: role == 'db', ingress: [{action: Allow, source: {nets: ['fd00:65::/64', 10.99.0.0/16]}}]"),
			from: "default/web", to: "default/db", pkt: Packet{Protocol: 17, DstPort: 53},
			egress: profileEgress, ingress: "denied: no policy allowed or passed (end of tier default)",
		},
		{
			name: "ipVersion 6 rule on IPv4",
			yaml: webDB + gnp("only6", "selector: role == 'db', ingress: [{action: Allow, ipVersion: 6}]"),
			from: "default/web", to: "default/db", pkt: tcp(1),
			egress: profileEgress, ingress: "denied: no policy allowed or passed (end of tier default)",
		},
		{
			name: "namespaced policy applies in its namespace",
			yaml: classic + wep("h1", "prod", "web", "cali1", "role: web", "a", "10.65.0.1/32") +
				wep("h2", "prod", "db", "cali2", "role: db", "b", "10.65.1.1/32") +
				np("prod", "db-from-web", "selector: role == 'db', ingress: [{action: Allow, source: {selector: role == 'web'}}]"),
			from: "prod/web", to: "prod/db", pkt: tcp(5432),
			egress: profileEgress, ingress: "allowed by rule 0 of NetworkPolicy prod/db-from-web",
		},
		{
			name: "namespaced policy's selectors see only its namespace",
			yaml: classic + wep("h1", "default", "web", "cali1", "role: web", "a", "10.65.0.1/32") +
				wep("h2", "prod", "db", "cali2", "role: db", "b", "10.65.1.1/32") +
				np("prod", "db-from-web", "selector: role == 'db', ingress: [{action: Allow, source: {selector: role == 'web'}}]"),
			from: "default/web", to: "prod/db", pkt: tcp(5432),
			egress: profileEgress, ingress: "denied: no policy allowed or passed (end of tier default)",
		},
		{
			name: "namespaced policy does not apply to other namespaces",
			yaml: webDB + np("prod", "deny-all", "selector: all(), ingress: [{action: Deny}]"),
			from: "default/web", to: "default/db", pkt: tcp(5432),
			egress: profileEgress, ingress: "denied: no profile allowed",
			steps: "Profile b=no rule matched[]",
		},
		{
			name: "egress deny",
			yaml: webDB + gnp("no-db", "selector: role == 'web', types: [Egress], egress: [{action: Deny, destination: {selector: role == 'db'}}]") +
				gnp("db-open", "selector: role == 'db', ingress: [{action: Allow}]"),
			from: "default/web", to: "default/db", pkt: tcp(5432),
			egress: "denied by rule 0 of GlobalNetworkPolicy no-db", ingress: "allowed by rule 0 of GlobalNetworkPolicy db-open",
		},
		{
			name: "ICMP type",
			yaml: webDB + gnp("ping", "selector: role == 'db', ingress: [{action: Allow, protocol: ICMP, icmp: {type: 8}}]"),
			from: "default/web", to: "default/db", pkt: Packet{Protocol: 1, ICMPType: 8},
			egress: profileEgress, ingress: "allowed by rule 0 of GlobalNetworkPolicy ping",
		},
		{
			name: "ICMP other type",
			yaml: webDB + gnp("ping", "selector: role == 'db', ingress: [{action: Allow, protocol: ICMP, icmp: {type: 8, code: 0}}]"),
			from: "default/web", to: "default/db", pkt: Packet{Protocol: 1, ICMPType: 13},
			egress: profileEgress, ingress: "denied: no policy allowed or passed (end of tier default)",
		},
		{
			name: "notICMP",
			yaml: webDB + gnp("no-ping", "selector: role == 'db', ingress: [{action: Allow, protocol: ICMP, notICMP: {type: 8}}]"),
			from: "default/web", to: "default/db", pkt: Packet{Protocol: 1, ICMPType: 8},
			egress: profileEgress, ingress: "denied: no policy allowed or passed (end of tier default)",
		},
		{
			name: "ICMP rule does not match ICMPv6, which picks IPv6",
			yaml: webDB + gnp("ping", "selector: role == 'db', ingress: [{action: Allow, protocol: ICMP}, {action: Deny, protocol: ICMPv6, icmp: {type: 128}}]"),
			from: "default/web", to: "default/db", pkt: Packet{Protocol: 58, ICMPType: 128},
			egress: profileEgress, ingress: "denied by rule 1 of GlobalNetworkPolicy ping",
			src: "fd00:65::1", dst: "fd00:65:1::1",
		},
		{
			name: "Log logs and continues",
			yaml: webDB + gnp("logged", "selector: role == 'db', ingress: [{action: Log}, {action: Log, protocol: UDP}, {action: Allow}]"),
			from: "default/web", to: "default/db", pkt: tcp(5432),
			egress: profileEgress, ingress: "allowed by rule 2 of GlobalNetworkPolicy logged",
			steps: "GlobalNetworkPolicy logged=allow[l0a2]; Profile b=not reached[]",
		},
		{
			name: "a missing profile allows nothing",
			yaml: webDB + wep("h2", "default", "lost", "cali5", "", "nothere", "10.65.1.5/32"),
			from: "default/web", to: "default/lost", pkt: tcp(80),
			egress: profileEgress, ingress: "denied: no policy or profile applies",
			steps: "Profile nothere=does not exist (allows nothing)[]",
		},
		{
			name: "a missing profile among others",
			yaml: webDB + wep("h2", "default", "lost", "cali5", "", "nothere, a", "10.65.1.5/32"),
			from: "default/web", to: "default/lost", pkt: tcp(80),
			egress: profileEgress, ingress: "allowed by rule 0 of Profile a",
			steps: "Profile a=allow[a0]; Profile nothere=does not exist (allows nothing)[]",
		},
		{
			name: "source ports: unknown is not a match",
			yaml: webDB + gnp("from-high", "selector: role == 'db', ingress: [{action: Allow, protocol: TCP, source: {ports: ['1024:65535']}}]"),
			from: "default/web", to: "default/db", pkt: tcp(5432),
			egress: profileEgress, ingress: "denied: no policy allowed or passed (end of tier default)",
		},
		{
			name: "source ports: given",
			yaml: webDB + gnp("from-high", "selector: role == 'db', ingress: [{action: Allow, protocol: TCP, source: {ports: ['1024:65535']}}]"),
			from: "default/web", to: "default/db", pkt: Packet{Protocol: 6, SrcPort: 40000, DstPort: 5432},
			egress: profileEgress, ingress: "allowed by rule 0 of GlobalNetworkPolicy from-high",
		},
		{
			name: "namespaceSelector",
			yaml: classic + wep("h1", "prod", "web", "cali1", "role: web", "a", "10.65.0.1/32") +
				wep("h2", "default", "db", "cali2", "role: db", "b", "10.65.1.1/32") +
				gnp("from-prod", "selector: role == 'db', ingress: [{action: Allow, source: {namespaceSelector: projectcalico.org/name == 'prod'}}]"),
			from: "prod/web", to: "default/db", pkt: tcp(5432),
			egress: profileEgress, ingress: "allowed by rule 0 of GlobalNetworkPolicy from-prod",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := decode(t, "h1", tc.yaml)
			r, err := Trace(in, findWorkload(t, in, tc.from), findWorkload(t, in, tc.to), tc.pkt)
			if err != nil {
				t.Fatal(err)
			}
			if r.Egress.Reason != tc.egress || r.Ingress.Reason != tc.ingress {
				t.Errorf("egress %q, ingress %q\nwant     %q,         %q\negress steps: %s\ningress steps: %s",
					r.Egress.Reason, r.Ingress.Reason, tc.egress, tc.ingress, outcomes(r.Egress), outcomes(r.Ingress))
			}
			wantAllowed := strings.HasPrefix(tc.egress, "allowed") && strings.HasPrefix(tc.ingress, "allowed")
			if r.Allowed != wantAllowed || r.Egress.Allowed != strings.HasPrefix(tc.egress, "allowed") || r.Ingress.Allowed != strings.HasPrefix(tc.ingress, "allowed") {
				t.Errorf("allowed = %v (egress %v, ingress %v); want %v", r.Allowed, r.Egress.Allowed, r.Ingress.Allowed, wantAllowed)
			}
			if tc.steps != "" && outcomes(r.Ingress) != tc.steps {
				t.Errorf("ingress steps:\n %s\nwant\n %s", outcomes(r.Ingress), tc.steps)
			}
			if tc.src != "" && (r.Src.String() != tc.src || r.Dst.String() != tc.dst) {
				t.Errorf("addresses %s -> %s; want %s -> %s", r.Src, r.Dst, tc.src, tc.dst)
			}
			if len(r.Problems) > 0 {
				t.Errorf("problems: %v", r.Problems)
			}
		})
	}
}

// TestTraceReasons checks the overall verdict, the rule descriptions and
// the notes a trace writes.
func TestTraceReasons(t *testing.T) {
	in := decode(t, "h1", webDB+
		gnp("logged", "selector: role == 'db', ingress: [{action: Log, protocol: TCP, source: {selector: role == 'web', ports: ['1024:65535']}}, {action: Deny, protocol: TCP, source: {selector: role == 'web', notNets: [10.1.0.0/16]}, destination: {ports: [5432, '6000:6010']}}]"))
	web, db := findWorkload(t, in, "default/web"), findWorkload(t, in, "default/db")
	r, err := Trace(in, web, db, tcp(5432))
	if err != nil {
		t.Fatal(err)
	}
	if r.Allowed || r.Reason != "denied at the ingress of default/db by rule 1 of GlobalNetworkPolicy logged" {
		t.Errorf("allowed %v, reason %q", r.Allowed, r.Reason)
	}
	s := r.Ingress.Steps[0]
	want := RuleHit{Index: 1, Action: "Deny", Rule: "TCP from selector (role == 'web') not nets 10.1.0.0/16 to ports 5432,6000:6010"}
	if len(s.Rules) != 1 || s.Rules[0] != want {
		t.Errorf("hits %+v; want %+v", s.Rules, want)
	}
	if len(s.Notes) != 1 || !strings.Contains(s.Notes[0], "rule 0 matches some source ports only") {
		t.Errorf("notes %q; want one on rule 0's source ports", s.Notes)
	}

	in = decode(t, "h1", classic+
		wep("h1", "default", "a1", "cali1", "", "a", "10.65.0.1/32")+
		wep("h1", "default", "a2", "cali2", "", "a", "10.65.0.2/32"))
	r, err = Trace(in, findWorkload(t, in, "default/a1"), findWorkload(t, in, "default/a2"), Packet{Protocol: 47})
	if err != nil || !r.Allowed || r.Reason != "allowed at the egress of default/a1 by rule 0 of Profile a, and at the ingress of default/a2 by rule 0 of Profile a" {
		t.Errorf("trace = %v %q, %v", r.Allowed, r.Reason, err)
	}
	if h := r.Ingress.Steps[0].Rules[0].Rule; h != "from selector (has(a))" {
		t.Errorf("profile a's rule is described as %q", h)
	}
	if h := r.Egress.Steps[0].Rules[0].Rule; h != "any packet" {
		t.Errorf("profile a's egress rule is described as %q", h)
	}
}

func TestTraceErrors(t *testing.T) {
	in := decode(t, "h1", classic+
		wep("h1", "default", "v4", "cali1", "", "a", "10.65.0.1/32")+
		wep("h1", "default", "v6", "cali2", "", "a", "'fd00:65::2/128'")+
		wep("h1", "default", "dual", "cali3", "", "a", "10.65.0.3/32", "'fd00:65::3/128'"))
	v4, v6, dual := findWorkload(t, in, "default/v4"), findWorkload(t, in, "default/v6"), findWorkload(t, in, "default/dual")
	for _, tc := range []struct {
		from, to *store.WorkloadEndpoint
		pkt      Packet
		want     string
	}{
		{v4, v6, tcp(80), "default/v4 and default/v6 have no address family in common (default/v4 has 10.65.0.1, default/v6 has fd00:65::2)"},
		{dual, v4, Packet{IPVersion: 6, Protocol: 6, DstPort: 80}, "default/v4 has no IPv6 address (it has 10.65.0.1)"},
		{dual, v4, Packet{Protocol: 58}, "default/v4 has no IPv6 address"},
		{dual, v4, Packet{IPVersion: 6, Protocol: 1}, "ICMP is IPv4's; IPv6 has ICMPv6"},
		{dual, v4, Packet{IPVersion: 5, Protocol: 6}, "IP version 5 is not 4 or 6"},
		{dual, dual, tcp(80), "default/dual is both ends"},
	} {
		_, err := Trace(in, tc.from, tc.to, tc.pkt)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Trace(%s, %s, %+v) = %v; want an error with %q", tc.from.Spec.Workload, tc.to.Spec.Workload, tc.pkt, err, tc.want)
		}
	}
	// Without a version, dual to v6 picks IPv6.
	r, err := Trace(in, dual, v6, tcp(80))
	if err != nil || r.IPVersion != 6 || r.Src != netip.MustParseAddr("fd00:65::3") {
		t.Errorf("dual to v6 = version %d from %s, %v; want IPv6 from fd00:65::3", r.IPVersion, r.Src, err)
	}
}

// TestRuleFamiliesMatchRender checks that nft.Rule.Families, which the
// trace follows, gives the families of the kernel rules Render makes.
func TestRuleFamiliesMatchRender(t *testing.T) {
	u8 := func(v uint8) *uint8 { return &v }
	v4, v6 := netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("fd00::/8")
	rules := []nft.Rule{
		{Action: nft.Allow},
		{Action: nft.Allow, Protocol: u8(6), Dst: nft.Match{Ports: []nft.PortRange{{First: 80, Last: 80}}}},
		{Action: nft.Allow, Protocol: u8(1)},
		{Action: nft.Allow, Protocol: u8(58)},
		{Action: nft.Allow, Protocol: u8(1), ICMP: &nft.ICMP{Type: 8}},
		{Action: nft.Allow, IPVersion: 4},
		{Action: nft.Allow, IPVersion: 6, Protocol: u8(1)},
		{Action: nft.Allow, Src: nft.Match{Set: "s"}},
		{Action: nft.Allow, Dst: nft.Match{NotSet: "s"}},
		{Action: nft.Allow, Src: nft.Match{Nets: []netip.Prefix{v4}}},
		{Action: nft.Allow, Src: nft.Match{Nets: []netip.Prefix{v4, v6}}},
		{Action: nft.Allow, Src: nft.Match{NotNets: []netip.Prefix{v6}}},
		{Action: nft.Allow, Src: nft.Match{Nets: []netip.Prefix{v4}}, Dst: nft.Match{Nets: []netip.Prefix{v6}}},
		{Action: nft.Allow, IPVersion: 6, Src: nft.Match{Nets: []netip.Prefix{v4, v6}}},
	}
	rs := nft.Ruleset{
		Workloads: []nft.Endpoint{{Iface: "cali1", Ingress: nft.Path{Tiers: []nft.Tier{{Name: "default", Policies: []string{"p"}}}}}},
		Policies:  []nft.Policy{{Name: "p", Ingress: rules}},
		Sets:      []nft.Set{{Name: "s", Members: []netip.Addr{v4.Addr(), v6.Addr()}}}, // both families: an empty one has no rule
	}
	tbl, err := nft.Render(rs)
	if err != nil {
		t.Fatal(err)
	}
	rendered := map[int][]int{}
	for _, c := range tbl.Chains {
		if c.Name != "p-in" {
			continue
		}
		for _, r := range c.Rules {
			text := r.String()
			var i int
			if _, err := fmt.Sscanf(text[strings.LastIndex(text, `"rule `):], `"rule %d"`, &i); err != nil {
				t.Fatalf("rule without a label: %s", text)
			}
			fam := 0
			switch {
			case strings.Contains(text, "meta nfproto ipv4"):
				fam = 4
			case strings.Contains(text, "meta nfproto ipv6"):
				fam = 6
			}
			if l := rendered[i]; len(l) == 0 || l[len(l)-1] != fam { // a list may make several
				rendered[i] = append(rendered[i], fam)
			}
		}
	}
	if len(rendered) == 0 {
		t.Fatal("no rules rendered in chain p-in")
	}
	for i, r := range rules {
		if got, want := fmt.Sprint(r.Families()), fmt.Sprint(rendered[i]); got != want {
			t.Errorf("rule %d %+v: trace families %s, rendered %s", i, r, got, want)
		}
	}
}
