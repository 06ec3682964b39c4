package calc

import (
	"fmt"
	"slices"
	"testing"

	"calico/nft"
	"calico/store"
)

// TestCalculatorEqualsCompute replays a sequence of datastore changes, as
// the agent's cache makes them (a changed resource is a new value at a new
// revision), and checks after each that the Calculator's result is
// Compute's, down to the rendered table.
func TestCalculatorEqualsCompute(t *testing.T) {
	in := benchInputSized(2, 60, 30)
	rev := 1
	replace := func(list any, i int, r store.Resource) {
		rev++
		r.Meta().ResourceVersion = fmt.Sprint(rev)
		switch l := list.(type) {
		case []*store.GlobalNetworkPolicy:
			l[i] = r.(*store.GlobalNetworkPolicy)
		case []*store.NetworkPolicy:
			l[i] = r.(*store.NetworkPolicy)
		case []*store.WorkloadEndpoint:
			l[i] = r.(*store.WorkloadEndpoint)
		case []*store.Profile:
			l[i] = r.(*store.Profile)
		case []*store.GlobalNetworkSet:
			l[i] = r.(*store.GlobalNetworkSet)
		}
	}
	steps := []struct {
		name   string
		change func()
	}{
		{"nothing", func() {}},
		{"a rule of a policy", func() {
			g := *in.GlobalPolicies[3]
			g.Spec.Ingress = slices.Clone(g.Spec.Ingress)
			g.Spec.Ingress[0].Action = "Deny"
			replace(in.GlobalPolicies, 3, &g)
		}},
		{"a rule's selector, to one that does not parse", func() {
			g := *in.GlobalPolicies[4]
			g.Spec.Egress = slices.Clone(g.Spec.Egress)
			g.Spec.Egress[0].Destination.Selector = "app == "
			replace(in.GlobalPolicies, 4, &g)
		}},
		{"a policy's selector", func() {
			p := *in.Policies[5]
			p.Spec.Selector = "tier == 't1'"
			replace(in.Policies, 5, &p)
		}},
		{"a policy's order", func() {
			p := *in.Policies[6]
			o := -1.0
			p.Spec.Order = &o
			replace(in.Policies, 6, &p)
		}},
		{"a workload's labels", func() {
			w := *in.Workloads[7]
			w.Metadata.Labels = map[string]string{"app": "a3", "role": "r9"}
			replace(in.Workloads, 7, &w)
		}},
		{"a remote workload's labels", func() {
			w := *in.Workloads[65] // host2's
			w.Metadata.Labels = map[string]string{"app": "a4", "role": "r2"}
			replace(in.Workloads, 65, &w)
		}},
		{"a workload added", func() {
			w := *in.Workloads[8]
			w.Metadata.Name += "-new"
			w.Spec.InterfaceName = "calinew"
			w.Spec.IPNetworks = []string{"10.99.0.1/32"}
			rev++
			w.Metadata.ResourceVersion = fmt.Sprint(rev)
			in.Workloads = append(in.Workloads, &w)
		}},
		{"a workload removed", func() { in.Workloads = slices.Delete(in.Workloads, 9, 10) }},
		{"a workload alone in its group moves to a new one, emptying the old", func() {
			w := *in.Workloads[11]
			w.Metadata.Labels = map[string]string{"app": "a-only", "role": "r5"}
			replace(in.Workloads, 11, &w)
		}},
		{"it moves back", func() {
			w := *in.Workloads[11]
			w.Metadata.Labels = map[string]string{"app": "a1", "role": "r5"}
			replace(in.Workloads, 11, &w)
		}},
		{"a remote workload claims a local one's address", func() {
			w := *in.Workloads[70] // host2's
			w.Spec.IPNetworks = slices.Clone(in.Workloads[12].Spec.IPNetworks)
			replace(in.Workloads, 70, &w)
		}},
		{"the conflict resolved", func() {
			w := *in.Workloads[70]
			w.Spec.IPNetworks = []string{"10.98.0.70/32"}
			replace(in.Workloads, 70, &w)
		}},
		{"the workloads listed twice", func() { in.Workloads = append(in.Workloads, in.Workloads...) }},
		{"and once again", func() { in.Workloads = slices.Clone(in.Workloads[:len(in.Workloads)/2]) }},
		{"a profile's labels", func() {
			p := *in.Profiles[1]
			p.Spec.LabelsToApply = map[string]string{"p1": "", "extra": "yes"}
			replace(in.Profiles, 1, &p)
		}},
		{"a profile removed", func() { in.Profiles = slices.Delete(in.Profiles, 2, 3) }},
		{"a policy removed", func() { in.GlobalPolicies = slices.Delete(in.GlobalPolicies, 0, 1) }},
		{"a host endpoint", func() {
			in.Add(&store.HostEndpoint{Metadata: store.ObjectMeta{Name: "h", Labels: map[string]string{"app": "a1"}},
				Spec: store.HostEndpointSpec{Node: "host1", InterfaceName: "*", ExpectedIPs: []string{"172.31.1.11"}}})
		}},
		{"a namespaceSelector that does not parse", func() {
			g := *in.GlobalPolicies[5]
			g.Spec.NamespaceSelector = "has("
			replace(in.GlobalPolicies, 5, &g)
		}},
		{"two policies sharing a rule selector that does not parse", func() {
			for _, i := range []int{6, 7} {
				g := *in.GlobalPolicies[i]
				g.Spec.Ingress = slices.Clone(g.Spec.Ingress)
				g.Spec.Ingress[0].Source.Selector = "role =="
				replace(in.GlobalPolicies, i, &g)
			}
		}},
		{"one of them no longer using it", func() {
			g := *in.GlobalPolicies[6]
			g.Spec.Ingress = slices.Clone(g.Spec.Ingress)
			g.Spec.Ingress[0].Source.Selector = "role == 'r1'"
			replace(in.GlobalPolicies, 6, &g)
		}},
		{"a network set that rules pick", func() {
			n := store.KindGlobalNetworkSet.New().(*store.GlobalNetworkSet)
			n.Metadata.Name, n.Metadata.Labels, n.Metadata.ResourceVersion = "ns1", map[string]string{"role": "r1"}, fmt.Sprint(rev+1)
			n.Spec.Nets = []string{"192.0.2.0/24"}
			rev++
			in.GlobalSets = append(in.GlobalSets, n)
		}},
		{"the network set becomes unreadable", func() {
			n := *in.GlobalSets[0]
			n.Metadata.Problems = []store.FieldError{{Field: "spec.nets[0]", Msg: "broken"}}
			replace(in.GlobalSets, 0, &n)
		}},
		{"a tier for a policy", func() {
			in.Tiers = append(in.Tiers, store.NewTier("t1", 5, "Pass"))
			g := *in.GlobalPolicies[2]
			g.Spec.Tier = "t1"
			replace(in.GlobalPolicies, 2, &g)
		}},
		{"the tier becomes unusable (its policy denies, at the same version)", func() {
			tr := *in.Tiers[len(in.Tiers)-1]
			tr.Metadata.Problems = []store.FieldError{{Field: "spec.order", Msg: "broken"}}
			in.Tiers = append(slices.Clone(in.Tiers[:len(in.Tiers)-1]), &tr)
		}},
		{"and usable again", func() {
			tr := *in.Tiers[len(in.Tiers)-1]
			tr.Metadata.Problems = nil
			in.Tiers = append(slices.Clone(in.Tiers[:len(in.Tiers)-1]), &tr)
		}},
		{"a named port", func() {
			w := *in.Workloads[3]
			w.Spec.Ports = []store.WorkloadEndpointPort{{EndpointPort: store.EndpointPort{Name: "http", Protocol: store.Protocol{Name: "TCP", Num: 6}, Port: 8080}}}
			replace(in.Workloads, 3, &w)
			g := *in.GlobalPolicies[3]
			g.Spec.Ingress = append(slices.Clone(g.Spec.Ingress), store.Rule{Action: "Allow", Destination: store.EntityRule{Ports: []store.Port{{Name: "http"}}}})
			replace(in.GlobalPolicies, 3, &g)
		}},
		{"nothing again", func() {}},
		{"the same input in another order", func() { slices.Reverse(in.Workloads); slices.Reverse(in.GlobalPolicies) }},
	}
	var k Calculator
	for _, s := range steps {
		s.change()
		got, want := k.Compute(in), Compute(in)
		if g, w := got.String(), want.String(); g != w {
			t.Fatalf("after %s: the Calculator's result differs from Compute's:\n%s\nwant:\n%s", s.name, g, w)
		}
		if !SameRules(got, want) {
			t.Fatalf("after %s: the Calculator's rules differ from Compute's", s.name)
		}
		if g, w := fmt.Sprint(sorted(got.Problems)), fmt.Sprint(sorted(want.Problems)); g != w {
			t.Errorf("after %s: problems %s, want %s", s.name, g, w)
		}
		gt, err1 := nft.Render(got.Ruleset)
		wt, err2 := nft.Render(want.Ruleset)
		if fmt.Sprint(err1) != fmt.Sprint(err2) || err1 == nil && gt.String() != wt.String() {
			t.Fatalf("after %s: the rendered tables differ (%v, %v)", s.name, err1, err2)
		}
	}
}

func sorted(s []string) []string { return slices.Sorted(slices.Values(s)) }

// TestCalculatorReusesLocals: a change that leaves this host's endpoints
// and their paths as they were (a policy's rules, a remote workload's
// labels) reuses the last pass's endpoints whole; one to a local
// workload, or to a policy's selector, lists them again.
func TestCalculatorReusesLocals(t *testing.T) {
	in := benchInputSized(2, 60, 30)
	var k Calculator
	last := k.Compute(in).Ruleset.Workloads
	steps := []struct {
		name   string
		reused bool
		change func()
	}{
		{"a rule of a policy", true, func() {
			g := *in.GlobalPolicies[3]
			g.Metadata.ResourceVersion = "2"
			g.Spec.Ingress = append([]store.Rule{{Action: "Deny"}}, g.Spec.Ingress...)
			in.GlobalPolicies[3] = &g
		}},
		{"a remote workload's labels", true, func() {
			w := *in.Workloads[65]
			w.Metadata.ResourceVersion = "3"
			w.Metadata.Labels = map[string]string{"app": "a4"}
			in.Workloads[65] = &w
		}},
		{"a local workload's labels", false, func() {
			w := *in.Workloads[5]
			w.Metadata.ResourceVersion = "4"
			w.Metadata.Labels = map[string]string{"app": "a4"}
			in.Workloads[5] = &w
		}},
		{"a policy's selector", false, func() {
			g := *in.GlobalPolicies[4]
			g.Metadata.ResourceVersion = "5"
			g.Spec.Selector = "app == 'a4'"
			in.GlobalPolicies[4] = &g
		}},
		{"a remote workload taking a local one's address", false, func() {
			w := *in.Workloads[66]
			w.Metadata.ResourceVersion = "6"
			w.Spec.IPNetworks = slices.Clone(in.Workloads[6].Spec.IPNetworks)
			in.Workloads[66] = &w
		}},
	}
	for _, s := range steps {
		s.change()
		d := k.Compute(in)
		if got := &d.Ruleset.Workloads[0] == &last[0]; got != s.reused {
			t.Errorf("after %s: endpoints reused %v, want %v", s.name, got, s.reused)
		}
		if g, w := d.String(), Compute(in).String(); g != w {
			t.Fatalf("after %s: the Calculator's result differs from Compute's:\n%s\nwant:\n%s", s.name, g, w)
		}
		last = d.Ruleset.Workloads
	}
}

// TestCalculatorTrustsVersions shows the contract the Calculator relies
// on, and what CALICO_VERIFY checks: a resource changed without a new
// revision, or a workload changed in place, is not seen (the agent's cache never does that; a bug that
// did would be caught by the check, which compares with Compute).
func TestCalculatorTrustsVersions(t *testing.T) {
	in := benchInputSized(1, 10, 5)
	var k Calculator
	k.Compute(in)
	g := *in.GlobalPolicies[0]
	g.Spec.Ingress = append([]store.Rule{{Action: "Deny"}}, g.Spec.Ingress...)
	in.GlobalPolicies[0] = &g // same ResourceVersion: a stale memory
	if k.Compute(in).String() == Compute(in).String() {
		t.Fatal("a change under an old revision was seen: the Calculator does not key its memory by revision")
	}
	g.Metadata.ResourceVersion = "2"
	if got, want := k.Compute(in).String(), Compute(in).String(); got != want {
		t.Errorf("with a new revision the change is still not seen:\n%s\nwant\n%s", got, want)
	}
	// A workload is known by its value: one changed in place is not seen,
	// new revision or not (the agent's cache makes every change a new
	// value), and a new value at the same place is.
	w := in.Workloads[0]
	w.Metadata.Labels = map[string]string{"app": "a4"}
	w.Metadata.ResourceVersion = "3"
	if k.Compute(in).String() == Compute(in).String() {
		t.Fatal("a workload changed in place was seen: the Calculator does not key its memory by value")
	}
	w2 := *w
	in.Workloads[0] = &w2
	if got, want := k.Compute(in).String(), Compute(in).String(); got != want {
		t.Errorf("a new value at the same place is not seen:\n%s\nwant\n%s", got, want)
	}
}
