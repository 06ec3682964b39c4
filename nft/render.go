package nft

import (
	"cmp"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/netip"
	"slices"
	"strings"
)

// Names of the fixed objects of the table. No policy chain (suffix -in or
// -out), group chain (in-/out- and a hex hash) or user set (suffix -v4 or
// -v6) can take one of these names.
const (
	chainForward      = "forward"
	chainInput        = "input"
	chainFromDispatch = "wl-from-dispatch"
	chainToDispatch   = "wl-to-dispatch"
	chainToHost       = "wl-to-host"
	chainAllowed      = "allowed"
	chainPassed       = "passed"
	mapFrom           = "wl-from"
	mapTo             = "wl-to"
	setSrc4           = "wl-src-ipv4"
	setSrc6           = "wl-src-ipv6"
)

// IfacePrefix starts the name of every workload interface; traffic on an
// interface with this prefix that no endpoint claims is dropped.
const IfacePrefix = "cali"

// Direction is a policy direction, seen from the workload.
type Direction uint8

// Ingress is traffic towards the workload, Egress traffic from it.
const (
	Ingress Direction = iota + 1
	Egress
)

func (d Direction) String() string {
	if d == Egress {
		return "egress"
	}
	return "ingress"
}

func (d Direction) suffix() string {
	if d == Egress {
		return "-out"
	}
	return "-in"
}

// policyDir identifies one policy chain.
type policyDir struct {
	name string
	dir  Direction
}

// maxNameLen is the longest chain or set name the kernel takes
// (NFT_NAME_MAXLEN less its NUL).
const maxNameLen = 255

// objName is base+suffix, or for a base too long for the kernel a
// truncated base with a hash of all of it. "~" cannot occur in a policy or
// set name, so a shortened name never equals a real one.
func objName(base, suffix string) string {
	if len(base)+len(suffix) <= maxNameLen {
		return base + suffix
	}
	return base[:200] + "~" + shortHash(base) + suffix
}

// policyChain names the chain of one policy in one direction.
func policyChain(name string, d Direction) string { return objName(name, d.suffix()) }

// groupChain names the chain that evaluates one Path in one direction.
// Endpoints with equal Paths share it.
func groupChain(s stage, d Direction, p Path) string {
	var b strings.Builder
	if s != stageNormal {
		b.WriteString(s.prefix())
	}
	b.WriteString(d.String())
	b.WriteString(p.key())
	return s.prefix() + strings.TrimPrefix(d.suffix(), "-") + "-" + shortHash(b.String())
}

// stage is where a group chain evaluates its Path; it decides the
// chain's name and its semantics (groupRules).
type stage uint8

const (
	// stageNormal is an endpoint's Ingress or Egress.
	stageNormal stage = iota
	// stageForward is a host endpoint's ForwardIngress or ForwardEgress:
	// no tiers allows.
	stageForward
	// stagePreDNAT and stageUntracked are a host endpoint's PreDNAT and
	// Untracked paths: tiers always pass at their end, no profiles, and
	// a packet no rule decides returns undecided.
	stagePreDNAT
	stageUntracked
)

func (s stage) prefix() string {
	return [...]string{"", "fwd-", "pre-", "raw-"}[s]
}

func shortHash(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:8])
}

// newRule builds a rule and its comment: the label, then a hash of the
// rule's text.
func newRule(label string, stmts ...stmt) ChainRule {
	var buf [256]byte
	sum := sha256.Sum256(appendStmts(buf[:0], stmts))
	c := make([]byte, 0, len(label)+18)
	if label != "" {
		c = append(append(c, label...), ' ')
	}
	c = hex.AppendEncode(append(c, '#'), sum[:8])
	return ChainRule{Comment: string(c), stmts: stmts}
}

// Render computes the table for rs. It is pure: the same Ruleset gives the
// same Table, whatever the order of its slices. It fails when rs does not
// validate.
func Render(rs Ruleset) (*Table, error) { return new(renderer).render(rs) }

// renderer is Render with a memory of its previous call: a policy's rules
// and a set's elements are rendered once per version (Policy.Version,
// Set.Version, which the caller changes whenever the content changes),
// and a path's group chain once per list of names. The memory holds only
// what the previous call used.
type renderer struct {
	last, next memo
}

type memo struct {
	checked   map[versionKey]checkedPolicy // see Ruleset.validate
	policies  map[policyKey]policyMemo
	groups    map[pathKey]Chain
	sets      map[setKey][2][]Element
	workloads workloadsMemo
}

// workloadsMemo is the rendering of a Ruleset's Workloads (the slice eps
// itself, see Ruleset.Workloads): their dispatch maps and anti-spoofing
// sets, and the distinct paths they go to, in the order first used.
type workloadsMemo struct {
	eps   []Endpoint
	sets  []TableSet
	paths []pathUse
}

type pathUse struct {
	s stage
	d Direction
	p Path
}

// sameWorkloads reports whether eps is the slice m rendered.
func (m workloadsMemo) sameWorkloads(eps []Endpoint) bool {
	return len(eps) > 0 && len(eps) == len(m.eps) && &eps[0] == &m.eps[0]
}

type policyKey struct {
	name, version string
	dir           Direction
}

// policyMemo is a policy's rendered rules and what they depend on besides
// the policy: the kind of each Set and PortSet they refer to.
type policyMemo struct {
	rules []ChainRule
	refs  []setRef
}

// setRef is a Set (or a PortSet) a policy refers to, with its kind when
// the policy was rendered.
type setRef struct {
	port bool
	name string
	kind setKind
}

type pathKey struct {
	stage stage
	dir   Direction
	names string // the policies and profiles, in order
	acts  string // their actionBits, in the same order
}

type setKey struct {
	port          bool // a PortSet
	name, version string
}

func (r *renderer) render(rs Ruleset) (*Table, error) {
	r.next = memo{
		checked:  make(map[versionKey]checkedPolicy, len(r.last.checked)),
		policies: make(map[policyKey]policyMemo, len(r.last.policies)),
		groups:   make(map[pathKey]Chain, len(r.last.groups)),
		sets:     make(map[setKey][2][]Element, len(r.last.sets)),
	}
	same := r.last.workloads.sameWorkloads(rs.Workloads)
	var validated []pathUse // the paths of Workloads validated before, if they were
	if same {
		validated = r.last.workloads.paths
	}
	if err := rs.validate(r.last.checked, r.next.checked, validated); err != nil {
		r.next = memo{} // a ruleset refused leaves the memory as it was
		return nil, err
	}
	defer func() { r.last, r.next = r.next, memo{} }()
	// Sized from the last pass: a change's pass allocates the table once.
	t := &Table{owners: make(map[string]policyDir, 2*len(rs.Policies)),
		Chains: make([]Chain, 0, len(r.last.groups)+2*len(rs.Policies)+16)}
	sets, kinds := r.sets(rs)
	t.Sets = sets
	acts := policyActions(rs.Policies)

	groups := make(map[string]Chain, len(r.last.groups))
	used := make(map[policyDir]bool, 2*len(rs.Policies))
	// named are the group chains' names by path identity (pathID):
	// endpoints that share a path share its slices, so a path's names
	// are read once per pass, not once per endpoint.
	type groupID struct {
		s  stage
		d  Direction
		id pathID
	}
	named := make(map[groupID]string, len(r.last.groups))
	var uses []pathUse
	// group names the chain that evaluates p in direction d at stage s,
	// adding it and marking its policies used the first time.
	group := func(s stage, d Direction, p Path) string {
		gid := groupID{s, d, idOf(p)}
		if name, ok := named[gid]; ok {
			return name
		}
		uses = append(uses, pathUse{s, d, p})
		c := r.group(s, d, p, acts)
		if _, ok := groups[c.Name]; !ok {
			groups[c.Name] = c
			for n := range all(p) {
				used[policyDir{n, d}] = true
			}
		}
		named[gid] = c.Name
		return c.Name
	}
	if same {
		for _, u := range r.last.workloads.paths {
			group(u.s, u.d, u.p)
		}
		r.next.workloads = r.last.workloads
	} else {
		sets := workloadSets(rs.Workloads, group)
		r.next.workloads = workloadsMemo{eps: rs.Workloads, sets: sets, paths: slices.Clip(uses)}
	}
	t.Sets = append(t.Sets, r.next.workloads.sets...)
	t.Chains = append(t.Chains, fixedChains(rs.EndpointToHost)...)
	if len(rs.HostEndpoints) > 0 {
		t.Sets, t.Chains = renderHost(rs, t.Sets, t.Chains, group)
	}
	if len(rs.NATOutgoing) > 0 {
		t.Chains = append(t.Chains, natChain(rs.NATOutgoing, rs.NATExcept))
	}
	t.Sets, t.Chains = renderAttached(rs.Workloads, t.Sets, t.Chains)
	for _, c := range groups {
		t.Chains = append(t.Chains, c)
	}

	// Policy chains, only for the directions some endpoint uses.
	for _, p := range rs.Policies {
		for _, d := range []Direction{Ingress, Egress} {
			if !used[policyDir{p.Name, d}] {
				continue
			}
			name := policyChain(p.Name, d)
			t.owners[name] = policyDir{p.Name, d}
			t.Chains = append(t.Chains, Chain{Name: name, Rules: r.policyRules(p, d, kinds)})
		}
	}

	slices.SortFunc(t.Sets, func(a, b TableSet) int { return cmp.Compare(a.Name, b.Name) })
	sortChains(t.Chains)
	return t, nil
}

// workloadSets are the workloads' dispatch maps, pointing at their group
// chains, and anti-spoofing sets.
func workloadSets(eps []Endpoint, group func(stage, Direction, Path) string) []TableSet {
	var from, to, src4, src6 []Element
	for _, ep := range eps {
		key := ifaceKey(ep.Iface)
		to = append(to, Element{Key: key, Goto: group(stageNormal, Ingress, ep.Ingress)})
		from = append(from, Element{Key: key, Goto: group(stageNormal, Egress, ep.Egress)})
		for _, a := range ep.Addrs {
			a = a.Unmap().WithZone("")
			if a.Is4() {
				src4 = append(src4, Element{Key: key + string(a.AsSlice())})
			} else {
				src6 = append(src6, Element{Key: key + string(a.AsSlice())})
			}
		}
	}
	return []TableSet{
		{Name: mapFrom, Type: MapIfaceVerdict, Elems: sortElems(from)},
		{Name: mapTo, Type: MapIfaceVerdict, Elems: sortElems(to)},
		{Name: setSrc4, Type: SetIfaceIPv4, Elems: sortElems(src4)},
		{Name: setSrc6, Type: SetIfaceIPv6, Elems: sortElems(src6)},
	}
}

// group is the chain of a path, remembered by its policies' names and
// what they can do.
func (r *renderer) group(s stage, d Direction, p Path, acts map[policyDir]actionBits) Chain {
	act := func(name string) actionBits {
		if a, ok := acts[policyDir{name, d}]; ok {
			return a
		}
		return mayAllow | mayPass // not in the Ruleset (validation refuses that): test both marks
	}
	var b strings.Builder
	for n := range all(p) {
		b.WriteByte(byte(act(n)))
	}
	k := pathKey{s, d, p.key(), b.String()}
	c, ok := r.last.groups[k]
	if !ok {
		c = Chain{Name: groupChain(s, d, p), Rules: groupRules(s, d, p, act)}
	}
	r.next.groups[k] = c
	return c
}

// policyRules is policyRules, remembered by version and by the kinds of
// the Sets the policy refers to.
func (r *renderer) policyRules(p Policy, d Direction, kinds setKinds) []ChainRule {
	if p.Version == "" {
		return policyRules(p, d, kinds)
	}
	k := policyKey{p.Name, p.Version, d}
	m, ok := r.last.policies[k]
	for _, ref := range m.refs {
		ok = ok && kinds.of(ref) == ref.kind
	}
	if !ok {
		m = policyMemo{rules: policyRules(p, d, kinds), refs: policySets(p, d)}
		for i := range m.refs {
			m.refs[i].kind = kinds.of(m.refs[i])
		}
	}
	r.next.policies[k] = m
	return m.rules
}

// policySets lists the Sets and PortSets the rules of one direction of a
// policy refer to.
func policySets(p Policy, d Direction) []setRef {
	rules := p.Ingress
	if d == Egress {
		rules = p.Egress
	}
	var out []setRef
	add := func(port bool, names ...string) {
		for _, n := range names {
			if ref := (setRef{port: port, name: n}); n != "" && !slices.Contains(out, ref) {
				out = append(out, ref)
			}
		}
	}
	for _, r := range rules {
		for _, m := range []Match{r.Src, r.Dst} {
			add(false, m.Set, m.NotSet)
			add(true, m.PortSet, m.NotPortSet)
		}
	}
	return out
}

// Mark tests of the group chains.
var (
	accepted  = markTest{mask: markAccept, value: markAccept}
	notPassed = markTest{mask: markPass, value: 0}
)

// The rules every group chain shares; their statements are never
// modified, so one copy serves all chains.
var (
	ruleClearMarks = newRule("", markSet{clear: markAccept | markPass})
	ruleIfAccepted = newRule("", accepted, vReturn)
	ruleClearPass  = newRule("", markSet{clear: markPass})
	ruleNoProfile  = newRule("no profile allowed", counter{}, vDrop)
	ruleEmptyPath  = newRule("empty path", counter{}, vDrop)
	// At the forward stage a path without tiers allows; at the pre-DNAT
	// and untracked stages what no policy decided goes on.
	ruleNoForwardPolicy = newRule("no forward policy", counter{}, vReturn)
	ruleUndecided       = newRule("no policy decided", counter{}, vReturn)
)

// actionBits say what the rules of one direction of a policy can do to
// the marks: set Accept (an Allow rule), set Pass (a Pass rule).
type actionBits uint8

const (
	mayAllow actionBits = 1 << iota
	mayPass
)

// policyActions are the actionBits of every policy and direction.
func policyActions(ps []Policy) map[policyDir]actionBits {
	m := make(map[policyDir]actionBits, 2*len(ps))
	for _, p := range ps {
		for _, dr := range [...]struct {
			d     Direction
			rules []Rule
		}{{Ingress, p.Ingress}, {Egress, p.Egress}} {
			var a actionBits
			for _, r := range dr.rules {
				switch r.Action {
				case Allow:
					a |= mayAllow
				case Pass:
					a |= mayPass
				}
			}
			m[policyDir{p.Name, dr.d}] = a
		}
	}
	return m
}

// groupRules evaluates a Path like Felix does, with two mark bits: a
// policy chain sets Accept and returns to allow, sets Pass and returns to
// skip to the next tier, drops to deny, or returns with neither bit set
// when no rule matched. Each tier starts with Pass clear. At the forward
// stage a path without tiers allows; at the pre-DNAT and untracked
// stages tiers pass at their end and a packet that no policy allowed or
// denied returns with Accept clear, for the base chain to go on.
//
// A mark is tested only where a policy could have set it (act): Pass
// before a policy only when one before it in the tier has a Pass rule,
// Accept after a policy only when it has an Allow rule. Each test is
// three expressions of the kernel's, and most tables have no Pass rule
// at all. The jumps and tests carry no counter: the policies' rules
// count what they match (`calico policy stats`), and the drops here
// count what no policy decided.
func groupRules(s stage, d Direction, p Path, act func(string) actionBits) []ChainRule {
	early := s == stagePreDNAT || s == stageUntracked
	switch {
	case s == stageForward && len(p.Tiers) == 0:
		return []ChainRule{ruleNoForwardPolicy}
	case early && len(p.Tiers) == 0:
		return []ChainRule{ruleUndecided}
	case len(p.Tiers)+len(p.Profiles) == 0:
		return []ChainRule{ruleEmptyPath}
	}
	rules := make([]ChainRule, 0, 2+3*len(p.Tiers)+2*len(p.Names()))
	rules = append(rules, ruleClearMarks)
	for i, t := range p.Tiers {
		if i > 0 {
			rules = append(rules, ruleClearPass)
		}
		passed := false // a policy before in this tier can pass
		for _, n := range t.Policies {
			if passed {
				rules = append(rules, newRule("", notPassed, jump(policyChain(n, d))))
			} else {
				rules = append(rules, newRule("", jump(policyChain(n, d))))
			}
			a := act(n)
			if a&mayAllow != 0 {
				rules = append(rules, ruleIfAccepted)
			}
			passed = passed || a&mayPass != 0
		}
		if !t.DefaultPass && !early && len(t.Policies) > 0 {
			end := "end of tier " + t.Name + ": no policy allowed or passed"
			if !passed {
				// No policy of the tier passes: what follows (later
				// tiers, the profiles) is never reached.
				return append(rules, newRule(end, counter{}, vDrop))
			}
			rules = append(rules, newRule(end, notPassed, counter{}, vDrop))
		}
	}
	if early {
		return append(rules, ruleUndecided)
	}
	for _, n := range p.Profiles {
		rules = append(rules, newRule("", jump(policyChain(n, d))))
		if act(n)&mayAllow != 0 {
			rules = append(rules, ruleIfAccepted)
		}
	}
	return append(rules, ruleNoProfile)
}

// fixedChains are the base chains and the dispatch chains.
func fixedChains(toHost Verdict) []Chain {
	final := vDrop
	switch toHost {
	case Accept:
		final = vAccept
	case Return:
		final = vReturn
	}
	return []Chain{
		{Name: chainForward, Hook: &Hook{Name: "forward", Accept: true}, Rules: []ChainRule{
			newRule("", established, counter{}, vAccept),
			newRule("", invalid, counter{}, vDrop),
			newRule("", ifacePrefix{prefix: IfacePrefix}, counter{}, jump(chainFromDispatch)),
			newRule("", ifacePrefix{out: true, prefix: IfacePrefix}, counter{}, jump(chainToDispatch)),
		}},
		{Name: chainInput, Hook: &Hook{Name: "input", Accept: true}, Rules: []ChainRule{
			newRule("", ifacePrefix{prefix: IfacePrefix}, counter{}, goTo(chainToHost)),
		}},
		{Name: chainToHost, Rules: []ChainRule{
			newRule("", established, counter{}, vAccept),
			newRule("", invalid, counter{}, vDrop),
			newRule("", nfproto{6}, l4proto{proto: 58}, icmpRange{fam: 6, from: 133, to: 136}, counter{}, vAccept),
			newRule("", counter{}, jump(chainFromDispatch)),
			newRule("endpoint to host", counter{}, final),
		}},
		{Name: chainFromDispatch, Rules: []ChainRule{
			newRule("anti-spoofing", nfproto{4}, ifaceAddrSet{fam: 4, set: setSrc4}, counter{}, vDrop),
			newRule("anti-spoofing", nfproto{6}, ifaceAddrSet{fam: 6, set: setSrc6}, counter{}, vDrop),
			newRule("", counter{}, vmap{set: mapFrom}),
			newRule("unknown interface", counter{}, vDrop),
		}},
		{Name: chainToDispatch, Rules: []ChainRule{
			newRule("", counter{}, vmap{out: true, set: mapTo}),
			newRule("unknown interface", counter{}, vDrop),
		}},
		// A policy rule that allows or passes goes to one of these, which
		// set its mark and return to the group chain that jumped to the
		// policy (a goto replaces the policy's chain on the stack): one
		// expression in each such rule instead of four. The kernel's
		// load of a rule costs about 2 µs per expression (most of it a
		// lookup of the expression's type by name along every type it
		// knows), which made most of a full load.
		{Name: chainAllowed, Rules: []ChainRule{newRule("", markSet{set: markAccept}, vReturn)}},
		{Name: chainPassed, Rules: []ChainRule{newRule("", markSet{set: markPass}, vReturn)}},
	}
}

// policyRules renders one direction of a policy: each Calico rule becomes
// one kernel rule per family it can match, labelled "rule <index>". A
// family in which a set the rule needs an address in is empty is one the
// rule cannot match (sets.go).
func policyRules(p Policy, d Direction, kinds setKinds) []ChainRule {
	rules := p.Ingress
	if d == Egress {
		rules = p.Egress
	}
	var out []ChainRule
	for i, r := range rules {
		label := fmt.Sprintf("rule %d", i)
		for _, fam := range ruleFamilies(r) {
			if !kinds.canMatch(r, fam) {
				continue
			}
			for _, stmts := range ruleStmts(r, fam, kinds) {
				out = append(out, newRule(label, stmts...))
			}
		}
	}
	return out
}

// ruleFamilies lists the kernel rules one Calico rule needs: 0 alone when
// nothing in it depends on the family, else 4 and/or 6 (none when it can
// match neither, like an ICMPv6 rule restricted to IPv4). As in Felix, a
// list of nets (or notNets) with no entry of a family keeps the rule out
// of that family.
func ruleFamilies(r Rule) []family {
	has := map[family]bool{4: true, 6: true}
	only := func(f family) {
		has[4], has[6] = has[4] && f == 4, has[6] && f == 6
	}
	if r.IPVersion == 4 || r.IPVersion == 6 {
		only(family(r.IPVersion))
	}
	if f, ok := icmpFamily(r.Protocol); ok {
		only(f)
	}
	for _, nets := range [][]netip.Prefix{r.Src.Nets, r.Src.NotNets, r.Dst.Nets, r.Dst.NotNets} {
		if len(nets) > 0 {
			in := netFamilies(nets)
			has[4], has[6] = has[4] && in[4], has[6] && in[6]
		}
	}
	if !familySpecific(r) && has[4] && has[6] {
		return []family{0}
	}
	var out []family
	for _, f := range []family{4, 6} {
		if has[f] {
			out = append(out, f)
		}
	}
	return out
}

// canMatch reports whether the sets a rule needs an address in have
// elements of family fam: a lookup in an empty set matches nothing.
func (k setKinds) canMatch(r Rule, fam family) bool {
	for _, m := range []Match{r.Src, r.Dst} {
		if m.Set != "" && !k.sets[m.Set].has(fam) {
			return false
		}
		if m.PortSet != "" && len(m.Ports) == 0 && !k.ports[m.PortSet].has(fam) {
			return false
		}
	}
	return true
}

// familySpecific reports whether a rule matches something that exists
// per family: an IP version, ICMP, a set or port set, nets.
func familySpecific(r Rule) bool {
	if r.IPVersion != 0 || r.ICMP != nil || r.NotICMP != nil {
		return true
	}
	for _, m := range []Match{r.Src, r.Dst} {
		if m.Set != "" || m.NotSet != "" || m.PortSet != "" || m.NotPortSet != "" || len(m.Nets)+len(m.NotNets) > 0 {
			return true
		}
	}
	return false
}

// icmpFamily is the one family an ICMP protocol belongs to.
func icmpFamily(proto *uint8) (family, bool) {
	switch {
	case proto != nil && *proto == 1:
		return 4, true
	case proto != nil && *proto == 58:
		return 6, true
	}
	return 0, false
}

// netFamilies are the families a list of nets has entries of.
func netFamilies(nets []netip.Prefix) map[family]bool {
	in := map[family]bool{}
	for _, p := range nets {
		in[prefixFamily(p)] = true
	}
	return in
}

// Families lists the IP families a rule is rendered for, as ruleFamilies
// does: 0 alone when one kernel rule matches both, else 4 and/or 6.
func (r Rule) Families() []int {
	var out []int
	for _, f := range ruleFamilies(r) {
		out = append(out, int(f))
	}
	return out
}

// NetsOf keeps the nets of family fam (4 or 6) as a rule's kernel rule of
// that family matches them: unmapped, masked, sorted and unique.
func NetsOf(nets []netip.Prefix, fam int) []netip.Prefix { return netsOf(nets, family(fam)) }

func prefixFamily(p netip.Prefix) family {
	if p.Addr().Unmap().Is4() {
		return 4
	}
	return 6
}

// Short lists of nets or ports are not anonymous sets: the kernel's cost
// of adding a set grows with the sets already in the table, so a table of
// thousands of rules like "ports: [80, 443]" loaded slowly. A negated list
// of at most maxInline entries becomes that many comparisons in the rule
// (not any of them = none of them); a positive one becomes one kernel rule
// per entry, as long as a Calico rule of one family stays within
// maxVariants kernel rules (a Log rule stays one, so that it keeps one
// rate limit). The entries are made disjoint first, so a packet matches
// at most one of the rules.
const (
	maxInline   = 4
	maxVariants = 4
)

// position is one place in a rule's statements: one statement, or a list
// whose entries are alternatives (whole is the list as one set lookup).
type position struct {
	alts  []stmt
	whole stmt
}

// ruleStmts renders one Calico rule for one family, as one or more kernel
// rules.
func ruleStmts(r Rule, fam family, kinds setKinds) [][]stmt {
	var pos positions
	if fam != 0 {
		pos.one(nfproto{fam})
	}
	if r.Protocol != nil {
		pos.one(l4proto{proto: *r.Protocol})
	}
	if r.NotProtocol != nil {
		pos.one(l4proto{proto: *r.NotProtocol, neg: true})
	}
	pos.addrs(r.Src, false, fam, kinds)
	pos.addrs(r.Dst, true, fam, kinds)
	pos.ports(r.Src, false, fam, kinds)
	pos.ports(r.Dst, true, fam, kinds)
	pos.portSets(r.Src, false, fam, kinds)
	pos.portSets(r.Dst, true, fam, kinds)
	if r.ICMP != nil {
		pos.one(icmp{fam: fam, typ: r.ICMP.Type, code: r.ICMP.Code})
	}
	if r.NotICMP != nil {
		pos.one(icmp{fam: fam, typ: r.NotICMP.Type, code: r.NotICMP.Code, neg: true})
	}
	pos.one(counter{})
	pos.verdict(r.Action)
	limit := maxVariants
	if r.Action == Log {
		limit = 1 // one rate limit per Calico rule and family, as before
	}
	return expand(pos, limit)
}

// positions are a kernel rule's statements in order.
type positions []position

func (pos *positions) one(s stmt) { *pos = append(*pos, position{alts: []stmt{s}}) }

// addrs adds the address matches of one end: its sets, then its nets (a
// short positive list as alternatives), then its notNets (a short list as
// comparisons). Not being in an empty set is no test.
func (pos *positions) addrs(m Match, dst bool, fam family, kinds setKinds) {
	if m.Set != "" {
		pos.one(addrSet{fam: fam, dst: dst, set: kinds.name(m.Set, fam)})
	}
	if m.NotSet != "" && kinds.sets[m.NotSet].has(fam) {
		pos.one(addrSet{fam: fam, dst: dst, neg: true, set: kinds.name(m.NotSet, fam)})
	}
	if nets := disjointNets(netsOf(m.Nets, fam)); len(nets) > 0 {
		p := position{whole: addrNets{fam: fam, dst: dst, cidrs: nets}}
		if len(nets) <= maxInline {
			for i := range nets {
				p.alts = append(p.alts, addrNets{fam: fam, dst: dst, cidrs: nets[i : i+1]})
			}
		}
		*pos = append(*pos, p)
	}
	if nets := disjointNets(netsOf(m.NotNets, fam)); len(nets) > maxInline {
		pos.one(addrNets{fam: fam, dst: dst, neg: true, cidrs: nets})
	} else {
		for i := range nets {
			pos.one(addrNets{fam: fam, dst: dst, neg: true, cidrs: nets[i : i+1]})
		}
	}
}

// ports adds the port matches of one end, as addrs does nets. Ports and
// a PortSet together are alternatives (Calico's numeric and named ports
// in one list): two kernel rules, one never collapsed into the other;
// with the PortSet's family empty, the Ports alone.
func (pos *positions) ports(m Match, dst bool, fam family, kinds setKinds) {
	if len(m.Ports) > 0 && m.PortSet != "" && kinds.ports[m.PortSet].has(fam) {
		ranges := mergePorts(normPorts(m.Ports))
		*pos = append(*pos, position{alts: []stmt{ports{dst: dst, ranges: ranges}, addrPortSet{fam: fam, dst: dst, set: portSetName(m.PortSet, fam)}}})
	} else if len(m.Ports) > 0 {
		ranges := mergePorts(normPorts(m.Ports))
		p := position{whole: ports{dst: dst, ranges: ranges}}
		if len(ranges) <= maxInline {
			for i := range ranges {
				p.alts = append(p.alts, ports{dst: dst, ranges: ranges[i : i+1]})
			}
		}
		*pos = append(*pos, p)
	}
	if ranges := mergePorts(normPorts(m.NotPorts)); len(ranges) > maxInline {
		pos.one(ports{dst: dst, neg: true, ranges: ranges})
	} else {
		for i := range ranges {
			pos.one(ports{dst: dst, neg: true, ranges: ranges[i : i+1]})
		}
	}
}

// portSets adds the port set matches of one end: (address, protocol,
// port) in the set, or not in it (no test when it is empty).
func (pos *positions) portSets(m Match, dst bool, fam family, kinds setKinds) {
	if m.PortSet != "" && len(m.Ports) == 0 { // with Ports: an alternative of theirs
		pos.one(addrPortSet{fam: fam, dst: dst, set: portSetName(m.PortSet, fam)})
	}
	if m.NotPortSet != "" && kinds.ports[m.NotPortSet].has(fam) {
		pos.one(addrPortSet{fam: fam, dst: dst, neg: true, set: portSetName(m.NotPortSet, fam)})
	}
}

// verdict adds what a matching rule does.
func (pos *positions) verdict(a Action) {
	switch a {
	case Allow:
		pos.one(goTo(chainAllowed))
	case Deny:
		pos.one(vDrop)
	case Pass:
		pos.one(goTo(chainPassed))
	case Log:
		pos.one(logLimit{})
	}
}

// expand turns positions into kernel rules: lists stay sets (whole) until
// the product of the others' entries is within limit, then every
// combination of entries is a rule.
func expand(pos []position, limit int) [][]stmt {
	for {
		n, widest := 1, -1
		for i, p := range pos {
			if len(p.alts) == 0 { // too long to expand
				pos[i].alts = []stmt{p.whole}
				continue
			}
			n *= len(p.alts)
			if len(p.alts) > 1 && p.whole != nil && (widest < 0 || len(p.alts) > len(pos[widest].alts)) {
				widest = i
			}
		}
		if n <= limit || widest < 0 {
			break
		}
		pos[widest].alts = []stmt{pos[widest].whole}
	}
	out := [][]stmt{nil}
	for _, p := range pos {
		next := make([][]stmt, 0, len(out)*len(p.alts))
		for _, prefix := range out {
			for _, a := range p.alts {
				next = append(next, append(slices.Clip(prefix), a))
			}
		}
		out = next
	}
	return out
}

// disjointNets drops the nets inside another of the list (sorted by
// address, then length, as netsOf returns them): two CIDRs are either
// nested or disjoint.
func disjointNets(nets []netip.Prefix) []netip.Prefix {
	out := nets[:0:0]
	for _, p := range nets {
		if n := len(out); n > 0 && out[n-1].Contains(p.Addr()) && out[n-1].Bits() <= p.Bits() {
			continue
		}
		out = append(out, p)
	}
	return out
}

// mergePorts joins overlapping and adjacent ranges (sorted by First).
func mergePorts(rs []PortRange) []PortRange {
	out := rs[:0:0]
	for _, r := range rs {
		if n := len(out); n > 0 && (out[n-1].Last == 0xffff || int(r.First) <= int(out[n-1].Last)+1) {
			out[n-1].Last = max(out[n-1].Last, r.Last)
			continue
		}
		out = append(out, r)
	}
	return out
}

// netsOf keeps the nets of one family, masked, sorted and unique.
func netsOf(nets []netip.Prefix, fam family) []netip.Prefix {
	var out []netip.Prefix
	for _, p := range nets {
		if prefixFamily(p) != fam {
			continue
		}
		a := p.Addr().Unmap()
		bits := p.Bits()
		if p.Addr().Is4In6() {
			bits -= 96
		}
		out = append(out, netip.PrefixFrom(a, bits).Masked())
	}
	slices.SortFunc(out, func(a, b netip.Prefix) int {
		return cmp.Or(a.Addr().Compare(b.Addr()), cmp.Compare(a.Bits(), b.Bits()))
	})
	return slices.Compact(out)
}

func normPorts(rs []PortRange) []PortRange {
	out := slices.Clone(rs)
	slices.SortFunc(out, func(a, b PortRange) int {
		return cmp.Or(cmp.Compare(a.First, b.First), cmp.Compare(a.Last, b.Last))
	})
	return slices.Compact(out)
}
