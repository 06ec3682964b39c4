package nft

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"testing"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"github.com/google/nftables/userdata"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// TestEncodeAsGoogle: every batch the package writes is, message for
// message and byte for byte, what google/nftables marshals for the same
// ops (but for the flags asking for acknowledgements and echoes, and the
// numbers, which commit sets): whole tables of every golden state, the
// changes from each state to the next and back (deletions, flushes,
// elements removed), a recreation, and a large table.
func TestEncodeAsGoogle(t *testing.T) {
	var cases []struct {
		name string
		ops  []op
	}
	add := func(name string, ops []op) {
		cases = append(cases, struct {
			name string
			ops  []op
		}{name, ops})
	}
	render := func(rs Ruleset) *Table {
		tbl, err := Render(rs)
		if err != nil {
			t.Fatal(err)
		}
		return tbl
	}
	var prev *Table
	for _, s := range states {
		tbl := render(s.rs)
		add(s.name, diff(nil, tbl))
		if prev != nil {
			add("to "+s.name, diff(prev, tbl))
			add("from "+s.name, diff(tbl, prev))
		}
		prev = tbl
	}
	add("recreated", recreate(prev))
	add("large", diff(nil, render(big(300, 30))))
	add("removed", []op{{kind: opAddTable}, {kind: opDelTable}})
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var ids, googleIDs uint32
			got, err := marshal(c.ops, &ids)
			if err != nil {
				t.Fatal(err)
			}
			want, err := googleMarshal(c.ops, &googleIDs)
			if err != nil {
				t.Fatal(err)
			}
			msgs := split(t, got.buf)
			if len(msgs) != len(want) || got.n != len(want) {
				t.Fatalf("%d messages (counted %d), google/nftables %d", len(msgs), got.n, len(want))
			}
			for i, m := range msgs {
				w := want[i]
				w.Header.Flags &^= netlink.Acknowledge | unix.NLM_F_ECHO
				if i == len(want)-2 {
					w.Header.Flags |= netlink.Acknowledge
				}
				if m.Header.Type != w.Header.Type || m.Header.Flags != w.Header.Flags || !bytes.Equal(m.Data, w.Data) {
					t.Fatalf("message %d of %d:\n got type %#x flags %#x % x\nwant type %#x flags %#x % x",
						i, len(want), m.Header.Type, m.Header.Flags, m.Data, w.Header.Type, w.Header.Flags, w.Data)
				}
			}
		})
	}
}

// TestBatchNumbers: commit numbers a batch's messages from the first it
// is given and waits for the acknowledgement of its last message before
// the end, the only one that asks for one; none asks for an echo.
func TestBatchNumbers(t *testing.T) {
	r := newRule("", vAccept)
	var ids uint32
	b, err := marshal([]op{{kind: opAddTable}, {kind: opAddChain, name: "a"}, {kind: opAddRule, name: "a", rule: &r}, {kind: opAddRule, name: "a", rule: &r}}, &ids)
	if err != nil {
		t.Fatal(err)
	}
	if acked := b.number(100); acked != 104 {
		t.Errorf("acknowledged message %d, want 104", acked)
	}
	msgs := split(t, b.buf)
	if len(msgs) != 6 || msgs[0].Header.Type != unix.NFNL_MSG_BATCH_BEGIN || msgs[5].Header.Type != unix.NFNL_MSG_BATCH_END {
		t.Fatalf("batch of %d messages: %+v", len(msgs), msgs)
	}
	for i, m := range msgs {
		acked := m.Header.Flags&unix.NLM_F_ACK != 0
		if acked != (i == 4) || m.Header.Flags&unix.NLM_F_ECHO != 0 || m.Header.Sequence != uint32(100+i) {
			t.Errorf("message %d: number %d, flags %v", i, m.Header.Sequence, m.Header.Flags)
		}
	}
	if _, err := marshal(nil, &ids); err == nil {
		t.Error("an empty batch was written")
	}
}

// TestEncodeRefuses: what the encoder cannot write is an error, not a
// truncated message.
func TestEncodeRefuses(t *testing.T) {
	var ids uint32
	long := make([]Element, 0, 3000)
	for i := range 3000 {
		long = append(long, Element{Key: fmt.Sprintf("%016d", i)})
	}
	// chunkElems keeps element lists within an attribute; one written by
	// hand past that is refused.
	b := &builder{b: newBatch(0), ids: &ids}
	msg, list := b.elemList(unix.NFT_MSG_NEWSETELEM, "s", 0)
	for i, e := range long {
		elem(b.b, i, e.Key, false, "")
	}
	b.b.endNest(list)
	b.b.endMsg(msg)
	if b.b.err == nil {
		t.Error("an element list of 3,000 elements in one attribute was written")
	}
	if _, err := marshal([]op{{kind: opAddTable}, {kind: opAddElems, name: "s", set: &TableSet{Name: "s", Type: SetIPv4}, elems: long}}, &ids); err != nil {
		t.Errorf("3,000 elements in chunks: %v", err)
	}
	b = &builder{b: newBatch(0), ids: &ids}
	if err := b.newSet(&nftables.Set{Name: "t", Table: calicoTable, KeyType: nftables.TypeIPAddr, HasTimeout: true}, 0); err == nil {
		t.Error("a set with timeouts was written")
	}
}

// split reads a batch back into messages.
func split(t *testing.T, buf []byte) []netlink.Message {
	t.Helper()
	var out []netlink.Message
	for len(buf) > 0 {
		if len(buf) < unix.NLMSG_HDRLEN {
			t.Fatalf("%d bytes left after %d messages", len(buf), len(out))
		}
		n := int(binary.NativeEndian.Uint32(buf))
		if n < unix.NLMSG_HDRLEN || n > len(buf) || n%4 != 0 {
			t.Fatalf("message %d has length %d of %d bytes left", len(out), n, len(buf))
		}
		var m netlink.Message
		if err := m.UnmarshalBinary(buf[:n]); err != nil {
			t.Fatal(err)
		}
		out = append(out, m)
		buf = buf[n:]
	}
	return out
}

// googleMarshal is how the package marshalled a batch before it wrote its
// own (google/nftables, recording what a connection would send): the
// reference the encoder is held to.
func googleMarshal(ops []op, ids *uint32) ([]netlink.Message, error) {
	var msgs []netlink.Message
	c, err := nftables.New(nftables.WithTestDial(func(req []netlink.Message) ([]netlink.Message, error) {
		if req == nil {
			return nil, io.EOF // a receive: no reply
		}
		msgs = append(msgs, req...)
		return nil, nil
	}))
	if err != nil {
		return nil, err
	}
	b := &googleBuilder{builder: builder{ids: ids}, c: c, table: calicoTable}
	for _, o := range ops {
		b.add(o)
	}
	if b.err != nil {
		return nil, b.err
	}
	if err := c.Flush(); err != nil {
		return nil, err
	}
	return msgs, nil
}

// googleBuilder queues ops on a google/nftables connection; it shares
// builder's set IDs and first error.
type googleBuilder struct {
	builder
	c     *nftables.Conn
	table *nftables.Table
}

func (b *googleBuilder) anonSet(keyType nftables.SetDatatype, elems []nftables.SetElement) *nftables.Set {
	s := &nftables.Set{Table: b.table, ID: b.nextID(), Name: "__set%d", Anonymous: true, Constant: true, Interval: true, KeyType: keyType}
	if err := b.c.AddSet(s, elems); err != nil {
		b.fail(err)
	}
	return s
}

func (b *googleBuilder) add(o op) {
	switch o.kind {
	case opAddTable:
		b.c.AddTable(b.table)
	case opDelTable:
		b.c.DelTable(b.table)
	case opAddSet:
		s := kernelSet(o.set.Type, b.table)
		s.Name, s.ID = o.name, b.nextID()
		if err := b.c.AddSet(s, nil); err != nil {
			b.fail(err)
		}
	case opDelSet:
		b.c.DelSet(&nftables.Set{Table: b.table, Name: o.name})
	case opAddChain:
		c := &nftables.Chain{Name: o.name, Table: b.table}
		if h := o.hook; h != nil {
			policy := nftables.ChainPolicyDrop
			if h.Accept {
				policy = nftables.ChainPolicyAccept
			}
			c.Hooknum = nftables.ChainHookRef(nftables.ChainHook(hookNums[h.Name]))
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
			var ks []nftables.SetElement
			for _, e := range chunk {
				k := nftables.SetElement{Key: []byte(e.Key), IntervalEnd: e.endOnly}
				if o.kind == opAddElems && e.Goto != "" {
					k.VerdictData = &expr.Verdict{Kind: expr.VerdictGoto, Chain: e.Goto}
				}
				ks = append(ks, k)
				if e.End != "" {
					ks = append(ks, nftables.SetElement{Key: []byte(e.End), IntervalEnd: true})
				}
			}
			var err error
			if o.kind == opAddElems {
				err = b.c.SetAddElements(s, ks)
			} else {
				err = b.c.SetDeleteElements(s, ks)
			}
			if err != nil {
				b.fail(err)
			}
		}
	}
}
