package store

import (
	"regexp"
	"strings"
	"testing"
)

func mustDecode(t *testing.T, s string) Resource {
	t.Helper()
	rs, err := Decode([]byte("apiVersion: projectcalico.org/v3\n" + s))
	if err != nil {
		t.Fatalf("Decode(%q): %v", s, err)
	}
	return rs[0]
}

func TestValidateRefuses(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"kind: IPPool\nmetadata: {name: P}\nspec: {cidr: 10.0.0.0/16}", `metadata.name: "P" must be lower-case`},
		{"kind: IPPool\nmetadata: {name: p}\nspec: {cidr: 10.0.0.0/33}", `spec.cidr: "10.0.0.0/33" is not a CIDR`},
		{"kind: IPPool\nmetadata: {name: p}\nspec: {cidr: 10.0.0.1/16}", `has host bits set (did you mean 10.0.0.0/16?)`},
		{"kind: IPPool\nmetadata: {name: p}\nspec: {cidr: 10.0.0.0/28}", `spec.cidr: 10.0.0.0/28 is smaller than one block (/26)`},
		{"kind: IPPool\nmetadata: {name: p}\nspec: {cidr: 10.0.0.0/16, blockSize: 19}", `spec.blockSize: 19 is out of range for an IPv4 pool (20-32)`},
		{"kind: IPPool\nmetadata: {name: p}\nspec: {cidr: 'fd00::/48', blockSize: 26}", `spec.blockSize: 26 is out of range for an IPv6 pool`},
		{"kind: IPPool\nmetadata: {name: p}\nspec: {cidr: 169.254.0.0/16}", `overlaps the link-local range`},
		{"kind: IPPool\nmetadata: {name: p}\nspec: {cidr: 10.0.0.0/16, ipipMode: Always}", `spec.ipipMode: "Always" is not supported`},
		{"kind: IPPool\nmetadata: {name: p}\nspec: {cidr: 10.0.0.0/16, nodeSelector: 'a =='}", `spec.nodeSelector:`},
		{"kind: IPPool\nmetadata: {name: p, namespace: x}\nspec: {cidr: 10.0.0.0/16}", `metadata.namespace: IPPool is not namespaced`},
		{"kind: Profile\nmetadata: {name: p, labels: {'bad key!': x}}", `metadata.labels:`},
		{"kind: Profile\nmetadata: {name: p}\nspec: {ingress: [{action: Accept}]}", `spec.ingress[0].action: "Accept" is not Allow, Deny, Log or Pass`},
		{"kind: Profile\nmetadata: {name: p}\nspec: {egress: [{}]}", `spec.egress[0].action: is required`},
		{"kind: Profile\nmetadata: {name: p}\nspec: {ingress: [{action: Allow, destination: {ports: [80]}}]}", `spec.ingress[0].destination.ports: needs protocol TCP, UDP, SCTP or UDPLite`},
		{"kind: Profile\nmetadata: {name: p}\nspec: {ingress: [{action: Allow, protocol: ICMP, icmp: {code: 1}}]}", `spec.ingress[0].icmp.code: needs a type`},
		{"kind: Profile\nmetadata: {name: p}\nspec: {ingress: [{action: Allow, protocol: TCP, icmp: {type: 8}}]}", `spec.ingress[0].icmp: needs protocol ICMP or ICMPv6`},
		{"kind: Profile\nmetadata: {name: p}\nspec: {ingress: [{action: Allow, ipVersion: 4, source: {nets: ['fd00::/64']}}]}", `spec.ingress[0].source.nets[0]: fd00::/64 is not an IPv4 CIDR`},
		{"kind: Profile\nmetadata: {name: p}\nspec: {ingress: [{action: Allow, ipVersion: 5}]}", `spec.ingress[0].ipVersion: 5 is not 4 or 6`},
		{"kind: Profile\nmetadata: {name: p}\nspec: {ingress: [{action: Allow, source: {selector: 'a = b'}}]}", `spec.ingress[0].source.selector:`},
		{"kind: Profile\nmetadata: {name: p}\nspec: {ingress: [{action: Allow, source: {notNets: [nope]}}]}", `spec.ingress[0].source.notNets[0]: "nope" is not a CIDR`},
		{"kind: GlobalNetworkPolicy\nmetadata: {name: g}\nspec: {types: [Egress], ingress: [{action: Allow}]}", `spec.ingress: has rules but spec.types does not include Ingress`},
		{"kind: GlobalNetworkPolicy\nmetadata: {name: g}\nspec: {types: [Ingress, Ingress]}", `spec.types[1]: "Ingress" is listed twice`},
		{"kind: GlobalNetworkPolicy\nmetadata: {name: g}\nspec: {tier: Security}", `spec.tier: "Security" must be lower-case`},
		{"kind: GlobalNetworkPolicy\nmetadata: {name: g}\nspec: {preDNAT: true}", `spec.applyOnForward: must be true for a doNotTrack or preDNAT policy`},
		{"kind: GlobalNetworkPolicy\nmetadata: {name: g}\nspec: {preDNAT: true, doNotTrack: true, applyOnForward: true}", `spec.preDNAT: a policy cannot be both preDNAT and doNotTrack`},
		{"kind: GlobalNetworkPolicy\nmetadata: {name: g}\nspec: {preDNAT: true, applyOnForward: true, egress: [{action: Deny}]}", `spec.egress: a preDNAT policy has ingress rules only`},
		{"kind: GlobalNetworkPolicy\nmetadata: {name: g}\nspec: {selector: global()}", `spec.selector: global() may only be a rule's whole namespaceSelector`},
		{"kind: GlobalNetworkPolicy\nmetadata: {name: g}\nspec: {ingress: [{action: Allow, source: {namespaceSelector: global() || a == 'b'}}]}", `spec.ingress[0].source.namespaceSelector: global() may only be`},
		{"kind: GlobalNetworkPolicy\nmetadata: {name: g}\nspec: {ingress: [{action: Allow, source: {notNets: [0.0.0.0/0]}}]}", `spec.ingress[0].source.notNets[0]: 0.0.0.0/0 matches no address`},
		{"kind: GlobalNetworkPolicy\nmetadata: {name: g}\nspec: {serviceAccountSelector: a == 'b'}", `spec.serviceAccountSelector: is not supported here ("a == 'b'")`},
		{"kind: GlobalNetworkPolicy\nmetadata: {name: g}\nspec: {ingress: [{action: Allow, source: {serviceAccounts: {names: [sa1]}}}]}", `spec.ingress[0].source.serviceAccounts: is not supported here`},
		{"kind: Tier\nmetadata: {name: t}\nspec: {defaultAction: Allow}", `spec.defaultAction: "Allow" is not Deny or Pass`},
		{"kind: Tier\nmetadata: {name: a.b}", `metadata.name: "a.b" must be lower-case letters, digits and '-'`},
		{"kind: Tier\nmetadata: {name: default}\nspec: {order: 5}", `spec.order: the default tier's order is 1e+06`},
		{"kind: GlobalNetworkSet\nmetadata: {name: s, labels: {projectcalico.org/namespace: x}}", `is set by calico`},
		{"kind: NetworkSet\nmetadata: {name: s}\nspec: {nets: [10.0.0.1/8]}", `spec.nets[0]: "10.0.0.1/8" has host bits set`},
		{"kind: ClusterInformation\nmetadata: {name: mine}", `the cluster's information is called default`},
		{"kind: IPReservation\nmetadata: {name: r}\nspec: {reservedCIDRs: [10.0.0.0/24]}", `kind: IPReservation is not supported here`},
		{"kind: IPPool\nmetadata: {name: p}\nspec: {cidr: 10.0.0.0/16, assignmentMode: Sometimes}", `spec.assignmentMode: "Sometimes" is not Automatic or Manual`},
		{"kind: HostEndpoint\nmetadata: {name: h}\nspec: {node: n, interfaceName: eth0, ports: [{name: HTTP, protocol: TCP, port: 80}]}", `spec.ports[0].name: "HTTP" is not a port name`},
		{"kind: HostEndpoint\nmetadata: {name: h}\nspec: {node: n, interfaceName: eth0, ports: [{name: dns, protocol: ICMP, port: 53}]}", `spec.ports[0].protocol: ICMP is not TCP, UDP or SCTP`},
		{"kind: Profile\nmetadata: {name: p}\nspec: {ingress: [{action: Allow, protocol: ICMP, destination: {ports: [http]}}]}", `spec.ingress[0].destination.ports: needs protocol TCP`},
		{"kind: NetworkPolicy\nmetadata: {name: n, namespace: Bad_NS}", `metadata.namespace: "Bad_NS"`},
		{"kind: WorkloadEndpoint\nmetadata: {name: w}\nspec: {node: n, orchestrator: calico, workload: w, endpoint: eth0, interfaceName: cali0123456789abcdef, ipNetworks: [10.0.0.0/24]}", `spec.interfaceName: "cali0123456789abcdef" is not an interface name`},
		{"kind: WorkloadEndpoint\nmetadata: {name: w}\nspec: {node: n, orchestrator: calico, workload: w, endpoint: eth0, interfaceName: cali1, ipNetworks: [10.0.0.0/24]}", `spec.ipNetworks[0]: 10.0.0.0/24 must be a single address`},
		{"kind: HostEndpoint\nmetadata: {name: h}\nspec: {node: n}", `spec.interfaceName: give the interface's name`},
		{"kind: HostEndpoint\nmetadata: {name: h}\nspec: {node: n, interfaceName: lo}", `spec.interfaceName: "lo" cannot be a host endpoint`},
		{"kind: HostEndpoint\nmetadata: {name: h}\nspec: {node: n, interfaceName: cali123}", `spec.interfaceName: "cali123" cannot be a host endpoint`},
		{"kind: HostEndpoint\nmetadata: {name: h}\nspec: {node: n, interfaceName: 'eth 0'}", `spec.interfaceName: "eth 0" is not an interface name`},
		{"kind: FelixConfiguration\nmetadata: {name: default}\nspec: {failsafeOutboundHostPorts: [{protocol: tcp}]}", `spec.failsafeOutboundHostPorts[0].port: is required`},
		{"kind: FelixConfiguration\nmetadata: {name: default}\nspec: {failsafeInboundHostPorts: [{protocol: tcp, port: 22, net: '::ffff:10.0.0.1'}]}", `is an IPv4-mapped IPv6 address; write it as IPv4 (10.0.0.1)`},
		{"kind: GlobalNetworkPolicy\nmetadata: {name: g}\nspec: {ingress: [{action: Allow, source: {nets: ['::ffff:10.0.0.1']}}]}", `IPv4-mapped`},
		{"kind: FelixConfiguration\nmetadata: {name: default}\nspec: {failsafeInboundHostPorts: [{protocol: tcp, port: 22, net: 10.0.0.300/8}]}", `spec.failsafeInboundHostPorts[0].net`},
		{"kind: BGPPeer\nmetadata: {name: b}\nspec: {peerIP: 10.0.0.1}", `spec.asNumber: is required with peerIP`},
		{"kind: BGPPeer\nmetadata: {name: b}\nspec: {peerIP: 10.0.0.1, asNumber: 65001, password: {value: hunter2}}", `spec.password.value: a password is not stored in the datastore: write it to /etc/calico/secrets/<name>/<key>`},
		{"kind: BGPPeer\nmetadata: {name: b}\nspec: {peerIP: 10.0.0.1, asNumber: 65001, password: {secretKeyRef: {name: s, key: ../k}}}", `spec.password.secretKeyRef.key: "../k" is not a secret's key`},
		{"kind: BGPPeer\nmetadata: {name: b}\nspec: {peerIP: 'nope', asNumber: 64512}", `spec.peerIP: "nope" is not an address`},
		{"kind: BGPConfiguration\nmetadata: {name: mine}", `metadata.name: "mine" must be "default" or "node.<node name>"`},
		{"kind: BGPConfiguration\nmetadata: {name: node.h1}\nspec: {nodeToNodeMeshEnabled: false}", `a per-node BGPConfiguration may set only`},
		{"kind: FelixConfiguration\nmetadata: {name: default}\nspec: {defaultEndpointToHostAction: Allow}", `spec.defaultEndpointToHostAction: "Allow" is not Drop, Return or Accept`},
		{"kind: FelixConfiguration\nmetadata: {name: default}\nspec: {failsafeInboundHostPorts: [{protocol: icmp, port: 1}]}", `spec.failsafeInboundHostPorts[0].protocol: "icmp" is not tcp, udp or sctp`},
		{"kind: Node\nmetadata: {name: h1}\nspec: {bgp: {ipv4Address: 10.0.0.1}}", `spec.bgp.ipv4Address: "10.0.0.1" is not an IPv4 address with prefix length`},
		{"kind: Profile\nmetadata: {name: a..b}", `metadata.name: "a..b" has a part between dots that is empty`},
		{"kind: Profile\nmetadata: {name: a.-b}", `metadata.name: "a.-b" has a part between dots`},
		{"kind: Profile\nmetadata: {name: " + strings.Repeat("a", 300) + "}", `is 300 characters long: at most 253`},
		{"kind: Profile\nmetadata: {name: p}\nspec: {ingress: [{action: Allow, protocol: ICMPv6, ipVersion: 4}]}", `spec.ingress[0].protocol: ICMPv6 does not match ipVersion 4`},
		{"kind: Profile\nmetadata: {name: p}\nspec: {ingress: [{action: Allow, protocol: ICMP, ipVersion: 6}]}", `spec.ingress[0].protocol: ICMP does not match ipVersion 6`},
		{"kind: BGPPeer\nmetadata: {name: b}\nspec: {peerIP: 0.0.0.0, asNumber: 65001}", `0.0.0.0 is unspecified`},
		{"kind: BGPPeer\nmetadata: {name: b}\nspec: {peerIP: 127.0.0.1, asNumber: 65001}", `127.0.0.1 is a loopback address`},
		{"kind: BGPPeer\nmetadata: {name: b}\nspec: {peerIP: 224.0.0.5, asNumber: 65001}", `224.0.0.5 is a multicast address`},
		{"kind: BGPPeer\nmetadata: {name: b}\nspec: {peerIP: 'fe80::1', asNumber: 65001}", `fe80::1 is link-local`},
		{"kind: BGPPeer\nmetadata: {name: b}\nspec: {peerIP: 255.255.255.255, asNumber: 65001}", `is the broadcast address`},
		{"kind: Profile\nmetadata: {name: p, labels: {a: " + strings.Repeat("x", 100000) + "}}", `… (100000 bytes)`},
	} {
		err := Validate(mustDecode(t, tc.in))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Validate(%q) = %v;\nwant an error containing %q", tc.in, err, tc.want)
		}
	}
}

func TestValidateAccepts(t *testing.T) {
	for _, in := range []string{
		"kind: IPPool\nmetadata: {name: default-ipv4-ippool}\nspec: {cidr: 192.168.0.0/16}",
		"kind: IPPool\nmetadata: {name: v6}\nspec: {cidr: 'fd00:65::/48', natOutgoing: true}",
		"kind: Profile\nmetadata: {name: a}\nspec: {labelsToApply: {a: ''}, ingress: [{action: Allow, source: {selector: has(a)}}], egress: [{action: Allow}]}",
		"kind: GlobalNetworkPolicy\nmetadata: {name: db}\nspec: {order: 100, selector: role == 'db', ingress: [{action: Allow, protocol: TCP, source: {selector: role == 'web'}, destination: {ports: [5432, '6000:6010']}}]}",
		"kind: NetworkPolicy\nmetadata: {name: n}\nspec: {selector: all(), egress: [{action: Deny, protocol: ICMPv6, icmp: {type: 128, code: 0}}]}",
		"kind: BGPPeer\nmetadata: {name: tor}\nspec: {peerIP: '172.31.1.1', asNumber: 65001}",
		"kind: BGPConfiguration\nmetadata: {name: default}\nspec: {nodeToNodeMeshEnabled: false, asNumber: '1.10', listenPort: 179}",
		"kind: FelixConfiguration\nmetadata: {name: node.h1}\nspec: {defaultEndpointToHostAction: Accept, failsafeInboundHostPorts: [{protocol: tcp, port: 22}]}",
		"kind: GlobalNetworkPolicy\nmetadata: {name: g}\nspec: {tier: security, ingress: [{action: Allow, source: {namespaceSelector: ' global() '}, destination: {ports: [http, 22]}, protocol: TCP}]}",
		"kind: GlobalNetworkPolicy\nmetadata: {name: g}\nspec: {doNotTrack: true, applyOnForward: true, selector: role == 'edge', ingress: [{action: Allow, destination: {ports: [http]}}]}",
		"kind: HostEndpoint\nmetadata: {name: h}\nspec: {node: n, expectedIPs: [10.0.0.1], ports: [{name: http, protocol: TCP, port: 80}]}",
		"kind: BGPPeer\nmetadata: {name: b}\nspec: {peerIP: 10.0.0.1, asNumber: 65001, password: {secretKeyRef: {name: bgp, key: tor1}}}",
		"kind: Tier\nmetadata: {name: security}\nspec: {order: 100}",
		"kind: GlobalNetworkSet\nmetadata: {name: blocklist, labels: {list: bad}}\nspec: {nets: [198.51.100.0/24, 2001:db8::1]}",
		"kind: ClusterInformation\nmetadata: {name: default}\nspec: {clusterGUID: 46f13b8fa1a64be5a1bebadf04332cc9, datastoreReady: true}",
		"kind: KubeControllersConfiguration\nmetadata: {name: default}\nspec: {controllers: {}}",
		"kind: IPPool\nmetadata: {name: p}\nspec: {cidr: 10.0.0.0/16, assignmentMode: Manual, allowedUses: [Workload]}",
	} {
		if err := Validate(mustDecode(t, in)); err != nil {
			t.Errorf("Validate(%q) = %v; want nil", in, err)
		}
	}
}

func TestDefaults(t *testing.T) {
	p := mustDecode(t, "kind: IPPool\nmetadata: {name: p}\nspec: {cidr: 'fd00:65::/48'}").(*IPPool)
	if err := Validate(p); err != nil {
		t.Fatal(err)
	}
	if p.Spec.BlockSize != 122 || p.Spec.NodeSelector != "all()" || p.Spec.IPIPMode != "Never" {
		t.Errorf("defaults = %+v", p.Spec)
	}
	g := mustDecode(t, "kind: GlobalNetworkPolicy\nmetadata: {name: g}\nspec: {egress: [{action: Allow}]}").(*GlobalNetworkPolicy)
	Validate(g)
	if strings.Join(g.Spec.Types, ",") != "Egress" || g.Spec.Tier != "default" || g.Metadata.Labels[TierLabel] != "default" {
		t.Errorf("inferred types = %v, tier %q, labels %v; want Egress (as Calico: egress rules only), default and the tier label", g.Spec.Types, g.Spec.Tier, g.Metadata.Labels)
	}
	n := mustDecode(t, "kind: NetworkPolicy\nmetadata: {name: n}").(*NetworkPolicy)
	Validate(n)
	if n.Metadata.Namespace != "default" || strings.Join(n.Spec.Types, ",") != "Ingress" {
		t.Errorf("namespace %q types %v; want default, Ingress", n.Metadata.Namespace, n.Spec.Types)
	}
}

// TestDecodeNumbersOutOfRange: a number too large for any field is named
// as such, not as a string.
func TestDecodeNumbersOutOfRange(t *testing.T) {
	_, err := Decode([]byte("apiVersion: projectcalico.org/v3\nkind: GlobalNetworkPolicy\nmetadata: {name: a}\nspec: {order: 1e400}\n"))
	if err == nil || !strings.Contains(err.Error(), "line 4: 1e400 is out of range for a number") {
		t.Errorf("Decode of order 1e400 = %v", err)
	}
}

// TestErrorsQuoteLittle: a huge bad value gives a short error.
func TestErrorsQuoteLittle(t *testing.T) {
	huge := strings.Repeat("x", 10<<20) + "!"
	rs, err := Decode([]byte("apiVersion: projectcalico.org/v3\nkind: Profile\nmetadata:\n  name: p\n  labels:\n    a: " + huge + "\n"))
	if err != nil {
		t.Fatalf("decoding a profile with a 10 MB label: %d bytes of error", len(err.Error()))
	}
	err = Validate(rs[0])
	if err == nil || len(err.Error()) > 500 || !strings.Contains(err.Error(), "(10485761 bytes)") {
		t.Errorf("validating a 10 MB label value gave an error of %d bytes; want a short one that says how long the value was", len(err.Error()))
	}
}

// TestNameShapes: the hand-written checks of names accept exactly what
// the regular expressions in their comments do, over every string of up
// to four symbols from an alphabet of each kind of character, and at the
// interface name's length limit.
func TestNameShapes(t *testing.T) {
	shapes := []struct {
		name  string
		check func(string) bool
		re    *regexp.Regexp
	}{
		{"dnsLabelShape", dnsLabelShape, regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`)},
		{"dnsSubdomainShape", dnsSubdomainShape, regexp.MustCompile(`^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$`)},
		{"ifaceShape", ifaceShape, regexp.MustCompile(`^[A-Za-z0-9_.:-]{1,15}$`)},
	}
	alphabet := []string{"a", "z", "A", "Z", "0", "9", "-", ".", "_", ":", "é", "\n", " ", "/"}
	words := []string{""}
	for n := 1; n <= 4; n++ {
		for _, w := range words {
			if len([]rune(w)) == n-1 {
				for _, a := range alphabet {
					words = append(words, w+a)
				}
			}
		}
	}
	for _, n := range []int{14, 15, 16} {
		words = append(words, strings.Repeat("a", n), strings.Repeat("a", n-1)+"-", "-"+strings.Repeat("a", n-1))
	}
	for _, s := range shapes {
		for _, w := range words {
			if got, want := s.check(w), s.re.MatchString(w); got != want {
				t.Errorf("%s(%q) = %v; the expression says %v", s.name, w, got, want)
			}
		}
	}
	t.Logf("%d strings", len(words))
}
