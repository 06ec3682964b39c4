package nft

import (
	"context"
	"io"
	"log/slog"
	"net/netip"
	"slices"
	"testing"
	"time"

	"calico/internal/testutil"
)

// benchApplier applies base in a fresh namespace and returns the Applier
// and how long that first full load took.
func benchApplier(b *testing.B, base Ruleset) (*Applier, time.Duration) {
	testutil.Privileged(b)
	ns := testutil.NewNetNS(b)
	a := New(slog.New(slog.NewTextHandler(io.Discard, nil)), WithNetNS(int(ns.Handle())))
	b.Cleanup(func() { a.Close() })
	start := time.Now()
	if err := a.Apply(context.Background(), base); err != nil {
		b.Fatal(err)
	}
	return a, time.Since(start)
}

// toggle applies two Rulesets alternately, then checks what going from x
// to y changes. It reports the initial load as a metric too.
func toggle(b *testing.B, a *Applier, initial time.Duration, x, y Ruleset, want Stats) {
	ctx := context.Background()
	i := 0
	for b.Loop() {
		rs := x
		if i%2 == 1 {
			rs = y
		}
		if err := a.Apply(ctx, rs); err != nil {
			b.Fatal(err)
		}
		i++
	}
	b.ReportMetric(float64(initial.Milliseconds()), "initial-load-ms")
	for _, rs := range []Ruleset{x, y} {
		if err := a.Apply(ctx, rs); err != nil {
			b.Fatal(err)
		}
	}
	if a.lastSource != "memory" || a.last != want {
		b.Errorf("Apply from %s changed %+v, want %+v", a.lastSource, a.last, want)
	}
}

// withEndpoint is rs with one more endpoint on a path no other has.
func withEndpoint(rs Ruleset) Ruleset {
	rs.Workloads = append(rs.Workloads[:len(rs.Workloads):len(rs.Workloads)], Endpoint{
		Iface: "cali-bench", Addrs: addrs("10.66.0.1", "fd00:66::1"),
		Ingress: Path{Tiers: []Tier{{Name: "default", Policies: []string{"policy-1", "policy-2"}}}, Profiles: []string{"group-0"}},
		Egress:  Path{Profiles: []string{"group-0"}},
	})
	return rs
}

// bigSet is one endpoint whose ingress admits the members of a set of n
// addresses.
func bigSet(n int) Ruleset {
	members := make([]netip.Addr, n)
	for i := range members {
		members[i] = netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)})
	}
	return Ruleset{
		Workloads: []Endpoint{{Iface: "cali1", Addrs: addrs("10.65.0.1"), Ingress: profilePath("p"), Egress: profilePath("p")}},
		Policies:  []Policy{{Name: "p", Ingress: []Rule{{Action: Allow, Src: Match{Set: "big"}}}, Egress: []Rule{{Action: Allow}}}},
		Sets:      []Set{{Name: "big", Members: members}},
	}
}

// bigNetSet is bigSet with a net in the set, which makes it an interval
// set, and its members spaced so that no two merge into one range.
func bigNetSet(n int) Ruleset {
	rs := bigSet(0)
	s := Set{Name: "big", Nets: prefixes("192.168.0.0/16")}
	for i := range n {
		s.Members = append(s.Members, spacedAddr(i))
	}
	rs.Sets = []Set{s}
	return rs
}

// BenchmarkPrivilegedApplyNetSetElement adds and removes one member of an
// interval set of 100,000 ranges.
func BenchmarkPrivilegedApplyNetSetElement(b *testing.B) {
	base := bigNetSet(100_000)
	a, initial := benchApplier(b, base)
	less := bigNetSet(100_000)
	less.Sets[0].Members = less.Sets[0].Members[1:]
	toggle(b, a, initial, less, base, Stats{ElemsAdded: 1})
}

// BenchmarkPrivilegedApplyEndpoint adds and removes one endpoint (on a
// new path: its group chain too) in a table of 1,000 endpoints and 500
// policies.
func BenchmarkPrivilegedApplyEndpoint(b *testing.B) {
	base := big(1000, 500)
	a, initial := benchApplier(b, base)
	toggle(b, a, initial, withEndpoint(base), base, Stats{ElemsDeleted: 4, ChainsFlushed: 2, ChainsDeleted: 2})
}

// BenchmarkPrivilegedApplySetElement adds and removes one element of a
// set of 100,000.
func BenchmarkPrivilegedApplySetElement(b *testing.B) {
	base := bigSet(100_000)
	a, initial := benchApplier(b, base)
	less := bigSet(100_000)
	less.Sets[0].Members = less.Sets[0].Members[1:]
	toggle(b, a, initial, less, base, Stats{ElemsAdded: 1})
}

// BenchmarkPrivilegedApplyPolicy changes one rule of one policy in a table
// of 1,000 endpoints and 500 policies; the rest of the Ruleset is the
// same slices, as the agent gives them.
func BenchmarkPrivilegedApplyPolicy(b *testing.B) {
	base := big(1000, 500)
	a, initial := benchApplier(b, base)
	changed := base
	changed.Policies = slices.Clone(base.Policies)
	changed.Policies[3].Ingress = slices.Clone(base.Policies[3].Ingress)
	changed.Policies[3].Ingress[0].Dst.Ports = []PortRange{{8080, 8080}}
	toggle(b, a, initial, changed, base, Stats{ChainsFlushed: 1, RulesAdded: 7})
}

// BenchmarkPrivilegedApplyNoChange re-applies the same table of 1,000
// endpoints and 500 policies: render, check the generation, send nothing.
func BenchmarkPrivilegedApplyNoChange(b *testing.B) {
	base := big(1000, 500)
	a, initial := benchApplier(b, base)
	toggle(b, a, initial, base, base, Stats{})
}

// BenchmarkPrivilegedReadBack reads back the table of 1,000 endpoints,
// 500 policies and a set of 100,000 addresses: the cost of an Apply after
// someone else committed.
func BenchmarkPrivilegedReadBack(b *testing.B) {
	rs := big(1000, 500)
	rs.Sets = append(rs.Sets, bigSet(100_000).Sets...)
	a, _ := benchApplier(b, rs)
	for b.Loop() {
		r, err := dialReader(a.netns, time.Now().Add(time.Minute))
		if err != nil {
			b.Fatal(err)
		}
		if _, err := r.readTable(); err != nil {
			b.Fatal(err)
		}
		r.close()
	}
}

// BenchmarkRender is the Go side of every Apply.
func BenchmarkRender(b *testing.B) {
	for _, tc := range []struct {
		name string
		rs   Ruleset
	}{{"1000 endpoints 500 policies", big(1000, 500)}, {"set of 100000", bigSet(100_000)}, {"interval set of 100000", bigNetSet(100_000)}} {
		b.Run(tc.name, func(b *testing.B) {
			for b.Loop() {
				if _, err := Render(tc.rs); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkRenderChange is the Go side of an Apply for a change of one
// policy: the rendering with its memory of the last one.
func BenchmarkRenderChange(b *testing.B) {
	base := big(1000, 500)
	for i := range base.Policies {
		base.Policies[i].Version = "1"
	}
	changed := base
	changed.Policies = slices.Clone(base.Policies)
	changed.Policies[3].Version = "2"
	changed.Policies[3].Ingress = slices.Clone(base.Policies[3].Ingress)
	changed.Policies[3].Ingress[0].Dst.Ports = []PortRange{{8080, 8080}}
	var r renderer
	i := 0
	for b.Loop() {
		rs := base
		if i%2 == 1 {
			rs = changed
		}
		if _, err := r.render(rs); err != nil {
			b.Fatal(err)
		}
		i++
	}
}
