package nft

import (
	"errors"
	"fmt"
	"sync/atomic"

	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// A transaction is written by us (encode.go, batch.go) and sent in one
// sendmsg. google/nftables asks the kernel for an acknowledgement of
// every message and an echo of every rule, then reads them one receive
// at a time: for a whole table (11,000 rules, 40,000 messages) the kernel
// builds and queues an ack per message and a copy of every rule, and the
// Go side makes two system calls and a few allocations per reply, a
// fifth of the CPU of a full load. We need neither: a batch is one
// transaction, so one acknowledgement, of its last message, says it
// committed; the kernel reports every failed message and a failed commit
// as errors, queued before that acknowledgement.

// marshal writes ops as the messages of one batch (begin and end
// included).
func marshal(ops []op, ids *uint32) (*batch, error) {
	// A whole table's messages are about 460 bytes each on average.
	b := &builder{b: newBatch(512 * len(ops)), ids: ids}
	for _, o := range ops {
		b.add(o)
	}
	if b.err == nil {
		b.err = b.b.err
	}
	if b.err != nil {
		return nil, b.err
	}
	if !b.b.finish() {
		return nil, errors.New("marshalling nftables batch: no messages")
	}
	return b.b, nil
}

// commit sends a batch as one transaction and waits for its outcome: the
// first error the kernel reports, or the acknowledgement of the last
// message.
func commit(c *netlink.Conn, b *batch) error {
	n := uint32(b.n)
	want := b.number(batchSeq.Add(n) - n + 1)
	if err := send(c, b.buf); err != nil {
		return fmt.Errorf("sending nftables batch: %w", err)
	}
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

// send writes a batch in one sendmsg. (netlink.Conn.SendMessages copies
// each message into a buffer of its own and appends that to a buffer
// that grows by a quarter at a time: for a whole table, 13,000 messages
// and 6 MB, about 29 MB of allocation and copying.)
func send(c *netlink.Conn, buf []byte) error {
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
