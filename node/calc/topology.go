package calc

import (
	"cmp"
	"fmt"
	"hash/fnv"
	"maps"
	"net/netip"
	"slices"
	"strconv"
	"strings"
)

// Automatic route reflection: the node-to-node mesh without hand-made
// route reflectors.
//
// While the mesh is on (BGPConfiguration nodeToNodeMeshEnabled, the
// default), no node is a reflector by configuration
// (routeReflectorClusterID) and every node has the same AS number, the
// etcd voters are route reflectors for every other node: each marks all
// its sessions to other nodes as route-reflector-client sessions, with
// one cluster id (AutoClusterID). Up to MeshMaxNodes nodes, every node
// also peers with every other (the mesh); beyond it, the other nodes peer
// with the reflectors only. The voters reflect below the size too, so
// that a cluster growing past it or shrinking below it drops no route:
// every node already has every route through the reflectors before the
// sessions that are no longer wanted go, and the reflectors' own sessions
// do not change. A voter that dies leaves the others, which carry every
// route too; the cluster gives its seat to a live host after
// --voter-replace-after, and that host becomes a reflector.
//
// Beyond the size and without voters among the nodes (an external etcd),
// fallbackReflectors nodes picked by a hash of their names reflect.
//
// BGPPeers still apply on top (a session they name replaces the mesh's
// to the same address), and nodeToNodeMeshEnabled: false turns all of
// this off.
const (
	// DefaultMeshMaxNodes is the largest cluster the mesh spans unless
	// MeshMaxNodesAnnotation says otherwise (docs/scale.md: where it was
	// measured).
	DefaultMeshMaxNodes = 100
	// MeshMaxNodesAnnotation on BGPConfiguration default sets the largest
	// cluster the mesh spans (a number; 0: reflectors at any size).
	MeshMaxNodesAnnotation = "projectcalico.org/node-mesh-max-nodes"
	// fallbackReflectors is how many nodes reflect when no voter is one
	// of the nodes.
	fallbackReflectors = 3
)

// AutoClusterID is the route reflector cluster id of the automatic
// reflectors (Calico's documentation uses it for reflectors too).
var AutoClusterID = netip.AddrFrom4([4]byte{244, 0, 0, 1})

// topology is how the mesh's sessions are laid out.
type topology struct {
	// auto: automatic reflection applies (see above).
	auto bool
	// meshed: every node peers with every other.
	meshed bool
	// reflector are the automatic reflectors, by name.
	reflector map[string]bool
}

func (t topology) names() []string { return slices.Sorted(maps.Keys(t.reflector)) }

// topology works out the mesh's layout from the nodes, the voters and
// the size the mesh may span.
func (pl *bgpPlan) topology(in Input) topology {
	addressed := 0
	for _, n := range pl.nodes {
		if n.rrCluster.IsValid() || n.as != pl.self.as {
			return topology{meshed: true}
		}
		if n.ipv4.IsValid() || n.ipv6.IsValid() {
			addressed++
		}
	}
	t := topology{auto: true, meshed: addressed <= pl.meshMaxNodes(in), reflector: map[string]bool{}}
	for name, n := range pl.nodes {
		for _, v := range in.Voters {
			if v.IsValid() && (v.Unmap() == n.ipv4 || v.Unmap() == n.ipv6) {
				t.reflector[name] = true
			}
		}
	}
	if len(t.reflector) == 0 && !t.meshed {
		for _, name := range hashPick(pl.nodes, fallbackReflectors) {
			t.reflector[name] = true
		}
	}
	return t
}

// meshMaxNodes reads MeshMaxNodesAnnotation (a bad value is warned about
// and the default used).
func (pl *bgpPlan) meshMaxNodes(in Input) int {
	global := bgpConfig(in.BGPConfigs, "default")
	if global == nil {
		return DefaultMeshMaxNodes
	}
	v, ok := global.Metadata.Annotations[MeshMaxNodesAnnotation]
	if !ok {
		return DefaultMeshMaxNodes
	}
	n, err := strconv.Atoi(strings.TrimSpace(v))
	if err != nil || n < 0 {
		pl.warnings = append(pl.warnings, fmt.Sprintf("annotation %s of BGPConfiguration default is %q, not a number of nodes: the mesh spans up to %d",
			MeshMaxNodesAnnotation, v, DefaultMeshMaxNodes))
		return DefaultMeshMaxNodes
	}
	return n
}

// hashPick picks k of the nodes that have an address (PickByHash).
func hashPick(nodes map[string]bgpNode, k int) []string {
	var names []string
	for name, n := range nodes {
		if n.ipv4.IsValid() || n.ipv6.IsValid() {
			names = append(names, name)
		}
	}
	return PickByHash(names, k)
}

// PickByHash picks k of names by a hash of each: a name added or taken
// away changes the pick only when it is picked itself, and every host
// that knows the same names picks the same ones.
func PickByHash(names []string, k int) []string {
	type scored struct {
		name string
		hash uint64
	}
	all := make([]scored, 0, len(names))
	for _, name := range names {
		h := fnv.New64a()
		h.Write([]byte(name))
		all = append(all, scored{name, h.Sum64()})
	}
	slices.SortFunc(all, func(a, b scored) int { return cmp.Or(cmp.Compare(a.hash, b.hash), strings.Compare(a.name, b.name)) })
	var out []string
	for _, s := range all[:min(k, len(all))] {
		out = append(out, s.name)
	}
	return out
}

// mesh adds the sessions of the mesh as the topology lays them out.
func (pl *bgpPlan) mesh(t topology, pw secret) {
	typ := "mesh"
	if !t.meshed {
		typ = "reflector"
	}
	reflect := netip.Addr{}
	if t.reflector[pl.self.name] {
		reflect = AutoClusterID
	}
	for _, n := range pl.others() {
		if !t.meshed && !reflect.IsValid() && !t.reflector[n.name] {
			continue
		}
		pl.toNode(n, typ, pw, reflect)
		if !t.reflector[n.name] {
			continue
		}
		for _, a := range []netip.Addr{n.ipv4, n.ipv6} {
			if p, ok := pl.peers[a]; ok && a.IsValid() {
				p.Reflector = true
				pl.peers[a] = p
			}
		}
	}
}
