package calc

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"

	"calico/bgp"
)

func node(name, v4, v6, extra string) string {
	return fmt.Sprintf("---\napiVersion: projectcalico.org/v3\nkind: Node\nmetadata: {name: %s, labels: {rack: '%s'}}\nspec: {bgp: {ipv4Address: %s, ipv6Address: '%s'%s}}\n", name, name[len(name)-1:], v4, v6, extra)
}

// peers renders peers one per line for comparison.
func peers(ps []bgp.Peer) string {
	var b strings.Builder
	for _, p := range ps {
		fmt.Fprintf(&b, "%s as%d port%d %s %s from %s", p.Addr, p.AS, p.Port, p.Type, p.Name, p.LocalAddr)
		if p.ReflectorClient {
			fmt.Fprintf(&b, " rr-client cluster %s", p.ClusterID)
		}
		b.WriteString("\n")
	}
	return b.String()
}

func TestComputeBGP(t *testing.T) {
	three := node("h1", "172.31.1.11/24", "fd00:31:1::11/64", "") + node("h2", "172.31.1.12/24", "fd00:31:1::12/64", "") +
		node("h3", "172.31.2.13/24", "", ", asNumber: 65003")
	for _, tc := range []struct {
		name, yaml, want string
	}{
		{"no node yet", "", ""},
		{"mesh: every other node, per family both have", three, `
172.31.1.12 as64512 port179 mesh h2 from 172.31.1.11
172.31.2.13 as65003 port179 mesh h3 from 172.31.1.11
fd00:31:1::12 as64512 port179 mesh h2 from fd00:31:1::11
`},
		{"mesh off, a global peer and a per-node peer elsewhere", three + `---
apiVersion: projectcalico.org/v3
kind: BGPConfiguration
metadata: {name: default}
spec: {nodeToNodeMeshEnabled: false, asNumber: 64600, listenPort: 1790}
---
apiVersion: projectcalico.org/v3
kind: BGPPeer
metadata: {name: tor}
spec: {peerIP: '172.31.1.1', asNumber: 65001}
---
apiVersion: projectcalico.org/v3
kind: BGPPeer
metadata: {name: other}
spec: {node: h2, peerIP: '172.31.1.2:1179', asNumber: 65002}
`, `
172.31.1.1 as65001 port179 global  from 172.31.1.11
`},
		{"node selector and peer selector", three + `---
apiVersion: projectcalico.org/v3
kind: BGPConfiguration
metadata: {name: default}
spec: {nodeToNodeMeshEnabled: false}
---
apiVersion: projectcalico.org/v3
kind: BGPPeer
metadata: {name: rack1-to-3}
spec: {nodeSelector: rack == '1', peerSelector: rack == '3'}
`, `
172.31.2.13 as65003 port179 node h3 from 172.31.1.11
`},
		{"route reflector: clients are the nodes that are not reflectors", node("h1", "172.31.1.11/24", "", ", routeReflectorClusterID: 224.0.0.1") +
			node("h2", "172.31.1.12/24", "", "") + node("h4", "172.31.1.14/24", "", ", routeReflectorClusterID: 224.0.0.1") + `---
apiVersion: projectcalico.org/v3
kind: BGPConfiguration
metadata: {name: default}
spec: {nodeToNodeMeshEnabled: false}
---
apiVersion: projectcalico.org/v3
kind: BGPPeer
metadata: {name: all-to-reflectors}
spec: {peerSelector: has(rack)}
`, `
172.31.1.12 as64512 port179 reflector h2 from 172.31.1.11 rr-client cluster 224.0.0.1
172.31.1.14 as64512 port179 reflector h4 from 172.31.1.11
`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := decode(t, "h1", tc.yaml)
			got := ComputeBGP(in)
			if want := strings.TrimPrefix(tc.want, "\n"); peers(got.Peers) != want {
				t.Errorf("peers:\n%s\nwant:\n%s", peers(got.Peers), want)
			}
			if got.Enabled != (tc.yaml != "") {
				t.Errorf("enabled = %v", got.Enabled)
			}
		})
	}
}

func TestComputeBGPAdvertises(t *testing.T) {
	in := decode(t, "h1", node("h1", "172.31.1.11/24", "", "")+`---
apiVersion: projectcalico.org/v3
kind: IPPool
metadata: {name: p}
spec: {cidr: 10.65.0.0/16}
`+wep("h1", "default", "own", "cali1", "", "a", "10.65.0.1/32")+wep("h1", "default", "borrowed", "cali2", "", "a", "10.65.9.7/32")+
		wep("h2", "default", "elsewhere", "cali3", "", "a", "10.65.3.3/32"))
	in.HostBlocks = []netip.Prefix{netip.MustParsePrefix("10.65.0.0/26")}
	got := ComputeBGP(in)
	if fmt.Sprint(got.Advertise) != "[10.65.0.0/26 10.65.9.7/32]" {
		t.Errorf("advertised %v; want the block and the borrowed address", got.Advertise)
	}
	if fmt.Sprint(got.Accept) != "[10.65.0.0/16]" {
		t.Errorf("accepted %v; want the pool", got.Accept)
	}
}

func TestLearnedRoutes(t *testing.T) {
	a, b := netip.MustParseAddr("172.31.1.12"), netip.MustParseAddr("172.31.1.13")
	learned := []bgp.Route{
		{Dst: netip.MustParsePrefix("10.65.1.0/26"), NextHops: []netip.Addr{a, b}},
		{Dst: netip.MustParsePrefix("10.65.2.0/26"), NextHops: []netip.Addr{b}},
		{Dst: netip.MustParsePrefix("0.0.0.0/0"), NextHops: []netip.Addr{a}},    // not in a pool
		{Dst: netip.MustParsePrefix("10.0.0.0/8"), NextHops: []netip.Addr{a}},   // wider than the pool
		{Dst: netip.MustParsePrefix("10.65.3.3/32"), NextHops: []netip.Addr{a}}, // a borrowed address
	}
	down := func(x netip.Addr) bool { return x == b }
	got := LearnedRoutes(learned, []netip.Prefix{netip.MustParsePrefix("10.65.0.0/16")}, down)
	if s := fmt.Sprint(got); s != "[10.65.1.0/26 via 172.31.1.12 10.65.3.3/32 via 172.31.1.12]" {
		t.Errorf("routes = %s", s)
	}
}
