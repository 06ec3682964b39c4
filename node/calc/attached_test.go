package calc

import (
	"fmt"
	"net/netip"
	"reflect"
	"slices"
	"strings"
	"testing"

	"calico/nft"
	"calico/node/route"
)

// attachedWEP is a WorkloadEndpoint of an interface attached with
// `workload add --iface` (and --mac when mac is set).
func attachedWEP(name, iface, mac string, ips ...string) string {
	spec := `node: h1, orchestrator: calico, workload: ` + name + `, endpoint: eth0, interfaceName: ` + iface + `, profiles: [a], ipNetworks: [` + strings.Join(ips, ", ") + `]`
	if mac != "" {
		spec += `, mac: '` + mac + `'`
	}
	return `---
apiVersion: projectcalico.org/v3
kind: WorkloadEndpoint
metadata: {name: h1-calico-` + name + `-eth0, namespace: default, annotations: {projectcalico.org/attached-interface: tuntap}}
spec: {` + spec + `}
`
}

func TestAttachedInterfaces(t *testing.T) {
	y := classic +
		attachedWEP("vm1", "vnet3", "52:54:00:12:34:56", "10.65.0.70/32", "'fd00:65::46/128'") +
		attachedWEP("vm2", "tap-vm2", "", "10.65.0.71/32") +
		wep("h1", "default", "c1", "cali1", "", "a", "10.65.0.1/32") +
		// Another tool's endpoint naming the host's uplink: not policed.
		wep("h1", "default", "x", "eth0", "", "a", "10.65.0.9/32")

	in := decode(t, "h1", y)
	d := Compute(in)
	byIface := map[string]int{}
	for i, ep := range d.Ruleset.Workloads {
		byIface[ep.Iface] = i
	}
	if _, ok := byIface["eth0"]; ok {
		t.Errorf("eth0 became a workload interface: %+v", d.Ruleset.Workloads)
	}
	if !slices.ContainsFunc(d.Problems, func(p string) bool { return strings.Contains(p, "interface eth0 is not a workload interface") }) {
		t.Errorf("no problem reported for eth0: %q", d.Problems)
	}
	vm1, ok := byIface["vnet3"]
	if !ok || d.Ruleset.Workloads[vm1].MAC.String() != "52:54:00:12:34:56" {
		t.Errorf("vnet3's endpoint: %+v", d.Ruleset.Workloads)
	}
	if vm2, ok := byIface["tap-vm2"]; !ok || d.Ruleset.Workloads[vm2].MAC != nil {
		t.Errorf("tap-vm2 (no --mac) should be policed without a MAC check: %+v", d.Ruleset.Workloads)
	}
	for _, p := range d.Problems {
		if strings.Contains(p, "vnet3") || strings.Contains(p, "tap-vm2") {
			t.Errorf("an attached interface is reported: %s", p)
		}
	}
	if !routed(d, "10.65.0.70/32") || !routed(d, "fd00:65::46/128") || routed(d, "10.65.0.9/32") {
		t.Errorf("routes without the host's interfaces known: %v", d.Routes)
	}

	checkDown(t, in)
}

func routed(d Desired, dst string) bool {
	return slices.ContainsFunc(d.Routes, func(r route.Route) bool { return r.Dst == netip.MustParsePrefix(dst) })
}

// checkDown: the host has cali1 and tap-vm2 but no vnet3, so vm1 is
// down and has no route, which is no problem; the others keep theirs.
func checkDown(t *testing.T, in Input) {
	in.HostInterfaces = map[string][]netip.Addr{"cali1": nil, "tap-vm2": nil, "eth0": {netip.MustParseAddr("172.31.1.11")}}
	d := Compute(in)
	if routed(d, "10.65.0.70/32") || routed(d, "fd00:65::46/128") {
		t.Errorf("a down endpoint is routed: %v", d.Routes)
	}
	if !routed(d, "10.65.0.71/32") || !routed(d, "10.65.0.1/32") {
		t.Errorf("present endpoints lost their routes: %v", d.Routes)
	}
	if len(d.Ruleset.Workloads) != 3 {
		t.Errorf("a down endpoint keeps its policy (its interface may come back at any time): %+v", d.Ruleset.Workloads)
	}
	if _, err := nft.Render(d.Ruleset); err != nil {
		t.Errorf("the ruleset does not render: %v", err)
	}
}

// TestNeedsInterfaces: the calculation reads the host's interfaces only
// for this host's attached endpoints and host endpoints by expectedIPs;
// for any other input its result does not depend on them, so the agent
// may skip listing them.
func TestNeedsInterfaces(t *testing.T) {
	heps := func(node, iface string) string {
		spec := `node: ` + node + `, expectedIPs: [192.0.2.10]`
		if iface != "" {
			spec += `, interfaceName: ` + iface
		}
		return `---
apiVersion: projectcalico.org/v3
kind: HostEndpoint
metadata: {name: hep-` + node + iface + `, labels: {role: edge}}
spec: {` + spec + `}
`
	}
	plain := classic + wep("h1", "default", "c1", "cali1", "", "a", "10.65.0.1/32") + wep("h2", "default", "c2", "cali2", "", "a", "10.65.0.2/32") +
		gnp("edge", "selector: role == 'edge', ingress: [{action: Allow}]")
	for _, c := range []struct {
		name, y string
		want    bool
	}{
		{"workloads of its own", plain, false},
		{"an attached endpoint here", plain + attachedWEP("vm1", "vnet3", "", "10.65.0.70/32"), true},
		{"a host endpoint by expectedIPs here", plain + heps("h1", ""), true},
		{"a host endpoint by name here", plain + heps("h1", "eth1"), false},
		{"a host endpoint by expectedIPs elsewhere", plain + heps("h2", ""), false},
	} {
		t.Run(c.name, func(t *testing.T) {
			in := decode(t, "h1", c.y)
			if got := NeedsInterfaces(in); got != c.want {
				t.Fatalf("NeedsInterfaces = %v, want %v", got, c.want)
			}
			if c.want {
				return
			}
			// Not needed: the same result without them, with none and
			// with some.
			without := Compute(in)
			for _, ifs := range []map[string][]netip.Addr{{}, {"cali1": nil, "vnet3": nil, "eth0": {netip.MustParseAddr("192.0.2.10")}, "eth1": nil}} {
				in.HostInterfaces = ifs
				if got := Compute(in); !reflect.DeepEqual(got, without) {
					t.Errorf("with interfaces %v the result differs:\n%s\nroutes %v\nwithout:\n%s\nroutes %v", ifs, got, got.Routes, without, without.Routes)
				}
			}
		})
	}
}

// TestUnpolicedInOrder: the problems of endpoints on interfaces the node
// does not police come in the same order every time (a map's order made
// the agent's problems change from pass to pass).
func TestUnpolicedInOrder(t *testing.T) {
	y := classic
	for _, name := range []string{"e", "d", "c", "b", "a"} {
		y += wep("h1", "default", name, "eth-"+name, "", "a", "10.65.0."+fmt.Sprint(int(name[0]))+"/32")
	}
	in := decode(t, "h1", y)
	first := Compute(in).Problems
	if len(first) != 5 {
		t.Fatalf("problems %q, want one for each of 5 endpoints", first)
	}
	for range 20 {
		if got := Compute(in).Problems; !slices.Equal(got, first) {
			t.Fatalf("problems in another order:\n%q\nthen\n%q", first, got)
		}
	}
}
