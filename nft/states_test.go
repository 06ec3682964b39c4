package nft

import (
	"net"
	"net/netip"
	"strings"
)

func addr(s string) netip.Addr     { return netip.MustParseAddr(s) }
func prefix(s string) netip.Prefix { return netip.MustParsePrefix(s) }
func u8(v uint8) *uint8            { return &v }

func addrs(ss ...string) []netip.Addr {
	out := make([]netip.Addr, len(ss))
	for i, s := range ss {
		out[i] = addr(s)
	}
	return out
}

func prefixes(ss ...string) []netip.Prefix {
	out := make([]netip.Prefix, len(ss))
	for i, s := range ss {
		out[i] = prefix(s)
	}
	return out
}

var (
	tcp    = u8(6)
	udp    = u8(17)
	icmp4  = u8(1)
	icmpv6 = u8(58)
)

// classic is a Calico "network": members may talk to each other and to
// nothing else; egress is open.
func classic(name string) Policy {
	return Policy{
		Name:    name,
		Ingress: []Rule{{Action: Allow, Src: Match{Set: name}}},
		Egress:  []Rule{{Action: Allow}},
	}
}

func profilePath(names ...string) Path { return Path{Profiles: names} }

// tierPath is one tier "default" of policies.
func tierPath(names ...string) Path {
	return Path{Tiers: []Tier{{Name: "default", Policies: names}}}
}

// states is a named list of Rulesets. Every one has a golden file; the
// Fake and kernel contract tests replay them in several orders.
var states = []struct {
	name string
	rs   Ruleset
}{
	{"empty", Ruleset{}},
	{"one endpoint in a classic profile", Ruleset{
		Workloads: []Endpoint{{
			Iface: "cali1", Addrs: addrs("10.65.0.1", "fd00:65::1"),
			Ingress: profilePath("net-a"), Egress: profilePath("net-a"),
		}},
		Policies: []Policy{classic("net-a")},
		Sets:     []Set{{Name: "net-a", Members: addrs("10.65.0.1", "fd00:65::1")}},
	}},
	{"several endpoints sharing a path", Ruleset{
		Workloads: []Endpoint{
			{Iface: "cali3", Addrs: addrs("10.65.0.3"), Ingress: profilePath("net-a"), Egress: profilePath("net-a")},
			{Iface: "cali1", Addrs: addrs("10.65.0.1", "fd00:65::1"), Ingress: profilePath("net-a"), Egress: profilePath("net-a")},
			{Iface: "cali2", Addrs: addrs("10.65.0.2", "fd00:65::2"), Ingress: profilePath("net-a", "net-b"), Egress: profilePath("net-a")},
		},
		Policies: []Policy{classic("net-a"), classic("net-b"), {Name: "unused", Ingress: []Rule{{Action: Allow}}}},
		Sets: []Set{
			{Name: "net-a", Members: addrs("10.65.0.3", "10.65.0.1", "fd00:65::1", "10.65.0.1")},
			{Name: "net-b", Members: addrs("10.65.0.2", "fd00:65::2")},
		},
	}},
	{"policies with allow deny pass log", Ruleset{
		Workloads: []Endpoint{{
			Iface: "cali1", Addrs: addrs("10.65.0.1"),
			Ingress: Path{Tiers: []Tier{{Name: "tier1", Policies: []string{"tier1.log-all", "tier1.pass-web"}}, {Name: "default", Policies: []string{"tier1.deny-db"}}}, Profiles: []string{"net-a"}},
			Egress:  Path{Tiers: []Tier{{Name: "open", Policies: []string{"tier1.log-all"}, DefaultPass: true}, {Name: "default", Policies: []string{"tier1.deny-db"}}}},
		}},
		Policies: []Policy{
			classic("net-a"),
			{Name: "tier1.log-all", Ingress: []Rule{{Action: Log}}, Egress: []Rule{{Action: Log}}},
			{Name: "tier1.pass-web", Ingress: []Rule{{Action: Pass, Protocol: tcp, Dst: Match{Ports: []PortRange{{80, 80}}}}}},
			{
				Name:    "tier1.deny-db",
				Ingress: []Rule{{Action: Deny, Protocol: tcp, Dst: Match{Ports: []PortRange{{5432, 5432}}}}, {Action: Allow, Src: Match{Set: "net-a"}}},
				Egress:  []Rule{{Action: Deny, Dst: Match{Set: "db"}}, {Action: Allow}},
			},
		},
		Sets: []Set{{Name: "net-a", Members: addrs("10.65.0.1")}, {Name: "db", Members: addrs("10.65.0.9")}},
	}},
	{"nets and notNets of mixed families", Ruleset{
		Workloads: []Endpoint{{
			Iface: "cali1", Addrs: addrs("10.65.0.1", "fd00:65::1"),
			Ingress: profilePath("nets"), Egress: profilePath("nets"),
		}},
		Policies: []Policy{{
			Name: "nets",
			Ingress: []Rule{
				{Action: Allow, Src: Match{Nets: prefixes("10.0.0.0/8", "fd00::/8", "192.168.1.7/32")}},
				{Action: Deny, Src: Match{NotNets: prefixes("10.1.0.0/16")}},
				{Action: Allow, Src: Match{Nets: prefixes("10.0.0.0/8")}, Dst: Match{Nets: prefixes("fd00::/8")}},
				{Action: Allow, IPVersion: 6, Src: Match{Nets: prefixes("10.0.0.0/8", "fd00:1::/64", "fd00:2::/64"), NotNets: prefixes("fd00:1::1/128")}},
			},
			Egress: []Rule{{Action: Allow, Dst: Match{Nets: prefixes("0.0.0.0/0", "::/0")}}},
		}},
	}},
	{"ports and ranges", Ruleset{
		Workloads: []Endpoint{{
			Iface: "cali1", Addrs: addrs("10.65.0.1"),
			Ingress: profilePath("ports"), Egress: profilePath("ports"),
		}},
		Policies: []Policy{{
			Name: "ports",
			Ingress: []Rule{
				{Action: Allow, Protocol: tcp, Dst: Match{Ports: []PortRange{{443, 443}, {80, 80}, {8000, 8080}, {8080, 8090}}}},
				{Action: Allow, Protocol: udp, Dst: Match{Ports: []PortRange{{1000, 2000}}, NotPorts: []PortRange{{1500, 1500}}}},
				{Action: Deny, Protocol: tcp, Src: Match{Ports: []PortRange{{0, 1023}, {65535, 65535}}}},
				{Action: Allow, NotProtocol: udp},
			},
			Egress: []Rule{{Action: Allow, Protocol: udp, Dst: Match{Set: "dns", Ports: []PortRange{{53, 53}}}}},
		}},
		Sets: []Set{{Name: "dns", Members: addrs("10.96.0.10", "fd00:96::a")}},
	}},
	{"icmp type and code", Ruleset{
		Workloads: []Endpoint{{
			Iface: "cali1", Addrs: addrs("10.65.0.1", "fd00:65::1"),
			Ingress: profilePath("icmp"), Egress: profilePath("icmp"),
		}},
		Policies: []Policy{{
			Name: "icmp",
			Ingress: []Rule{
				{Action: Allow, Protocol: icmp4, ICMP: &ICMP{Type: 8}},
				{Action: Allow, Protocol: icmp4, ICMP: &ICMP{Type: 3, Code: u8(4)}},
				{Action: Deny, Protocol: icmpv6, NotICMP: &ICMP{Type: 128, Code: u8(0)}},
				{Action: Allow, Protocol: icmpv6, NotICMP: &ICMP{Type: 1}},
				{Action: Allow, Protocol: icmp4, IPVersion: 6},
			},
			Egress: []Rule{{Action: Allow, Protocol: icmp4}},
		}},
	}},
	{"ipv6-only endpoint", Ruleset{
		Workloads: []Endpoint{{
			Iface: "cali6", Addrs: addrs("fd00:65::6"),
			Ingress: profilePath("net-a"), Egress: profilePath("net-a"),
		}},
		Policies: []Policy{classic("net-a")},
		Sets:     []Set{{Name: "net-a", Members: addrs("fd00:65::6")}},
	}},
	{"endpoint to host accept", Ruleset{
		Workloads: []Endpoint{{
			Iface: "cali1", Addrs: addrs("10.65.0.1"),
			Ingress: profilePath("net-a"), Egress: profilePath("net-a"),
		}},
		Policies:       []Policy{classic("net-a")},
		Sets:           []Set{{Name: "net-a", Members: addrs("10.65.0.1")}},
		EndpointToHost: Accept,
	}},
	{"endpoint to host return and an empty path", Ruleset{
		Workloads: []Endpoint{
			{Iface: "cali1", Addrs: addrs("10.65.0.1"), Ingress: profilePath("net-a"), Egress: profilePath("net-a")},
			{Iface: "cali9", Addrs: addrs("10.65.0.9")},
		},
		Policies:       []Policy{classic("net-a")},
		Sets:           []Set{{Name: "net-a", Members: addrs("10.65.0.1")}},
		EndpointToHost: Return,
	}},
	{"host endpoints with failsafe ports", Ruleset{
		Workloads: []Endpoint{{
			Iface: "cali1", Addrs: addrs("10.65.0.1"),
			Ingress: profilePath("net-a"), Egress: profilePath("net-a"),
		}},
		HostEndpoints: []HostEndpoint{
			{Iface: AllInterfaces, Ingress: Path{Tiers: []Tier{{Name: "default", Policies: []string{"allow-http"}}}}, Egress: profilePath("net-a")},
			{Iface: "eth1"},
		},
		Policies: []Policy{classic("net-a"), {Name: "allow-http", Ingress: []Rule{{Action: Allow, Protocol: tcp, Dst: Match{Ports: []PortRange{{80, 80}}}}}}},
		Sets:     []Set{{Name: "net-a", Members: addrs("10.65.0.1")}},
		FailsafeIn: []ProtoPort{
			{Protocol: 6, Port: 22}, {Protocol: 17, Port: 68}, {Protocol: 6, Port: 179}, {Protocol: 6, Port: 22},
			{Protocol: 6, Port: 2379, Net: prefix("172.31.0.0/16")}, {Protocol: 132, Port: 9},
		},
		FailsafeOut: []ProtoPort{{Protocol: 17, Port: 53}, {Protocol: 6, Port: 2380, Net: prefix("fd00:31::/32")}},
	}},
	{"network sets", Ruleset{
		Workloads: []Endpoint{{
			Iface: "cali1", Addrs: addrs("10.65.0.1", "fd00:65::1"),
			Ingress: profilePath("nets"), Egress: profilePath("nets"),
		}},
		Policies: []Policy{{
			Name:    "nets",
			Ingress: []Rule{{Action: Allow, Src: Match{Set: "corp"}}, {Action: Deny, Src: Match{NotSet: "members"}}},
			Egress:  []Rule{{Action: Deny, Dst: Match{Set: "everywhere"}}},
		}},
		Sets: []Set{
			// Overlapping nets and members, adjacent nets, one member
			// outside them.
			{Name: "corp", Members: addrs("10.66.1.2", "192.168.0.9", "fd00:66::1"),
				Nets: prefixes("10.66.0.0/16", "10.66.1.2/32", "10.67.0.0/16", "10.68.0.0/24", "10.68.0.128/25", "255.255.255.0/24", "fd00:66::/64")},
			{Name: "everywhere", Nets: prefixes("0.0.0.0/0", "10.0.0.0/8", "::/0")},
			{Name: "members", Members: addrs("10.65.0.1", "10.65.0.2")},
		},
	}},
	{"named ports", Ruleset{
		Workloads: []Endpoint{{
			Iface: "cali1", Addrs: addrs("10.65.0.1", "fd00:65::1"),
			Ingress: profilePath("ports"), Egress: profilePath("ports"),
		}},
		Policies: []Policy{{
			Name: "ports",
			Ingress: []Rule{
				{Action: Allow, Dst: Match{PortSet: "http"}},
				{Action: Deny, Protocol: tcp, Src: Match{Nets: prefixes("10.0.0.0/8")}, Dst: Match{NotPortSet: "http"}},
				{Action: Allow, Protocol: tcp, Dst: Match{Ports: []PortRange{{22, 22}, {443, 443}}, PortSet: "http"}}, // either
			},
			Egress: []Rule{{Action: Allow, Dst: Match{Set: "dns", PortSet: "dns"}}, {Action: Deny, Src: Match{PortSet: "http"}}},
		}},
		Sets: []Set{{Name: "dns", Members: addrs("10.96.0.10")}},
		PortSets: []PortSet{
			{Name: "http", Members: []NamedPort{
				{Addr: addr("10.65.0.1"), Protocol: 6, Port: 8080}, {Addr: addr("fd00:65::1"), Protocol: 6, Port: 8080},
				{Addr: addr("10.65.0.2"), Protocol: 6, Port: 80}, {Addr: addr("10.65.0.1"), Protocol: 6, Port: 8080},
			}},
			{Name: "dns", Members: []NamedPort{{Addr: addr("10.96.0.10"), Protocol: 17, Port: 53}, {Addr: addr("10.96.0.10"), Protocol: 6, Port: 53}}},
		},
	}},
	{"host endpoint stages", Ruleset{
		Workloads: []Endpoint{{
			Iface: "cali1", Addrs: addrs("10.65.0.1"),
			Ingress: profilePath("net-a"), Egress: profilePath("net-a"),
		}},
		HostEndpoints: []HostEndpoint{
			{Iface: AllInterfaces, Ingress: profilePath("net-a"), Egress: profilePath("net-a"),
				ForwardIngress: tierPath("allow-http"), PreDNAT: tierPath("deny-db")},
			{Iface: "eth1", Ingress: tierPath("allow-http"),
				ForwardEgress:    Path{Tiers: []Tier{{Name: "default", Policies: []string{"deny-db"}}}, Profiles: []string{"net-a"}},
				UntrackedIngress: tierPath("allow-http"), UntrackedEgress: tierPath("allow-http")},
			{Iface: "eth2", ForwardIngress: tierPath("allow-http")},
		},
		Policies: []Policy{classic("net-a"),
			{Name: "allow-http", Ingress: []Rule{{Action: Allow, Protocol: tcp, Dst: Match{Ports: []PortRange{{80, 80}}}}},
				Egress: []Rule{{Action: Allow, Protocol: tcp, Src: Match{Ports: []PortRange{{80, 80}}}}}},
			{Name: "deny-db", Ingress: []Rule{{Action: Deny, Protocol: tcp, Dst: Match{Ports: []PortRange{{5432, 5432}}}}},
				Egress: []Rule{{Action: Deny, Protocol: tcp, Dst: Match{Ports: []PortRange{{5432, 5432}}}}}},
		},
		Sets:        []Set{{Name: "net-a", Members: addrs("10.65.0.1")}},
		FailsafeIn:  []ProtoPort{{Protocol: 6, Port: 22}, {Protocol: 6, Port: 2379, Net: prefix("172.31.0.0/16")}},
		FailsafeOut: []ProtoPort{{Protocol: 17, Port: 53}, {Protocol: 6, Port: 2380, Net: prefix("fd00:31::/32")}},
	}},
	{"nat outgoing", Ruleset{
		NATOutgoing: prefixes("10.65.0.0/16", "fd00:65::/48"),
		NATExcept:   prefixes("10.65.0.0/16", "10.66.0.0/16", "fd00:65::/48"),
	}},
	{"long names", Ruleset{
		Workloads: []Endpoint{{
			Iface: "cali1", Addrs: addrs("10.65.0.1"),
			Ingress: profilePath(strings.Repeat("p", 260)), Egress: profilePath(strings.Repeat("p", 260)),
		}},
		Policies: []Policy{{Name: strings.Repeat("p", 260), Ingress: []Rule{{Action: Allow, Src: Match{Set: strings.Repeat("s", 254)}}}}},
		Sets:     []Set{{Name: strings.Repeat("s", 254), Members: addrs("10.65.0.1")}},
	}},
	{"attached interfaces and a MAC", Ruleset{
		Workloads: []Endpoint{
			{Iface: "cali1", Addrs: addrs("10.65.0.1"), Ingress: profilePath("net-a"), Egress: profilePath("net-a")},
			{Iface: "vnet3", Addrs: addrs("10.65.0.2", "fd00:65::2"), MAC: mac("52:54:00:12:34:56"),
				Ingress: profilePath("net-a"), Egress: profilePath("net-a")},
			{Iface: "tap-b", Addrs: addrs("10.65.0.3"), Ingress: profilePath("net-a"), Egress: profilePath("net-a")},
		},
		HostEndpoints: []HostEndpoint{{Iface: AllInterfaces, Ingress: profilePath("net-a"), Egress: profilePath("net-a")}},
		Policies:      []Policy{classic("net-a")},
		Sets:          []Set{{Name: "net-a", Members: addrs("10.65.0.1", "10.65.0.2", "fd00:65::2", "10.65.0.3")}},
	}},
}

func mac(s string) net.HardwareAddr {
	m, err := net.ParseMAC(s)
	if err != nil {
		panic(err)
	}
	return m
}
