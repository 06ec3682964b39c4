package nft

import (
	"errors"
	"fmt"
	"time"

	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// monitor is a socket subscribed to the namespace's nftables events
// (NFNLGRP_NFTABLES, what `nft monitor` reads). The kernel sends, for
// every committed transaction, one message per object it changed (each
// naming its table) and then a NEWGEN message with the transaction's
// generation. Nobody reads the socket in the background: events queue in
// its buffer and are drained when the generation shows that something was
// committed. A full buffer loses events and reports ENOBUFS, which makes
// the caller read back instead.
type monitor struct {
	c *netlink.Conn
	// from is the generation read just after subscribing: the socket holds
	// every event of every later transaction.
	from uint32
}

// monitorBuffer holds the events of many foreign transactions between two
// Applies; our own transactions are drained as soon as they commit.
const monitorBuffer = 16 << 20

func openMonitor(netns int) (*monitor, error) {
	c, err := netlink.Dial(unix.NETLINK_NETFILTER, &netlink.Config{NetNS: netns})
	if err != nil {
		return nil, fmt.Errorf("opening nftables monitor: %w", err)
	}
	if err := c.JoinGroup(unix.NFNLGRP_NFTABLES); err != nil {
		c.Close()
		return nil, fmt.Errorf("subscribing to nftables events: %w", err)
	}
	rc, err := c.SyscallConn()
	if err == nil {
		// Best effort: the default buffer works, it just overflows sooner.
		_ = rc.Control(func(fd uintptr) {
			_ = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, monitorBuffer)
		})
	}
	return &monitor{c: c}, nil
}

func (m *monitor) close() { m.c.Close() }

// after reports whether generation a comes after b (the counter wraps).
func after(a, b uint32) bool { return int32(a-b) > 0 }

var errMonitorLate = errors.New("nftables monitor: the events of the current generation did not arrive")

// monitorQuiet is how long the socket may stay silent while the events up
// to a generation are still expected. The kernel queues them while it
// commits, so they are normally there already.
const monitorQuiet = 100 * time.Millisecond

// untouched reads events until the NEWGEN of generation until and reports
// whether every transaction after generation known, other than ours (0:
// none), left table inet calico alone. Events of transactions up to known
// are skipped: their effect is already known. It cannot vouch for a known
// generation older than the subscription. An error means the socket lost
// events or fell behind; the caller closes it.
func (m *monitor) untouched(known, ours, until uint32, deadline time.Time) (bool, error) {
	if after(m.from, known) || after(known, until) {
		return false, nil
	}
	touched := false
	for {
		d := time.Now().Add(monitorQuiet)
		if deadline.Before(d) {
			d = deadline
		}
		if err := m.c.SetReadDeadline(d); err != nil {
			return false, err
		}
		msgs, err := m.c.Receive()
		if isTimeout(err) {
			return false, errMonitorLate
		}
		if err != nil {
			return false, fmt.Errorf("reading nftables events: %w", err)
		}
		for _, msg := range msgs {
			if msg.Header.Type>>8 != unix.NFNL_SUBSYS_NFTABLES {
				continue
			}
			if msg.Header.Type&0xff != unix.NFT_MSG_NEWGEN {
				touched = touched || touchesOurTable(msg)
				continue
			}
			gen, err := genOf(msg)
			if err != nil {
				return false, err
			}
			if touched && after(gen, known) && gen != ours {
				return false, nil
			}
			touched = false
			if gen == until {
				return true, nil
			}
			if after(gen, until) {
				return false, nil
			}
		}
	}
}

func isTimeout(err error) bool {
	var ne interface{ Timeout() bool }
	return errors.As(err, &ne) && ne.Timeout()
}

// touchesOurTable reports whether an event is about an object of table
// inet calico: every nf_tables object message names its table in
// attribute 1 (NFTA_TABLE_NAME, NFTA_CHAIN_TABLE, NFTA_RULE_TABLE,
// NFTA_SET_TABLE, NFTA_SET_ELEM_LIST_TABLE, NFTA_OBJ_TABLE, ...).
func touchesOurTable(msg netlink.Message) bool {
	if len(msg.Data) < 4 || msg.Data[0] != unix.NFPROTO_INET {
		return false
	}
	ad, err := decoder(msg)
	if err != nil {
		return true
	}
	for ad.Next() {
		if ad.Type() == 1 {
			return ad.String() == TableName
		}
	}
	return ad.Err() != nil
}

func genOf(msg netlink.Message) (uint32, error) {
	ad, err := decoder(msg)
	if err != nil {
		return 0, err
	}
	for ad.Next() {
		if ad.Type() == unix.NFTA_GEN_ID {
			return ad.Uint32(), nil
		}
	}
	return 0, errors.New("nftables event: generation without an id")
}
