// Package conntrack forgets the kernel's connection tracking entries of
// addresses: when an address leaves a workload, flows that conntrack
// still accepts as established must not carry over to whoever gets the
// address next.
package conntrack

import (
	"errors"
	"fmt"
	"net/netip"
	"sync"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// Forget deletes every conntrack entry with one of addrs at either end,
// in either direction, in the calling thread's network namespace, over a
// socket of its own.
func Forget(addrs []netip.Addr) error {
	var t Table
	defer t.Close()
	return t.Forget(addrs)
}

// Table forgets conntrack entries over one netfilter socket, opened in
// the network namespace of the thread that first uses it and kept: the
// kernel makes the close of a netfilter socket wait until nftables has
// freed what its last transaction replaced (an RCU grace period), and
// the agent forgets addresses right after its commits. The zero Table is
// ready; it is safe from several goroutines.
type Table struct {
	mu sync.Mutex
	h  *netlink.Handle
}

// Forget is the package's Forget on t's socket. A socket that failed is
// closed; the next call opens another.
func (t *Table) Forget(addrs []netip.Addr) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.h == nil {
		h, err := netlink.NewHandle(unix.NETLINK_NETFILTER)
		if err != nil {
			return fmt.Errorf("opening a netfilter socket: %w", err)
		}
		t.h = h
	}
	var errs []error
	for _, a := range addrs {
		a = a.Unmap()
		family := netlink.InetFamily(unix.AF_INET)
		if a.Is6() {
			family = unix.AF_INET6
		}
		var filters []netlink.CustomConntrackFilter
		for _, tp := range []netlink.ConntrackFilterType{netlink.ConntrackOrigSrcIP, netlink.ConntrackOrigDstIP, netlink.ConntrackReplyAnyIP} {
			f := &netlink.ConntrackFilter{}
			if err := f.AddIP(tp, a.AsSlice()); err != nil {
				return err
			}
			filters = append(filters, f)
		}
		if _, err := t.h.ConntrackDeleteFilters(netlink.ConntrackTable, family, filters...); err != nil {
			errs = append(errs, fmt.Errorf("forgetting the connections of %s: %w", a, err))
		}
	}
	if len(errs) > 0 {
		t.closeLocked()
	}
	return errors.Join(errs...)
}

// Close releases the socket.
func (t *Table) Close() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.closeLocked()
}

func (t *Table) closeLocked() {
	if t.h != nil {
		t.h.Close()
		t.h = nil
	}
}
