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
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"reflect"
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
	Workloads      []*store.WorkloadEndpoint // of every host; shared with the agent's cache: never changed in place
	HostEndpoints  []*store.HostEndpoint     // of every host
	Profiles       []*store.Profile
	GlobalPolicies []*store.GlobalNetworkPolicy
	Policies       []*store.NetworkPolicy
	Felix          []*store.FelixConfiguration
	Nodes          []*store.Node
	BGPPeers       []*store.BGPPeer
	BGPConfigs     []*store.BGPConfiguration
	Pools          []*store.IPPool
	Tiers          []*store.Tier
	NetworkSets    []*store.NetworkSet
	GlobalSets     []*store.GlobalNetworkSet
	// HostBlocks are the address blocks affine to this host.
	HostBlocks []netip.Prefix
	// HostInterfaces are this host's interfaces (but loopback and
	// workloads') and their addresses, for host endpoints given by
	// expectedIPs.
	HostInterfaces map[string][]netip.Addr
	// Voters are the addresses of the cluster's etcd voters: the
	// automatic route reflectors (ComputeBGP).
	Voters []netip.Addr
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
	case *store.Tier:
		in.Tiers = append(in.Tiers, r)
	case *store.NetworkSet:
		in.NetworkSets = append(in.NetworkSets, r)
	case *store.GlobalNetworkSet:
		in.GlobalSets = append(in.GlobalSets, r)
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

// workload is what the calculation derives from a WorkloadEndpoint.
type workload struct {
	labels map[string]string
	group  string // its key
	addrs  []netip.Addr
	ports  map[string][]nft.NamedPort
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
	in         Input
	profiles   map[string]*store.Profile
	idx        *index
	paths      map[string]nft.Path // by direction, profiles and group
	prevPaths  map[string]nft.Path // prev's, when still valid
	ordered    []policy            // in evaluation order (indexPolicies)
	tierOf     map[string]tier     // by name, the tiers policies name
	portSets   map[string]*portSetSpec
	conflicted map[*store.WorkloadEndpoint]bool
	policies   map[string]nft.Policy // by chain name, those referenced
	sets       map[string]*setSpec   // by set name, those referenced
	specs      map[string]*setSpec   // every set a rule compiled here named
	portSpecs  map[string]*portSetSpec
	problems   []string
	selectors  map[string]*selector.Selector // parsed, and nil for those that do not parse

	// What a Calculator reuses from its previous call, by the versions of
	// the resources it came from (version); remember says to keep them.
	remember    bool
	prev        *calculation
	byChain     map[string]policy   // policies and profiles by chain
	selection   string              // what paths depend on besides groups and profiles
	compiled    map[string]compiled // by the version of the resource compiled
	selErrs     map[string]string   // why a selector did not parse
	profileVers map[string]string   // the version of each profile, by name
	pathsValid  bool                // prevPaths holds (prev's paths still hold)
	locals      *locals
}

// locals is what a calculation derived from this host's endpoints. The
// next one reuses it whole while its index is the same and has had no
// change that touches them (index.localGen), and its paths still hold:
// then a change elsewhere (a policy's rules, a remote workload) costs no
// pass over this host's endpoints beyond compiling their paths' policies.
type locals struct {
	x          *index
	gen        uint64
	ws         []*store.WorkloadEndpoint // localEndpoints' list
	conflicted map[*store.WorkloadEndpoint]bool
	conflicts  []string // the problems the conflicts reported
	// eps are the endpoints of ws, in order (shared with the Rulesets
	// given out: never changed); first marks each one whose ingress (1)
	// or egress (2) path was its path's first use in the pass.
	eps   []nft.Endpoint
	first []uint8
}

// compiled is a policy or profile turned into rules, with the sets its
// rules refer to.
type compiled struct {
	chain string
	// broken is the calculation's brokenKey when compiled: a network set
	// that becomes unreadable changes what a rule that picks it does.
	broken   string
	pol      nft.Policy
	sets     map[string]*setSpec
	portSets map[string]*portSetSpec
	problems []string // reported while compiling it
}

// Calculator is Compute with a memory: it keeps what it derived from the
// resources of its previous call (the index of endpoints and set members,
// paths, compiled policies) and reuses it where the resources it came
// from did not change, as their versions tell: a resource's key and
// resourceVersion (its etcd revision: a resource at a revision never
// changes), or, for one without a revision, a hash of its content; a
// workload is known by its value (see index.update). Its result is always
// Compute's; the agent can check that on every change (CALICO_VERIFY).
type Calculator struct {
	last  *calculation
	nodes nodeMemo // ComputeBGP's
}

// Compute is the dataplane for in.
func (k *Calculator) Compute(in Input) Desired {
	c := newCalculation(in, k.last, true)
	d := c.compute()
	c.prev = nil
	k.last = c
	return d
}

// setSpec picks the endpoints and network sets whose addresses a set
// holds: those sel picks, in the namespaces nsSel picks (nil: any), or
// with global only those without a namespace, or with ns in that
// namespace alone.
type setSpec struct {
	sel, nsSel *selector.Selector
	global     bool
	ns         string
}

func (s *setSpec) key() string {
	k := "sel:" + s.sel.String()
	switch {
	case s.global:
		k += "|global"
	case s.nsSel != nil:
		k += "|ns-sel:" + s.nsSel.String()
	case s.ns != "":
		k += "|ns:" + s.ns
	}
	return k
}

// picks reports whether the set takes a group.
func (s *setSpec) picks(g *group) bool {
	switch {
	case s.global && g.ns != "":
	case s.ns != "" && g.ns != s.ns:
	case s.nsSel != nil && (g.ns == "" || !s.nsSel.Evaluate(namespaceLabels(g.ns))):
	default:
		return s.sel.Evaluate(g.labels)
	}
	return false
}

// portSetSpec picks the named ports of the endpoints a setSpec picks.
type portSetSpec struct {
	setSpec
	names []string
	proto uint8 // 0: any
}

func (s *portSetSpec) key() string {
	return fmt.Sprintf("%s|ports:%s|proto:%d", s.setSpec.key(), strings.Join(s.names, ","), s.proto)
}

// newCalculation indexes in: profiles by name and every endpoint that
// selectors can pick, updating prev's index (if any) when it was built
// from the same profiles, host endpoints and network sets.
func newCalculation(in Input, prev *calculation, remember bool) *calculation {
	var nPolicies, nCompiled int // the last calculation's, to size this one's
	if prev != nil {
		nPolicies, nCompiled = len(prev.policies), len(prev.compiled)
	}
	c := &calculation{
		in:          in,
		profiles:    map[string]*store.Profile{},
		policies:    make(map[string]nft.Policy, nPolicies),
		sets:        map[string]*setSpec{},
		specs:       map[string]*setSpec{},
		portSpecs:   map[string]*portSetSpec{},
		selectors:   map[string]*selector.Selector{},
		selErrs:     map[string]string{},
		paths:       map[string]nft.Path{},
		compiled:    make(map[string]compiled, nCompiled),
		portSets:    map[string]*portSetSpec{},
		profileVers: map[string]string{},
		prev:        prev,
		remember:    remember,
	}
	c.profiles[store.DefaultAllowProfile] = store.DefaultAllow()
	for _, p := range in.Profiles {
		c.profiles[p.Metadata.Name] = p
	}
	base := ""
	if remember {
		for _, p := range in.Profiles {
			c.profileVers[p.Metadata.Name] = version(p)
		}
		base = baseOf(in, c.profileVers)
	}
	if prev != nil && prev.idx != nil && base != "" && prev.idx.base == base {
		c.idx = prev.idx
	} else {
		c.idx = newIndex(c, in, base)
	}
	c.idx.update(c, in, remember)
	c.indexPolicies()
	if prev != nil && maps.Equal(prev.profileVers, c.profileVers) && c.selection == prev.selection {
		c.prevPaths, c.pathsValid = prev.paths, true
	}
	return c
}

// brokenKey names the network sets the node cannot use, by their labels
// and namespaces.
func (c *calculation) brokenKey() string {
	var b strings.Builder
	for _, g := range c.idx.broken {
		b.WriteString(groupKey(g.ns, g.labels) + "\x03")
	}
	return b.String()
}

// brokenNetSet names a network set the node cannot use that spec picks,
// or "".
func (c *calculation) brokenNetSet(spec *setSpec) string {
	for _, g := range c.idx.broken {
		if spec.picks(g) {
			if g.ns != "" {
				return "a NetworkSet of namespace " + g.ns
			}
			return "a GlobalNetworkSet"
		}
	}
	return ""
}

// namedPorts are an endpoint's named ports at each of its addresses.
func namedPorts(addrs []netip.Addr, ports []store.EndpointPort) map[string][]nft.NamedPort {
	if len(ports) == 0 {
		return nil
	}
	out := map[string][]nft.NamedPort{}
	for _, p := range ports {
		for _, a := range addrs {
			out[p.Name] = append(out[p.Name], nft.NamedPort{Addr: a, Protocol: p.Protocol.Num, Port: p.Port})
		}
	}
	return out
}

// workload is what the calculation derived from w.
func (c *calculation) workload(w *store.WorkloadEndpoint) workload { return c.idx.entries[w].workload }

// Compute is the dataplane for in.
func Compute(in Input) Desired { return newCalculation(in, nil, false).compute() }

func (c *calculation) compute() Desired {
	in := c.in
	var d Desired
	c.problems = append(c.problems, c.idx.problems...)
	ws := c.localEndpoints()
	d.Ruleset.Workloads = c.endpoints(ws)
	d.Routes = make([]route.Route, 0, 2*len(ws)+len(in.HostBlocks))
	for i, w := range ws {
		if down(in, w) {
			continue // routed again once the kernel reports the interface
		}
		ep := &d.Ruleset.Workloads[i]
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
	d.Ruleset.Policies = make([]nft.Policy, 0, len(c.policies))
	for _, name := range slices.Sorted(maps.Keys(c.policies)) {
		d.Ruleset.Policies = append(d.Ruleset.Policies, c.policies[name])
	}
	c.fillSets(&d.Ruleset)
	d.Ruleset.EndpointToHost = endpointToHost(in)
	c.dataProblems()
	c.reportUnpoliced()
	seen := map[string]bool{}
	for _, p := range c.problems { // a memory may report one twice
		if !seen[p] {
			seen[p] = true
			d.Problems = append(d.Problems, p)
		}
	}
	return d
}

// dataProblems reports every resource of the input with problems, field
// by field, whether or not this node uses it: the problems of the
// datastore as the node reads it.
func (c *calculation) dataProblems() {
	in := c.in
	reportData(c, slices.SortedFunc(maps.Keys(c.idx.flawed), func(a, b *store.WorkloadEndpoint) int {
		return cmp.Or(cmp.Compare(a.Metadata.Namespace, b.Metadata.Namespace), cmp.Compare(a.Metadata.Name, b.Metadata.Name))
	}))
	reportData(c, in.HostEndpoints)
	reportData(c, in.Profiles)
	reportData(c, in.GlobalPolicies)
	reportData(c, in.Policies)
	reportData(c, in.Tiers)
	reportData(c, in.NetworkSets)
	reportData(c, in.GlobalSets)
	reportData(c, in.Felix)
	reportData(c, in.Pools)
	reportData(c, in.Nodes)
	reportData(c, in.BGPPeers)
	reportData(c, in.BGPConfigs)
}

func reportData[R store.Resource](c *calculation, rs []R) {
	for _, r := range rs {
		for _, f := range r.Meta().Problems {
			field := f.Field
			if field == "" {
				field = "(the whole resource)"
			}
			c.problems = append(c.problems, fmt.Sprintf("%s: %s: %s", store.IDOf(r), field, f.Msg))
		}
	}
}

// endpoints are the endpoints of the local workloads ws, with their paths
// (whose policies it compiles): prev's when it listed the same ws and the
// paths still hold (see locals).
func (c *calculation) endpoints(ws []*store.WorkloadEndpoint) []nft.Endpoint {
	if m := c.prev.reusableLocals(c); m != nil && c.pathsValid {
		for i, w := range ws {
			if c.conflicted[w] || !c.enforceable(w) {
				continue
			}
			if m.first[i]&1 != 0 {
				c.use(m.eps[i].Ingress)
			}
			if m.first[i]&2 != 0 {
				c.use(m.eps[i].Egress)
			}
		}
		c.paths = c.prevPaths
		c.locals.eps, c.locals.first = m.eps, m.first
		return m.eps
	}
	eps := make([]nft.Endpoint, 0, len(ws))
	first := make([]uint8, len(ws))
	for i, w := range ws {
		ep := nft.Endpoint{Iface: w.Spec.InterfaceName, Addrs: c.workload(w).addrs, MAC: sourceMAC(w)}
		if c.conflicted[w] {
			ep.Addrs = nil // it may send nothing, and its paths drop
		} else if c.enforceable(w) {
			n := len(c.paths)
			ep.Ingress = c.path(w, "Ingress")
			if len(c.paths) > n {
				first[i] |= 1
			}
			n = len(c.paths)
			ep.Egress = c.path(w, "Egress")
			if len(c.paths) > n {
				first[i] |= 2
			}
		}
		eps = append(eps, ep)
	}
	if c.locals != nil {
		c.locals.eps, c.locals.first = eps, first
	}
	return eps
}

// reusableLocals is c's locals (c the previous calculation) when next
// may reuse them: the same index, unchanged for them since.
func (c *calculation) reusableLocals(next *calculation) *locals {
	if c == nil || c.locals == nil || c.locals.eps == nil || c.locals.x != next.idx || c.locals.gen != next.idx.localGen {
		return nil
	}
	return c.locals
}

// enforceable reports whether the node can enforce a local workload's
// endpoint as written; one it cannot (another tool wrote what it cannot
// use) gets empty paths, which drop everything, and is reported.
func (c *calculation) enforceable(w *store.WorkloadEndpoint) bool {
	ps := problemsOf(w)
	for _, f := range ps.policy {
		c.problems = append(c.problems, fmt.Sprintf("%s: %s: %s; its interface %s drops everything", store.IDOf(w), f.Field, f.Msg, w.Spec.InterfaceName))
	}
	return len(ps.policy) == 0
}

// fillSets gives every set and port set a rule refers to its members,
// bringing the index's up to date.
func (c *calculation) fillSets(rs *nft.Ruleset) {
	x := c.idx
	used := make(map[string]*members, len(c.sets)+len(c.portSets))
	for _, name := range slices.Sorted(maps.Keys(c.sets)) {
		m := x.members(name, c.sets[name], nil)
		used[name] = m
		rs.Sets = append(rs.Sets, nft.Set{Name: name, Members: m.addrs, Nets: m.nets, Version: m.version})
	}
	for _, name := range slices.Sorted(maps.Keys(c.portSets)) {
		ps := c.portSets[name]
		m := x.members(name, &ps.setSpec, ps)
		used[name] = m
		rs.PortSets = append(rs.PortSets, nft.PortSet{Name: name, Members: m.ports, Version: m.version})
	}
	x.sets = used
	clear(x.dirty)
}

// localWorkloads are this host's workload endpoints with an interface
// the node polices.
func localWorkloads(in Input) []*store.WorkloadEndpoint {
	var out []*store.WorkloadEndpoint
	for _, w := range in.Workloads {
		if localWorkload(w, in.Node) {
			out = append(out, w)
		}
	}
	return out
}

// localWorkload says whether w is one of node's workloads that the node
// programs.
func localWorkload(w *store.WorkloadEndpoint, node string) bool {
	return w.Spec.Node == node && w.Spec.InterfaceName != "" && !store.Broken(w) && Policed(w)
}

// localEndpoints are this host's workload endpoints with an interface
// the node polices, sorted by interface name. Two endpoints that claim one interface, or
// one address, cannot both be right: the interface (or both interfaces)
// is kept with no endpoint's policy, which drops everything, and the
// conflict is reported.
func (c *calculation) localEndpoints() []*store.WorkloadEndpoint {
	if m := c.prev.reusableLocals(c); m != nil {
		c.conflicted = m.conflicted
		c.problems = append(c.problems, m.conflicts...)
		c.locals = &locals{x: m.x, gen: m.gen, ws: m.ws, conflicted: m.conflicted, conflicts: m.conflicts}
		return m.ws
	}
	var out []*store.WorkloadEndpoint
	for w := range c.idx.local {
		if w.Spec.InterfaceName != "" && !store.Broken(w) && Policed(w) {
			out = append(out, w)
		}
	}
	slices.SortFunc(out, func(a, b *store.WorkloadEndpoint) int {
		return cmp.Or(cmp.Compare(a.Spec.InterfaceName, b.Spec.InterfaceName), cmp.Compare(a.Metadata.Namespace, b.Metadata.Namespace), cmp.Compare(a.Metadata.Name, b.Metadata.Name))
	})
	before := len(c.problems)
	out = c.conflicts(out)
	if c.remember {
		c.locals = &locals{x: c.idx, gen: c.idx.localGen, ws: out, conflicted: c.conflicted, conflicts: slices.Clone(c.problems[before:])}
	}
	return out
}

// conflicts keeps one endpoint per interface and marks the endpoints
// that claim an interface or an address another one claims (local, or of
// another host: one of the two was written past IPAM, and policy cannot
// tell which holds): their interface is kept with no address and no
// policy, which drops everything, and the conflict is reported. The other
// host does the same with its own endpoint.
func (c *calculation) conflicts(ws []*store.WorkloadEndpoint) []*store.WorkloadEndpoint {
	owner := map[netip.Addr]*store.WorkloadEndpoint{}
	for _, w := range ws {
		for _, a := range c.workload(w).addrs {
			if o, dup := owner[a]; dup && o != w {
				c.conflict(o, w, "address "+a.String())
			}
			owner[a] = w
		}
	}
	for _, a := range slices.SortedFunc(maps.Keys(owner), netip.Addr.Compare) {
		for _, w := range c.idx.byAddr[a] {
			if w.Spec.Node != c.in.Node {
				c.conflict(owner[a], w, "address "+a.String())
			}
		}
	}
	out := ws[:0]
	for _, w := range ws {
		if n := len(out); n > 0 && out[n-1].Spec.InterfaceName == w.Spec.InterfaceName {
			c.conflict(out[n-1], w, "interface "+w.Spec.InterfaceName)
			continue
		}
		out = append(out, w)
	}
	return out
}

func (c *calculation) conflict(a, b *store.WorkloadEndpoint, what string) {
	if c.conflicted == nil {
		c.conflicted = map[*store.WorkloadEndpoint]bool{}
	}
	c.conflicted[a], c.conflicted[b] = true, true
	c.problems = append(c.problems, fmt.Sprintf("%s and %s both claim %s: the interfaces of both drop everything", store.IDOf(a), store.IDOf(b), what))
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

// path is the tiers of policies and the profiles that apply to a
// workload in one direction (types "Ingress" or "Egress").
func (c *calculation) path(w *store.WorkloadEndpoint, dir string) nft.Path {
	wd := c.workload(w)
	key := dir + "\x02" + strings.Join(w.Spec.Profiles, "\x00") + "\x02" + wd.group
	p, ok := c.paths[key]
	if !ok {
		if p, ok = c.prevPaths[key]; !ok {
			p = c.pathOf(wd.labels, w.Metadata.Namespace, w.Spec.Profiles, dir, workloadEP)
		}
		c.paths[key] = p
		// Once per distinct path: its policies are then compiled for
		// every endpoint that shares it.
		c.use(p)
	}
	return p
}

// use compiles the policies and profiles of a path.
func (c *calculation) use(p nft.Path) {
	for _, chain := range p.Names() {
		if _, done := c.policies[chain]; !done {
			c.addPolicy(c.byChain[chain])
		}
	}
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

func (c *calculation) addPolicy(p policy) {
	if _, done := c.policies[p.chain]; done {
		return
	}
	cp, ok := compiled{}, false
	if c.prev != nil && p.version != "" {
		cp, ok = c.prev.compiled[p.version]
		ok = ok && cp.chain == p.chain && cp.broken == c.brokenKey()
	}
	if ok {
		c.problems = append(c.problems, cp.problems...)
	} else {
		before := len(c.problems)
		cp = compiled{chain: p.chain, broken: c.brokenKey(), pol: nft.Policy{Name: p.chain, Version: p.version}, sets: map[string]*setSpec{}, portSets: map[string]*portSetSpec{}}
		cp.pol.Ingress = c.compileRules(p, "ingress", p.ingress)
		cp.pol.Egress = c.compileRules(p, "egress", p.egress)
		for _, r := range slices.Concat(cp.pol.Ingress, cp.pol.Egress) {
			for _, n := range []string{r.Src.Set, r.Src.NotSet, r.Dst.Set, r.Dst.NotSet} {
				if n != "" {
					cp.sets[n] = c.specs[n]
				}
			}
			for _, n := range []string{r.Src.PortSet, r.Src.NotPortSet, r.Dst.PortSet, r.Dst.NotPortSet} {
				if n != "" {
					cp.portSets[n] = c.portSpecs[n]
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
	for n, s := range cp.portSets {
		if _, ok := c.portSets[n]; !ok {
			c.portSets[n] = s
		}
	}
	if p.version != "" {
		c.compiled[p.version] = cp
	}
	c.policies[p.chain] = cp.pol
}

var actions = map[string]nft.Action{"Allow": nft.Allow, "Deny": nft.Deny, "Pass": nft.Pass, "Log": nft.Log}

// parse parses a selector once per Compute (or reuses the previous
// calculation's); "" is all().
func (c *calculation) parse(s string) (*selector.Selector, error) {
	if sel, ok := c.selectors[s]; ok {
		if sel == nil {
			return nil, errors.New(c.selErrs[s])
		}
		return sel, nil
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
	c.selectors[s] = sel
	if problem != "" {
		c.selErrs[s] = problem
		return nil, errors.New(problem)
	}
	return sel, nil
}

// addSet names the address set of spec, adding it.
func (c *calculation) addSet(spec *setSpec) string {
	name := "s-" + hash(spec.key())
	if _, ok := c.specs[name]; !ok {
		c.specs[name] = spec
	}
	return name
}

// addPortSet names the port set of spec, adding it.
func (c *calculation) addPortSet(spec *portSetSpec) string {
	name := "p-" + hash(spec.key())
	if _, ok := c.portSpecs[name]; !ok {
		c.portSpecs[name] = spec
	}
	return name
}

// nothing names a set that stays empty: a rule that needs an address in
// it matches nothing.
func (c *calculation) nothing() string {
	name := "s-" + hash("nothing")
	c.specs[name] = nil
	return name
}

// members are the content of the set named name, computed from every
// group (Trace's: a Compute keeps them in its index).
func (c *calculation) members(name string) *members {
	return newMembers(c.idx, c.sets[name], nil)
}

// portMembers are the named ports of the endpoints a port set picks.
func (c *calculation) portMembers(name string) []nft.NamedPort {
	ps := c.portSets[name]
	return newMembers(c.idx, &ps.setSpec, ps).ports
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

// SameRules reports whether a and b hold the same policies with the same
// rules (String counts the rules only; the versions may differ: a fresh
// Compute gives none).
func SameRules(a, b Desired) bool {
	return slices.EqualFunc(a.Ruleset.Policies, b.Ruleset.Policies, func(x, y nft.Policy) bool {
		return x.Name == y.Name && reflect.DeepEqual(x.Ingress, y.Ingress) && reflect.DeepEqual(x.Egress, y.Egress)
	})
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
		fmt.Fprintf(&b, "set %s %v", s.Name, slices.Compact(m))
		if len(s.Nets) > 0 {
			n := slices.Clone(s.Nets)
			slices.SortFunc(n, func(a, b netip.Prefix) int {
				return cmp.Or(a.Addr().Compare(b.Addr()), cmp.Compare(a.Bits(), b.Bits()))
			})
			fmt.Fprintf(&b, " nets %v", slices.Compact(n))
		}
		b.WriteString("\n")
	}
	for _, s := range d.Ruleset.PortSets {
		fmt.Fprintf(&b, "port set %s %v\n", s.Name, s.Members)
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
	p, _ := json.Marshal(r.Meta().Problems)
	sum := sha256.Sum256(append(b, p...))
	return store.Key(store.IDOf(r)) + "#" + hex.EncodeToString(sum[:12])
}
