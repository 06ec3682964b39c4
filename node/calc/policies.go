package calc

import (
	"cmp"
	"fmt"
	"math"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"

	"calico/nft"
	"calico/store"
	"calico/store/selector"
)

// policy is a GlobalNetworkPolicy or NetworkPolicy ready to select
// endpoints.
type policy struct {
	version string // the resource's, for the Calculator's memory
	id      string // Kind ns/name, for problems
	global  bool
	ns      string // a NetworkPolicy's namespace
	chain   string
	tier    string
	types   []string
	sel     *selector.Selector // never nil: all() when unknown
	nsSel   *selector.Selector // a GlobalNetworkPolicy's namespaceSelector; nil: none
	// The stages it applies to (Calico's flags, GlobalNetworkPolicy only).
	doNotTrack, preDNAT, applyOnForward bool
	ingress, egress                     []store.Rule
	// problems are the resource's problems that affect enforcement.
	problems problems
}

// tier is what the calculation needs of a Tier.
type tier struct {
	name        string
	rank        int // position in evaluation order
	defaultPass bool
}

// unreadable is the tier of policies that could not be read at all: it
// comes before every other, as their order is unknown.
const unreadable = "unreadable-policies"

// tiers orders the tiers as Felix does: the unreadable first, then the
// tiers that exist by order and name, then the tiers that policies name
// but that do not exist, by name (their default action is Deny).
func (c *calculation) tiers(names map[string]bool) map[string]tier {
	type keyed struct {
		exists bool
		order  float64
		name   string
		pass   bool
	}
	var ks []keyed
	for _, t := range c.in.Tiers {
		if !names[t.Metadata.Name] {
			continue
		}
		o := math.Inf(1)
		if t.Spec.Order != nil {
			o = *t.Spec.Order
		}
		if len(problemsOf(t).policy) > 0 {
			o = math.Inf(-1) // its policies deny (tierProblem): before every other tier
		}
		ks = append(ks, keyed{true, o, t.Metadata.Name, t.Spec.DefaultAction == "Pass"})
		delete(names, t.Metadata.Name)
	}
	for _, b := range store.BuiltinTiers { // made at founding; as Calico makes them if they are not there
		if names[b.Name] {
			ks = append(ks, keyed{true, b.Order, b.Name, b.DefaultAction == "Pass"})
			delete(names, b.Name)
		}
	}
	for n := range names {
		if n != unreadable {
			c.problems = append(c.problems, fmt.Sprintf("Tier %q does not exist: its policies are evaluated after every other tier", n))
		}
		ks = append(ks, keyed{order: math.Inf(-1), name: n, exists: n == unreadable})
	}
	slices.SortFunc(ks, func(a, b keyed) int {
		switch {
		case a.name == unreadable || b.name == unreadable:
			return cmp.Compare(first(a.name == unreadable), first(b.name == unreadable))
		case a.exists != b.exists:
			return cmp.Compare(first(a.exists), first(b.exists))
		}
		return cmp.Or(cmp.Compare(a.order, b.order), cmp.Compare(a.name, b.name))
	})
	out := make(map[string]tier, len(ks))
	for i, k := range ks {
		out[k.name] = tier{name: k.name, rank: i, defaultPass: k.pass}
	}
	return out
}

// first sorts true before false.
func first(b bool) int {
	if b {
		return 0
	}
	return 1
}

// indexPolicies lists every policy in the order Calico evaluates them
// (by tier, then by order, none last, then by name, namespace and kind),
// indexes policies and profiles by chain, and writes down what the paths
// depend on.
func (c *calculation) indexPolicies() {
	type keyed struct {
		order float64
		key   string
		p     policy
	}
	ps := make([]keyed, 0, len(c.in.GlobalPolicies)+len(c.in.Policies))
	for _, g := range c.in.GlobalPolicies {
		s := &g.Spec
		p := policy{version: c.version(g), id: store.IDOf(g).String(), global: true, chain: chainName("gnp-", g.Metadata.Name),
			tier: tierName(s.Tier), types: s.Types, doNotTrack: s.DoNotTrack, preDNAT: s.PreDNAT, applyOnForward: s.ApplyOnForward,
			ingress: s.Ingress, egress: s.Egress, problems: problemsOf(g)}
		if s.NamespaceSelector != "" {
			p.nsSel = c.policySelector(&p, "spec.namespaceSelector", s.NamespaceSelector)
		}
		p.sel = c.policySelector(&p, "spec.selector", s.Selector)
		c.tierProblem(&p)
		ps = append(ps, keyed{orderOf(s.Order), g.Metadata.Name + "//gnp", c.settle(p)})
	}
	for _, np := range c.in.Policies {
		s, ns := &np.Spec, np.Metadata.Namespace
		p := policy{version: c.version(np), id: store.IDOf(np).String(), ns: ns, chain: chainName("np-", ns+"."+np.Metadata.Name),
			tier: tierName(s.Tier), types: s.Types, ingress: s.Ingress, egress: s.Egress, problems: problemsOf(np)}
		p.sel = c.policySelector(&p, "spec.selector", s.Selector)
		c.tierProblem(&p)
		ps = append(ps, keyed{orderOf(s.Order), np.Metadata.Name + "/" + ns + "/np", c.settle(p)})
	}
	names := map[string]bool{}
	for _, p := range ps {
		names[p.p.tier] = true
	}
	c.tierOf = c.tiers(names)
	slices.SortFunc(ps, func(a, b keyed) int {
		return cmp.Or(cmp.Compare(c.tierOf[a.p.tier].rank, c.tierOf[b.p.tier].rank), cmp.Compare(a.order, b.order), cmp.Compare(a.key, b.key))
	})
	c.ordered = make([]policy, 0, len(ps))
	c.byChain = make(map[string]policy, len(ps)+len(c.profiles))
	var sel strings.Builder
	for _, p := range ps {
		c.ordered = append(c.ordered, p.p)
		c.byChain[p.p.chain] = p.p
		t := c.tierOf[p.p.tier]
		writeSelection(&sel, p.p, t)
	}
	c.selection = sel.String()
	for name, p := range c.profiles {
		chain := chainName("pro-", name)
		c.byChain[chain] = policy{version: c.profileVers[name], id: store.IDOf(p).String(), chain: chain,
			ingress: p.Spec.Ingress, egress: p.Spec.Egress, problems: problemsOf(p), sel: nil}
	}
}

// writeSelection writes down what of p (in tier t) decides which
// endpoints' paths it is on, and where: a line of the key of what paths
// depend on (calculation.selection).
func writeSelection(b *strings.Builder, p policy, t tier) {
	nsSel := "-" // none: not the same as all()
	if p.nsSel != nil {
		nsSel = p.nsSel.String()
	}
	for _, f := range []string{p.chain, strings.Join(p.types, ","), p.sel.String(), nsSel, t.name} {
		b.WriteString(f)
		b.WriteByte(0)
	}
	b.WriteString(strconv.Itoa(t.rank))
	b.WriteString(strconv.FormatBool(t.defaultPass) + strconv.FormatBool(p.doNotTrack) + strconv.FormatBool(p.preDNAT) + strconv.FormatBool(p.applyOnForward) + "\n")
}

// tierName is a policy's tier: "" is the default tier.
func tierName(t string) string {
	if t == "" {
		return store.DefaultTier
	}
	return t
}

// tierProblem makes a policy whose tier the node cannot use as written
// (it cannot be read, or has a bad order or default action) a problem of
// the policy: it then denies, in that tier, which goes first.
func (c *calculation) tierProblem(p *policy) {
	for _, t := range c.in.Tiers {
		if t.Metadata.Name != p.tier {
			continue
		}
		for _, f := range problemsOf(t).policy {
			c.problems = append(c.problems, fmt.Sprintf("%s: %s: %s; its policies deny everything they select, before every other tier", store.IDOf(t), f.Field, f.Msg))
			p.problems.policy = append(p.problems.policy, store.FieldError{Field: "spec.tier", Msg: fmt.Sprintf("tier %s cannot be used as written", p.tier)})
		}
	}
}

// policySelector parses one of a policy's selectors; one that does not
// parse is a problem of the policy, which then denies (see settle), and
// selects as all() would: every endpoint it might have selected.
func (c *calculation) policySelector(p *policy, field, s string) *selector.Selector {
	sel, err := c.parse(s)
	if err != nil {
		p.problems.policy = append(p.problems.policy, store.FieldError{Field: field, Msg: err.Error()})
		return &selector.Selector{}
	}
	return sel
}

// settle makes a policy the node cannot enforce as written deny what it
// selects: a policy that cannot be read at all goes first, for every
// endpoint (of its namespace); one with a problem outside its rules keeps
// its place and selection, with every rule replaced by a Deny.
func (c *calculation) settle(p policy) policy {
	switch {
	case p.problems.broken:
		c.problems = append(c.problems, fmt.Sprintf("%s cannot be read (%s): it denies everything%s, before every tier", p.id, p.problems.policy[0].Msg, inNamespace(p.ns)))
		p.tier, p.sel, p.nsSel = unreadable, &selector.Selector{}, nil
		p.doNotTrack, p.preDNAT, p.applyOnForward = false, false, false
	case len(p.problems.policy) > 0:
		for _, f := range p.problems.policy {
			c.problems = append(c.problems, fmt.Sprintf("%s: %s: %s; it denies everything it selects", p.id, f.Field, f.Msg))
		}
	default:
		return p
	}
	p.types = []string{"Ingress", "Egress"}
	p.ingress, p.egress = denyAll, denyAll
	p.problems = problems{}
	if p.version != "" {
		// Its rules are no longer the resource's: a tier's problem can
		// make it deny at the same version, and a memory of its rules by
		// that version would allow what it must deny.
		p.version += "\x00denies"
	}
	return p
}

var denyAll = []store.Rule{{Action: "Deny"}}

func inNamespace(ns string) string {
	if ns == "" {
		return ""
	}
	return " in namespace " + ns
}

// orderOf sorts a policy without an order after every policy with one.
func orderOf(o *float64) float64 {
	if o == nil {
		return math.Inf(1)
	}
	return *o
}

// stage is one place in the dataplane where policy applies.
type stage uint8

const (
	normal     stage = iota // workloads, and host endpoints' own traffic
	forward                 // host endpoints' forwarded traffic (applyOnForward)
	preDNAT                 // host endpoints, before DNAT
	untracked               // host endpoints, before connection tracking (doNotTrack)
	workloadEP              // workloads: normal, without host-only policies
)

// applies reports whether a policy takes part in a stage.
func (p *policy) applies(s stage) bool {
	switch s {
	case workloadEP:
		return !p.doNotTrack && !p.preDNAT
	case normal:
		return !p.doNotTrack && !p.preDNAT
	case forward:
		return p.applyOnForward && !p.doNotTrack && !p.preDNAT
	case preDNAT:
		return p.preDNAT
	case untracked:
		return p.doNotTrack
	}
	return false
}

// pathOf is the path of an endpoint with these labels in namespace ns
// ("" for a host endpoint, which only GlobalNetworkPolicies without a
// namespaceSelector select) and with these profiles, in one direction
// and stage.
func (c *calculation) pathOf(labels map[string]string, ns string, profiles []string, dir string, st stage) nft.Path {
	var out nft.Path
	for i := range c.ordered {
		p := &c.ordered[i]
		if !p.applies(st) || !slices.Contains(p.types, dir) || !p.sel.Evaluate(labels) {
			continue
		}
		switch {
		case p.global && p.nsSel == nil:
		case p.global:
			if ns == "" || !p.nsSel.Evaluate(namespaceLabels(ns)) {
				continue
			}
		case p.ns != ns || ns == "":
			continue
		}
		t := c.tierOf[p.tier]
		if n := len(out.Tiers); n == 0 || out.Tiers[n-1].Name != t.name {
			pass := t.defaultPass || st == preDNAT || st == untracked
			out.Tiers = append(out.Tiers, nft.Tier{Name: t.name, DefaultPass: pass})
		}
		last := &out.Tiers[len(out.Tiers)-1]
		last.Policies = append(last.Policies, p.chain)
	}
	if st != normal && st != workloadEP {
		return out // no profiles: see nft.HostEndpoint
	}
	for _, name := range profiles {
		if c.profiles[name] == nil {
			continue // a missing profile allows nothing
		}
		out.Profiles = append(out.Profiles, chainName("pro-", name))
	}
	return out
}

// problems are a resource's problems that affect enforcement: those of
// the resource as a whole, and those of each rule.
type problems struct {
	broken bool
	policy []store.FieldError
	// rules holds, by direction ("ingress", "egress") and rule index, the
	// fields of the rule that have problems, relative to the rule
	// ("source.notSelector"; "" for the rule as a whole).
	rules map[ruleRef][]store.FieldError
}

type ruleRef struct {
	dir   string
	index int
}

var ruleFieldRE = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^spec\.(ingress|egress)\[(\d+)\](?:\.(.*))?$`) })

// problemsOf sorts the problems of a resource read from the datastore.
// Problems of its metadata and status do not change what it enforces.
func problemsOf(r store.Resource) problems {
	var out problems
	for _, f := range r.Meta().Problems {
		switch {
		case f.Field == "":
			out.broken = true
			out.policy = append(out.policy, f)
		case ruleFieldRE().MatchString(f.Field):
			m := ruleFieldRE().FindStringSubmatch(f.Field)
			i, _ := strconv.Atoi(m[2])
			if out.rules == nil {
				out.rules = map[ruleRef][]store.FieldError{}
			}
			ref := ruleRef{m[1], i}
			out.rules[ref] = append(out.rules[ref], store.FieldError{Field: m[3], Msg: f.Msg})
		case f.Field == "spec" || strings.HasPrefix(f.Field, "spec."):
			out.policy = append(out.policy, f)
		}
	}
	return out
}
