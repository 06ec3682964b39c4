package nft

import (
	"encoding/binary"
	"fmt"
	"math"

	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"
)

// batch is a transaction's messages written as the kernel reads them, one
// after another in one buffer: what goes out in one sendmsg. Each
// message is netlink's header, nfnetlink's (family, version, resource
// id), then attributes, each a length and a type in host byte order and
// its data padded to four bytes; nested attributes hold attributes.
// Writing them here, straight into the buffer, costs one copy of each
// expression's bytes; google/nftables built every rule in five layers of
// slices copied into each other and then into the batch, 40% of a whole
// table's allocations (BenchmarkPrivilegedFullLoad).
type batch struct {
	buf []byte
	n   int // messages, the batch's begin and end included
	// last is the offset of the last message before the batch's end: the
	// one whose acknowledgement says the transaction committed.
	last int
	err  error // an attribute too long for its 16-bit length
}

// newBatch starts a batch with its begin message, room made for about
// size bytes.
func newBatch(size int) *batch {
	b := &batch{buf: make([]byte, 0, max(size, 4096))}
	b.endMsg(b.msg(unix.NFNL_MSG_BATCH_BEGIN, 0, 0, unix.NFNL_SUBSYS_NFTABLES))
	return b
}

// finish ends the batch: it asks for the acknowledgement of its last
// message (none other asks for one, nor for an echo) and writes the
// batch's end. It reports false for a batch without a message.
func (b *batch) finish() bool {
	if b.n < 2 {
		return false
	}
	flags := binary.NativeEndian.Uint16(b.buf[b.last+6:])
	binary.NativeEndian.PutUint16(b.buf[b.last+6:], flags|unix.NLM_F_ACK)
	b.endMsg(b.msg(unix.NFNL_MSG_BATCH_END, 0, 0, unix.NFNL_SUBSYS_NFTABLES))
	return true
}

// number writes the messages' sequence numbers, from first on, and
// returns the number of the acknowledged one.
func (b *batch) number(first uint32) (acked uint32) {
	for off, i := 0, uint32(0); off < len(b.buf); i++ {
		binary.NativeEndian.PutUint32(b.buf[off+8:], first+i)
		if off == b.last {
			acked = first + i
		}
		off += int(binary.NativeEndian.Uint32(b.buf[off:]))
	}
	return acked
}

// nftMsg starts a message of nf_tables (NFT_MSG_*) about table inet
// calico, flags beside NLM_F_REQUEST.
func (b *batch) nftMsg(typ, flags uint16) int {
	start := b.msg(unix.NFNL_SUBSYS_NFTABLES<<8|typ, flags, unix.NFPROTO_INET, 0)
	b.last = start
	return start
}

// named writes a message that only names an object of table inet calico
// (the deletion of a set or chain, the flush of a chain).
func (b *batch) named(typ, tableAttr, nameAttr uint16, name string) {
	m := b.nftMsg(typ, 0)
	b.str(tableAttr, TableName)
	b.str(nameAttr, name)
	b.endMsg(m)
}

// msg starts a message: its header (length and number written later) and
// nfnetlink's.
func (b *batch) msg(typ, flags uint16, family uint8, resID uint16) int {
	b.reserve(unix.NLMSG_HDRLEN + 4)
	start := len(b.buf)
	var h [unix.NLMSG_HDRLEN + 4]byte
	binary.NativeEndian.PutUint16(h[4:], typ)
	binary.NativeEndian.PutUint16(h[6:], unix.NLM_F_REQUEST|flags)
	h[16], h[17] = family, unix.NFNETLINK_V0
	binary.BigEndian.PutUint16(h[18:], resID)
	b.buf = append(b.buf, h[:]...)
	b.n++
	return start
}

// endMsg writes the length of the message started at start.
func (b *batch) endMsg(start int) {
	binary.NativeEndian.PutUint32(b.buf[start:], uint32(len(b.buf)-start))
}

// attr appends an attribute.
func (b *batch) attr(typ uint16, data []byte) {
	b.attrHeader(typ, len(data))
	b.buf = append(b.buf, data...)
	b.pad()
}

// str appends an attribute of a NUL-terminated string.
func (b *batch) str(typ uint16, s string) {
	b.attrHeader(typ, len(s)+1)
	b.buf = append(b.buf, s...)
	b.buf = append(b.buf, 0)
	b.pad()
}

// u32 appends an attribute of a 32-bit number in network byte order.
func (b *batch) u32(typ uint16, v uint32) {
	b.attrHeader(typ, 4)
	b.buf = binary.BigEndian.AppendUint32(b.buf, v)
}

// nest starts an attribute that holds attributes (typ carries
// NLA_F_NESTED where the kernel expects it); endNest closes it.
func (b *batch) nest(typ uint16) int {
	start := len(b.buf)
	b.attrHeader(typ, 0)
	return start
}

func (b *batch) endNest(start int) {
	n := len(b.buf) - start
	if n > math.MaxUint16 && b.err == nil {
		b.err = fmt.Errorf("netlink attribute of type %d holds %d bytes, more than an attribute can", binary.NativeEndian.Uint16(b.buf[start+2:]), n)
	}
	binary.NativeEndian.PutUint16(b.buf[start:], uint16(n))
}

// attrHeader appends an attribute's header, with room made for its data
// of n bytes and padding.
func (b *batch) attrHeader(typ uint16, n int) {
	b.reserve(unix.NLA_HDRLEN + n + unix.NLA_ALIGNTO)
	b.buf = binary.NativeEndian.AppendUint16(b.buf, uint16(unix.NLA_HDRLEN+n))
	b.buf = binary.NativeEndian.AppendUint16(b.buf, typ)
}

// reserve makes room for n more bytes, doubling the buffer when it is
// short: append grows a large slice by a quarter at a time, which for a
// whole table's 6 MB meant 30 MB of allocation and copying.
func (b *batch) reserve(n int) {
	if cap(b.buf)-len(b.buf) >= n {
		return
	}
	buf := make([]byte, len(b.buf), max(2*cap(b.buf), len(b.buf)+n))
	copy(buf, b.buf)
	b.buf = buf
}

func (b *batch) pad() {
	for len(b.buf)%unix.NLA_ALIGNTO != 0 {
		b.buf = append(b.buf, 0)
	}
}

// expr writes the expressions rules are mostly made of, as
// google/nftables marshals them; it reports false for any other, which
// google/nftables then marshals (expr.Marshal, a few allocations each).
func (b *batch) expr(e expr.Any) bool {
	var d int
	switch e := e.(type) {
	case *expr.Payload:
		if e.OperationType != expr.PayloadLoad || e.CsumType != 0 {
			return false
		}
		d = b.exprHead("payload")
		b.u32(unix.NFTA_PAYLOAD_DREG, e.DestRegister)
		b.u32(unix.NFTA_PAYLOAD_BASE, uint32(e.Base))
		b.u32(unix.NFTA_PAYLOAD_OFFSET, e.Offset)
		b.u32(unix.NFTA_PAYLOAD_LEN, e.Len)
	case *expr.Cmp:
		d = b.exprHead("cmp")
		b.u32(unix.NFTA_CMP_SREG, e.Register)
		b.u32(unix.NFTA_CMP_OP, uint32(e.Op))
		b.value(unix.NLA_F_NESTED|unix.NFTA_CMP_DATA, e.Data)
	case *expr.Meta:
		d = b.exprHead("meta")
		b.u32(unix.NFTA_META_KEY, uint32(e.Key))
		if e.SourceRegister {
			b.u32(unix.NFTA_META_SREG, e.Register)
		} else {
			b.u32(unix.NFTA_META_DREG, e.Register)
		}
	case *expr.Lookup:
		d = b.exprHead("lookup")
		if e.SourceRegister != 0 {
			b.u32(unix.NFTA_LOOKUP_SREG, e.SourceRegister)
		}
		if e.IsDestRegSet {
			b.u32(unix.NFTA_LOOKUP_DREG, e.DestRegister)
		}
		if e.Invert {
			b.u32(unix.NFTA_LOOKUP_FLAGS, unix.NFT_LOOKUP_F_INV)
		}
		b.str(unix.NFTA_LOOKUP_SET, e.SetName)
		b.u32(unix.NFTA_LOOKUP_SET_ID, e.SetID)
	case *expr.Verdict:
		d = b.exprHead("immediate")
		b.u32(unix.NFTA_IMMEDIATE_DREG, unix.NFT_REG_VERDICT)
		imm := b.nest(unix.NLA_F_NESTED | unix.NFTA_IMMEDIATE_DATA)
		v := b.nest(unix.NLA_F_NESTED | unix.NFTA_DATA_VERDICT)
		b.u32(unix.NFTA_VERDICT_CODE, verdictCode(e.Kind))
		if e.Chain != "" {
			b.str(unix.NFTA_VERDICT_CHAIN, e.Chain)
		}
		b.endNest(v)
		b.endNest(imm)
	case *expr.Bitwise:
		d = b.exprHead("bitwise")
		b.u32(unix.NFTA_BITWISE_SREG, e.SourceRegister)
		b.u32(unix.NFTA_BITWISE_DREG, e.DestRegister)
		b.u32(unix.NFTA_BITWISE_LEN, e.Len)
		b.value(unix.NLA_F_NESTED|unix.NFTA_BITWISE_MASK, e.Mask)
		b.value(unix.NLA_F_NESTED|unix.NFTA_BITWISE_XOR, e.Xor)
	case *expr.Counter:
		d = b.exprHead("counter")
		b.u64(unix.NFTA_COUNTER_BYTES, e.Bytes)
		b.u64(unix.NFTA_COUNTER_PACKETS, e.Packets)
	case *expr.Range:
		d = b.exprHead("range")
		if e.Register > 0 {
			b.u32(unix.NFTA_RANGE_SREG, e.Register)
		}
		b.u32(unix.NFTA_RANGE_OP, uint32(e.Op))
		if len(e.FromData) > 0 {
			b.value(unix.NLA_F_NESTED|unix.NFTA_RANGE_FROM_DATA, e.FromData)
		}
		if len(e.ToData) > 0 {
			b.value(unix.NLA_F_NESTED|unix.NFTA_RANGE_TO_DATA, e.ToData)
		}
	default:
		return false
	}
	b.endNest(d)
	return true
}

// exprHead writes an expression's name and starts its data.
func (b *batch) exprHead(name string) int {
	b.str(unix.NFTA_EXPR_NAME, name)
	return b.nest(unix.NLA_F_NESTED | unix.NFTA_EXPR_DATA)
}

// value writes an attribute holding a value (NFTA_DATA_VALUE).
func (b *batch) value(typ uint16, data []byte) {
	n := b.nest(typ)
	b.attr(unix.NFTA_DATA_VALUE, data)
	b.endNest(n)
}

// u64 appends an attribute of a 64-bit number in network byte order.
func (b *batch) u64(typ uint16, v uint64) {
	b.attrHeader(typ, 8)
	b.buf = binary.BigEndian.AppendUint64(b.buf, v)
}

// raw appends attributes already marshalled.
func (b *batch) raw(data []byte) {
	b.reserve(len(data))
	b.buf = append(b.buf, data...)
}
