package dhcp

import (
	"encoding/binary"
	"errors"
	"net"
	"net/netip"
)

// The server reads and writes whole Ethernet frames (a packet socket):
// the host side of a workload interface has no IPv4 address, and a
// guest without an address yet can only be answered frame by frame.

// Ethernet types and IP protocols the server handles.
const (
	etherIPv4 = 0x0800
	etherIPv6 = 0x86dd
	protoUDP  = 17
	protoICMP = 58

	portDHCP4Server, portDHCP4Client = 67, 68
	portDHCP6Server, portDHCP6Client = 547, 546

	icmpRouterSolicit, icmpRouterAdvert = 133, 134
)

// packet is what the server needs of a received frame.
type packet struct {
	srcMAC   net.HardwareAddr
	src, dst netip.Addr
	// proto is UDP or ICMPv6; srcPort and dstPort are UDP's.
	proto            uint8
	srcPort, dstPort uint16
	// payload is the UDP payload or the ICMPv6 message (type first).
	payload []byte
}

var errShort = errors.New("frame too short")

// parseFrame reads an Ethernet frame carrying IPv4 UDP, IPv6 UDP or
// ICMPv6 (no IPv6 extension headers). It checks every length it uses.
func parseFrame(f []byte) (*packet, error) {
	if len(f) < 14 {
		return nil, errShort
	}
	p := &packet{srcMAC: net.HardwareAddr(append([]byte(nil), f[6:12]...))}
	switch binary.BigEndian.Uint16(f[12:14]) {
	case etherIPv4:
		return p, p.parseIPv4(f[14:])
	case etherIPv6:
		return p, p.parseIPv6(f[14:])
	}
	return nil, errors.New("neither IPv4 nor IPv6")
}

func (p *packet) parseIPv4(b []byte) error {
	if len(b) < 20 || b[0]>>4 != 4 {
		return errShort
	}
	ihl := int(b[0]&0x0f) * 4
	total := int(binary.BigEndian.Uint16(b[2:4]))
	if ihl < 20 || total < ihl || total > len(b) {
		return errors.New("bad IPv4 header")
	}
	if binary.BigEndian.Uint16(b[6:8])&0x3fff != 0 {
		return errors.New("an IPv4 fragment")
	}
	p.proto = b[9]
	p.src = netip.AddrFrom4([4]byte(b[12:16]))
	p.dst = netip.AddrFrom4([4]byte(b[16:20]))
	if p.proto != protoUDP {
		return errors.New("not UDP")
	}
	return p.parseUDP(b[ihl:total])
}

func (p *packet) parseIPv6(b []byte) error {
	if len(b) < 40 || b[0]>>4 != 6 {
		return errShort
	}
	n := int(binary.BigEndian.Uint16(b[4:6]))
	if 40+n > len(b) {
		return errors.New("bad IPv6 payload length")
	}
	p.proto = b[6]
	p.src = netip.AddrFrom16([16]byte(b[8:24]))
	p.dst = netip.AddrFrom16([16]byte(b[24:40]))
	body := b[40 : 40+n]
	switch p.proto {
	case protoUDP:
		return p.parseUDP(body)
	case protoICMP:
		if len(body) < 4 {
			return errShort
		}
		p.payload = body
		return nil
	}
	return errors.New("neither UDP nor ICMPv6")
}

// request says whether p is what the server answers: DHCPv4 or DHCPv6
// to the server's port, or an ICMPv6 router solicitation.
func (p *packet) request() bool {
	switch {
	case p.src.Is4() && p.proto == protoUDP:
		return p.dstPort == portDHCP4Server
	case p.src.Is6() && p.proto == protoUDP:
		return p.dstPort == portDHCP6Server
	case p.src.Is6() && p.proto == protoICMP:
		return len(p.payload) > 0 && p.payload[0] == icmpRouterSolicit
	}
	return false
}

func (p *packet) parseUDP(b []byte) error {
	if len(b) < 8 {
		return errShort
	}
	n := int(binary.BigEndian.Uint16(b[4:6]))
	if n < 8 || n > len(b) {
		return errors.New("bad UDP length")
	}
	p.srcPort = binary.BigEndian.Uint16(b[0:2])
	p.dstPort = binary.BigEndian.Uint16(b[2:4])
	p.payload = b[8:n]
	return nil
}

// udpFrame builds an Ethernet frame of one UDP datagram.
func udpFrame(dstMAC, srcMAC net.HardwareAddr, src, dst netip.Addr, srcPort, dstPort uint16, payload []byte) []byte {
	udp := make([]byte, 8+len(payload))
	binary.BigEndian.PutUint16(udp[0:2], srcPort)
	binary.BigEndian.PutUint16(udp[2:4], dstPort)
	binary.BigEndian.PutUint16(udp[4:6], uint16(len(udp)))
	copy(udp[8:], payload)
	sum := checksum(pseudoHeader(src, dst, protoUDP, len(udp)), udp)
	if sum == 0 {
		sum = 0xffff
	}
	binary.BigEndian.PutUint16(udp[6:8], sum)
	return ipFrame(dstMAC, srcMAC, src, dst, protoUDP, 64, udp)
}

// icmpFrame builds an Ethernet frame of one ICMPv6 message (its
// checksum field zero), with the hop limit neighbour discovery needs.
func icmpFrame(dstMAC, srcMAC net.HardwareAddr, src, dst netip.Addr, msg []byte) []byte {
	msg = append([]byte(nil), msg...)
	binary.BigEndian.PutUint16(msg[2:4], checksum(pseudoHeader(src, dst, protoICMP, len(msg)), msg))
	return ipFrame(dstMAC, srcMAC, src, dst, protoICMP, 255, msg)
}

func ipFrame(dstMAC, srcMAC net.HardwareAddr, src, dst netip.Addr, proto uint8, ttl uint8, body []byte) []byte {
	f := make([]byte, 14, 14+40+len(body))
	copy(f[0:6], dstMAC)
	copy(f[6:12], srcMAC)
	if src.Is4() {
		binary.BigEndian.PutUint16(f[12:14], etherIPv4)
		h := make([]byte, 20)
		h[0] = 0x45
		binary.BigEndian.PutUint16(h[2:4], uint16(20+len(body)))
		h[8], h[9] = ttl, proto
		s, d := src.As4(), dst.As4()
		copy(h[12:16], s[:])
		copy(h[16:20], d[:])
		binary.BigEndian.PutUint16(h[10:12], checksum(nil, h))
		f = append(f, h...)
	} else {
		binary.BigEndian.PutUint16(f[12:14], etherIPv6)
		h := make([]byte, 40)
		h[0] = 0x60
		binary.BigEndian.PutUint16(h[4:6], uint16(len(body)))
		h[6], h[7] = proto, ttl
		s, d := src.As16(), dst.As16()
		copy(h[8:24], s[:])
		copy(h[24:40], d[:])
		f = append(f, h...)
	}
	return append(f, body...)
}

// pseudoHeader is the part of the IP header that UDP and ICMPv6
// checksums cover.
func pseudoHeader(src, dst netip.Addr, proto uint8, n int) []byte {
	var b []byte
	b = append(b, src.AsSlice()...)
	b = append(b, dst.AsSlice()...)
	if src.Is4() {
		return append(b, 0, proto, byte(n>>8), byte(n))
	}
	return append(b, byte(n>>24), byte(n>>16), byte(n>>8), byte(n), 0, 0, 0, proto)
}

// checksum is the Internet checksum of a and b, one after the other (a
// has an even length).
func checksum(a, b []byte) uint16 {
	var sum uint32
	for _, buf := range [][]byte{a, b} {
		for i := 0; i+1 < len(buf); i += 2 {
			sum += uint32(buf[i])<<8 | uint32(buf[i+1])
		}
		if len(buf)%2 == 1 {
			sum += uint32(buf[len(buf)-1]) << 8
		}
	}
	for sum > 0xffff {
		sum = sum&0xffff + sum>>16
	}
	return ^uint16(sum)
}

// multicastMAC is the Ethernet address of an IPv6 multicast group.
func multicastMAC(group netip.Addr) net.HardwareAddr {
	g := group.As16()
	return net.HardwareAddr{0x33, 0x33, g[12], g[13], g[14], g[15]}
}
