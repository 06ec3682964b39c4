package dhcp

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/dhcpv6"
)

var (
	guestMAC = net.HardwareAddr{0x52, 0x54, 0, 0x12, 0x34, 0x56}
	tapMAC   = net.HardwareAddr{0xfe, 0x54, 0, 0x12, 0x34, 0x56}
	guestLL  = netip.MustParseAddr("fe80::5054:ff:fe12:3456")
	tapLL    = netip.MustParseAddr("fe80::fc54:ff:fe12:3456")
)

// testServer serves vnet3 (index 3, the lease of vm1 for guestMAC),
// tap-any (index 4, a lease for any MAC) and eth0 (index 2, no lease).
func testServer(t *testing.T) *Server {
	leases := map[string]Lease{
		"vnet3":   {Iface: "vnet3", Workload: "default/vm1", MAC: guestMAC, IPv4: netip.MustParseAddr("10.65.7.70"), IPv6: netip.MustParseAddr("fd00:65:0:70fa::46"), Attached: true},
		"tap-any": {Iface: "tap-any", Workload: "default/vm2", IPv4: netip.MustParseAddr("10.65.7.71")},
	}
	s := New(Config{Leases: func() map[string]Lease { return leases }, DNS: []netip.Addr{netip.MustParseAddr("10.0.0.53"), netip.MustParseAddr("fd00::53")},
		Domain: "lab.example", Name: "host1"})
	names := map[int]string{2: "eth0", 3: "vnet3", 4: "tap-any"}
	s.iface = func(i int, name string) (ifaceInfo, error) {
		for j, n := range names {
			if i == 0 && n == name {
				i = j
			}
		}
		if names[i] == "" {
			return ifaceInfo{}, fmt.Errorf("no interface %d", i)
		}
		return ifaceInfo{Name: names[i], Index: i, MAC: tapMAC, MTU: 1400, LinkLocal: tapLL}, nil
	}
	return s
}

// discover is a DHCPDISCOVER frame from mac.
func discover(t *testing.T, mac net.HardwareAddr, mods ...dhcpv4.Modifier) []byte {
	d, err := dhcpv4.NewDiscovery(mac, mods...)
	if err != nil {
		t.Fatal(err)
	}
	return frame4(mac, d)
}

func frame4(mac net.HardwareAddr, d *dhcpv4.DHCPv4) []byte {
	return udpFrame(broadcastMAC, mac, netip.IPv4Unspecified(), netip.AddrFrom4([4]byte{255, 255, 255, 255}), 68, 67, d.ToBytes())
}

// reply4 checks one answer frame's headers and decodes it.
func reply4(t *testing.T, out [][]byte) (*packet, *dhcpv4.DHCPv4) {
	t.Helper()
	if len(out) != 1 {
		t.Fatalf("got %d frames, want 1", len(out))
	}
	p, err := parseFrame(out[0])
	if err != nil {
		t.Fatal(err)
	}
	checkSums(t, out[0])
	if p.src != Gateway || p.srcPort != 67 || p.dstPort != 68 || !bytes.Equal(out[0][6:12], tapMAC) {
		t.Errorf("reply from %s:%d to :%d, MAC %x", p.src, p.srcPort, p.dstPort, out[0][6:12])
	}
	d, err := dhcpv4.FromBytes(p.payload)
	if err != nil {
		t.Fatal(err)
	}
	return p, d
}

// checkSums checks the IPv4 header checksum and the UDP or ICMPv6
// checksum of a frame: summed with their checksums they come to zero.
func checkSums(t *testing.T, f []byte) {
	t.Helper()
	p, _ := parseFrame(f)
	var body []byte
	if p.src.Is4() {
		if checksum(nil, f[14:34]) != 0 {
			t.Errorf("bad IPv4 header checksum")
		}
		body = f[34:]
	} else {
		body = f[54:]
	}
	if checksum(pseudoHeader(p.src, p.dst, p.proto, len(body)), body) != 0 {
		t.Errorf("bad %d checksum", p.proto)
	}
}

func TestDHCPv4(t *testing.T) {
	s := testServer(t)
	p, offer := reply4(t, s.handle(3, discover(t, guestMAC)))
	if offer.MessageType() != dhcpv4.MessageTypeOffer || !offer.YourIPAddr.Equal(net.ParseIP("10.65.7.70")) {
		t.Fatalf("offer: %s", offer.Summary())
	}
	if !bytes.Equal(p.srcMAC, tapMAC) || p.dst != netip.MustParseAddr("10.65.7.70") {
		t.Errorf("offer sent to %s", p.dst)
	}
	checkOptions(t, offer)

	req, err := dhcpv4.NewRequestFromOffer(offer)
	if err != nil {
		t.Fatal(err)
	}
	_, ack := reply4(t, s.handle(3, frame4(guestMAC, req)))
	if ack.MessageType() != dhcpv4.MessageTypeAck || !ack.YourIPAddr.Equal(net.ParseIP("10.65.7.70")) {
		t.Fatalf("ack: %s", ack.Summary())
	}
	checkOptions(t, ack)

	// A renewal: unicast from the address, answered to it.
	renew, _ := dhcpv4.NewRenewFromAck(ack)
	p, ack = reply4(t, s.handle(3, frame4(guestMAC, renew)))
	if ack.MessageType() != dhcpv4.MessageTypeAck || p.dst != netip.MustParseAddr("10.65.7.70") {
		t.Errorf("renewal answered %s to %s", ack.MessageType(), p.dst)
	}
	// Another address asked for: a NAK, broadcast.
	other, _ := dhcpv4.NewRequestFromOffer(offer, dhcpv4.WithOption(dhcpv4.OptRequestedIPAddress(net.ParseIP("10.65.7.99"))))
	p, nak := reply4(t, s.handle(3, frame4(guestMAC, other)))
	if nak.MessageType() != dhcpv4.MessageTypeNak || p.dst != netip.MustParseAddr("255.255.255.255") {
		t.Errorf("a request for another address: %s to %s", nak.MessageType(), p.dst)
	}
	// A request to another server is not ours to answer.
	theirs, _ := dhcpv4.NewRequestFromOffer(offer, dhcpv4.WithOption(dhcpv4.OptServerIdentifier(net.ParseIP("10.0.0.1"))))
	if out := s.handle(3, frame4(guestMAC, theirs)); len(out) != 0 {
		t.Errorf("a request for another server was answered")
	}
}

func checkOptions(t *testing.T, d *dhcpv4.DHCPv4) {
	t.Helper()
	routes := fmt.Sprint(d.ClasslessStaticRoute())
	mtu := d.Options.Get(dhcpv4.OptionInterfaceMTU)
	switch {
	case d.SubnetMask().String() != "ffffffff":
		t.Errorf("mask %s", d.SubnetMask())
	case !d.ServerIdentifier().Equal(net.ParseIP("169.254.1.1")) || len(d.Router()) != 1 || !d.Router()[0].Equal(net.ParseIP("169.254.1.1")):
		t.Errorf("server %s, routers %v", d.ServerIdentifier(), d.Router())
	case routes != "[route to 169.254.1.1/32 via 0.0.0.0 route to 0.0.0.0/0 via 169.254.1.1]":
		t.Errorf("classless static routes %s", routes)
	case len(mtu) != 2 || binary.BigEndian.Uint16(mtu) != 1400:
		t.Errorf("MTU option %x", mtu)
	case fmt.Sprint(d.DNS()) != "[10.0.0.53]" || d.DomainName() != "lab.example":
		t.Errorf("DNS %v, domain %q", d.DNS(), d.DomainName())
	case d.IPAddressLeaseTime(0) != time.Hour:
		t.Errorf("lease %s", d.IPAddressLeaseTime(0))
	}
}

func TestDHCPv4Ignores(t *testing.T) {
	s := testServer(t)
	stranger := net.HardwareAddr{0x52, 0x54, 0, 0, 0, 9}
	for name, out := range map[string][][]byte{
		"an unknown MAC":          s.handle(3, discover(t, stranger)),
		"chaddr not the frame's":  s.handle(3, frame4(guestMAC, mustDiscover(t, stranger))),
		"not a workload's":        s.handle(2, discover(t, guestMAC)),
		"an unknown interface":    s.handle(9, discover(t, guestMAC)),
		"a short frame":           s.handle(3, discover(t, guestMAC)[:40]),
		"a release":               s.handle(3, discover(t, guestMAC, dhcpv4.WithMessageType(dhcpv4.MessageTypeRelease))),
		"a reply (from a server)": s.handle(3, frame4(guestMAC, mustReply(t))),
	} {
		if len(out) != 0 {
			t.Errorf("%s was answered", name)
		}
	}
	// Without a MAC in the lease, any client is answered.
	if _, d := reply4(t, s.handle(4, discover(t, stranger))); !d.YourIPAddr.Equal(net.ParseIP("10.65.7.71")) {
		t.Errorf("tap-any offered %s", d.YourIPAddr)
	}
}

func mustDiscover(t *testing.T, mac net.HardwareAddr) *dhcpv4.DHCPv4 {
	d, err := dhcpv4.NewDiscovery(mac)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func mustReply(t *testing.T) *dhcpv4.DHCPv4 {
	d := mustDiscover(t, guestMAC)
	d.OpCode = dhcpv4.OpcodeBootReply
	return d
}

func frame6(msg *dhcpv6.Message) []byte {
	return udpFrame(multicastMAC(netip.MustParseAddr("ff02::1:2")), guestMAC, guestLL, netip.MustParseAddr("ff02::1:2"), 546, 547, msg.ToBytes())
}

func reply6(t *testing.T, out [][]byte) *dhcpv6.Message {
	t.Helper()
	if len(out) != 1 {
		t.Fatalf("got %d frames, want 1", len(out))
	}
	checkSums(t, out[0])
	p, _ := parseFrame(out[0])
	if p.src != tapLL || p.dst != guestLL || p.dstPort != 546 || !bytes.Equal(out[0][0:6], guestMAC) {
		t.Errorf("reply from %s to %s:%d", p.src, p.dst, p.dstPort)
	}
	m, err := dhcpv6.MessageFromBytes(p.payload)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestDHCPv6(t *testing.T) {
	s := testServer(t)
	sol, err := dhcpv6.NewSolicit(guestMAC)
	if err != nil {
		t.Fatal(err)
	}
	adv := reply6(t, s.handle(3, frame6(sol)))
	ia := adv.Options.OneIANA()
	if adv.Type() != dhcpv6.MessageTypeAdvertise || ia == nil || ia.Options.OneAddress() == nil ||
		!ia.Options.OneAddress().IPv6Addr.Equal(net.ParseIP("fd00:65:0:70fa::46")) {
		t.Fatalf("advertise: %s", adv.Summary())
	}
	if fmt.Sprint(adv.Options.DNS()) != "[fd00::53]" {
		t.Errorf("DNS %v", adv.Options.DNS())
	}
	req, err := dhcpv6.NewRequestFromAdvertise(adv)
	if err != nil {
		t.Fatal(err)
	}
	rep := reply6(t, s.handle(3, frame6(req)))
	if rep.Type() != dhcpv6.MessageTypeReply || rep.Options.OneIANA() == nil || rep.Options.OneIANA().IaId != sol.Options.OneIANA().IaId {
		t.Errorf("reply: %s", rep.Summary())
	}
	// Rapid commit: a reply at once.
	rapid, _ := dhcpv6.NewSolicit(guestMAC, dhcpv6.WithRapidCommit)
	if r := reply6(t, s.handle(3, frame6(rapid))); r.Type() != dhcpv6.MessageTypeReply {
		t.Errorf("rapid commit answered %s", r.Type())
	}
	// A request for another server.
	other, _ := dhcpv6.NewRequestFromAdvertise(adv, dhcpv6.WithServerID(&dhcpv6.DUIDLL{LinkLayerAddr: guestMAC}))
	if out := s.handle(3, frame6(other)); len(out) != 0 {
		t.Errorf("a request for another server was answered")
	}
}

func TestRouterAdvertisement(t *testing.T) {
	s := testServer(t)
	rs := icmpFrame(multicastMAC(netip.MustParseAddr("ff02::2")), guestMAC, guestLL, netip.MustParseAddr("ff02::2"), []byte{133, 0, 0, 0, 0, 0, 0, 0})
	out := s.handle(3, rs)
	if len(out) != 1 {
		t.Fatalf("%d answers to a router solicitation", len(out))
	}
	checkSums(t, out[0])
	p, _ := parseFrame(out[0])
	ra := p.payload
	switch {
	case p.src != tapLL || p.dst != allNodes || out[0][21] != 255:
		t.Errorf("advertisement from %s to %s, hop limit %d", p.src, p.dst, out[0][21])
	case ra[0] != 134 || ra[5] != 0xc0 || binary.BigEndian.Uint16(ra[6:8]) != 1800:
		t.Errorf("advertisement header %x", ra[:16])
	case !bytes.Contains(ra, append([]byte{1, 1}, tapMAC...)):
		t.Errorf("no source link-layer address: %x", ra)
	case !bytes.Contains(ra, []byte{5, 1, 0, 0, 0, 0, 0x05, 0x78}):
		t.Errorf("no MTU 1400: %x", ra)
	case !bytes.Contains(ra, netip.MustParseAddr("fd00::53").AsSlice()):
		t.Errorf("no RDNSS: %x", ra)
	}
	// No IPv6 address, no advertisement: the guest gets no IPv6 route.
	if out := s.handle(4, rs); len(out) != 0 {
		t.Errorf("an IPv4-only workload got an advertisement")
	}
}

func FuzzHandle(f *testing.F) {
	d, _ := dhcpv4.NewDiscovery(guestMAC)
	f.Add(frame4(guestMAC, d))
	sol, _ := dhcpv6.NewSolicit(guestMAC)
	f.Add(frame6(sol))
	f.Fuzz(func(t *testing.T, b []byte) {
		s := testServer(t)
		for _, out := range s.handle(3, b) {
			if _, err := parseFrame(out); err != nil {
				t.Errorf("an answer that does not parse: %v", err)
			}
		}
	})
}

// Frames that are no request (which the sockets' filters should keep
// out, but a socket sees before its filter is attached) cost no lookup
// of the interface or the leases: each lookup lists every interface.
func TestNoLookupForWhatIsNoRequest(t *testing.T) {
	s := testServer(t)
	lookups := 0
	iface, leases := s.iface, s.cfg.Leases
	s.iface = func(i int, name string) (ifaceInfo, error) { lookups++; return iface(i, name) }
	s.cfg.Leases = func() map[string]Lease { lookups++; return leases() }
	v4, v6 := netip.MustParseAddr("10.65.7.70"), netip.MustParseAddr("fd00:65:0:70fa::46")
	echo := []byte{128, 0, 0, 0, 0, 1, 0, 1}
	for name, f := range map[string][]byte{
		"UDP to port 53":             udpFrame(tapMAC, guestMAC, v4, netip.MustParseAddr("10.0.0.53"), 40000, 53, []byte("query")),
		"UDP from the DHCPv4 server": udpFrame(guestMAC, tapMAC, v4, netip.MustParseAddr("10.65.7.1"), 67, 68, []byte("offer")),
		"UDP over IPv6 to port 8080": udpFrame(tapMAC, guestMAC, v6, netip.MustParseAddr("fd00::1"), 40000, 8080, []byte("x")),
		"an ICMPv6 echo request":     icmpFrame(tapMAC, guestMAC, v6, netip.MustParseAddr("fd00::1"), echo),
	} {
		if out := s.handle(3, f); len(out) != 0 {
			t.Errorf("%s was answered", name)
		}
	}
	if lookups != 0 {
		t.Errorf("%d lookups of interfaces or leases for frames that are no request", lookups)
	}
	if out := s.handle(3, discover(t, guestMAC)); len(out) != 1 || lookups == 0 {
		t.Errorf("a discover: %d answers, %d lookups", len(out), lookups)
	}
	// The interface is remembered: a second request looks up the
	// leases only.
	lookups = 0
	if out := s.handle(3, discover(t, guestMAC)); len(out) != 1 || lookups != 1 {
		t.Errorf("a second discover: %d answers, %d lookups (want 1, the leases)", len(out), lookups)
	}
}
