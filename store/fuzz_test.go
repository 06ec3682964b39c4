package store

import (
	"strings"
	"testing"
)

// FuzzDecodeValidate checks that any input is either decoded and
// validated, or refused with one error that names what is wrong: no
// panic, no hang, and a resource that validates encodes and decodes back
// to itself.
func FuzzDecodeValidate(f *testing.F) {
	for _, s := range []string{
		"kind: IPPool\nmetadata: {name: p}\nspec: {cidr: 10.0.0.0/16}",
		"kind: Profile\nmetadata: {name: web, labels: {a: b}}\nspec: {ingress: [{action: Allow, source: {selector: has(web)}}], egress: [{action: Allow}]}",
		"kind: GlobalNetworkPolicy\nmetadata: {name: g}\nspec: {order: 10, selector: role == 'db', ingress: [{action: Allow, protocol: TCP, destination: {ports: [80, '8000:8080']}}]}",
		"kind: NetworkPolicy\nmetadata: {name: n, namespace: prod}\nspec: {types: [Egress], egress: [{action: Deny, destination: {nets: [10.0.0.0/8]}}]}",
		"kind: WorkloadEndpoint\nmetadata: {name: w, namespace: default}\nspec: {node: n, orchestrator: calico, workload: w, endpoint: eth0, interfaceName: cali1, ipNetworks: [10.0.0.1/32]}",
		"kind: HostEndpoint\nmetadata: {name: h}\nspec: {node: n, interfaceName: '*'}",
		"kind: BGPPeer\nmetadata: {name: b}\nspec: {peerIP: 10.0.0.1, asNumber: 65001}",
		"kind: BGPConfiguration\nmetadata: {name: default}\nspec: {asNumber: 64512, nodeToNodeMeshEnabled: false}",
		"kind: FelixConfiguration\nmetadata: {name: default}\nspec: {failsafeInboundHostPorts: [{protocol: tcp, port: 22}]}",
		"kind: Node\nmetadata: {name: h1}\nspec: {bgp: {ipv4Address: 10.0.0.1/24}}",
		"kind: IPPoolList\nitems: [{kind: IPPool, apiVersion: projectcalico.org/v3, metadata: {name: a}, spec: {cidr: 10.1.0.0/16}}]",
		"kind: Profile\nmetadata: {name: p}\nspec: {ingress: [{action: Allow, protocol: ICMPv6, ipVersion: 4}]}",
		"kind: GlobalNetworkPolicy\nmetadata: {name: a}\nspec: {order: 1e400}",
		"kind: Profile\n---\nkind: IPPool", "{}", "[]", "- a\n- b", "kind: &a Profile\nmetadata: *a", "",
	} {
		f.Add("apiVersion: projectcalico.org/v3\n" + s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		rs, err := Decode([]byte(in))
		if err != nil {
			if err.Error() == "" || strings.Count(err.Error(), "\n") > 20 {
				t.Fatalf("Decode(%q) refused it with %q", in, err)
			}
			return
		}
		for _, r := range rs {
			if err := Validate(r); err != nil {
				if len(err.Error()) > 64<<10 {
					t.Fatalf("Validate of %q: an error of %d bytes", in, len(err.Error()))
				}
				continue
			}
			b, err := Encode(r, YAML)
			if err != nil {
				t.Fatalf("encoding a valid %s from %q: %v", IDOf(r), in, err)
			}
			back, err := Decode(b)
			if err != nil || len(back) != 1 {
				t.Fatalf("decoding a valid %s written as\n%s\nfrom %q: %v", IDOf(r), b, in, err)
			}
			if err := Validate(back[0]); err != nil {
				t.Fatalf("a valid %s written as\n%s\nis invalid read back: %v", IDOf(r), b, err)
			}
			again, _ := Encode(back[0], YAML)
			if string(again) != string(b) {
				t.Fatalf("%s does not encode the same read back:\n%s\nthen\n%s", IDOf(r), b, again)
			}
		}
	})
}
