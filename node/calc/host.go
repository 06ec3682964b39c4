package calc

import (
	"cmp"
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"calico/nft"
	"calico/store"
)

// hostEndpoints are this host's HostEndpoints with the policy in front of
// each, sorted by interface. Two for the same interface are a problem:
// the first by name wins.
func (c *calculation) hostEndpoints() []nft.HostEndpoint {
	var mine []*store.HostEndpoint
	for _, h := range c.in.HostEndpoints {
		if h.Spec.Node == c.in.Node && h.Spec.InterfaceName != "" {
			mine = append(mine, h)
		}
	}
	slices.SortFunc(mine, func(a, b *store.HostEndpoint) int { return cmp.Compare(a.Metadata.Name, b.Metadata.Name) })
	var out []nft.HostEndpoint
	seen := map[string]string{}
	for _, h := range mine {
		iface := h.Spec.InterfaceName
		if iface != nft.AllInterfaces && (iface == "lo" || strings.HasPrefix(iface, nft.IfacePrefix) || len(iface) > 15) {
			c.problems = append(c.problems, fmt.Sprintf("HostEndpoint %s: interface %q cannot be a host endpoint; it is ignored", h.Metadata.Name, iface))
			continue
		}
		if first, dup := seen[iface]; dup {
			c.problems = append(c.problems, fmt.Sprintf("HostEndpoints %s and %s both claim interface %q; %s is ignored", first, h.Metadata.Name, iface, h.Metadata.Name))
			continue
		}
		seen[iface] = h.Metadata.Name
		labels := c.hostLabels(h)
		e := nft.HostEndpoint{
			Iface:   iface,
			Ingress: c.pathOf(labels, "", h.Spec.Profiles, "Ingress"),
			Egress:  c.pathOf(labels, "", h.Spec.Profiles, "Egress"),
		}
		c.use(e.Ingress)
		c.use(e.Egress)
		out = append(out, e)
	}
	slices.SortFunc(out, func(a, b nft.HostEndpoint) int { return cmp.Compare(a.Iface, b.Iface) })
	return out
}

// Failsafe ports: Calico's defaults, plus gossip (7946 tcp and udp) and
// the join API (7947), so that no host endpoint policy can cut a host off
// from its cluster.
var (
	DefaultFailsafeIn = []store.ProtoPort{
		{Protocol: "tcp", Port: 22}, {Protocol: "udp", Port: 68}, {Protocol: "tcp", Port: 179},
		{Protocol: "tcp", Port: 2379}, {Protocol: "tcp", Port: 2380}, {Protocol: "tcp", Port: 5473},
		{Protocol: "tcp", Port: 6443}, {Protocol: "tcp", Port: 6666}, {Protocol: "tcp", Port: 6667},
		{Protocol: "tcp", Port: 7946}, {Protocol: "udp", Port: 7946}, {Protocol: "tcp", Port: 7947},
	}
	DefaultFailsafeOut = []store.ProtoPort{
		{Protocol: "udp", Port: 53}, {Protocol: "udp", Port: 67}, {Protocol: "tcp", Port: 179},
		{Protocol: "tcp", Port: 2379}, {Protocol: "tcp", Port: 2380}, {Protocol: "tcp", Port: 5473},
		{Protocol: "tcp", Port: 6443}, {Protocol: "tcp", Port: 6666}, {Protocol: "tcp", Port: 6667},
		{Protocol: "tcp", Port: 7946}, {Protocol: "udp", Port: 7946}, {Protocol: "tcp", Port: 7947},
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
