package nft

import (
	"fmt"
	"time"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"github.com/google/nftables/userdata"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// builder queues ops on a google/nftables connection, which sends them as
// one batch (one transaction) on Flush.
type builder struct {
	c     *nftables.Conn
	table *nftables.Table
	ids   *uint32 // set IDs, unique within a transaction
	err   error
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

// anonSet queues a constant anonymous interval set, bound to the rule that
// follows it in the batch.
func (b *builder) anonSet(keyType nftables.SetDatatype, elems []nftables.SetElement) *nftables.Set {
	s := &nftables.Set{Table: b.table, ID: b.nextID(), Name: "__set%d", Anonymous: true, Constant: true, Interval: true, KeyType: keyType}
	if err := b.c.AddSet(s, elems); err != nil {
		b.fail(fmt.Errorf("adding anonymous set: %w", err))
	}
	return s
}

// add queues one op.
func (b *builder) add(o op) {
	switch o.kind {
	case opAddTable:
		b.c.AddTable(b.table)
	case opDelTable:
		b.c.DelTable(b.table)
	case opAddSet:
		s := kernelSet(o.set.Type, b.table)
		s.Name, s.ID = o.name, b.nextID()
		if err := b.c.AddSet(s, nil); err != nil {
			b.fail(fmt.Errorf("adding set %s: %w", o.name, err))
		}
	case opDelSet:
		b.c.DelSet(&nftables.Set{Table: b.table, Name: o.name})
	case opAddChain:
		c := &nftables.Chain{Name: o.name, Table: b.table}
		if h := o.hook; h != nil {
			n, ok := hookNums[h.Name]
			if !ok {
				b.fail(fmt.Errorf("adding chain %s: unknown hook %s", o.name, h.Name))
				return
			}
			policy := nftables.ChainPolicyDrop
			if h.Accept {
				policy = nftables.ChainPolicyAccept
			}
			c.Hooknum = nftables.ChainHookRef(nftables.ChainHook(n))
			c.Priority = nftables.ChainPriorityRef(nftables.ChainPriority(h.Priority))
			c.Type = nftables.ChainTypeFilter
			if h.NAT {
				c.Type = nftables.ChainTypeNAT
			}
			c.Policy = &policy
		}
		b.c.AddChain(c)
	case opFlushChain:
		b.c.FlushChain(&nftables.Chain{Name: o.name, Table: b.table})
	case opDelChain:
		b.c.DelChain(&nftables.Chain{Name: o.name, Table: b.table})
	case opAddRule:
		var exprs []expr.Any
		for _, s := range o.rule.stmts {
			exprs = append(exprs, s.exprs(b)...)
		}
		b.c.AddRule(&nftables.Rule{
			Table:    b.table,
			Chain:    &nftables.Chain{Name: o.name, Table: b.table},
			Exprs:    exprs,
			UserData: userdata.AppendString(nil, userdata.TypeComment, o.rule.Comment),
		})
	case opAddElems, opDelElems:
		s := kernelSet(o.set.Type, b.table)
		s.Name = o.name
		for _, chunk := range chunkElems(o.elems) {
			var err error
			if o.kind == opAddElems {
				err = b.c.SetAddElements(s, toKernel(chunk, true))
			} else {
				err = b.c.SetDeleteElements(s, toKernel(chunk, false))
			}
			if err != nil {
				b.fail(fmt.Errorf("%s of set %s: %w", o.kind, o.name, err))
			}
		}
	}
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

// toKernel is elements as the kernel takes them: a range of an interval
// set is its start and, unless it reaches the top of the address space,
// an interval end at the address after its last.
func toKernel(es []Element, withData bool) []nftables.SetElement {
	out := make([]nftables.SetElement, 0, len(es))
	for _, e := range es {
		k := nftables.SetElement{Key: []byte(e.Key), IntervalEnd: e.endOnly}
		if withData && e.Goto != "" {
			k.VerdictData = &expr.Verdict{Kind: expr.VerdictGoto, Chain: e.Goto}
		}
		out = append(out, k)
		if e.End != "" {
			out = append(out, nftables.SetElement{Key: []byte(e.End), IntervalEnd: true})
		}
	}
	return out
}

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
