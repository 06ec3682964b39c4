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
)

// renderHost adds what host endpoints need: after the workload rule of the
// input chain, and in a new output chain, the host's own traffic is
// checked like Felix does it: loopback and established flows pass,
// neighbour discovery and the failsafe ports are accepted, then a verdict
// map dispatches by interface to the group chain of the endpoint's Path,
// and the endpoint for all interfaces ("*") takes the rest. Traffic
// between the host and its own workloads never reaches these rules:
// workload to host is decided by the workload's egress (wl-to-host), host
// to workload is accepted at once.
func renderHost(rs Ruleset, sets []TableSet, chains []Chain, group func(Direction, Path) string) ([]TableSet, []Chain) {
	var in, out []Element
	var anyIn, anyOut string
	for _, h := range rs.HostEndpoints {
		gin, gout := group(Ingress, h.Ingress), group(Egress, h.Egress)
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
		if chains[i].Name == chainInput {
			chains[i].Rules = append(chains[i].Rules, hostRules(false, rs.FailsafeIn, anyIn)...)
		}
	}
	output := Chain{Name: chainOutput, Hook: &Hook{Name: "output", Accept: true}, Rules: []ChainRule{
		newRule("to a local workload", ifacePrefix{out: true, prefix: IfacePrefix}, counter{}, vAccept),
	}}
	output.Rules = append(output.Rules, hostRules(true, rs.FailsafeOut, anyOut)...)
	return sets, append(chains, output)
}

// hostRules check the host's traffic through its host endpoints in one
// direction (out: sent by the host).
func hostRules(out bool, failsafe []ProtoPort, anyGroup string) []ChainRule {
	rules := []ChainRule{
		newRule("loopback", ifaceName{out: out, name: loopbackName}, counter{}, vAccept),
		newRule("", established, counter{}, vAccept),
		newRule("", invalid, counter{}, vDrop),
		newRule("neighbour discovery", nfproto{6}, l4proto{proto: 58}, icmpRange{fam: 6, from: 130, to: 136}, counter{}, vAccept),
	}
	rules = append(rules, failsafeRules(out, failsafe)...)
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

// failsafeRules accept the failsafe ports: one rule per protocol for the
// ports open to any address, one per port limited to a net (the remote
// end's: the source inbound, the destination outbound).
func failsafeRules(out bool, pps []ProtoPort) []ChainRule {
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
			rules = append(rules, newRule("failsafe", nfproto{fam}, addrNets{fam: fam, dst: out, cidrs: netsOf([]netip.Prefix{pp.Net}, fam)},
				l4proto{proto: pp.Protocol}, ports{dst: true, ranges: []PortRange{{pp.Port, pp.Port}}}, counter{}, vAccept))
			continue
		}
		if _, ok := anyNet[pp.Protocol]; !ok {
			protos = append(protos, pp.Protocol)
		}
		anyNet[pp.Protocol] = append(anyNet[pp.Protocol], PortRange{pp.Port, pp.Port})
	}
	for _, p := range protos {
		rules = append(rules, newRule("failsafe", l4proto{proto: p}, ports{dst: true, ranges: anyNet[p]}, counter{}, vAccept))
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
