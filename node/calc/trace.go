package calc

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"calico/nft"
	"calico/store"
)

// Packet is the first packet of a new flow from one workload to another,
// as Trace follows it. Its addresses are the workloads' own.
type Packet struct {
	// IPVersion is 4 or 6. 0 picks ICMP's or ICMPv6's family for those
	// protocols, else IPv4 when both workloads have an IPv4 address, else
	// IPv6.
	IPVersion int
	// Protocol is an IP protocol number (6 TCP, 17 UDP, 1 ICMP, 58
	// ICMPv6, 132 SCTP, 136 UDPLite, ...).
	Protocol uint8
	// SrcPort and DstPort are the ports of TCP, UDP, SCTP and UDPLite.
	// SrcPort 0 is unknown (an ephemeral port): a rule on source ports is
	// then taken as not matching, and the trace says so.
	SrcPort, DstPort uint16
	// ICMPType and ICMPCode are those of an ICMP or ICMPv6 packet.
	ICMPType, ICMPCode uint8
}

// HasPorts reports whether protocol p carries ports that rules can match.
func HasPorts(p uint8) bool { return p == 6 || p == 17 || p == 132 || p == 136 }

// Result is how policy treats a Packet: the egress path of its source
// workload, then the ingress path of its destination.
type Result struct {
	IPVersion       int
	Src, Dst        netip.Addr
	Egress, Ingress PathTrace
	Allowed         bool
	// Reason is the verdict, where it was decided and how: "denied at the
	// ingress of default/db by rule 2 of GlobalNetworkPolicy deny-db".
	Reason string
	// Problems are data the calculation could not use (as in Desired).
	Problems []string
}

// PathTrace is the evaluation of one direction's Path.
type PathTrace struct {
	// Endpoint is the workload as namespace/name.
	Endpoint string
	Allowed  bool
	// Reason is "allowed by rule 0 of Profile web", "denied by rule 2 of
	// GlobalNetworkPolicy deny-db", or "denied: " and "no policy allowed
	// (end of policies)", "no profile allowed" or "no policy or profile
	// applies".
	Reason string
	// Steps are the policies, then the profiles, in evaluation order, and
	// last any profile the workload names that does not exist.
	Steps []Step
}

// Outcome is what one policy or profile did with the packet.
type Outcome string

// The outcomes of a Step.
const (
	Allowed    Outcome = "allow"
	Denied     Outcome = "deny"
	Passed     Outcome = "pass"
	NoMatch    Outcome = "no rule matched"
	Skipped    Outcome = "skipped (an earlier policy passed)"
	NotReached Outcome = "not reached"
	Missing    Outcome = "does not exist (allows nothing)"
)

// Step is one policy or profile of a path.
type Step struct {
	Kind      string // GlobalNetworkPolicy, NetworkPolicy, Profile; "" for a hashed name not found
	Namespace string
	Name      string
	Tier      string `json:",omitempty"` // a policy's tier; "" for a profile
	Outcome   Outcome
	// Rules are the rules that matched, in order: Log rules (which
	// continue), then the one that decided, if any.
	Rules []RuleHit
	// Notes say where the trace had to assume something.
	Notes []string
}

// RuleHit is one matching rule.
type RuleHit struct {
	Index  int
	Action string // Allow, Deny, Pass, Log
	Rule   string // a short description of what it matches
}

// Ref is the step's kind and name as the reasons write it.
func (s Step) Ref() string {
	name := s.Name
	if s.Namespace != "" {
		name = s.Namespace + "/" + name
	}
	if s.Kind == "" {
		return name
	}
	return s.Kind + " " + name
}

// Trace follows pkt from workload from to workload to through the egress
// path of from and the ingress path of to, computed from in by the same
// calculation as Compute's, and evaluates the rules as they are rendered
// into nftables (nft.Path documents the semantics).
func Trace(in Input, from, to *store.WorkloadEndpoint, pkt Packet) (Result, error) {
	if from.Metadata.Namespace == to.Metadata.Namespace && from.Metadata.Name == to.Metadata.Name {
		return Result{}, fmt.Errorf("%s is both ends: a workload's traffic to itself stays inside it and meets no policy", workloadName(from))
	}
	version, src, dst, err := pickAddrs(from, to, pkt)
	if err != nil {
		return Result{}, err
	}
	c := newCalculation(in, nil, false)
	c.localEndpoints() // finds the conflicts
	t := &tracer{c: c, fam: version, src: src, dst: dst, pkt: pkt, members: map[string]*members{}, sources: c.sources()}
	r := Result{IPVersion: version, Src: src, Dst: dst}
	r.Egress = t.path(from, nft.Egress)
	r.Ingress = t.path(to, nft.Ingress)
	r.Allowed = r.Egress.Allowed && r.Ingress.Allowed
	// "denied at the ingress of default/db by rule 2 of …", "denied at
	// the egress of default/web: no profile allowed", "allowed at the
	// egress of default/web by rule 0 of Profile web, and at …".
	at := func(side string, d PathTrace) string {
		why := strings.TrimPrefix(strings.TrimPrefix(d.Reason, "allowed"), "denied")
		if rest, ok := strings.CutPrefix(why, ": "); ok {
			return "at the " + side + " of " + d.Endpoint + ": " + rest
		}
		return "at the " + side + " of " + d.Endpoint + why
	}
	switch {
	case !r.Egress.Allowed:
		r.Reason = "denied " + at("egress", r.Egress)
	case !r.Ingress.Allowed:
		r.Reason = "denied " + at("ingress", r.Ingress)
	default:
		r.Reason = "allowed " + at("egress", r.Egress) + ", and " + at("ingress", r.Ingress)
	}
	r.Problems = c.problems
	return r, nil
}

func workloadName(w *store.WorkloadEndpoint) string {
	name := w.Spec.Workload
	if name == "" {
		name = w.Metadata.Name
	}
	return w.Metadata.Namespace + "/" + name
}

// pickAddrs chooses the family and the two workloads' addresses of it.
func pickAddrs(from, to *store.WorkloadEndpoint, pkt Packet) (int, netip.Addr, netip.Addr, error) {
	version := pkt.IPVersion
	switch {
	case version != 0 && version != 4 && version != 6:
		return 0, netip.Addr{}, netip.Addr{}, fmt.Errorf("IP version %d is not 4 or 6", version)
	case pkt.Protocol == 1 && version == 6:
		return 0, netip.Addr{}, netip.Addr{}, errors.New("ICMP is IPv4's; IPv6 has ICMPv6")
	case pkt.Protocol == 58 && version == 4:
		return 0, netip.Addr{}, netip.Addr{}, errors.New("ICMPv6 is IPv6's; IPv4 has ICMP")
	case pkt.Protocol == 1:
		version = 4
	case pkt.Protocol == 58:
		version = 6
	}
	addr := func(w *store.WorkloadEndpoint, v int) netip.Addr {
		for _, a := range workloadAddrs(w) {
			if a = a.Unmap(); (v == 4) == a.Is4() {
				return a
			}
		}
		return netip.Addr{}
	}
	if version == 0 {
		version = 4
		if !addr(from, 4).IsValid() || !addr(to, 4).IsValid() {
			version = 6
		}
	}
	src, dst := addr(from, version), addr(to, version)
	for _, e := range []struct {
		w *store.WorkloadEndpoint
		a netip.Addr
	}{{from, src}, {to, dst}} {
		if !e.a.IsValid() {
			if pkt.IPVersion == 0 && version == 6 && pkt.Protocol != 58 {
				return 0, netip.Addr{}, netip.Addr{}, fmt.Errorf("%s and %s have no address family in common (%s has %s, %s has %s)",
					workloadName(from), workloadName(to), workloadName(from), addrList(from), workloadName(to), addrList(to))
			}
			return 0, netip.Addr{}, netip.Addr{}, fmt.Errorf("%s has no IPv%d address (it has %s)", workloadName(e.w), version, addrList(e.w))
		}
	}
	return version, src, dst, nil
}

func addrList(w *store.WorkloadEndpoint) string {
	as := workloadAddrs(w)
	if len(as) == 0 {
		return "none"
	}
	s := make([]string, len(as))
	for i, a := range as {
		s[i] = a.String()
	}
	return strings.Join(s, ", ")
}

// source is the resource a policy chain renders.
type source struct {
	kind, ns, name  string
	ingress, egress []store.Rule
}

// sources maps every policy and profile's chain name (as path names
// them) to its resource.
func (c *calculation) sources() map[string]source {
	out := map[string]source{}
	for _, g := range c.in.GlobalPolicies {
		out[chainName("gnp-", g.Metadata.Name)] = source{store.KindGlobalNetworkPolicy.Name, "", g.Metadata.Name, g.Spec.Ingress, g.Spec.Egress}
	}
	for _, p := range c.in.Policies {
		out[chainName("np-", p.Metadata.Namespace+"."+p.Metadata.Name)] = source{store.KindNetworkPolicy.Name, p.Metadata.Namespace, p.Metadata.Name, p.Spec.Ingress, p.Spec.Egress}
	}
	for _, p := range c.in.Profiles {
		out[chainName("pro-", p.Metadata.Name)] = source{store.KindProfile.Name, "", p.Metadata.Name, p.Spec.Ingress, p.Spec.Egress}
	}
	return out
}

// tracer evaluates one packet.
type tracer struct {
	c        *calculation
	fam      int
	src, dst netip.Addr
	pkt      Packet
	members  map[string]*members // by set name
	sources  map[string]source
}

// path evaluates w's path in direction d as the group chain does (see
// nft.Path and groupRules in nft/render.go).
func (t *tracer) path(w *store.WorkloadEndpoint, d nft.Direction) PathTrace {
	dir := "Ingress"
	if d == nft.Egress {
		dir = "Egress"
	}
	e := &evaluation{out: PathTrace{Endpoint: workloadName(w)}}
	if t.c.conflicted[w] || !t.c.enforceable(w) {
		e.out.Reason = "denied: the node cannot enforce this endpoint as written (see the problems)"
		return e.out
	}
	p := t.c.path(w, dir)
	for _, tier := range p.Tiers {
		t.tier(e, tier, d)
	}
	for _, chain := range p.Profiles {
		s := t.step(chain)
		if e.decided {
			s.Outcome = NotReached
		} else {
			t.eval(&s, chain, d)
			if s.Outcome == Passed {
				s.Notes = append(s.Notes, "Pass in a profile ends that profile; evaluation goes on with the next one")
			}
			e.result(s)
		}
		e.out.Steps = append(e.out.Steps, s)
	}
	for _, name := range w.Spec.Profiles {
		if t.c.profiles[name] == nil {
			e.out.Steps = append(e.out.Steps, Step{Kind: store.KindProfile.Name, Name: name, Outcome: Missing})
		}
	}
	switch {
	case e.decided:
	case len(p.Tiers)+len(p.Profiles) == 0:
		e.decide(false, "denied: no policy or profile applies")
	default:
		e.decide(false, "denied: no profile allowed")
	}
	return e.out
}

// evaluation is a path's trace so far.
type evaluation struct {
	out     PathTrace
	decided bool
	passed  bool // in the current tier
}

func (e *evaluation) decide(allowed bool, reason string) {
	e.decided, e.out.Allowed, e.out.Reason = true, allowed, reason
}

// result records what a step's Allow or Deny decided.
func (e *evaluation) result(s Step) {
	switch s.Outcome {
	case Allowed:
		e.decide(true, "allowed by "+lastHit(s))
	case Denied:
		e.decide(false, "denied by "+lastHit(s))
	}
}

// tier evaluates one tier's policies: Pass skips the rest of the tier,
// and the tier's end drops what none allowed or passed unless it passes.
func (t *tracer) tier(e *evaluation, tier nft.Tier, d nft.Direction) {
	e.passed = false
	for _, chain := range tier.Policies {
		s := t.step(chain)
		s.Tier = tier.Name
		switch {
		case e.decided:
			s.Outcome = NotReached
		case e.passed:
			s.Outcome = Skipped
		default:
			t.eval(&s, chain, d)
			e.passed = s.Outcome == Passed
			e.result(s)
		}
		e.out.Steps = append(e.out.Steps, s)
	}
	if !e.decided && !e.passed && !tier.DefaultPass {
		e.decide(false, "denied: no policy allowed or passed (end of tier "+tier.Name+")")
	}
}

func lastHit(s Step) string {
	h := s.Rules[len(s.Rules)-1]
	return fmt.Sprintf("rule %d of %s", h.Index, s.Ref())
}

func (t *tracer) step(chain string) Step {
	src, ok := t.sources[chain]
	if !ok {
		kind, ns, name := PolicyOf(chain)
		return Step{Kind: kind, Namespace: ns, Name: name}
	}
	return Step{Kind: src.kind, Namespace: src.ns, Name: src.name}
}

// eval runs the packet through one policy chain: Log rules log and go
// on, the first Allow, Deny or Pass decides, and a chain that runs out of
// rules returns with no verdict.
func (t *tracer) eval(s *Step, chain string, d nft.Direction) {
	pol := t.c.policies[chain]
	rules, described := pol.Ingress, t.sources[chain].ingress
	if d == nft.Egress {
		rules, described = pol.Egress, t.sources[chain].egress
	}
	s.Outcome = NoMatch
	for i, r := range rules {
		ok, srcPortUnknown := t.match(r)
		if srcPortUnknown {
			s.Notes = append(s.Notes, fmt.Sprintf("rule %d matches some source ports only: taken as not matching (give a source port)", i))
		}
		if !ok {
			continue
		}
		h := RuleHit{Index: i, Action: actionName(r.Action)}
		if i < len(described) {
			h.Rule = describe(described[i])
		}
		s.Rules = append(s.Rules, h)
		switch r.Action {
		case nft.Allow:
			s.Outcome = Allowed
			return
		case nft.Deny:
			s.Outcome = Denied
			return
		case nft.Pass:
			s.Outcome = Passed
			return
		}
	}
}

func actionName(a nft.Action) string {
	for name, v := range actions {
		if v == a {
			return name
		}
	}
	return "none"
}

// match reports whether r, as rendered for the packet's family, matches
// the packet. srcPortUnknown is set when everything else matched but r
// constrains the source port, which the packet does not know.
func (t *tracer) match(r nft.Rule) (ok, srcPortUnknown bool) {
	fams := r.Families()
	fam := 0
	switch {
	case slices.Contains(fams, 0):
	case slices.Contains(fams, t.fam):
		fam = t.fam
	default:
		return false, false // no kernel rule of this family
	}
	p := t.pkt
	if r.Protocol != nil && *r.Protocol != p.Protocol || r.NotProtocol != nil && *r.NotProtocol == p.Protocol {
		return false, false
	}
	if !t.matchAddrs(r.Src, t.src, fam) || !t.matchAddrs(r.Dst, t.dst, fam) {
		return false, false
	}
	hasPorts := len(r.Src.Ports)+len(r.Src.NotPorts)+len(r.Dst.Ports)+len(r.Dst.NotPorts) > 0
	if hasPorts && !HasPorts(p.Protocol) {
		return false, false // Validate refuses ports without a port protocol
	}
	if !t.matchPorts(r.Dst, t.dst, p.DstPort) || !matchICMP(r, p) {
		return false, false
	}
	if len(r.Src.Ports)+len(r.Src.NotPorts) > 0 || r.Src.PortSet+r.Src.NotPortSet != "" {
		if p.SrcPort == 0 {
			return false, true
		}
		if !t.matchPorts(r.Src, t.src, p.SrcPort) {
			return false, false
		}
	}
	return true, false
}

// matchPorts matches one end's ports and named ports (see nft.Match): the
// port must be in Ports or PortSet (in each given, when only one is), and
// in neither NotPorts nor NotPortSet. A packet without ports is in no
// port set.
func (t *tracer) matchPorts(m nft.Match, a netip.Addr, port uint16) bool {
	in := func(name string) bool {
		if !HasPorts(t.pkt.Protocol) {
			return false
		}
		return slices.Contains(t.c.portMembers(name), nft.NamedPort{Addr: a, Protocol: t.pkt.Protocol, Port: port})
	}
	pos := len(m.Ports) == 0 || inPorts(m.Ports, port)
	switch {
	case len(m.Ports) > 0 && m.PortSet != "":
		pos = pos || in(m.PortSet)
	case m.PortSet != "":
		pos = in(m.PortSet)
	}
	neg := len(m.NotPorts) > 0 && inPorts(m.NotPorts, port) || m.NotPortSet != "" && in(m.NotPortSet)
	return pos && !neg
}

// matchAddrs matches one end's sets and nets (of family fam) against a.
func (t *tracer) matchAddrs(m nft.Match, a netip.Addr, fam int) bool {
	switch {
	case m.Set != "" && !t.inSet(m.Set, a), m.NotSet != "" && t.inSet(m.NotSet, a):
		return false
	}
	if nets := nft.NetsOf(m.Nets, fam); len(nets) > 0 && !inNets(nets, a) {
		return false
	}
	if nets := nft.NetsOf(m.NotNets, fam); len(nets) > 0 && inNets(nets, a) {
		return false
	}
	return true
}

// matchICMP matches a rule's ICMP type and code, and their negation.
func matchICMP(r nft.Rule, p Packet) bool {
	if i := r.ICMP; i != nil && (p.ICMPType != i.Type || (i.Code != nil && p.ICMPCode != *i.Code)) {
		return false
	}
	if i := r.NotICMP; i != nil && p.ICMPType == i.Type && (i.Code == nil || p.ICMPCode == *i.Code) {
		return false
	}
	return true
}

// inSet looks a up in the named set's members and nets, as the kernel
// set of a's family holds them.
func (t *tracer) inSet(name string, a netip.Addr) bool {
	m, ok := t.members[name]
	if !ok {
		m = t.c.members(name) // fresh slices: changed in place below
		for i := range m.addrs {
			m.addrs[i] = m.addrs[i].Unmap().WithZone("")
		}
		t.members[name] = m
	}
	return slices.Contains(m.addrs, a) || inNets(m.nets, a)
}

func inNets(nets []netip.Prefix, a netip.Addr) bool {
	for _, n := range nets {
		if n.Contains(a) {
			return true
		}
	}
	return false
}

func inPorts(rs []nft.PortRange, port uint16) bool {
	for _, r := range rs {
		if r.First <= port && port <= r.Last {
			return true
		}
	}
	return false
}

// describe writes a rule's match in a few words, in Calico's terms.
func describe(r store.Rule) string {
	var parts []string
	if r.IPVersion != nil {
		parts = append(parts, "IPv"+strconv.Itoa(*r.IPVersion))
	}
	if r.Protocol != nil {
		parts = append(parts, r.Protocol.String())
	}
	if r.NotProtocol != nil {
		parts = append(parts, "not "+r.NotProtocol.String())
	}
	if s := icmpText(r.ICMP); s != "" {
		parts = append(parts, s)
	}
	if s := icmpText(r.NotICMP); s != "" {
		parts = append(parts, "not "+s)
	}
	if s := entityText(r.Source); s != "" {
		parts = append(parts, "from "+s)
	}
	if s := entityText(r.Destination); s != "" {
		parts = append(parts, "to "+s)
	}
	if len(parts) == 0 {
		return "any packet"
	}
	return strings.Join(parts, " ")
}

func icmpText(i *store.ICMP) string {
	if i == nil || i.Type == nil {
		return ""
	}
	s := "type " + strconv.Itoa(*i.Type)
	if i.Code != nil {
		s += " code " + strconv.Itoa(*i.Code)
	}
	return s
}

func entityText(e store.EntityRule) string {
	var parts []string
	add := func(label string, v string) {
		if v != "" {
			parts = append(parts, label+" "+v)
		}
	}
	add("selector", quoteSel(e.Selector))
	add("not selector", quoteSel(e.NotSelector))
	add("namespaceSelector", quoteSel(e.NamespaceSelector))
	add("nets", strings.Join(e.Nets, ","))
	add("not nets", strings.Join(e.NotNets, ","))
	add("ports", portsText(e.Ports))
	add("not ports", portsText(e.NotPorts))
	return strings.Join(parts, " ")
}

func quoteSel(s string) string {
	if s == "" {
		return ""
	}
	return "(" + s + ")"
}

func portsText(ps []store.Port) string {
	s := make([]string, len(ps))
	for i, p := range ps {
		s[i] = p.String()
	}
	return strings.Join(s, ",")
}
