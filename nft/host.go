package nft

import (
	"cmp"
	"net/netip"
	"slices"
)

// Names of the objects host endpoints and NAT outgoing add.
const (
	chainOutput  = "output"
	chainNAT     = "nat-postrouting"
	mapHostIn    = "host-ingress"
	mapHostOut   = "host-egress"
	loopbackName = "lo"

	chainFwdFrom          = "fwd-from-dispatch"
	chainFwdTo            = "fwd-to-dispatch"
	mapFwdIn              = "host-fwd-ingress"
	mapFwdOut             = "host-fwd-egress"
	chainManglePrerouting = "mangle-prerouting"
	chainPreDNATFrom      = "pre-dnat-dispatch"
	mapPreDNAT            = "host-pre-dnat"
	chainRawPrerouting    = "raw-prerouting"
	chainRawOutput        = "raw-output"
	chainUntrackedFrom    = "untracked-from-dispatch"
	chainUntrackedTo      = "untracked-to-dispatch"
	mapUntrackedIn        = "host-untracked-ingress"
	mapUntrackedOut       = "host-untracked-egress"
	prioRaw, prioMangle   = -300, -150
)

// hostStages says which of the host endpoints' optional stages have
// tiers anywhere: only those are rendered.
type hostStages struct {
	forward, preDNAT, untrackedIn, untrackedOut bool
}

func stagesOf(hs []HostEndpoint) hostStages {
	var st hostStages
	for _, h := range hs {
		st.forward = st.forward || len(h.ForwardIngress.Tiers)+len(h.ForwardEgress.Tiers) > 0
		st.preDNAT = st.preDNAT || len(h.PreDNAT.Tiers) > 0
		st.untrackedIn = st.untrackedIn || len(h.UntrackedIngress.Tiers) > 0
		st.untrackedOut = st.untrackedOut || len(h.UntrackedEgress.Tiers) > 0
	}
	return st
}

// earlyIn tells whether an incoming packet may have been allowed before
// the filter hooks (mark bit Early).
func (st hostStages) earlyIn() bool { return st.preDNAT || st.untrackedIn }

// renderHost adds what host endpoints need: after the workload rule of the
// input chain, and in a new output chain, the host's own traffic is
// checked like Felix does it: loopback and established flows pass,
// neighbour discovery and the failsafe ports are accepted, then a verdict
// map dispatches by interface to the group chain of the endpoint's Path,
// and the endpoint for all interfaces ("*") takes the rest. Traffic
// between the host and its own workloads never reaches these rules:
// workload to host is decided by the workload's egress (wl-to-host), host
// to workload is accepted at once. The optional stages (forward,
// pre-DNAT, untracked) follow, each only when some endpoint has tiers
// in it.
func renderHost(rs Ruleset, sets []TableSet, chains []Chain, group func(stage, Direction, Path) string) ([]TableSet, []Chain) {
	st := stagesOf(rs.HostEndpoints)
	var in, out []Element
	var anyIn, anyOut string
	for _, h := range rs.HostEndpoints {
		gin, gout := group(stageNormal, Ingress, h.Ingress), group(stageNormal, Egress, h.Egress)
		if h.Iface == AllInterfaces {
			anyIn, anyOut = gin, gout
			continue
		}
		in = append(in, Element{Key: ifaceKey(h.Iface), Goto: gin})
		out = append(out, Element{Key: ifaceKey(h.Iface), Goto: gout})
	}
	sets = append(sets,
		TableSet{Name: mapHostIn, Type: MapIfaceVerdict, Elems: sortElems(in)},
		TableSet{Name: mapHostOut, Type: MapIfaceVerdict, Elems: sortElems(out)})

	for i := range chains {
		switch chains[i].Name {
		case chainInput:
			chains[i].Rules = append(chains[i].Rules, hostRules(false, rs.FailsafeIn, anyIn, st.earlyIn())...)
		case chainForward:
			if st.forward {
				chains[i].Rules = append(chains[i].Rules, forwardRules(st)...)
			}
		}
	}
	output := Chain{Name: chainOutput, Hook: &Hook{Name: "output", Accept: true}, Rules: []ChainRule{
		newRule("to a local workload", ifacePrefix{out: true, prefix: IfacePrefix}, counter{}, vAccept),
	}}
	output.Rules = append(output.Rules, hostRules(true, rs.FailsafeOut, anyOut, st.untrackedOut)...)
	chains = append(chains, output)
	for _, d := range dispatches(st) {
		s, c := d.render(rs.HostEndpoints, group)
		sets, chains = append(sets, s), append(chains, c)
	}
	return sets, append(chains, earlyChains(rs, st)...)
}

// ruleND accepts ICMPv6 MLD and neighbour discovery, which IPv6 cannot do
// without.
var ruleND = newRule("neighbour discovery", nfproto{6}, l4proto{proto: 58}, icmpRange{fam: 6, from: 130, to: 136}, counter{}, vAccept)

// hostRules check the host's traffic through its host endpoints in one
// direction (out: sent by the host); early accepts what an untracked or
// pre-DNAT policy allowed.
func hostRules(out bool, failsafe []ProtoPort, anyGroup string, early bool) []ChainRule {
	rules := []ChainRule{
		newRule("loopback", ifaceName{out: out, name: loopbackName}, counter{}, vAccept),
		newRule("", established, counter{}, vAccept),
		newRule("", invalid, counter{}, vDrop),
	}
	if early {
		rules = append(rules, ruleEarly)
	}
	rules = append(rules, ruleND)
	rules = append(rules, failsafeRules(out, false, failsafe)...)
	m := mapHostIn
	if out {
		m = mapHostOut
	}
	rules = append(rules, newRule("", counter{}, vmap{out: out, set: m}))
	if anyGroup != "" {
		rules = append(rules, newRule("all interfaces", counter{}, goTo(anyGroup)))
	}
	return rules
}

// ruleEarly accepts a packet an earlier stage of its host endpoint
// allowed; ruleClearAllMarks clears all three of our mark bits, first
// thing in the prerouting and output hooks.
var (
	ruleEarly         = newRule("allowed by untracked or pre-DNAT policy", markTest{mask: markEarly, value: markEarly}, counter{}, vAccept)
	ruleClearAllMarks = newRule("", markSet{clear: markAccept | markPass | markEarly})
)

// forwardRules follow the workload rules of the forward chain: traffic
// to or from a workload is decided by then; traffic between two host
// interfaces goes through the forward policy of the one it came in by
// (unless an earlier stage allowed it) and of the one it goes out by.
func forwardRules(st hostStages) []ChainRule {
	from := newRule("", counter{}, jump(chainFwdFrom))
	if st.earlyIn() {
		from = newRule("", markTest{mask: markEarly, value: 0}, counter{}, jump(chainFwdFrom))
	}
	return []ChainRule{
		newRule("from a workload", ifacePrefix{prefix: IfacePrefix}, counter{}, vAccept),
		newRule("to a workload", ifacePrefix{out: true, prefix: IfacePrefix}, counter{}, vAccept),
		from,
		newRule("", counter{}, jump(chainFwdTo)),
	}
}

// dispatch is one optional stage and direction of the host endpoints: a
// verdict map from interface to the group chain of the endpoint's path
// at that stage, and a chain, jumped to, that looks it up and then goes
// to the group of the "*" endpoint if it has tiers at that stage. Every
// named endpoint has an element (its group allows or leaves the packet
// undecided when it has no tiers), so that "*" never takes it.
type dispatch struct {
	stage        stage
	dir          Direction
	mapName, via string
	path         func(HostEndpoint) Path
}

func dispatches(st hostStages) []dispatch {
	var out []dispatch
	if st.forward {
		out = append(out,
			dispatch{stageForward, Ingress, mapFwdIn, chainFwdFrom, func(h HostEndpoint) Path { return h.ForwardIngress }},
			dispatch{stageForward, Egress, mapFwdOut, chainFwdTo, func(h HostEndpoint) Path { return h.ForwardEgress }})
	}
	if st.preDNAT {
		out = append(out, dispatch{stagePreDNAT, Ingress, mapPreDNAT, chainPreDNATFrom, func(h HostEndpoint) Path { return h.PreDNAT }})
	}
	if st.untrackedIn {
		out = append(out, dispatch{stageUntracked, Ingress, mapUntrackedIn, chainUntrackedFrom, func(h HostEndpoint) Path { return h.UntrackedIngress }})
	}
	if st.untrackedOut {
		out = append(out, dispatch{stageUntracked, Egress, mapUntrackedOut, chainUntrackedTo, func(h HostEndpoint) Path { return h.UntrackedEgress }})
	}
	return out
}

func (d dispatch) render(hs []HostEndpoint, group func(stage, Direction, Path) string) (TableSet, Chain) {
	out := d.dir == Egress
	var elems []Element
	var any string
	for _, h := range hs {
		p := d.path(h)
		if h.Iface == AllInterfaces {
			if len(p.Tiers) > 0 {
				any = group(d.stage, d.dir, p)
			}
			continue
		}
		elems = append(elems, Element{Key: ifaceKey(h.Iface), Goto: group(d.stage, d.dir, p)})
	}
	c := Chain{Name: d.via, Rules: []ChainRule{newRule("", counter{}, vmap{out: out, set: d.mapName})}}
	if any != "" {
		c.Rules = append(c.Rules, newRule("all interfaces", counter{}, goTo(any)))
	}
	return TableSet{Name: d.mapName, Type: MapIfaceVerdict, Elems: sortElems(elems)}, c
}

// earlyChains are the base chains before conntrack (priority raw) and
// before DNAT (priority mangle). Each starts by clearing our mark bits,
// so that Early means what this packet's stages decided. The untracked
// stage accepts the failsafe ports, and the replies of failsafe
// connections the other way (conntrack cannot tell them yet), and then
// notrack-accepts what untracked policy allowed; the pre-DNAT stage
// accepts established flows, what untracked policy allowed and the
// failsafe ports, then accepts what pre-DNAT policy allowed. Both mark
// what they allowed Early, for the filter hooks to accept.
func earlyChains(rs Ruleset, st hostStages) []Chain {
	var out []Chain
	if st.earlyIn() {
		c := Chain{Name: chainRawPrerouting, Hook: &Hook{Name: "prerouting", Priority: prioRaw, Accept: true}, Rules: []ChainRule{ruleClearAllMarks}}
		if st.untrackedIn {
			c.Rules = append(c.Rules, untrackedRules(false, rs.FailsafeIn, rs.FailsafeOut)...)
		}
		out = append(out, c)
	}
	if st.untrackedOut {
		c := Chain{Name: chainRawOutput, Hook: &Hook{Name: "output", Priority: prioRaw, Accept: true}, Rules: []ChainRule{ruleClearAllMarks}}
		c.Rules = append(c.Rules, untrackedRules(true, rs.FailsafeOut, rs.FailsafeIn)...)
		out = append(out, c)
	}
	if !st.preDNAT {
		return out
	}
	c := Chain{Name: chainManglePrerouting, Hook: &Hook{Name: "prerouting", Priority: prioMangle, Accept: true}, Rules: []ChainRule{
		newRule("from a workload", ifacePrefix{prefix: IfacePrefix}, counter{}, vAccept),
		newRule("loopback", ifaceName{name: loopbackName}, counter{}, vAccept),
		newRule("", established, counter{}, vAccept),
	}}
	if st.untrackedIn {
		c.Rules = append(c.Rules, ruleEarly)
	}
	c.Rules = append(c.Rules, ruleND)
	c.Rules = append(c.Rules, failsafeRules(false, false, rs.FailsafeIn)...)
	c.Rules = append(c.Rules,
		newRule("", counter{}, jump(chainPreDNATFrom)),
		newRule("pre-DNAT policy allowed", accepted, markSet{set: markEarly}, counter{}, vAccept))
	return append(out, c)
}

// untrackedRules are the untracked stage of one direction (out: sent by
// the host): failsafe are the ports of that direction, replies those of
// the other, whose replies pass this way.
func untrackedRules(out bool, failsafe, replies []ProtoPort) []ChainRule {
	rules := []ChainRule{ruleND}
	rules = append(rules, failsafeRules(out, false, failsafe)...)
	rules = append(rules, failsafeRules(out, true, replies)...)
	via := chainUntrackedFrom
	if out {
		via = chainUntrackedTo
	}
	return append(rules,
		newRule("", counter{}, jump(via)),
		newRule("untracked policy allowed", accepted, markSet{set: markEarly}, notrack{}, counter{}, vAccept))
}

// failsafeRules accept the failsafe ports: one rule per protocol for the
// ports open to any address, one per port limited to a net (the remote
// end's: the source inbound, the destination outbound). The port is the
// destination port, or with reply the source port: the replies of
// failsafe connections made the other way.
func failsafeRules(out, reply bool, pps []ProtoPort) []ChainRule {
	label := "failsafe"
	if reply {
		label = "failsafe reply"
	}
	pps = slices.Clone(pps)
	slices.SortFunc(pps, func(a, b ProtoPort) int {
		return cmp.Or(cmp.Compare(a.Protocol, b.Protocol), cmp.Compare(a.Port, b.Port),
			a.Net.Addr().Compare(b.Net.Addr()), cmp.Compare(a.Net.Bits(), b.Net.Bits()))
	})
	pps = slices.Compact(pps)
	var rules []ChainRule
	anyNet := map[uint8][]PortRange{}
	var protos []uint8
	for _, pp := range pps {
		if pp.Net.IsValid() {
			fam := prefixFamily(pp.Net)
			rules = append(rules, newRule(label, nfproto{fam}, addrNets{fam: fam, dst: out, cidrs: netsOf([]netip.Prefix{pp.Net}, fam)},
				l4proto{proto: pp.Protocol}, ports{dst: !reply, ranges: []PortRange{{pp.Port, pp.Port}}}, counter{}, vAccept))
			continue
		}
		if _, ok := anyNet[pp.Protocol]; !ok {
			protos = append(protos, pp.Protocol)
		}
		anyNet[pp.Protocol] = append(anyNet[pp.Protocol], PortRange{pp.Port, pp.Port})
	}
	for _, p := range protos {
		rules = append(rules, newRule(label, l4proto{proto: p}, ports{dst: !reply, ranges: anyNet[p]}, counter{}, vAccept))
	}
	return rules
}

// natChain masquerades traffic from the NAT prefixes to destinations
// outside every excepted prefix, per family.
func natChain(from, except []netip.Prefix) Chain {
	c := Chain{Name: chainNAT, Hook: &Hook{Name: "postrouting", NAT: true, Priority: prioSrcNAT, Accept: true}}
	for _, fam := range []family{4, 6} {
		src := netsOf(from, fam)
		if len(src) == 0 {
			continue
		}
		stmts := []stmt{nfproto{fam}, addrNets{fam: fam, cidrs: src}}
		if dst := netsOf(except, fam); len(dst) > 0 {
			stmts = append(stmts, addrNets{fam: fam, dst: true, neg: true, cidrs: dst})
		}
		c.Rules = append(c.Rules, newRule("nat outgoing", append(stmts, counter{}, masquerade{})...))
	}
	return c
}
