package calc

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"calico/bgp"
	"calico/store"
)

// fleet is the YAML of n nodes h1…hn (h1 at 172.31.0.1), with a
// BGPConfiguration default whose annotation sets the mesh's size when
// limit >= 0.
func fleet(n, limit int, extra string) string {
	var b strings.Builder
	for i := 1; i <= n; i++ {
		b.WriteString(node(fmt.Sprintf("h%d", i), hostAddr(i).String()+"/16", "", ""))
	}
	if limit >= 0 {
		fmt.Fprintf(&b, "---\napiVersion: projectcalico.org/v3\nkind: BGPConfiguration\nmetadata: {name: default, annotations: {%s: '%d'}}\nspec: {%s}\n",
			MeshMaxNodesAnnotation, limit, extra)
	}
	return b.String()
}

func hostAddr(i int) netip.Addr {
	return netip.AddrFrom4([4]byte{172, 31, byte(i / 250), byte(i%250 + 1)})
}

func voters(is ...int) []netip.Addr {
	var out []netip.Addr
	for _, i := range is {
		out = append(out, hostAddr(i))
	}
	return out
}

// sessions renders peers briefly: address, type and the flags.
func sessions(ps []bgp.Peer) string {
	var out []string
	for _, p := range ps {
		s := p.Addr.String() + " " + p.Type
		if p.ReflectorClient {
			s += " client-of-us " + p.ClusterID.String()
		}
		if p.Reflector {
			s += " reflector"
		}
		out = append(out, s)
	}
	return strings.Join(out, "\n")
}

func TestAutoReflectors(t *testing.T) {
	tor := "---\napiVersion: projectcalico.org/v3\nkind: BGPPeer\nmetadata: {name: to-h4}\nspec: {nodeSelector: rack == '5', peerSelector: rack == '4'}\n"
	for _, tc := range []struct {
		name, yaml string
		self       string
		voters     []netip.Addr
		want       string
	}{
		{"small: the mesh, and the voters reflect for the others", fleet(5, -1, ""), "h1", voters(1, 2, 3), `
172.31.0.3 mesh client-of-us 244.0.0.1 reflector
172.31.0.4 mesh client-of-us 244.0.0.1 reflector
172.31.0.5 mesh client-of-us 244.0.0.1
172.31.0.6 mesh client-of-us 244.0.0.1`},
		{"small, a node that is not a voter: the mesh, plain", fleet(5, -1, ""), "h5", voters(1, 2, 3), `
172.31.0.2 mesh reflector
172.31.0.3 mesh reflector
172.31.0.4 mesh reflector
172.31.0.5 mesh`},
		{"beyond the mesh's size: the others peer with the reflectors only", fleet(5, 4, ""), "h5", voters(1, 2, 3), `
172.31.0.2 reflector reflector
172.31.0.3 reflector reflector
172.31.0.4 reflector reflector`},
		{"beyond the mesh's size: a reflector peers with every node", fleet(5, 4, ""), "h2", voters(1, 2, 3), `
172.31.0.2 reflector client-of-us 244.0.0.1 reflector
172.31.0.4 reflector client-of-us 244.0.0.1 reflector
172.31.0.5 reflector client-of-us 244.0.0.1
172.31.0.6 reflector client-of-us 244.0.0.1`},
		{"0: reflectors at any size", fleet(3, 0, ""), "h3", voters(1), `
172.31.0.2 reflector reflector`},
		{"no voter among the nodes (external etcd): three picked by name", fleet(6, 4, ""), "h1", nil, `
172.31.0.5 reflector reflector
172.31.0.6 reflector reflector
172.31.0.7 reflector reflector`},
		{"no voter among the nodes, within the size: a plain mesh", fleet(3, -1, ""), "h1", nil, `
172.31.0.3 mesh
172.31.0.4 mesh`},
		{"mesh off: nothing automatic", fleet(5, 4, "nodeToNodeMeshEnabled: false"), "h5", voters(1, 2, 3), ``},
		{"a BGPPeer to a node replaces the automatic session", fleet(5, 4, "") + tor, "h5", voters(1, 2, 3), `
172.31.0.2 reflector reflector
172.31.0.3 reflector reflector
172.31.0.4 reflector reflector
172.31.0.5 node`},
		{"a reflector by hand: the mesh as before, nothing automatic", fleet(3, 0, "") +
			node("h4", "172.31.0.5/16", "", ", routeReflectorClusterID: 224.0.0.1"), "h3", voters(1), `
172.31.0.2 mesh
172.31.0.3 mesh
172.31.0.5 reflector`},
		{"nodes of another AS: the mesh as before", fleet(3, 0, "") + node("h4", "172.31.0.5/16", "", ", asNumber: 65004"), "h3", voters(1), `
172.31.0.2 mesh
172.31.0.3 mesh
172.31.0.5 mesh`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := decode(t, tc.self, tc.yaml)
			in.Voters = tc.voters
			got := ComputeBGP(in)
			if want := strings.TrimPrefix(tc.want, "\n"); sessions(got.Peers) != want {
				t.Errorf("peers:\n%s\nwant:\n%s", sessions(got.Peers), want)
			}
		})
	}
}

func TestAutoReflectorsReported(t *testing.T) {
	in := decode(t, "h4", fleet(5, 4, ""))
	in.Voters = voters(1, 2, 3)
	got := ComputeBGP(in)
	if got.Meshed || fmt.Sprint(got.Reflectors) != "[h1 h2 h3]" {
		t.Errorf("meshed %v, reflectors %v; want false, [h1 h2 h3]", got.Meshed, got.Reflectors)
	}
	in = decode(t, "h4", fleet(5, -1, ""))
	if got := ComputeBGP(in); !got.Meshed || got.Reflectors != nil {
		t.Errorf("meshed %v, reflectors %v; want true, none", got.Meshed, got.Reflectors)
	}
	in = decode(t, "h4", fleet(5, -1, ""))
	in.BGPConfigs = append(in.BGPConfigs, &store.BGPConfiguration{Metadata: store.ObjectMeta{Name: "default",
		Annotations: map[string]string{MeshMaxNodesAnnotation: "lots"}}})
	if got := ComputeBGP(in); len(got.Warnings) != 1 || !strings.Contains(got.Warnings[0], `is "lots", not a number`) {
		t.Errorf("warnings %q; want one about the annotation", got.Warnings)
	}
}

// TestAutoReflectorsScale: at 1,000 nodes beyond the mesh's size a node
// has a session per reflector and a reflector one per other node.
func TestAutoReflectorsScale(t *testing.T) {
	in := decode(t, "h500", fleet(1000, -1, ""))
	in.Voters = voters(1, 2, 3)
	if got := len(ComputeBGP(in).Peers); got != 3 {
		t.Errorf("a client has %d sessions; want 3", got)
	}
	in.Node = "h2"
	if got := len(ComputeBGP(in).Peers); got != 999 {
		t.Errorf("a reflector has %d sessions; want 999", got)
	}
}

// view is one node's sessions as ComputeBGP gives them, by peer address.
type view map[netip.Addr]bgp.Peer

// propagation says which nodes learn each node's routes, given every
// node's view, as GoBGP carries them: a route goes over a session (both
// ends configured); a reflector sends one it learned over iBGP to a peer
// if the route's sender or that peer is its client, unless it marks the
// peer Reflector, and only if its best path for the route is the
// originator's own (a copy reflected to it has the shared cluster id,
// which a reflector never reflects again); GoBGP's best path is the one
// from the peer with the lowest router id.
func propagation(views map[netip.Addr]view) map[[2]netip.Addr]bool {
	m := model(views)
	learns := map[[2]netip.Addr]bool{}
	for x := range views {
		direct := map[netip.Addr]bool{}
		for r := range views {
			direct[r] = m.best(r, x)
		}
		for y := range views {
			if y == x {
				continue
			}
			ok := m.session(x, y)
			for r := range views {
				ok = ok || (r != y && direct[r] && m.sends(r, x, y))
			}
			learns[[2]netip.Addr{x, y}] = ok
		}
	}
	return learns
}

// model is propagation's view of the sessions.
type model map[netip.Addr]view

func (m model) session(a, b netip.Addr) bool {
	_, ab := m[a][b]
	_, ba := m[b][a]
	return ab && ba
}

// sends reports whether r passes a route learned from x on to y.
func (m model) sends(r, x, y netip.Addr) bool {
	return m.session(r, x) && m.session(r, y) && (m[r][x].ReflectorClient || m[r][y].ReflectorClient) && !m[r][y].Reflector
}

// best says whether r's best path for x's route is x's own.
func (m model) best(r, x netip.Addr) bool {
	if r == x || !m.session(r, x) {
		return false
	}
	for s := range m {
		if s != r && s != x && s.Less(x) && m.session(s, x) && m.sends(s, x, r) {
			return false // r prefers s's copy
		}
	}
	return true
}

// fleetViews computes the views of the live nodes of a fleet of n, each
// with the mesh's size and the voters pick says for it.
func fleetViews(t *testing.T, n int, alive func(int) bool, pick func(i int) (limit int, vs []netip.Addr)) map[netip.Addr]view {
	t.Helper()
	views := map[netip.Addr]view{}
	decoded := map[int]Input{}
	for i := 1; i <= n; i++ {
		if !alive(i) {
			continue
		}
		limit, vs := pick(i)
		in, ok := decoded[limit]
		if !ok {
			in = decode(t, "", fleet(n, limit, ""))
			decoded[limit] = in
		}
		in.Node, in.Voters = fmt.Sprintf("h%d", i), vs
		// A dead node's Node stays; its sessions are gone.
		v := view{}
		for _, p := range ComputeBGP(in).Peers {
			if j := int(p.Addr.As4()[2])*250 + int(p.Addr.As4()[3]) - 1; alive(j) {
				v[p.Addr] = p
			}
		}
		views[hostAddr(i)] = v
	}
	return views
}

// checkAllLearn checks that every node learns every other's routes, but
// at the nodes excused.
func checkAllLearn(t *testing.T, what string, views map[netip.Addr]view, excused ...netip.Addr) {
	t.Helper()
	var missing []string
	for pair, ok := range propagation(views) {
		if !ok && !slices.Contains(excused, pair[1]) {
			missing = append(missing, fmt.Sprintf("%s's routes at %s", pair[0], pair[1]))
		}
	}
	slices.Sort(missing)
	if len(missing) > 0 {
		t.Errorf("%s: %d routes missing, such as %s", what, len(missing), strings.Join(missing[:min(3, len(missing))], ", "))
	}
}

// TestAutoReflectorsDropNothing: every node has every other node's routes
// before, after and while a change of topology reaches the nodes one by
// one (each node with the old view or the new, at random): the cluster
// growing past the mesh's size or shrinking below it, a reflector dying,
// and its seat going to another node. And the model does see a route
// missing where one would be: with the reflectors marking no Reflector
// (GoBGP then prefers copies between them) or with clients and
// reflectors that disagree about who reflects.
func TestAutoReflectorsDropNothing(t *testing.T) {
	const n = 12
	all := func(int) bool { return true }
	vs := voters(1, 2, 3)
	rng := rand.New(rand.NewPCG(1, 2))
	mixed := func(oldLimit, newLimit int, oldV, newV []netip.Addr) func(int) (int, []netip.Addr) {
		old := map[int]bool{}
		for i := 1; i <= n; i++ {
			old[i] = rng.IntN(2) == 0
		}
		return func(i int) (int, []netip.Addr) {
			if old[i] {
				return oldLimit, oldV
			}
			return newLimit, newV
		}
	}
	for _, tc := range []struct {
		name               string
		alive              func(int) bool
		oldLimit, newLimit int
		oldV, newV         []netip.Addr
		// excused: a node promoted to reflector misses the routes of
		// the clients that have no session to it yet, while the other
		// reflectors no longer send it theirs (see docs/scale.md).
		excused []netip.Addr
	}{
		{"growing past the mesh's size", all, n, n - 1, vs, vs, nil},
		{"shrinking below it", all, n - 1, n, vs, vs, nil},
		{"a reflector dead, beyond the size", func(i int) bool { return i != 2 }, n - 1, n - 1, vs, vs, nil},
		{"a reflector dead, within the size", func(i int) bool { return i != 2 }, n, n, vs, vs, nil},
		{"its seat given to another node", func(i int) bool { return i != 2 }, n - 1, n - 1, vs, voters(1, 3, 7), voters(7)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			checkAllLearn(t, "before", fleetViews(t, n, tc.alive, func(int) (int, []netip.Addr) { return tc.oldLimit, tc.oldV }))
			checkAllLearn(t, "after", fleetViews(t, n, tc.alive, func(int) (int, []netip.Addr) { return tc.newLimit, tc.newV }))
			for round := range 20 {
				checkAllLearn(t, fmt.Sprintf("mixed views, round %d", round), fleetViews(t, n, tc.alive, mixed(tc.oldLimit, tc.newLimit, tc.oldV, tc.newV)), tc.excused...)
			}
		})
	}
	t.Run("the model sees a missing route", func(t *testing.T) {
		views := fleetViews(t, n, all, func(int) (int, []netip.Addr) { return n - 1, vs })
		for _, v := range views {
			for a, p := range v {
				p.Reflector = false
				v[a] = p
			}
		}
		if m := propagation(views); m[[2]netip.Addr{hostAddr(12), hostAddr(11)}] {
			t.Error("without Reflector marks, the model has every reflector reflect anyway")
		}
	})
}
