package bgp

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// shutdownSessions shuts down (shutdown(2), both directions) every TCP
// socket of this process that isOurs picks, and returns how many. GoBGP
// keeps its connections to itself; this reaches them through
// /proc/self/fd. The descriptors stay open and owned by GoBGP, which
// closes them as usual: shutdown only makes the peer see the end of the
// stream (FIN) and makes GoBGP's own reads and writes fail, so nothing it
// tries to send afterwards (a Cease notification) goes out.
func shutdownSessions(isOurs func(local, remote netip.AddrPort) bool) (int, error) {
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return 0, fmt.Errorf("listing file descriptors: %w", err)
	}
	n := 0
	var errs []error
	for _, e := range ents {
		fd, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if link, err := os.Readlink("/proc/self/fd/" + e.Name()); err != nil || !strings.HasPrefix(link, "socket:") {
			continue
		}
		// GoBGP's listener is a multipath TCP socket when Go makes it
		// one (see mptcpListen); what it accepts from a plain TCP peer
		// is a multipath socket fallen back to TCP.
		if proto, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_PROTOCOL); err != nil ||
			proto != unix.IPPROTO_TCP && proto != unix.IPPROTO_MPTCP {
			continue
		}
		local, err := sockAddr(unix.Getsockname(fd))
		if err != nil {
			continue
		}
		remote, err := sockAddr(unix.Getpeername(fd))
		if err != nil { // not connected: a listener
			continue
		}
		if !isOurs(local, remote) {
			continue
		}
		if err := unix.Shutdown(fd, unix.SHUT_RDWR); err != nil && !errors.Is(err, unix.ENOTCONN) {
			errs = append(errs, fmt.Errorf("shutting down connection %s -> %s: %w", local, remote, err))
			continue
		}
		n++
	}
	return n, errors.Join(errs...)
}

func sockAddr(sa unix.Sockaddr, err error) (netip.AddrPort, error) {
	if err != nil {
		return netip.AddrPort{}, err
	}
	switch a := sa.(type) {
	case *unix.SockaddrInet4:
		return netip.AddrPortFrom(netip.AddrFrom4(a.Addr), uint16(a.Port)), nil
	case *unix.SockaddrInet6:
		return netip.AddrPortFrom(netip.AddrFrom16(a.Addr).Unmap(), uint16(a.Port)), nil
	}
	return netip.AddrPort{}, errors.New("not an IP socket")
}
