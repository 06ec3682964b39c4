package nft

import (
	"errors"
	"fmt"
	"io"

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
// but on its last message before the end, and lets the sending
// connection number the messages afresh. It returns the index of the
// message whose acknowledgement ends the transaction.
func quiet(msgs []netlink.Message) int {
	last := len(msgs) - 2 // msgs[len-1] is the batch end
	for i := range msgs {
		h := &msgs[i].Header
		h.Flags &^= netlink.Acknowledge | unix.NLM_F_ECHO
		h.Sequence, h.PID, h.Length = 0, 0, 0
	}
	msgs[last].Header.Flags |= netlink.Acknowledge
	return last
}

// commit sends a batch as one transaction and waits for its outcome: the
// first error the kernel reports, or the acknowledgement of the last
// message.
func commit(c *netlink.Conn, msgs []netlink.Message) error {
	last := quiet(msgs)
	sent, err := c.SendMessages(msgs)
	if err != nil {
		return fmt.Errorf("sending nftables batch: %w", err)
	}
	want := sent[last].Header.Sequence
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
