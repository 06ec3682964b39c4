package nft

import (
	"encoding/binary"
	"fmt"
	"time"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"github.com/google/nftables/userdata"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// builder writes ops into a batch, one transaction.
type builder struct {
	b   *batch
	ids *uint32 // set IDs, unique within a transaction
	err error
}

var calicoTable = &nftables.Table{Name: TableName, Family: nftables.TableFamilyINet}

func (b *builder) nextID() uint32 {
	*b.ids++
	if *b.ids == 0 {
		*b.ids = 1
	}
	return *b.ids
}

func (b *builder) fail(err error) {
	if b.err == nil {
		b.err = err
	}
}

// anonSets makes the constant anonymous sets a rule's statements look
// up (its lists of nets and ports).
type anonSets interface {
	anonSet(keyType nftables.SetDatatype, elems []nftables.SetElement) *nftables.Set
}

// anonSet writes a constant anonymous interval set, bound to the rule
// that follows it in the batch.
func (b *builder) anonSet(keyType nftables.SetDatatype, elems []nftables.SetElement) *nftables.Set {
	s := &nftables.Set{Table: calicoTable, ID: b.nextID(), Name: "__set%d", Anonymous: true, Constant: true, Interval: true, KeyType: keyType}
	if err := b.newSet(s, len(elems)); err != nil {
		b.fail(fmt.Errorf("adding anonymous set: %w", err))
		return s
	}
	if len(elems) > 0 {
		msg, list := b.elemList(unix.NFT_MSG_NEWSETELEM, s.Name, s.ID)
		for i, e := range elems {
			elem(b.b, i, e.Key, e.IntervalEnd, "")
		}
		b.b.endNest(list)
		b.b.endMsg(msg)
	}
	return s
}

// add writes one op.
func (b *builder) add(o op) {
	w := b.b
	switch o.kind {
	case opAddTable, opDelTable:
		typ, flags := uint16(unix.NFT_MSG_NEWTABLE), uint16(unix.NLM_F_CREATE)
		if o.kind == opDelTable {
			typ, flags = unix.NFT_MSG_DELTABLE, 0
		}
		m := w.nftMsg(typ, flags)
		w.str(unix.NFTA_TABLE_NAME, TableName)
		w.u32(unix.NFTA_TABLE_FLAGS, 0)
		w.endMsg(m)
	case opAddSet:
		s := kernelSet(o.set.Type, calicoTable)
		s.Name, s.ID = o.name, b.nextID()
		if err := b.newSet(s, 0); err != nil {
			b.fail(fmt.Errorf("adding set %s: %w", o.name, err))
		}
	case opDelSet:
		w.named(unix.NFT_MSG_DELSET, unix.NFTA_SET_TABLE, unix.NFTA_SET_NAME, o.name)
	case opAddChain:
		b.newChain(o)
	case opFlushChain:
		w.named(unix.NFT_MSG_DELRULE, unix.NFTA_RULE_TABLE, unix.NFTA_RULE_CHAIN, o.name)
	case opDelChain:
		w.named(unix.NFT_MSG_DELCHAIN, unix.NFTA_CHAIN_TABLE, unix.NFTA_CHAIN_NAME, o.name)
	case opAddRule:
		b.newRule(o)
	case opAddElems, opDelElems:
		typ := uint16(unix.NFT_MSG_NEWSETELEM)
		if o.kind == opDelElems {
			typ = unix.NFT_MSG_DELSETELEM
		}
		for _, chunk := range chunkElems(o.elems) {
			msg, list := b.elemList(typ, o.name, 0)
			i := 0
			for _, e := range chunk {
				goTo := e.Goto
				if o.kind == opDelElems {
					goTo = ""
				}
				elem(w, i, e.Key, e.endOnly, goTo)
				i++
				// A range of an interval set is its start and, unless it
				// reaches the top of the address space, an interval end at
				// the address after its last.
				if e.End != "" {
					elem(w, i, e.End, true, "")
					i++
				}
			}
			w.endNest(list)
			w.endMsg(msg)
		}
	}
}

// newChain writes an added chain; a base chain has its hook, priority,
// policy and type.
func (b *builder) newChain(o op) {
	w := b.b
	var n uint32
	if h := o.hook; h != nil {
		var ok bool
		if n, ok = hookNums[h.Name]; !ok {
			b.fail(fmt.Errorf("adding chain %s: unknown hook %s", o.name, h.Name))
			return
		}
	}
	m := w.nftMsg(unix.NFT_MSG_NEWCHAIN, unix.NLM_F_CREATE)
	w.str(unix.NFTA_CHAIN_TABLE, TableName)
	w.str(unix.NFTA_CHAIN_NAME, o.name)
	if h := o.hook; h != nil {
		hook := w.nest(unix.NLA_F_NESTED | unix.NFTA_CHAIN_HOOK)
		w.u32(unix.NFTA_HOOK_HOOKNUM, n)
		w.u32(unix.NFTA_HOOK_PRIORITY, uint32(int32(h.Priority)))
		w.endNest(hook)
		policy := uint32(nftables.ChainPolicyDrop)
		if h.Accept {
			policy = uint32(nftables.ChainPolicyAccept)
		}
		w.u32(unix.NFTA_CHAIN_POLICY, policy)
		typ := nftables.ChainTypeFilter
		if h.NAT {
			typ = nftables.ChainTypeNAT
		}
		w.str(unix.NFTA_CHAIN_TYPE, string(typ))
	}
	w.endMsg(m)
}

// newRule writes a rule appended to its chain: its expressions, then its
// comment as nft keeps it. The statements write the anonymous sets they
// look up first.
func (b *builder) newRule(o op) {
	var exprs []expr.Any
	for _, s := range o.rule.stmts {
		exprs = append(exprs, s.exprs(b)...)
	}
	w := b.b
	m := w.nftMsg(unix.NFT_MSG_NEWRULE, unix.NLM_F_CREATE|unix.NLM_F_APPEND)
	w.str(unix.NFTA_RULE_TABLE, TableName)
	w.str(unix.NFTA_RULE_CHAIN, o.name)
	list := w.nest(unix.NLA_F_NESTED | unix.NFTA_RULE_EXPRESSIONS)
	for _, e := range exprs {
		el := w.nest(unix.NLA_F_NESTED | unix.NFTA_LIST_ELEM)
		if !w.expr(e) {
			data, err := expr.Marshal(unix.NFPROTO_INET, e)
			if err != nil {
				b.fail(fmt.Errorf("adding a rule to chain %s: %w", o.name, err))
				return
			}
			w.raw(data)
		}
		w.endNest(el)
	}
	w.endNest(list)
	// nft's comment: a type, a length and the string with its NUL.
	w.attrHeader(unix.NFTA_RULE_USERDATA, 2+len(o.rule.Comment)+1)
	w.buf = append(w.buf, byte(userdata.TypeComment), byte(len(o.rule.Comment)+1))
	w.buf = append(w.buf, o.rule.Comment...)
	w.buf = append(w.buf, 0)
	w.pad()
	w.endMsg(m)
}

// newSet writes an added set (with the number of its elements when it is
// constant: they follow in the batch). Only the kinds of set this package
// makes are written; anything else is refused.
func (b *builder) newSet(s *nftables.Set, elems int) error {
	if s.HasTimeout || s.Dynamic || s.Concatenation || s.Size > 0 || s.AutoMerge || s.Comment != "" || s.Counter {
		return fmt.Errorf("set %s: a kind of set this package does not make", s.Name)
	}
	var flags uint32
	for _, f := range []struct {
		on   bool
		flag uint32
	}{{s.Anonymous, unix.NFT_SET_ANONYMOUS}, {s.Constant, unix.NFT_SET_CONSTANT}, {s.Interval, unix.NFT_SET_INTERVAL}, {s.IsMap, unix.NFT_SET_MAP}} {
		if f.on {
			flags |= f.flag
		}
	}
	w := b.b
	m := w.nftMsg(unix.NFT_MSG_NEWSET, unix.NLM_F_CREATE)
	w.str(unix.NFTA_SET_TABLE, TableName)
	w.str(unix.NFTA_SET_NAME, s.Name)
	w.u32(unix.NFTA_SET_FLAGS, flags)
	w.u32(unix.NFTA_SET_KEY_TYPE, s.KeyType.GetNFTMagic())
	w.u32(unix.NFTA_SET_KEY_LEN, s.KeyType.Bytes)
	w.u32(unix.NFTA_SET_ID, s.ID)
	if s.IsMap {
		if s.DataType.GetNFTMagic() != nftables.TypeVerdict.GetNFTMagic() {
			return fmt.Errorf("set %s: a map to other than verdicts", s.Name)
		}
		w.u32(unix.NFTA_SET_DATA_TYPE, unix.NFT_DATA_VERDICT)
		w.u32(unix.NFTA_SET_DATA_LEN, s.DataType.Bytes)
	}
	if s.Constant {
		desc := w.nest(unix.NLA_F_NESTED | unix.NFTA_SET_DESC)
		w.u32(unix.NFTA_SET_DESC_SIZE, uint32(elems))
		w.endNest(desc)
	}
	// nft's hint of the key's byte order, kept for nft to print the set:
	// network order but for names (host order).
	order := uint32(0)
	switch {
	case s.Anonymous || s.Constant || s.Interval || s.KeyByteOrder == binaryutil.BigEndian:
		order = 2
	case s.KeyByteOrder == binaryutil.NativeEndian:
		order = 1
	}
	if order != 0 {
		w.attrHeader(unix.NFTA_SET_USERDATA, 6)
		w.buf = append(w.buf, byte(userdata.NFTNL_UDATA_SET_KEYBYTEORDER), 4)
		w.buf = binary.LittleEndian.AppendUint32(w.buf, order)
		w.pad()
	}
	w.endMsg(m)
	return nil
}

// elemList starts a message adding or deleting elements of a set (id:
// of a set made in this batch, else 0) and its list of elements.
func (b *builder) elemList(typ uint16, set string, id uint32) (msg, list int) {
	w := b.b
	msg = w.nftMsg(typ, unix.NLM_F_CREATE)
	w.str(unix.NFTA_SET_ELEM_LIST_SET, set)
	w.u32(unix.NFTA_SET_ELEM_LIST_SET_ID, id)
	w.str(unix.NFTA_SET_ELEM_LIST_TABLE, TableName)
	return msg, w.nest(unix.NFTA_SET_ELEM_LIST_ELEMENTS | unix.NLA_F_NESTED)
}

// verdictCode is a verdict as the kernel reads it (NF_DROP, NFT_GOTO, ...:
// negative numbers but for the first two).
func verdictCode(k expr.VerdictKind) uint32 { return uint32(k) }

// elem writes element i of a list: its key, whether it ends an interval,
// and the chain a verdict map's element goes to.
func elem[K ~string | ~[]byte](w *batch, i int, key K, end bool, goTo string) {
	e := w.nest(uint16(i+1) | unix.NLA_F_NESTED)
	if end {
		// NLA_F_NESTED as google/nftables and nft send it; the kernel
		// takes it.
		w.u32(unix.NFTA_SET_ELEM_FLAGS|unix.NLA_F_NESTED, unix.NFT_SET_ELEM_INTERVAL_END)
	}
	k := w.nest(unix.NFTA_SET_ELEM_KEY | unix.NLA_F_NESTED)
	w.attrHeader(unix.NFTA_DATA_VALUE, len(key))
	w.buf = append(w.buf, key...)
	w.pad()
	w.endNest(k)
	if goTo != "" {
		d := w.nest(unix.NFTA_SET_ELEM_DATA | unix.NLA_F_NESTED)
		v := w.nest(unix.NFTA_DATA_VERDICT | unix.NLA_F_NESTED)
		w.u32(unix.NFTA_VERDICT_CODE, verdictCode(expr.VerdictGoto))
		w.str(unix.NFTA_VERDICT_CHAIN, goTo)
		w.endNest(v)
		w.endNest(d)
	}
	w.endNest(e)
}

// maxAttrBytes keeps each message's element list well inside one netlink
// attribute (64 KiB); google/nftables does not split it.
const maxAttrBytes = 48 << 10

// chunkElems splits elements into lists that fit one attribute.
func chunkElems(es []Element) [][]Element {
	var out [][]Element
	start, size := 0, 0
	for i, e := range es {
		n := 16 + align4(len(e.Key))
		if e.Goto != "" {
			n += 32 + align4(len(e.Goto)+1)
		}
		if e.End != "" || e.endOnly {
			n += 32 + align4(len(e.End)) // an element of its own, with flags
		}
		if size+n > maxAttrBytes && i > start {
			out = append(out, es[start:i])
			start, size = i, 0
		}
		size += n
	}
	if start < len(es) {
		out = append(out, es[start:])
	}
	return out
}

func align4(n int) int { return (n + 3) &^ 3 }

// socketBuffer is the send and receive buffer of a transaction's socket.
// The whole batch goes out in one sendmsg, and the kernel queues an ack
// (and for each rule an echo) for every message before we read the first,
// so the defaults (about 200 KiB) fail with EMSGSIZE or ENOBUFS on a large
// transaction. The kernel charges only what is queued.
const socketBuffer = 64 << 20

// sockOptions sizes the buffers (beyond the sysctl maximum, which needs
// CAP_NET_ADMIN, as does all of nftables) and bounds every read and write
// by the deadline.
func sockOptions(deadline time.Time) nftables.SockOption {
	return func(c *netlink.Conn) error {
		rc, err := c.SyscallConn()
		if err != nil {
			return fmt.Errorf("sizing netlink buffers: %w", err)
		}
		var serr error
		err = rc.Control(func(fd uintptr) {
			for _, opt := range []int{unix.SO_SNDBUFFORCE, unix.SO_RCVBUFFORCE} {
				if e := unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, opt, socketBuffer); e != nil && serr == nil {
					serr = e
				}
			}
		})
		if err == nil {
			err = serr
		}
		if err != nil {
			return fmt.Errorf("sizing netlink buffers: %w", err)
		}
		return c.SetDeadline(deadline)
	}
}
