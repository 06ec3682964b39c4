package nft

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"os"
	"slices"
	"strings"
	"testing"
)

// orders are the sequences in which the contract tests replay states: in
// order, reversed, and shuffled with fixed seeds.
func orders() map[string][]int {
	n := len(states)
	in := make([]int, n)
	for i := range in {
		in[i] = i
	}
	rev := slices.Clone(in)
	slices.Reverse(rev)
	out := map[string][]int{"in order": in, "reversed": rev}
	for seed := uint64(1); seed <= 3; seed++ {
		s := slices.Clone(in)
		rand.New(rand.NewPCG(seed, seed)).Shuffle(n, func(i, j int) { s[i], s[j] = s[j], s[i] })
		// Visit each state twice so that every state is reached from
		// several others.
		out[fmt.Sprintf("shuffled %d", seed)] = append(s, in...)
	}
	return out
}

func golden(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(goldenPath(name))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestFakeReplay(t *testing.T) {
	ctx := context.Background()
	for name, order := range orders() {
		t.Run(name, func(t *testing.T) {
			f := NewFake()
			for _, i := range order {
				s := states[i]
				if err := f.Apply(ctx, s.rs); err != nil {
					t.Fatalf("applying %q: %v", s.name, err)
				}
				if got, want := f.String(), golden(t, s.name); got != want {
					t.Fatalf("after applying %q:\n%s", s.name, lineDiff(want, got))
				}
				changes := f.Changes
				if err := f.Apply(ctx, s.rs); err != nil {
					t.Fatal(err)
				}
				if f.Changes != changes || f.Last.changed() {
					t.Fatalf("re-applying %q changed %+v", s.name, f.Last)
				}
			}
		})
	}
}

func TestFakeFailNext(t *testing.T) {
	ctx := context.Background()
	f := NewFake()
	if err := f.Apply(ctx, states[1].rs); err != nil {
		t.Fatal(err)
	}
	before := f.String()
	f.FailNext()
	if err := f.Apply(ctx, states[2].rs); err == nil {
		t.Fatal("Apply after FailNext succeeded")
	}
	if f.String() != before {
		t.Fatal("a failed Apply changed the table")
	}
	if err := f.Apply(ctx, states[2].rs); err != nil {
		t.Fatal(err)
	}
	if f.String() != golden(t, states[2].name) || f.Applies != 3 {
		t.Fatalf("after recovery: applies %d\n%s", f.Applies, f)
	}
}

// big is a table of n endpoints in groups of ten sharing a profile, each
// also under one of p policies, with sets of the group members.
func big(n, p int) Ruleset {
	var rs Ruleset
	for i := range p {
		rs.Policies = append(rs.Policies, Policy{
			Name: fmt.Sprintf("policy-%d", i),
			Ingress: []Rule{
				{Action: Allow, Protocol: tcp, Src: Match{Set: fmt.Sprintf("group-%d", i%(n/10+1))}, Dst: Match{Ports: []PortRange{{80, 80}, {443, 443}}}},
				{Action: Deny, Src: Match{Nets: prefixes("10.0.0.0/8", "fd00::/8")}},
				{Action: Pass, Protocol: udp},
			},
			Egress: []Rule{{Action: Allow, Dst: Match{NotNets: prefixes("169.254.0.0/16")}}},
		})
	}
	for g := 0; g <= n/10; g++ {
		rs.Policies = append(rs.Policies, classic(fmt.Sprintf("group-%d", g)))
		rs.Sets = append(rs.Sets, Set{Name: fmt.Sprintf("group-%d", g)})
	}
	for i := range n {
		g := i / 10
		a4 := netip.AddrFrom4([4]byte{10, 65, byte(i >> 8), byte(i)})
		a6 := netip.AddrFrom16([16]byte{0: 0xfd, 1: 0x00, 2: 0x00, 3: 0x65, 14: byte(i >> 8), 15: byte(i)})
		pol := fmt.Sprintf("policy-%d", i%max(p, 1))
		path := Path{Tiers: []Tier{{Name: "default", Policies: []string{pol}}}, Profiles: []string{fmt.Sprintf("group-%d", g)}}
		if p == 0 {
			path.Tiers = nil
		}
		rs.Workloads = append(rs.Workloads, Endpoint{
			Iface: fmt.Sprintf("cali%011x", i), Addrs: []netip.Addr{a4, a6},
			Ingress: path, Egress: path,
		})
		rs.Sets[g].Members = append(rs.Sets[g].Members, a4, a6)
	}
	return rs
}

// TestFakeChangesOnlyTheDifference checks the size of the transactions
// for the changes the dataplane makes all the time.
func TestFakeChangesOnlyTheDifference(t *testing.T) {
	ctx := context.Background()
	base := big(100, 20)
	f := NewFake()
	if err := f.Apply(ctx, base); err != nil {
		t.Fatal(err)
	}

	// A new endpoint on an existing path: its map and anti-spoofing
	// elements and its set membership, nothing else.
	more := big(100, 20)
	more.Workloads = append(more.Workloads, Endpoint{
		Iface: "cali-new", Addrs: addrs("10.65.9.9"),
		Ingress: more.Workloads[0].Ingress, Egress: more.Workloads[0].Egress,
	})
	more.Sets[0].Members = append(more.Sets[0].Members, addr("10.65.9.9"))
	if err := f.Apply(ctx, more); err != nil {
		t.Fatal(err)
	}
	if want := (Stats{ElemsAdded: 4}); f.Last != want {
		t.Errorf("adding an endpoint: %+v, want %+v", f.Last, want)
	}
	if err := f.Apply(ctx, base); err != nil {
		t.Fatal(err)
	}
	if want := (Stats{ElemsDeleted: 4}); f.Last != want {
		t.Errorf("removing an endpoint: %+v, want %+v", f.Last, want)
	}

	// A changed policy: its chain alone is flushed and refilled (three
	// rules, two of them per family).
	changed := big(100, 20)
	changed.Policies[3].Ingress[0].Dst.Ports = []PortRange{{8080, 8080}}
	step(t, f, base, changed, Stats{ChainsFlushed: 1, RulesAdded: 5})

	// A set member: one element.
	changed = big(100, 20)
	changed.Sets[5].Members = changed.Sets[5].Members[1:]
	step(t, f, base, changed, Stats{ElemsDeleted: 1})

	// Moving an endpoint to a path nobody has: a new group chain, its map
	// element pointed at it (deleted and added again), the old group
	// chain, used by nobody else, flushed and deleted.
	moved := big(100, 20)
	moved.Workloads[0].Ingress.Tiers = []Tier{{Name: "default", Policies: []string{"policy-7", "policy-8"}}}
	step(t, f, base, moved, Stats{ChainsAdded: 1, RulesAdded: 9, ElemsAdded: 1, ElemsDeleted: 1, ChainsFlushed: 1, ChainsDeleted: 1})
}

// step applies from and then to, and checks what the second Apply changed.
func step(t *testing.T, f *Fake, from, to Ruleset, want Stats) {
	t.Helper()
	ctx := context.Background()
	if err := f.Apply(ctx, from); err != nil {
		t.Fatal(err)
	}
	if err := f.Apply(ctx, to); err != nil {
		t.Fatal(err)
	}
	if f.Last != want {
		t.Errorf("changed %+v, want %+v", f.Last, want)
	}
}

func TestFakeCounters(t *testing.T) {
	ctx := context.Background()
	f := NewFake()
	s := states[3] // policies with allow deny pass log
	if err := f.Apply(ctx, s.rs); err != nil {
		t.Fatal(err)
	}
	f.Count(Counter{Policy: "tier1.deny-db", Direction: Egress, Rule: 1, Packets: 3, Bytes: 300})
	cs, err := f.Counters(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	for _, c := range cs {
		lines = append(lines, c.String())
	}
	want := []string{
		"net-a ingress rule 0: 0 packets, 0 bytes",
		"tier1.deny-db ingress rule 0: 0 packets, 0 bytes",
		"tier1.deny-db ingress rule 1: 0 packets, 0 bytes",
		"tier1.deny-db egress rule 0: 0 packets, 0 bytes",
		"tier1.deny-db egress rule 1: 3 packets, 300 bytes",
		"tier1.log-all ingress rule 0: 0 packets, 0 bytes",
		"tier1.log-all egress rule 0: 0 packets, 0 bytes",
		"tier1.pass-web ingress rule 0: 0 packets, 0 bytes",
	}
	if got := strings.Join(lines, "\n"); got != strings.Join(want, "\n") {
		t.Errorf("Counters:\n%s\nwant:\n%s", got, strings.Join(want, "\n"))
	}
}

// TestDiffRecreatesWhatCannotBePatched covers the read-backs that the
// diff cannot patch in place.
func TestDiffRecreatesWhatCannotBePatched(t *testing.T) {
	want, err := Render(states[1].rs)
	if err != nil {
		t.Fatal(err)
	}
	have, _ := Render(states[1].rs)
	have.Sets[0].Type = setUnknown
	if ops := diff(have, want); !statsOf(ops).Recreated {
		t.Error("a set of a foreign type was not recreated")
	}
	have, _ = Render(states[1].rs)
	for i := range have.Chains {
		if have.Chains[i].Name == chainInput {
			have.Chains[i].Hook = &Hook{Name: "input", Priority: 10, Accept: true}
		}
	}
	if ops := diff(have, want); !statsOf(ops).Recreated {
		t.Error("a base chain on another priority was not recreated")
	}
	have, _ = Render(states[1].rs)
	have.dormant = true
	if ops := diff(have, want); len(ops) != 1 || ops[0].kind != opAddTable {
		t.Errorf("a dormant table: %v", ops)
	}
}

// stagesBase has a Set with nets, a PortSet, a hash Set and host
// endpoints with forward, pre-DNAT and untracked paths.
func stagesBase() Ruleset {
	return Ruleset{
		Workloads: []Endpoint{{Iface: "cali1", Addrs: addrs("10.65.0.1"), Ingress: tierPath("from-nets", "plain"), Egress: profilePath("open")}},
		HostEndpoints: []HostEndpoint{
			{Iface: "eth1", Ingress: tierPath("from-nets"), ForwardIngress: tierPath("named"), PreDNAT: tierPath("from-nets"), UntrackedIngress: tierPath("named")},
			{Iface: "eth2", ForwardEgress: tierPath("named")},
		},
		Policies: []Policy{
			{Name: "open", Ingress: []Rule{{Action: Allow}}, Egress: []Rule{{Action: Allow}}},
			{Name: "from-nets", Ingress: []Rule{{Action: Allow, Src: Match{Set: "nets"}}}},
			{Name: "named", Ingress: []Rule{{Action: Allow, Dst: Match{PortSet: "http"}}}, Egress: []Rule{{Action: Allow, Dst: Match{PortSet: "http"}}}},
			{Name: "plain", Ingress: []Rule{{Action: Allow, Src: Match{Set: "plain"}}}},
		},
		Sets: []Set{
			{Name: "nets", Members: addrs("10.1.0.5", "10.3.0.7"), Nets: prefixes("10.1.0.0/24", "10.2.0.0/24", "10.4.0.0/24", "fd00:1::/64")},
			{Name: "plain", Members: addrs("10.9.0.1")},
		},
		PortSets: []PortSet{{Name: "http", Members: []NamedPort{{addr("10.65.0.1"), 6, 8080}, {addr("fd00:65::1"), 6, 8080}, {addr("10.65.0.2"), 6, 8080}}}},
	}
}

// newKindChanges are one change of each new kind from stagesBase and
// what each changes: only what differs.
func newKindChanges() []struct {
	name   string
	change func(*Ruleset)
	want   Stats
} {
	nets := func(f func(*Set)) func(*Ruleset) {
		return func(rs *Ruleset) { f(&rs.Sets[0]) }
	}
	return []struct {
		name   string
		change func(*Ruleset)
		want   Stats
	}{
		{"a net added", nets(func(s *Set) { s.Nets = append(s.Nets, prefix("10.8.0.0/16")) }), Stats{ElemsAdded: 1}},
		{"a net joining two ranges", nets(func(s *Set) { s.Nets = append(s.Nets, prefix("10.1.0.0/16")) }),
			Stats{ElemsAdded: 1, ElemsDeleted: 2}},
		{"a range split", nets(func(s *Set) {
			s.Nets = prefixes("10.1.0.0/24", "10.2.0.0/24", "fd00:1::/64")
			s.Members = append(s.Members, addrs("10.4.0.1", "10.4.0.200")...)
		}), Stats{ElemsAdded: 2, ElemsDeleted: 1}},
		{"a range extended", nets(func(s *Set) { s.Members = append(s.Members, addr("10.3.0.8")) }),
			Stats{ElemsAdded: 1, ElemsDeleted: 1}},
		{"a named port added", func(rs *Ruleset) {
			rs.PortSets[0].Members = append(rs.PortSets[0].Members, NamedPort{addr("10.65.0.1"), 17, 53})
		}, Stats{ElemsAdded: 1}},
		{"a named port removed", func(rs *Ruleset) { rs.PortSets[0].Members = rs.PortSets[0].Members[1:] }, Stats{ElemsDeleted: 1}},
		// The IPv4 set gone and the kernel rules that looked it up: both
		// directions of policy "named" refilled with their IPv6 rule.
		{"a named port family emptied", func(rs *Ruleset) { rs.PortSets[0].Members = rs.PortSets[0].Members[1:2] },
			Stats{SetsDeleted: 1, ChainsFlushed: 2, RulesAdded: 2}},
		// A new group chain (clear, two policies, end of tier: no
		// profile after a tier that cannot pass) and open-in, the map
		// element pointed at it, the old group gone.
		{"a forward path changed", func(rs *Ruleset) { rs.HostEndpoints[0].ForwardIngress = tierPath("named", "open") },
			Stats{ChainsAdded: 2, RulesAdded: 7, ElemsAdded: 1, ElemsDeleted: 1, ChainsFlushed: 1, ChainsDeleted: 1}},
		{"an untracked path changed", func(rs *Ruleset) { rs.HostEndpoints[0].UntrackedIngress = tierPath("from-nets") },
			Stats{ChainsAdded: 1, RulesAdded: 4, ElemsAdded: 1, ElemsDeleted: 1, ChainsFlushed: 1, ChainsDeleted: 1}},
		// A new interval set, the policy's chain refilled, the hash set
		// deleted (the Set has no IPv6 member, so no IPv6 set).
		{"a set's first net", func(rs *Ruleset) { rs.Sets[1].Nets = prefixes("10.9.0.0/24") },
			Stats{SetsAdded: 1, ElemsAdded: 1, ChainsFlushed: 1, RulesAdded: 1, SetsDeleted: 1}},
		// The first IPv6 member: its set, and the policy's chain refilled
		// with the rule that looks it up.
		{"a set's first IPv6 member", func(rs *Ruleset) { rs.Sets[1].Members = append(rs.Sets[1].Members, addr("fd00:9::1")) },
			Stats{SetsAdded: 1, ElemsAdded: 1, ChainsFlushed: 1, RulesAdded: 2}},
	}
}

func TestFakeNewKindsChangeOnlyTheDifference(t *testing.T) {
	for _, c := range newKindChanges() {
		t.Run(c.name, func(t *testing.T) {
			to := stagesBase()
			c.change(&to)
			step(t, NewFake(), stagesBase(), to, c.want)
		})
	}
}
