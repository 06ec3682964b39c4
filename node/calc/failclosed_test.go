package calc

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	"calico/store"
)

// The differential fail-closed property: for random policies, breaking
// one constraint of one rule (so that the node cannot evaluate it as
// written, the way data another tool wrote can be broken) never lets
// through a flow that the intact policies deny. For a broken Allow (or
// Log) the allowed flows are exactly those with the rule removed.

// flows are every ordered pair of the workloads with a few packets.
var failFlows = []Packet{
	{Protocol: 6, DstPort: 80, SrcPort: 40000}, {Protocol: 6, DstPort: 443, SrcPort: 40001},
	{Protocol: 17, DstPort: 53, SrcPort: 40002}, {Protocol: 1, ICMPType: 8},
}

// allowedFlows traces every flow between every two workloads.
func allowedFlows(t *testing.T, in Input) map[string]bool {
	t.Helper()
	out := map[string]bool{}
	for _, from := range in.Workloads {
		for _, to := range in.Workloads {
			if from == to {
				continue
			}
			for _, p := range failFlows {
				r, err := Trace(in, from, to, p)
				if err != nil {
					t.Fatal(err)
				}
				if r.Allowed {
					out[fmt.Sprintf("%s>%s %d/%d", from.Spec.Workload, to.Spec.Workload, p.Protocol, p.DstPort)] = true
				}
			}
		}
	}
	return out
}

var (
	failLabels = []string{"web", "db", "ops"}
	failNets   = []string{"10.65.0.0/24", "10.65.0.1/32", "10.65.0.2/32", "10.66.0.0/16"}
)

// randomRule is a rule with a few random constraints.
func randomRule(r *rand.Rand) store.Rule {
	rule := store.Rule{Action: []string{"Allow", "Deny", "Pass", "Log"}[r.IntN(4)]}
	if r.IntN(2) == 0 {
		p := []store.Protocol{{Name: "TCP", Num: 6}, {Name: "UDP", Num: 17}}[r.IntN(2)]
		rule.Protocol = &p
		if r.IntN(2) == 0 {
			rule.Destination.Ports = []store.Port{{First: 80, Last: 80}, {First: 53, Last: 53}}[r.IntN(2):]
		}
	}
	sel := func() string { return fmt.Sprintf("role == '%s'", failLabels[r.IntN(len(failLabels))]) }
	end := &rule.Source
	if r.IntN(2) == 0 {
		end = &rule.Destination
	}
	switch r.IntN(5) {
	case 0:
		end.Selector = sel()
	case 1:
		end.NotSelector = sel()
	case 2:
		end.Nets = []string{failNets[r.IntN(len(failNets))]}
	case 3:
		end.NotNets = []string{failNets[r.IntN(len(failNets))]}
	}
	return rule
}

// randomInput is three workloads on this host and up to four policies in
// up to two tiers.
func randomInput(r *rand.Rand) Input {
	in := Input{Node: "h1"}
	for i, role := range failLabels {
		w := store.KindWorkloadEndpoint.New().(*store.WorkloadEndpoint)
		w.Metadata.Name, w.Metadata.Namespace = "h1-calico-"+role+"-eth0", "default"
		w.Metadata.Labels = map[string]string{"role": role}
		w.Spec = store.WorkloadEndpointSpec{Node: "h1", Orchestrator: "calico", Workload: role, Endpoint: "eth0",
			InterfaceName: fmt.Sprintf("cali%d", i), IPNetworks: []string{fmt.Sprintf("10.65.0.%d/32", i+1)}, Profiles: []string{"open"}}
		in.Workloads = append(in.Workloads, w)
	}
	open := store.KindProfile.New().(*store.Profile)
	open.Metadata.Name = "open"
	open.Spec.Ingress, open.Spec.Egress = []store.Rule{{Action: "Allow"}}, []store.Rule{{Action: "Allow"}}
	in.Profiles = []*store.Profile{open}
	in.Tiers = []*store.Tier{store.NewTier("first", 10, []string{"Deny", "Pass"}[r.IntN(2)])}
	for i := range 1 + r.IntN(4) {
		g := store.KindGlobalNetworkPolicy.New().(*store.GlobalNetworkPolicy)
		g.Metadata.Name = fmt.Sprintf("p%d", i)
		g.Spec.Tier = []string{"first", "default"}[r.IntN(2)]
		o := float64(r.IntN(3))
		g.Spec.Order = &o
		if r.IntN(3) > 0 {
			g.Spec.Selector = fmt.Sprintf("role != '%s'", failLabels[r.IntN(len(failLabels))])
		}
		g.Spec.Types = []string{"Ingress", "Egress"}
		for range 1 + r.IntN(3) {
			g.Spec.Ingress = append(g.Spec.Ingress, randomRule(r))
		}
		for range r.IntN(3) {
			g.Spec.Egress = append(g.Spec.Egress, randomRule(r))
		}
		in.GlobalPolicies = append(in.GlobalPolicies, g)
	}
	return in
}

// breakOne breaks one constraint of one rule and returns where: as a
// problem the datastore reported, or as a value that does not parse.
func breakOne(r *rand.Rand, in Input) (pol *store.GlobalNetworkPolicy, dir string, index int, ok bool) {
	pol = in.GlobalPolicies[r.IntN(len(in.GlobalPolicies))]
	rules, dir := &pol.Spec.Ingress, "ingress"
	if len(pol.Spec.Egress) > 0 && r.IntN(2) == 0 {
		rules, dir = &pol.Spec.Egress, "egress"
	}
	index = r.IntN(len(*rules))
	rule := &(*rules)[index]
	field := ""
	for _, f := range []struct {
		name string
		set  bool
		bad  func()
	}{
		{"source.selector", rule.Source.Selector != "", func() { rule.Source.Selector += " &&" }},
		{"destination.selector", rule.Destination.Selector != "", func() { rule.Destination.Selector += " &&" }},
		{"source.notSelector", rule.Source.NotSelector != "", func() { rule.Source.NotSelector = "has(" }},
		{"destination.notSelector", rule.Destination.NotSelector != "", func() { rule.Destination.NotSelector = "has(" }},
		{"source.nets", len(rule.Source.Nets) > 0, func() { rule.Source.Nets = append(rule.Source.Nets, "10.1.2.3/40") }},
		{"destination.notNets", len(rule.Destination.NotNets) > 0, func() { rule.Destination.NotNets = []string{"nope"} }},
		{"destination.ports", len(rule.Destination.Ports) > 0, nil},
		{"protocol", rule.Protocol != nil, nil},
	} {
		if f.set {
			field = f.name
			if f.bad != nil && r.IntN(2) == 0 {
				f.bad() // a value that does not parse
				return pol, dir, index, true
			}
		}
	}
	if field == "" {
		field = "source.serviceAccounts" // a constraint the node does not implement
	}
	pol.Metadata.Problems = append(pol.Metadata.Problems, store.FieldError{Field: fmt.Sprintf("spec.%s[%d].%s", dir, index, field), Msg: "cannot be used"})
	return pol, dir, index, true
}

func TestFailClosedProperty(t *testing.T) {
	seeds := 400
	if testing.Short() {
		seeds = 60
	}
	widened := 0
	for seed := range seeds {
		r := rand.New(rand.NewPCG(uint64(seed), 11))
		intact := randomInput(r)
		want := allowedFlows(t, intact)

		broken := randomInput(rand.New(rand.NewPCG(uint64(seed), 11)))
		pol, dir, index, _ := breakOne(r, broken)
		got := allowedFlows(t, broken)
		for f := range got {
			if !want[f] {
				t.Fatalf("seed %d: breaking %s %s rule %d let %s through, which the intact policies deny", seed, pol.Metadata.Name, dir, index, f)
			}
		}
		if a := brokenAction(pol, dir, index); a == "Allow" || a == "Log" {
			removed := randomInput(rand.New(rand.NewPCG(uint64(seed), 11)))
			p := removed.GlobalPolicies[slices.IndexFunc(removed.GlobalPolicies, func(g *store.GlobalNetworkPolicy) bool { return g.Metadata.Name == pol.Metadata.Name })]
			rules := &p.Spec.Ingress
			if dir == "egress" {
				rules = &p.Spec.Egress
			}
			*rules = slices.Delete(slices.Clone(*rules), index, index+1)
			if w := allowedFlows(t, removed); fmt.Sprint(w) != fmt.Sprint(got) {
				t.Fatalf("seed %d: a broken %s rule allows %v; with the rule removed %v", seed, a, keys(got), keys(w))
			}
		}
		if len(got) < len(want) {
			widened++
		}
		if d := Compute(broken); d.Ruleset.Validate() != nil || len(d.Problems) == 0 {
			t.Fatalf("seed %d: the broken input renders %v with problems %q; want a valid table and the problem reported", seed, d.Ruleset.Validate(), d.Problems)
		}
	}
	if widened == 0 {
		t.Errorf("no broken rule ever denied more than the intact one: the property was never exercised")
	}
}

func brokenAction(g *store.GlobalNetworkPolicy, dir string, i int) string {
	if dir == "egress" {
		return g.Spec.Egress[i].Action
	}
	return g.Spec.Ingress[i].Action
}

func keys(m map[string]bool) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}
