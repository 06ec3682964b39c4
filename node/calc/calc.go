// Package calc computes what this host's dataplane should hold from a
// snapshot of the datastore: the nftables ruleset in front of its
// workloads and the routes towards them. Compute is a pure function of its
// input, with no I/O, clock or logging, so that tests feed it values and
// compare the result.
package calc

import (
	"cmp"
	"crypto/sha256"
	"encoding/base32"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"maps"
	"net/netip"
	"slices"
	"strings"

	"calico/nft"
	"calico/node/route"
	"calico/store"
	"calico/store/selector"
)

// Input is the part of the datastore one host's dataplane depends on.
type Input struct {
	// Node is this host's name.
	Node           string
	Workloads      []*store.WorkloadEndpoint // of every host
	HostEndpoints  []*store.HostEndpoint     // of every host
	Profiles       []*store.Profile
	GlobalPolicies []*store.GlobalNetworkPolicy
	Policies       []*store.NetworkPolicy
	Felix          []*store.FelixConfiguration
	Nodes          []*store.Node
	BGPPeers       []*store.BGPPeer
	BGPConfigs     []*store.BGPConfiguration
	Pools          []*store.IPPool
	// HostBlocks are the address blocks affine to this host.
	HostBlocks []netip.Prefix
}

// Add files a resource under its kind; kinds the calculation does not
// read are ignored.
func (in *Input) Add(r store.Resource) {
	switch r := r.(type) {
	case *store.WorkloadEndpoint:
		in.Workloads = append(in.Workloads, r)
	case *store.HostEndpoint:
		in.HostEndpoints = append(in.HostEndpoints, r)
	case *store.Profile:
		in.Profiles = append(in.Profiles, r)
	case *store.GlobalNetworkPolicy:
		in.GlobalPolicies = append(in.GlobalPolicies, r)
	case *store.NetworkPolicy:
		in.Policies = append(in.Policies, r)
	case *store.FelixConfiguration:
		in.Felix = append(in.Felix, r)
	case *store.Node:
		in.Nodes = append(in.Nodes, r)
	case *store.BGPPeer:
		in.BGPPeers = append(in.BGPPeers, r)
	case *store.BGPConfiguration:
		in.BGPConfigs = append(in.BGPConfigs, r)
	case *store.IPPool:
		in.Pools = append(in.Pools, r)
	}
}

// Desired is the dataplane one host should have.
type Desired struct {
	Ruleset nft.Ruleset
	Routes  []route.Route
	// Problems are data that could not be used (an unparsable selector
	// written by an older version, say); the rest is still computed.
	Problems []string
}

// Labels every endpoint carries, as Calico adds them.
const (
	namespaceLabel     = selector.NamespaceLabel
	orchestratorLabel  = "projectcalico.org/orchestrator"
	namespaceNameLabel = "projectcalico.org/name"
)

// group is the endpoints, local or not, that selectors cannot tell apart:
// the same labels in the same namespace. Selectors are evaluated once per
// group, not once per endpoint: replicas share their labels.
type group struct {
	labels map[string]string
	ns     string // "" for host endpoints
	addrs  []netip.Addr
}

// workload is what the calculation derives from a WorkloadEndpoint.
type workload struct {
	labels map[string]string
	group  string // its key
	addrs  []netip.Addr
}

// groupKey identifies the group of an endpoint.
func groupKey(ns string, labels map[string]string) string {
	var buf [16]string
	keys := buf[:0]
	n := len(ns)
	for k, v := range labels {
		keys = append(keys, k)
		n += len(k) + len(v) + 2
	}
	slices.Sort(keys)
	b := make([]byte, 0, n)
	b = append(b, ns...)
	for _, k := range keys {
		b = append(append(append(append(b, 0), k...), 1), labels[k]...)
	}
	return string(b)
}

// calculation holds the indexes of one Compute call.
type calculation struct {
	in        Input
	profiles  map[string]*store.Profile
	groups    map[string]*group
	workloads map[*store.WorkloadEndpoint]workload
	paths     map[string]nft.Path   // by direction, profiles and group
	prevPaths map[string]nft.Path   // prev's, when still valid
	ordered   []policy              // in evaluation order (indexPolicies)
	sorted    []*group              // sortedGroups, once computed
	policies  map[string]nft.Policy // by chain name, those referenced
	sets      map[string]*setSpec   // by set name
	problems  []string
	selectors map[string]*selector.Selector

	// What a Calculator reuses from its previous call, by the versions of
	// the resources it came from (version); remember says to keep them.
	remember    bool
	prev        *calculation
	byChain     map[string]policy       // policies and profiles by chain
	selection   string                  // what paths depend on besides groups and profiles
	compiled    map[string]compiled     // by the version of the resource compiled
	memberOf    map[string][]netip.Addr // set members by set name
	setVersion  map[string]string       // the version of each set's members
	sameEnds    bool                    // the groups are prev's
	selErrs     map[string]string       // why a selector did not parse
	profileVers map[string]string       // the version of each profile, by name
	byVersion   map[string]workload     // what each workload's version gave
	endpoints   map[string]bool         // the versions of every endpoint
}

// compiled is a policy or profile turned into rules, with the sets its
// rules refer to.
type compiled struct {
	chain    string
	pol      nft.Policy
	sets     map[string]*setSpec
	problems []string // reported while compiling it
}

// Calculator is Compute with a memory: it keeps what it derived from the
// resources of its previous call (labels and groups of endpoints, paths,
// compiled policies, set members) and reuses it where the resources it
// came from did not change, as their versions tell: a resource's key and
// resourceVersion (its etcd revision: a resource at a revision never
// changes), or, for one without a revision, a hash of its content. Its
// result is always Compute's; the agent can check that on every change
// (CALICO_VERIFY).
type Calculator struct{ last *calculation }

// Compute is the dataplane for in.
func (k *Calculator) Compute(in Input) Desired {
	c := newCalculation(in, k.last, true)
	d := c.compute()
	c.prev = nil
	k.last = c
	return d
}

type setSpec struct {
	sel, nsSel *selector.Selector
	// ns limits the set to one namespace ("" = any).
	ns string
}

// newCalculation indexes in: profiles by name and every endpoint that
// selectors can pick, reusing what prev (if any) derived from the same
// resources.
func newCalculation(in Input, prev *calculation, remember bool) *calculation {
	c := &calculation{
		in:          in,
		profiles:    map[string]*store.Profile{},
		policies:    map[string]nft.Policy{},
		sets:        map[string]*setSpec{},
		selectors:   map[string]*selector.Selector{},
		selErrs:     map[string]string{},
		groups:      map[string]*group{},
		workloads:   make(map[*store.WorkloadEndpoint]workload, len(in.Workloads)),
		paths:       map[string]nft.Path{},
		compiled:    map[string]compiled{},
		memberOf:    map[string][]netip.Addr{},
		setVersion:  map[string]string{},
		profileVers: map[string]string{},
		byVersion:   make(map[string]workload, len(in.Workloads)),
		endpoints:   make(map[string]bool, len(in.Workloads)+len(in.HostEndpoints)),
		prev:        prev,
		remember:    remember,
	}
	for _, p := range in.Profiles {
		c.profiles[p.Metadata.Name] = p
	}
	if !remember {
		c.addEndpoints(in, false)
		c.indexPolicies()
		return c
	}
	for _, p := range in.Profiles {
		c.profileVers[p.Metadata.Name] = version(p)
	}
	for _, w := range in.Workloads {
		c.endpoints[version(w)] = true
	}
	for _, h := range in.HostEndpoints {
		c.endpoints[version(h)] = true
	}
	sameProfiles := prev != nil && maps.Equal(prev.profileVers, c.profileVers)
	if sameProfiles && maps.Equal(prev.endpoints, c.endpoints) {
		c.groups, c.sorted, c.byVersion, c.sameEnds = prev.groups, prev.sorted, prev.byVersion, true
		for _, w := range in.Workloads {
			c.workloads[w] = c.byVersion[version(w)]
		}
	} else {
		c.addEndpoints(in, sameProfiles)
	}
	c.indexPolicies()
	if sameProfiles && c.selection == prev.selection {
		c.prevPaths = prev.paths
	}
	return c
}

// addEndpoints files every endpoint under its group; with the profiles
// unchanged, a workload prev knew keeps its labels and addresses.
func (c *calculation) addEndpoints(in Input, sameProfiles bool) {
	for _, w := range in.Workloads {
		var v string
		if c.remember {
			v = version(w)
		}
		d, ok := workload{}, false
		if sameProfiles {
			d, ok = c.prev.byVersion[v]
		}
		if !ok {
			d = workload{labels: c.workloadLabels(w), addrs: workloadAddrs(w)}
		}
		d.group = c.addToGroup(w.Metadata.Namespace, d.labels, d.addrs)
		c.workloads[w] = d
		if c.remember {
			c.byVersion[v] = d
		}
	}
	for _, h := range in.HostEndpoints {
		var addrs []netip.Addr
		for _, ip := range h.Spec.ExpectedIPs {
			if a, err := netip.ParseAddr(ip); err == nil {
				addrs = append(addrs, a)
			}
		}
		c.addToGroup("", c.hostLabels(h), addrs)
	}
}

// addToGroup files an endpoint's addresses under its group and returns
// the group's key.
func (c *calculation) addToGroup(ns string, labels map[string]string, addrs []netip.Addr) string {
	key := groupKey(ns, labels)
	g := c.groups[key]
	if g == nil {
		g = &group{labels: labels, ns: ns}
		c.groups[key] = g
	}
	g.addrs = append(g.addrs, addrs...)
	return key
}

// Compute is the dataplane for in.
func Compute(in Input) Desired { return newCalculation(in, nil, false).compute() }

func (c *calculation) compute() Desired {
	in := c.in
	var d Desired
	local := localWorkloads(in)
	for _, w := range local {
		wd := c.workloads[w]
		ep := nft.Endpoint{Iface: w.Spec.InterfaceName, Addrs: wd.addrs}
		ep.Ingress = c.path(w, "Ingress")
		ep.Egress = c.path(w, "Egress")
		d.Ruleset.Workloads = append(d.Ruleset.Workloads, ep)
		for _, a := range ep.Addrs {
			d.Routes = append(d.Routes, route.Route{Dst: netip.PrefixFrom(a, a.BitLen()), Iface: ep.Iface})
		}
	}
	for _, b := range in.HostBlocks {
		d.Routes = append(d.Routes, route.Route{Dst: b, Blackhole: true})
	}
	if d.Ruleset.HostEndpoints = c.hostEndpoints(); len(d.Ruleset.HostEndpoints) > 0 {
		d.Ruleset.FailsafeIn, d.Ruleset.FailsafeOut = c.failsafe(false), c.failsafe(true)
	}
	d.Ruleset.NATOutgoing, d.Ruleset.NATExcept = natOutgoing(in.Pools)
	for _, name := range slices.Sorted(maps.Keys(c.policies)) {
		d.Ruleset.Policies = append(d.Ruleset.Policies, c.policies[name])
	}
	for _, name := range slices.Sorted(maps.Keys(c.sets)) {
		m, ok := c.memberOf[name]
		v := c.setVersion[name]
		if !ok && c.sameEnds {
			m, ok = c.prev.memberOf[name]
			v = c.prev.setVersion[name]
		}
		if !ok {
			m = c.members(c.sets[name])
			v = addrsVersion(m)
		}
		c.memberOf[name], c.setVersion[name] = m, v
		d.Ruleset.Sets = append(d.Ruleset.Sets, nft.Set{Name: name, Members: m, Version: v})
	}
	d.Ruleset.EndpointToHost = endpointToHost(in)
	seen := map[string]bool{}
	for _, p := range c.problems { // a memory may report one twice
		if !seen[p] {
			seen[p] = true
			d.Problems = append(d.Problems, p)
		}
	}
	return d
}

// localWorkloads are this host's workload endpoints with an interface,
// sorted by interface name.
func localWorkloads(in Input) []*store.WorkloadEndpoint {
	var out []*store.WorkloadEndpoint
	for _, w := range in.Workloads {
		if w.Spec.Node == in.Node && w.Spec.InterfaceName != "" {
			out = append(out, w)
		}
	}
	slices.SortFunc(out, func(a, b *store.WorkloadEndpoint) int {
		return cmp.Compare(a.Spec.InterfaceName, b.Spec.InterfaceName)
	})
	return out
}

func workloadAddrs(w *store.WorkloadEndpoint) []netip.Addr {
	var out []netip.Addr
	for _, n := range w.Spec.IPNetworks {
		if p, err := store.ParseCIDR(n); err == nil && p.IsSingleIP() {
			out = append(out, p.Addr())
		}
	}
	slices.SortFunc(out, netip.Addr.Compare)
	return out
}

// workloadLabels are the labels selectors see on a workload: its profiles'
// labelsToApply, overridden by its own labels, plus Calico's namespace and
// orchestrator labels.
func (c *calculation) workloadLabels(w *store.WorkloadEndpoint) map[string]string {
	out := map[string]string{}
	for _, name := range w.Spec.Profiles {
		if p := c.profiles[name]; p != nil {
			maps.Copy(out, p.Spec.LabelsToApply)
		}
	}
	maps.Copy(out, w.Metadata.Labels)
	out[namespaceLabel] = w.Metadata.Namespace
	out[orchestratorLabel] = w.Spec.Orchestrator
	return out
}

func (c *calculation) hostLabels(h *store.HostEndpoint) map[string]string {
	out := map[string]string{}
	for _, name := range h.Spec.Profiles {
		if p := c.profiles[name]; p != nil {
			maps.Copy(out, p.Spec.LabelsToApply)
		}
	}
	maps.Copy(out, h.Metadata.Labels)
	return out
}

// namespaceLabels are the labels a namespaceSelector sees. Namespaces
// here have no labels of their own beyond their name.
func namespaceLabels(ns string) map[string]string {
	return map[string]string{namespaceNameLabel: ns}
}

// path is the ordered policies and profiles that apply to a workload in
// one direction (types "Ingress" or "Egress").
func (c *calculation) path(w *store.WorkloadEndpoint, dir string) nft.Path {
	wd := c.workloads[w]
	key := dir + "\x02" + strings.Join(w.Spec.Profiles, "\x00") + "\x02" + wd.group
	p, ok := c.paths[key]
	if !ok {
		if p, ok = c.prevPaths[key]; !ok {
			p = c.pathOf(wd.labels, w.Metadata.Namespace, w.Spec.Profiles, dir)
		}
		c.paths[key] = p
	}
	c.use(p)
	return p
}

// use compiles the policies and profiles of a path.
func (c *calculation) use(p nft.Path) {
	for _, chain := range p.Names() {
		if _, done := c.policies[chain]; !done {
			pol := c.byChain[chain]
			c.addPolicy(chain, pol.version, pol.ingress, pol.egress, pol.ns)
		}
	}
}

// pathOf is the path of an endpoint with these labels in namespace ns
// ("" for a host endpoint, which only GlobalNetworkPolicies without a
// namespaceSelector select) and with these profiles.
func (c *calculation) pathOf(labels map[string]string, ns string, profiles []string, dir string) nft.Path {
	var out nft.Path
	var nsLabels map[string]string
	for _, p := range c.ordered {
		if !slices.Contains(p.types, dir) || p.sel == nil || !p.sel.Evaluate(labels) {
			continue
		}
		switch {
		case p.global && p.nsSel == "":
		case p.global:
			if ns == "" {
				continue
			}
			if nsLabels == nil {
				nsLabels = namespaceLabels(ns)
			}
			if !c.match(p.nsSel, nsLabels) {
				continue
			}
		case p.ns != ns || ns == "":
			continue
		}
		if len(out.Tiers) == 0 {
			out.Tiers = []nft.Tier{{Name: store.DefaultTier}}
		}
		out.Tiers[0].Policies = append(out.Tiers[0].Policies, p.chain)
	}
	for _, name := range profiles {
		p := c.profiles[name]
		if p == nil {
			continue // a missing profile allows nothing
		}
		out.Profiles = append(out.Profiles, chainName("pro-", name))
	}
	return out
}

// policy is a GlobalNetworkPolicy or NetworkPolicy ready to select
// endpoints.
type policy struct {
	version         string // the resource's, for the Calculator's memory
	global          bool
	ns              string // a NetworkPolicy's namespace
	chain           string
	types           []string
	sel             *selector.Selector // nil: unparsable, selects nothing
	nsSel           string             // a GlobalNetworkPolicy's namespaceSelector
	ingress, egress []store.Rule
}

// indexPolicies lists every policy in the order Calico evaluates them
// (by order, none last, then by name: namespace/name for a
// NetworkPolicy), indexes policies and profiles by chain, and writes down
// what the paths depend on.
func (c *calculation) indexPolicies() {
	type keyed struct {
		order    float64
		key, sel string
		p        policy
	}
	var ps []keyed
	for _, g := range c.in.GlobalPolicies {
		s := &g.Spec
		if s.NamespaceSelector != "" {
			c.selector(s.NamespaceSelector) // reported here, whether or not a path needs it
		}
		ps = append(ps, keyed{orderOf(s.Order), g.Metadata.Name, s.Selector, policy{version: c.version(g), global: true, chain: chainName("gnp-", g.Metadata.Name),
			types: s.Types, sel: c.selector(s.Selector), nsSel: s.NamespaceSelector, ingress: s.Ingress, egress: s.Egress}})
	}
	for _, p := range c.in.Policies {
		s, ns := &p.Spec, p.Metadata.Namespace
		ps = append(ps, keyed{orderOf(s.Order), ns + "/" + p.Metadata.Name, s.Selector, policy{version: c.version(p), ns: ns, chain: chainName("np-", ns+"."+p.Metadata.Name),
			types: s.Types, sel: c.selector(s.Selector), ingress: s.Ingress, egress: s.Egress}})
	}
	slices.SortFunc(ps, func(a, b keyed) int { return cmp.Or(cmp.Compare(a.order, b.order), cmp.Compare(a.key, b.key)) })
	c.ordered = make([]policy, 0, len(ps))
	c.byChain = make(map[string]policy, len(ps)+len(c.profiles))
	var sel strings.Builder
	for _, p := range ps {
		c.ordered = append(c.ordered, p.p)
		c.byChain[p.p.chain] = p.p
		fmt.Fprintf(&sel, "%s\x00%s\x00%q\x00%q\n", p.p.chain, p.p.types, p.sel, p.p.nsSel)
	}
	c.selection = sel.String()
	for name, p := range c.profiles {
		chain := chainName("pro-", name)
		c.byChain[chain] = policy{version: c.profileVers[name], chain: chain, ingress: p.Spec.Ingress, egress: p.Spec.Egress}
	}
}

// orderOf sorts a policy without an order after every policy with one.
func orderOf(o *float64) float64 {
	if o == nil {
		return 1e300
	}
	return *o
}

// PolicyOf names the resource a policy chain renders: its kind,
// namespace and name. A chain whose name had to be hashed is returned as
// it is, with kind "".
func PolicyOf(chain string) (kind, namespace, name string) {
	switch {
	case strings.HasPrefix(chain, "gnp-"):
		return store.KindGlobalNetworkPolicy.Name, "", chain[len("gnp-"):]
	case strings.HasPrefix(chain, "np-"):
		ns, n, _ := strings.Cut(chain[len("np-"):], ".")
		return store.KindNetworkPolicy.Name, ns, n
	case strings.HasPrefix(chain, "pro-"):
		return store.KindProfile.Name, "", chain[len("pro-"):]
	}
	return "", "", chain
}

// chainName makes a unique nftables name for a policy, hashing names too
// long for the kernel.
func chainName(prefix, name string) string {
	if len(prefix)+len(name) > 200 {
		return prefix + hash(name)
	}
	return prefix + name
}

func (c *calculation) addPolicy(chain, version string, ingress, egress []store.Rule, ns string) {
	if _, done := c.policies[chain]; done {
		return
	}
	cp, ok := compiled{}, false
	if c.prev != nil && version != "" {
		cp, ok = c.prev.compiled[version]
		ok = ok && cp.chain == chain
	}
	if ok {
		c.problems = append(c.problems, cp.problems...)
	} else {
		before := len(c.problems)
		cp = compiled{chain: chain, pol: nft.Policy{Name: chain, Version: version}, sets: map[string]*setSpec{}}
		for _, r := range ingress {
			cp.pol.Ingress = append(cp.pol.Ingress, c.rule(r, ns))
		}
		for _, r := range egress {
			cp.pol.Egress = append(cp.pol.Egress, c.rule(r, ns))
		}
		for _, r := range slices.Concat(cp.pol.Ingress, cp.pol.Egress) {
			for _, n := range []string{r.Src.Set, r.Src.NotSet, r.Dst.Set, r.Dst.NotSet} {
				if n != "" {
					cp.sets[n] = c.sets[n]
				}
			}
		}
		cp.problems = slices.Clone(c.problems[before:])
	}
	for n, s := range cp.sets {
		if _, ok := c.sets[n]; !ok {
			c.sets[n] = s
		}
	}
	if version != "" {
		c.compiled[version] = cp
	}
	c.policies[chain] = cp.pol
}

// selector parses a selector once per Compute; an unparsable one matches
// nothing and is reported.
func (c *calculation) selector(s string) *selector.Selector {
	if sel, ok := c.selectors[s]; ok {
		if sel == nil { // each user of a bad selector reports it (compute drops repeats)
			c.problems = append(c.problems, c.selErrs[s])
		}
		return sel
	}
	var sel *selector.Selector
	var problem string
	if p := c.prev; p != nil && p.selectors[s] != nil {
		sel = p.selectors[s]
	} else if p != nil && p.selErrs[s] != "" {
		problem = p.selErrs[s]
	} else if parsed, err := selector.Parse(s); err != nil {
		problem = err.Error()
	} else {
		sel = parsed
	}
	if problem != "" {
		c.problems = append(c.problems, problem)
		c.selErrs[s] = problem
	}
	c.selectors[s] = sel
	return sel
}

func (c *calculation) match(s string, labels map[string]string) bool {
	sel := c.selector(s)
	return sel != nil && sel.Evaluate(labels)
}

var actions = map[string]nft.Action{"Allow": nft.Allow, "Deny": nft.Deny, "Pass": nft.Pass, "Log": nft.Log}

// rule translates a Calico rule; ns is the namespace of a NetworkPolicy
// ("" for global policies and profiles), which scopes its selectors.
func (c *calculation) rule(r store.Rule, ns string) nft.Rule {
	out := nft.Rule{Action: actions[r.Action]}
	if r.IPVersion != nil {
		out.IPVersion = *r.IPVersion
	}
	if r.Protocol != nil {
		out.Protocol = &r.Protocol.Num
	}
	if r.NotProtocol != nil {
		out.NotProtocol = &r.NotProtocol.Num
	}
	out.ICMP, out.NotICMP = icmp(r.ICMP), icmp(r.NotICMP)
	out.Src = c.entity(r.Source, ns)
	out.Dst = c.entity(r.Destination, ns)
	return out
}

func icmp(i *store.ICMP) *nft.ICMP {
	if i == nil || i.Type == nil {
		return nil
	}
	out := &nft.ICMP{Type: uint8(*i.Type)}
	if i.Code != nil {
		code := uint8(*i.Code)
		out.Code = &code
	}
	return out
}

func (c *calculation) entity(e store.EntityRule, ns string) nft.Match {
	var m nft.Match
	if e.Selector != "" || e.NamespaceSelector != "" {
		m.Set = c.set(e.Selector, e.NamespaceSelector, ns)
	}
	if e.NotSelector != "" {
		m.NotSet = c.set(e.NotSelector, e.NamespaceSelector, ns)
	}
	var ok1, ok2 bool
	m.Nets, ok1 = c.prefixes(e.Nets)
	m.NotNets, ok2 = c.prefixes(e.NotNets)
	if !ok1 || !ok2 {
		m.Set = c.nothing()
	}
	for _, p := range e.Ports {
		m.Ports = append(m.Ports, nft.PortRange{First: p.First, Last: p.Last})
	}
	for _, p := range e.NotPorts {
		m.NotPorts = append(m.NotPorts, nft.PortRange{First: p.First, Last: p.Last})
	}
	return m
}

// set names the address set of endpoints matching sel in the namespaces
// matching nsSel; without nsSel a NetworkPolicy's selectors see only its
// own namespace (ns) and others' see every namespace.
func (c *calculation) set(sel, nsSel, ns string) string {
	spec := &setSpec{sel: c.selector(sel)}
	key := "sel:" + spec.sel.String()
	if nsSel != "" {
		spec.nsSel = c.selector(nsSel)
		key += "|ns-sel:" + spec.nsSel.String()
	} else if ns != "" {
		spec.ns = ns
		key += "|ns:" + ns
	}
	if (sel != "" && spec.sel == nil) || (nsSel != "" && spec.nsSel == nil) {
		key = "invalid:" + sel + "|" + nsSel // matches nothing
		spec = nil
	}
	name := "s-" + hash(key)
	if _, ok := c.sets[name]; !ok {
		c.sets[name] = spec
	}
	return name
}

// nothing names a set that stays empty: a rule that needs an address in
// it matches nothing.
func (c *calculation) nothing() string {
	name := "s-" + hash("nothing")
	if _, ok := c.sets[name]; !ok {
		c.sets[name] = nil
	}
	return name
}

func (c *calculation) members(s *setSpec) []netip.Addr {
	if s == nil {
		return nil
	}
	var out []netip.Addr
	for _, e := range c.sortedGroups() {
		switch {
		case s.ns != "" && e.ns != s.ns:
		case s.nsSel != nil && (e.ns == "" || !s.nsSel.Evaluate(namespaceLabels(e.ns))):
		case !s.sel.Evaluate(e.labels):
		default:
			out = append(out, e.addrs...)
		}
	}
	return out // in the order of the groups; nft sorts and removes repeats
}

// sortedGroups are the groups in the order of their keys, so that a set's
// members come out in the same order every time.
func (c *calculation) sortedGroups() []*group {
	if c.sorted == nil {
		for _, k := range slices.Sorted(maps.Keys(c.groups)) {
			c.sorted = append(c.sorted, c.groups[k])
		}
	}
	return c.sorted
}

// prefixes parses a rule's nets. Validation refuses what does not parse,
// but data written otherwise may hold it: then ok is false, the problem
// is reported, and the caller makes the rule match nothing (dropping the
// net alone could widen a rule to every address).
func (c *calculation) prefixes(nets []string) (out []netip.Prefix, ok bool) {
	ok = true
	for _, n := range nets {
		p, good := parseNet(n)
		if !good {
			c.problems = append(c.problems, fmt.Sprintf("%q is not a CIDR; the rule that names it matches nothing", n))
			ok = false
			continue
		}
		out = append(out, p)
	}
	return out, ok
}

// parseNet reads a CIDR or an address leniently, as data written by other
// tools may hold them: an IPv4-mapped IPv6 one is taken as the IPv4 one
// it maps, host bits are masked.
func parseNet(s string) (netip.Prefix, bool) {
	p, err := netip.ParsePrefix(s)
	if err != nil {
		a, err := netip.ParseAddr(s)
		if err != nil || a.Zone() != "" {
			return netip.Prefix{}, false
		}
		p = netip.PrefixFrom(a, a.BitLen())
	}
	if p.Addr().Is4In6() {
		if p.Bits() < 96 {
			return netip.Prefix{}, false
		}
		p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
	}
	return p.Masked(), true
}

// endpointToHost is FelixConfiguration's defaultEndpointToHostAction, the
// node's own override first, Calico's default (Drop) last.
func endpointToHost(in Input) nft.Verdict {
	action, _ := felix(in, func(s *store.FelixConfigurationSpec) string { return s.DefaultEndpointToHostAction })
	switch action {
	case "Accept":
		return nft.Accept
	case "Return":
		return nft.Return
	}
	return nft.Drop
}

var hashEncoding = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// hash is a short stable name-safe digest.
func hash(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hashEncoding.EncodeToString(sum[:10])
}

// String renders a Desired for golden tests.
func (d Desired) String() string {
	var b strings.Builder
	for _, w := range d.Ruleset.Workloads {
		fmt.Fprintf(&b, "workload %s %v in=%s out=%s\n", w.Iface, w.Addrs, pathString(w.Ingress), pathString(w.Egress))
	}
	for _, h := range d.Ruleset.HostEndpoints {
		fmt.Fprintf(&b, "host endpoint %s in=%s out=%s\n", h.Iface, pathString(h.Ingress), pathString(h.Egress))
	}
	if len(d.Ruleset.HostEndpoints) > 0 {
		fmt.Fprintf(&b, "failsafe in=%v out=%v\n", d.Ruleset.FailsafeIn, d.Ruleset.FailsafeOut)
	}
	if len(d.Ruleset.NATOutgoing) > 0 {
		fmt.Fprintf(&b, "nat outgoing from %v except to %v\n", d.Ruleset.NATOutgoing, d.Ruleset.NATExcept)
	}
	for _, p := range d.Ruleset.Policies {
		fmt.Fprintf(&b, "policy %s in=%d out=%d\n", p.Name, len(p.Ingress), len(p.Egress))
	}
	for _, s := range d.Ruleset.Sets {
		m := slices.Clone(s.Members)
		slices.SortFunc(m, netip.Addr.Compare)
		fmt.Fprintf(&b, "set %s %v\n", s.Name, slices.Compact(m))
	}
	b.WriteString(route.Dump(d.Routes))
	return b.String()
}

// pathString renders a path for golden tests: each tier's policies, then
// the profiles.
func pathString(p nft.Path) string {
	var b strings.Builder
	for _, t := range p.Tiers {
		fmt.Fprintf(&b, "%s%v", t.Name, t.Policies)
		if t.DefaultPass {
			b.WriteString("(pass)")
		}
		b.WriteString(" ")
	}
	fmt.Fprintf(&b, "%v", p.Profiles)
	return b.String()
}

// version is version(r) when the calculation keeps a memory, else "".
func (c *calculation) version(r store.Resource) string {
	if !c.remember {
		return ""
	}
	return version(r)
}

// version names a resource's content: its key and resourceVersion, the
// etcd revision that wrote it, or, without one (a resource made by a test
// or a tool), a hash of its JSON.
func version(r store.Resource) string {
	if rv := r.Meta().ResourceVersion; rv != "" {
		return store.Key(store.IDOf(r)) + "@" + rv
	}
	b, _ := json.Marshal(r)
	sum := sha256.Sum256(b)
	return store.Key(store.IDOf(r)) + "#" + hex.EncodeToString(sum[:12])
}

// addrsVersion names a list of addresses by its content.
func addrsVersion(addrs []netip.Addr) string {
	h := fnv.New128a()
	for _, a := range addrs {
		b := a.As16()
		h.Write(b[:])
	}
	return hex.EncodeToString(h.Sum(nil))
}
