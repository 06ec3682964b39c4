package calc

import (
	"maps"
	"net/netip"
	"slices"
	"strings"

	"calico/bgp"
	"calico/node/route"
	"calico/store"
	"calico/store/selector"
)

// Calico's BGP defaults.
const (
	DefaultAS         = 64512
	DefaultListenPort = 179
)

// BGP is what this host's speaker should do.
type BGP struct {
	// Enabled is false until this host's Node is known.
	Enabled    bool
	AS         uint32
	ListenPort int
	RouterID   netip.Addr
	IPv4, IPv6 netip.Addr
	Peers      []bgp.Peer
	// Advertise are this host's blocks and the single addresses it holds
	// in other hosts' blocks.
	Advertise []netip.Prefix
	// Accept are the prefixes routes may be learned for: the pools.
	Accept []netip.Prefix
}

// bgpNode is a Node with its BGP settings read.
type bgpNode struct {
	name       string
	labels     map[string]string
	as         uint32
	ipv4, ipv6 netip.Addr
	rrCluster  netip.Addr
}

// ComputeBGP is the speaker's configuration for in, as Calico's confd
// renders BIRD's: the node-to-node mesh unless it is turned off, then the
// BGPPeers that apply to this node (global, by node name or by
// nodeSelector; to an address or to the nodes a peerSelector picks).
func ComputeBGP(in Input) BGP {
	var out BGP
	global := bgpConfig(in.BGPConfigs, "default")
	out.AS, out.ListenPort = DefaultAS, DefaultListenPort
	mesh := true
	if global != nil {
		if global.Spec.ASNumber != nil {
			out.AS = uint32(*global.Spec.ASNumber)
		}
		if global.Spec.ListenPort != nil {
			out.ListenPort = int(*global.Spec.ListenPort)
		}
		if global.Spec.NodeToNodeMeshEnabled != nil {
			mesh = *global.Spec.NodeToNodeMeshEnabled
		}
	}
	if own := bgpConfig(in.BGPConfigs, "node."+in.Node); own != nil && own.Spec.ListenPort != nil {
		out.ListenPort = int(*own.Spec.ListenPort)
	}
	nodes := map[string]bgpNode{}
	for _, n := range in.Nodes {
		nodes[n.Metadata.Name] = readNode(n, out.AS)
	}
	self, ok := nodes[in.Node]
	if !ok || !self.ipv4.IsValid() {
		return out
	}
	out.Enabled = true
	out.AS, out.RouterID, out.IPv4, out.IPv6 = self.as, self.ipv4, self.ipv4, self.ipv6

	peers := map[netip.Addr]bgp.Peer{}
	// toNode adds sessions to another of our nodes, one per family both
	// have.
	toNode := func(n bgpNode, typ, pw string) {
		for _, pair := range [][2]netip.Addr{{self.ipv4, n.ipv4}, {self.ipv6, n.ipv6}} {
			local, remote := pair[0], pair[1]
			if !local.IsValid() || !remote.IsValid() {
				continue
			}
			p := bgp.Peer{Addr: remote, AS: n.as, Port: out.ListenPort, Type: typ, Name: n.name, LocalAddr: local, Password: pw}
			switch {
			case self.rrCluster.IsValid() && !n.rrCluster.IsValid():
				// We reflect for nodes that are not reflectors themselves.
				p.ReflectorClient, p.ClusterID, p.Type = true, self.rrCluster, "reflector"
			case n.rrCluster.IsValid():
				p.Type = "reflector"
			}
			peers[remote] = p
		}
	}
	if mesh {
		for _, name := range slices.Sorted(maps.Keys(nodes)) {
			if n := nodes[name]; name != in.Node {
				toNode(n, "mesh", "")
			}
		}
	}
	bgpPeers := slices.SortedFunc(slices.Values(in.BGPPeers), func(a, b *store.BGPPeer) int {
		return strings.Compare(a.Metadata.Name, b.Metadata.Name)
	})
	for _, bp := range bgpPeers {
		s := bp.Spec
		typ := "global"
		switch {
		case s.Node != "":
			if s.Node != in.Node {
				continue
			}
			typ = "node"
		case s.NodeSelector != "":
			if !matches(s.NodeSelector, self.labels) {
				continue
			}
			typ = "node"
		}
		if s.PeerIP != "" {
			ap, err := store.ParsePeerIP(s.PeerIP)
			if err != nil || s.ASNumber == nil {
				continue
			}
			local := self.ipv4
			if ap.Addr().Is6() {
				local = self.ipv6
			}
			if !local.IsValid() || ap.Addr() == self.ipv4 || ap.Addr() == self.ipv6 {
				continue
			}
			peers[ap.Addr()] = bgp.Peer{Addr: ap.Addr(), AS: uint32(*s.ASNumber), Port: int(ap.Port()), Type: typ, LocalAddr: local, Password: password(s.Password)}
			continue
		}
		for _, name := range slices.Sorted(maps.Keys(nodes)) {
			if n := nodes[name]; name != in.Node && matches(s.PeerSelector, n.labels) {
				toNode(n, typ, password(s.Password))
			}
		}
	}
	for _, a := range slices.SortedFunc(maps.Keys(peers), netip.Addr.Compare) {
		out.Peers = append(out.Peers, peers[a])
	}

	out.Advertise = slices.Clone(in.HostBlocks)
	for _, w := range localWorkloads(in) {
		for _, a := range workloadAddrs(w) {
			if !slices.ContainsFunc(in.HostBlocks, func(b netip.Prefix) bool { return b.Contains(a) }) {
				out.Advertise = append(out.Advertise, netip.PrefixFrom(a, a.BitLen()))
			}
		}
	}
	for _, p := range in.Pools {
		if c, err := store.ParseCIDR(p.Spec.CIDR); err == nil {
			out.Accept = append(out.Accept, c)
		}
	}
	return out
}

func password(p *store.BGPPassword) string {
	if p == nil {
		return ""
	}
	return p.Value
}

func bgpConfig(cs []*store.BGPConfiguration, name string) *store.BGPConfiguration {
	for _, c := range cs {
		if c.Metadata.Name == name {
			return c
		}
	}
	return nil
}

func readNode(n *store.Node, defaultAS uint32) bgpNode {
	out := bgpNode{name: n.Metadata.Name, labels: n.Metadata.Labels, as: defaultAS}
	b := n.Spec.BGP
	if b == nil {
		return out
	}
	if b.ASNumber != nil {
		out.as = uint32(*b.ASNumber)
	}
	if p, err := netip.ParsePrefix(b.IPv4Address); err == nil {
		out.ipv4 = p.Addr()
	}
	if p, err := netip.ParsePrefix(b.IPv6Address); err == nil {
		out.ipv6 = p.Addr()
	}
	if a, err := netip.ParseAddr(b.RouteReflectorClusterID); err == nil {
		out.rrCluster = a
	}
	return out
}

// matches evaluates a selector that validation has accepted; one that
// does not parse selects nothing.
func matches(sel string, labels map[string]string) bool {
	s, err := selector.Parse(sel)
	return err == nil && s.Evaluate(labels)
}

// LearnedRoutes turns the speaker's best paths into kernel routes: only
// destinations inside a pool, and only next hops that are not down (a host
// gossip has declared dead is dropped at once, without waiting for BGP's
// hold timer).
func LearnedRoutes(learned []bgp.Route, accept []netip.Prefix, down func(netip.Addr) bool) []route.Route {
	var out []route.Route
	for _, r := range learned {
		inPool := slices.ContainsFunc(accept, func(p netip.Prefix) bool {
			return p.Bits() <= r.Dst.Bits() && p.Contains(r.Dst.Addr())
		})
		if !inPool {
			continue
		}
		var via []netip.Addr
		for _, nh := range r.NextHops {
			if down == nil || !down(nh) {
				via = append(via, nh)
			}
		}
		if len(via) > 0 {
			out = append(out, route.Route{Dst: r.Dst, Via: via})
		}
	}
	return out
}
