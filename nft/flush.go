package nft

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sync/atomic"

	"github.com/google/nftables"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// A transaction is marshalled by google/nftables but sent by us.
// google/nftables asks the kernel for an acknowledgement of every message
// and an echo of every rule, then reads them one receive at a time: for
// a whole table (11,000 rules, 40,000 messages) the kernel builds and
// queues an ack per message and a copy of every rule, and the Go side
// makes two system calls and a few allocations per reply, a fifth of the
// CPU of a full load. We need neither: a batch is one transaction, so
// one acknowledgement, of its last message, says it committed; the kernel
// reports every failed message and a failed commit as errors, queued
// before that acknowledgement.

// marshal turns ops into the messages of one batch (begin and end
// included). google/nftables writes to a connection that only records
// what it would send (its test dialer) and answers each expected reply
// with nothing.
func marshal(ops []op, ids *uint32) ([]netlink.Message, error) {
	var msgs []netlink.Message
	c, err := nftables.New(nftables.WithTestDial(func(req []netlink.Message) ([]netlink.Message, error) {
		if req == nil {
			return nil, io.EOF // a receive: no reply
		}
		msgs = append(msgs, req...)
		return nil, nil
	}))
	if err != nil {
		return nil, fmt.Errorf("opening nftables connection: %w", err)
	}
	b := &builder{c: c, table: calicoTable, ids: ids}
	for _, o := range ops {
		b.add(o)
	}
	if b.err != nil {
		return nil, b.err
	}
	if err := c.Flush(); err != nil {
		return nil, fmt.Errorf("marshalling nftables batch: %w", err)
	}
	if len(msgs) < 3 {
		return nil, errors.New("marshalling nftables batch: no messages")
	}
	return msgs, nil
}

// quiet clears the requests for echoes and acknowledgements in a batch
// but on its last message before the end. It returns the index of the
// message whose acknowledgement ends the transaction.
func quiet(msgs []netlink.Message) int {
	last := len(msgs) - 2 // msgs[len-1] is the batch end
	for i := range msgs {
		msgs[i].Header.Flags &^= netlink.Acknowledge | unix.NLM_F_ECHO
	}
	msgs[last].Header.Flags |= netlink.Acknowledge
	return last
}

// commit sends a batch as one transaction and waits for its outcome: the
// first error the kernel reports, or the acknowledgement of the last
// message.
func commit(c *netlink.Conn, msgs []netlink.Message) error {
	last := quiet(msgs)
	n := uint32(len(msgs))
	first := batchSeq.Add(n) - n + 1
	if err := sendBatch(c, msgs, first); err != nil {
		return fmt.Errorf("sending nftables batch: %w", err)
	}
	want := first + uint32(last)
	for {
		replies, err := c.Receive()
		if err != nil {
			return err // an error the kernel reported, or the socket's
		}
		for _, m := range replies {
			if m.Header.Type == netlink.Error && m.Header.Sequence == want {
				return nil
			}
		}
	}
}

// batchSeq numbers the batches' messages (the kernel answers with the
// number of the message it answers), apart from the numbers the
// connection gives its own requests.
var batchSeq atomic.Uint32

func init() { batchSeq.Store(1 << 31) }

// sendBatch writes msgs, numbered from first, in one sendmsg from a
// buffer of the batch's exact size. netlink.Conn.SendMessages copies
// each message into a buffer of its own and appends that to a buffer
// that grows by a quarter at a time: for a whole table (13,000 messages,
// 6 MB) about 29 MB of allocation and copying, 20% of a full load's
// allocations and, with the collection they cause, much of its time
// (BenchmarkPrivilegedFullLoad).
func sendBatch(c *netlink.Conn, msgs []netlink.Message, first uint32) error {
	size := 0
	for _, m := range msgs {
		size += nlmsgLen(m)
	}
	buf := make([]byte, size)
	off := 0
	for i, m := range msgs {
		l := nlmsgLen(m)
		b := buf[off : off+l]
		binary.NativeEndian.PutUint32(b[0:4], uint32(l))
		binary.NativeEndian.PutUint16(b[4:6], uint16(m.Header.Type))
		binary.NativeEndian.PutUint16(b[6:8], uint16(m.Header.Flags))
		binary.NativeEndian.PutUint32(b[8:12], first+uint32(i))
		binary.NativeEndian.PutUint32(b[12:16], 0) // the kernel's port id is 0; ours it knows
		copy(b[16:], m.Data)
		off += l
	}
	rc, err := c.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	err = rc.Write(func(fd uintptr) bool {
		serr = unix.Sendmsg(int(fd), buf, nil, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}, 0)
		return serr != unix.EAGAIN
	})
	return errors.Join(err, serr)
}

// nlmsgLen is a message's length with its header, padded to 4 bytes (as
// netlink.Conn sets it).
func nlmsgLen(m netlink.Message) int { return (unix.NLMSG_HDRLEN + len(m.Data) + 3) &^ 3 }
