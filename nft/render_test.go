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
		r := rand.New(rand.NewPCG(1, 2))
		r.Shuffle(len(rs.Workloads), func(i, j int) { rs.Workloads[i], rs.Workloads[j] = rs.Workloads[j], rs.Workloads[i] })
		r.Shuffle(len(rs.Policies), func(i, j int) { rs.Policies[i], rs.Policies[j] = rs.Policies[j], rs.Policies[i] })
		r.Shuffle(len(rs.Sets), func(i, j int) { rs.Sets[i], rs.Sets[j] = rs.Sets[j], rs.Sets[i] })
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
		for _, r := range policyRules(Policy{Name: "p", Ingress: []Rule{tc.rule}}, Ingress) {
			text := r.String()
			text = text[:strings.Index(text, " counter")]
			got = append(got, text)
		}
		if strings.Join(got, "\n") != strings.Join(tc.want, "\n") {
			t.Errorf("%s: rendered\n%s\nwant\n%s", tc.name, strings.Join(got, "\n"), strings.Join(tc.want, "\n"))
		}
	}
}
