package dhcp

import (
	"net"
	"net/netip"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/rfc1035label"
)

var broadcastMAC = net.HardwareAddr{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}

// dhcp4 answers a DHCPv4 request with the lease's address: an offer to a
// discover, an ack to a request for the lease's address (a nak to a
// request for another), an ack without an address to an inform.
func (s *Server) dhcp4(l Lease, in ifaceInfo, p *packet) []byte {
	req, err := dhcpv4.FromBytes(p.payload)
	if err != nil || req.OpCode != dhcpv4.OpcodeBootRequest || !l.IPv4.IsValid() {
		return nil
	}
	if l.MAC != nil && req.ClientHWAddr.String() != l.MAC.String() {
		return nil
	}
	addr := l.IPv4.AsSlice()
	var typ dhcpv4.MessageType
	switch req.MessageType() {
	case dhcpv4.MessageTypeDiscover:
		typ = dhcpv4.MessageTypeOffer
	case dhcpv4.MessageTypeRequest:
		if sid := req.ServerIdentifier(); sid != nil && !sid.Equal(Gateway.AsSlice()) {
			return nil // the client chose another server
		}
		want := req.RequestedIPAddress()
		if want == nil || want.IsUnspecified() {
			want = req.ClientIPAddr
		}
		typ = dhcpv4.MessageTypeAck
		if !want.Equal(addr) {
			typ = dhcpv4.MessageTypeNak
		}
	case dhcpv4.MessageTypeInform:
		typ, addr = dhcpv4.MessageTypeAck, nil
	default: // release, decline: the address stays the workload's
		s.log.Debug("DHCPv4 message ignored", "type", req.MessageType(), "iface", in.Name)
		return nil
	}
	reply, err := dhcpv4.NewReplyFromRequest(req, s.options4(typ, addr, in)...)
	if err != nil {
		return nil
	}
	s.logLease("DHCPv4", typ.String(), l, in, p.srcMAC, req.ClientIPAddr.IsUnspecified())
	dstMAC, dst := p.srcMAC, netip.IPv4Unspecified()
	switch {
	case typ == dhcpv4.MessageTypeNak || req.IsBroadcast():
		dstMAC, dst = broadcastMAC, netip.AddrFrom4([4]byte{255, 255, 255, 255})
	case !req.ClientIPAddr.IsUnspecified():
		dst, _ = netip.AddrFromSlice(req.ClientIPAddr.To4())
	default:
		dst = l.IPv4
	}
	return udpFrame(dstMAC, in.MAC, Gateway, dst, portDHCP4Server, portDHCP4Client, reply.ToBytes())
}

// options4 are the reply's fields and options: for an offer or ack, the
// address as a /32, the gateway by a classless static route (and as the
// router, for clients without one), the lease times, DNS and the MTU.
func (s *Server) options4(typ dhcpv4.MessageType, addr net.IP, in ifaceInfo) []dhcpv4.Modifier {
	gw := Gateway.AsSlice()
	mods := []dhcpv4.Modifier{
		dhcpv4.WithMessageType(typ),
		dhcpv4.WithOption(dhcpv4.OptServerIdentifier(gw)),
	}
	if typ == dhcpv4.MessageTypeNak {
		return append(mods, dhcpv4.WithOption(dhcpv4.OptMessage("the address asked for is not this workload's")))
	}
	if addr != nil {
		t := s.cfg.LeaseTime
		mods = append(mods, dhcpv4.WithYourIP(addr),
			dhcpv4.WithOption(dhcpv4.OptIPAddressLeaseTime(t)),
			dhcpv4.WithOption(dhcpv4.OptRenewTimeValue(t/2)),
			dhcpv4.WithOption(dhcpv4.OptRebindingTimeValue(t*7/8)))
	}
	mods = append(mods,
		dhcpv4.WithNetmask(net.CIDRMask(32, 32)),
		dhcpv4.WithRouter(gw),
		dhcpv4.WithOption(dhcpv4.OptClasslessStaticRoute(
			&dhcpv4.Route{Dest: &net.IPNet{IP: gw, Mask: net.CIDRMask(32, 32)}, Router: net.IPv4zero},
			&dhcpv4.Route{Dest: &net.IPNet{IP: net.IPv4zero, Mask: net.CIDRMask(0, 32)}, Router: gw})))
	if in.MTU > 0 {
		mods = append(mods, dhcpv4.WithGeneric(dhcpv4.OptionInterfaceMTU, []byte{byte(in.MTU >> 8), byte(in.MTU)}))
	}
	var dns []net.IP
	for _, a := range s.cfg.DNS {
		if a.Is4() {
			dns = append(dns, a.AsSlice())
		}
	}
	if len(dns) > 0 {
		mods = append(mods, dhcpv4.WithDNS(dns...))
	}
	if d := s.cfg.Domain; d != "" {
		mods = append(mods, dhcpv4.WithOption(dhcpv4.OptDomainName(d)),
			dhcpv4.WithOption(dhcpv4.OptDomainSearch(&rfc1035label.Labels{Labels: []string{d}})))
	}
	return mods
}

// logLease logs an answer: a new binding at info level, the rest (offers,
// renewals, naks) at debug level.
func (s *Server) logLease(proto, what string, l Lease, in ifaceInfo, mac net.HardwareAddr, bind bool) {
	args := []any{"iface", in.Name, "workload", l.Workload, "mac", mac.String(), "ipv4", l.IPv4, "ipv6", l.IPv6}
	if bind && (what == "ACK" || what == "REPLY") {
		s.log.Info(proto+" lease given", args...)
		return
	}
	s.log.Debug(proto+" "+what, append(args, "at", time.Now())...)
}
