package dhcp

import (
	"encoding/binary"
	"net"
	"net/netip"

	"github.com/insomniacslk/dhcp/dhcpv6"
	"github.com/insomniacslk/dhcp/iana"
)

var allNodes = netip.MustParseAddr("ff02::1")

// dhcp6 answers a DHCPv6 message with the lease's /128: an advertise to a
// solicit (a reply when it asks for rapid commit), a reply to a request,
// renew, rebind or confirm, and to an information request (DNS only).
func (s *Server) dhcp6(l Lease, in ifaceInfo, p *packet) []byte {
	if !in.LinkLocal.IsValid() {
		return nil // no address to answer from
	}
	msg, err := dhcpv6.MessageFromBytes(p.payload)
	if err != nil {
		return nil
	}
	if sid := msg.Options.ServerID(); sid != nil && !sid.Equal(s.duid) {
		return nil // for another server
	}
	var reply *dhcpv6.Message
	switch msg.Type() {
	case dhcpv6.MessageTypeSolicit:
		if msg.GetOneOption(dhcpv6.OptionRapidCommit) != nil {
			reply, err = dhcpv6.NewReplyFromMessage(msg, s.options6(l, msg, true)...)
		} else {
			reply, err = dhcpv6.NewAdvertiseFromSolicit(msg, s.options6(l, msg, true)...)
		}
	case dhcpv6.MessageTypeRequest, dhcpv6.MessageTypeRenew, dhcpv6.MessageTypeRebind, dhcpv6.MessageTypeConfirm:
		reply, err = dhcpv6.NewReplyFromMessage(msg, s.options6(l, msg, true)...)
	case dhcpv6.MessageTypeInformationRequest, dhcpv6.MessageTypeRelease, dhcpv6.MessageTypeDecline:
		reply, err = dhcpv6.NewReplyFromMessage(msg, s.options6(l, msg, false)...)
	default:
		return nil
	}
	if err != nil {
		return nil
	}
	s.logLease("DHCPv6", reply.Type().String(), l, in, p.srcMAC, msg.Type() == dhcpv6.MessageTypeRequest)
	return udpFrame(p.srcMAC, in.MAC, in.LinkLocal, p.src, portDHCP6Server, portDHCP6Client, reply.ToBytes())
}

// options6 are a reply's options: the server's id, the address (when the
// client asked for one, in its IA_NA) and DNS.
func (s *Server) options6(l Lease, msg *dhcpv6.Message, address bool) []dhcpv6.Modifier {
	mods := []dhcpv6.Modifier{dhcpv6.WithServerID(s.duid)}
	if ia := msg.Options.OneIANA(); address && ia != nil {
		t := s.cfg.LeaseTime
		reply := &dhcpv6.OptIANA{IaId: ia.IaId, T1: t / 2, T2: t * 4 / 5}
		if l.IPv6.IsValid() {
			reply.Options.Add(&dhcpv6.OptIAAddress{IPv6Addr: l.IPv6.AsSlice(), PreferredLifetime: t, ValidLifetime: t})
		} else {
			reply.Options.Add(&dhcpv6.OptStatusCode{StatusCode: iana.StatusNoAddrsAvail, StatusMessage: "this workload has no IPv6 address"})
		}
		mods = append(mods, dhcpv6.WithOption(reply))
	}
	var dns []net.IP
	for _, a := range s.cfg.DNS {
		if a.Is6() {
			dns = append(dns, a.AsSlice())
		}
	}
	if len(dns) > 0 {
		mods = append(mods, dhcpv6.WithDNS(dns...))
	}
	if s.cfg.Domain != "" {
		mods = append(mods, dhcpv6.WithDomainSearchList(s.cfg.Domain))
	}
	return mods
}

// routerAdvert is a router advertisement to all nodes on the interface,
// from its link-local address: managed (addresses by DHCPv6, no prefix
// to autoconfigure), the interface as default router, its MTU, and the
// IPv6 DNS servers. None for a workload without an IPv6 address.
func (s *Server) routerAdvert(l Lease, in ifaceInfo) []byte {
	if !in.LinkLocal.IsValid() || !l.IPv6.IsValid() || len(in.MAC) != 6 {
		return nil
	}
	lifetime := uint16(3 * raInterval.Seconds())
	msg := []byte{icmpRouterAdvert, 0, 0, 0, 64, 0xc0, byte(lifetime >> 8), byte(lifetime), 0, 0, 0, 0, 0, 0, 0, 0}
	msg = append(msg, 1, 1) // source link-layer address
	msg = append(msg, in.MAC...)
	if in.MTU > 0 {
		msg = append(msg, 5, 1, 0, 0)
		msg = binary.BigEndian.AppendUint32(msg, uint32(in.MTU))
	}
	var dns []netip.Addr
	for _, a := range s.cfg.DNS {
		if a.Is6() {
			dns = append(dns, a)
		}
	}
	if len(dns) > 0 { // RDNSS (RFC 8106)
		msg = append(msg, 25, byte(1+2*len(dns)), 0, 0)
		msg = binary.BigEndian.AppendUint32(msg, uint32(lifetime))
		for _, a := range dns {
			msg = append(msg, a.AsSlice()...)
		}
	}
	return icmpFrame(multicastMAC(allNodes), in.MAC, in.LinkLocal, allNodes, msg)
}
