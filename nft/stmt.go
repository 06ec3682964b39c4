package nft

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"strconv"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"
)

// stmt is one match or statement of a rule. appendText appends its nft
// syntax (for dumps and the content hash), exprs gives its netlink
// expressions.
type stmt interface {
	appendText(b []byte) []byte
	exprs(b anonSets) []expr.Any
}

// Mark bits, inside Felix's default mask 0xffff0000. Only these three
// are ever set or cleared. Accept and Pass carry a policy's verdict back
// to its group chain; Early says that a host endpoint's untracked or
// pre-DNAT policy allowed the packet, which its later stages then accept
// (Felix uses its Accept bit for both).
const (
	markAccept uint32 = 0x10000
	markPass   uint32 = 0x20000
	markEarly  uint32 = 0x40000
)

// Registers: reg 1 is the 16-byte register NFT_REG_1; an address that
// follows an interface name in a concatenation goes to NFT_REG32_04, the
// first 4-byte register after it.
const (
	reg1      = unix.NFT_REG_1
	regConcat = unix.NFT_REG32_00 + 4
)

// family is an IP family of a rule: 4, 6, or 0 for a rule that matches
// both with one kernel rule.
type family uint8

func (f family) l3() string {
	if f == 6 {
		return "ip6"
	}
	return "ip"
}

func (f family) addrOffset(dst bool) uint32 {
	switch {
	case f == 4 && dst:
		return 16
	case f == 4:
		return 12
	case dst:
		return 24
	}
	return 8
}

func (f family) addrLen() uint32 {
	if f == 6 {
		return 16
	}
	return 4
}

func (f family) addrType() nftables.SetDatatype {
	if f == 6 {
		return nftables.TypeIP6Addr
	}
	return nftables.TypeIPAddr
}

func direction(dst bool) string {
	if dst {
		return "daddr"
	}
	return "saddr"
}

func native(v uint32) []byte { return binaryutil.NativeEndian.PutUint32(v) }

// nfproto: meta nfproto ipv4|ipv6.
type nfproto struct{ fam family }

func (s nfproto) appendText(b []byte) []byte {
	if s.fam == 6 {
		return append(b, "meta nfproto ipv6"...)
	}
	return append(b, "meta nfproto ipv4"...)
}

func (s nfproto) exprs(anonSets) []expr.Any {
	p := byte(unix.NFPROTO_IPV4)
	if s.fam == 6 {
		p = unix.NFPROTO_IPV6
	}
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKeyNFPROTO, Register: reg1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: reg1, Data: []byte{p}},
	}
}

// l4proto: meta l4proto [!=] P.
type l4proto struct {
	proto uint8
	neg   bool
}

var protoNames = map[uint8]string{1: "icmp", 6: "tcp", 17: "udp", 58: "ipv6-icmp", 132: "sctp", 136: "udplite"}

func protoName(p uint8) string {
	if n, ok := protoNames[p]; ok {
		return n
	}
	return strconv.Itoa(int(p))
}

func (s l4proto) appendText(b []byte) []byte {
	return append(append(append(b, "meta l4proto "...), neg(s.neg)...), protoName(s.proto)...)
}

func (s l4proto) exprs(anonSets) []expr.Any {
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: reg1},
		&expr.Cmp{Op: cmpOp(s.neg), Register: reg1, Data: []byte{s.proto}},
	}
}

func neg(n bool) string {
	if n {
		return "!= "
	}
	return ""
}

func cmpOp(n bool) expr.CmpOp {
	if n {
		return expr.CmpOpNeq
	}
	return expr.CmpOpEq
}

// ifacePrefix: iifname|oifname "prefix*".
type ifacePrefix struct {
	out    bool
	prefix string
}

func ifnameKey(out bool) (string, expr.MetaKey) {
	if out {
		return "oifname", expr.MetaKeyOIFNAME
	}
	return "iifname", expr.MetaKeyIIFNAME
}

func (s ifacePrefix) appendText(b []byte) []byte {
	n, _ := ifnameKey(s.out)
	return strconv.AppendQuote(append(b, n+" "...), s.prefix+"*")
}

func (s ifacePrefix) exprs(anonSets) []expr.Any {
	_, k := ifnameKey(s.out)
	// cmp compares only len(Data) bytes: a prefix match, as nft does for
	// a trailing wildcard.
	return []expr.Any{
		&expr.Meta{Key: k, Register: reg1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: reg1, Data: []byte(s.prefix)},
	}
}

// ifaceName: iifname|oifname "name", an exact match.
type ifaceName struct {
	out  bool
	name string
}

func (s ifaceName) appendText(b []byte) []byte {
	n, _ := ifnameKey(s.out)
	return strconv.AppendQuote(append(b, n+" "...), s.name)
}

func (s ifaceName) exprs(anonSets) []expr.Any {
	_, k := ifnameKey(s.out)
	return []expr.Any{
		&expr.Meta{Key: k, Register: reg1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: reg1, Data: []byte(ifaceKey(s.name))},
	}
}

// ctState: ct state S (any of the bits).
type ctState struct {
	bits  uint32
	names string
}

// The conntrack states every base chain tests first.
var (
	established = ctState{bits: expr.CtStateBitESTABLISHED | expr.CtStateBitRELATED, names: "established,related"}
	invalid     = ctState{bits: expr.CtStateBitINVALID, names: "invalid"}
)

func (s ctState) appendText(b []byte) []byte { return append(append(b, "ct state "...), s.names...) }

func (s ctState) exprs(anonSets) []expr.Any {
	return []expr.Any{
		&expr.Ct{Key: expr.CtKeySTATE, Register: reg1},
		&expr.Bitwise{SourceRegister: reg1, DestRegister: reg1, Len: 4, Mask: native(s.bits), Xor: native(0)},
		&expr.Cmp{Op: expr.CmpOpNeq, Register: reg1, Data: native(0)},
	}
}

// addrNets: ip saddr [!=] CIDR or { CIDR, ... }.
type addrNets struct {
	fam   family
	dst   bool
	neg   bool
	cidrs []netip.Prefix // normalized, sorted, unique, all of fam
}

func prefixText(p netip.Prefix) string {
	if p.IsSingleIP() {
		return p.Addr().String()
	}
	return p.String()
}

func (s addrNets) appendText(b []byte) []byte {
	b = append(append(append(append(append(b, s.fam.l3()...), ' '), direction(s.dst)...), ' '), neg(s.neg)...)
	if len(s.cidrs) == 1 {
		return append(b, prefixText(s.cidrs[0])...)
	}
	b = append(b, "{ "...)
	for i, p := range s.cidrs {
		if i > 0 {
			b = append(b, ", "...)
		}
		b = append(b, prefixText(p)...)
	}
	return append(b, " }"...)
}

func (s addrNets) exprs(b anonSets) []expr.Any {
	load := &expr.Payload{DestRegister: reg1, Base: expr.PayloadBaseNetworkHeader, Offset: s.fam.addrOffset(s.dst), Len: s.fam.addrLen()}
	if len(s.cidrs) == 1 {
		p := s.cidrs[0]
		out := []expr.Any{load}
		if !p.IsSingleIP() {
			mask := netipMask(p)
			out = append(out, &expr.Bitwise{SourceRegister: reg1, DestRegister: reg1, Len: s.fam.addrLen(), Mask: mask, Xor: make([]byte, len(mask))})
		}
		return append(out, &expr.Cmp{Op: cmpOp(s.neg), Register: reg1, Data: p.Addr().AsSlice()})
	}
	set := b.anonSet(s.fam.addrType(), prefixIntervals(s.cidrs))
	return []expr.Any{load, &expr.Lookup{SourceRegister: reg1, SetName: set.Name, SetID: set.ID, Invert: s.neg}}
}

// netipMask is the network mask of p as bytes.
func netipMask(p netip.Prefix) []byte {
	n := p.Addr().BitLen() / 8
	m := make([]byte, n)
	for i := 0; i < p.Bits(); i++ {
		m[i/8] |= 0x80 >> (i % 8)
	}
	return m
}

// prefixIntervals turns CIDRs into interval set elements as nft sends
// them: a leading interval end at zero, then each merged range as a start
// element and an end element one past its last address (none when the
// range reaches the top of the address space).
func prefixIntervals(cidrs []netip.Prefix) []nftables.SetElement {
	merged := mergeRanges(prefixRanges(cidrs))
	var out []nftables.SetElement
	if !merged[0].lo.IsUnspecified() {
		out = append(out, nftables.SetElement{Key: make([]byte, merged[0].lo.BitLen()/8), IntervalEnd: true})
	}
	for _, s := range merged {
		out = append(out, nftables.SetElement{Key: s.lo.AsSlice()})
		if next := s.hi.Next(); next.IsValid() {
			out = append(out, nftables.SetElement{Key: next.AsSlice(), IntervalEnd: true})
		}
	}
	return out
}

// lastAddr is the highest address in p.
func lastAddr(p netip.Prefix) netip.Addr {
	b := p.Masked().Addr().AsSlice()
	for i := p.Bits(); i < len(b)*8; i++ {
		b[i/8] |= 0x80 >> (i % 8)
	}
	a, _ := netip.AddrFromSlice(b)
	return a
}

// addrSet: ip saddr [!=] @set.
type addrSet struct {
	fam family
	dst bool
	neg bool
	set string
}

func (s addrSet) appendText(b []byte) []byte {
	b = append(append(append(append(append(b, s.fam.l3()...), ' '), direction(s.dst)...), ' '), neg(s.neg)...)
	return append(append(b, '@'), s.set...)
}

func (s addrSet) exprs(anonSets) []expr.Any {
	return []expr.Any{
		&expr.Payload{DestRegister: reg1, Base: expr.PayloadBaseNetworkHeader, Offset: s.fam.addrOffset(s.dst), Len: s.fam.addrLen()},
		&expr.Lookup{SourceRegister: reg1, SetName: s.set, Invert: s.neg},
	}
}

// ifaceAddrSet: iifname . ip saddr != @set (anti-spoofing).
type ifaceAddrSet struct {
	fam family
	set string
}

func (s ifaceAddrSet) appendText(b []byte) []byte {
	return append(b, "iifname . "+s.fam.l3()+" saddr != @"+s.set...)
}

func (s ifaceAddrSet) exprs(anonSets) []expr.Any {
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKeyIIFNAME, Register: reg1},
		&expr.Payload{DestRegister: regConcat, Base: expr.PayloadBaseNetworkHeader, Offset: s.fam.addrOffset(false), Len: s.fam.addrLen()},
		&expr.Lookup{SourceRegister: reg1, SetName: s.set, Invert: true},
	}
}

// addrPortSet: ip saddr . meta l4proto . th sport [!=] @set, a lookup
// of the packet's address, protocol and port at one end. A packet
// without ports has a protocol no element has (the kernel reads the
// first bytes of its ICMP header as the port): it is never in the set.
type addrPortSet struct {
	fam family
	dst bool
	neg bool
	set string
}

func (s addrPortSet) appendText(b []byte) []byte {
	port := " . th sport "
	if s.dst {
		port = " . th dport "
	}
	b = append(append(append(append(b, s.fam.l3()...), ' '), direction(s.dst)...), " . meta l4proto"+port...)
	return append(append(b, neg(s.neg)...), "@"+s.set...)
}

func (s addrPortSet) exprs(anonSets) []expr.Any {
	var off uint32
	if s.dst {
		off = 2
	}
	// Each field takes whole 4-byte registers: the address from reg 1,
	// then the protocol, then the port.
	proto := unix.NFT_REG32_00 + s.fam.addrLen()/4
	return []expr.Any{
		&expr.Payload{DestRegister: reg1, Base: expr.PayloadBaseNetworkHeader, Offset: s.fam.addrOffset(s.dst), Len: s.fam.addrLen()},
		&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: proto},
		&expr.Payload{DestRegister: proto + 1, Base: expr.PayloadBaseTransportHeader, Offset: off, Len: 2},
		&expr.Lookup{SourceRegister: reg1, SetName: s.set, Invert: s.neg},
	}
}

// notrack: the packet is not tracked by conntrack.
type notrack struct{}

func (notrack) appendText(b []byte) []byte { return append(b, "notrack"...) }

func (notrack) exprs(anonSets) []expr.Any { return []expr.Any{&expr.Notrack{}} }

// vmap: iifname|oifname vmap @map.
type vmap struct {
	out bool
	set string
}

func (s vmap) appendText(b []byte) []byte {
	n, _ := ifnameKey(s.out)
	return append(b, n+" vmap @"+s.set...)
}

func (s vmap) exprs(anonSets) []expr.Any {
	_, k := ifnameKey(s.out)
	return []expr.Any{
		&expr.Meta{Key: k, Register: reg1},
		&expr.Lookup{SourceRegister: reg1, DestRegister: unix.NFT_REG_VERDICT, IsDestRegSet: true, SetName: s.set},
	}
}

// ports: th sport|dport [!=] P, A-B or { ... }.
type ports struct {
	dst    bool
	neg    bool
	ranges []PortRange // sorted, unique
}

func appendRange(b []byte, r PortRange) []byte {
	b = strconv.AppendUint(b, uint64(r.First), 10)
	if r.First == r.Last {
		return b
	}
	return strconv.AppendUint(append(b, '-'), uint64(r.Last), 10)
}

func (s ports) appendText(b []byte) []byte {
	if s.dst {
		b = append(b, "th dport "...)
	} else {
		b = append(b, "th sport "...)
	}
	b = append(b, neg(s.neg)...)
	if len(s.ranges) == 1 {
		return appendRange(b, s.ranges[0])
	}
	b = append(b, "{ "...)
	for i, r := range s.ranges {
		if i > 0 {
			b = append(b, ", "...)
		}
		b = appendRange(b, r)
	}
	return append(b, " }"...)
}

func be16(v uint16) []byte { return binary.BigEndian.AppendUint16(nil, v) }

func (s ports) exprs(b anonSets) []expr.Any {
	var off uint32
	if s.dst {
		off = 2
	}
	load := &expr.Payload{DestRegister: reg1, Base: expr.PayloadBaseTransportHeader, Offset: off, Len: 2}
	if len(s.ranges) == 1 {
		r := s.ranges[0]
		if r.First == r.Last {
			return []expr.Any{load, &expr.Cmp{Op: cmpOp(s.neg), Register: reg1, Data: be16(r.First)}}
		}
		return []expr.Any{load, &expr.Range{Op: cmpOp(s.neg), Register: reg1, FromData: be16(r.First), ToData: be16(r.Last)}}
	}
	set := b.anonSet(nftables.TypeInetService, portIntervals(s.ranges))
	return []expr.Any{load, &expr.Lookup{SourceRegister: reg1, SetName: set.Name, SetID: set.ID, Invert: s.neg}}
}

// portIntervals is prefixIntervals for port ranges.
func portIntervals(rs []PortRange) []nftables.SetElement {
	merged := make([]PortRange, 0, len(rs))
	for _, r := range rs { // rs is sorted by First
		if n := len(merged); n > 0 && (merged[n-1].Last == 0xffff || int(r.First) <= int(merged[n-1].Last)+1) {
			merged[n-1].Last = max(merged[n-1].Last, r.Last)
			continue
		}
		merged = append(merged, r)
	}
	var out []nftables.SetElement
	if merged[0].First != 0 {
		out = append(out, nftables.SetElement{Key: be16(0), IntervalEnd: true})
	}
	for _, r := range merged {
		out = append(out, nftables.SetElement{Key: be16(r.First)})
		if r.Last != 0xffff {
			out = append(out, nftables.SetElement{Key: be16(r.Last + 1), IntervalEnd: true})
		}
	}
	return out
}

// icmp: icmp|icmpv6 type T [code C], or its negation.
type icmp struct {
	fam  family
	typ  uint8
	code *uint8
	neg  bool
}

func (s icmp) appendText(b []byte) []byte {
	p := "icmp"
	if s.fam == 6 {
		p = "icmpv6"
	}
	switch {
	case s.code == nil:
		return fmt.Appendf(b, "%s type %s%d", p, neg(s.neg), s.typ)
	case s.neg:
		return fmt.Appendf(b, "%s type . %s code != %d . %d", p, p, s.typ, *s.code)
	}
	return fmt.Appendf(b, "%s type %d %s code %d", p, s.typ, p, *s.code)
}

func (s icmp) exprs(anonSets) []expr.Any {
	typ := &expr.Payload{DestRegister: reg1, Base: expr.PayloadBaseTransportHeader, Offset: 0, Len: 1}
	switch {
	case s.code == nil:
		return []expr.Any{typ, &expr.Cmp{Op: cmpOp(s.neg), Register: reg1, Data: []byte{s.typ}}}
	case s.neg:
		// Not (type and code): compare both bytes at once.
		return []expr.Any{
			&expr.Payload{DestRegister: reg1, Base: expr.PayloadBaseTransportHeader, Offset: 0, Len: 2},
			&expr.Cmp{Op: expr.CmpOpNeq, Register: reg1, Data: []byte{s.typ, *s.code}},
		}
	}
	return []expr.Any{
		typ, &expr.Cmp{Op: expr.CmpOpEq, Register: reg1, Data: []byte{s.typ}},
		&expr.Payload{DestRegister: reg1, Base: expr.PayloadBaseTransportHeader, Offset: 1, Len: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: reg1, Data: []byte{*s.code}},
	}
}

// icmpRange: icmpv6 type A-B.
type icmpRange struct {
	fam      family
	from, to uint8
}

func (s icmpRange) appendText(b []byte) []byte {
	p := "icmp"
	if s.fam == 6 {
		p = "icmpv6"
	}
	return fmt.Appendf(b, "%s type %d-%d", p, s.from, s.to)
}

func (s icmpRange) exprs(anonSets) []expr.Any {
	return []expr.Any{
		&expr.Payload{DestRegister: reg1, Base: expr.PayloadBaseTransportHeader, Offset: 0, Len: 1},
		&expr.Range{Op: expr.CmpOpEq, Register: reg1, FromData: []byte{s.from}, ToData: []byte{s.to}},
	}
}

// markTest: meta mark & M == V.
type markTest struct{ mask, value uint32 }

func (s markTest) appendText(b []byte) []byte {
	return appendHex(appendHex(append(b, "meta mark & "...), s.mask), s.value, " == ")
}

// appendHex appends sep and v as nft prints a mark: 0x and 8 hex digits.
func appendHex(b []byte, v uint32, sep ...string) []byte {
	for _, s := range sep {
		b = append(b, s...)
	}
	const digits = "0123456789abcdef"
	b = append(b, '0', 'x')
	for i := 28; i >= 0; i -= 4 {
		b = append(b, digits[v>>i&0xf])
	}
	return b
}

func (s markTest) exprs(anonSets) []expr.Any {
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKeyMARK, Register: reg1},
		&expr.Bitwise{SourceRegister: reg1, DestRegister: reg1, Len: 4, Mask: native(s.mask), Xor: native(0)},
		&expr.Cmp{Op: expr.CmpOpEq, Register: reg1, Data: native(s.value)},
	}
}

// markSet: meta mark set (meta mark & ^clear) | set.
type markSet struct{ clear, set uint32 }

func (s markSet) appendText(b []byte) []byte {
	if s.set == 0 {
		return appendHex(append(b, "meta mark set meta mark & "...), ^s.clear)
	}
	return appendHex(append(b, "meta mark set meta mark | "...), s.set)
}

func (s markSet) exprs(anonSets) []expr.Any {
	mask := ^(s.clear | s.set)
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKeyMARK, Register: reg1},
		&expr.Bitwise{SourceRegister: reg1, DestRegister: reg1, Len: 4, Mask: native(mask), Xor: native(s.set)},
		&expr.Meta{Key: expr.MetaKeyMARK, SourceRegister: true, Register: reg1},
	}
}

// counter.
type counter struct{}

func (counter) appendText(b []byte) []byte { return append(b, "counter"...) }

func (counter) exprs(anonSets) []expr.Any { return []expr.Any{&expr.Counter{}} }

// logLimit: limit rate 10/second log prefix "calico-packet: ".
type logLimit struct{}

// LogPrefix starts every kernel log line a Log rule writes.
const LogPrefix = "calico-packet: "

func (logLimit) appendText(b []byte) []byte {
	return strconv.AppendQuote(append(b, "limit rate 10/second log prefix "...), LogPrefix)
}

func (logLimit) exprs(anonSets) []expr.Any {
	return []expr.Any{
		&expr.Limit{Type: expr.LimitTypePkts, Rate: 10, Unit: expr.LimitTimeSecond, Burst: 5},
		&expr.Log{Key: 1 << unix.NFTA_LOG_PREFIX, Data: []byte(LogPrefix)},
	}
}

// masquerade: source NAT to the address of the outgoing interface.
type masquerade struct{}

func (masquerade) appendText(b []byte) []byte { return append(b, "masquerade"...) }

func (masquerade) exprs(anonSets) []expr.Any { return []expr.Any{&expr.Masq{}} }

// verdict: accept, drop, return, jump C, goto C.
type verdict struct {
	kind  expr.VerdictKind
	chain string
}

var (
	vAccept = verdict{kind: expr.VerdictAccept}
	vDrop   = verdict{kind: expr.VerdictDrop}
	vReturn = verdict{kind: expr.VerdictReturn}
)

func jump(c string) verdict { return verdict{kind: expr.VerdictJump, chain: c} }
func goTo(c string) verdict { return verdict{kind: expr.VerdictGoto, chain: c} }
func (s verdict) appendText(b []byte) []byte {
	switch s.kind {
	case expr.VerdictAccept:
		return append(b, "accept"...)
	case expr.VerdictDrop:
		return append(b, "drop"...)
	case expr.VerdictReturn:
		return append(b, "return"...)
	case expr.VerdictJump:
		return append(append(b, "jump "...), s.chain...)
	case expr.VerdictGoto:
		return append(append(b, "goto "...), s.chain...)
	}
	return fmt.Appendf(b, "verdict %d", s.kind)
}

func (s verdict) exprs(anonSets) []expr.Any {
	return []expr.Any{&expr.Verdict{Kind: s.kind, Chain: s.chain}}
}

// refs lists the chains and named sets a rule refers to; the Fake checks
// them the way the kernel would.
func (r ChainRule) refs() (chains, sets []string) {
	for _, s := range r.stmts {
		switch s := s.(type) {
		case verdict:
			if s.chain != "" {
				chains = append(chains, s.chain)
			}
		case addrSet:
			sets = append(sets, s.set)
		case ifaceAddrSet:
			sets = append(sets, s.set)
		case addrPortSet:
			sets = append(sets, s.set)
		case vmap:
			sets = append(sets, s.set)
		case ifaceSet:
			sets = append(sets, s.set)
		case ifaceMACSet:
			sets = append(sets, s.set)
		}
	}
	return chains, sets
}
