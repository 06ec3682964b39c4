package calc

import (
	"fmt"
	"maps"
	"net/netip"
	"regexp"
	"slices"
	"strings"
	"sync"

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
	// in other hosts' blocks, less those of pools with disableBGPExport.
	Advertise []netip.Prefix
	// Accept are the prefixes routes may be learned for: the pools.
	Accept []netip.Prefix
	// Warnings are data that work but should change (a password stored
	// in the datastore), one line each, without the secret.
	Warnings []string
	// LogSeverity is the speaker's log level from BGPConfiguration
	// logSeverityScreen (node.<name> over default; as LogSeverity), ""
	// when none sets one: the speaker logs as the node does.
	LogSeverity string
	// Meshed says that every node peers with every other (the mesh is on
	// and the cluster is within its size, or reflectors are configured by
	// hand); Reflectors are the automatic route reflectors, by name (see
	// topology).
	Meshed     bool
	Reflectors []string
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
//
// A password is handed on as the file of its secretKeyRef
// (store.SecretPath), which the speaker reads, never as the secret
// itself; a password an older version stored as its value is handed on
// with a warning.
func ComputeBGP(in Input) BGP { return computeBGP(in, localWorkloads(in), nil) }

// ComputeBGP is the package's ComputeBGP for in, which must be the input
// of the last Compute, from what that calculation and the last call
// hold: the index's local workloads rather than a look at every workload
// of the fleet, and the Nodes read before (the same object at the same
// revision) rather than read again. At a thousand hosts the look and the
// reading took most of a pass's BGP step (docs/scale.md).
func (k *Calculator) ComputeBGP(in Input) BGP {
	c := k.last
	if c == nil || c.idx == nil || c.in.Node != in.Node || !sameList(c.in.Workloads, in.Workloads) {
		return ComputeBGP(in)
	}
	var locals []*store.WorkloadEndpoint
	for w := range c.idx.local {
		if localWorkload(w, in.Node) {
			locals = append(locals, w)
		}
	}
	return computeBGP(in, locals, &k.nodes)
}

// sameList says whether a and b are the same slice (not only equal).
func sameList[T any](a, b []T) bool {
	return len(a) == len(b) && (len(a) == 0 || &a[0] == &b[0])
}

func computeBGP(in Input, locals []*store.WorkloadEndpoint, memo *nodeMemo) BGP {
	out, mesh, meshPw := bgpGlobals(in)
	out.LogSeverity = bgpLogSeverity(in)
	nodes, sorted := memo.read(in.Nodes, out.AS)
	self, ok := nodes[in.Node]
	if !ok || !self.ipv4.IsValid() {
		return out
	}
	out.Enabled = true
	out.AS, out.RouterID, out.IPv4, out.IPv6 = self.as, self.ipv4, self.ipv4, self.ipv6
	pl := bgpPlan{self: self, port: out.ListenPort, nodes: nodes, sorted: sorted, peers: map[netip.Addr]bgp.Peer{}}
	if mesh {
		pw := pl.password("BGPConfiguration default", "spec.nodeMeshPassword", meshPw)
		topo := pl.topology(in)
		out.Meshed, out.Reflectors = topo.meshed, topo.names()
		pl.mesh(topo, pw)
	}
	for _, bp := range slices.SortedFunc(slices.Values(in.BGPPeers), func(a, b *store.BGPPeer) int {
		return strings.Compare(a.Metadata.Name, b.Metadata.Name)
	}) {
		pl.peer(bp, in.Node)
	}
	for _, a := range slices.SortedFunc(maps.Keys(pl.peers), netip.Addr.Compare) {
		out.Peers = append(out.Peers, pl.peers[a])
	}
	out.Warnings = pl.warnings
	out.Advertise = advertised(in, locals)
	for _, p := range in.Pools {
		if c, err := store.ParseCIDR(p.Spec.CIDR); err == nil {
			out.Accept = append(out.Accept, c)
		}
	}
	return out
}

// bgpGlobals reads the cluster's BGPConfiguration (default) and this
// node's own (node.<name>): AS number, port, whether the mesh is on and
// its password.
func bgpGlobals(in Input) (out BGP, mesh bool, meshPw *store.BGPPassword) {
	out.AS, out.ListenPort, mesh = DefaultAS, DefaultListenPort, true
	if global := bgpConfig(in.BGPConfigs, "default"); global != nil {
		meshPw = global.Spec.NodeMeshPassword
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
	return out, mesh, meshPw
}

// bgpPlan collects this node's sessions, one per peer address.
type bgpPlan struct {
	self  bgpNode
	port  int
	nodes map[string]bgpNode
	// sorted are the nodes by name (nodes' values).
	sorted []bgpNode
	peers  map[netip.Addr]bgp.Peer
	// warnings are about passwords stored as values.
	warnings []string
}

// secret is a session's password as the speaker takes it: a file to
// read, the value itself, or why the session must not be configured.
type secret struct {
	file string
	// optional: the secretKeyRef says optional: true, so a file that does
	// not exist means no password (as Kubernetes reads it).
	optional bool
	value    bgp.Password
	refused  string
}

func (s secret) on(p bgp.Peer) bgp.Peer {
	p.PasswordFile, p.PasswordOptional, p.Password, p.Refused = s.file, s.optional, s.value, s.refused
	return p
}

var secretPartRE = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[-._a-zA-Z0-9]+$`) })

// password reads the password field of a resource (owner) as the
// speaker takes it. Validation refuses a bad one on apply; one read from
// the datastore that is no better (an empty or long value, a reference
// that is no file name) refuses the sessions, rather than configure them
// without a password.
func (pl *bgpPlan) password(owner, field string, p *store.BGPPassword) secret {
	switch {
	case p == nil:
		return secret{}
	case p.SecretKeyRef != nil:
		r := p.SecretKeyRef
		for _, part := range []string{r.Name, r.Key} {
			if !secretPartRE().MatchString(part) || part == "." || part == ".." {
				return secret{refused: fmt.Sprintf("%s of %s names no secret file", field, owner)}
			}
		}
		return secret{file: store.SecretPath(r.Name, r.Key), optional: r.Optional != nil && *r.Optional}
	case p.Value == "" || len(p.Value) > bgp.MaxPasswordLen:
		return secret{refused: fmt.Sprintf("%s of %s is empty or longer than %d bytes", field, owner, bgp.MaxPasswordLen)}
	}
	pl.warnings = append(pl.warnings, fmt.Sprintf("%s of %s is a password stored in the datastore: write it to %s on every node "+
		"(calico bgp secret set NAME/KEY) and give %s.secretKeyRef {name: NAME, key: KEY} instead", field, owner, store.SecretPath("NAME", "KEY"), field))
	return secret{value: bgp.Password(p.Value)}
}

// others are the other nodes, by name.
func (pl *bgpPlan) others() []bgpNode {
	out := make([]bgpNode, 0, len(pl.sorted))
	for _, n := range pl.sorted {
		if n.name != pl.self.name {
			out = append(out, n)
		}
	}
	return out
}

// toNode adds sessions to another of our nodes, one per family both have.
// With reflect valid, this node reflects routes for n, as an automatic
// reflector with that cluster id.
func (pl *bgpPlan) toNode(n bgpNode, typ string, pw secret, reflect netip.Addr) {
	self := pl.self
	for _, pair := range [][2]netip.Addr{{self.ipv4, n.ipv4}, {self.ipv6, n.ipv6}} {
		local, remote := pair[0], pair[1]
		if !local.IsValid() || !remote.IsValid() {
			continue
		}
		p := pw.on(bgp.Peer{Addr: remote, AS: n.as, Port: pl.port, Type: typ, Name: n.name, LocalAddr: local})
		switch {
		case self.rrCluster.IsValid() && !n.rrCluster.IsValid():
			// We reflect for nodes that are not reflectors themselves.
			p.ReflectorClient, p.ClusterID, p.Type = true, self.rrCluster, "reflector"
		case n.rrCluster.IsValid():
			p.Type = "reflector"
		case reflect.IsValid():
			p.ReflectorClient, p.ClusterID = true, reflect
		}
		pl.peers[remote] = p
	}
}

// peer adds the sessions of a BGPPeer that applies to this node.
func (pl *bgpPlan) peer(bp *store.BGPPeer, node string) {
	s := bp.Spec
	typ := "global"
	switch {
	case s.Node != "":
		if s.Node != node {
			return
		}
		typ = "node"
	case s.NodeSelector != "":
		if !matches(s.NodeSelector, pl.self.labels) {
			return
		}
		typ = "node"
	}
	pw := pl.password("BGPPeer "+bp.Metadata.Name, "spec.password", s.Password)
	if s.PeerIP == "" {
		for _, n := range pl.others() {
			if matches(s.PeerSelector, n.labels) {
				pl.toNode(n, typ, pw, netip.Addr{})
			}
		}
		return
	}
	ap, err := store.ParsePeerIP(s.PeerIP)
	if err != nil || s.ASNumber == nil {
		return
	}
	local := pl.self.ipv4
	if ap.Addr().Is6() {
		local = pl.self.ipv6
	}
	if !local.IsValid() || ap.Addr() == pl.self.ipv4 || ap.Addr() == pl.self.ipv6 {
		return
	}
	pl.peers[ap.Addr()] = pw.on(bgp.Peer{Addr: ap.Addr(), AS: uint32(*s.ASNumber), Port: int(ap.Port()), Type: typ, LocalAddr: local})
}

// advertised are this host's blocks and the single addresses its
// workloads hold in other hosts' blocks, except those in a pool with
// disableBGPExport, which no peer is sent (as Calico's BIRD export filter
// rejects them, mesh included).
func advertised(in Input, locals []*store.WorkloadEndpoint) []netip.Prefix {
	var noExport []netip.Prefix
	for _, p := range in.Pools {
		if c, err := store.ParseCIDR(p.Spec.CIDR); err == nil && p.Spec.DisableBGPExport {
			noExport = append(noExport, c)
		}
	}
	exported := func(q netip.Prefix) bool {
		return !slices.ContainsFunc(noExport, func(n netip.Prefix) bool { return n.Bits() <= q.Bits() && n.Contains(q.Addr()) })
	}
	out := slices.DeleteFunc(slices.Clone(in.HostBlocks), func(b netip.Prefix) bool { return !exported(b) })
	var singles []netip.Prefix
	for _, w := range locals {
		for _, a := range workloadAddrs(w) {
			single := netip.PrefixFrom(a, a.BitLen())
			if !slices.ContainsFunc(in.HostBlocks, func(b netip.Prefix) bool { return b.Contains(a) }) && exported(single) {
				singles = append(singles, single)
			}
		}
	}
	slices.SortFunc(singles, func(a, b netip.Prefix) int { return a.Addr().Compare(b.Addr()) })
	return append(out, slices.Compact(singles)...)
}

// nodeMemo is the Nodes a Calculator's last ComputeBGP read: the cache
// hands on the same object while a Node does not change.
type nodeMemo struct {
	as     uint32        // the default AS they were read with
	list   []*store.Node // the last call's, in its order
	revs   []string      // their ResourceVersions then
	byName map[string]bgpNode
	sorted []bgpNode
}

// read reads every node: by name, and all of them sorted by name. With
// a memo, the last call's answer is given again for the same Nodes (the
// same objects at the same revisions, with the same default AS).
func (m *nodeMemo) read(ns []*store.Node, as uint32) (map[string]bgpNode, []bgpNode) {
	if m != nil && m.byName != nil && m.as == as && slices.Equal(m.list, ns) && slices.EqualFunc(m.revs, ns, sameRev) {
		return m.byName, m.sorted
	}
	byName := make(map[string]bgpNode, len(ns))
	for _, n := range ns {
		byName[n.Metadata.Name] = readNode(n, as)
	}
	sorted := slices.SortedFunc(maps.Values(byName), func(a, b bgpNode) int { return strings.Compare(a.name, b.name) })
	if m != nil {
		revs := make([]string, len(ns))
		for i, n := range ns {
			revs[i] = n.Metadata.ResourceVersion
		}
		m.as, m.list, m.revs, m.byName, m.sorted = as, slices.Clone(ns), revs, byName, sorted
	}
	return byName, sorted
}

// sameRev says whether n is still at revision rev; a Node without one
// (made by hand, in a test) never is.
func sameRev(rev string, n *store.Node) bool { return rev != "" && rev == n.Metadata.ResourceVersion }

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
	out := make([]route.Route, 0, len(learned))
	for _, r := range learned {
		inPool := slices.ContainsFunc(accept, func(p netip.Prefix) bool {
			return p.Bits() <= r.Dst.Bits() && p.Contains(r.Dst.Addr())
		})
		if !inPool {
			continue
		}
		via := r.NextHops // shared: routes' next hops are never changed in place
		if down != nil && slices.ContainsFunc(via, down) {
			via = slices.DeleteFunc(slices.Clone(via), down)
		}
		if len(via) > 0 {
			out = append(out, route.Route{Dst: r.Dst, Via: via})
		}
	}
	return out
}
