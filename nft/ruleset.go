// Package nft owns the nftables table inet calico: it renders the node's
// firewall, given as plain values, into chains, sets and verdict maps, and
// keeps the kernel's copy of that table equal to it with small atomic
// transactions. It knows nothing of the datastore.
package nft

import (
	"iter"
	"net"
	"net/netip"
	"strconv"
	"strings"
)

// Ruleset is the whole desired content of the table.
type Ruleset struct {
	// Workloads are this host's workload endpoints, one per host-side
	// interface. An Applier remembers the rendering of the last slice it
	// was given: given the same slice again (the same array and length),
	// it takes it as unchanged, so a caller never changes a slice it gave.
	Workloads []Endpoint
	// Policies holds every policy and profile that an endpoint refers to,
	// by name. A policy that no endpoint refers to need not be rendered.
	Policies []Policy
	// Sets are named address sets that rules refer to. Every set a rule
	// names is present here, possibly empty.
	Sets []Set
	// PortSets are named sets of (address, protocol, port): the named
	// ports of endpoints, which rules refer to by Match.PortSet.
	PortSets []PortSet
	// EndpointToHost decides traffic from a workload to this host itself,
	// once the workload's egress policy has allowed it (Calico's
	// DefaultEndpointToHostAction; Drop by default).
	EndpointToHost Verdict
	// HostEndpoints put this host's own interfaces under policy: traffic
	// the host receives through one (Ingress) or sends through one
	// (Egress). Forwarded traffic, loopback and traffic between the host
	// and its own workloads are not theirs to decide.
	HostEndpoints []HostEndpoint
	// FailsafeIn and FailsafeOut are always allowed to and from the host
	// once it has any host endpoint, whatever their policy says, so that a
	// wrong policy cannot lock anyone out.
	FailsafeIn, FailsafeOut []ProtoPort
	// NATOutgoing masquerades traffic from these prefixes to destinations
	// outside every prefix of NATExcept (Calico's natOutgoing pools and
	// all pools).
	NATOutgoing, NATExcept []netip.Prefix
}

// HostEndpoint is one of the host's own interfaces, or all of them, and
// the policy in front of it.
type HostEndpoint struct {
	// Iface is an interface name, or "*" for every interface that no other
	// host endpoint names (loopback and workload interfaces excepted).
	Iface string
	// Ingress applies to traffic to the host, Egress to traffic from it.
	Ingress, Egress Path
	// ForwardIngress applies to traffic forwarded in through the
	// interface, ForwardEgress to traffic forwarded out through it
	// (Calico's applyOnForward policies). Forwarded traffic to or from a
	// local workload is left to the workload's policy. A direction with
	// no tiers allows everything.
	ForwardIngress, ForwardEgress Path
	// PreDNAT applies to traffic coming in through the interface before
	// DNAT (Calico's preDNAT policies). An Allow accepts the packet for
	// the host endpoint's later stages; a Deny drops it; a packet that no
	// rule decides goes on. Its tiers always pass at their end; it has no
	// profiles.
	PreDNAT Path
	// UntrackedIngress and UntrackedEgress apply before connection
	// tracking (Calico's doNotTrack policies): an Allow accepts the packet
	// without tracking it (and for every later stage), a Deny drops it, a
	// packet no rule decides goes on. Their tiers always pass at their
	// end; they have no profiles. Not for "*".
	UntrackedIngress, UntrackedEgress Path
}

// AllInterfaces is the Iface of a host endpoint for every interface.
const AllInterfaces = "*"

// ProtoPort is a failsafe port: the destination port of a protocol (TCP,
// UDP or SCTP), from (inbound) or to (outbound) Net, any address when
// Net is the zero Prefix.
type ProtoPort struct {
	Protocol uint8
	Port     uint16
	Net      netip.Prefix
}

// Endpoint is one workload interface and the policy in front of it.
type Endpoint struct {
	// Iface is the host-side interface name, at most 15 bytes (Validate
	// checks): IfacePrefix ("cali") and more for the interfaces the node
	// makes, any other name (but "lo") for an interface something else
	// made, such as a VM's tap (attached.go).
	Iface string
	// Addrs are the only source addresses the workload may send from
	// (anti-spoofing); an interface without addresses of a family may not
	// send that family at all.
	Addrs []netip.Addr
	// MAC, when set, is the only source MAC address the workload may send
	// from (anti-spoofing of a VM's frames; an Ethernet interface).
	MAC net.HardwareAddr
	// Ingress applies to traffic towards the workload, Egress to traffic
	// from it.
	Ingress, Egress Path
}

// Path lists, in order of evaluation, the tiers of policies and then the
// profiles that apply to one endpoint in one direction, by Policy.Name.
//
// The semantics are Calico's: each tier in turn evaluates its policies in
// order; the first Allow accepts, the first Deny drops, a Pass skips the
// rest of the tier and goes on to the next tier. At the end of a tier
// whose policies neither allowed nor passed the packet, it is dropped,
// unless the tier's DefaultPass sends it on to the next tier. After the
// last tier, the profiles, in order: Allow accepts, Deny drops; if no
// profile allowed, the packet is dropped. An empty Path drops everything.
type Path struct {
	Tiers    []Tier
	Profiles []string
}

// Tier is the policies of one tier that apply to an endpoint.
type Tier struct {
	// Name is the tier's, for counters and traces.
	Name     string
	Policies []string
	// DefaultPass goes on to the next tier when no policy of the tier
	// allowed, denied or passed the packet (Calico's defaultAction Pass);
	// otherwise it is dropped.
	DefaultPass bool
}

// Names lists the policies of every tier, then the profiles.
func (p Path) Names() []string {
	var out []string
	for _, t := range p.Tiers {
		out = append(out, t.Policies...)
	}
	return append(out, p.Profiles...)
}

// key identifies the path's content.
func (p Path) key() string {
	n := 1
	for _, t := range p.Tiers {
		n += 2 + len(t.Name)
		for _, name := range t.Policies {
			n += 1 + len(name)
		}
	}
	for _, name := range p.Profiles {
		n += 1 + len(name)
	}
	var b strings.Builder
	b.Grow(n)
	for _, t := range p.Tiers {
		b.WriteByte('\x02')
		b.WriteString(t.Name)
		if t.DefaultPass {
			b.WriteByte('\x03')
		}
		for _, n := range t.Policies {
			b.WriteByte(0)
			b.WriteString(n)
		}
	}
	b.WriteByte('\x01')
	for _, n := range p.Profiles {
		b.WriteByte(0)
		b.WriteString(n)
	}
	return b.String()
}

// all yields the names of the policies and profiles of paths, in order,
// without collecting them.
func all(paths ...Path) iter.Seq[string] {
	return func(yield func(string) bool) {
		for _, p := range paths {
			for _, t := range p.Tiers {
				for _, n := range t.Policies {
					if !yield(n) {
						return
					}
				}
			}
			for _, n := range p.Profiles {
				if !yield(n) {
					return
				}
			}
		}
	}
}

// Policy is a named policy or profile: ordered rules for each direction.
type Policy struct {
	Name    string
	Ingress []Rule
	Egress  []Rule
	// Version names the content of the rules: whoever makes a Policy gives
	// the same name and version only to the same rules (the resource's
	// revision), so that the Applier renders each version once. Empty:
	// render it every time.
	Version string
}

// Action is what a matching rule does.
type Action uint8

const (
	// Allow ends evaluation for this direction and lets the packet through.
	Allow Action = iota + 1
	// Deny drops the packet.
	Deny
	// Pass skips the rest of the policies and goes on to the profiles.
	Pass
	// Log writes the packet to the kernel log with the prefix
	// "calico-packet" (rate limited) and continues with the next rule.
	Log
)

// Verdict is a fixed outcome for traffic a Ruleset does not describe rule
// by rule.
type Verdict uint8

const (
	// Drop discards the packet.
	Drop Verdict = iota
	// Accept lets it through here and now.
	Accept
	// Return leaves the decision to the rest of the host's firewall.
	Return
)

// Rule matches packets on every field that is set (fields are ANDed; the
// elements of one list are ORed) and then applies Action.
type Rule struct {
	Action Action
	// IPVersion limits the rule to IPv4 (4) or IPv6 (6); 0 matches both.
	// A rule whose addresses are all of one family applies to that family
	// only.
	IPVersion int
	// Protocol and NotProtocol are IP protocol numbers (6 TCP, 17 UDP,
	// 1 ICMP, 58 ICMPv6, 132 SCTP, 136 UDPLite); nil matches any.
	Protocol, NotProtocol *uint8
	// ICMP and NotICMP match ICMP (protocol 1) or ICMPv6 (58) type and
	// optionally code; they require Protocol to be one of those.
	ICMP, NotICMP *ICMP
	// Src and Dst match the packet's source and destination.
	Src, Dst Match
}

// ICMP matches an ICMP type and, when Code is set, a code.
type ICMP struct {
	Type uint8
	Code *uint8
}

// Match constrains one end of a packet.
type Match struct {
	// Set and NotSet name Sets the address must (or must not) be in; "" is
	// no constraint.
	Set, NotSet string
	// Nets and NotNets are CIDRs the address must (or must not) be in.
	Nets, NotNets []netip.Prefix
	// Ports and NotPorts are port ranges; they require Protocol to be TCP,
	// UDP, SCTP or UDPLite.
	Ports, NotPorts []PortRange
	// PortSet and NotPortSet name PortSets that the packet's address,
	// protocol and port at this end must (or must not) be in; "" is no
	// constraint. They require no Protocol (the set holds it). With Ports
	// too, PortSet is an alternative to them (Calico's numeric and named
	// ports in one list): the port is in Ports, or in PortSet.
	PortSet, NotPortSet string
}

// PortRange is First..Last inclusive; a single port has First == Last.
type PortRange struct {
	First, Last uint16
}

// Set is a named set of addresses of both families.
type Set struct {
	Name    string
	Members []netip.Addr
	// Nets are whole networks in the set, besides Members (the nets of
	// Calico's network sets). They may overlap each other and Members.
	Nets []netip.Prefix
	// Version names the members as Policy.Version names rules.
	Version string
}

// PortSet is a named set of endpoints' named ports.
type PortSet struct {
	Name    string
	Members []NamedPort
	// Version names the members as Policy.Version names rules.
	Version string
}

// NamedPort is one port of one endpoint address.
type NamedPort struct {
	Addr     netip.Addr
	Protocol uint8 // 6 TCP, 17 UDP, 132 SCTP
	Port     uint16
}

// String is Felix's syntax: protocol:port or protocol:net:port.
func (p ProtoPort) String() string {
	s := protoName(p.Protocol) + ":"
	if p.Net.IsValid() {
		s += p.Net.String() + ":"
	}
	return s + strconv.Itoa(int(p.Port))
}
