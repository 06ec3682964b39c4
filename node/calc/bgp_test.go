package calc

import (
	"fmt"
	"net/netip"
	"reflect"
	"slices"
	"strings"
	"testing"

	"calico/bgp"
	"calico/store"
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

// TestComputeBGPDisableExport: nothing of a pool with disableBGPExport is
// advertised, neither its blocks nor addresses borrowed from it; it is
// still a pool routes may be learned for.
func TestComputeBGPDisableExport(t *testing.T) {
	in := decode(t, "h1", node("h1", "172.31.1.11/24", "", "")+`---
apiVersion: projectcalico.org/v3
kind: IPPool
metadata: {name: p}
spec: {cidr: 10.65.0.0/16}
---
apiVersion: projectcalico.org/v3
kind: IPPool
metadata: {name: private}
spec: {cidr: 10.66.0.0/16, disableBGPExport: true}
---
apiVersion: projectcalico.org/v3
kind: IPPool
metadata: {name: private6}
spec: {cidr: 'fd00:66::/48', disableBGPExport: true}
`+wep("h1", "default", "own", "cali1", "", "a", "10.65.0.1/32", "fd00:66::1/128")+
		wep("h1", "default", "borrowed", "cali2", "", "a", "10.65.9.7/32")+
		wep("h1", "default", "hidden", "cali3", "", "a", "10.66.0.1/32")+
		wep("h1", "default", "hidden-borrowed", "cali4", "", "a", "10.66.9.9/32"))
	in.HostBlocks = []netip.Prefix{netip.MustParsePrefix("10.65.0.0/26"), netip.MustParsePrefix("10.66.0.0/26"), netip.MustParsePrefix("fd00:66::/122")}
	got := ComputeBGP(in)
	if fmt.Sprint(got.Advertise) != "[10.65.0.0/26 10.65.9.7/32]" {
		t.Errorf("advertised %v; want only the exported pool's block and borrowed address", got.Advertise)
	}
	if fmt.Sprint(got.Accept) != "[10.65.0.0/16 10.66.0.0/16 fd00:66::/48]" {
		t.Errorf("accepted %v; want every pool", got.Accept)
	}
}

// TestComputeBGPPasswords: a password is handed on as its secret's file
// (for the mesh from nodeMeshPassword, for a BGPPeer from its password),
// a value stored by an older version as itself with a warning that does
// not show it, and one that cannot be used refuses the sessions.
func TestComputeBGPPasswords(t *testing.T) {
	base := node("h1", "172.31.1.11/24", "", "") + node("h2", "172.31.1.12/24", "", "") + node("h3", "172.31.2.13/24", "", "") + `---
apiVersion: projectcalico.org/v3
kind: BGPConfiguration
metadata: {name: default}
spec: {nodeMeshPassword: {secretKeyRef: {name: mesh, key: password}}}
---
apiVersion: projectcalico.org/v3
kind: BGPPeer
metadata: {name: tor}
spec: {peerIP: '172.31.1.1', asNumber: 65001, password: {secretKeyRef: {name: tor, key: md5.key}}}
`
	in := decode(t, "h1", base)
	pw := func(name, value string) *store.BGPPeer {
		p := store.KindBGPPeer.New().(*store.BGPPeer)
		p.Metadata.Name = name
		as := store.ASNumber(65002)
		p.Spec.PeerIP, p.Spec.ASNumber, p.Spec.Password = "172.31.1."+name[len(name)-1:], &as, &store.BGPPassword{Value: value}
		return p
	}
	in.BGPPeers = append(in.BGPPeers, pw("old2", "v4lue-0f-old"), pw("empty3", ""), pw("long4", strings.Repeat("x", 81)))
	bad := pw("bad5", "")
	bad.Spec.Password = &store.BGPPassword{SecretKeyRef: &store.SecretKeyRef{Name: "..", Key: "k"}}
	opt := pw("opt6", "")
	yes := true
	opt.Spec.Password = &store.BGPPassword{SecretKeyRef: &store.SecretKeyRef{Name: "opt", Key: "k", Optional: &yes}}
	in.BGPPeers = append(in.BGPPeers, bad, opt)
	got := ComputeBGP(in)
	var b strings.Builder
	for _, p := range got.Peers {
		fmt.Fprintf(&b, "%s %s file=%q optional=%v value=%d refused=%q\n", p.Addr, p.Type, p.PasswordFile, p.PasswordOptional, len(p.Password), p.Refused)
	}
	want := `172.31.1.1 global file="/etc/calico/secrets/tor/md5.key" optional=false value=0 refused=""
172.31.1.2 global file="" optional=false value=12 refused=""
172.31.1.3 global file="" optional=false value=0 refused="spec.password of BGPPeer empty3 is empty or longer than 80 bytes"
172.31.1.4 global file="" optional=false value=0 refused="spec.password of BGPPeer long4 is empty or longer than 80 bytes"
172.31.1.5 global file="" optional=false value=0 refused="spec.password of BGPPeer bad5 names no secret file"
172.31.1.6 global file="/etc/calico/secrets/opt/k" optional=true value=0 refused=""
172.31.1.12 mesh file="/etc/calico/secrets/mesh/password" optional=false value=0 refused=""
172.31.2.13 mesh file="/etc/calico/secrets/mesh/password" optional=false value=0 refused=""
`
	if b.String() != want {
		t.Errorf("peers:\n%s\nwant:\n%s", b.String(), want)
	}
	if got.Peers[1].Password != "v4lue-0f-old" {
		t.Errorf("the stored value is not handed on")
	}
	if len(got.Warnings) != 1 || !strings.Contains(got.Warnings[0], "spec.password of BGPPeer old2 is a password stored in the datastore") ||
		strings.Contains(got.Warnings[0], "v4lue") {
		t.Errorf("warnings = %q; want one for old2, without its password", got.Warnings)
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

// TestCalculatorComputeBGP: the Calculator's ComputeBGP, which takes the
// local workloads from its index and remembers the Nodes it read, gives
// what ComputeBGP gives, pass after pass, as workloads and Nodes change.
func TestCalculatorComputeBGP(t *testing.T) {
	base := node("h1", "172.31.1.11/24", "", "") + node("h2", "172.31.1.12/24", "", "") + `---
apiVersion: projectcalico.org/v3
kind: IPPool
metadata: {name: p}
spec: {cidr: 10.65.0.0/16}
`
	revs := 0
	input := func(y string) Input {
		in := decode(t, "h1", base+y)
		in.HostBlocks = []netip.Prefix{netip.MustParsePrefix("10.65.0.0/26")}
		for _, n := range in.Nodes {
			revs++
			n.Metadata.ResourceVersion = fmt.Sprint(revs)
		}
		return in
	}
	var k Calculator
	check := func(step string, in Input) {
		t.Helper()
		k.Compute(in)
		got, want := k.ComputeBGP(in), ComputeBGP(in)
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s:\n got %+v\nwant %+v", step, got, want)
		}
	}
	in := input(wep("h1", "default", "own", "cali1", "", "a", "10.65.0.1/32") + wep("h2", "default", "other", "cali2", "", "a", "10.65.3.3/32"))
	check("first", in)
	check("again", in)
	// A local workload with a borrowed address comes, and one on an
	// interface the node does not police (not cali…), which it does not
	// program;
	// a remote one goes.
	in.Workloads = append(slices.Clone(in.Workloads[:1]), decode(t, "h1", wep("h1", "default", "borrowed", "cali3", "", "a", "10.65.9.7/32")+
		wep("h1", "default", "unpoliced", "eth9", "", "a", "10.65.8.8/32")).Workloads...)
	check("borrowed", in)
	if got := fmt.Sprint(k.ComputeBGP(in).Advertise); got != "[10.65.0.0/26 10.65.9.7/32]" {
		t.Errorf("advertised %s", got)
	}
	// A Node changes (a new object at a new revision, as the cache makes
	// it): h2's address moves.
	moved := input("").Nodes
	moved[1].Spec.BGP.IPv4Address = "172.31.1.22/24"
	in.Nodes = moved
	check("node moved", in)
	if ps := k.ComputeBGP(in).Peers; len(ps) != 1 || ps[0].Addr.String() != "172.31.1.22" {
		t.Errorf("peers after h2 moved: %v", ps)
	}
	// The default AS changes: every Node read again with it.
	in.BGPConfigs = decode(t, "h1", "apiVersion: projectcalico.org/v3\nkind: BGPConfiguration\nmetadata: {name: default}\nspec: {asNumber: 64999}\n").BGPConfigs
	check("default AS", in)
	// An input the last Compute was not given: computed afresh.
	other := input(wep("h1", "default", "own", "cali1", "", "a", "10.65.0.1/32"))
	if got, want := k.ComputeBGP(other), ComputeBGP(other); !reflect.DeepEqual(got, want) {
		t.Errorf("an input Compute did not see:\n got %+v\nwant %+v", got, want)
	}
}
