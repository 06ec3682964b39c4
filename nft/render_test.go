package nft

import (
	"flag"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"unsafe"
)

var update = flag.Bool("update", false, "rewrite the golden files")

func goldenPath(name string) string {
	return filepath.Join("testdata", strings.ReplaceAll(name, " ", "-")+".golden")
}

func TestRenderGolden(t *testing.T) {
	for _, s := range states {
		t.Run(s.name, func(t *testing.T) {
			tbl, err := Render(s.rs)
			if err != nil {
				t.Fatal(err)
			}
			got := tbl.String()
			path := goldenPath(s.name)
			if *update {
				if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run with -update to create it)", err)
			}
			if got != string(want) {
				t.Errorf("Render differs from %s (run with -update to accept):\n%s", path, lineDiff(string(want), got))
			}
		})
	}
}

// lineDiff shows the lines of got that are not in want and vice versa.
func lineDiff(want, got string) string {
	w, g := strings.Split(want, "\n"), strings.Split(got, "\n")
	var b strings.Builder
	for _, l := range w {
		if !slices.Contains(g, l) {
			b.WriteString("- " + l + "\n")
		}
	}
	for _, l := range g {
		if !slices.Contains(w, l) {
			b.WriteString("+ " + l + "\n")
		}
	}
	return b.String()
}

// TestRenderIsPure checks that the order of the input's slices does not
// matter and that rendering twice gives the same table.
func TestRenderIsPure(t *testing.T) {
	for _, s := range states {
		a, err := Render(s.rs)
		if err != nil {
			t.Fatal(err)
		}
		rs := s.rs
		rs.Workloads = slices.Clone(rs.Workloads)
		rs.Policies = slices.Clone(rs.Policies)
		rs.Sets = slices.Clone(rs.Sets)
		rs.PortSets = slices.Clone(rs.PortSets)
		rs.HostEndpoints = slices.Clone(rs.HostEndpoints)
		r := rand.New(rand.NewPCG(1, 2))
		r.Shuffle(len(rs.Workloads), func(i, j int) { rs.Workloads[i], rs.Workloads[j] = rs.Workloads[j], rs.Workloads[i] })
		r.Shuffle(len(rs.Policies), func(i, j int) { rs.Policies[i], rs.Policies[j] = rs.Policies[j], rs.Policies[i] })
		r.Shuffle(len(rs.Sets), func(i, j int) { rs.Sets[i], rs.Sets[j] = rs.Sets[j], rs.Sets[i] })
		r.Shuffle(len(rs.PortSets), func(i, j int) { rs.PortSets[i], rs.PortSets[j] = rs.PortSets[j], rs.PortSets[i] })
		r.Shuffle(len(rs.HostEndpoints), func(i, j int) {
			rs.HostEndpoints[i], rs.HostEndpoints[j] = rs.HostEndpoints[j], rs.HostEndpoints[i]
		})
		b, err := Render(rs)
		if err != nil {
			t.Fatal(err)
		}
		if a.String() != b.String() || a.summary() != b.summary() {
			t.Errorf("%s: rendering depends on input order", s.name)
		}
	}
}

func TestValidate(t *testing.T) {
	ok := Policy{Name: "p", Ingress: []Rule{{Action: Allow}}}
	tests := []struct {
		name string
		rs   Ruleset
		want string // substring of the error
	}{
		{"unknown policy", Ruleset{Workloads: []Endpoint{{Iface: "cali1", Ingress: profilePath("nope")}}}, "unknown policy nope"},
		{"loopback interface", Ruleset{Workloads: []Endpoint{{Iface: "lo"}}}, "not lo"},
		{"no interface", Ruleset{Workloads: []Endpoint{{Addrs: addrs("10.65.0.1")}}}, "must be a name"},
		{"long interface", Ruleset{Workloads: []Endpoint{{Iface: "cali0123456789ab"}}}, "at most 15 bytes"},
		{"short MAC", Ruleset{Workloads: []Endpoint{{Iface: "vnet3", MAC: net.HardwareAddr{1, 2, 3}}}}, "not an Ethernet address"},
		{"duplicate interface", Ruleset{Workloads: []Endpoint{{Iface: "cali1"}, {Iface: "cali1"}}}, "duplicate interface"},
		{"bad policy name", Ruleset{Policies: []Policy{{Name: "a b"}}}, "name must be"},
		{"duplicate policy", Ruleset{Policies: []Policy{ok, ok}}, "duplicate name"},
		{"unknown set", Ruleset{Policies: []Policy{{Name: "p", Egress: []Rule{{Action: Allow, Dst: Match{NotSet: "s"}}}}}}, "unknown set s"},
		{"ports without protocol", Ruleset{Policies: []Policy{{Name: "p", Ingress: []Rule{{Action: Allow, Dst: Match{Ports: []PortRange{{1, 1}}}}}}}}, "ports need protocol"},
		{"ports with icmp", Ruleset{Policies: []Policy{{Name: "p", Ingress: []Rule{{Action: Allow, Protocol: icmp4, Dst: Match{Ports: []PortRange{{1, 1}}}}}}}}, "ports need protocol"},
		{"icmp without icmp", Ruleset{Policies: []Policy{{Name: "p", Ingress: []Rule{{Action: Allow, Protocol: tcp, ICMP: &ICMP{Type: 8}}}}}}, "ICMP type needs"},
		{"reversed range", Ruleset{Policies: []Policy{{Name: "p", Ingress: []Rule{{Action: Allow, Protocol: tcp, Src: Match{NotPorts: []PortRange{{9, 1}}}}}}}}, "reversed"},
		{"no action", Ruleset{Policies: []Policy{{Name: "p", Ingress: []Rule{{}}}}}, "unknown action"},
		{"ip version", Ruleset{Policies: []Policy{{Name: "p", Ingress: []Rule{{Action: Allow, IPVersion: 5}}}}}, "ip version 5"},
		{"too many nets", Ruleset{Policies: []Policy{{Name: "p", Ingress: []Rule{{Action: Allow, Src: Match{Nets: make([]netip.Prefix, 501)}}}}}}, "more than 500"},
		{"unknown port set", Ruleset{Policies: []Policy{{Name: "p", Ingress: []Rule{{Action: Allow, Dst: Match{NotPortSet: "http"}}}}}}, "unknown port set http"},
		{"a set is not a port set", Ruleset{Sets: []Set{{Name: "http"}}, Policies: []Policy{{Name: "p", Ingress: []Rule{{Action: Allow, Dst: Match{PortSet: "http"}}}}}}, "unknown port set http"},
		{"duplicate port set", Ruleset{PortSets: []PortSet{{Name: "http"}, {Name: "http"}}}, "port set http: duplicate name"},
		{"named port of ICMP", Ruleset{PortSets: []PortSet{{Name: "p", Members: []NamedPort{{Addr: addr("10.0.0.1"), Protocol: 1, Port: 1}}}}}, "not TCP, UDP or SCTP"},
		{"named port without address", Ruleset{PortSets: []PortSet{{Name: "p", Members: []NamedPort{{Protocol: 6, Port: 1}}}}}, "invalid address"},
		{"invalid set net", Ruleset{Sets: []Set{{Name: "s", Nets: []netip.Prefix{{}}}}}, "set s: invalid net"},
		{"untracked for all interfaces", Ruleset{Policies: []Policy{ok}, HostEndpoints: []HostEndpoint{{Iface: AllInterfaces, UntrackedEgress: tierPath("p")}}}, "not for all interfaces"},
		{"profiles before DNAT", Ruleset{Policies: []Policy{ok}, HostEndpoints: []HostEndpoint{{Iface: "eth0", PreDNAT: profilePath("p")}}}, "have no profiles"},
		{"unknown forward policy", Ruleset{HostEndpoints: []HostEndpoint{{Iface: "eth0", ForwardEgress: tierPath("nope")}}}, "unknown policy nope"},
	}
	for _, tt := range tests {
		err := tt.rs.Validate()
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: Validate() = %v, want an error containing %q", tt.name, err, tt.want)
		}
		if _, err := Render(tt.rs); err == nil {
			t.Errorf("%s: Render accepted an invalid ruleset", tt.name)
		}
	}
	for _, s := range states {
		if err := s.rs.Validate(); err != nil {
			t.Errorf("%s: %v", s.name, err)
		}
	}
}

// TestRendererRemembersWorkloads: given the same Workloads slice again,
// the renderer reuses their dispatch maps and anti-spoofing sets; it still
// refuses them when a policy their paths name is gone, naming the
// endpoint; a new slice is rendered anew.
func TestRendererRemembersWorkloads(t *testing.T) {
	var r renderer
	rs := big(20, 10)
	setOf := func(tbl *Table, name string) []Element {
		for _, s := range tbl.Sets {
			if s.Name == name {
				return s.Elems
			}
		}
		t.Fatalf("no set %s", name)
		return nil
	}
	first, err := r.render(rs)
	if err != nil {
		t.Fatal(err)
	}
	changed := rs
	changed.Policies = slices.Clone(rs.Policies)
	changed.Policies[3].Ingress = []Rule{{Action: Deny}}
	again, err := r.render(changed)
	if err != nil {
		t.Fatal(err)
	}
	if want, _ := Render(changed); again.String() != want.String() {
		t.Fatalf("the renderer's table differs from Render's:\n%s", lineDiff(want.String(), again.String()))
	}
	for _, name := range []string{mapTo, mapFrom, setSrc4} {
		if unsafe.SliceData(setOf(first, name)) != unsafe.SliceData(setOf(again, name)) {
			t.Errorf("set %s of the same workloads was rendered again instead of reused", name)
		}
	}

	gone := rs
	gone.Policies = slices.DeleteFunc(slices.Clone(rs.Policies), func(p Policy) bool { return p.Name == "policy-3" })
	if _, err := r.render(gone); err == nil || !strings.Contains(err.Error(), "unknown policy policy-3") || !strings.Contains(err.Error(), "endpoint cali") {
		t.Errorf("the same workloads with a policy of theirs gone: %v, want the endpoint's unknown policy", err)
	}

	moved := rs
	moved.Workloads = slices.Clone(rs.Workloads)
	moved.Workloads[0].Addrs = addrs("10.99.0.1")
	got, err := r.render(moved)
	if err != nil {
		t.Fatal(err)
	}
	if want, _ := Render(moved); got.String() != want.String() || !strings.Contains(got.String(), "10.99.0.1") {
		t.Errorf("new workloads were not rendered anew:\n%s", lineDiff(want.String(), got.String()))
	}
}

// TestRendererRemembers checks that the Applier's renderer gives Render's
// table whatever it renders before, reuses what it rendered of the same
// policy version, and renders anew a new version or one without a version.
func TestRendererRemembers(t *testing.T) {
	var r renderer
	for range 2 {
		for _, s := range states {
			got, err := r.render(s.rs)
			if err != nil {
				t.Fatal(err)
			}
			want, _ := Render(s.rs)
			if got.String() != want.String() {
				t.Fatalf("%s: the renderer's table differs from Render's:\n%s", s.name, lineDiff(want.String(), got.String()))
			}
		}
	}

	rs := big(20, 10)
	for i := range rs.Policies {
		rs.Policies[i].Version = "v1"
	}
	first, _ := r.render(rs)
	again, _ := r.render(rs)
	rules := func(tbl *Table, name string) []ChainRule {
		for _, c := range tbl.Chains {
			if c.Name == name {
				return c.Rules
			}
		}
		t.Fatalf("no chain %s", name)
		return nil
	}
	if unsafe.SliceData(rules(first, "policy-3-in")) != unsafe.SliceData(rules(again, "policy-3-in")) {
		t.Error("the same policy version was rendered again instead of reused")
	}

	// A change with a new version is rendered anew.
	changed := rs
	changed.Policies = slices.Clone(rs.Policies)
	changed.Policies[3].Ingress = slices.Clone(rs.Policies[3].Ingress)
	changed.Policies[3].Ingress[0].Dst.Ports = []PortRange{{8080, 8080}}
	changed.Policies[3].Version = "v2"
	got, _ := r.render(changed)
	want, _ := Render(changed)
	if got.String() != want.String() || !strings.Contains(got.String(), "th dport 8080") {
		t.Errorf("a changed policy with a new version was not rendered anew:\n%s", lineDiff(want.String(), got.String()))
	}

	// Without a version, a policy is rendered every time.
	changed.Policies[3].Version = ""
	one, _ := r.render(changed)
	two, _ := r.render(changed)
	if unsafe.SliceData(rules(one, "policy-3-in")) == unsafe.SliceData(rules(two, "policy-3-in")) {
		t.Error("a policy without a version was reused")
	}
}

// TestRendererValidatesWithMemory: what the renderer remembers of a
// valid policy version never lets an invalid ruleset through: a set the
// version names that is gone, an invalid version rendered twice, a path
// shared by endpoints that names an unknown policy.
func TestRendererValidatesWithMemory(t *testing.T) {
	var r renderer
	shared := tierPath("p")
	valid := Ruleset{
		Sets:      []Set{{Name: "s", Version: "1"}},
		Policies:  []Policy{{Name: "p", Version: "1", Ingress: []Rule{{Action: Allow, Src: Match{Set: "s"}}}}},
		Workloads: []Endpoint{{Iface: "cali1", Ingress: shared}, {Iface: "cali2", Ingress: shared}},
	}
	noSet := valid
	noSet.Sets = nil
	badPolicy := valid
	badPolicy.Policies = []Policy{{Name: "p", Version: "2", Ingress: []Rule{{Action: Allow, Dst: Match{Ports: []PortRange{{1, 1}}}}}}}
	unknown := valid
	nope := tierPath("nope")
	unknown.Workloads = []Endpoint{{Iface: "cali1", Ingress: nope}, {Iface: "cali2", Ingress: nope}}
	for i, step := range []struct {
		rs   Ruleset
		want string // "" for valid, else a substring of the error
	}{
		{valid, ""}, {noSet, "unknown set s"}, {valid, ""}, {badPolicy, "ports need protocol"}, {badPolicy, "ports need protocol"},
		{valid, ""}, {unknown, "cali1: unknown policy nope"}, {unknown, "cali2: unknown policy nope"}, {valid, ""},
	} {
		_, err := r.render(step.rs)
		switch {
		case step.want == "" && err != nil:
			t.Errorf("step %d: %v", i, err)
		case step.want != "" && (err == nil || !strings.Contains(err.Error(), step.want)):
			t.Errorf("step %d: render error %v, want one containing %q", i, err, step.want)
		}
	}
}

// TestRendererSetKinds checks that a remembered policy is rendered anew
// when a Set it refers to changes kind (gains or loses nets) though the
// policy's version stays.
func TestRendererSetKinds(t *testing.T) {
	var r renderer
	rs := states[1].rs // one endpoint in a classic profile: rules on Set net-a
	rs.Policies = slices.Clone(rs.Policies)
	rs.Policies[0].Version = "v1"
	withNets := rs
	withNets.Sets = []Set{{Name: "net-a", Members: rs.Sets[0].Members, Nets: prefixes("10.66.0.0/16"), Version: "v2"}}
	for i, want := range []string{"@net-a-v4", "@net-a-n4", "@net-a-v4"} {
		in := rs
		if i == 1 {
			in = withNets
		}
		got, err := r.render(in)
		if err != nil {
			t.Fatal(err)
		}
		fresh, _ := Render(in)
		if got.String() != fresh.String() || !strings.Contains(got.String(), "ip saddr "+want) {
			t.Errorf("step %d: the remembered rendering differs from a fresh one or does not refer to %s:\n%s", i, want, lineDiff(fresh.String(), got.String()))
		}
	}
}

// TestShortLists checks how lists of ports and nets become kernel rules:
// short positive lists one rule per entry, short negated ones comparisons,
// long ones and Log rules a set.
func TestShortLists(t *testing.T) {
	five := []PortRange{{1, 1}, {3, 3}, {5, 5}, {7, 7}, {9, 9}}
	for _, tc := range []struct {
		name string
		rule Rule
		want []string // the kernel rules' text, without counter and verdict
	}{
		{"positive ports", Rule{Action: Allow, Protocol: tcp, Dst: Match{Ports: []PortRange{{443, 443}, {80, 80}, {79, 81}}}},
			[]string{"meta l4proto tcp th dport 79-81", "meta l4proto tcp th dport 443"}},
		{"negated ports", Rule{Action: Deny, Protocol: tcp, Dst: Match{NotPorts: []PortRange{{80, 80}, {443, 443}}}},
			[]string{"meta l4proto tcp th dport != 80 th dport != 443"}},
		{"long list", Rule{Action: Allow, Protocol: tcp, Dst: Match{Ports: five}},
			[]string{"meta l4proto tcp th dport { 1, 3, 5, 7, 9 }"}},
		{"log keeps one rule", Rule{Action: Log, Protocol: tcp, Dst: Match{Ports: []PortRange{{80, 80}, {443, 443}}}},
			[]string{"meta l4proto tcp th dport { 80, 443 }"}},
		{"nested nets", Rule{Action: Allow, Src: Match{Nets: prefixes("10.0.0.0/8", "10.1.0.0/16", "192.168.0.0/16")}},
			[]string{"meta nfproto ipv4 ip saddr 10.0.0.0/8", "meta nfproto ipv4 ip saddr 192.168.0.0/16"}},
		{"too many combinations", Rule{Action: Allow, Protocol: tcp, Src: Match{Nets: prefixes("10.0.0.0/8", "11.0.0.0/8")},
			Dst: Match{Ports: []PortRange{{1, 1}, {3, 3}, {5, 5}}}},
			[]string{"meta nfproto ipv4 meta l4proto tcp ip saddr 10.0.0.0/8 th dport { 1, 3, 5 }", "meta nfproto ipv4 meta l4proto tcp ip saddr 11.0.0.0/8 th dport { 1, 3, 5 }"}},
	} {
		var got []string
		for _, r := range policyRules(Policy{Name: "p", Ingress: []Rule{tc.rule}}, Ingress, setKinds{}) {
			text := r.String()
			text = text[:strings.Index(text, " counter")]
			got = append(got, text)
		}
		if strings.Join(got, "\n") != strings.Join(tc.want, "\n") {
			t.Errorf("%s: rendered\n%s\nwant\n%s", tc.name, strings.Join(got, "\n"), strings.Join(tc.want, "\n"))
		}
	}
}

// TestNetElems checks the ranges of an interval set: overlapping and
// adjacent members and nets merged, mapped addresses unmapped, a range
// that reaches the top of the address space without an end element
// (shown as "to the top").
func TestNetElems(t *testing.T) {
	for _, tc := range []struct {
		members []netip.Addr
		nets    []netip.Prefix
		want    string
	}{
		{addrs("10.0.0.1", "10.0.0.2", "::ffff:10.0.0.3"), prefixes("10.0.0.4/30"), "10.0.0.1-10.0.0.7"},
		{nil, prefixes("10.0.0.0/25", "10.0.0.128/25", "10.0.1.0/24", "10.0.0.7/32"), "10.0.0.0/23"},
		{addrs("255.255.255.255"), prefixes("255.255.255.0/25"), "255.255.255.0/25, 255.255.255.255 to the top"},
		{nil, prefixes("255.255.255.0/24", "0.0.0.0/1"), "0.0.0.0/1, 255.255.255.0/24 to the top"},
		{addrs("fd00::1"), prefixes("::/0"), "::/0 to the top"},
		{addrs("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"), prefixes("fd00::/64"),
			"fd00::/64, ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff to the top"},
	} {
		v4, v6 := netElems(tc.members, tc.nets)
		var got []string
		for _, e := range append(v4, v6...) {
			s := rangeString(e)
			if e.End == "" {
				s += " to the top"
			}
			got = append(got, s)
		}
		if g := strings.Join(got, ", "); g != tc.want {
			t.Errorf("netElems(%v, %v) = %s, want %s", tc.members, tc.nets, g, tc.want)
		}
	}
}

// TestPathNamesAll: all yields what Names lists, path after path, and
// stops when asked.
func TestPathNamesAll(t *testing.T) {
	a := Path{Tiers: []Tier{{Name: "t1", Policies: []string{"p1", "p2"}}, {Name: "t2", Policies: []string{"p3"}}}, Profiles: []string{"pro"}}
	b := Path{Profiles: []string{"x", "y"}}
	if got, want := slices.Collect(all(a, b)), append(a.Names(), b.Names()...); !slices.Equal(got, want) {
		t.Errorf("all = %v, want %v", got, want)
	}
	var first []string
	for n := range all(a, b) {
		first = append(first, n)
		if len(first) == 2 {
			break
		}
	}
	if !slices.Equal(first, []string{"p1", "p2"}) {
		t.Errorf("stopped early: %v", first)
	}
	if a.key() == b.key() || a.key() != (Path{Tiers: a.Tiers, Profiles: a.Profiles}).key() {
		t.Errorf("keys: %q %q", a.key(), b.key())
	}
}
