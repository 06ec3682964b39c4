// Package conntrack forgets the kernel's connection tracking entries of
// addresses: when an address leaves a workload, flows that conntrack
// still accepts as established must not carry over to whoever gets the
// address next.
package conntrack

import (
	"errors"
	"fmt"
	"net/netip"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// Forget deletes every conntrack entry with one of addrs at either end,
// in either direction, in the calling thread's network namespace.
func Forget(addrs []netip.Addr) error {
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
		if _, err := netlink.ConntrackDeleteFilters(netlink.ConntrackTable, family, filters...); err != nil {
			errs = append(errs, fmt.Errorf("forgetting the connections of %s: %w", a, err))
		}
	}
	return errors.Join(errs...)
}
