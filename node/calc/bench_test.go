package calc

import (
	"fmt"
	"net/netip"
	"runtime"
	"testing"

	"calico/internal/testutil"
	"calico/nft"
	"calico/store"
)

// benchInput is the shape of the policy benchmark in the lab: three hosts
// with 1,000 endpoints each (labels app a0-a49, role r0-r99, tier t0-t4,
// namespaces ns-0 to ns-3, profiles p0-p19), 250 GlobalNetworkPolicies
// and 250 NetworkPolicies of 7 rules with selectors of five shapes.
func benchInput() Input { return benchInputSized(3, 1000, 250) }

// benchInputSized is benchInput with hosts hosts of n endpoints and
// 2*policies policies.
func benchInputSized(hosts, n, policies int) Input {
	in := Input{Node: "host1"}
	for p := range 20 {
		name := fmt.Sprintf("p%d", p)
		in.Add(&store.Profile{Metadata: store.ObjectMeta{Name: name, ResourceVersion: "1"}, Spec: store.ProfileSpec{
			LabelsToApply: map[string]string{name: ""},
			Ingress:       []store.Rule{{Action: "Allow", Source: store.EntityRule{Selector: "has(" + name + ")"}}},
			Egress:        []store.Rule{{Action: "Allow"}},
		}})
	}
	for h := range hosts {
		node := fmt.Sprintf("host%d", h+1)
		for i := range n {
			a4 := netip.AddrFrom4([4]byte{10, byte(65 + h/64), byte(h%64*4 + i>>8), byte(i)}) // unique up to 1,024 per host
			in.Add(&store.WorkloadEndpoint{
				Metadata: store.ObjectMeta{Name: fmt.Sprintf("%s-w%d", node, i), Namespace: fmt.Sprintf("ns-%d", i%4), ResourceVersion: "1",
					Labels: map[string]string{"app": fmt.Sprintf("a%d", i%50), "role": fmt.Sprintf("r%d", i%100), "tier": fmt.Sprintf("t%d", i%5)}},
				Spec: store.WorkloadEndpointSpec{Node: node, Orchestrator: "calico", InterfaceName: fmt.Sprintf("cali%011x", h<<16|i),
					Profiles: []string{fmt.Sprintf("p%d", i%20)}, IPNetworks: []string{a4.String() + "/32", fmt.Sprintf("fd00:65::%x:%x/128", h, i)}},
			})
		}
	}
	selector := func(k int) string {
		a := k % 50
		switch k % 5 {
		case 0:
			return fmt.Sprintf("app == 'a%d'", a)
		case 1:
			return fmt.Sprintf("app == 'a%d' && tier == 't%d'", a, a%5)
		case 2:
			return fmt.Sprintf("app in {'a%d', 'a%d'}", a, (a+25)%50)
		case 3:
			return fmt.Sprintf("has(role) && app == 'a%d'", a)
		}
		return fmt.Sprintf("role == 'r%d' || app == 'a%d'", k%100, a)
	}
	tcp := &store.Protocol{Num: 6}
	udp := &store.Protocol{Num: 17}
	for k := range policies {
		order := float64(100 + k)
		spec := store.NetworkPolicySpec{
			Order: &order, Selector: selector(k), Types: []string{"Ingress", "Egress"},
			Ingress: []store.Rule{
				{Action: "Allow", Protocol: tcp, Source: store.EntityRule{Selector: fmt.Sprintf("role == 'r%d'", (k*7)%100)}, Destination: store.EntityRule{Ports: []store.Port{{First: 80, Last: 80}, {First: 443, Last: 443}}}},
				{Action: "Allow", Protocol: tcp, Source: store.EntityRule{Selector: fmt.Sprintf("app == 'a%d'", (k+1)%50)}, Destination: store.EntityRule{Ports: []store.Port{{First: uint16(8000 + k%100), Last: uint16(8000 + k%100)}}}},
				{Action: "Deny", Source: store.EntityRule{Nets: []string{"192.0.2.0/24", "2001:db8::/32"}}},
				{Action: "Pass", Protocol: udp},
			},
			Egress: []store.Rule{
				{Action: "Allow", Protocol: tcp, Destination: store.EntityRule{Selector: fmt.Sprintf("app == 'a%d'", (k+7)%50), Ports: []store.Port{{First: 5432, Last: 5432}}}},
				{Action: "Allow", Protocol: udp, Destination: store.EntityRule{Ports: []store.Port{{First: 53, Last: 53}}}},
				{Action: "Deny", Destination: store.EntityRule{Nets: []string{"169.254.0.0/16"}}},
			},
		}
		in.Add(&store.NetworkPolicy{Metadata: store.ObjectMeta{Name: fmt.Sprintf("np-%03d", k), Namespace: fmt.Sprintf("ns-%d", k%4), ResourceVersion: "1"}, Spec: spec})
		g := store.GlobalNetworkPolicySpec{Order: spec.Order, Selector: spec.Selector, Types: spec.Types, Ingress: spec.Ingress, Egress: spec.Egress}
		in.Add(&store.GlobalNetworkPolicy{Metadata: store.ObjectMeta{Name: fmt.Sprintf("gnp-%03d", k), ResourceVersion: "1"}, Spec: g})
	}
	return in
}

// BenchmarkCompute is the agent's whole calculation at the lab benchmark's
// scale: what every policy change costs before nftables.
func BenchmarkCompute(b *testing.B) {
	in := benchInput()
	var d Desired
	for b.Loop() {
		d = Compute(in)
	}
	if len(d.Problems) > 0 || len(d.Ruleset.Workloads) != 1000 {
		b.Fatalf("%d workloads, problems %v", len(d.Ruleset.Workloads), d.Problems)
	}
	b.ReportMetric(float64(len(d.Ruleset.Sets)), "sets")
	b.ReportMetric(float64(len(d.Ruleset.Policies)), "policies")
}

// BenchmarkComputeAndRender adds the rendering of the table, which every
// Apply does before it diffs against the kernel's.
func BenchmarkComputeAndRender(b *testing.B) {
	in := benchInput()
	for b.Loop() {
		if _, err := nft.Render(Compute(in).Ruleset); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkCalculatorPolicyChange is what the agent computes for a change
// of one rule of one policy, with its memory of the previous state.
func BenchmarkCalculatorPolicyChange(b *testing.B) {
	in := benchInput()
	deny := *in.GlobalPolicies[0]
	deny.Metadata.ResourceVersion = "2" // as the agent's cache has it: a new write, a new revision
	deny.Spec.Ingress = append([]store.Rule{{Action: "Deny"}}, deny.Spec.Ingress...)
	versions := []*store.GlobalNetworkPolicy{in.GlobalPolicies[0], &deny}
	var k Calculator
	k.Compute(in)
	i := 0
	for b.Loop() {
		i++
		in.GlobalPolicies[0] = versions[i%2]
		k.Compute(in)
	}
}

// BenchmarkCalculatorEndpointChange is what the agent computes when one
// remote workload's labels change among 100 hosts of 1,000 workloads (the
// fleet-scale shape: most endpoints are other hosts'), with 50 policies.
func BenchmarkCalculatorEndpointChange(b *testing.B) {
	in := benchInputSized(100, 1000, 25)
	change := toggleLastWorkload(in)
	var k Calculator
	k.Compute(in)
	i := 0
	for b.Loop() {
		i++
		change(i)
		k.Compute(in)
	}
}

// toggleLastWorkload changes the labels of in's last workload (a remote
// one) to new ones at odd i and back at even i, each a new value at a new
// revision as the agent's cache makes it.
func toggleLastWorkload(in Input) func(i int) {
	last := len(in.Workloads) - 1
	w0 := in.Workloads[last]
	w1 := *w0
	w1.Metadata.ResourceVersion = "2"
	w1.Metadata.Labels = map[string]string{"app": "a7", "role": "r7", "tier": "t2"}
	versions := []*store.WorkloadEndpoint{w0, &w1}
	return func(i int) { in.Workloads[last] = versions[i%2] }
}

// BenchmarkComputeFleet is a fresh node's first calculation among 300
// and 1,000 hosts of 100 endpoints each (the scale benchmark's shape),
// to show that it grows with the resources, not faster.
func BenchmarkComputeFleet(b *testing.B) {
	for _, hosts := range []int{300, 1000} {
		b.Run(fmt.Sprintf("hosts=%d", hosts), func(b *testing.B) {
			in := benchInputSized(hosts, 100, 10)
			for b.Loop() {
				var k Calculator
				k.Compute(in)
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(hosts*100), "ns/endpoint")
		})
	}
}

// BenchmarkCalculatorMemory is what a Calculator keeps between passes
// for the endpoints of 1,000 hosts of 100 (the scale benchmark's shape):
// the heap still in use after a pass and a collection, beyond the input
// itself, per endpoint. It grows with the fleet, not with this host's
// share of it (docs/scale.md, "Node memory").
func BenchmarkCalculatorMemory(b *testing.B) {
	in := benchInputSized(1000, 100, 10)
	n := len(in.Workloads)
	var perEndpoint float64
	for b.Loop() {
		before := testutil.LiveHeap()
		var k Calculator
		k.Compute(in)
		perEndpoint = float64(testutil.LiveHeap()-before) / float64(n)
		runtime.KeepAlive(&k)
	}
	b.ReportMetric(perEndpoint, "B/endpoint")
}

// BenchmarkComputeBGPFleet is a pass's BGP calculation on a client host
// among 1,000 hosts of 100 workloads (the scale benchmark's shape): the
// package's ComputeBGP, which looks at every workload and reads every
// Node, and the Calculator's, after the pass's Compute.
func BenchmarkComputeBGPFleet(b *testing.B) {
	in := benchInputSized(1000, 100, 10)
	for h := range 1000 {
		in.Nodes = append(in.Nodes, &store.Node{Metadata: store.ObjectMeta{Name: fmt.Sprintf("host%d", h+1), ResourceVersion: "1"},
			Spec: store.NodeSpec{BGP: &store.NodeBGPSpec{IPv4Address: fmt.Sprintf("172.30.%d.%d/16", h>>8, h&255)}}})
	}
	in.Pools = []*store.IPPool{{Metadata: store.ObjectMeta{Name: "p"}, Spec: store.IPPoolSpec{CIDR: "10.64.0.0/10"}}}
	in.Voters = []netip.Addr{netip.MustParseAddr("172.30.0.1"), netip.MustParseAddr("172.30.0.2"), netip.MustParseAddr("172.30.0.3")}
	b.Run("fresh", func(b *testing.B) {
		for b.Loop() {
			ComputeBGP(in)
		}
	})
	b.Run("calculator", func(b *testing.B) {
		var k Calculator
		k.Compute(in)
		for b.Loop() {
			k.ComputeBGP(in)
		}
	})
}
