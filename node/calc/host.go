package calc

import (
	"cmp"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strings"

	"calico/nft"
	"calico/store"
)

// hostEndpoints are this host's HostEndpoints with the policy in front of
// each, sorted by interface. A host endpoint governs the interface it
// names, or, without a name, the interfaces that hold one of its
// expectedIPs (as Felix resolves them); when several claim one
// interface, the first by name wins and the others are reported.
func (c *calculation) hostEndpoints() []nft.HostEndpoint {
	claims := map[string][]*store.HostEndpoint{}
	for _, h := range c.in.HostEndpoints {
		if h.Spec.Node != c.in.Node || store.Broken(h) {
			continue
		}
		for _, iface := range c.interfacesOf(h) {
			claims[iface] = append(claims[iface], h)
		}
	}
	var out []nft.HostEndpoint
	for _, iface := range slices.Sorted(maps.Keys(claims)) {
		hs := claims[iface]
		slices.SortFunc(hs, func(a, b *store.HostEndpoint) int { return cmp.Compare(a.Metadata.Name, b.Metadata.Name) })
		for _, h := range hs[1:] {
			c.problems = append(c.problems, fmt.Sprintf("HostEndpoints %s and %s both claim interface %q; %s is ignored", hs[0].Metadata.Name, h.Metadata.Name, iface, h.Metadata.Name))
		}
		out = append(out, c.hostEndpoint(hs[0], iface))
	}
	return out
}

// interfacesOf are the interfaces a host endpoint governs.
func (c *calculation) interfacesOf(h *store.HostEndpoint) []string {
	iface := h.Spec.InterfaceName
	switch {
	case iface == nft.AllInterfaces:
		return []string{iface}
	case iface == "lo" || strings.HasPrefix(iface, nft.IfacePrefix) || len(iface) > 15 || strings.ContainsAny(iface, "\"\\ "):
		c.problems = append(c.problems, fmt.Sprintf("HostEndpoint %s: interface %q cannot be a host endpoint; it is ignored", h.Metadata.Name, iface))
		return nil
	case iface != "":
		return []string{iface}
	}
	var out []string
	for name, addrs := range c.in.HostInterfaces {
		if name == "lo" || strings.HasPrefix(name, nft.IfacePrefix) {
			continue
		}
		if slices.ContainsFunc(h.Spec.ExpectedIPs, func(ip string) bool {
			a, err := netip.ParseAddr(ip)
			return err == nil && slices.Contains(addrs, a.Unmap())
		}) {
			out = append(out, name)
		}
	}
	if len(out) == 0 {
		c.problems = append(c.problems, fmt.Sprintf("HostEndpoint %s: no interface of this host has any of its expectedIPs %v; it governs nothing until one does", h.Metadata.Name, h.Spec.ExpectedIPs))
	}
	slices.Sort(out)
	return out
}

// hostEndpoint is the policy of every stage of one host endpoint on one
// interface. One the node cannot enforce as written drops everything
// (but its failsafe ports).
func (c *calculation) hostEndpoint(h *store.HostEndpoint, iface string) nft.HostEndpoint {
	e := nft.HostEndpoint{Iface: iface}
	if ps := problemsOf(h); len(ps.policy) > 0 {
		for _, f := range ps.policy {
			c.problems = append(c.problems, fmt.Sprintf("%s: %s: %s; interface %s drops everything but its failsafe ports", store.IDOf(h), f.Field, f.Msg, iface))
		}
		deny := c.denyPath()
		e.ForwardIngress, e.ForwardEgress = deny, deny
		return e
	}
	labels := c.hostLabels(h)
	path := func(dir string, st stage) nft.Path {
		p := c.pathOf(labels, "", h.Spec.Profiles, dir, st)
		c.use(p)
		return p
	}
	e.Ingress, e.Egress = path("Ingress", normal), path("Egress", normal)
	e.ForwardIngress, e.ForwardEgress = path("Ingress", forward), path("Egress", forward)
	e.PreDNAT = path("Ingress", preDNAT)
	if iface != nft.AllInterfaces {
		e.UntrackedIngress, e.UntrackedEgress = path("Ingress", untracked), path("Egress", untracked)
	} else if u := c.pathOf(labels, "", nil, "Ingress", untracked); len(u.Tiers) > 0 {
		c.problems = append(c.problems, fmt.Sprintf("HostEndpoint %s: doNotTrack policies do not apply to the all-interfaces host endpoint (as in Calico)", h.Metadata.Name))
	}
	return e
}

// denyChain is a policy that denies everything, for paths that must drop
// even where an empty path would allow (forwarding).
const denyChain = "x-deny-all"

func (c *calculation) denyPath() nft.Path {
	if _, ok := c.policies[denyChain]; !ok {
		c.policies[denyChain] = nft.Policy{Name: denyChain, Ingress: []nft.Rule{{Action: nft.Deny}}, Egress: []nft.Rule{{Action: nft.Deny}}, Version: denyChain}
	}
	return nft.Path{Tiers: []nft.Tier{{Name: "unenforceable", Policies: []string{denyChain}}}}
}

// Failsafe ports: Calico's defaults, plus gossip (7946 tcp and udp), the
// join API (7947) and the liveness check (7948 udp), so that no host
// endpoint policy can cut a host off from its cluster.
var (
	DefaultFailsafeIn = []store.ProtoPort{
		{Protocol: "tcp", Port: 22}, {Protocol: "udp", Port: 68}, {Protocol: "tcp", Port: 179},
		{Protocol: "tcp", Port: 2379}, {Protocol: "tcp", Port: 2380}, {Protocol: "tcp", Port: 5473},
		{Protocol: "tcp", Port: 6443}, {Protocol: "tcp", Port: 6666}, {Protocol: "tcp", Port: 6667},
		{Protocol: "tcp", Port: 7946}, {Protocol: "udp", Port: 7946}, {Protocol: "tcp", Port: 7947},
		{Protocol: "udp", Port: 7948},
	}
	DefaultFailsafeOut = []store.ProtoPort{
		{Protocol: "udp", Port: 53}, {Protocol: "udp", Port: 67}, {Protocol: "tcp", Port: 179},
		{Protocol: "tcp", Port: 2379}, {Protocol: "tcp", Port: 2380}, {Protocol: "tcp", Port: 5473},
		{Protocol: "tcp", Port: 6443}, {Protocol: "tcp", Port: 6666}, {Protocol: "tcp", Port: 6667},
		{Protocol: "tcp", Port: 7946}, {Protocol: "udp", Port: 7946}, {Protocol: "tcp", Port: 7947},
		{Protocol: "udp", Port: 7948},
	}
)

// failsafe is FelixConfiguration's failsafe{Inbound,Outbound}HostPorts
// for this node: the node's own setting, else the default's, else ours.
// An empty list (not a missing one) turns failsafe ports off.
func (c *calculation) failsafe(outbound bool) []nft.ProtoPort {
	pps := DefaultFailsafeIn
	if outbound {
		pps = DefaultFailsafeOut
	}
	if set, ok := felix(c.in, func(s *store.FelixConfigurationSpec) *[]store.ProtoPort {
		if outbound {
			return s.FailsafeOutboundHostPorts
		}
		return s.FailsafeInboundHostPorts
	}); ok {
		pps = *set
	}
	var out []nft.ProtoPort
	for _, pp := range pps {
		proto, ok := failsafeProtocols[strings.ToLower(pp.Protocol)]
		if !ok {
			c.problems = append(c.problems, fmt.Sprintf("failsafe port %d: unknown protocol %q", pp.Port, pp.Protocol))
			continue
		}
		p := nft.ProtoPort{Protocol: proto, Port: pp.Port}
		if pp.Net != "" {
			n, ok := parseNet(pp.Net)
			if !ok {
				c.problems = append(c.problems, fmt.Sprintf("failsafe port %d: %q is not a CIDR; the port is left out", pp.Port, pp.Net))
				continue
			}
			p.Net = n
		}
		out = append(out, p)
	}
	return out
}

var failsafeProtocols = map[string]uint8{"tcp": 6, "udp": 17, "sctp": 132}

// felix reads one setting of FelixConfiguration: the node's own
// ("node.<name>") if it sets it, else the cluster's ("default").
func felix[T comparable](in Input, get func(*store.FelixConfigurationSpec) T) (T, bool) {
	var zero T
	for _, name := range []string{"node." + in.Node, "default"} {
		for _, f := range in.Felix {
			if f.Metadata.Name == name {
				if v := get(&f.Spec); v != zero {
					return v, true
				}
			}
		}
	}
	return zero, false
}

// natOutgoing is what NAT outgoing needs: the pools that masquerade, and
// every pool (traffic to a pool is never masqueraded).
func natOutgoing(pools []*store.IPPool) (from, except []netip.Prefix) {
	for _, p := range pools {
		n, ok := parseNet(p.Spec.CIDR)
		if !ok {
			continue
		}
		except = append(except, n)
		if p.Spec.NATOutgoing {
			from = append(from, n)
		}
	}
	if len(from) == 0 {
		return nil, nil
	}
	return from, except
}
